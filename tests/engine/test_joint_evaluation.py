"""Several runs scored in one pass over the test videos give exactly what each gives alone."""

from __future__ import annotations

import numpy as np

from cvkd.engine.protocol import Protocol, cached_evaluations
from cvkd.runs.folder import load_run


def test_one_pass_for_several_runs_equals_one_pass_each(teacher_run, tiny, tmp_path):
    student = tiny.train("mv_only", "model.streams={mv: cnn_tiny}").run_dir
    protocol = Protocol("test", 2, 1)
    joint = cached_evaluations([load_run(teacher_run, "cpu"), load_run(student, "cpu")], protocol, workers=0,
                               progress=False, reuse=False)
    alone = [cached_evaluations([load_run(run, "cpu")], protocol, workers=0, progress=False, reuse=False)[0]
             for run in (teacher_run, student)]
    assert [set(e.metrics) for e in joint] == [{"iframe", "mv", "residual", "fused"}, {"mv", "fused"}]
    for together, separately in zip(joint, alone):
        for key in together.metrics:
            np.testing.assert_array_equal(together.scores(key).scores, separately.scores(key).scores)
            assert list(together.scores(key).names) == list(separately.scores(key).names)
        assert together.metrics == separately.metrics
    again = cached_evaluations([load_run(student, "cpu")], protocol, workers=0, progress=False)
    assert again[0].reused and again[0].metrics == alone[1].metrics
