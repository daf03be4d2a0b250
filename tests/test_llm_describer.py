"""The LLM describer against a fake OpenAI-compatible endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gaitsearch.model.describe import describe_gallery
from gaitsearch.model.gallery import read_metadata
from gaitsearch.model.llm_describer import (
    LLMConfig,
    LLMDescriber,
    LLMError,
    build_prompt,
    parse_descriptions,
)

ATTRS = {"gender": "female", "pace": "brisk", "footwear": "heels", "view": "side"}


class FakeLLM:
    """Answers chat completions; can be told to fail the next few requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next = 0
        self.fail_status = 500
        self.auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.auth.append(self.headers.get("Authorization"))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                elif fake.fail_next > 0:
                    fake.fail_next -= 1
                    self._send(fake.fail_status, {"error": "try again"})
                else:
                    user = body["messages"][-1]["content"]
                    answer = json.dumps(
                        [
                            f"A woman walks briskly in high heels ({i}, {len(user)})."
                            for i in range(3)
                        ]
                    )
                    self._send(200, {"choices": [{"message": {"content": answer}}]})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.close()


def _describer(fake: FakeLLM, tmp_path: Path, **kw: object) -> tuple[LLMDescriber, list[float]]:
    sleeps: list[float] = []
    config = LLMConfig(
        base_url=fake.url,
        model="fake-7b",
        api_key="secret",
        timeout_s=5,
        cache_path=tmp_path / "cache.sqlite",
        backoff_s=0.01,
        **kw,
    )
    return LLMDescriber(config, sleep=sleeps.append), sleeps


def test_describes_through_the_endpoint(fake_llm: FakeLLM, tmp_path: Path) -> None:
    describer, _ = _describer(fake_llm, tmp_path)
    texts = describer.describe(ATTRS, 3)
    assert len(texts) == 3 and all("high heels" in t for t in texts)
    request = fake_llm.requests[0]
    assert request["model"] == "fake-7b"
    prompt = request["messages"][-1]["content"]
    assert "high heels" in prompt and "brisk" in prompt and "3 different" in prompt
    assert fake_llm.auth[0] == "Bearer secret"


def test_retries_with_backoff_then_succeeds(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail_next = 2
    describer, sleeps = _describer(fake_llm, tmp_path)
    texts = describer.describe(ATTRS, 3)
    assert len(texts) == 3
    assert len(fake_llm.requests) == 3 and describer.calls == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff


def test_gives_up_after_max_retries_with_clear_error(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail_next = 10
    fake_llm.fail_status = 503
    describer, _ = _describer(fake_llm, tmp_path, max_retries=2)
    with pytest.raises(LLMError, match="HTTP 503.*3 attempts"):
        describer.describe(ATTRS, 3)
    assert len(fake_llm.requests) == 3


def test_client_errors_are_not_retried(fake_llm: FakeLLM, tmp_path: Path) -> None:
    fake_llm.fail_next = 1
    fake_llm.fail_status = 401
    describer, _ = _describer(fake_llm, tmp_path)
    with pytest.raises(LLMError, match="HTTP 401"):
        describer.describe(ATTRS, 3)
    assert len(fake_llm.requests) == 1


def test_cache_hit_makes_no_call_even_in_a_new_process(fake_llm: FakeLLM, tmp_path: Path) -> None:
    first, _ = _describer(fake_llm, tmp_path)
    texts = first.describe(ATTRS, 3)
    first.close()
    second, _ = _describer(fake_llm, tmp_path)  # same cache file, fresh describer
    assert second.describe(ATTRS, 3) == texts
    assert len(fake_llm.requests) == 1 and second.cache_hits == 1 and second.calls == 0
    # A different prompt is a miss.
    second.describe({**ATTRS, "pace": "slow"}, 3)
    assert len(fake_llm.requests) == 2


def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    config = LLMConfig(
        base_url="http://127.0.0.1:9/v1",
        model="m",
        timeout_s=1,
        max_retries=1,
        backoff_s=0,
        cache_path=tmp_path / "c.sqlite",
    )
    with pytest.raises(LLMError, match="connection failed"):
        LLMDescriber(config, sleep=lambda s: None).describe(ATTRS, 2)


def test_config_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GAITSEARCH_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("GAITSEARCH_LLM_MODEL", raising=False)
    with pytest.raises(LLMError, match="GAITSEARCH_LLM_BASE_URL"):
        LLMConfig.from_env()
    monkeypatch.setenv("GAITSEARCH_LLM_BASE_URL", "http://x/v1")
    monkeypatch.setenv("GAITSEARCH_LLM_MODEL", "qwen")
    monkeypatch.setenv("GAITSEARCH_LLM_CACHE", str(tmp_path / "c.sqlite"))
    config = LLMConfig.from_env()
    assert config.model == "qwen" and config.cache_path == tmp_path / "c.sqlite"


def test_parse_descriptions_accepts_json_or_numbered_lines() -> None:
    assert parse_descriptions('Sure!\n["a", "b", "b", "c"]', 2) == ["a", "b"]
    assert parse_descriptions("1. A man walks.\n2) A man strolls.\n- A guy.", 5) == [
        "A man walks.",
        "A man strolls.",
        "A guy.",
    ]
    assert "walks with a limp" in build_prompt({"impairment": "limp"}, 2)


def test_describe_gallery_with_llm(fake_llm: FakeLLM, random_gallery: Path, tmp_path: Path) -> None:
    describer, _ = _describer(fake_llm, tmp_path)
    n = describe_gallery(random_gallery, describer, per_sequence=3)
    records = read_metadata(random_gallery)
    assert n == len(records) == 20
    assert all(r.description and "high heels" in r.description for r in records)
    assert all(len(r.descriptions or []) == 3 for r in records)
