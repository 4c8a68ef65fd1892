"""The whole chain on the built-in synthetic benchmark: data, teachers, students with and without distillation, report.

Every step is resumable: finished data and runs are reused, interrupted runs continue from their last checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cvkd.config import load_config
from cvkd.data.folder import dataset_digest
from cvkd.data.synthetic import generate_synthetic
from cvkd.distill.strategies import available_strategies
from cvkd.engine.teachers import split_spec
from cvkd.engine.protocol import Protocol
from cvkd.runs.schema import RunConfig
from cvkd.engine.train import is_finished, train
from cvkd.errors import ConfigError
from cvkd.recipes import recipe_path
from cvkd.report.compare import CompareSettings, compare_runs
from cvkd.report.compare_output import format_markdown, write_outputs
from cvkd.report.differences import TEACHER, Claim

TEACHERS = "teachers"
BASELINES = ("compact_nokd", "compact_kd")  # the compact student without distillation and with one teacher
MULTI_TEACHER = "compact_mkd"  # the compact student taught by every teacher stream and the fused teacher
STREAM_STUDENT = "compact_streams"  # the compact student, each stream from its own teacher stream, fused from fused
SHARED_STUDENT = "student_shared"  # one cnn_tiny trunk reads all three modalities, each head from its own teacher
PAPER_STUDENT = "student_mkd"  # the paper's student (smaller I-frame net, the teacher's MV / residual nets reused)
SLIM_STUDENT = "compact_slim_streams"  # the student at the compression goal: MV / residual cnn_micro, per stream
# The 2 x 2 ablation of the per-stream student at one strategy (avg_targets; with one teacher per output it is KD):
# routing (each stream from its own teacher stream / from all four) x the fused-output term (on / off).
ABLATION_CELLS = {  # recipe, multi-teacher strategy -> (routing, fused-output term)
    (STREAM_STUDENT, None): ("per stream", "on"),
    ("compact_streams_nofused", None): ("per stream", "off"),
    ("compact_mkd_fused", None): ("every stream", "on"),
    (MULTI_TEACHER, "avg_targets"): ("every stream", "off"),
}
TEST_PROTOCOL = Protocol("test", 5, 1)  # a cheaper test than CoViAR's 25 x 10 keeps the demo in minutes


@dataclass(frozen=True)
class BenchmarkSize:
    """How much synthetic data the demo draws: classes and videos per class in each split."""

    classes: int
    train: int
    val: int
    test: int

    @property
    def videos_per_class(self) -> int:
        """Videos generated per class (train, then val, then test indices)."""
        return self.train + self.val + self.test


DEFAULT_BENCHMARK = BenchmarkSize(classes=16, train=18, val=6, test=63)  # 1,008 test videos: one is 0.1 point
QUICK_BENCHMARK = BenchmarkSize(classes=8, train=16, val=4, test=16)


@dataclass(frozen=True)
class DemoSettings:
    """How big the demo is: the default (~15 min on 2 CPU cores) or `quick` (a smoke run of a few minutes)."""

    quick: bool = False
    seeds: int = 1
    strategies: tuple[str, ...] = ()  # one compact student per strategy, each stream taught by all four teachers
    streams: bool = True  # the compact student taught stream by stream (no cross-modal targets): the best one here
    shared: bool = False  # also train the shared-trunk student (one small network reads all three modalities)
    paper: bool = False  # also train the paper's student (I-frame stream shrunk, MV / residual reused)
    teacher_seeds: int = 1  # student seed i learns from teacher seed i modulo this
    profile: str = "split"  # the synthetic benchmark's profile (`cvkd synth --profile`)
    ablation: bool = False  # also train the other three cells of the routing x fused-term ablation
    slim: bool = False  # also train the student at the compression goal (>= 8x fewer parameters than the teacher)

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.teacher_seeds < 1:
            raise ConfigError(f"demo seeds ({self.seeds}) and teacher seeds ({self.teacher_seeds}) must be >= 1")
        multi_teacher = [name for name in available_strategies() if name not in ("none", "kd")]
        unknown = [name for name in self.strategies if name not in multi_teacher]
        if unknown or len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"demo strategies {list(self.strategies)}: give distinct names from "
                              f"{', '.join(multi_teacher)} (`none` and `kd` are the baselines, always trained)")

    def students(self) -> list[tuple[str, str | None]]:
        """(recipe, multi-teacher strategy or None) of every student trained per seed."""
        students = [(recipe, None) for recipe in BASELINES]
        if self.streams or self.ablation:
            students.append((STREAM_STUDENT, None))
        students += [(MULTI_TEACHER, name) for name in self.strategies]
        if self.ablation:
            students += [cell for cell in ABLATION_CELLS if cell not in students]
        extras = [(SHARED_STUDENT, self.shared), (PAPER_STUDENT, self.paper), (SLIM_STUDENT, self.slim)]
        return students + [(recipe, None) for recipe, wanted in extras if wanted]

    def claims(self) -> tuple[Claim, ...] | None:
        """The primary comparisons, declared before the runs: the per-stream student against single-teacher KD
        (several teachers against one) and against the teacher (what compression costs); None without it (compare
        then takes the first multi-teacher row)."""
        if not (self.streams or self.ablation):
            return None
        streams, single = _run_name(STREAM_STUDENT), _run_name(BASELINES[1])
        return (Claim("several teachers teach better than one", streams, single),
                Claim("compression costs little accuracy", streams, TEACHER))

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The ablation's comparisons (secondary, Holm-corrected): routing at each fused-term setting, the fused
        term at each routing."""
        if not self.ablation:
            return ()
        cells = {value: _run_name(recipe, strategy) for (recipe, strategy), value in ABLATION_CELLS.items()}
        return ((cells[("per stream", "on")], cells[("every stream", "on")]),
                (cells[("per stream", "off")], cells[("every stream", "off")]),
                (cells[("per stream", "on")], cells[("per stream", "off")]),
                (cells[("every stream", "on")], cells[("every stream", "off")]))

    @property
    def benchmark(self) -> BenchmarkSize:
        """The synthetic data this demo draws."""
        return QUICK_BENCHMARK if self.quick else DEFAULT_BENCHMARK

    def overrides(self, recipe: str) -> list[str]:
        """Config overrides that shrink a recipe for the quick demo (none for the default)."""
        if not self.quick:
            return []
        common = ["data.val_segments=2"]
        if recipe == TEACHERS:
            return common + ["optim.epochs=6", "optim.lr_steps=[4]"]
        return common + ["optim.epochs=5", "optim.lr_steps=[4]", "distill.cache_views=5"]


