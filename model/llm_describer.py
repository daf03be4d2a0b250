"""LLM describer: attribute sets described by any OpenAI-compatible chat endpoint.

As in the paper, an instruction-tuned LLM is asked to describe the person's walk and
appearance from their attributes; we ask for several varied sentences in one call.
Configuration comes from the environment (or arguments): ``GAITSEARCH_LLM_BASE_URL``
(e.g. ``http://localhost:8000/v1``), ``GAITSEARCH_LLM_MODEL``, ``GAITSEARCH_LLM_API_KEY``
(optional), ``GAITSEARCH_LLM_CACHE`` (SQLite file; default
``~/.cache/gaitsearch/llm_descriptions.sqlite``). Calls have timeouts and are retried with
exponential backoff on timeouts, connection errors, 429 and 5xx; answers are cached on disk
keyed by model + prompt, so a re-run never calls the endpoint again for the same prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

SYSTEM_PROMPT = (
    "You write short, natural descriptions of people walking in surveillance video, for a "
    "text-to-gait search engine. Describe how the person walks (speed, posture, arm swing, "
    "gait) and what they look like, using only the attributes given. Do not invent names, "
    "clothing colours or places."
)

_READABLE = {
    "phone_call": "talking on the phone",
    "texting": "texting on a phone",
    "hands_in_pockets": "hands in pockets",
    "suitcase": "pulling a suitcase",
    "limp": "walks with a limp",
    "cane": "walks with a cane",
    "heels": "high heels",
    "running": "running",
}
_GROUPS = ("gender", "age", "build", "pace", "footwear", "carrying", "impairment", "energy", "view")


class LLMError(RuntimeError):
    """The LLM endpoint could not be used; the message says why."""


class LLMConfig(BaseModel):
    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    backoff_s: float = Field(default=1.0, ge=0)
    temperature: float = Field(default=0.8, ge=0, le=2)
    cache_path: Path = Path("~/.cache/gaitsearch/llm_descriptions.sqlite")

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMConfig:
        env = os.environ
        values: dict[str, Any] = {
            "base_url": env.get("GAITSEARCH_LLM_BASE_URL"),
            "model": env.get("GAITSEARCH_LLM_MODEL"),
            "api_key": env.get("GAITSEARCH_LLM_API_KEY") or None,
        }
        if env.get("GAITSEARCH_LLM_CACHE"):
            values["cache_path"] = Path(env["GAITSEARCH_LLM_CACHE"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        missing = [k for k in ("base_url", "model") if not values.get(k)]
        if missing:
            names = ", ".join(f"GAITSEARCH_LLM_{k.upper()}" for k in missing)
            raise LLMError(f"LLM describer not configured: set {names}")
        return cls(**values)


def build_prompt(attributes: Mapping[str, Any], n: int) -> str:
    """The user message: the attributes as a list, and the output format."""
    lines = []
    for group in _GROUPS:
        if group in attributes:
            value = str(attributes[group])
            lines.append(f"- {group}: {_READABLE.get(value, value.replace('_', ' '))}")
    return (
        "Attributes of the walking person:\n"
        + "\n".join(lines)
        + f"\n\nWrite {n} different one-sentence descriptions of this person's walk and "
        "appearance, each mentioning a different selection of the attributes and worded "
        "differently. Answer with a JSON array of strings only."
    )


def parse_descriptions(text: str, n: int) -> list[str]:
    """Sentences from a JSON array answer, or from numbered/bulleted lines as a fallback."""
    text = text.strip()
    fenced = re.search(r"\[.*\]", text, flags=re.S)
    items: list[str] = []
    if fenced:
        try:
            data = json.loads(fenced.group(0))
            items = [str(x).strip() for x in data if isinstance(x, str | int | float)]
        except json.JSONDecodeError:
            items = []
    if not items:
        for line in text.splitlines():
            line = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", line).strip().strip('"')
            if len(line) > 3:
                items.append(line)
    out: list[str] = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out[:n]


class _Cache:
    """A tiny SQLite key-value store, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path = path.expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()

    def get(self, key: str) -> list[str] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: list[str]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )
            self._db.commit()

    def close(self) -> None:
        self._db.close()


class LLMDescriber:
    """Describe attribute sets through ``POST {base_url}/chat/completions``."""

    def __init__(
        self,
        config: LLMConfig,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._client = client or httpx.Client(timeout=httpx.Timeout(config.timeout_s))
        self._cache = _Cache(config.cache_path)
        self._sleep = sleep
        self.calls = 0  # HTTP requests made (for tests and logs)
        self.cache_hits = 0

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMDescriber:
        return cls(LLMConfig.from_env(**overrides))

    def cache_key(self, prompt: str) -> str:
        raw = json.dumps([self.config.model, SYSTEM_PROMPT, prompt, self.config.temperature])
        return hashlib.sha256(raw.encode()).hexdigest()

    def describe(self, attributes: Mapping[str, Any], n: int, key: str = "") -> list[str]:
        """``n`` descriptions (fewer if the model gave fewer), cached by model + prompt."""
        prompt = build_prompt(attributes, n)
        cache_key = self.cache_key(prompt)
        cached = self._cache.get(cache_key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        answer = self._chat(prompt)
        texts = parse_descriptions(answer, n)
        if not texts:
            raise LLMError(f"{self._url()}: the model's answer held no descriptions")
        self._cache.put(cache_key, texts)
        return texts

    def _url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def _chat(self, prompt: str) -> str:
        body = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ],
            "temperature": self.config.temperature,
        }
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        last = "no attempt made"
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self._sleep(self.config.backoff_s * 2 ** (attempt - 1))
            self.calls += 1
            try:
                resp = self._client.post(self._url(), json=body, headers=headers)
            except httpx.TimeoutException:
                last = f"timed out after {self.config.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"connection failed ({exc.__class__.__name__}: {exc})"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise LLMError(f"{self._url()}: HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                return str(resp.json()["choices"][0]["message"]["content"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise LLMError(f"{self._url()}: not a chat completion answer ({exc})") from exc
        raise LLMError(f"{self._url()}: {last} (after {self.config.max_retries + 1} attempts)")

    def close(self) -> None:
        self._client.close()
        self._cache.close()
