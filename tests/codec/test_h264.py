"""H.264 read natively: P-frames, B-frames (two-way accumulation), several references, against a square of known motion."""

from __future__ import annotations

import numpy as np
import pytest
from clips import encode_with_pyav, encode_x264, moving_square

from cvkd.codec.h264 import max_reference_frames
from cvkd.codec.index import open_video
from cvkd.codec.reader import CompressedVideo
from cvkd.errors import UnsupportedVideoError

SIZE = (128, 96)
VELOCITY = (2, -1)  # px per frame
START = (16, 60)
SIDE = 32
FRAMES = 24  # two GOPs of 12


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


def square_clip():
    return moving_square(SIZE, FRAMES, VELOCITY, START, SIDE)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The same known motion encoded three ways: P-only ref=1, B-frames ref=1, B-frames (pyramid) with 3 references.

    With 3 references x264 predicts many blocks from older pictures (the I-frame, of better quality): the reader must
    find which one (FFmpeg exports only the direction) or the accumulated motion is wrong by whole frames of motion.
    """
    folder = tmp_path_factory.mktemp("h264")
    frames = square_clip()
    return {
        "p_ref1": encode_x264(frames, folder / "p.mp4", b_frames=0, ref=1),
        "b_ref1": encode_x264(frames, folder / "b.mp4", b_frames=2, ref=1),
        "b_ref3": encode_x264(frames, folder / "b3.mp4", b_frames=3, ref=3, b_pyramid=True),
    }


def interior(t: int, margin: int = 8) -> tuple[slice, slice]:
    """Rows/cols strictly inside the square at display position t."""
    x, y = START[0] + VELOCITY[0] * t, START[1] + VELOCITY[1] * t
    return slice(y + margin, y + SIDE - margin), slice(x + margin, x + SIDE - margin)


def median_vector(field: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in np.median(field.reshape(-1, 2), axis=0))


def fraction_equal(field: np.ndarray, expected: tuple[int, int]) -> float:
    return float(np.mean(np.all(field.reshape(-1, 2) == expected, axis=1)))


def test_p_frame_vectors_equal_the_known_motion(clips):
    video = CompressedVideo(clips["p_ref1"])
    assert video.index.codec == "h264" and set(video.index.pict_types) == {"I", "P"}
    for t in (1, 5, 11, 14):
        field = video.load(t, "mv", accumulate=False)[interior(t)]
        assert median_vector(field) == VELOCITY and fraction_equal(field, VELOCITY) > 0.8


@pytest.mark.parametrize("name", ["p_ref1", "b_ref1", "b_ref3"])
def test_accumulated_motion_equals_the_accumulated_known_motion(clips, name):
    video = CompressedVideo(clips[name])
    types = video.index.pict_types
    assert video.gop_starts == (0, 12)
    if name != "p_ref1":
        assert "B" in types
    checked = set()
    for t in range(1, FRAMES):
        gop, position = video.gop_of(t)
        if position == 0:
            continue
        expected = (VELOCITY[0] * position, VELOCITY[1] * position)
        field = video.load(t, "mv")[interior(t)]
        assert median_vector(field) == expected, (t, types[t])
        # Bi-predicted blocks may carry any pair of quarter-pel vectors whose average predicts well (seen: (1, -1)
        # past with (-1, 1) future for a (2, -1) motion), so B-pictures match on fewer pixels; a quarter-pel vector
        # rounded the other way at the square's edge shifts a strip by one pixel, and accumulation carries it on.
        assert fraction_equal(field, expected) > (0.6 if types[t] == "P" else 0.5), (t, types[t])
        checked.add(types[t])
    assert checked == ({"P"} if name == "p_ref1" else {"P", "B"})


@pytest.mark.parametrize("name", ["p_ref1", "b_ref1", "b_ref3"])
def test_iframe_at_the_traced_source_plus_residual_is_the_frame(clips, name):
    video = CompressedVideo(clips[name])
    frames = list(range(video.num_frames))
    got = video.load_many(frames, ["iframe", "rgb", "mv", "residual"])
    pixel_y, pixel_x = np.mgrid[0 : video.height, 0 : video.width]
    for t in frames:
        mv = got["mv"][t].astype(np.int64)
        source_x, source_y = pixel_x - mv[..., 0], pixel_y - mv[..., 1]
        assert source_x.min() >= 0 and source_x.max() < video.width and source_y.min() >= 0
        prediction = got["iframe"][t][source_y, source_x].astype(np.int16)
        assert np.array_equal(prediction + got["residual"][t], got["rgb"][t]), (t, video.index.pict_types[t])


def test_motion_compensation_beats_the_plain_difference_on_b_frames(clips):
    video = CompressedVideo(clips["b_ref3"])
    frames = [t for t in range(video.num_frames) if video.index.pict_types[t] == "B"]
    got = video.load_many(frames, ["iframe", "rgb", "residual"])
    compensated = np.mean([np.abs(r).mean() for r in got["residual"]])
    plain = np.mean([np.abs(f.astype(np.int16) - i).mean() for f, i in zip(got["rgb"], got["iframe"])])
    assert compensated < 0.9 * plain  # the acceptance bound (MPEG-4 Part 2 gives 0.77-0.80 on real clips)


def test_frames_come_in_display_order(clips):
    video = CompressedVideo(clips["b_ref1"])
    rgb = video.load_many(list(range(FRAMES)), ["rgb"])["rgb"]
    truth = square_clip()
    for t in range(FRAMES):  # nearest source frame is the display-order one (the square moves every frame)
        errors = [np.abs(rgb[t].astype(np.int16) - frame).mean() for frame in truth]
        assert int(np.argmin(errors)) == t


def exported_vectors(path) -> list:
    """FFmpeg's exported vectors of every frame (display order), from one decode from the start."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        return [frame.side_data.get("MOTION_VECTORS") for frame in container.decode(stream)]


