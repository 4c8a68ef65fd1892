"""One torchrun launch of 2 gloo processes that trains several cases and reports a JSON line per case."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.test_ddp import free_port
from processes import run_to_completion


def launch_cases(worker: Path, cases: list[list[str]], common: list[str], cwd: Path, timeout: float) -> dict[str, dict]:
    """Run `worker CASES_JSON COMMON...` under torchrun; case name -> the JSON its rank 0 printed (`CASE name json`)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", str(worker), json.dumps(cases), *common,
    ]
    finished = run_to_completion(command, cwd, timeout)
    assert finished.returncode == 0, finished.stderr[-3000:]
    reports = {}
    for line in finished.stdout.splitlines():
        if line.startswith("CASE "):
            _, name, report = line.split(" ", 2)
            reports[name] = json.loads(report)
    return reports
