"""The service over a checkpoint whose search space is the attribute space: queries go
through the checkpoint's query head after the frozen text encoder (model/query_head.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import save_tiny_checkpoint
from fastapi.testclient import TestClient
from service_helpers import QUERY, ServiceIndex, build_test_index, write_gallery


@pytest.fixture(scope="module")
def attr_index(tmp_path_factory, text_encoder) -> ServiceIndex:
    root = tmp_path_factory.mktemp("attr")
    ckpt = save_tiny_checkpoint(root / "ckpt", text_encoder, seed=3, space="attributes")
    gallery = write_gallery(root / "gallery", count=40, seed=4)
    build_test_index(gallery, root / "index", ckpt)
    return ServiceIndex(gallery, root / "index", ckpt)


@pytest.fixture(scope="module")
def model(attr_index):
    from gaitsearch.model.checkpoint import load_checkpoint

    return load_checkpoint(attr_index.checkpoint)


@pytest.fixture(scope="module")
def client(attr_index, text_encoder):
    with TestClient(attr_index.app(text_encoder)) as c:
        yield c


@pytest.fixture(scope="module")
def walks(attr_index):
    from gaitsearch.model.gallery import iter_gallery

    return list(iter_gallery(attr_index.gallery))


def test_the_index_lives_in_the_attribute_space(client, model):
    from gaitsearch.model.attributes import ATTRIBUTES

    dim = sum(len(v) for v in ATTRIBUTES.values())
    assert model.space == "attributes" and model.dim == dim
    assert client.get("/index").json()["dim"] == dim


def test_search_scores_are_query_head_times_log_likelihood_ratios(
    client, model, walks, text_encoder
):
    r = client.get("/search", params={"q": QUERY, "k": 5})
    assert r.status_code == 200
    got = [(x["id"], x["score"]) for x in r.json()["results"]]
    # The same ranking computed by hand from the model (the test index is exact).
    query = model.embed_queries(text_encoder.encode([QUERY]))[0]
    vectors = model.embed_sequences([a for _, a in walks], [w.fps for w, _ in walks])
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:5]
    assert [i for i, _ in got] == [walks[i][0].id for i in order]
    assert np.allclose([s for _, s in got], scores[order], atol=1e-4)


def test_more_like_this_finds_the_example_itself_first(client, walks):
    # Cross-entropy is smallest against the example's own distribution (Gibbs' inequality).
    for record, arr in walks[:5]:
        r = client.post("/search/by-example", json={"keypoints": arr.tolist(), "k": 3})
        assert r.status_code == 200
        assert r.json()["results"][0]["id"] == record.id


def test_classify_scores_labels_in_the_same_space(client, model, walks, text_encoder):
    record, arr = walks[0]
    labels = ["running", "walking with a cane", "seen from the side"]
    r = client.post("/classify", json={"keypoints": arr.tolist(), "labels": labels})
    assert r.status_code == 200
    got = {x["label"]: x["score"] for x in r.json()["labels"]}
    from gaitsearch.model.query_pipeline import QueryPipeline

    # what `gaitsearch classify` computes
    want = dict(QueryPipeline(model, text_encoder).rank_labels(arr, record.fps, labels))
    assert np.allclose([got[label] for label in labels], [want[x] for x in labels], atol=1e-4)


def test_query_head_rejects_vectors_of_the_wrong_size(model):
    with pytest.raises(ValueError, match="reads 384-d text embeddings"):
        model.embed_queries(np.zeros((1, 7), dtype=np.float32))