def rasterised_past_vectors(vectors, height: int, width: int, sizes: set | None = None) -> np.ndarray:
    """A picture's past-reference vectors painted over their blocks (dst - src), a source outside the frame clamped
    to the border (the reader's default rule): motion p - clamp(p - d)."""
    expected = np.zeros((height, width, 2), np.int16)
    for row in vectors.to_ndarray() if vectors is not None else ():
        if row["source"] >= 0:
            continue
        w, h = int(row["w"]), int(row["h"])
        left, top = int(row["dst_x"]) - w // 2, int(row["dst_y"]) - h // 2
        expected[max(top, 0) : top + h, max(left, 0) : left + w] = (
            int(row["dst_x"]) - int(row["src_x"]), int(row["dst_y"]) - int(row["src_y"])
        )
        if sizes is not None:
            sizes.add((w, h))
    pixel_y, pixel_x = np.mgrid[0:height, 0:width]
    expected[..., 0] = pixel_x - np.clip(pixel_x - expected[..., 0], 0, width - 1)
    expected[..., 1] = pixel_y - np.clip(pixel_y - expected[..., 1], 0, height - 1)
    return expected


def test_non_accumulated_motion_of_b_frame_streams_is_read_for_p_frames_only(clips):
    """With B-frames, a P-frame's non-accumulated motion is its exported past vectors as they are; a B-frame's and
    any non-accumulated residual are refused with one line."""
    video = CompressedVideo(clips["b_ref3"])
    types = video.index.pict_types
    b_frame, p_frames = types.index("B"), [t for t, kind in enumerate(types) if kind == "P"]
    with pytest.raises(UnsupportedVideoError, match=rf"frame {b_frame} is a B-frame: only its accumulated motion"):
        video.load_many([p_frames[0], b_frame], ["mv"], accumulate=False)
    with pytest.raises(UnsupportedVideoError, match="only accumulated residuals"):
        video.load(p_frames[0], "residual", accumulate=False)
    exported = exported_vectors(clips["b_ref3"])
    got = video.load_many(p_frames, ["mv"], accumulate=False)["mv"]
    for t, field in zip(p_frames, got):
        assert np.array_equal(field, rasterised_past_vectors(exported[t], video.height, video.width)), t
    assert any(np.abs(field).max() > 0 for field in got)
    assert video.load(b_frame, "rgb").shape == (SIZE[1], SIZE[0], 3)


