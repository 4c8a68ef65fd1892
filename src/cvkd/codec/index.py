"""Probe a video once: codec, size, per-frame picture types and packet timestamps, and its GOP table (cached)."""

from __future__ import annotations

import bisect
import errno
import hashlib
import itertools
import json
import os
import stat as statmod
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import av

from cvkd.codec.capabilities import codec_capabilities
from cvkd.codec.vop import last_vop, time_increment_bits, time_resolution, uneven_step, vop_header_is_whole, vop_time
from cvkd.errors import ConfigError, CvkdError, FrameIndexError, VideoError
from cvkd.fileio import atomic_write_json, cache_root

_INDEX_VERSION = 5  # 2: MPEG-4 Part 2 with B-frames indexed in display order; 3: truncated files refused;
# 4: misplaced pictures refused (seeks checked, raw packets counted, raw MPEG-4 timing); 5: time base, nominal rate and
# end of the last picture kept (codec.timeline); an AVI whose empty chunks skip frames is sparse, not truncated
_VOP_START_CODE = b"\x00\x00\x01\xb6"
_VOP_TYPES = "IPBS"  # MPEG-4 Part 2 vop_coding_type 0..3
_PICT_TYPE_LETTERS = "?IPBS??B"  # PyAV PictureType: NONE I P B S SI SP BI
# Container formats that carry no index: their packets have no usable timestamps, so they are read from the start.
_RAW_FORMATS = {"m4v", "h264", "hevc", "mpegvideo", "rawvideo"}
_VOL_SEARCH_BYTES = 1 << 16  # how far into a raw MPEG-4 stream its VOL header is looked for
_VOP_HEAD_BYTES = 16  # bytes of a VOP kept for its time stamp (start code, type, modulo time base, increment)


@dataclass(frozen=True)
class VideoIndex:
    """Everything about a video that sampling and seeking need, computed by one demux pass."""

    path: str
    codec: str
    container_format: str
    width: int
    height: int
    fps: float
    pict_types: str  # one letter per frame in display order: I, P, B or S
    frame_pts: tuple[int | None, ...]  # packet timestamp of every frame (None in raw streams)
    gop_starts: tuple[int, ...]  # first frame of every GOP (an I-frame)
    rotation: int = 0  # display rotation in degrees counter-clockwise (the container's display matrix); frames are
    # read as stored, unrotated: `info` and `predict` say so
    time_base: tuple[int, int] = (0, 1)  # seconds per unit of frame_pts as (numerator, denominator); (0, 1): none
    end_pts: int | None = None  # where the last picture in display order ends (its timestamp plus its duration)
    nominal_fps: float = 0.0  # the frame rate the container declares (FFmpeg's guess); an AVI's rate of frame slots

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return len(self.pict_types)

    @property
    def num_gops(self) -> int:
        """Number of GOPs."""
        return len(self.gop_starts)

    @property
    def gop_lengths(self) -> tuple[int, ...]:
        """Frames in each GOP."""
        ends = self.gop_starts[1:] + (self.num_frames,)
        return tuple(end - start for start, end in zip(self.gop_starts, ends))

    @property
    def seekable(self) -> bool:
        """Whether the container lets the reader seek to a GOP's I-frame by timestamp."""
        return self.container_format not in _RAW_FORMATS and all(
            self.frame_pts[start] is not None for start in self.gop_starts
        )

    @property
    def has_b_frames(self) -> bool:
        """Whether any frame is bidirectionally predicted."""
        return "B" in self.pict_types

    def gop_of(self, frame: int) -> tuple[int, int]:
        """Return (gop index, position inside the GOP) of `frame`."""
        self.check_frame(frame)
        gop = bisect.bisect_right(self.gop_starts, frame) - 1
        return gop, frame - self.gop_starts[gop]

    def check_frame(self, frame: int) -> None:
        """Raise FrameIndexError unless 0 <= frame < num_frames."""
        if not 0 <= frame < self.num_frames:
            raise FrameIndexError(self.path, f"frame {frame} out of range (video has {self.num_frames} frames)")


class BoundedCache:
    """A least-recently-used mapping of at most `capacity` entries (the process's video indexes: about 10 kB per
    250-frame video, so the default 4,096 stays near 40 MB per loader worker whatever the dataset's size)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict = OrderedDict()

    def get(self, key: object) -> object | None:
        """The entry of `key` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def __setitem__(self, key: object, value: object) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _cache_capacity() -> int:
    """CVKD_INDEX_CACHE_SIZE (video indexes kept in memory per process), default 4,096."""
    text = os.environ.get("CVKD_INDEX_CACHE_SIZE", "4096")
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"CVKD_INDEX_CACHE_SIZE must be a whole number of videos, got {text!r:.40}") from None
    if value < 1:
        raise ConfigError(f"CVKD_INDEX_CACHE_SIZE must be >= 1, got {value}")
    return value


