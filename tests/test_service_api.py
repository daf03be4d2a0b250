"""The HTTP API over a real index (FAISS + SQLite) built from a small synthetic gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import QUERY, service_index  # noqa: F401 - fixture

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def client(service_index, text_encoder):  # noqa: F811
    app = service_index.app(text_encoder, admin_token=TOKEN, max_k=50)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def a_walk(service_index):  # noqa: F811
    """The keypoints and id of one gallery walk."""
    path = sorted((service_index.gallery / "sequences").glob("*.npy"))[0]
    return path.stem, np.load(path)


def test_get_search_returns_k_ranked_results_with_metadata(client):
    r = client.get("/search", params={"q": QUERY, "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == QUERY and body["k"] == 5 and body["index_version"] == "v0001"
    assert [x["rank"] for x in body["results"]] == [1, 2, 3, 4, 5]
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    first = body["results"][0]["metadata"]
    assert {"id", "fps", "source", "attributes", "description"} <= set(first)
    assert "path" not in first  # server file paths never leak


def test_filtered_results_are_cached_per_filter(client):
    side = client.post("/search", json={"query": QUERY, "k": 5, "filters": {"view": "side"}})
    front = client.post("/search", json={"query": QUERY, "k": 5, "filters": {"view": "front"}})
    views = {x["metadata"]["attributes"]["view"] for x in front.json()["results"]}
    assert views == {"front"} and side.json()["results"] != front.json()["results"]


def test_post_search_filters_on_attributes(client):
    r = client.post("/search", json={"query": QUERY, "k": 10, "filters": {"view": "side"}})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results and all(x["metadata"]["attributes"]["view"] == "side" for x in results)
    r = client.post(
        "/search", json={"query": QUERY, "k": 10, "filters": {"view": ["front", "back"]}}
    )
    assert {x["metadata"]["attributes"]["view"] for x in r.json()["results"]} <= {"front", "back"}


def test_k_larger_than_the_gallery_returns_every_walk(client):
    r = client.get("/search", params={"q": QUERY, "k": 50})
    assert r.status_code == 200 and len(r.json()["results"]) == 50


def test_batch_search_answers_each_query(client):
    r = client.post("/search/batch", json={"queries": [QUERY, "a child running"], "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert [x["query"] for x in body["results"]] == [QUERY, "a child running"]
    assert all(len(x["results"]) == 3 for x in body["results"])


def test_search_by_example_with_an_indexed_id_excludes_itself(client, a_walk):
    seq_id, _ = a_walk
    r = client.post("/search/by-example", json={"id": seq_id, "k": 5})
    assert r.status_code == 200
    ids = [x["id"] for x in r.json()["results"]]
    assert len(ids) == 5 and seq_id not in ids


def test_search_by_example_with_keypoints_finds_the_same_walk_first(client, a_walk):
    seq_id, arr = a_walk
    r = client.post("/search/by-example", json={"keypoints": arr.tolist(), "k": 3})
    assert r.status_code == 200
    assert r.json()["results"][0]["id"] == seq_id


def test_search_by_example_accepts_coco17(client, a_walk):
    _, arr = a_walk
    coco = arr[:, [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10], :]
    r = client.post("/search/by-example", json={"keypoints": coco.tolist(), "k": 3})
    assert r.status_code == 200 and len(r.json()["results"]) == 3


def test_classify_ranks_every_label(client, a_walk):
    _, arr = a_walk
    labels = ["walking with a cane", "running", "carrying a suitcase"]
    r = client.post("/classify", json={"keypoints": arr.tolist(), "labels": labels})
    assert r.status_code == 200
    ranked = r.json()["labels"]
    assert sorted(x["label"] for x in ranked) == sorted(labels)
    assert [x["score"] for x in ranked] == sorted((x["score"] for x in ranked), reverse=True)


def test_sequence_has_metadata_and_keypoints(client, a_walk):
    seq_id, arr = a_walk
    r = client.get(f"/sequences/{seq_id}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == seq_id and body["frames"] == arr.shape[0]
    kp = np.asarray(body["keypoints"])
    assert kp.shape == arr.shape
    assert np.allclose(kp, arr, atol=0.01)


def test_index_manifest(client):
    body = client.get("/index").json()
    assert body["version"] == "v0001" and body["count"] == 60 and body["dim"] == 384
    assert {"view", "footwear", "source"} <= set(body["filter_keys"])
    assert body["manifest"]["count"] == 60


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["count"] == 60


def test_not_ready_until_the_lifespan_has_loaded_everything(service_index, text_encoder):  # noqa: F811
    app = service_index.app(text_encoder)
    bare = TestClient(app)  # not entered: the lifespan (loading) has not run
    assert bare.get("/readyz").status_code == 503
    r = bare.get("/search", params={"q": QUERY})
    assert r.status_code == 503 and "not ready" in r.json()["detail"]
    assert bare.get("/healthz").status_code == 200


def test_web_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "search-form" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_web_page_draws_the_same_bones_as_the_model():
    import re
    from pathlib import Path

    from gaitsearch.model.skeleton import BONES

    js = (Path(__file__).parents[1] / "service" / "static" / "app.js").read_text()
    block = js[js.index("const BONES") : js.index("];", js.index("const BONES"))]
    pairs = tuple((int(a), int(b)) for a, b in re.findall(r"\[(\d+), (\d+)\]", block))
    assert pairs == BONES


# --- bad input: always a 4xx with a JSON detail, never a 500 ---------------------------------

NAN_BODY = '{"keypoints": [' + ",".join(["[" + ",".join(["[NaN, 1.0, 0.9]"] * 18) + "]"] * 10)
NAN_BODY += '], "k": 3}'

BAD_REQUESTS = [
    ("empty query", "GET", "/search?q=&k=5", None, 422),
    ("whitespace query", "GET", "/search?q=%20%20%09&k=5", None, 422),
    ("whitespace query (POST)", "POST", "/search", {"query": "   "}, 422),
    ("missing query", "GET", "/search?k=5", None, 422),
    ("query over 1000 chars", "GET", "/search?q=" + "a" * 1001, None, 422),
    ("query over 1000 chars (POST)", "POST", "/search", {"query": "a" * 1001}, 422),
    ("k = 0", "GET", "/search?q=walk&k=0", None, 422),
    ("k negative", "POST", "/search", {"query": "walk", "k": -3}, 422),
    ("k above max_k", "GET", "/search?q=walk&k=51", None, 422),
    ("k not a number", "GET", "/search?q=walk&k=ten", None, 422),
    ("unknown filter key", "POST", "/search", {"query": "walk", "filters": {"colour": "red"}}, 422),
    ("filter value not a string", "POST", "/search", {"query": "w", "filters": {"view": 3}}, 422),
    ("unknown body field", "POST", "/search", {"query": "walk", "kk": 3}, 422),
    ("malformed JSON", "POST", "/search", b'{"query": "walk",', 400),
    ("JSON not an object", "POST", "/search", b"[1, 2]", 422),
    ("empty batch", "POST", "/search/batch", {"queries": []}, 422),
    ("blank query in batch", "POST", "/search/batch", {"queries": ["ok", " "]}, 422),
    ("wrong keypoint shape", "POST", "/search/by-example", {"keypoints": [[[1, 2, 3]] * 5]}, 422),
    ("ragged keypoints", "POST", "/search/by-example", {"keypoints": [[[1, 2, 3]], [[1, 2]]]}, 422),
    ("too few frames", "POST", "/search/by-example", {"keypoints": [[[1, 2, 0.5]] * 18] * 3}, 422),
    ("NaN keypoints", "POST", "/search/by-example", NAN_BODY.encode(), 422),
    ("keypoints and id", "POST", "/search/by-example", {"id": "x", "keypoints": [[[1]]]}, 422),
    ("neither keypoints nor id", "POST", "/search/by-example", {"k": 3}, 422),
    ("unknown example id", "POST", "/search/by-example", {"id": "no_such_walk"}, 404),
    ("path-like example id", "POST", "/search/by-example", {"id": "../../etc/passwd"}, 422),
    ("no labels", "POST", "/classify", {"keypoints": [[[1, 2, 0.5]] * 18] * 10, "labels": []}, 422),
    ("unknown sequence id", "GET", "/sequences/no_such_walk", None, 404),
    ("path-like sequence id", "GET", "/sequences/..%2F..%2Fetc%2Fpasswd", None, 404),
    ("dot-dot sequence id", "GET", "/sequences/..secret", None, 422),
    ("hidden-file sequence id", "GET", "/sequences/.bashrc", None, 422),
    ("unknown route", "GET", "/nope", None, 404),
    ("wrong method", "DELETE", "/search", None, 405),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_is_a_4xx_with_a_detail(client, method, url, body, status):
    kwargs = {}
    if isinstance(body, bytes):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    r = client.request(method, url, **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail


def test_details_say_what_is_wrong(client):
    assert "whitespace" in client.get("/search?q=%20").json()["detail"]
    assert "1000" in client.get("/search", params={"q": "a" * 1001}).json()["detail"]
    assert "between 1 and 50" in client.get("/search?q=a&k=51").json()["detail"]
    r = client.post("/search", json={"query": "a", "filters": {"colour": "red"}})
    assert "colour" in r.json()["detail"] and "view" in r.json()["detail"]
    r = client.post("/search/by-example", content=NAN_BODY, headers={"content-type": "x/json"})
    assert r.status_code in (400, 415, 422)
    r = client.post(
        "/search/by-example", content=NAN_BODY, headers={"content-type": "application/json"}
    )
    assert "NaN" in r.json()["detail"]
    r = client.post("/search/by-example", json={"keypoints": [[[1, 2, 3]] * 5] * 10})
    assert "shape" in r.json()["detail"]


def test_body_over_one_mebibyte_is_refused(client):
    big = json.dumps({"query": "walk", "pad": "x" * (1 << 20)}).encode()
    r = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(20):
            yield b" " * 65536

    r = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_the_service_still_answers_after_bad_input(client):
    assert client.get("/search", params={"q": QUERY, "k": 2}).status_code == 200


# --- metrics -----------------------------------------------------------------------------


def test_metrics_are_prometheus_text(client):
    first = client.get("/search", params={"q": QUERY + " metrics", "k": 3}).json()
    again = client.get("/search", params={"q": QUERY + " metrics", "k": 3}).json()  # cached
    assert again["results"] == first["results"]
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    requests = families["gaitsearch_http_requests"]
    searched = [
        s
        for s in requests.samples
        if s.labels.get("route") == "/search" and s.labels.get("status") == "200"
    ]
    assert searched and sum(s.value for s in searched) >= 2
    assert "gaitsearch_http_request_duration_seconds" in families
    assert families["gaitsearch_index_sequences"].samples[0].value == 60
    version = families["gaitsearch_index_version_info"].samples[0]
    assert version.labels["version"] == "v0001" and version.value == 1
    assert families["gaitsearch_query_cache_misses"].samples[0].value >= 1
    outcomes = {s.labels["outcome"]: s.value for s in families["gaitsearch_result_cache"].samples}
    assert outcomes.get("hit", 0) >= 1 and outcomes.get("miss", 0) >= 1


# --- admin -------------------------------------------------------------------------------


def test_admin_reload_needs_the_bearer_token(client):
    r = client.post("/admin/reload")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.post("/admin/reload", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = client.post("/admin/reload", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "wrong" in r.json()["detail"]
    r = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert r.json()["version"] == "v0001" and r.json()["changed"] is False


def test_admin_token_is_compared_in_constant_time(client, monkeypatch):
    import hmac

    from gaitsearch.service import deps

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    client.post("/admin/reload", headers={"Authorization": "Bearer wrong"})
    assert calls == [(b"wrong", TOKEN.encode())]


def test_admin_is_disabled_without_a_token(service_index, text_encoder):  # noqa: F811
    with TestClient(service_index.app(text_encoder, admin_token=None)) as c:
        r = c.post("/admin/reload", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "disabled" in r.json()["detail"]


def test_cors_allows_only_the_configured_origins(service_index, text_encoder):  # noqa: F811
    app = service_index.app(text_encoder, allowed_origins=["https://gait.example"])
    with TestClient(app) as c:
        ok = c.get("/healthz", headers={"Origin": "https://gait.example"})
        assert ok.headers["access-control-allow-origin"] == "https://gait.example"
        other = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_openapi_states_the_configured_limits(client):
    doc = client.get("/openapi.json").json()
    k_param = next(p for p in doc["paths"]["/search"]["get"]["parameters"] if p["name"] == "k")
    assert k_param["schema"]["maximum"] == 50  # max_k of this app
    assert doc["components"]["schemas"]["SearchRequest"]["properties"]["k"]["maximum"] == 50
    q = doc["components"]["schemas"]["SearchRequest"]["properties"]["query"]
    assert q["maxLength"] == 1000 and q["minLength"] == 1
