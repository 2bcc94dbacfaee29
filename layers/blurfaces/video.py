"""Video in and out with PyAV: probe, decode a time range, encode segments, stitch and mux.

Frames are identified by their presentation timestamps (pts) in the source stream's time base,
never by a frame rate: variable frame rate stays variable and every output frame carries the
pts of the input frame it came from. Headers are not trusted for counts: the probe demuxes
every video packet (cheap, no decoding) to learn the frame times and keyframes.

Segments are video-only NUT files (NUT keeps any time base exactly; MP4 shifts a segment's
first timestamp). H.264 is encoded without B-frames, so decode order is presentation order and
segments from different workers join by copying packets, without re-encoding. The final MP4
gets the source's audio stream once, copied when MP4 can carry it, otherwise re-encoded to AAC.
"""
from __future__ import annotations

import heapq
import os
import queue
import threading
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

import errno

from .errors import InputError, OutputError

#: errno values that mean "the disk is full" (or the file-size limit was reached)
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}

# Audio codecs the MP4 muxer carries as they are; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "mp2", "flac"}
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe",
                 "gif", "apng", "gif_pipe", "image2pipe"}



@dataclass
class VideoInfo:
    """What the plan needs to know about a source video (JSON-serialisable)."""
    name: str
    width: int                  # coded size
    height: int
    display_width: int          # after rotation
    display_height: int
    rotation: int               # PyAV frame.rotation; np.rot90(k=rotation // 90) makes it upright
    time_base: tuple            # (num, den) of the video stream
    first_pts: int
    n_packets: int
    duration_s: float
    codec: str
    pix_fmt: str | None
    avg_rate: float | None
    vfr: bool
    keyframes: list = field(default_factory=list)   # pts of keyframes, sorted
    pts: list = field(default_factory=list)         # pts of every packet, sorted
    audio: dict | None = None

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoInfo":
        d = dict(d)
        d["time_base"] = tuple(d["time_base"])
        return cls(**d)


def _open(src, name: str):
    try:
        return av.open(src, "r")
    except av.error.FileNotFoundError:
        raise InputError(f"{name}: file not found. Check the path.") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a video file. "
                         "Give a video file (or use `blurfaces batch` for a folder).") from None
    except (av.error.InvalidDataError, av.error.EOFError, av.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"{name}: not a readable video ({_why(e)}). "
                         "Check that the file is a complete video file.") from None


