"""Render benchmarks/results/*.json as markdown tables inside docs/benchmarks.md.

`python benchmarks/tables.py` rewrites every block between
`<!-- tables:begin NAME -->` and `<!-- tables:end NAME -->` (NAME = a result file's stem);
`--check` exits 1 when the file differs from what would be written. Numbers come only from
the JSON; absolute paths of the machine that ran a benchmark are cut to their basename.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BLOCK = re.compile(r"<!-- tables:begin (\S+) -->\n.*?<!-- tables:end \1 -->", re.S)
ABS_PATH = re.compile(r"/(?:work|tmp|root|home)/[^\s,;\"')]*")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        text = ABS_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], value)
        return text.replace("|", "\\|").replace("\n", " ")
    return "" if value is None else str(value)


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif not isinstance(value, list) and not (isinstance(value, str) and len(value) > 60):
            flat[name] = value
    return flat


def _tables(node: Any, path: str) -> list[tuple[str, list[dict[str, Any]]]]:
    found: list[tuple[str, list[dict[str, Any]]]] = []
    if isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        found.append((path, [_flatten(x) for x in node]))
    elif isinstance(node, dict):
        scalars = _flatten({k: v for k, v in node.items() if not isinstance(v, list)})
        if scalars and path:
            found.append((path, [scalars]))
        for key, value in node.items():
            if isinstance(value, list):
                found.extend(_tables(value, f"{path}.{key}" if path else key))
    return found


def _markdown(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def render_block(name: str) -> str:
    data = json.loads((RESULTS / f"{name}.json").read_text())
    parts = [f"`benchmarks/results/{name}.json`"]
    for where, rows in _tables(data, name):
        parts.append(f"**{where}**\n\n{_markdown(rows)}")
    body = "\n\n".join(parts)
    return f"<!-- tables:begin {name} -->\n{body}\n<!-- tables:end {name} -->"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: render_block(m.group(1)), text)


def main(argv: list[str]) -> int:
    current = DOC.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{DOC.name} is out of date: run python benchmarks/tables.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
