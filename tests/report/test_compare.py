"""`cvkd compare`: seeds grouped with the right mean, the composed teacher's accuracy, cached metrics reused, outputs
written (Markdown, CSV, JSON, chart) with paired differences, variants and verdicts worded from the configs and the
intervals, and one-line errors for bad runs.

Tiny real runs (cnn_tiny streams, one epoch, a 3-class synthetic dataset) are trained once for the module.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

import cvkd.engine.protocol as protocol_module
from cvkd.cli import main
from cvkd.config import config_from_dict, load_config
from cvkd.data.synthetic import generate_synthetic
from cvkd.engine.protocol import Protocol, evaluate_model
from cvkd.runs.folder import load_run
from cvkd.runs.schema import RunConfig
from cvkd.engine.train import train
from cvkd.errors import ConfigError
from cvkd.report.compare import CompareRow, CompareSettings, build_comparison, compare_runs
from cvkd.report.environment import command_line
from cvkd.report.composed_teacher import compose_teacher, composed_metrics
from cvkd.report.model_profile import ModelProfile
from cvkd.report.cost_accounting import StreamCosts, cost_report
from cvkd.report.variants import Variant, describe_streams, group_by_seed
from cvkd.scores.statistics import verdict

SEGMENTS, CROPS = 2, 1
TAG = f"test_{SEGMENTS}x{CROPS}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STUDENT = ["model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}", "model.frozen=[mv, residual]"]


def tiny_run(root: Path, data: Path, name: str, *overrides: str) -> Path:
    """Train a one-epoch cnn_tiny run on `data` and return its folder."""
    config = load_config(RunConfig, None, [
        f"name={name}", f"output_dir={root / 'runs'}", f"data.root={data}", "data.crop_size=48", "data.workers=0",
        "data.segments=2", "data.val_segments=2", "data.batch_size=4", "optim.layer_lr=uniform", "optim.epochs=1",
        "model.pretrained=null", *overrides,
    ])
    return train(config, progress=False).run_dir


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three single-stream teacher runs, two seeds of a no-KD student, a 1-teacher and a 3-teacher student, and a
    run trained on another class list."""
    root = tmp_path_factory.mktemp("compare")
    patch = pytest.MonkeyPatch()
    patch.setenv("CVKD_CACHE_DIR", str(root / "cache"))
    torch.set_num_threads(1)
    data, other_data = root / "data", root / "other"
    generate_synthetic(data, classes=3, videos_per_class=4, size=(64, 64), frames=13, seed=0, workers=1,
                       progress=False)
    generate_synthetic(other_data, classes=2, videos_per_class=4, size=(64, 64), frames=13, seed=1, workers=1,
                       progress=False)
    runs = {
        "iframe": tiny_run(root, data, "t_iframe", "model.streams={iframe: cnn_tiny}"),
        "mv": tiny_run(root, data, "t_mv", "model.streams={mv: cnn_tiny}"),
        "residual": tiny_run(root, data, "t_residual", "model.streams={residual: cnn_tiny}"),
    }
    init = f"model.init={{mv: {runs['mv']}, residual: {runs['residual']}}}"
    teachers = [runs["iframe"], runs["mv"], runs["residual"]]
    runs["nokd0"] = tiny_run(root, data, "nokd_s0", *STUDENT, init, "seed=0")
    runs["nokd1"] = tiny_run(root, data, "nokd_s1", *STUDENT, init, "seed=1")
    runs["kd"] = tiny_run(root, data, "kd1", *STUDENT, init, f"distill.teachers=[{runs['iframe']}]",
                          "distill.strategy=kd")
    runs["mkd"] = tiny_run(root, data, "mkd", *STUDENT, init, f"distill.teachers=[{', '.join(map(str, teachers))}]",
                           "distill.strategy=avg_targets")
    runs["other"] = tiny_run(root, other_data, "other_classes", "model.streams={iframe: cnn_tiny}")
    yield {"root": root, "data": data, "runs": runs, "teachers": teachers,
           "students": [runs["nokd0"], runs["kd"], runs["nokd1"], runs["mkd"]]}
    patch.undo()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