_memory_cache = BoundedCache(_cache_capacity())
_memory_lock = threading.Lock()


def cache_dir() -> Path:
    """Directory of the on-disk index cache: $CVKD_CACHE_DIR/index, else ~/.cache/cvkd/index."""
    return cache_root() / "index"


def stat_video(path: str | os.PathLike) -> os.stat_result:
    """`os.stat` of a video file; VideoError naming it when it is missing, a symbolic link loop, a folder, not a
    regular file (a fifo would block the demuxer) or empty."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        raise VideoError(path, "no such file") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise VideoError(path, "symbolic link loop") from None
        raise VideoError(path, f"cannot access ({error.strerror or error})") from None
    if statmod.S_ISDIR(stat.st_mode):
        raise VideoError(path, "is a directory, not a video")
    if not statmod.S_ISREG(stat.st_mode):
        raise VideoError(path, f"not a regular file (a {_file_kind(stat.st_mode)})")
    if stat.st_size == 0:
        raise VideoError(path, "empty file")
    return stat


def _file_kind(mode: int) -> str:
    """What a file that is neither a folder nor a regular file is."""
    kinds = ((statmod.S_ISFIFO, "fifo"), (statmod.S_ISSOCK, "socket"), (statmod.S_ISCHR, "character device"),
             (statmod.S_ISBLK, "block device"))
    return next((name for test, name in kinds if test(mode)), "special file")


def index_video(path: str | os.PathLike, use_cache: bool = True) -> VideoIndex:
    """Return the index of `path`, from the cache when its path, size and mtime are unchanged."""
    path = Path(path)
    stat = stat_video(path)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if use_cache:
        with _memory_lock:
            cached = _memory_cache.get(key)
        if cached is None:
            cached = _read_disk_cache(key)
        if cached is not None:
            with _memory_lock:
                _memory_cache[key] = cached
            return cached
    index = scan_video(path)
    if use_cache:
        with _memory_lock:
            _memory_cache[key] = index
        _write_disk_cache(key, index)
    return index


def scan_video(path: str | os.PathLike) -> VideoIndex:
    """Demux `path` once (no decoding for MPEG-4 Part 2) and build its index."""
    path = Path(path)
    try:
        container = open_video(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(path, f"not a readable video ({_short(error)})") from None
    with container:
        stream = first_video_stream(container, path)
        codec = stream.codec_context.name
        headers = codec_capabilities(codec).vop_headers
        notes = ScanNotes()
        try:
            if not headers:
                types, pts = _scan_by_decoding(container, stream, notes)
            else:
                types, pts = _scan_mpeg4_packets(container, stream, notes)
                if "B" in types:  # packets come in decode order: B-frames need display order, from a fresh demuxer
                    with open_video(path) as again:
                        types, pts = _scan_by_decoding(again, first_video_stream(again, path), ScanNotes())
        except av.FFmpegError as error:
            raise VideoError(path, f"corrupt video stream ({_short(error)})") from None
        listed = stream.frames  # the container's own index (0 for raw streams and containers without one)
        rotation = notes.rotation if notes.rotation is not None else _first_frame_rotation(path)
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        nominal = stream.guessed_rate or rate
        nominal_fps = float(nominal) if nominal else 0.0
        time_base = (stream.time_base.numerator, stream.time_base.denominator) if stream.time_base else (0, 1)
        format_name = container.format.name.split(",")[0]
    if not types:
        raise VideoError(path, "contains no video frames")
    end_pts = notes.end_pts(pts, time_base, nominal_fps)
    if 0 < len(types) < listed and not _skips_listed_slots(format_name, listed, end_pts, time_base, nominal_fps):
        raise VideoError(path, f"damaged: the container's index lists {listed} frames, the file holds {len(types)} "
                               "(truncated?)")
    if types[0] != "I":
        raise VideoError(path, f"does not start with an I-frame (first picture type {types[0]!r})")
    if not width or not height:
        raise VideoError(path, "has no frame size")
    if format_name in _RAW_FORMATS and notes.packets != len(types):
        raise VideoError(path, f"damaged: its {notes.packets} packets hold {len(types)} pictures, so a picture cannot "
                               "be found by counting packets (a damaged or headless raw stream?); re-encode it")
    if headers and "B" not in types and format_name in _RAW_FORMATS:
        _check_last_gop_decodes(path, types)
        _check_even_timing(path, notes.vop_heads)
    starts = tuple(i for i, kind in enumerate(types) if kind == "I")
    if format_name not in _RAW_FORMATS and all(pts[start] is not None for start in starts):
        checked = starts if format_name == "avi" else range(len(pts))  # AVI: chunk numbers, packed B-frames disorder
        _check_increasing_timestamps(path, [(frame, pts[frame]) for frame in checked if pts[frame] is not None])
        _check_seeks_land_where_indexed(path, [(start, pts[start]) for start in starts], notes.keys)
    return VideoIndex(
        path=str(path),
        codec=codec,
        container_format=format_name,
        width=width,
        height=height,
        fps=fps,
        pict_types="".join(types),
        frame_pts=tuple(pts),
        gop_starts=starts,
        rotation=rotation,
        time_base=time_base,
        end_pts=end_pts,
        nominal_fps=nominal_fps,
    )


def _skips_listed_slots(format_name: str, listed: int, end_pts: int | None, time_base: tuple[int, int],
                        nominal_fps: float) -> bool:
    """Whether a file holding fewer pictures than its container lists is sparse rather than truncated: an AVI lists
    frame slots (its timestamps count them, one per period of its declared rate) and marks a skipped frame by an
    empty chunk, so 68 pictures may fill 444 listed slots. It is sparse when its last picture ends at the listing's
    end (within half a slot); a file cut short ends before it. Other containers list pictures (an MP4 sample table),
    so there fewer pictures than listed is always damage."""
    if format_name != "avi" or end_pts is None or not time_base[0] or nominal_fps <= 0:
        return False
    slots = end_pts * time_base[0] / time_base[1] * nominal_fps
    return slots >= listed - 0.5


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a video for reading; metadata that is not valid UTF-8 is replaced rather than fatal."""
    return av.open(os.fspath(path), metadata_errors="replace")


