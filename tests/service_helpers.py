"""Helpers for the service tests: a small real index and a real uvicorn on a free port."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.gallery import GalleryWriter, SequenceRecord

QUERY = "woman in heels walking briskly"


def write_gallery(root: Path, count: int = 48, seed: int = 0) -> Path:
    """A small gallery with one value per attribute group and a description per walk."""
    from conftest import walking_like

    rng = np.random.default_rng(seed)
    with GalleryWriter(root) as writer:
        for i in range(count):
            attrs = {g: values[(i * (j + 1)) % len(values)] for j, (g, values) in
                     enumerate(ATTRIBUTES.items())}  # fmt: skip
            text = (
                f"a {attrs['age']} {attrs['gender']} in {attrs['footwear']} walking at a "
                f"{attrs['pace']} pace, seen from the {attrs['view']}"
            )
            writer.add(
                SequenceRecord(
                    id=f"walk{i:04d}", fps=25.0, source="test", attributes=attrs, description=text
                ),
                walking_like(rng, 32 + (i % 12)),
            )
    return root


def build_test_index(gallery: Path, index_dir: Path, checkpoint: Path) -> str:
    from gaitsearch.index.build import build_index

    return build_index(gallery, index_dir, checkpoint, progress=False).version


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving ``app`` in a thread on 127.0.0.1 (the real server, real sockets)."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start in 120 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
