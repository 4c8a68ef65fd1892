"""Fuzzing the reader and `reencode`: hundreds of corrupted real clips each end in a result or in a CvkdError.

Every variant runs in a worker process, so a segfault shows up as a crash and a hang as a timeout; the parent
re-runs the variants after the one that killed a worker in a fresh worker and reports that one. The count of
variants tried is printed and recorded as the test property `variants_tried` (scale it with CVKD_FUZZ_PER_CLIP
and CVKD_FUZZ_SEED for a longer run; CVKD_FUZZ_REPORT=path writes the outcome counts as JSON).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hardening.fuzzing import FOREIGN_ERROR, HANDLED, Variant, exercise, plan_variants, variant_dicts
from processes import kill_group, start_process

WORKER = Path(__file__).with_name("fuzzing.py")
PER_CLIP = int(os.environ.get("CVKD_FUZZ_PER_CLIP", "80"))  # 5 clips -> 400 variants, ~5 s on one core
SEED = int(os.environ.get("CVKD_FUZZ_SEED", "0"))
VARIANT_SECONDS = 60  # the time bound of one variant (typically ~20 ms): beyond it the worker counts as hung
WORKERS = 2


@dataclass(frozen=True)
class Finding:
    """What happened to one variant: handled (a result or a CvkdError), or a foreign error, crash or hang."""

    variant: Variant
    outcome: str
    detail: str


def run_in_worker(
    variants: list[Variant], work: Path, seconds: float = VARIANT_SECONDS, env: dict[str, str] | None = None
) -> list[Finding]:
    """Check `variants` in worker processes, one after another; a variant that kills a worker or takes longer than
    `seconds` is reported and the rest continue in a new worker."""
    by_id = {variant.id: variant for variant in variants}
    findings: dict[int, Finding] = {}
    work.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while len(findings) < len(variants):
        remaining = [v for v in variants if v.id not in findings]
        attempt += 1
        specs = work / f"specs{attempt}.json"
        specs.write_text(json.dumps(variant_dicts(remaining)))
        for finding in _one_worker(specs, work / f"worker{attempt}", by_id, seconds, env):
            findings[finding.variant.id] = finding
    return [findings[v.id] for v in variants]


def _one_worker(
    specs: Path, folder: Path, by_id: dict[int, Variant], seconds: float, env: dict[str, str] | None
) -> list[Finding]:
    """Run one worker over `specs` until it finishes, dies or hangs; the findings it produced (and its victim)."""
    folder.mkdir(parents=True)
    with open(folder / "stderr.txt", "w") as stderr:
        process = start_process([sys.executable, str(WORKER), str(specs), str(folder)], folder,
                                stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, **(env or {})})
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    reader.start()
    findings, current = [], None
    try:
        while True:
            try:
                line = lines.get(timeout=seconds)
            except queue.Empty:
                victim = current if current is not None else json.loads(specs.read_text())[0]["id"]
                findings.append(Finding(by_id[victim], "hang", f"no answer within {seconds} s"))
                return findings
            if line is None:  # the worker ended
                code = process.wait()
                if current is not None:
                    problem = (folder / "stderr.txt").read_text()[-1500:]
                    findings.append(Finding(by_id[current], "crash", f"worker exit {code}\n{problem}"))
                elif code != 0:
                    pytest.fail(f"fuzz worker failed outside any variant (exit {code}):\n"
                                f"{(folder / 'stderr.txt').read_text()[-3000:]}")
                return findings
            message = json.loads(line)
            if "start" in message:
                current = message["start"]
            else:
                findings.append(Finding(by_id[message["id"]], message["outcome"], message["detail"]))
                current = None
    finally:
        kill_group(process)


def _pump(stream, lines: queue.Queue) -> None:
    """Forward a worker's stdout lines to `lines`, then None at its end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def test_the_harness_reports_crashes_hangs_and_foreign_errors_and_goes_on(clean_clips, tmp_path) -> None:
    """The harness itself: sabotaged variants are caught as such, the ones after them still run."""
    variants = plan_variants({str(clean_clips["pan.mp4"]): clean_clips["pan.mp4"].read_bytes()}, 8, SEED)
    sabotage = {"2": "crash", "4": "raise", "5": "hang"}
    findings = run_in_worker(variants, tmp_path, seconds=5, env={"CVKD_FUZZ_SABOTAGE": json.dumps(sabotage)})

    outcomes = {f.variant.id: f.outcome for f in findings}
    assert outcomes == {0: HANDLED, 1: HANDLED, 2: "crash", 3: HANDLED, 4: FOREIGN_ERROR, 5: "hang", 6: HANDLED,
                        7: HANDLED}
    assert "ValueError: sabotaged" in findings[4].detail and "exit -11" in findings[2].detail
    assert len(list(tmp_path.glob("worker*"))) == 3  # a new worker after the crash and after the hang


def test_clean_clips_read_and_reencode_in_full(clean_clips, tmp_path) -> None:
    """The control: the unharmed clips index, load and re-encode (so a variant's error is due to the damage)."""
    expected = {"pan.mp4": 30, "square.mp4": 30, "raw.m4v": 30, "msmpeg4.avi": 20}
    for name, path in clean_clips.items():
        summary = exercise(path, tmp_path)
        if name == "h264.mkv":  # B-frames: refused by the reader, accepted by reencode
            assert summary == "reader: UnsupportedVideoError; reencoded 20 frames", summary
        else:
            assert summary == f"read {expected[name]} frames; reencoded {expected[name]} frames", summary


def test_corrupted_clips_end_in_a_result_or_a_cvkd_error(clean_clips, tmp_path, record_property) -> None:
    clips = {str(path): path.read_bytes() for path in clean_clips.values()}
    variants = plan_variants(clips, PER_CLIP, SEED)
    shards = [variants[k::WORKERS] for k in range(WORKERS)]
    with ThreadPoolExecutor(WORKERS) as pool:
        parts = pool.map(lambda k: run_in_worker(shards[k], tmp_path / f"shard{k}"), range(WORKERS))
        findings = sorted((f for part in parts for f in part), key=lambda f: f.variant.id)

    assert len(findings) == len(variants) == PER_CLIP * len(clips)
    outcomes = Counter(f.outcome for f in findings)
    reader = Counter(f.detail.split(";")[0].split(" ")[0] for f in findings if f.outcome == HANDLED)
    summary = {"variants_tried": len(findings), "seed": SEED, "outcomes": dict(outcomes),
               "reader_read": reader["read"], "reader_refused": reader["reader:"],
               "kinds": dict(Counter(f.variant.kind for f in findings))}
    record_property("variants_tried", len(findings))
    print(f"\nfuzz: {json.dumps(summary)}")
    if os.environ.get("CVKD_FUZZ_REPORT"):
        Path(os.environ["CVKD_FUZZ_REPORT"]).write_text(json.dumps(summary, indent=2) + "\n")

    bad = [f for f in findings if f.outcome != HANDLED]
    report = "\n".join(f"{f.variant.describe()} -> {f.outcome}:\n{f.detail}" for f in bad[:10])
    assert not bad, f"{len(bad)} of {len(findings)} variants ended badly ({dict(outcomes)}):\n{report}"
    # The damage must reach both paths: some variants still read, others are refused with a cvkd error.
    assert reader["read"] >= len(findings) // 10 and reader["reader:"] >= len(findings) // 10, reader
