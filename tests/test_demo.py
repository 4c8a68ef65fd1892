"""`cvkd demo` end to end at a toy size: every step runs, the table has every variant, a second run reuses everything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from cvkd.demo import BenchmarkSize, DemoSettings, recipe_config, run_demo
from cvkd.distill.context import StrategyContext
from cvkd.distill.dkd import scaled_warmup
from cvkd.distill.strategies import create_strategy
from cvkd.engine.teachers import split_spec
from cvkd.errors import ConfigError

TINY_STREAMS = "{iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"


@dataclass(frozen=True)
class ToyDemo(DemoSettings):
    """The demo's chain with 4 videos per class, one epoch per run and tiny networks."""

    @property
    def benchmark(self) -> BenchmarkSize:
        return BenchmarkSize(classes=8, train=2, val=1, test=1)

    def overrides(self, recipe: str) -> list[str]:
        return ["optim.epochs=1", "optim.lr_steps=[]", "data.crop_size=48", "data.workers=0", "data.val_segments=1",
                "distill.cache_views=1", f"model.streams={TINY_STREAMS}"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


def test_demo_runs_every_step_and_reuses_them(tmp_path):
    settings = ToyDemo(strategies=("avg_targets", "entropy"), streams=True, shared=True, paper=True, slim=True,
                       teacher_seeds=2)
    result = run_demo(tmp_path / "demo", settings, progress=False)
    assert [path.name for path in result.teachers] == ["synth_teachers", "synth_teachers_seed1"]
    assert "| synth_teachers, synth_teachers_seed1 | 0, 1 |" in result.table  # one teacher row, two seeds
    names = sorted(path.name for path in result.students)
    assert names == ["synth_compact_kd", "synth_compact_mkd", "synth_compact_mkd_entropy", "synth_compact_nokd",
                     "synth_compact_slim_streams", "synth_compact_streams", "synth_student_mkd",
                     "synth_student_shared"]
    for run in [*result.teachers, *result.students]:
        assert (run / "best.pt").is_file() and (run / "log.jsonl").is_file()
    assert 'Claim "several teachers teach better than one": KD per output' in result.table
    labels = ("CoViAR teacher", "no KD", "KD (1 teacher: fused)", "avg_targets (4 teachers", "entropy (4 teachers",
              "avg_targets (3 teachers")
    for label in labels:
        assert label in result.table
    assert sorted(path.name for path in result.report) == ["compare.csv", "compare.json", "compare.md", "compare.png",
                                                              "compare_cost.png"]
    checkpoints = {run: (run / "last.pt").stat().st_mtime_ns for run in [*result.teachers, *result.students]}

    again = run_demo(tmp_path / "demo", settings, progress=False)
    assert {run: (run / "last.pt").stat().st_mtime_ns for run in checkpoints} == checkpoints  # nothing retrained
    assert accuracy_column(again.table) == accuracy_column(result.table)  # evaluations reused, same figures


def accuracy_column(table: str) -> list[str]:
    """The variant and top-1 cells of every row of the comparison table (latency varies between runs)."""
    header = next(line for line in table.splitlines() if line.startswith("| variant"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    top1 = cells.index("top-1 %")
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| variant", "|---"))]
    return [f"{row.strip('|').split('|')[0].strip()} {row.strip('|').split('|')[top1].strip()}" for row in rows]


def test_recipe_configs_record_absolute_paths_so_runs_work_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = recipe_config("student_mkd", Path("demo"), DemoSettings(seeds=3), seed=2)
    runs = tmp_path / "demo" / "runs"
    assert config.data.root == str(tmp_path / "demo" / "data")
    assert config.output_dir == str(runs) and config.name == "synth_student_mkd_seed2" and config.seed == 2
    assert set(config.model.init.values()) == {str(runs / "synth_teachers")}
    assert [split_spec(spec)[0] for spec in config.distill.teachers] == [str(runs / "synth_teachers")]


def test_each_multi_teacher_strategy_is_its_own_run():
    config = recipe_config("student_mkd", Path("demo"), DemoSettings(seeds=2), seed=1, strategy="camkd")
    assert config.distill.strategy == "camkd" and config.name == "synth_student_mkd_camkd_seed1"
    default = recipe_config("student_mkd", Path("demo"), DemoSettings(), strategy="avg_targets")
    assert default.name == "synth_student_mkd"


@pytest.mark.parametrize("strategies", [("kd",), ("avg_targets", "avg_targets"), ("nonsense",)])
def test_demo_refuses_strategies_that_are_not_distinct_multi_teacher_ones(strategies):
    with pytest.raises(ConfigError, match="demo strategies"):
        DemoSettings(strategies=strategies)


def test_seed_zero_keeps_the_one_seed_name_so_more_seeds_extend_a_finished_demo():
    one = recipe_config("compact_nokd", Path("demo"), DemoSettings(), seed=0)
    three = [recipe_config("compact_nokd", Path("demo"), DemoSettings(seeds=3), seed=s).name for s in range(3)]
    assert three == [one.name, f"{one.name}_seed1", f"{one.name}_seed2"]


def test_the_default_demo_trains_the_baselines_and_the_per_stream_multi_teacher_student():
    assert DemoSettings().students() == [("compact_nokd", None), ("compact_kd", None), ("compact_streams", None)]
    assert DemoSettings(strategies=("avg_targets",), streams=False).students() == [
        ("compact_nokd", None), ("compact_kd", None), ("compact_mkd", "avg_targets")]


def test_dkd_warm_up_takes_the_share_of_training_it_has_in_mdistiller():
    """mdistiller warms DKD up over 20 of its 240 CIFAR-100 epochs; a 12-epoch demo student gets 1 epoch, not 20
    (with 20 its DKD term would stop at 12/20 of its weight). A warm-up set in the recipe is kept."""
    assert [scaled_warmup(epochs) for epochs in (240, 120, 12, 6)] == [20, 10, 1, 1]
    config = recipe_config("compact_mkd", Path("demo"), DemoSettings(), strategy="dkd")
    assert config.optim.epochs == 12 and config.distill.scale_warmup and "warmup_epochs" not in config.distill.params
    context = StrategyContext(num_classes=16, epochs=config.optim.epochs, scale_warmup=config.distill.scale_warmup)
    assert create_strategy("dkd", 2, context, **config.distill.params).warmup_epochs == 1  # DKD scales its own
    assert create_strategy("camkd", 2, context).warmup_epochs == 0  # no published warm-up: nothing to scale


def test_student_seed_i_learns_from_teacher_seed_i_modulo_the_teacher_seeds():
    settings = DemoSettings(seeds=5, teacher_seeds=3)
    runs = Path("demo").resolve() / "runs"
    assert recipe_config("teachers", Path("demo"), settings, seed=2).name == "synth_teachers_seed2"
    for seed, teacher in ((0, "synth_teachers"), (2, "synth_teachers_seed2"), (4, "synth_teachers_seed1")):
        config = recipe_config("student_mkd", Path("demo"), settings, seed=seed)
        assert {split_spec(spec)[0] for spec in config.distill.teachers} == {str(runs / teacher)}
        assert set(config.model.init.values()) == {str(runs / teacher)}
    with pytest.raises(ConfigError, match="teacher seeds"):
        DemoSettings(teacher_seeds=0)


def test_the_ablation_trains_the_four_cells_and_compares_routing_and_the_fused_term_in_each():
    settings = DemoSettings(ablation=True)
    assert settings.students() == [("compact_nokd", None), ("compact_kd", None), ("compact_streams", None),
                                   ("compact_streams_nofused", None), ("compact_mkd_fused", None),
                                   ("compact_mkd", "avg_targets")]
    assert settings.pairs() == (("synth_compact_streams", "synth_compact_mkd_fused"),
                                ("synth_compact_streams_nofused", "synth_compact_mkd"),
                                ("synth_compact_streams", "synth_compact_streams_nofused"),
                                ("synth_compact_mkd_fused", "synth_compact_mkd"))
    claims = [(claim.row, claim.baseline) for claim in settings.claims()]
    assert claims == [("synth_compact_streams", "synth_compact_kd"), ("synth_compact_streams", "teacher")]
    cells = {name: recipe_config(name, Path("demo"), settings) for name in ("compact_streams_nofused",
                                                                             "compact_mkd_fused")}
    assert cells["compact_streams_nofused"].distill.stream_teachers == {"iframe": ["iframe"], "mv": ["mv"],
                                                                        "residual": ["residual"]}
    fused = cells["compact_mkd_fused"].distill.stream_teachers
    assert fused["fused"] == ["fused"] and fused["mv"] == ["iframe", "mv", "residual", "fused"]
    assert {config.distill.strategy for config in cells.values()} == {"avg_targets"}
