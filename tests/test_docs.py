"""The README stays a short front door and the docs stay true to the repository."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_relative_links_point_to_existing_files() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            path = target.split("#", 1)[0]
            if not path or re.match(r"[a-z]+:", path):
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []


def test_benchmark_tables_are_generated() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "<!-- tables:begin" in (ROOT / "docs" / "benchmarks.md").read_text()


def test_no_machine_paths() -> None:
    for page in PAGES:
        # absolute paths of one machine (a documented default like /var/tmp/x is fine)
        assert not re.search(r"(?<![\w/])/(work|tmp|root)/", page.read_text()), page.name


def test_every_service_setting_is_documented() -> None:
    from gaitsearch.service.settings import Settings

    text = (ROOT / "docs" / "service.md").read_text()
    missing = [n for n in Settings.model_fields if f"GAITSEARCH_{n.upper()}" not in text]
    assert not missing, f"docs/service.md lacks settings: {missing}"
