"""The documentation builds in strict mode: the guide (the README's sections), BENCHMARKS.md and the changelog, and
the API reference from the docstrings. A broken reference, a link to a file that is not there, or a docstring that
names an argument the function does not take fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.data import ROOT


def test_the_documentation_builds_in_strict_mode(tmp_path: Path) -> None:
    pytest.importorskip("mkdocstrings", reason="the docs need the docs extra: pip install -e '.[docs]'")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert done.returncode == 0, "\n".join(warnings) or done.stderr[-3000:]
    assert (site / "reference" / "models" / "index.html").is_file()
    page = (site / "reference" / "models" / "index.html").read_text()
    assert "create_model" in page and "ModelKind" in page  # built from the docstrings
    guide = (site / "guide" / "training" / "index.html").read_text()
    assert "benchmarks/" in guide  # the README's links to BENCHMARKS.md lead to its page


def test_every_benchmark_script_is_in_the_index() -> None:
    index = (ROOT / "benchmarks" / "README.md").read_text()
    scripts = sorted(path.name for path in (ROOT / "benchmarks").iterdir() if path.suffix in (".py", ".sh"))
    assert "detection_saturation.py" in scripts
    assert [name for name in scripts if f"`{name}`" not in index] == []