def _why(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(":")[-1].strip() if msg else type(e).__name__


def _video_stream(container, name):
    if container.format.name in IMAGE_FORMATS or any(
            n in IMAGE_FORMATS for n in container.format.name.split(",")):
        raise InputError(f"{name}: is a still image ({container.format.name}), not a video. "
                         "Give a video file.")
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise InputError(f"{name}: has no video stream ({kinds}). Give a file with video.")
    return container.streams.video[0]


def probe(src, name: str | None = None) -> VideoInfo:
    """Demux every video packet (no decode) and decode the first frame to check the file."""
    name = name or str(src)
    if isinstance(src, (str, os.PathLike)):
        if os.path.isdir(src):
            raise InputError(f"{name}: is a directory, not a video file. "
                             "Give a video file (or use `blurfaces batch` for a folder).")
        if not os.path.exists(src):
            raise InputError(f"{name}: file not found. Check the path.")
        if os.path.getsize(src) == 0:
            raise InputError(f"{name}: file is empty (0 bytes). Give a complete video file.")
    container = _open(src, name)
    try:
        vs = _video_stream(container, name)
        if vs.codec_context is None or vs.codec_context.name is None:
            raise InputError(f"{name}: video codec not supported by this build of FFmpeg.")
        tb = vs.time_base
        pts, keys = [], []
        n_data = 0
        try:
            for pkt in container.demux(vs):
                n_data += pkt.size > 0
                if pkt.size == 0 or pkt.pts is None:
                    continue
                if pkt.is_discard:
                    continue    # edit-list pre-roll: decoded as a reference, never shown
                pts.append(pkt.pts)
                if pkt.is_keyframe:
                    keys.append(pkt.pts)
        except (av.error.InvalidDataError, av.error.EOFError, av.FFmpegError) as e:
            raise InputError(f"{name}: video data is corrupt or truncated after {len(pts)} "
                             f"frames ({_why(e)}). Re-export or re-download the file.") from None
        if not pts:
            raise InputError(f"{name}: the video stream has no frames. Give a complete video.")
        if "mov" in container.format.name.split(",") and vs.frames and n_data < vs.frames:
            # MP4/MOV index every sample up front: fewer in the file means its data stops early
            # (a truncated download or copy), which would otherwise give a shorter output.
            raise InputError(f"{name}: the file is truncated: its index lists {vs.frames} video "
                             f"frames but only {n_data} are in the file. Re-export or "
                             "re-download the complete file.")
        pts.sort()
        keys.sort()
        if pts[0] not in keys:
            keys.insert(0, pts[0])     # decoding from the very start always works
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            cname = a.codec_context.name if a.codec_context else None
            audio = {"index": a.index, "codec": cname, "sample_rate": a.sample_rate,
                     "channels": a.channels, "copy": cname in MP4_AUDIO}
    finally:
        container.close()
    first = _first_frame(src, name)
    rotation = int(first.rotation or 0) % 360
    w, h = first.width, first.height
    dw, dh = (h, w) if rotation in (90, 270) else (w, h)
    steps = np.diff(np.asarray(pts, dtype=np.int64)) if len(pts) > 1 else np.array([0])
    step = float(np.median(steps)) * tb if len(pts) > 1 else 0.0
    vfr = bool(len(pts) > 2 and (steps.max() - steps.min()) > 0.02 * max(1, np.median(steps)))
    duration = float((pts[-1] - pts[0]) * tb + step)
    return VideoInfo(
        name=name, width=w, height=h, display_width=dw, display_height=dh, rotation=rotation,
        time_base=(tb.numerator, tb.denominator), first_pts=int(pts[0]), n_packets=len(pts),
        duration_s=duration, codec=vs.codec_context.name, pix_fmt=first.format.name,
        avg_rate=float(vs.average_rate) if vs.average_rate else None, vfr=vfr,
        keyframes=[int(k) for k in keys], pts=[int(p) for p in pts], audio=audio)


def _first_frame(src, name):
    if hasattr(src, "seek"):
        src.seek(0)
    container = _open(src, name)
    try:
        vs = container.streams.video[0]
        for frame in container.decode(vs):
            return frame
    except (av.error.InvalidDataError, av.FFmpegError) as e:
        raise InputError(f"{name}: the video cannot be decoded ({_why(e)}). "
                         "The file is corrupt or uses an unsupported codec.") from None
    finally:
        container.close()
    raise InputError(f"{name}: no video frame could be decoded. The file is corrupt or truncated.")


@dataclass
class Frame:
    pts: int
    rgb: np.ndarray             # upright (display orientation), RGB, uint8


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb


def stored(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90))) if rotation else rgb


def iter_frames(src, info: VideoInfo, seek_pts: int | None, start_pts: int | None,
                stop_pts: int | None, threads: int = 0) -> Iterator[Frame]:
    """Decode frames with start_pts <= pts < stop_pts (None = open end), seeking first to the
    keyframe seek_pts. Yields upright RGB frames in presentation order."""
    if hasattr(src, "seek"):
        src.seek(0)
    container = _open(src, info.name)
    try:
        vs = container.streams.video[0]
        # Slice threads only: with frame threads, freeing an H.264 decoder that has just
        # reported corrupt data sometimes deadlocks inside FFmpeg (the process never exits).
        # Decoding is a small share of the time next to detection either way.
        vs.thread_type = "SLICE"
        if threads:
            vs.codec_context.thread_count = threads
        if seek_pts is not None and seek_pts > info.first_pts:
            container.seek(seek_pts, stream=vs, backward=True, any_frame=False)
        first = True
        last_pts = None
        for frame in container.decode(vs):
            pts = frame.pts
            if pts is None:     # containers without pts: rebuild from the previous frame
                pts = (last_pts + 1) if last_pts is not None else info.first_pts
            if first and start_pts is not None and pts > start_pts:
                raise RuntimeError(f"seek to {seek_pts} landed after {start_pts} (at {pts})")
            first = False
            if last_pts is not None and pts <= last_pts:
                continue        # duplicate or out-of-order pts: keep presentation order strict
            last_pts = pts
            if start_pts is not None and pts < start_pts:
                continue
            if stop_pts is not None and pts >= stop_pts:
                break
            yield Frame(pts, upright(frame.to_ndarray(format="rgb24"), info.rotation))
    except (av.error.InvalidDataError, av.FFmpegError) as e:
        raise InputError(f"{info.name}: decoding failed ({_why(e)}). "
                         "The file is corrupt or truncated.") from None
    finally:
        container.close()


