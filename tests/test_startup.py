"""Start-up cost: building the parser and `cvkd info` import neither torch nor matplotlib (each costs seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

from clips import encode, moving_square

PROBE = """
import contextlib, io, json, sys
import cvkd.cli
cvkd.cli.build_parser()
after_parser = sorted(m for m in ("torch", "matplotlib", "matplotlib.pyplot") if m in sys.modules)
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = cvkd.cli.main(["info", sys.argv[1]])
after_info = sorted(m for m in ("torch", "matplotlib", "matplotlib.pyplot") if m in sys.modules)
print(json.dumps({"code": code, "parser": after_parser, "info": after_info, "out": out.getvalue()}))
"""


def test_parser_and_info_import_neither_torch_nor_matplotlib(tmp_path):
    video = encode(moving_square((64, 48), frames=6, velocity=(1, 0), start=(4, 4), side=16), tmp_path / "clip.mp4", gop=3)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(video)], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0 and "frames       6" in report["out"]
    assert report["parser"] == []
    assert report["info"] == []