SETTINGS = CompareSettings(protocol=Protocol("test", SEGMENTS, CROPS), latency=False, workers=0, device="cpu",
                           progress=False)


def fused_top1_from_json(run: Path) -> float:
    return json.loads((run / f"eval_{TAG}.json").read_text())["metrics"]["fused"]["top1"]


def fused_correct_from_npz(run: Path) -> np.ndarray:
    archive = np.load(run / f"eval_{TAG}_fused.npz")
    return (archive["scores"].argmax(axis=1) == archive["labels"]).astype(int)


# ---------------------------------------------------------------- the table


def test_seeds_share_a_row_with_the_mean_of_their_runs(lab):
    comparison = compare_runs(lab["students"], lab["teachers"], SETTINGS)
    runs = lab["runs"]
    assert [row.variant for row in comparison.rows] == [
        "CoViAR teacher", "no KD", "KD (1 teacher: iframe)", "avg_targets (3 teachers: iframe, mv, residual)"]
    no_kd = comparison.rows[1]
    assert no_kd.runs == ["nokd_s0", "nokd_s1"] and no_kd.seeds == [0, 1] and no_kd.n == 2
    by_hand = [fused_top1_from_json(runs["nokd0"]), fused_top1_from_json(runs["nokd1"])]
    assert no_kd.mean == pytest.approx(statistics.fmean(by_hand))
    assert no_kd.sd == pytest.approx(abs(by_hand[0] - by_hand[1]) / 2 ** 0.5)  # ddof 1 of two values
    assert no_kd.correct.tolist() == [fused_correct_from_npz(runs["nokd0"]).tolist(),
                                      fused_correct_from_npz(runs["nokd1"]).tolist()]
    assert comparison.videos == no_kd.correct.shape[1] == comparison.teacher.correct.shape[1]
    # Paired differences: every student vs the teacher; KD vs no KD; multi-teacher vs no KD and KD.
    pairs = [(d.row.variant, d.baseline.variant) for d in comparison.differences]
    kd, mkd = comparison.rows[2].variant, comparison.rows[3].variant
    assert pairs == [("no KD", "CoViAR teacher"), (kd, "CoViAR teacher"), (kd, "no KD"), (mkd, "CoViAR teacher"),
                     (mkd, "no KD"), (mkd, kd)]
    versus_teacher = comparison.differences[0]
    assert versus_teacher.interval.estimate == pytest.approx(no_kd.mean - comparison.teacher.mean)
    assert versus_teacher.verdict.estimate == verdict(no_kd.correct, comparison.teacher.correct).estimate
    assert versus_teacher.verdict.df == 1  # two no-KD seeds against one teacher run: the teacher borrows their variance
    assert len(versus_teacher.tests) == 2  # one McNemar test per seed of no KD against the one teacher
    assert no_kd.streams == "iframe cnn_tiny, mv cnn_tiny*, residual cnn_tiny*"
    # Every model here has three cnn_tiny streams with 3 classes: equal costs, ratio 1.
    ratios = comparison.ratios(comparison.rows[3])
    assert ratios["params"] == pytest.approx(1.0) and ratios["macs_per_gop_frame"] == pytest.approx(1.0)
    assert ratios["latency"] is None