_END = object()


def prefetch(iterable, depth: int = 6):
    """Iterate `iterable` in a background thread, `depth` items ahead. PyAV decodes and
    encodes without holding the GIL, so decoding overlaps with detection."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=produce, daemon=True, name="blurfaces-decode")
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=10)
        close = getattr(iterable, "close", None)
        if close is not None and not t.is_alive():
            close()


class SegmentEncoder:
    """Encode upright RGB frames, with the source's pts, to a video-only H.264 NUT segment.

    Every segment uses the same settings (so the SPS/PPS match and segments concatenate),
    no B-frames (dts == pts), and starts with an IDR frame."""

    def __init__(self, path: str, info: VideoInfo, *, crf: int = 20, preset: str = "veryfast",
                 threads: int = 0):
        self.info = info
        self.path = path
        self.container = av.open(path, "w", format="nut")
        odd = info.width % 2 or info.height % 2
        # yuv420p cannot hold odd sizes; 4:4:4 keeps the exact size (High 4:4:4 profile).
        self.pix_fmt = "yuv444p" if odd else "yuv420p"
        s = self.container.add_stream("libx264")
        s.width, s.height, s.pix_fmt = info.width, info.height, self.pix_fmt
        s.codec_context.time_base = info.tb
        s.time_base = info.tb
        opts = {"crf": str(crf), "preset": preset, "bf": "0", "g": "250"}
        if threads:
            opts["threads"] = str(threads)
        s.options = opts
        self.stream = s
        self.count = 0
        # Colour conversion and x264 run in their own thread, overlapping with detection.
        self._q: queue.Queue = queue.Queue(maxsize=6)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="blurfaces-encode")
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is None:
                    break
                rgb, pts = item
                f = av.VideoFrame.from_ndarray(stored(rgb, self.info.rotation), format="rgb24")
                f.pts = pts
                f.time_base = self.info.tb
                for pkt in self.stream.encode(f):
                    self.container.mux(pkt)
            for pkt in self.stream.encode(None):
                self.container.mux(pkt)
        except BaseException as e:  # re-raised in the caller's thread
            self._error = e
            while True:     # keep draining so the producer never blocks forever
                if self._q.get() is None:
                    break
        finally:
            # Closing writes the last buffered bytes and the trailer: a full disk shows up
            # here, and it must reach the caller, not die with this thread.
            try:
                self.container.close()
            except BaseException as e:  # noqa: BLE001
                if self._error is None:
                    self._error = e

    def encode(self, rgb_upright: np.ndarray, pts: int) -> None:
        if self._error is not None:
            self._raise()
        self._q.put((rgb_upright, pts))
        self.count += 1

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        if self._error is not None:
            self._raise()

    def _raise(self):
        e = self._error
        if getattr(e, "errno", None) in DISK_FULL:
            raise OutputError(f"{os.path.dirname(self.path)}: no space left while writing a "
                              "temporary video segment. Free space there or set TMPDIR to a "
                              "folder with more room; nothing was published.") from None
        raise e


def _packets(path):
    c = av.open(path)
    try:
        s = c.streams.video[0]
        for pkt in c.demux(s):
            if pkt.size:
                yield pkt
    finally:
        c.close()


def stitch(segments: list[str], source, info: VideoInfo, out_path: str, *,
           keep_audio: bool = True) -> dict:
    """Join segments (in order, packets copied) and the source's audio into one MP4."""
    out = av.open(out_path, "w", format="mp4", options={"movflags": "+faststart"})
    try:
        first = av.open(segments[0])
        vs = out.add_stream_from_template(first.streams.video[0])
        first.close()
        vs.time_base = info.tb
        if info.rotation:
            vs.set_display_rotation(info.rotation)
        sources = [_video_copy(segments, info.tb, vs)]
        audio_out = None
        src_container = None
        if keep_audio and info.audio:
            if hasattr(source, "seek"):
                source.seek(0)
            src_container = _open(source, info.name)
            a_in = src_container.streams.audio[0]
            if info.audio["copy"]:
                audio_out = out.add_stream_from_template(a_in)
                sources.append(_audio_copy(src_container, a_in, audio_out))
            else:
                audio_out = out.add_stream("aac", rate=a_in.sample_rate or 48000)
                audio_out.layout = a_in.layout.name if a_in.layout else "stereo"
                sources.append(_audio_encode(src_container, a_in, audio_out))
        n_video = 0
        for _, kind, _, pkt, stream in heapq.merge(*sources, key=lambda x: (x[0], x[1], x[2])):
            pkt.stream = stream
            if kind == 0:
                n_video += 1
            out.mux(pkt)
        if src_container is not None:
            src_container.close()
    finally:
        out.close()
    return {"video_packets": n_video, "audio": bool(info.audio and keep_audio),
            "audio_mode": None if not (info.audio and keep_audio) else
            ("copy" if info.audio["copy"] else "aac")}


