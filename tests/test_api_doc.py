"""The public API: `from cvkd import ...` works lazily, and the example in docs/api.md runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cvkd
from cvkd.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_export_resolves():
    from cvkd import CompressedVideo

    assert CompressedVideo.__module__ == "cvkd.codec.reader"
    assert all(getattr(cvkd, name) is not None for name in cvkd.__all__)


def test_import_cvkd_is_light():
    code = "import sys, cvkd; print(sorted(m for m in ('torch', 'av', 'matplotlib') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_api_doc_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1 and len(blocks[0].splitlines()) <= 30
    monkeypatch.chdir(tmp_path)
    synth = ["synth", "data/synth", "--classes", "2", "--videos-per-class", "5", "--size", "32x32", "--frames", "24",
             "--workers", "1", "--quiet"]
    assert main(synth) == 0
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "api_example"})
    out = capsys.readouterr().out
    assert "(32, 32, 2) int16" in out and "distillation loss" in out
    assert re.search(r"\.mp4: \w+ \d\.\d\d, \w+ \d\.\d\d", out)  # the prediction line: two labels with probabilities