def test_hevc_is_refused_with_one_line_saying_to_reencode(tmp_path):
    path = encode_with_pyav(square_clip()[:6], tmp_path / "h.mp4", codec="libx265", options={"x265-params": "log-level=none"})
    with pytest.raises(UnsupportedVideoError, match=r"codec hevc exports no motion vectors; re-encode it with `cvkd reencode`"):
        CompressedVideo(path)


@pytest.mark.parametrize("ref", [1, 3])
def test_reference_count_is_read_from_the_sps(tmp_path, ref):
    path = encode_x264(square_clip()[:4], tmp_path / f"r{ref}.mp4", b_frames=0, ref=ref)
    with open_video(path) as container:
        assert max_reference_frames(container.streams.video[0].codec_context.extradata) == ref
    assert max_reference_frames(b"") is None and max_reference_frames(b"\x00\x00\x01\x67") is None


def test_p_frame_motion_equals_a_rasterisation_of_the_exported_vectors(tmp_path):
    """Non-accumulated motion of P-frames (ref=3) is each exported past vector painted over its block, nothing else."""
    path = encode_x264(square_clip()[:12], tmp_path / "p3.mp4", b_frames=0, ref=3)
    video = CompressedVideo(path)
    exported = exported_vectors(path)
    sizes: set = set()
    for t in range(1, 12):
        assert all(row["source"] < 0 for row in exported[t].to_ndarray())
        expected = rasterised_past_vectors(exported[t], video.height, video.width, sizes)
        assert np.array_equal(video.load(t, "mv", accumulate=False), expected), t
    assert (16, 16) in sizes and len(sizes) >= 2


def test_raw_h264_stream_reads_like_the_mp4(tmp_path):
    """A raw .h264 stream (no timestamps: read from its first byte) gives the same arrays as the same stream in MP4."""
    options = {"x264-params": "threads=1:ref=3:keyint=12:min-keyint=12:scenecut=0", "crf": "4", "bf": "2"}
    raw = encode_with_pyav(square_clip(), tmp_path / "c.h264", codec="libx264", container_format="h264",
                           gop=12, b_frames=2, options=options)
    boxed = encode_with_pyav(square_clip(), tmp_path / "c.mp4", codec="libx264", gop=12, b_frames=2, options=options)
    raw_video, boxed_video = CompressedVideo(raw), CompressedVideo(boxed)
    assert not raw_video.index.seekable and "B" in raw_video.index.pict_types
    assert raw_video.index.pict_types == boxed_video.index.pict_types
    for frame in (3, 14, 20):
        got, expected = (v.load_many([frame], ["iframe", "mv", "residual"]) for v in (raw_video, boxed_video))
        assert all(np.array_equal(got[name][0], expected[name][0]) for name in got), frame


def test_gop_of_an_i_picture_that_is_not_a_key_frame_decodes_its_own_frames(tmp_path):
    """x264 codes a scene cut closer than min-keyint to the last IDR as a non-IDR I picture, which the container does
    not mark as a key frame. A decoder fed from it drops every frame up to the next IDR, so reading that GOP must start
    at the previous key frame: each frame equals the same frame of one decode from the start."""
    import av

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (SIZE[1] + 20, SIZE[0] + 40, 3)).astype(np.uint8)  # a cut to unlike content
    frames = square_clip()[:14] + [scene[t : t + SIZE[1], 2 * t : 2 * t + SIZE[0]].copy() for t in range(14)]
    path = encode_with_pyav(frames, tmp_path / "cut.mp4", codec="libx264", gop=48, b_frames=2,
                            options={"x264-params": "threads=1:ref=3:keyint=48:min-keyint=30:bframes=2", "crf": "23"})
    with av.open(str(path)) as container:
        key_frames = [packet.pts for packet in container.demux(video=0) if packet.size and packet.is_keyframe]
        container.seek(0)
        truth = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    video = CompressedVideo(path)
    assert video.gop_starts == (0, 14) and len(key_frames) == 1  # the premise: an I-frame that is no key frame
    wanted = [14, 15, 20, 27]
    got = video.load_many(wanted, ["rgb", "iframe", "residual"])
    for t, rgb, iframe in zip(wanted, got["rgb"], got["iframe"]):
        assert np.array_equal(rgb, truth[t]) and np.array_equal(iframe, truth[14]), t