def first_video_stream(container: av.container.InputContainer, path: str | os.PathLike) -> av.video.stream.VideoStream:
    """The first video stream of an open container; VideoError when there is none or no decoder knows its codec."""
    if not container.streams.video:
        raise VideoError(path, "has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(path, "video stream of an unknown codec (no decoder; corrupt header?)")
    return stream


@dataclass
class ScanNotes:
    """What a scan saw beside picture types and timestamps, for the checks that follow it."""

    keys: dict[int, int] = field(default_factory=dict)  # key packets' timestamp -> byte position
    packets: int = 0  # non-empty packets demuxed
    vop_heads: list[bytes] = field(default_factory=list)  # MPEG-4: the first bytes of every VOP
    rotation: int | None = None  # display rotation of the first decoded frame (None: nothing decoded)
    ends: dict[int, int] = field(default_factory=dict)  # a picture's timestamp -> its duration, where one is known

    def note_duration(self, pts: int | None, duration: int | None) -> None:
        """Record how long the picture at `pts` lasts (its packet's or frame's duration, when positive)."""
        if pts is not None and duration:
            self.ends[pts] = duration

    def end_pts(self, pts: list[int | None], time_base: tuple[int, int], nominal_fps: float) -> int | None:
        """Where the last picture in display order ends: its timestamp plus its duration, or one period of the
        nominal rate when no duration was given; None for a stream without timestamps."""
        stamps = [stamp for stamp in pts if stamp is not None]
        if not stamps:
            return None
        last = max(stamps)
        if last in self.ends:
            return last + self.ends[last]
        if time_base[0] and nominal_fps > 0:
            return last + max(1, round(time_base[1] / (time_base[0] * nominal_fps)))
        return last + 1

    def remember(self, packet: av.Packet) -> bool:
        """Count a packet and record it if it is a key packet (the first one seen for a timestamp); True."""
        self.packets += 1
        if packet.is_keyframe and packet.pts is not None and packet.pos is not None and packet.pos >= 0:
            self.keys.setdefault(packet.pts, packet.pos)
        return True


def _degrees(frame: av.VideoFrame) -> int:
    """A decoded frame's display rotation in degrees counter-clockwise, in 0..359 (0 when it has none)."""
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


def display_rotation(path: str | os.PathLike) -> int:
    """A video's display rotation in degrees counter-clockwise (its container's display matrix), from its first
    decoded frame; 0 when it has none or cannot be decoded."""
    return _first_frame_rotation(Path(path))


def _first_frame_rotation(path: Path) -> int:
    """Display rotation of a stream scanned without decoding: its first frame decoded once (0 if that fails)."""
    try:
        with open_video(path) as container:
            stream = first_video_stream(container, path)
            packets = (packet for packet in container.demux(stream) if packet.size)
            frame = next(iter(decode_packets(packets, stream, path, 0)), None)
    except (av.FFmpegError, CvkdError):
        return 0
    return 0 if frame is None else _degrees(frame)


def _check_even_timing(path: Path, heads: list[bytes]) -> None:
    """A raw MPEG-4 stream has no index: a picture lost from it shifts every later picture by one, silently. Its VOP
    time increments show the gap: a step other than the stream's usual one is a VideoError (so a raw stream of
    variable frame rate is refused too: re-encode it into a container)."""
    with open(path, "rb") as handle:
        resolution = time_resolution(handle.read(_VOL_SEARCH_BYTES))
    if resolution is None or len(heads) < 3:
        return
    bits = max(1, (resolution - 1).bit_length())
    times = [vop_time(head, bits) for head in heads]
    if any(time is None for time in times):
        return
    uneven = uneven_step(times, resolution)  # type: ignore[arg-type]
    if uneven is not None:
        index, periods = uneven
        raise VideoError(path, f"damaged: picture {index} comes {periods:.3g} frame periods after the one before "
                               "(a picture lost, or a variable frame rate?); re-encode it")


def _check_increasing_timestamps(path: Path, frames: list[tuple[int, int]]) -> None:
    """Frames in display order must have increasing timestamps, since the reader seeks by them and checks each
    decoded frame against them: a sample table that repeats one (an `stts` entry counting 1 sample instead of 36
    gave the I-frames of GOPs 1 and 2 both 512) or sends one back (a damaged `ctts` offset put frame 11 after
    frame 12) let a GOP's frame be another's picture, which the byte check of `_check_seeks_land_where_indexed`
    cannot see. An AVI's timestamps are chunk numbers (DivX's packed B-frames come out of order): only its I-frames
    are checked."""
    for (before, earlier), (frame, stamp) in zip(frames, frames[1:]):
        if stamp <= earlier:
            raise VideoError(path, f"damaged: frame {frame} has timestamp {stamp}, not after frame {before}'s "
                                   f"{earlier} (the container's timestamps repeat or go back); re-encode it")


def _check_seeks_land_where_indexed(path: Path, starts: list[tuple[int, int]], keys: dict[int, int]) -> None:
    """Seek to every GOP's I-frame as the reader will and check that the first packet is the key packet the scan
    found at that timestamp (same byte position). A sample table whose timestamps repeat (an `stts` delta of 0)
    lets a seek land on another GOP's picture, which would be returned as this frame: a VideoError instead."""
    if not keys:
        return
    with open_video(path) as container:
        stream = first_video_stream(container, path)
        for start, timestamp in starts:
            container.seek(timestamp, stream=stream, backward=True, any_frame=False)
            packet = next((packet for packet in container.demux(stream) if packet.size), None)
            if packet is None or packet.pos is None or packet.pos < 0:
                continue
            if keys.get(packet.pts) != packet.pos:
                raise VideoError(path, f"damaged: seeking to frame {start} lands on another picture (the container's "
                                       "timestamps repeat or disagree with its sample table); re-encode it")


def _scan_mpeg4_packets(
    container: av.container.InputContainer, stream, notes: ScanNotes
) -> tuple[list[str], list[int | None]]:
    """Read picture types from the VOP headers of MPEG-4 Part 2 packets, without decoding; a packet the demuxer
    flags corrupt (its data runs past the end of the file) is a VideoError. Packets and VOP heads go into `notes`."""
    types: list[str] = []
    pts: list[int | None] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        notes.remember(packet)
        if packet.is_corrupt:
            raise VideoError(container.name, f"damaged: the packet of frame {len(types)} is incomplete (truncated?)")
        payload = bytes(packet)
        offset = payload.find(_VOP_START_CODE)
        while offset >= 0 and offset + 4 < len(payload):
            types.append(_VOP_TYPES[payload[offset + 4] >> 6])
            notes.vop_heads.append(payload[offset:offset + _VOP_HEAD_BYTES])
            pts.append(packet.pts)
            notes.note_duration(packet.pts, packet.duration)
            offset = payload.find(_VOP_START_CODE, offset + 4)
    return types, pts


def _scan_by_decoding(
    container: av.container.InputContainer, stream, notes: ScanNotes
) -> tuple[list[str], list[int | None]]:
    """Read picture types of codecs other than MPEG-4 Part 2 by decoding every frame (slower). Codecs without
    picture types (Cinepak, ...) give "I" for a key frame and "?" for any other. Packets go into `notes`."""
    stream.thread_type = "AUTO"
    types: list[str] = []
    pts: list[int | None] = []
    packets = (packet for packet in container.demux(stream) if packet.size and notes.remember(packet))
    for frame in decode_packets(packets, stream, container.name, 0):
        if notes.rotation is None:
            notes.rotation = _degrees(frame)
        letter = _PICT_TYPE_LETTERS[int(frame.pict_type)]
        types.append("I" if letter == "?" and frame.key_frame else letter)
        pts.append(frame.pts)
        notes.note_duration(frame.pts, frame.duration)
    return types, pts


def decode_packets(
    packets: Iterable[av.Packet], stream, path: str | os.PathLike, first: int
) -> Iterator[av.VideoFrame]:
    """Decode `packets` (then drain the decoder); frames are numbered from `first`, and one the decoder flags
    corrupt (a cut or damaged packet) is a VideoError naming `path` and the frame."""
    produced = first
    for frame in itertools.chain.from_iterable(map(stream.codec_context.decode, itertools.chain(packets, [None]))):
        if frame.is_corrupt:
            raise VideoError(path, f"damaged: frame {produced} decodes corrupt (truncated?)")
        yield frame
        produced += 1


def packets_from_start(container: av.container.InputContainer, stream, start: int) -> Iterator[av.Packet]:
    """Demux a freshly opened raw stream (one packet per frame) and yield the packets from frame `start` on."""
    frame = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if frame >= start:
            yield packet
        frame += 1


def _check_last_gop_decodes(path: Path, types: list[str]) -> None:
    """A raw stream has no index to compare with: decode its last GOP, so that a stream cut mid-frame (its last
    packet incomplete) is a VideoError rather than a frame counted as good. A cut inside the last VOP's header
    decodes without error as a repeat of the previous picture, so that header is checked bit by bit as well."""
    start = max(i for i, kind in enumerate(types) if kind == "I")
    last_packet = b""

    def remembered(packets: Iterable[av.Packet]) -> Iterator[av.Packet]:
        nonlocal last_packet
        for packet in packets:
            last_packet = bytes(packet)
            yield packet

    with open_video(path) as container:
        stream = first_video_stream(container, path)
        stream.thread_type = "NONE"
        packets = remembered(packets_from_start(container, stream, start))
        try:
            decoded = sum(1 for _ in decode_packets(packets, stream, path, start))
        except av.FFmpegError as error:
            raise VideoError(path, f"damaged: decoding the last GOP failed ({_short(error)})") from None
    if start + decoded < len(types):
        raise VideoError(path, f"damaged: frame {start + decoded} could not be decoded (the stream holds "
                               f"{len(types)} VOP headers; truncated?)")
    with open(path, "rb") as handle:
        increment_bits = time_increment_bits(handle.read(_VOL_SEARCH_BYTES))  # a raw stream starts with its VOL
    vop = last_vop(last_packet)
    if increment_bits is not None and vop is not None and not vop_header_is_whole(vop, increment_bits):
        raise VideoError(path, f"damaged: the header of frame {len(types) - 1} is cut short (truncated?)")


def _cache_file(key: tuple[str, int, int]) -> Path:
    digest = hashlib.sha1(repr((_INDEX_VERSION,) + key).encode()).hexdigest()
    return cache_dir() / f"{digest}.json"


def _read_disk_cache(key: tuple[str, int, int]) -> VideoIndex | None:
    try:
        payload = json.loads(_cache_file(key).read_text())
        if payload.pop("key") != list(key):
            return None
        payload["frame_pts"] = tuple(payload["frame_pts"])
        payload["gop_starts"] = tuple(payload["gop_starts"])
        payload["time_base"] = tuple(payload["time_base"])
        return VideoIndex(**payload)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable or from another version: rescan


def _write_disk_cache(key: tuple[str, int, int], index: VideoIndex) -> None:
    try:
        atomic_write_json(_cache_file(key), {"key": list(key), **asdict(index)})
    except (OSError, CvkdError):  # CvkdError: atomic_write_json's report of a refused write
        pass  # a read-only or full cache directory only costs a rescan next time


def _short(error: BaseException) -> str:
    """A short reason from a PyAV error."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
