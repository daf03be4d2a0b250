"""The static (model2vec) query encoder and a lean checkpoint derived from it, end to end.

The static table here is random (the packaged MiniLM's tokenizer, 32-d vectors): these are
plumbing tests (offline loading, fingerprint, the derivation, serving); the distilled table's
quality is measured by ``gaitsearch eval`` (docs/model.md, "A lean query encoder")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import build_test_index, write_gallery


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gaitsearch.model.static_encoder import write_static
    from gaitsearch.model.text_encoder import resolve_text_encoder

    tokenizer = Path(resolve_text_encoder("all-MiniLM-L6-v2")) / "tokenizer.json"
    vocab = len(json.loads(tokenizer.read_text())["model"]["vocab"])
    table = np.random.default_rng(0).normal(size=(vocab, 32)).astype(np.float32)
    return write_static(tmp_path_factory.mktemp("static") / "m2v", table, tokenizer)


def test_static_encoder_loads_offline_and_is_fingerprinted(static_dir, monkeypatch):
    from gaitsearch.model.static_encoder import StaticTextEncoder, is_static_dir
    from gaitsearch.model.text_encoder import load_text_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_static_dir(static_dir)
    enc = load_text_encoder(str(static_dir))
    assert isinstance(enc, StaticTextEncoder) and enc.static
    assert enc.dim == 32 and enc.pooling == "static-mean"
    assert len(enc.fingerprint) == 16
    assert StaticTextEncoder(str(static_dir)).fingerprint == enc.fingerprint  # stable
    vecs = enc.encode(["an old man with a cane", "woman in heels walking briskly", ""])
    assert vecs.dtype == np.float32 and vecs.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vecs[:2], axis=1), 1.0, rtol=1e-5)
    assert not vecs[2].any()  # no tokens: a zero vector, not NaN
    np.testing.assert_array_equal(enc.encode_cached(["an old man with a cane"])[0], vecs[0])
    # Another table is another encoder.
    from gaitsearch.model.static_encoder import write_static

    other = write_static(
        static_dir.parent / "other",
        np.random.default_rng(1).normal(size=(enc._table.shape[0], 32)),
        static_dir / "tokenizer.json",
    )
    assert StaticTextEncoder(str(other)).fingerprint != enc.fingerprint


def test_static_encoder_is_its_own_query_path(static_dir):
    from gaitsearch.model.text_encoder import load_text_encoder
    from gaitsearch.service.query_encoder import build_query_encoder

    enc = load_text_encoder(str(static_dir))
    lean = build_query_encoder(enc, "onnx")
    assert lean.backend == "static"
    np.testing.assert_array_equal(lean.encode(["a child running"]), enc.encode(["a child running"]))


def test_a_recipe_name_without_model2vec_or_cache_says_how_to_build_it(tmp_path, monkeypatch):
    from gaitsearch.model.static_encoder import LEAN_TEXT_ENCODER, static_location
    from gaitsearch.model.text_encoder import TextEncoderError

    monkeypatch.setenv("GAITSEARCH_CACHE_DIR", str(tmp_path))
    with pytest.raises(TextEncoderError, match="not built yet"):
        static_location(LEAN_TEXT_ENCODER, build=False)


@pytest.fixture
def small_fit(monkeypatch):
    """Fewer fit and validation texts and a coarser calibration grid: the derivation's
    plumbing in seconds (the real sizes run in ``gaitsearch lean build``)."""
    import functools

    from gaitsearch.model import understanding as und

    monkeypatch.setattr(
        und, "training_texts", functools.partial(und.training_texts, n_walkers=150, n_negatives=400)
    )
    monkeypatch.setattr(
        und, "validation_texts",
        functools.partial(und.validation_texts, n_queries=150, n_negatives=150),
    )  # fmt: skip
    monkeypatch.setattr(und, "GROUNDING_WEIGHTS", (0.0, 10.0))


def test_lean_checkpoint_serves_a_query_end_to_end(static_dir, small_fit, tmp_path):
    from conftest import save_tiny_checkpoint
    from gaitsearch.index.loaded_index import load_index
    from gaitsearch.index.retriever import Retriever, RetrieverError
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.lean import derive_lean_checkpoint
    from gaitsearch.model.static_encoder import write_static
    from gaitsearch.model.text_encoder import load_text_encoder
    from gaitsearch.service.app import create_app
    from gaitsearch.service.settings import Settings

    # The source: an attribute-space checkpoint on another (16-d) static table, so that the
    # test needs no transformer; the lean checkpoint moves it to the 32-d one.
    vocab = load_text_encoder(str(static_dir))._table.shape[0]
    table = np.random.default_rng(2).normal(size=(vocab, 16))
    first = write_static(tmp_path / "first", table, static_dir / "tokenizer.json")
    source = save_tiny_checkpoint(
        tmp_path / "src", load_text_encoder(str(first)), 0, space="attributes"
    )
    summary = derive_lean_checkpoint(
        tmp_path / "lean", source, str(static_dir), head_steps=40, fit_steps=40,
        cache=tmp_path / "cache.sqlite", log=lambda m: None,
    )  # fmt: skip
    lean = load_checkpoint(tmp_path / "lean")
    assert summary["fingerprint"] == lean.fingerprint != load_checkpoint(source).fingerprint
    assert lean.config.text_encoder.name == str(static_dir)
    assert lean.config.encoder.text_dim == 32 and lean.search_space.text_dim == 32
    assert lean.config.understanding and "threshold" in lean.config.understanding
    val = lean.config.understanding["validation"]  # the reading's rule only refuses more
    assert val["as_read"]["walking_grounded"] <= val["walking_grounded"] + 1e-9
    assert val["as_read"]["negatives_not_grounded"] >= val["negatives_not_grounded"] - 1e-9
    assert lean.config.training["lean"]["source"]["fingerprint"] == summary["source"]["fingerprint"]

    gallery = write_gallery(tmp_path / "gallery", count=20)
    build_test_index(gallery, tmp_path / "src_index", source)
    build_test_index(gallery, tmp_path / "index", tmp_path / "lean")
    # The source checkpoint's index is refused by the lean one (another fingerprint).
    with pytest.raises(RetrieverError):
        Retriever.open(tmp_path / "src_index", tmp_path / "lean")
    index = load_index(tmp_path / "index")
    assert index.dim == load_index(tmp_path / "src_index").dim  # same walk vectors' width

    settings = Settings(index_dir=tmp_path / "index", checkpoint=tmp_path / "lean")
    with TestClient(create_app(settings)) as client:
        answer = client.get("/search", params={"q": "woman in heels walking briskly", "k": 3})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "understood" in body and isinstance(body["results"], list)
        assert client.app.state.service.extras["encoder_backend"] == "static"
