"""Load benchmark of the search service on loopback: the fast path against a naive baseline.

Each configuration runs as a real server process (uvicorn, one worker) on 127.0.0.1: the
shipped ``gaitsearch serve``, or ``benchmarks/baselines.py serve`` for the configurations
that switch off what the shipped service always does (micro-batching, search batching, the
FAISS search: those switches are benchmark baselines injected into the app factory, not
settings); this process is the client (httpx, asyncio), so server and client share the
machine's cores the way a single-box deployment would. Configurations, each adding one idea:

  naive      torch encoder, no cache, no micro-batching, exact numpy search (the baseline)
  +faiss     the index's own FAISS search instead of numpy
  +batching  concurrent queries merged into one encoder call, and their searches into one
             index call
  +onnx      ONNX Runtime text encoder, fused transformer kernels (cosine to torch >= 0.999)
  +bf16      torch with bfloat16 linear layers (AMX) instead of ONNX (cosine >= 0.999); an
             ablation, not part of ``fast``
  +query-cache  LRU of query embeddings
  fast       + LRU of finished result lists (everything on: the shipped defaults)
  fast-unbatched-search  fast with every search its own index call (ablation)
  +int8, fast-int8   the +onnx step and fast with the opt-in int8 query encoder

Workloads: ``mixed`` = 70% of requests from 40 popular queries (repeats; the cache is warmed
with them first), 30% never-seen queries; ``unique`` = every query new. Each (config,
workload, concurrency) point runs for ``--seconds``. Prints JSON + a markdown table.

    python benchmarks/load.py --index-dir /work/bench/idx217k
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np

DEFAULT_INDEX = Path("/work/bench/idx217k")
NO_CACHE = {"GAITSEARCH_QUERY_CACHE_SIZE": "0", "GAITSEARCH_RESULT_CACHE_SIZE": "0"}
# Keys starting with "--" are flags of benchmarks/baselines.py serve; the rest are settings.
UNBATCHED = {"--no-micro-batching": "", "--no-search-batching": ""}
CONFIGS: dict[str, dict[str, str]] = {
    "naive": {
        "GAITSEARCH_ENCODER_BACKEND": "torch",
        **NO_CACHE,
        **UNBATCHED,
        "--exact-search": "",
    },
    "+faiss": {"GAITSEARCH_ENCODER_BACKEND": "torch", **NO_CACHE, **UNBATCHED},
    "+batching": {"GAITSEARCH_ENCODER_BACKEND": "torch", **NO_CACHE},
    "+onnx": {"GAITSEARCH_ENCODER_BACKEND": "onnx", **NO_CACHE},
    "+bf16": {"GAITSEARCH_ENCODER_BACKEND": "torch-bf16", **NO_CACHE},
    "+query-cache": {"GAITSEARCH_ENCODER_BACKEND": "onnx", "GAITSEARCH_RESULT_CACHE_SIZE": "0"},
    "fast": {},
    # Ablation: the fast path with FAISS answering every query (no column search).
    "fast-faiss-only": {"GAITSEARCH_COLUMN_SEARCH": "0"},
    # Ablation: the fast path with each search its own index call.
    "fast-unbatched-search": {"--no-search-batching": ""},
    # The int8 query encoder (opt-in): the +onnx step and the full fast path with it.
    "+int8": {"GAITSEARCH_ENCODER_BACKEND": "onnx-int8", **NO_CACHE},
    "fast-int8": {"GAITSEARCH_ENCODER_BACKEND": "onnx-int8"},
}
POPULAR_SHARE = 0.7

AGES = ["young", "old", "elderly", "middle-aged", "teenage", "little", "grown-up", "adult"]
PEOPLE = ["woman", "man", "person", "girl", "boy", "lady", "guy", "child"]
GAITS = [
    "walking briskly", "strolling slowly", "limping", "walking with a cane", "running",
    "walking tiredly", "striding confidently", "shuffling", "walking at a normal pace",
    "hurrying",
]  # fmt: skip
EXTRAS = [
    "in heels", "in boots", "carrying a suitcase", "with a backpack", "texting on a phone",
    "with hands in pockets", "holding a handbag", "on a phone call", "in flat shoes",
    "with a heavy build", "who looks tired", "",
]  # fmt: skip
VIEWS = ["seen from the side", "from the front", "from behind", "at an angle", ""]


def query_stream(seed: int) -> tuple[list[str], itertools.count, list[str]]:
    """40 popular queries and a shuffled list of distinct never-repeated ones."""
    rng = random.Random(seed)
    combos = [
        " ".join(w for w in (f"{a} {p}", g, e, v) if w)
        for a, p, g, e, v in itertools.product(AGES, PEOPLE, GAITS, EXTRAS, VIEWS)
    ]
    rng.shuffle(combos)
    popular, unique = combos[:40], combos[40:]
    return popular, itertools.count(), unique


class Workload:
    """Requests of one measured point. ``stream`` is shared by every point against the same
    server, so a "never-seen" query really was never sent to that server before."""

    def __init__(self, kind: str, seed: int, stream: tuple) -> None:
        self.kind = kind
        self.popular, self._next, self._unique = stream
        self.rng = random.Random(seed + 1)

    def next(self) -> str:
        if self.kind == "mixed" and self.rng.random() < POPULAR_SHARE:
            return self.rng.choice(self.popular)
        i = next(self._next)
        if i >= len(self._unique):
            raise RuntimeError("ran out of distinct queries; lower --seconds")
        return self._unique[i]


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    httpx's AsyncClient costs about as much CPU per request as the server does; on a 2-core
    box it would measure the client. This one only writes a GET and reads Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_level(url: str, workload: Workload, concurrency: int, seconds: float) -> dict:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        conn = Connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                target = "/search?" + urlencode({"q": workload.next(), "k": 10})
                start = time.perf_counter()
                try:
                    status, _ = await conn.get(target)
                    ok = status == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    await conn.close()
                    conn = Connection(host, int(port))
                latencies.append(time.perf_counter() - start)
                if not ok:
                    errors += 1
        finally:
            await conn.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    lat = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


async def fairness(url: str, seconds: float, batch_clients: int = 6) -> dict:
    """Single-search p50 idle, then under batch load (issue R item 7): ``batch_clients``
    loop on /search/batch with 64 distinct 1000-character queries, k=100, while one client
    keeps sending never-seen single searches. Batches past the heavy budget get 429."""
    idle = await run_level(url, Workload("unique", seed=101, stream=query_stream(7)), 1, seconds)
    stop = time.perf_counter() + seconds + 1.0
    statuses: dict[str, int] = {}

    async def batch_loop(worker: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            n = 0
            while time.perf_counter() < stop:
                queries = [
                    (f"walker {worker}-{n}-{i} " + "slowly limping with a heavy bag " * 40)[:1000]
                    for i in range(64)
                ]
                n += 1
                try:
                    r = await client.post("/search/batch", json={"queries": queries, "k": 100})
                    key = str(r.status_code)
                except httpx.HTTPError:
                    key = "error"
                statuses[key] = statuses.get(key, 0) + 1
                if key == "429":
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    load = [asyncio.create_task(batch_loop(w)) for w in range(batch_clients)]
    await asyncio.sleep(1.0)  # let the batches fill the encoder queue first
    busy = await run_level(url, Workload("unique", seed=202, stream=query_stream(8)), 1, seconds)
    await asyncio.gather(*load)
    return {
        "single_p50_ms_idle": idle["p50_ms"],
        "single_p50_ms_under_batch_load": busy["p50_ms"],
        "single_p99_ms_under_batch_load": busy["p99_ms"],
        "batch_clients": batch_clients,
        "batch_statuses": statuses,
    }


def start_server(
    index_dir: Path, checkpoint: Path | None, env_overrides: dict[str, str], port: int
):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "GAITSEARCH_LOG_LEVEL": "warning",
        **{k: v for k, v in env_overrides.items() if not k.startswith("--")},
    }
    flags = [k for k in env_overrides if k.startswith("--")]
    program = (
        [str(Path(__file__).with_name("baselines.py"))]
        if flags
        else ["-m", "gaitsearch.service.cli"]
    )
    cmd = [
        sys.executable, *program, "serve",
        "--index-dir", str(index_dir), "--port", str(port), *flags,
    ]  # fmt: skip
    if checkpoint:
        cmd += ["--checkpoint", str(checkpoint)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError("server did not become ready in 600 s")


def server_memory(pid: int) -> dict[str, float] | None:
    """The server process's resident memory now and at its peak (``VmRSS``/``VmHWM``, MiB),
    with its child processes' current RSS added; None where /proc is not there."""

    def status(p: int) -> dict[str, float]:
        out = {}
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
        return out

    try:
        own = status(pid)
        children = 0.0
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                children += status(int(child)).get("VmRSS", 0.0)
    except (OSError, ValueError):
        return None
    return {
        "rss_mb": round(own.get("VmRSS", 0.0) + children, 1),
        "peak_rss_mb": round(own.get("VmHWM", 0.0), 1),
    }


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_index(index_dir: Path, fallback: Path, count: int, checkpoint: Path | None) -> tuple:
    """Use ``index_dir`` if it holds a published index, else build a smaller one (and say so)."""
    from gaitsearch.index.loaded_index import current_version

    if current_version(index_dir) is not None:
        return index_dir, None
    index = fallback / "index"
    if current_version(index) is None:
        from gaitsearch.index.build import build_index
        from gaitsearch.model.synth import synthesize_gallery

        gallery = fallback / "gallery"
        if not (gallery / "metadata.jsonl").is_file():
            synthesize_gallery(gallery, count=count, seed=11)
        build_index(gallery, index, checkpoint, progress=True)
    from gaitsearch.index.loaded_index import load_index

    built = load_index(index)
    note = (
        f"{index_dir} has no published index, so this run used a smaller fallback index of "
        f"{built.count} synthetic sequences in {index}"
    )
    built.close()
    print(f"NOTE: {note}", file=sys.stderr)
    return index, note


