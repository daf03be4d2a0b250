"""Reindex speed and memory: local engine vs Ray (1 and 2 workers), and FAISS kinds, in one run.

Three parts, all on the same synthetic gallery (DenseGait size by default, 217,000 sequences):

1. ``engines``: ``gaitsearch index build`` as a subprocess per engine on the first
   ``--engine-count`` sequences (local = the baseline, then Ray with 1 and 2 workers);
   wall time, embedding sequences/s and peak RSS of the whole process tree (Ray's raylet and
   workers included), sampled from /proc.
2. ``full``: the complete default reindex (local engine, ``--kind auto``) of the whole gallery,
   written to ``--index-out`` (the service's load benchmark reuses it): embedding + FAISS build
   + metadata time, and peak RSS.
3. ``kinds``: every FAISS kind built over the full index's vectors: build time, recall@10
   against exact search (the baseline) on the gallery's real text queries after tuning
   ``efSearch``/``nprobe``, search latency, and size on disk.

Prints a JSON document and markdown tables; ``--out`` also writes them to files.

    python benchmarks/reindex.py                       # 217k gallery at /work/bench/g217k
    python benchmarks/reindex.py --count 20000 --data /tmp/g20k --index-out /tmp/idx20k
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DENSEGAIT_SIZE = 217_000


# -- gallery --------------------------------------------------------------------------------
def ensure_gallery(path: Path, count: int, seed: int) -> Path:
    """Use the gallery at ``path`` or generate ``count`` synthetic sequences there."""
    from gaitsearch.model.synth import synthesize_gallery

    if (path / "metadata.jsonl").is_file():
        return path
    print(f"generating {count} synthetic sequences into {path} ...", file=sys.stderr)
    synthesize_gallery(path, count=count, seed=seed)
    return path


def subset_gallery(src: Path, count: int, dest: Path) -> Path:
    """The first ``count`` sequences of ``src`` as a gallery of symlinks at ``dest``."""
    (dest / "sequences").mkdir(parents=True, exist_ok=True)
    with (src / "metadata.jsonl").open() as fin, (dest / "metadata.jsonl").open("w") as fout:
        for n, line in enumerate(fin):
            if n >= count:
                break
            fout.write(line)
            seq_id = json.loads(line)["id"]
            (dest / "sequences" / f"{seq_id}.npy").symlink_to(src / "sequences" / f"{seq_id}.npy")
    if (src / "queries.jsonl").is_file():
        shutil.copy(src / "queries.jsonl", dest / "queries.jsonl")
    return dest


def gallery_size(path: Path) -> int:
    with (path / "metadata.jsonl").open("rb") as fh:
        return sum(1 for line in fh if line.strip())


# -- process-tree memory --------------------------------------------------------------------
def _tree_rss(root: int) -> tuple[int, int]:
    """(sum, max) RSS in bytes over ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/statm") as fh:
                pages = int(fh.read().split()[1])
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * page
    total, biggest, stack = 0, 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        biggest = max(biggest, rss.get(pid, 0))
        stack.extend(children.get(pid, []))
    return total, biggest


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Run ``cmd``; wall time, CPU time and peak RSS (process tree sum and largest process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = {"tree": 0, "single": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tree, single = _tree_rss(proc.pid)
            peak["tree"] = max(peak["tree"], tree)
            peak["single"] = max(peak["single"], single)
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_max = after.ru_maxrss * 1024
    # CPU seconds of the build process and the descendants it waited for (the local
    # engine's worker processes included; Ray's raylet and workers are not its children to
    # wait for, so for Ray this undercounts): a load-independent measure of the work.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 1),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "peak_rss_tree_mb": round(peak["tree"] / 2**20),
        "peak_rss_single_mb": round(max(peak["single"], 0) / 2**20),
        "children_maxrss_mb": round(children_max / 2**20),
        "stdout": out.strip().splitlines()[-1] if out.strip() else "",
    }


def cli_build(
    data: Path, index_dir: Path, checkpoint: str | None, engine: str, workers: int | None,
    kind: str, batch_size: int, precision: str = "fp32", env: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    cmd = [
        sys.executable, "-m", "gaitsearch.service.cli", "index", "build",
        "--data", str(data), "--index-dir", str(index_dir), "--engine", engine,
        "--kind", kind, "--batch-size", str(batch_size), "--precision", precision,
    ]  # fmt: skip
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    if workers:
        cmd += ["--workers", str(workers)]
    # Outside the checkout, so that PYTHONPATH in ``env`` decides which package is imported
    # (python -m puts the working directory, with its gaitsearch/, first on sys.path).
    result = run_measured(cmd, env, cwd=Path(tempfile.gettempdir()) if env else None)
    from gaitsearch.index.loaded_index import current_version
    from gaitsearch.index.manifest import IndexManifest
    from gaitsearch.index.versions import version_path

    version = current_version(index_dir)
    assert version is not None
    manifest = IndexManifest.read(version_path(index_dir, version))
    embed_s = manifest.timings_s.get("embed", float("nan"))
    result.update(
        version=version,
        count=manifest.count,
        skipped=manifest.skipped,
        kind=manifest.kind,
        embed_s=embed_s,
        embed_seq_per_s=round(manifest.count / embed_s, 1) if embed_s else None,
        end_to_end_seq_per_s=round(manifest.count / result["wall_s"], 1),
        build_total_s=manifest.timings_s.get("total"),
        faiss_build_s=manifest.timings_s.get("faiss_build"),
        recall_at_10=manifest.recall.recall_at_10 if manifest.recall else None,
    )
    return result


_STRIP_EDITABLE = """# Written by benchmarks/reindex.py: an editable install's import finder
# would serve gaitsearch.model & co. from the checkout whatever PYTHONPATH says.
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
"""


def baseline_env(src: Path, tmp: Path) -> dict[str, str]:
    """An environment whose ``gaitsearch`` is the copy at ``src`` (a directory holding
    ``gaitsearch/`` with ``model/``, ``index/`` and ``service/`` inside), checked."""
    site = tmp / "baseline-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_STRIP_EDITABLE)
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{src.resolve()}{os.pathsep}{site}"
    probe = "import gaitsearch.model.descriptors as d; print(d.__file__)"
    where = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp, check=True,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    if not Path(where).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"error: --baseline-src {src}: gaitsearch is still imported from {where}")
    return env


def compare_baseline(sub: Path, tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Local engine, default settings, with an older package (``--baseline-src`` first on
    ``PYTHONPATH``) and with this checkout, alternating, so both see the same load."""
    out = []
    count = gallery_size(sub)
    base_env = baseline_env(args.baseline_src, tmp)
    for rnd in range(args.baseline_rounds):
        for label in ("baseline", "current"):
            env = base_env if label == "baseline" else dict(os.environ)
            res = cli_build(sub, tmp / f"idx-{label}-{rnd}", args.checkpoint, "local", None,
                            "flat", args.batch_size, "fp32", env)  # fmt: skip
            res.update(code=label, round=rnd, cpu_ms_per_walk=round(res["cpu_s"] / count * 1e3, 3))
            print(f"{label} round {rnd}: {res}", file=sys.stderr)
            out.append(res)
    return out


# -- FAISS kinds ----------------------------------------------------------------------------
def bench_kinds(index_dir: Path, data: Path, kinds: list[str], checkpoint: str | None) -> list:
    import faiss
    from gaitsearch.index.faiss_index import ExactTruth, build_faiss, recall_at_k, tune_search
    from gaitsearch.index.loaded_index import load_index
    from gaitsearch.index.recall_check import recall_queries as query_vectors
    from gaitsearch.model.checkpoint import load_checkpoint

    live = load_index(index_dir)
    _, vectors = live.all_vectors()
    model = load_checkpoint(checkpoint)
    queries, source = query_vectors(data, live._store.sample_descriptions(300), model, vectors)
    truth = ExactTruth.of(vectors, queries, 10)  # ties count as found, as the recall check does
    out = []
    for kind in kinds:
        built = build_faiss(vectors, kind)
        recall = tune_search(built, queries, truth, 10) if kind != "flat" else 1.0
        if kind == "flat":
            recall = recall_at_k(built.index, queries, truth, 10)
        timed = queries[:100]
        t = time.perf_counter()
        for q in timed:  # one query at a time, as the service sends them
            built.index.search(q[None], 10)
        per_query_ms = (time.perf_counter() - t) / len(timed) * 1000
        with tempfile.NamedTemporaryFile(suffix=".faiss") as fh:
            faiss.write_index(built.index, fh.name)
            size = os.path.getsize(fh.name)
        out.append(
            {
                "kind": kind,
                "params": built.params,
                "search_params": built.search_params,
                "build_s": round(built.seconds, 2),
                "recall_at_10": round(recall, 4),
                "query_ms": round(per_query_ms, 3),
                "size_mb": round(size / 2**20, 1),
                "queries": len(queries),
                "query_source": source,
                "n": len(vectors),
            }
        )
        print(f"kind {kind}: {out[-1]}", file=sys.stderr)
        del built
    out.append(bench_columns(vectors, queries, truth, source))
    print(f"columns: {out[-1]}", file=sys.stderr)
    live.close()
    return out


def bench_columns(vectors, queries, truth, source: str) -> dict[str, Any]:
    """The column-by-column exact search the service uses for sparse queries
    (index/column_search.py), on the same queries: its cost beside the FAISS kinds'."""
    import numpy as np
    from gaitsearch.index.column_search import ColumnSearch
    from gaitsearch.index.faiss_index import recall_at_k

    t = time.perf_counter()
    cs = ColumnSearch(vectors)
    build_s = time.perf_counter() - t
    sparse = cs.takes(queries)
    recall = recall_at_k(cs, queries, truth, 10)  # it searches as a FAISS index does
    timed = queries[:100]
    t = time.perf_counter()
    for q in timed:
        cs.search(q[None], 10)
    return {
        "kind": "columns",
        "params": {"sparse_queries": round(float(sparse.mean()), 3),
                   "mean_nonzero_dims": round(float(np.count_nonzero(queries, 1).mean()), 1)},
        "search_params": {},
        "build_s": round(build_s, 2),
        "recall_at_10": round(recall, 4),
        "query_ms": round((time.perf_counter() - t) / len(timed) * 1000, 3),
        "size_mb": round(cs.columns.nbytes / 2**20, 1),  # in memory: it is not stored
        "queries": len(queries),
        "query_source": source,
        "n": len(vectors),
    }  # fmt: skip


# -- report ---------------------------------------------------------------------------------
def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"Gallery: {doc['gallery_count']} synthetic sequences; checkpoint {doc['checkpoint']}; "
        f"{doc['cpus']} CPU cores; load average at start {doc['loadavg']}.",
        "",
    ]
    if doc.get("engines"):
        n = doc["engines"][0]["count"]
        lines += [
            f"Engines ({n} sequences, `--kind flat`; local fp32 is the baseline):",
            "",
            "| engine | workers | precision | wall s | CPU s (driver) | embed seq/s | "
            "end-to-end seq/s | vs local | peak RSS tree MiB | largest process MiB |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        base = doc["engines"][0]["embed_seq_per_s"] or 1
        for e in doc["engines"]:
            lines.append(
                f"| {e['engine']} | {e['workers'] or '-'} | {e['precision']} | {e['wall_s']} "
                f"| {e.get('cpu_s', '-')} | {e['embed_seq_per_s']} "
                f"| {e['end_to_end_seq_per_s']} | {e['embed_seq_per_s'] / base:.2f}x | "
                f"{e['peak_rss_tree_mb']} | {e['peak_rss_single_mb']} |"
            )
        lines.append("")
    if doc.get("baseline"):
        b0 = doc["baseline"][0]
        lines += [
            f"Same-session comparison ({b0['count']} sequences, local engine, default "
            "settings, `--kind flat`; runs alternate so both codes see the same load):",
            "",
            "| code | round | wall s | CPU s (tree) | CPU ms/walk | embed seq/s | load after |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for b in doc["baseline"]:
            lines.append(
                f"| {b['code']} | {b['round']} | {b['wall_s']} | {b['cpu_s']} | "
                f"{b['cpu_ms_per_walk']} | {b['embed_seq_per_s']} | {b['loadavg_1m_after']} |"
            )
        lines.append("")
    if doc.get("full"):
        f = doc["full"]
        # The targets: 217k walks in 5 min (issue F), 1M in 15 min (issue P).
        limit = 300 if f["count"] <= DENSEGAIT_SIZE else 900
        lines += [
            f"Full reindex ({f['count']} sequences, local engine, {f['precision']}, "
            f"`--kind auto` -> {f['kind']}):",
            "",
            "| wall s | CPU s | embed s | embed seq/s | FAISS build s | recall@10 | "
            "peak RSS tree MiB | target |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| {f['wall_s']} | {f.get('cpu_s', '-')} | {f['embed_s']} | {f['embed_seq_per_s']} | "
            f"{f['faiss_build_s']} | "
            f"{f['recall_at_10']} | {f['peak_rss_tree_mb']} | <= {limit} s: "
            f"{'met' if f['wall_s'] <= limit else 'missed'}; <= 3072 MiB: "
            f"{'met' if f['peak_rss_tree_mb'] <= 3072 else 'missed'} |",
            "",
        ]
    if doc.get("kinds"):
        k0 = doc["kinds"][0]
        lines += [
            f"FAISS kinds over {k0['n']} vectors ({k0['queries']} real queries from "
            f"{k0['query_source']}; exact `flat` is the baseline):",
            "",
            "| kind | params | search params | build s | recall@10 | ms/query | size MiB |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for k in doc["kinds"]:
            params = ", ".join(f"{a}={b}" for a, b in k["params"].items())
            sp = ", ".join(f"{a}={b}" for a, b in k["search_params"].items()) or "-"
            lines.append(
                f"| {k['kind']} | {params or '-'} | {sp} | {k['build_s']} | {k['recall_at_10']} "
                f"| {k['query_ms']} | {k['size_mb']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/bench/g217k"))
    parser.add_argument("--count", type=int, default=DENSEGAIT_SIZE,
                        help="sequences to generate if --data does not exist")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    parser.add_argument("--index-out", type=Path, default=Path("/work/bench/idx217k"))
    parser.add_argument("--engine-count", type=int, default=20_000,
                        help="sequences for the engine comparison (0 = skip it)")  # fmt: skip
    parser.add_argument("--kinds", default="flat,hnsw,ivfflat,ivfsq8,ivfpq",
                        help="FAISS kinds to compare ('' = skip)")  # fmt: skip
    parser.add_argument("--skip-full", action="store_true", help="reuse --index-out as is")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", default="fp32", help="precision of the full reindex")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="a copy of an older gaitsearch package (DIR/gaitsearch/...): "
                        "the local engine with it and with this checkout, alternating "
                        "--baseline-rounds times on the --engine-count subset")  # fmt: skip
    parser.add_argument("--baseline-rounds", type=int, default=2)
    parser.add_argument("--engines", default="local:fp32,local:bf16,ray1:fp32,ray2:fp32",
                        help="engine runs on the subset ('' = none)")  # fmt: skip
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="earlier JSON outputs for parts this run skips")  # fmt: skip
    args = parser.parse_args()

    data = ensure_gallery(args.data, args.count, args.seed)
    n = gallery_size(data)
    doc: dict[str, Any] = {
        "gallery": str(data),
        "gallery_count": n,
        "checkpoint": args.checkpoint or "shipped default",
        "cpus": os.cpu_count(),
        "loadavg": round(os.getloadavg()[0], 2),
        "engines": [],
    }
    with tempfile.TemporaryDirectory(prefix="reindex-bench-") as tmp:
        if args.engine_count:
            sub = data if args.engine_count >= n else subset_gallery(
                data, args.engine_count, Path(tmp) / "subset"
            )  # fmt: skip
            runs = []
            for spec in filter(None, args.engines.split(",")):
                name, precision = spec.split(":")
                engine = "ray" if name.startswith("ray") else "local"
                workers = int(name[3:]) if engine == "ray" and name[3:] else None
                runs.append((engine, workers, precision))
            for engine, workers, precision in runs:
                res = cli_build(sub, Path(tmp) / f"idx-{engine}-{workers}-{precision}",
                                args.checkpoint, engine, workers, "flat", args.batch_size,
                                precision)  # fmt: skip
                res.update(engine=engine, workers=workers, precision=precision)
                print(f"engine {engine} x{workers}: {res}", file=sys.stderr)
                doc["engines"].append(res)
            if args.baseline_src:
                doc["baseline"] = compare_baseline(sub, Path(tmp), args)
    if not args.skip_full:
        if args.index_out.exists():
            shutil.rmtree(args.index_out)
        doc["full"] = cli_build(data, args.index_out, args.checkpoint, "local", None, "auto",
                                args.batch_size, args.precision)  # fmt: skip
        doc["full"]["precision"] = args.precision
        print(f"full: {doc['full']}", file=sys.stderr)
    kinds = [k for k in args.kinds.split(",") if k]
    if kinds:
        doc["kinds"] = bench_kinds(args.index_out, data, kinds, args.checkpoint)
    for earlier in args.merge:
        old = json.loads(earlier.read_text())
        for part in ("engines", "baseline", "full", "kinds"):
            if not doc.get(part) and old.get(part):
                doc[part] = old[part]
                doc.setdefault("merged_from", {})[part] = str(earlier)
    table = markdown(doc)
    print(json.dumps(doc, indent=2))
    print(table)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
