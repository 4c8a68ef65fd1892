"""CompressedVideo against clips with known motion: vectors, accumulation, residuals, GOP decoding, bad input."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from clips import encode, encode_with_pyav, moving_square, pan

from cvkd.codec.reader import CompressedVideo
from cvkd.errors import FrameIndexError, UnsupportedVideoError, VideoError

SIZE = (128, 96)
VELOCITY = (3, -2)  # px per frame: the object moves right and up
START = (16, 56)
SIDE = 32


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CVKD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def square_video(tmp_path):
    """13 frames (one GOP of 12 + an I-frame): the square stays inside the frame."""
    return CompressedVideo(encode(moving_square(SIZE, 12, VELOCITY, START, SIDE), tmp_path / "square.mp4", gop=12))


@pytest.fixture
def pan_video(tmp_path):
    return CompressedVideo(encode(pan(SIZE, 24, (2, 1)), tmp_path / "pan.mp4", gop=12))


def interior(t: int, margin: int = 8) -> tuple[slice, slice]:
    """Rows/cols strictly inside the square at frame t (away from its edges and from block boundaries)."""
    x, y = START[0] + VELOCITY[0] * t, START[1] + VELOCITY[1] * t
    return slice(y + margin, y + SIDE - margin), slice(x + margin, x + SIDE - margin)


def fraction_equal(field: np.ndarray, expected: tuple[int, int]) -> float:
    return float(np.mean(np.all(field.reshape(-1, 2) == expected, axis=1)))


def assert_motion(field: np.ndarray, expected: tuple[int, int], fraction: float = 0.8) -> None:
    """The typical vector is exactly `expected` and most pixels carry it (the encoder may miss a block or two)."""
    vectors = field.reshape(-1, 2)
    assert tuple(np.median(vectors, axis=0)) == expected
    assert fraction_equal(field, expected) > fraction


def test_geometry(square_video):
    assert square_video.num_frames == 12 and square_video.num_gops == 1
    assert (square_video.width, square_video.height) == SIZE


@pytest.mark.parametrize("t", [1, 4, 11])
def test_motion_vectors_equal_known_motion_inside_the_object(square_video, t):
    field = square_video.load(t, "mv", accumulate=False)
    assert field.dtype == np.int16 and field.shape == (SIZE[1], SIZE[0], 2)
    rows, cols = interior(t)
    assert_motion(field[rows, cols], VELOCITY)


def test_static_background_has_zero_motion(square_video):
    field = square_video.load(5, "mv", accumulate=False)
    # Top-left corner: far from the square's whole path.
    assert np.all(field[:16, :16] == 0)


@pytest.mark.parametrize("t", [1, 3, 7, 11])
def test_accumulated_motion_is_t_times_per_frame_motion(square_video, t):
    field = square_video.load(t, "mv")
    rows, cols = interior(t)
    expected = (VELOCITY[0] * t, VELOCITY[1] * t)
    assert_motion(field[rows, cols], expected)


@pytest.mark.parametrize("t", [2, 6, 11])
def test_camera_pan_accumulates_over_the_whole_frame(pan_video, t):
    field = pan_video.load(12 + t, "mv")
    centre = field[24:72, 32:96]
    assert_motion(centre, (2 * t, 1 * t))


def test_residual_of_a_pure_translation_is_near_zero_inside_the_object(square_video):
    t = 6
    rows, cols = interior(t)
    compensated = np.abs(square_video.load(t, "residual")[rows, cols].astype(int)).mean()
    uncompensated = np.abs(
        square_video.load(t, "rgb")[rows, cols].astype(int) - square_video.load(t, "iframe")[rows, cols].astype(int)
    ).mean()
    assert uncompensated > 20  # the object really moved over texture
    assert compensated < 3  # motion compensation explains it (only coding noise is left)


@pytest.mark.parametrize("accumulate", [True, False])
def test_reference_plus_residual_rebuilds_the_frame_exactly(square_video, accumulate):
    t = 7
    data = square_video.load_many([t, t - 1], ["mv", "residual", "rgb", "iframe"], accumulate=accumulate)
    motion, res, frame = data["mv"][0], data["residual"][0], data["rgb"][0]
    reference = data["iframe"][0] if accumulate else data["rgb"][1]
    height, width = frame.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    # map(p) = p - mv(p): where each pixel comes from in the reference (clamped like the codec's edge extension).
    source_x = np.clip(xs - motion[..., 0], 0, width - 1)
    source_y = np.clip(ys - motion[..., 1], 0, height - 1)
    rebuilt = reference[source_y, source_x].astype(np.int16) + res
    assert res.dtype == np.int16
    assert np.array_equal(rebuilt, frame.astype(np.int16))


def test_iframe_has_no_motion_and_no_residual(square_video):
    assert not square_video.load(0, "mv").any()
    assert not square_video.load(0, "residual").any()
    assert np.array_equal(square_video.load(0, "iframe"), square_video.load(0, "rgb"))


def test_iframe_representation_is_the_gops_first_frame(pan_video):
    assert np.array_equal(pan_video.load(17, "iframe"), pan_video.load(12, "rgb"))
    assert not np.array_equal(pan_video.load(17, "iframe"), pan_video.load(0, "rgb"))


def test_flipping_a_clip_negates_mv_x(tmp_path, square_video):
    flipped_clip = [frame[:, ::-1].copy() for frame in moving_square(SIZE, 12, VELOCITY, START, SIDE)]
    flipped = CompressedVideo(encode(flipped_clip, tmp_path / "flipped.mp4", gop=12))
    t = 5
    rows, cols = interior(t)
    mirrored_cols = slice(SIZE[0] - cols.stop, SIZE[0] - cols.start)
    assert_motion(flipped.load(t, "mv", accumulate=False)[rows, mirrored_cols], (-VELOCITY[0], VELOCITY[1]))


def test_load_many_equals_single_loads_across_gops(pan_video):
    frames = [20, 3, 13, 3]
    many = pan_video.load_many(frames, ["mv", "residual", "iframe"])
    for i, frame in enumerate(frames):
        assert np.array_equal(many["mv"][i], pan_video.load(frame, "mv"))
        assert np.array_equal(many["residual"][i], pan_video.load(frame, "residual"))
        assert np.array_equal(many["iframe"][i], pan_video.load(frame, "iframe"))


def test_raw_elementary_stream_reads_like_the_container(tmp_path):
    frames = pan(SIZE, 24, (2, 1))
    raw = CompressedVideo(encode_with_pyav(frames, tmp_path / "raw.m4v", container_format="m4v", gop=12))
    boxed = CompressedVideo(encode_with_pyav(frames, tmp_path / "boxed.mp4", gop=12))
    assert not raw.index.seekable and boxed.index.seekable
    for frame in (5, 18):
        assert np.array_equal(raw.load(frame, "mv"), boxed.load(frame, "mv"))
        assert np.array_equal(raw.load(frame, "residual"), boxed.load(frame, "residual"))


def test_mpeg4_b_frames_are_refused_with_a_clear_message(tmp_path):
    """FFmpeg exports zero vectors for MPEG-4 Part 2 B-frames (H.264 B-frames are read: tests/codec/test_h264.py)."""
    path = encode_with_pyav(pan(SIZE, 20, (2, 1)), tmp_path / "b.mp4", gop=12, b_frames=2)
    with pytest.raises(UnsupportedVideoError, match="mpeg4 B-frames export no usable motion vectors.*cvkd reencode") as caught:
        CompressedVideo(path)
    assert str(path) in str(caught.value)


def test_frame_out_of_range_names_the_file(square_video):
    with pytest.raises(FrameIndexError, match=r"frame 12 out of range \(video has 12 frames\)") as caught:
        square_video.load(12, "mv")
    assert square_video.path in str(caught.value)


def test_unknown_representation(square_video):
    with pytest.raises(ValueError, match="unknown representation 'flow'"):
        square_video.load(1, "flow")


def test_truncated_video_errors_or_reads_what_is_there(tmp_path):
    path = encode(pan(SIZE, 24, (2, 1)), tmp_path / "full.mp4", gop=12)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    try:
        video = CompressedVideo(cut)
    except VideoError as error:
        assert str(cut) in str(error)
        return
    for frame in range(video.num_frames):
        try:
            assert video.load(frame, "residual").shape == (SIZE[1], SIZE[0], 3)
        except VideoError as error:
            assert str(cut) in str(error)


def test_threads_share_one_reader(pan_video):
    expected = {frame: pan_video.load(frame, "mv") for frame in (3, 9, 15, 21)}
    errors = []

    def worker(frame):
        for _ in range(5):
            if not np.array_equal(pan_video.load(frame, "mv"), expected[frame]):
                errors.append(frame)

    threads = [threading.Thread(target=worker, args=(frame,)) for frame in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def _load_in_child(video: CompressedVideo) -> np.ndarray:
    return video.load(15, "residual")


def test_reader_pickles_into_worker_processes(pan_video):
    pan_video.load(3, "mv")  # open the container in the parent first
    clone = pickle.loads(pickle.dumps(pan_video))
    assert np.array_equal(clone.load(15, "residual"), pan_video.load(15, "residual"))
    with ProcessPoolExecutor(1) as pool:
        assert np.array_equal(pool.submit(_load_in_child, pan_video).result(), pan_video.load(15, "residual"))


def test_a_frame_decoding_out_of_place_is_an_error_not_a_mislabelled_frame(square_video):
    """Frames are numbered by counting from the GOP's I-frame; a timestamp that disagrees with the index (the decoder
    dropped a frame) is one line naming the file and the frame, never a frame read as another."""
    from dataclasses import replace

    pts = list(square_video.index.frame_pts)
    pts[3] += 1  # as if frame 3 had been dropped and the next one had come in its place
    video = CompressedVideo(square_video.path, index=replace(square_video.index, frame_pts=tuple(pts)))
    with pytest.raises(VideoError, match=r"frame 3 decodes with timestamp .* the index has"):
        video.load(5, "rgb")
    assert video.load(2, "rgb").shape == (video.height, video.width, 3)  # frames before it still read


def test_the_codec_table_decides_what_is_read_natively():
    from cvkd.codec.capabilities import UNKNOWN_REFERENCES, codec_capabilities
    h264, mpeg4, hevc = (codec_capabilities(name) for name in ("h264", "mpeg4", "hevc"))
    assert h264.motion_vectors and h264.b_frame_vectors and not h264.vop_headers
    assert mpeg4.motion_vectors and not mpeg4.b_frame_vectors and mpeg4.vop_headers
    assert not hevc.motion_vectors and hevc.name == "hevc"  # a codec the table does not list can do nothing
    assert mpeg4.reference_count(b"anything") == 1 and h264.reference_count(None) == UNKNOWN_REFERENCES