def checkpoint_for(index_dir: Path, given: Path | None) -> Path | None:
    if given:
        return given
    from gaitsearch.index.loaded_index import current_version
    from gaitsearch.index.manifest import IndexManifest

    version = current_version(index_dir)
    manifest = IndexManifest.read(index_dir / "versions" / str(version))
    path = manifest.checkpoint_path
    return Path(path) if path and Path(path).exists() else None


def markdown(rows: list[dict]) -> str:
    head = "| config | workload | concurrency | requests | req/s | p50 ms | p99 ms | errors |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['workload']} | {r['concurrency']} | {r['requests']} | "
            f"{r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index-dir", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument(
        "--fallback-dir", type=Path, default=Path(tempfile.gettempdir()) / "gaitsearch-load"
    )
    parser.add_argument("--fallback-count", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=6.0, help="Per measured point.")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="Comma-separated subset.")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--workloads", default="mixed,unique")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/load.json"))
    parser.add_argument(
        "--fairness-seconds",
        type=float,
        default=6.0,
        help="Per phase of the fairness point (fast config; 0 = skip).",
    )
    args = parser.parse_args()

    index_dir, note = ensure_index(
        args.index_dir, args.fallback_dir, args.fallback_count, args.checkpoint
    )
    checkpoint = checkpoint_for(index_dir, args.checkpoint)
    from gaitsearch.index.loaded_index import load_index

    probe = load_index(index_dir)
    info = {"count": probe.count, "kind": probe.kind, "version": probe.version}
    probe.close()
    levels = [int(x) for x in args.levels.split(",")]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    fair: dict[str, Any] | None = None
    memory: dict[str, Any] = {}
    for name in args.configs.split(","):
        proc, url = start_server(index_dir, checkpoint, CONFIGS[name], free_port())
        stream = query_stream(seed=0)  # one per server: never-seen queries are never reused
        try:
            for kind in args.workloads.split(","):
                for level in levels:
                    workload = Workload(kind, seed=level, stream=stream)
                    if kind == "mixed":  # steady state: popular queries were asked before
                        asyncio.run(_warm(url, workload.popular))
                    else:
                        asyncio.run(_warm(url, [f"warm up query {i}" for i in range(8)]))
                    row = asyncio.run(run_level(url, workload, level, args.seconds))
                    row.update(config=name, workload=kind)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            if name == "fast" and args.fairness_seconds > 0:
                fair = asyncio.run(fairness(url, args.fairness_seconds))
                print(json.dumps({"fairness": fair}), file=sys.stderr, flush=True)
            memory[name] = server_memory(proc.pid)
            print(json.dumps({"server_memory": {name: memory[name]}}), file=sys.stderr)
        finally:
            stop_server(proc)
    summary = _summary(rows)
    doc = {
        "index": {"dir": str(index_dir), **info},
        "note": note,
        "cpus": os.cpu_count(),
        # Other work on the machine skews every number; recorded so readers can judge.
        "loadavg_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        "seconds_per_point": args.seconds,
        "workloads": {
            "mixed": f"{int(POPULAR_SHARE * 100)}% from 40 popular queries (cache warmed), "
            f"{int((1 - POPULAR_SHARE) * 100)}% never-seen queries",
            "unique": "every query never seen before",
        },
        "rows": rows,
        "fairness": fair,
        # The server process after its points (and its peak), MiB: the serving RSS.
        "server_memory": memory,
        "summary": summary,
    }
    if fair is not None:
        summary["lines"].append(
            f"fairness: single-search p50 {fair['single_p50_ms_idle']} ms idle, "
            f"{fair['single_p50_ms_under_batch_load']} ms while {fair['batch_clients']} clients "
            f"loop on /search/batch (64 x 1000 chars, k=100; answers {fair['batch_statuses']})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    print()
    print(
        f"Index: {info['count']} sequences, {info['kind']} ({index_dir})"
        + (f". {note}" if note else "")
    )
    print(
        f"{os.cpu_count()} CPUs; 1-minute load average {doc['loadavg_1min']['start']} at start, "
        f"{doc['loadavg_1min']['end']} at end (other processes share the machine)"
    )
    print()
    print(markdown(rows))
    print()
    for line in summary["lines"]:
        print(f"- {line}")


async def _warm(url: str, queries: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for q in queries:
            await client.get("/search", params={"q": q, "k": 10})


def _summary(rows: list[dict]) -> dict:
    def pick(config: str, workload: str, level: int) -> dict | None:
        for r in rows:
            if (r["config"], r["workload"], r["concurrency"]) == (config, workload, level):
                return r
        return None

    lines = []
    out: dict[str, Any] = {}
    for workload in ("mixed", "unique"):
        fast1, fast32 = pick("fast", workload, 1), pick("fast", workload, 32)
        naive32 = pick("naive", workload, 32)
        if fast1:
            ok = fast1["p50_ms"] <= 10
            lines.append(
                f"{workload}: p50 at concurrency 1 = {fast1['p50_ms']} ms "
                f"(target <= 10 ms: {'met' if ok else 'NOT met'})"
            )
        if fast32 and naive32:
            ratio = round(fast32["rps"] / max(naive32["rps"], 1e-9), 2)
            out[f"{workload}_throughput_ratio_c32"] = ratio
            lines.append(
                f"{workload}: concurrency 32 = {fast32['rps']} req/s vs naive {naive32['rps']} "
                f"req/s = {ratio}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'}); "
                f"p99 {fast32['p99_ms']} ms (target <= 100 ms: "
                f"{'met' if fast32['p99_ms'] <= 100 else 'NOT met'})"
            )
    out["lines"] = lines
    return out


if __name__ == "__main__":
    main()
