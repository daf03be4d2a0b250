"""Issue R, service side, on a real uvicorn: hostile input and faults give a 4xx/503 that
says what is wrong, never a 500, a traceback, a hang or a starved service."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gaitsearch.index.versions import current_version, set_current
from service_helpers import QUERY, free_port, service_index  # noqa: F401 - fixture

TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class GuardedServer:
    """uvicorn with the options ``gaitsearch serve`` uses (service/http_guard.py)."""

    def __init__(self, app, settings) -> None:
        import uvicorn
        from gaitsearch.service.http_guard import uvicorn_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", **uvicorn_options(settings)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> GuardedServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start in 120 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _start(service_index, text_encoder, **overrides):  # noqa: F811
    app = service_index.app(text_encoder, **overrides)
    return GuardedServer(app, service_index.settings(**overrides))


@pytest.fixture(scope="module")
def server(service_index, text_encoder):  # noqa: F811
    with _start(
        service_index,
        text_encoder,
        admin_token=TOKEN,
        header_timeout_s=1.0,
        body_read_timeout_s=1.0,
        file_read_timeout_s=2.0,
    ) as live:
        yield live


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _an_id(client) -> str:
    return client.get("/search", params={"q": QUERY, "k": 1}).json()["results"][0]["id"]


def _assert_clear(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text[:300]
    detail = r.json()["detail"]
    assert "Traceback" not in detail
    for word in words:
        assert word in detail, detail


# 1 ------------------------------------------------------------------------------------
def test_a_filter_with_250000_values_is_a_422_that_says_the_limit(client):
    values = [""] * 250_000  # 750 KB, under the 1 MiB body limit (the probe of issue R)
    filters = {"view": values}
    body = {"query": QUERY, "k": 5, "filters": filters}
    _assert_clear(client.post("/search", json=body), 422, "1000")
    batch = {"queries": [QUERY], "k": 5, "filters": filters}
    _assert_clear(client.post("/search/batch", json=batch), 422, "1000")
    example = {"id": _an_id(client), "k": 5, "filters": filters}
    _assert_clear(client.post("/search/by-example", json=example), 422, "1000")
    # At the limit it is an ordinary (empty or not) answer, never a database error.
    ok = {"query": QUERY, "k": 5, "filters": {"view": ["side"] + [f"v{i}" for i in range(999)]}}
    assert client.post("/search", json=ok).status_code == 200


def test_the_store_never_binds_more_variables_than_sqlite_allows(service_index):  # noqa: F811
    from gaitsearch.index.loaded_index import load_index

    index = load_index(service_index.index_dir)
    try:
        wanted = ["side"] + [f"x{i}" for i in range(300_000)]  # past SQLite's 250,000
        rows = index._store.allowed_rows({"view": wanted})
        assert len(rows) > 0
        assert len(index._store.rows_to_metadata(range(300_000))) == index.count
    finally:
        index.close()


# 2 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["not-utf8", "directory"])
def test_reload_over_a_damaged_current_is_a_409_naming_it(client, service_index, damage):  # noqa: F811
    current = Path(service_index.index_dir) / "CURRENT"
    live = current_version(service_index.index_dir)
    current.unlink()
    if damage == "directory":
        current.mkdir()
    else:
        current.write_bytes(b"\xff\xfev0001\n")
    try:
        _assert_clear(client.post("/admin/reload", headers=AUTH), 409, "CURRENT")
        assert client.get("/search", params={"q": QUERY}).json()["index_version"] == live
    finally:
        shutil.rmtree(current) if current.is_dir() else current.unlink()
        set_current(service_index.index_dir, live)


# 3 ------------------------------------------------------------------------------------
def test_watch_survives_an_unreadable_current_and_follows_the_next_good_one(
    service_index,  # noqa: F811
    text_encoder,
):
    index_dir = Path(service_index.index_dir)
    live = current_version(index_dir)
    # Published (and CURRENT set back) before the server watches: done while it watched, a
    # busy machine's watcher could load the new version in between (a second "changed").
    newer = service_index.publish_new_version()
    set_current(index_dir, live)
    with (
        _start(service_index, text_encoder, watch=True, watch_interval_s=0.1) as watched,
        httpx.Client(base_url=watched.url, timeout=30) as c,
    ):
        time.sleep(0.3)
        (index_dir / "CURRENT").write_bytes(b"\xff\xff\xff")  # unreadable, more than once
        time.sleep(0.5)
        set_current(index_dir, newer)
        deadline = time.monotonic() + 20
        while c.get("/readyz").json().get("index_version") != newer:
            assert time.monotonic() < deadline, "the watcher stopped following CURRENT"
            time.sleep(0.1)
        metrics = c.get("/metrics").text
        assert 'gaitsearch_index_reloads_total{outcome="changed"} 1.0' in metrics
        assert 'gaitsearch_index_reloads_total{outcome="refused"}' in metrics


# 4 ------------------------------------------------------------------------------------
def _npy_path(service_index, seq_id: str) -> Path:  # noqa: F811
    return Path(service_index.gallery) / "sequences" / f"{seq_id}.npy"


@pytest.mark.parametrize("damage", ["emptied", "huge-header", "fifo"])
def test_a_gallery_file_damaged_after_indexing_is_a_503_that_says_so(
    client,
    service_index,  # noqa: F811
    damage,
):
    seq_id = _an_id(client)
    path = _npy_path(service_index, seq_id)
    original = path.read_bytes()
    path.unlink()
    if damage == "emptied":
        path.write_bytes(b"")
    elif damage == "fifo":
        os.mkfifo(path)  # blocks whoever opens it (a hung network mount, in real life)
    else:
        from numpy.lib import format as npy

        with path.open("wb") as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": (10**10, 18, 3)}
            npy.write_array_header_1_0(fh, header)
            fh.write(b"\0" * 64)
    try:
        start = time.monotonic()
        r = client.get(f"/sequences/{seq_id}")
        _assert_clear(r, 503, "damaged", seq_id)
        assert str(path) not in r.text
        r = client.post("/search/by-example", json={"id": seq_id, "k": 3})
        _assert_clear(r, 503, "damaged")
        assert time.monotonic() - start < 5
        assert client.get("/search", params={"q": QUERY, "k": 3}).status_code == 200
    finally:
        path.unlink()
        path.write_bytes(original)
    assert client.get(f"/sequences/{seq_id}").status_code == 200


# 5 ------------------------------------------------------------------------------------
def test_a_hung_file_read_never_stalls_searches(client, server, monkeypatch):
    """Reads that block (a hung mount) miss their deadline with a 503 while searches,
    on their own workers, keep answering."""
    from gaitsearch.index.loaded_index import LoadedIndex

    release = threading.Event()
    monkeypatch.setattr(LoadedIndex, "load_keypoints", lambda self, seq_id: release.wait(60))
    seq_id = _an_id(client)
    answers: list[int] = []

    def read() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            answers.append(c.get(f"/sequences/{seq_id}").status_code)

    readers = [threading.Thread(target=read) for _ in range(6)]
    try:
        for t in readers:
            t.start()
        time.sleep(0.3)
        for i in range(10):
            start = time.monotonic()
            r = client.get("/search", params={"q": f"{QUERY} {i}", "k": 5})
            assert r.status_code == 200
            assert time.monotonic() - start < 1.5
        for t in readers:
            t.join(timeout=20)
        assert answers == [503] * 6
    finally:
        release.set()


# 6 ------------------------------------------------------------------------------------
def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    start, data = time.monotonic(), b""
    sock.settimeout(limit_s)
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        pytest.fail(f"connection still open after {limit_s} s; got {data[:200]!r}")
    return data, time.monotonic() - start


def test_half_sent_headers_are_cut_off_with_a_408(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        data, took = _read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    assert took < 5


def test_an_idle_connection_is_closed(server):
    with _connect(server) as sock:
        _, took = _read_until_closed(sock, 10)
    assert took < 5


def test_a_stalled_body_is_a_408(server):
    with _connect(server) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"query": '
        )
        data, took = _read_until_closed(sock, 10)
    assert b" 408 " in data.split(b"\r\n")[0], data[:200]
    assert b"stalled" in data
    assert took < 5


def test_client_limits_are_settings_passed_to_uvicorn():
    from gaitsearch.service.http_guard import uvicorn_options
    from gaitsearch.service.settings import Settings

    options = uvicorn_options(Settings(max_connections=7, keep_alive_timeout_s=3))
    assert options["limit_concurrency"] == 7
    assert options["timeout_keep_alive"] == 3
    assert options["http"].header_timeout_s == Settings().header_timeout_s


# 7 ------------------------------------------------------------------------------------
def test_batch_load_past_the_budget_gets_429_with_retry_after(service_index, text_encoder):  # noqa: F811
    long_queries = [f"{QUERY} number {i} " + "very " * 150 for i in range(64)]
    with (
        _start(service_index, text_encoder, heavy_budget=64, heavy_wait_s=0.0) as live,
        httpx.Client(base_url=live.url, timeout=120) as c,
    ):
        statuses: list[int] = []
        retry_after: list[str] = []

        def batch(worker: int) -> None:
            queries = [f"{q} {worker}" for q in long_queries]
            with httpx.Client(base_url=live.url, timeout=120) as bc:
                r = bc.post("/search/batch", json={"queries": queries, "k": 5})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    retry_after.append(r.headers.get("retry-after", ""))

        workers = [threading.Thread(target=batch, args=(w,)) for w in range(4)]
        for t in workers:
            t.start()
        time.sleep(0.2)
        assert c.get("/search", params={"q": "a single search", "k": 5}).status_code == 200
        for t in workers:
            t.join(timeout=120)
    assert 200 in statuses and 429 in statuses, statuses
    assert all(v.isdigit() and int(v) >= 1 for v in retry_after)


# 8 ------------------------------------------------------------------------------------
def _walk(scale: float) -> list:
    rng = np.random.default_rng(0)
    arr = rng.uniform(100, 400, size=(30, 18, 3))
    arr[..., 2] = 0.9
    if scale != 1:
        arr[:, 4, :2] = scale  # one joint far outside any image
    return arr.tolist()


@pytest.mark.parametrize("scale", [3e38, 1e300])
def test_huge_finite_keypoints_are_a_422(client, scale):
    r = client.post("/search/by-example", json={"keypoints": _walk(scale), "k": 5})
    _assert_clear(r, 422, "coordinates")
    r = client.post("/classify", json={"keypoints": _walk(scale), "labels": ["fast", "slow"]})
    _assert_clear(r, 422, "coordinates")
    ordinary = client.post("/search/by-example", json={"keypoints": _walk(1), "k": 5})
    assert ordinary.status_code == 200


# 9 ------------------------------------------------------------------------------------
def test_an_id_with_a_trailing_newline_is_refused(client):
    seq_id = _an_id(client)
    _assert_clear(client.get(f"/sequences/{seq_id}%0A"), 422, "not a sequence id")
    r = client.post("/search/by-example", json={"id": seq_id + "\n", "k": 3})
    _assert_clear(r, 422, "not a sequence id")


# 10 -----------------------------------------------------------------------------------
def test_index_shows_names_not_server_paths_unless_authenticated(client, service_index):  # noqa: F811
    public = client.get("/index").json()["manifest"]
    values = [public.get("checkpoint_path"), *public.get("data_sources", [])]
    assert values and all(v and not v.startswith("/") for v in values), values
    assert str(service_index.gallery) not in client.get("/index").text
    private = client.get("/index", headers=AUTH).json()["manifest"]
    assert private["checkpoint_path"].startswith("/")