def test_composed_teacher_accuracy_is_the_2_1_1_fusion_of_the_stream_runs(lab):
    comparison = compare_runs(lab["students"][:1], lab["teachers"], SETTINGS)
    scores = {stream: np.load(run / f"eval_{TAG}_{stream}.npz")
              for stream, run in zip(("iframe", "mv", "residual"), lab["teachers"])}
    names = scores["iframe"]["names"]
    assert all((archive["names"] == names).all() for archive in scores.values())
    fused = 2 * scores["iframe"]["scores"] + scores["mv"]["scores"] + scores["residual"]["scores"]
    by_hand = 100.0 * float((fused.argmax(axis=1) == scores["iframe"]["labels"]).mean())
    assert comparison.teacher.top1 == [pytest.approx(by_hand)]
    # ... and equals scoring the composed CoViAR in one pass (the views of a video do not depend on the streams).
    teacher = compose_teacher([load_run(run) for run in lab["teachers"]])
    assert teacher.model.fusion_weights == {"iframe": 2.0, "mv": 1.0, "residual": 1.0}
    assert teacher.model.streams["mv"] is teacher.sources["mv"].model.streams["mv"]
    whole = evaluate_model(teacher.model, teacher.class_names, lab["data"], "test", SEGMENTS, CROPS, crop_size=48,
                           workers=0, progress=False)["fused"]
    whole_top1 = 100.0 * float((whole.scores.argmax(axis=1) == whole.labels).mean())
    assert composed_metrics(teacher, comparison.evaluations).top1 == pytest.approx(whole_top1)


def test_cached_metrics_are_reused_until_older_than_the_checkpoint(lab, monkeypatch):
    compare_runs(lab["students"], lab["teachers"], SETTINGS)  # make sure every cache exists
    calls = []
    real = protocol_module.evaluate_models
    monkeypatch.setattr(protocol_module, "evaluate_models", lambda *a, **k: calls.append(1) or real(*a, **k))
    files = [run / f"eval_{TAG}.json" for run in [*lab["teachers"], *lab["students"]]]
    before = [file.stat().st_mtime_ns for file in files]
    compare_runs(lab["students"], lab["teachers"], SETTINGS)
    assert calls == [] and [file.stat().st_mtime_ns for file in files] == before

    stale = lab["runs"]["kd"] / f"eval_{TAG}.json"
    checkpoint_time = (lab["runs"]["kd"] / "best.pt").stat().st_mtime
    os.utime(stale, (checkpoint_time - 60, checkpoint_time - 60))
    compare_runs(lab["students"], lab["teachers"], SETTINGS)
    assert len(calls) == 1 and stale.stat().st_mtime > checkpoint_time


