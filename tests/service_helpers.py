"""Helpers for the service tests: a small real index and a real uvicorn on a free port."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

QUERY = "woman in heels walking briskly"


def write_gallery(root: Path, count: int = 60, seed: int = 3) -> Path:
    """A small synthetic gallery: attributes, descriptions and queries.jsonl."""
    from gaitsearch.model.synth import synthesize_gallery

    synthesize_gallery(root, count=count, seed=seed)
    return root


def build_test_index(gallery: Path, index_dir: Path, checkpoint: Path) -> str:
    from gaitsearch.index.build import build_index

    return build_index(gallery, index_dir, checkpoint, progress=False).version


class ServiceIndex:
    def __init__(self, gallery: Path, index_dir: Path, checkpoint: Path) -> None:
        self.gallery, self.index_dir, self.checkpoint = gallery, index_dir, checkpoint

    def settings(self, **overrides):
        from gaitsearch.service.settings import Settings

        values = {"index_dir": self.index_dir, "checkpoint": self.checkpoint, **overrides}
        return Settings(**values)

    def app(self, text_encoder, **overrides):
        """The app over this index, sharing the already loaded encoder and checkpoint."""
        from gaitsearch.model.checkpoint import load_checkpoint
        from gaitsearch.service.app import create_app

        model = load_checkpoint(self.checkpoint)
        return create_app(self.settings(**overrides), model=model, text_encoder=text_encoder)

    def publish_new_version(self) -> str:
        return build_test_index(self.gallery, self.index_dir, self.checkpoint)


@pytest.fixture(scope="module")
def service_index(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> ServiceIndex:
    """A real index (FAISS + SQLite) over a 60-walk synthetic gallery, tiny checkpoint."""
    root = tmp_path_factory.mktemp("service")
    gallery = write_gallery(root / "gallery")
    build_test_index(gallery, root / "index", tiny_checkpoint)
    return ServiceIndex(gallery, root / "index", tiny_checkpoint)


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