def _run_name(recipe: str, strategy: str | None = None) -> str:
    """The seed-0 run name of a built-in recipe (with its strategy when it is not the recipe's own)."""
    config = load_config(RunConfig, recipe_path(f"synthetic/{recipe}.yaml"))
    if strategy and strategy != config.distill.strategy:
        return f"{config.name}_{strategy}"
    return config.name


def teacher_name(base: str, seed: int) -> str:
    """The teacher's run name for one seed: seed 0 keeps the plain name (a 1-seed demo's teacher is reused)."""
    return base if seed == 0 else f"{base}_seed{seed}"


@dataclass
class DemoResult:
    """Where the demo put things, and how long each step took."""

    data: Path
    teacher: Path
    teachers: list[Path] = field(default_factory=list)  # every teacher seed's run
    students: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    table: str = ""
    report: list[Path] = field(default_factory=list)
    data_digest: str = ""  # SHA-256 of the generated benchmark: equal digests, equal data


def recipe_config(
    recipe: str, out: Path, settings: DemoSettings, seed: int = 0, strategy: str | None = None
) -> RunConfig:
    """A built-in synthetic recipe pointed at the demo folder: data, run folder, teacher paths, seed, strategy; a
    student's teachers (and reused streams) are teacher seed `seed % settings.teacher_seeds`."""
    out = Path(out).resolve()  # runs record their data folder: absolute, so they still find it from another cwd
    runs = out / "runs"
    config = load_config(RunConfig, recipe_path(f"synthetic/{recipe}.yaml"), settings.overrides(recipe))
    config.data.root = str(out / "data")
    config.output_dir = str(runs)
    config.seed = seed
    if strategy and strategy != config.distill.strategy:  # the recipe's own strategy keeps the recipe's run name
        config.distill.strategy = strategy
        config.name = f"{config.name}_{strategy}"
    # a warm-up from a longer schedule (DKD's 20 of 240 epochs) would never give a 12-epoch run its full weight
    config.distill.scale_warmup = True
    if seed > 0:  # seed 0 keeps the plain name: `--seeds 3` after a 1-seed demo reuses its runs
        config.name = teacher_name(config.name, seed) if recipe == TEACHERS else f"{config.name}_seed{seed}"
    teacher_seed = seed % settings.teacher_seeds
    config.model.init = {m: str(runs / teacher_name(Path(source).name, teacher_seed))
                         for m, source in config.model.init.items()}
    config.distill.teachers = [_relocate(spec, runs, teacher_seed) for spec in config.distill.teachers]
    return config


