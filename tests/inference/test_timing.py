"""Issue 24, item 2, acceptance: on an AVI with sparse timestamps (68 pictures at pts 0..443 in periods of 1/15 s,
so 444 frame slots and 29.6 s), `cvkd info`, `cvkd reencode` and `cvkd predict` agree on its pictures and duration,
and the re-encode lasts as long as the source, within one frame."""

from __future__ import annotations

import json

import av
import pytest
from clips import encode_with_pyav, pan

from cvkd.cli import main

SPARSE_PTS = [round(i * 443 / 67) for i in range(68)]
HEADLINE = "timestamps sparse: 68 pictures over 29.6 s"


def test_info_reencode_and_predict_agree_on_a_sparse_avi(tmp_path, tiny_run, capsys):
    source = tmp_path / "src" / "sparse.avi"
    source.parent.mkdir()
    encode_with_pyav(pan((64, 48), 68, (1, 0)), source, fps=15, gop=12, container_format="avi",
                     timestamps=SPARSE_PTS)

    assert main(["info", "--json", str(source)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert main(["info", str(source)]) == 0
    assert f"timing       {HEADLINE} (" in capsys.readouterr().out

    assert main(["reencode", str(source.parent), "--out", str(tmp_path / "out"), "--size", "64x48",
                 "--workers", "1"]) == 0
    assert f"{source}: {HEADLINE} (timestamps kept)" in capsys.readouterr().out
    with av.open(str(tmp_path / "out" / "sparse.mp4")) as container:
        stream = container.streams.video[0]
        packets = sorted((p.pts, p.duration) for p in container.demux(stream) if p.size)
        seconds = float((packets[-1][0] + packets[-1][1] - packets[0][0]) * stream.time_base)
    assert len(packets) == 68 and abs(seconds - 444 / 15) <= 1 / 15

    assert main(["predict", str(source), "--model", str(tiny_run.run_dir), "--json", "--segments", "3"]) == 0
    out, err = capsys.readouterr()
    predicted = json.loads(out)
    assert f"note: {source}: {HEADLINE}; segments sampled by index (index suits it)" in err
    assert predicted["timing"] == info["timing"]
    assert (predicted["timing"]["pictures"], predicted["timing"]["duration"]) == (68, pytest.approx(29.6))
    assert predicted["sampling"] == "index"