def test_cli_prints_the_table_and_writes_md_csv_png(lab, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["compare", *map(str, lab["students"]), "--teacher", *map(str, lab["teachers"]), "--segments",
            str(SEGMENTS), "--crops", str(CROPS), "--workers", "0", "--device", "cpu", "--no-latency",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    markdown = (out / "compare.md").read_text()
    assert markdown.strip() in printed
    assert "| CoViAR teacher |" in markdown and "GMACs (multiply-accumulates)" in markdown
    assert "Verdict (5 % level; 2 primary comparisons, each judged on its own; the 4 others corrected" in markdown
    assert 'Claim "several teachers teach better than one": avg_targets (3 teachers' in markdown
    assert "## Paired differences" in markdown and "| no KD | CoViAR teacher | " in markdown
    with open(out / "compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["kind"] for row in rows] == ["teacher", "none", "single", "multi"]
    runs = lab["runs"]
    expected = statistics.fmean([fused_top1_from_json(runs["nokd0"]), fused_top1_from_json(runs["nokd1"])])
    assert float(rows[1]["top1_mean"]) == pytest.approx(expected)
    assert rows[1]["seeds"] == "0;1" and rows[1]["n"] == "2" and rows[1]["latency_ms"] == ""
    document = json.loads((out / "compare.json").read_text())
    videos = len(fused_correct_from_npz(runs["nokd0"]))
    assert document["videos"] == videos and f"Test set: {videos} videos" in markdown
    assert [row["top1_mean"] for row in document["rows"]] == pytest.approx([float(row["top1_mean"]) for row in rows])
    assert document["rows"][1]["seeds"] == [0, 1] and document["verdict"] in markdown
    first = document["differences"][0]
    assert (first["row"], first["baseline"]) == ("no KD", "CoViAR teacher")
    assert f"| {first['difference']:+.2f} | [{first['low']:+.2f}, {first['high']:+.2f}] |" in markdown
    environment = document["environment"]
    assert environment["command"] == command_line()  # this process's command line (pytest's, here)
    assert set(environment["versions"]) == {"cvkd", "torch", "torchvision", "av", "numpy", "python"}
    assert f"Command: `{environment['command']}`" in markdown and environment["torch_threads"] == 1
    for chart in ("compare.png", "compare_cost.png"):
        png = (out / chart).read_bytes()
        assert png[:8] == PNG_SIGNATURE and len(png) > 1000


def test_teacher_seeds_share_the_teacher_row_and_unequal_seed_counts_are_refused(lab):
    runs = lab["runs"]
    comparison = compare_runs([runs["kd"]], [runs["nokd0"], runs["nokd1"]], SETTINGS)  # two seeds as the teacher
    teacher = comparison.teacher
    assert teacher.n == 2 and teacher.seeds == [0, 1] and teacher.runs == ["nokd_s0", "nokd_s1"]
    assert teacher.correct.tolist() == [fused_correct_from_npz(runs["nokd0"]).tolist(),
                                        fused_correct_from_npz(runs["nokd1"]).tolist()]
    (versus,) = comparison.differences
    assert versus.verdict.judged and versus.verdict.df == 1  # one KD run against two teacher seeds
    with pytest.raises(ConfigError, match="unequal counts"):
        compare_runs([runs["kd"]], [runs["nokd0"], runs["nokd1"], runs["iframe"]], SETTINGS)


def test_students_taught_by_different_seeds_of_one_teacher_share_a_row(lab):
    runs = lab["runs"]
    taught = [make_config(seed=seed, distill__teachers=[f"{runs[teacher]}:fused"], distill__strategy="kd")
              for seed, teacher in ((0, "nokd0"), (1, "nokd1"))]
    assert len(group_by_seed(taught, lambda config: config)) == 1
    other = make_config(seed=2, distill__teachers=[f"{runs['kd']}:fused"], distill__strategy="kd")
    assert len(group_by_seed([*taught, other], lambda config: config)) == 2  # another teacher's config: another row


def test_one_multi_stream_teacher_run_is_used_as_it_is(lab):
    teacher = compose_teacher([load_run(lab["runs"]["mkd"])])
    assert teacher.model is teacher.sources["iframe"].model and teacher.name == "mkd"


# ---------------------------------------------------------------- bad input


def test_student_trained_on_other_classes_is_named_in_one_line(lab, capsys):
    other = lab["runs"]["other"]
    argv = ["compare", str(lab["runs"]["nokd0"]), str(other), "--teacher", *map(str, lab["teachers"]),
            "--no-latency", "--no-progress", "--workers", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(other) in err and "other classes than the teacher" in err


def test_missing_run_exits_2_with_one_line(lab, tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    assert main(["compare", str(missing), "--teacher", str(lab["teachers"][0]), "--no-latency"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{missing}: no such run folder or checkpoint" in err


def test_a_stream_offered_by_two_teacher_runs_is_refused(lab):
    iframe = load_run(lab["runs"]["iframe"])
    with pytest.raises(ConfigError, match="stream 'iframe' also comes from"):
        compose_teacher([iframe, load_run(lab["runs"]["mkd"])])


# ---------------------------------------------------------------- variants and verdicts without training


def make_config(**changes) -> RunConfig:
    data = {"name": "a", "seed": 0, "model": {"streams": {"iframe": "resnet18", "mv": "resnet18"}, "frozen": ["mv"]}}
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[key] = value
    return config_from_dict(RunConfig, data)


def test_group_by_seed_ignores_only_seed_name_and_output_dir():
    configs = [make_config(), make_config(seed=1, name="b", output_dir="elsewhere"), make_config(optim__lr=0.5),
               make_config(seed=2, name="c")]
    groups = group_by_seed(configs, lambda config: config)
    assert [[config.seed for config in group] for group in groups] == [[0, 1, 2], [0]]
    assert describe_streams(configs[0]) == "iframe resnet18, mv resnet18*"
    shared = make_config(model__streams={"iframe": "cnn_tiny", "mv": "cnn_tiny"}, model__frozen=[],
                         model__trunk="shared")
    assert describe_streams(shared) == "iframe cnn_tiny, mv cnn_tiny (shared trunk)"



def test_runs_without_teachers_group_whatever_their_unused_distillation_settings():
    no_kd = [make_config(distill__cache_views=4), make_config(seed=1, distill__cache_views=12)]
    assert [[c.seed for c in group] for group in group_by_seed(no_kd, lambda config: config)] == [[0, 1]]
    taught = [make_config(distill__teachers=["t"], distill__strategy="kd", distill__cache_views=views)
              for views in (4, 12)]
    assert len(group_by_seed(taught, lambda config: config)) == 2  # with teachers the views matter

@pytest.mark.parametrize(
    "strategy, teachers, label, kind",
    [
        ("none", ("iframe",), "no KD", "none"),
        ("kd", (), "no KD", "none"),
        ("kd", ("iframe",), "KD (1 teacher: iframe)", "single"),
        ("avg_targets", ("iframe", "mv", "residual"), "avg_targets (3 teachers: iframe, mv, residual)", "multi"),
    ],
)
def test_variant_labels(strategy, teachers, label, kind):
    variant = Variant(strategy, teachers)
    assert (variant.label, variant.kind) == (label, kind)


def test_a_routed_student_is_labelled_by_what_each_output_learns_from():
    routes = (("iframe", ("iframe",)), ("mv", ("mv",)), ("fused", ("fused", "mv")))
    variant = Variant("kd", ("iframe", "mv", "fused"), routes)
    assert variant.label == "KD per output (iframe from iframe, mv from mv, fused from fused + mv)"
    assert variant.kind == "multi"


def made_up_row(variant: str, kind: str, right: list, videos: int = 400) -> CompareRow:
    """A row whose run i gets the first `right[i]` of `videos` test videos right (or gives its 0/1 list)."""
    costs = cost_report(StreamCosts(1, 1, 1), StreamCosts(1, 1, 1))
    profile = ModelProfile(variant, {"iframe": "x", "mv": "x", "residual": "x"}, 3, 32, costs)
    correct = np.array([[1] * run + [0] * (videos - run) if isinstance(run, int) else run for run in right])
    return CompareRow(variant, kind, "", [variant], list(range(len(right))), correct, profile)


def made_up_comparison(*rows: CompareRow, claims=None, pairs=()):
    return build_comparison([made_up_row("CoViAR teacher", "teacher", [360, 356, 364]), *rows], Protocol(), 224, 12,
                            claims=claims, pairs=pairs)


def test_the_claims_primary_comparisons_are_judged_alone_and_the_rest_corrected_by_holm():
    # 400 videos. Teacher 90 / 89 / 91 %, no KD 50 / 51 / 52, KD 60 / 61 / 62, multi-teacher 75 / 76 / 77: seed sd 1,
    # so every difference is many standard errors from 0. The first multi-teacher row against the first
    # single-teacher row and against the teacher are the primary comparisons; the other four are secondary.
    comparison = made_up_comparison(made_up_row("no KD", "none", [200, 204, 208]),
                                    made_up_row("KD (1 teacher: iframe)", "single", [240, 244, 248]),
                                    made_up_row("mkd", "multi", [300, 304, 308]))
    roles = {(d.row.variant, d.baseline.variant): d.role for d in comparison.differences}
    assert roles[("mkd", "KD (1 teacher: iframe)")] == "primary" and roles[("mkd", "CoViAR teacher")] == "primary"
    assert [role for role in roles.values()].count("primary") == 2 and len(roles) == 6
    secondary = [d for d in comparison.differences if not d.primary]
    raw = [d.verdict.p for d in secondary]
    # Holm on 4 p-values: the smallest is multiplied by 4.
    assert min(d.verdict.p_adjusted for d in secondary) == pytest.approx(min(4 * min(raw), 1.0))
    text = comparison.verdict()
    assert 'Claim "several teachers teach better than one": mkd vs KD (1 teacher: iframe): +15.00 points' in text
    assert "real: ahead" in text and 'Claim "compression costs little accuracy": mkd vs CoViAR teacher: -14.00' in text


def test_a_secondary_difference_real_alone_can_be_within_noise_after_holm():
    # mkd vs no KD: 55/57/59 vs 50/52/54 % -> +5 points, t = 5 / (2 sqrt(2/3)) = 3.06 on 4 df, p = 0.0375 < 0.05
    # alone. With no claim all six pairs are secondary: three against the teacher (p < 1e-4), KD vs no KD (p near 1)
    # and mkd vs KD (p near 0.04) leave it at rank 4 or 5 of 6, so Holm multiplies it by 3 or 2: over 0.05.
    no_kd = made_up_row("no KD", "none", [200, 208, 216])
    kd = made_up_row("KD", "single", [202, 210, 214])
    mkd = made_up_row("mkd", "multi", [220, 228, 236])
    teacher_free = made_up_comparison(no_kd, kd, mkd, claims=[])
    pair = next(d for d in teacher_free.differences if (d.row.variant, d.baseline.variant) == ("mkd", "no KD"))
    assert pair.verdict.p == pytest.approx(0.0375, abs=0.002) and not pair.primary
    assert pair.verdict.p_adjusted > 0.05 and pair.words == "within noise"
    declared = made_up_comparison(made_up_row("no KD", "none", [200, 208, 216]),
                                  made_up_row("mkd", "multi", [220, 228, 236]))  # default claim: mkd vs no KD
    primary = next(d for d in declared.differences if d.baseline.variant == "no KD")
    assert primary.primary and primary.real and primary.claim == "distillation helps"


def test_claims_and_pairs_name_rows_by_run_and_bad_names_are_one_line_errors():
    from cvkd.errors import ConfigError
    from cvkd.report.differences import Claim
    rows = (made_up_row("a", "multi", [300, 304]), made_up_row("b", "multi", [290, 300]))
    comparison = made_up_comparison(*rows, claims=[Claim("routing", "a", "b")], pairs=[("b", "teacher")])
    primary = [d for d in comparison.differences if d.primary]
    assert [(d.row.variant, d.baseline.variant, d.claim) for d in primary] == [("a", "b", "routing")]
    with pytest.raises(ConfigError, match="names no row"):
        made_up_comparison(*rows, claims=[Claim("x", "a", "nope")])


def test_one_run_against_one_run_is_not_judged():
    comparison = build_comparison([made_up_row("CoViAR teacher", "teacher", [360]), made_up_row("mkd", "multi", [100])],
                                  Protocol(), 224, 12)
    (difference,) = comparison.differences
    assert difference.words == "not judged" and not difference.real
    assert "not judged" in comparison.verdict()


def test_rows_sharing_a_label_are_named_after_their_first_run():
    rows = [made_up_row("CoViAR teacher", "teacher", [360]), made_up_row("mkd", "multi", [300]),
            made_up_row("mkd", "multi", [310])]
    rows[1].runs, rows[2].runs = ["compact"], ["paper"]
    comparison = build_comparison(rows, Protocol(), 224, 12)
    assert [row.variant for row in comparison.rows] == ["CoViAR teacher", "mkd [compact]", "mkd [paper]"]


def test_primary_and_pair_options_parse_claims():
    from cvkd.commands.compare import _claim, _pair
    assert _claim("several teachers teach better than one=streams:kd") == __import__(
        "cvkd.report.differences", fromlist=["Claim"]).Claim("several teachers teach better than one", "streams", "kd")
    assert _claim("streams:teacher").name == "streams vs teacher"
    assert _pair("a:b", "--pair") == ("a", "b")
    with pytest.raises(ConfigError, match="expected ROW:BASELINE"):
        _pair("a-b", "--pair")
