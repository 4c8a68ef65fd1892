"""distill.stream_teachers: which teachers each student output (a stream, or the fused logits) learns from."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvkd.config import load_config
from cvkd.distill import DistillLoss
from cvkd.engine.objective import StreamObjective, build_strategies
from cvkd.engine.routes import resolve_routes, teacher_routes
from cvkd.engine.teachers import TeacherRef
from cvkd.errors import ConfigError
from cvkd.models.coviar import build_coviar
from cvkd.runs.schema import RunConfig

TEACHERS = [TeacherRef("runs/t", "iframe"), TeacherRef("runs/t", "mv"), TeacherRef("runs/t", "residual"),
            TeacherRef("runs/t", "fused"), TeacherRef("runs/u", "mv")]
STREAMS = ("iframe", "mv", "residual")


def test_unnamed_outputs_learn_from_every_teacher_and_named_ones_from_theirs():
    routes = resolve_routes({"iframe": ["iframe", "fused"], "mv": ["t:mv"], "fused": ["runs/t:fused"]},
                            TEACHERS, STREAMS)
    assert routes == {"iframe": (0, 3), "mv": (1,), "residual": (0, 1, 2, 3, 4), "fused": (3,)}
    assert teacher_routes({"mv": ["mv"]}, TEACHERS, ["mv"]) == {"mv": (1, 4)}  # an output name selects every match


@pytest.mark.parametrize("stream_teachers, teachers, message", [
    ({"mv": ["flow"]}, TEACHERS, "no teacher 'flow'"),
    ({"mv": []}, TEACHERS, "is empty"),
    ({"rgb": ["mv"]}, TEACHERS, "neither trainable streams"),
    ({"mv": ["mv"]}, [], "distill.teachers is empty"),
])
def test_bad_routes_are_refused(stream_teachers, teachers, message):
    with pytest.raises(ConfigError, match=message):
        resolve_routes(stream_teachers, teachers, STREAMS)


class _Recorder(nn.Module):
    """A strategy stand-in that records the student and teacher logits it is given; loss = sum of student logits."""

    uses_features = False

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, logits, teacher_logits, labels, features, teacher_features) -> DistillLoss:
        self.seen.append((logits.detach(), teacher_logits))
        zero = torch.zeros(())
        return DistillLoss(logits.sum(), zero, zero, zero, torch.ones(teacher_logits.shape[0]), zero)


def test_objective_hands_each_output_its_teachers_and_fuses_2_1_1():
    model = build_coviar({m: "cnn_tiny" for m in STREAMS}, 3).eval()
    routes = {"iframe": (0,), "mv": (1,), "residual": (2,), "fused": (3,)}
    strategies = {output: _Recorder() for output in routes}
    objective = StreamObjective(model, STREAMS, strategies, routes)
    sample = {m: torch.randn(2, 1, c, 32, 32) for m, c in zip(STREAMS, (3, 2, 3))}
    teacher_logits = torch.arange(4 * 2 * 3, dtype=torch.float32).view(4, 2, 3)  # teacher k's logits all near 6k
    total, logits, _ = objective(sample, torch.zeros(2, dtype=torch.long), teacher_logits)
    for output, (k,) in routes.items():
        (student, teacher), = strategies[output].seen
        assert torch.equal(teacher, teacher_logits[k : k + 1])
    torch.testing.assert_close(logits["fused"], 2 * logits["iframe"] + logits["mv"] + logits["residual"])
    torch.testing.assert_close(total, sum(logits[o].sum() for o in routes))


def test_a_fused_term_needs_every_stream_trainable_and_sizes_each_strategy_by_its_teachers():
    model = build_coviar({m: "cnn_tiny" for m in STREAMS}, 3)
    config = load_config(RunConfig, None, ["distill.strategy=avg_targets"])
    routes = {"iframe": (0, 3), "mv": (1,), "fused": (3,)}
    with pytest.raises(ConfigError, match="every stream trainable"):
        build_strategies(config, model, ("iframe", "mv"), [64, 32, 32, 0], routes)
    strategies = build_strategies(config, model, STREAMS, [64, 32, 32, 0], {**routes, "residual": (2,)})
    assert list(strategies) == ["iframe", "mv", "fused", "residual"]
    assert [strategies[o].num_teachers for o in ("iframe", "mv", "fused")] == [2, 1, 1]


def test_normalised_fused_logits_are_the_weighted_mean_like_a_normalised_fused_teacher():
    model = build_coviar({m: "cnn_tiny" for m in STREAMS}, 3).eval()
    objective = StreamObjective(model, STREAMS, {"fused": _Recorder()}, {"fused": (0,)}, normalise_fused=True)
    sample = {m: torch.randn(2, 1, c, 32, 32) for m, c in zip(STREAMS, (3, 2, 3))}
    _, logits, _ = objective(sample, torch.zeros(2, dtype=torch.long), torch.zeros(1, 2, 3))
    with torch.no_grad():
        streams = model.forward_streams(sample)
    torch.testing.assert_close(logits["fused"], (2 * streams["iframe"] + streams["mv"] + streams["residual"]) / 4)
