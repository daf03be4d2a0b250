"""A real uvicorn on a free 127.0.0.1 port over a freshly built index: search, hot reload
under load, a broken version refused, ``--watch`` following CURRENT."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest
from gaitsearch.index.versions import current_version, set_current
from service_helpers import LiveServer, service_index  # noqa: F401 - fixture

TOKEN = "live-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(service_index, text_encoder):  # noqa: F811
    app = service_index.app(text_encoder, admin_token=TOKEN)
    with LiveServer(app) as live:
        yield live


def test_real_uvicorn_answers_the_readme_query_with_5_results(server):
    r = httpx.get(f"{server.url}/search?q=woman+in+heels+walking+briskly&k=5", timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "woman in heels walking briskly"
    assert len(body["results"]) == 5
    print(f"\n{server.url}/search?q=woman+in+heels+walking+briskly&k=5 ->")
    for hit in body["results"]:
        print(f"  {hit['rank']} {hit['id']} {hit['score']:.3f} {hit['metadata']['description']}")


@pytest.mark.slow
def test_reload_under_load_drops_nothing(server, service_index):  # noqa: F811
    published = {current_version(service_index.index_dir)}
    queries = ["woman in heels walking briskly", "old man with a cane", "child running"]
    statuses: list[int] = []
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(400):  # bounded even if stop never comes
                if stop.is_set():
                    return
                q = f"{queries[i % 3]} {worker}-{i % 7}"  # misses and hits in the cache
                try:
                    r = client.get("/search", params={"q": q, "k": 5})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                statuses.append(r.status_code)
                if r.status_code == 200:
                    seen.append(r.json()["index_version"])

    workers = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.3)
        for _ in range(2):
            published.add(service_index.publish_new_version())
            r = httpx.post(f"{server.url}/admin/reload", headers=AUTH, timeout=60)
            assert r.status_code == 200 and r.json()["changed"] is True
            time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    assert not failures
    assert statuses and set(statuses) == {200}
    assert set(seen) <= published
    newest = max(published)
    assert seen[-1] == newest or newest in seen
    assert len(set(seen)) >= 2  # requests were answered before and after a swap
    assert httpx.get(f"{server.url}/index").json()["version"] == newest
    print(f"\nreload under load: {len(statuses)} requests, all 200, versions {sorted(set(seen))}")


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(server, service_index):  # noqa: F811
    live = httpx.get(f"{server.url}/index").json()["version"]
    vdir = service_index.index_dir / "versions"
    broken = "v0099"
    shutil.copytree(vdir / live, vdir / broken)
    (vdir / broken / "vectors.faiss").write_bytes(b"not a faiss index")
    (vdir / broken / "manifest.json").write_text(
        (vdir / live / "manifest.json").read_text().replace(f'"{live}"', f'"{broken}"')
    )
    set_current(service_index.index_dir, broken)
    try:
        r = httpx.post(f"{server.url}/admin/reload", headers=AUTH, timeout=60)
        assert r.status_code == 409
        assert broken in r.json()["detail"] and live in r.json()["detail"]
        r = httpx.get(f"{server.url}/search", params={"q": "a person walking", "k": 3})
        assert r.status_code == 200 and r.json()["index_version"] == live
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        set_current(service_index.index_dir, live)
        shutil.rmtree(vdir / broken)


@pytest.mark.slow
def test_watch_follows_current(service_index, text_encoder):  # noqa: F811
    app = service_index.app(text_encoder, watch=True, watch_interval_s=0.2)
    with LiveServer(app) as live:
        before = httpx.get(f"{live.url}/index").json()["version"]
        new = service_index.publish_new_version()
        assert new != before
        deadline = time.monotonic() + 30
        version = before
        while time.monotonic() < deadline and version != new:
            time.sleep(0.2)
            version = httpx.get(f"{live.url}/index").json()["version"]
        assert version == new
        r = httpx.get(f"{live.url}/search", params={"q": "someone walking", "k": 2})
        assert r.json()["index_version"] == new