def _relocate(spec: str, runs: Path, teacher_seed: int) -> str:
    """Point a recipe's teacher spec (`runs/NAME[:output]`) at one teacher seed's run in the demo's run folder."""
    run, output = split_spec(spec)
    relocated = str(runs / teacher_name(Path(run).name, teacher_seed))
    return f"{relocated}:{output}" if output else relocated


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), progress: bool = True) -> DemoResult:
    """Generate the benchmark, train the teachers, distil the students; return where everything is."""
    out = Path(out)
    started = time.perf_counter()
    result = DemoResult(data=out / "data", teacher=out / "runs")
    say = tqdm.write
    say(f"[1/4] synthetic benchmark -> {result.data}")
    size = settings.benchmark
    generate_synthetic(result.data, classes=size.classes, videos_per_class=size.videos_per_class, seed=0,
                       progress=progress, val_per_class=size.val, test_per_class=size.test, profile=settings.profile)
    result.data_digest = dataset_digest(result.data)
    say(f"      data digest {result.data_digest[:16]} (profile {settings.profile}; {size.classes} classes; per class "
        f"{size.train} train, {size.val} val, {size.test} test videos)")
    result.seconds["data"] = time.perf_counter() - started

    teacher_config = recipe_config(TEACHERS, out, settings)
    result.teacher = Path(teacher_config.output_dir) / teacher_config.name
    say(f"[2/4] teachers {dict(teacher_config.model.streams)} x {settings.teacher_seeds} seed(s) -> {result.teacher}")
    for seed in range(settings.teacher_seeds):
        config = recipe_config(TEACHERS, out, settings, seed)
        _train_or_reuse(config, progress)
        result.teachers.append(Path(config.output_dir) / config.name)
    result.seconds["teachers"] = time.perf_counter() - started - sum(result.seconds.values())

    students = [recipe_config(recipe, out, settings, 0, strategy).name for recipe, strategy in settings.students()]
    say(f"[3/4] students ({', '.join(students)}) x {settings.seeds} seed(s)")
    for recipe, strategy in settings.students():  # every seed of one student before the next student
        for seed in range(settings.seeds):
            config = recipe_config(recipe, out, settings, seed, strategy)
            _train_or_reuse(config, progress)
            result.students.append(Path(config.output_dir) / config.name)
    result.seconds["students"] = time.perf_counter() - started - sum(result.seconds.values())

    say(f"[4/4] test ({TEST_PROTOCOL.segments} segments x {TEST_PROTOCOL.crops} crop) and compare -> {out / 'report'}")
    comparison = compare_runs(
        [str(run) for run in result.students], [str(run) for run in result.teachers],
        CompareSettings(protocol=TEST_PROTOCOL, data_root=str(result.data), progress=progress, device="cpu",
                        claims=settings.claims(), pairs=settings.pairs()),
    )
    result.table = format_markdown(comparison)
    result.report = write_outputs(comparison, out / "report")
    result.seconds["report"] = time.perf_counter() - started - sum(result.seconds.values())
    return result


def _train_or_reuse(config: RunConfig, progress: bool) -> None:
    """Train a run, or continue it, or reuse it when it already finished."""
    run = Path(config.output_dir) / config.name
    if is_finished(run):
        tqdm.write(f"      reusing finished run {run}")
        return
    train(config, resume=True, progress=progress)