def _video_copy(segments, tb, v_out):
    """The segments' packets in order, keyed for merging with the audio by decode time."""
    packets = (p for seg in segments for p in _packets(seg))
    for i, pkt in enumerate(packets):
        ts = pkt.dts if pkt.dts is not None else pkt.pts
        yield (float(ts * tb), 0, i, pkt, v_out)


def _audio_copy(container, a_in, a_out):
    tb = a_in.time_base
    for i, pkt in enumerate(container.demux(a_in)):
        if pkt.size == 0 or pkt.dts is None:
            continue
        yield (float(pkt.dts * tb), 1, i, pkt, a_out)


def _audio_encode(container, a_in, a_out):
    resampler = av.AudioResampler(format="fltp", layout=a_out.layout.name, rate=a_out.rate)
    i = 0
    tb = Fraction(1, a_out.rate)

    def emit(frames):
        nonlocal i
        for fr in frames:
            for pkt in a_out.encode(fr):
                i += 1
                yield (float(pkt.pts * pkt.time_base) if pkt.pts is not None else 0.0, 1, i, pkt,
                       a_out)

    next_pts = None
    for frame in container.decode(a_in):
        for rf in resampler.resample(frame):
            if next_pts is None:
                next_pts = round(float(frame.pts * frame.time_base) * a_out.rate) \
                    if frame.pts is not None else 0
            rf.pts, rf.time_base = next_pts, tb
            next_pts += rf.samples
            yield from emit([rf])
    for rf in resampler.resample(None):
        rf.pts, rf.time_base = next_pts or 0, tb
        next_pts = (next_pts or 0) + rf.samples
        yield from emit([rf])
    yield from emit([None])


def source_audio_seconds(src, info: VideoInfo) -> float | None:
    """How long the source's first audio stream lasts, from its packets (no decoding)."""
    if not info.audio:
        return None
    if hasattr(src, "seek"):
        src.seek(0)
    c = _open(src, info.name)
    try:
        a = c.streams.audio[0]
        start = end = None
        for pkt in c.demux(a):
            if pkt.size == 0 or pkt.pts is None:
                continue
            t0 = pkt.pts * pkt.time_base
            t1 = (pkt.pts + (pkt.duration or 0)) * pkt.time_base
            start = t0 if start is None else min(start, t0)
            end = t1 if end is None else max(end, t1)
        return None if start is None else float(end - start)
    finally:
        c.close()
