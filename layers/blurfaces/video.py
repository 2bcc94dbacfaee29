"""Video in and out with PyAV: probe, decode a time range, encode segments, stitch and mux.

Frames are identified by their presentation timestamps (pts) in the source stream's time base,
never by a frame rate: variable frame rate stays variable and every output frame carries the
pts of the input frame it came from. Headers are not trusted for anything: the probe decodes
every video frame once (no pixel conversion) and takes the frames, their presentation order
(the decoder's output order) and their times from the decoder. Where the container's times are
missing, repeated or out of order (AVI with B-frames, raw streams), they are rebuilt by a rule
the workers apply again (see TIMESTAMPS); a negative start is shifted to 0 with the audio; a
frame of another size than the first is scaled to it.

Segments are video-only NUT files (NUT keeps any time base exactly; MP4 shifts a segment's
first timestamp). H.264 is encoded without B-frames, so decode order is presentation order and
segments from different workers join by copying packets, without re-encoding. The final MP4
gets every audio stream of the source once, each copied when MP4 can carry it, otherwise
re-encoded to AAC.

Which video stream: a file may hold more than one (a cover picture, a thumbnail or preview
track, two lenses or cameras). The job anonymizes one, chosen by `main_video_stream` (never
an attached picture; the largest picture, then the stream marked default; equals refused);
the others, and subtitle and data streams, are not carried into the output (a picture of a
face in them would be published unmasked) and are listed in `VideoInfo.left_out`.
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

#: sample rates the AAC encoder takes; audio at another rate is resampled to the next one up
#: (above 96 kHz: to 96 kHz), which keeps its duration
AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000,
             88200, 96000)
#: AAC layouts for a channel count where the source names no layout (channels in order).
#: None with an LFE channel: the encoder keeps only its lowest tones, and an unnamed layout's
#: fourth channel is as likely a voice as a subwoofer (8 AES channels of a D-10 MXF, a field
#: recorder's poly WAV); with "5.1"/"7.1" a tone on channel 4 came out silent.
AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "6.0", 7: "7.0",
               8: "octagonal"}
# Audio codecs the MP4 muxer carries as they are; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "mp2", "flac"}
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe",
                 "apng", "image2pipe"}
#: animated images FFmpeg decodes with their frames' times: processed as videos (one frame:
#: refused as a still image). An animated WebP it cannot decode is refused as such.
ANIMATED_FORMATS = {"gif", "gif_pipe"}



# How the presentation timestamps of the frames are known (VideoInfo.timestamps):
#   "container"  the decoder's frames carry the container's pts, present and strictly increasing
#                in output order: kept as they are (plus pts_offset); seeking is exact.
#   "packets"    the packets' pts are stamps in decode order (strictly increasing as stored:
#                AVI), one per frame, and the frames come out reordered (B-frames: each frame
#                gets the pts of the packet that completed it): the k-th frame the decoder
#                outputs (presentation order) gets the k-th smallest packet pts.
#   "segments"   the frames' pts run forward but jump back a few times (MPEG-TS/PS recordings
#                joined byte for byte, each with its own clock): each run is kept, and a run
#                that jumps back is moved to start frame_step after the previous frame.
#   "rate"       nothing usable (raw elementary streams): the k-th frame gets
#                first_pts + k * frame_step, from the stream's frame rate.
# Only "container" files can be cut into chunks: the others are decoded from the start, in one
# chunk, and the k-th frame is counted from there.
TIMESTAMPS = ("container", "packets", "segments", "rate")


MAX_FPS = 120.0     # frame rates above this are a header's bogus claim (VFR "1k tbr")


def plausible_fps(fps: float | None) -> float:
    """`fps` within 1..MAX_FPS (30 when unknown)."""
    return min(max(fps or 30.0, 1.0), MAX_FPS)


@dataclass
class VideoInfo:
    """What the plan needs to know about a source video (JSON-serialisable).

    `pts` are exactly the presentation timestamps (stream time base) of the frames the decoder
    outputs, in that order (strictly increasing), one per frame: `iter_frames` yields frames
    with these pts and no others."""
    name: str
    width: int                  # coded size (of the first frame: every frame is given this size)
    height: int
    display_width: int          # after rotation
    display_height: int
    rotation: int               # PyAV frame.rotation; np.rot90(k=rotation // 90) makes it upright
    time_base: tuple            # (num, den) of the video stream
    first_pts: int
    n_packets: int              # number of frames the decoder outputs (== len(pts))
    duration_s: float
    codec: str
    pix_fmt: str | None
    avg_rate: float | None
    vfr: bool
    keyframes: list = field(default_factory=list)   # pts of frames a seek can start at, sorted
    pts: list = field(default_factory=list)         # pts of every output frame, sorted
    audio: list = field(default_factory=list)   # audio_info() of every audio stream, in order
    timestamps: str = "container"   # see TIMESTAMPS
    pts_offset: int = 0         # added to the container's times (video and audio) so that
    #                             nothing is negative (MP4 cannot show negative times)
    frame_step: tuple | None = None  # (num, den) ticks per frame, for timestamps == "rate"
    size_changes: list = field(default_factory=list)  # [[frame index, w, h], ...] where the
    #                             coded size changes; such frames are scaled to width x height
    color: dict | None = None   # colorspace, color_range, color_primaries, color_trc (enums)
    sar: tuple | None = None    # (num, den) sample aspect ratio of the coded pixels (anamorphic
    #                             PAL/NTSC/HDV: 64:45, 16:15, 4:3, 8:9, ...); None: square
    video_stream: int = 0       # the source's index of the stream anonymized (main_video_stream)
    left_out: list = field(default_factory=list)    # the streams not carried, described
    audio_open: dict | None = None  # container options that let FFmpeg learn every audio
    #                             stream's format (a late broadcast PID): stitch opens with them

    @property
    def display_aspect(self) -> Fraction:
        """Width / height of the upright picture as a player shows it (SAR applied)."""
        sar = Fraction(*self.sar) if self.sar else Fraction(1)
        if self.rotation in (90, 270):
            sar = 1 / sar       # the SAR is of stored pixels: their width is upright height
        return Fraction(self.display_width, self.display_height) * sar

    @property
    def tb(self) -> Fraction:
        return Fraction(*self.time_base)

    @property
    def mean_fps(self) -> float:
        """Frames per second, counted from the frames themselves (a header may lie)."""
        return plausible_fps(self.n_packets / self.duration_s if self.duration_s
                             else self.avg_rate)

    @property
    def seekable(self) -> bool:
        """Whether a chunk may start by seeking (else every decode starts at the beginning)."""
        return self.timestamps == "container"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VideoInfo":
        d = dict(d)
        d["time_base"] = tuple(d["time_base"])
        for key in ("frame_step", "sar"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        # a manifest planned before every audio stream was kept: its one stream, or none
        audio = d.get("audio")
        d["audio"] = [] if audio is None else [audio] if isinstance(audio, dict) else audio
        return cls(**d)


def _open(src, name: str, options: dict | None = None):
    try:
        return av.open(src, "r", container_options=options or {})
    except av.error.FileNotFoundError:
        raise InputError(f"{name}: file not found. Check the path.") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a video file. "
                         "Give a video file (or use `blurfaces batch` for a folder).") from None
    except (av.error.InvalidDataError, av.error.EOFError, av.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"{name}: not a readable video ({_why(e)}). "
                         "Check that the file is a complete video file.") from None


def _reopen(src, name: str, options: dict | None = None):
    if hasattr(src, "seek"):
        src.seek(0)
    return _open(src, name, options)


def _why(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(":")[-1].strip() if msg else type(e).__name__


def _video_stream(container, name, src=None):
    if "webp_pipe" in container.format.name.split(",") and _animated_webp(src):
        raise InputError(f"{name}: is an animated WebP image, which this build of FFmpeg "
                         "cannot decode. Convert it to a video (MP4) first.")
    if container.format.name in IMAGE_FORMATS or any(
            n in IMAGE_FORMATS for n in container.format.name.split(",")):
        raise InputError(f"{name}: is a still image ({container.format.name}), not a video. "
                         "Give a video file.")
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise InputError(f"{name}: has no video stream ({kinds}). Give a file with video.")
    return main_video_stream(container, name)


def main_video_stream(container, name: str):
    """The video stream a job anonymizes: not an attached picture (cover art, which FFmpeg
    shows as a one-frame video stream), nor a track the container says holds one frame,
    where another holds more; of the rest, the one with the largest picture (a
    thumbnail or preview track is smaller than the video it previews); of several that large,
    the one marked default. Two or more equally large and equally marked (the two lenses of
    a 360 camera, two cameras) are refused: which one the user wants is a guess. Depends only
    on the container's headers, so the probe, the workers and the frame index all pick the
    same stream."""
    moving = [s for s in container.streams.video
              if not s.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        raise InputError(f"{name}: its only video is an attached picture (cover art), not a "
                         "video. Give a file with video.")

    # a still the container says is one frame (a poster track not marked as a picture)
    # yields to any video, however small
    moving = [s for s in moving if s.frames != 1] or moving

    def area(s):
        cc = s.codec_context
        return (cc.width or 0) * (cc.height or 0) if cc is not None else 0
    top = [s for s in moving if area(s) == max(map(area, moving))]
    marked = [s for s in top if s.disposition & av.stream.Disposition.default]
    top = marked or top
    if len(top) > 1:
        cc = top[0].codec_context
        raise InputError(
            f"{name}: has {len(top)} video streams of {cc.width}x{cc.height} (streams "
            f"{', '.join(str(s.index) for s in top)}: two lenses or cameras?), and blurfaces "
            "anonymizes one video stream per file. Extract the one you want into a file of "
            "its own (e.g. ffmpeg -i IN -map 0:v:0 -map 0:a? -c copy OUT.mp4) and run again.")
    return top[0]


def source_stream(container, index: int, kind: str, name: str):
    """Stream `index` of a source opened again, which the probe found to be a `kind` stream."""
    s = container.streams[index] if index < len(container.streams) else None
    if s is None or s.type != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise InputError(f"{name}: its stream {index} is no longer {article} {kind} stream: the "
                         "file changed after it was probed. Run the job again.")
    return s


def source_video(container, info: "VideoInfo"):
    """The stream `info` describes, in a container of the same source opened again."""
    return source_stream(container, info.video_stream, "video", info.name)


def left_out(container, video, audio: list) -> list:
    """What the output will not carry: every stream but `video` and the audio streams in
    `audio` (`audio_of`)."""
    out = []
    kept = {a["index"] for a in audio}
    for s in container.streams:
        if s.index == video.index or s.index in kept:
            continue
        cc = s.codec_context
        what = f"stream {s.index}: {s.type}"
        codec = getattr(cc, "name", None) if cc is not None else None
        if codec:
            what += f" {codec}"
        if s.type == "video" and cc is not None and cc.width:
            what += f" {cc.width}x{cc.height}"
            if s.disposition & av.stream.Disposition.attached_pic:
                what += " (attached picture)"
        if s.type == "audio":
            what += (" (its format is unknown: it carries no packet, none within the first "
                     f"{WIDER_OPEN_BYTES >> 20} MB, or no decoder of this build reads it)")
        out.append(what)
    return out


def _animated_webp(src) -> bool:
    """A WebP file with animation frames (an ANMF chunk near its start)."""
    try:
        if isinstance(src, (str, os.PathLike)):
            with open(src, "rb") as f:
                head = f.read(65536)
        else:
            src.seek(0)
            head = src.read(65536)
            src.seek(0)
    except (OSError, AttributeError):
        return False
    return b"ANMF" in head


def _decoder_setup(vs, threads: int = 0) -> None:
    # Slice threads only: with frame threads, freeing an H.264 decoder that has just
    # reported corrupt data sometimes deadlocks inside FFmpeg (the process never exits).
    # Decoding is a small share of the time next to detection either way. The probe decodes
    # with the same settings as iter_frames, so both see the same frames.
    vs.thread_type = "SLICE"
    if threads:
        vs.codec_context.thread_count = threads


def shown(pkt) -> bool:
    """A packet whose picture is shown (edit-list pre-roll is decoded, never shown)."""
    return bool(pkt.size) and pkt.pts is not None and not pkt.is_discard


def _packet_pts(container, vs) -> list:
    """Sorted pts of the packets that hold a shown picture."""
    return sorted(int(p.pts) for p in container.demux(vs) if shown(p))


def audio_codec(a) -> str | None:
    """The audio codec's name (`mp3`), not its decoder's (`mp3float`)."""
    cc = a.codec_context
    if cc is None or cc.codec is None:
        return None
    return getattr(cc.codec, "canonical_name", None) or cc.name


def audio_info(a) -> dict:
    """An entry of `VideoInfo.audio`: what an audio stream is and whether MP4 can carry it
    as it is (`copy`; otherwise it is re-encoded to AAC)."""
    codec = audio_codec(a)
    return {"index": a.index, "codec": codec, "sample_rate": a.sample_rate,
            "channels": a.channels, "copy": codec in MP4_AUDIO,
            "language": (a.metadata or {}).get("language")}


def mp4_language(tag: str | None) -> str | None:
    """The language an MP4 track can carry for a source's tag: its first three letters when
    they are lowercase ISO 639-2 letters (FFmpeg's MPEG-TS demuxer joins a descriptor's
    languages, "eng,fre"; Matroska may say "eng-US"), lowercased; else none ("en", "japanese":
    the muxer writes "und")."""
    tag = (tag or "").lower()
    head = tag[:3]
    whole = len(tag) == 3 or (len(tag) > 3 and tag[3] in ",-_;/ ")
    return head if whole and all("a" <= c <= "z" for c in head) else None


def named_layout(a) -> str | None:
    """The name of an audio stream's channel layout, None where it names none ("4 channels":
    Matroska and some AVI/WAV PCM say only how many)."""
    name = a.layout.name if a.layout else ""
    return name if name and not name.endswith("channels") else None


def audio_known(a) -> bool:
    """Whether FFmpeg knows an audio stream's format (codec, sample rate, channels)."""
    return bool(audio_codec(a) and a.sample_rate and a.channels)


def audio_unlearnt(a) -> bool:
    """An audio stream FFmpeg has a decoder for but learnt no format of when it opened the
    file: it carries no packet, or its first is further in than FFmpeg read (probe)."""
    return bool(audio_codec(a)) and not audio_known(a)


#: the most a wider open may read to learn a late audio stream's format: FFmpeg holds every
#: packet it reads while it learns, in memory (measured: 83 MB for a 60 MB read)
WIDER_OPEN_BYTES = 256 << 20


def _wider_open(late: dict) -> dict | None:
    """Container options under which FFmpeg reads far enough into the file, when it opens
    it, to meet the first packet of each audio stream in `late` ({index: byte position of its
    first packet}): up to WIDER_OPEN_BYTES; a stream whose packets start further in stays
    unknown (left out, named). None when nothing needs it. The read is bounded in bytes, not
    in time: a clock that jumps back (recordings joined) would stop a time bound early."""
    reach = [p for p in late.values() if p is not None and 0 <= p < WIDER_OPEN_BYTES]
    if not reach:
        return None
    return {"analyzeduration": str(10 ** 13),
            "probesize": str(min(WIDER_OPEN_BYTES, max(5 << 20, int(max(reach) * 1.2) + (4 << 20))))}


def audio_of(container) -> list:
    """`VideoInfo.audio`: every audio stream of the container, in order, but those FFmpeg
    found no sample rate or channels for: a broadcast capture's PMT lists audio programmes
    (an AC-3 or audio-description PID) that carry no packets; MP4 cannot hold such a track."""
    return [audio_info(a) for a in container.streams.audio if audio_known(a)]


def probe(src, name: str | None = None) -> VideoInfo:
    """Demux and decode every video frame (no pixel conversion) to learn exactly the frames
    the decoder outputs, their presentation timestamps and sizes, and the keyframes; check
    that the file decodes. Headers are not trusted for anything."""
    name = name or str(src)
    if isinstance(src, (str, os.PathLike)):
        if os.path.isdir(src):
            raise InputError(f"{name}: is a directory, not a video file. "
                             "Give a video file (or use `blurfaces batch` for a folder).")
        if not os.path.exists(src):
            raise InputError(f"{name}: file not found. Check the path.")
        if os.path.getsize(src) == 0:
            raise InputError(f"{name}: file is empty (0 bytes). Give a complete video file.")
    container = _reopen(src, name)
    try:
        vs = _video_stream(container, name, src)
        if vs.codec_context is None or vs.codec_context.name is None:
            raise InputError(f"{name}: video codec not supported by this build of FFmpeg.")
        _decoder_setup(vs)
        tb = vs.time_base
        pkt_pts, keys, frame_pts, sizes = [], [], [], []
        stored = []     # pts of the shown packets in the order the file stores them
        first = None
        n_data = 0
        # audio streams FFmpeg has a decoder for but found no format for when it opened the
        # file: packets of theirs later on (a broadcast PID that starts after the seconds it
        # reads to learn formats) mean the file must be opened reading further (audio_open)
        unknown = [a for a in container.streams.audio if audio_unlearnt(a)]
        late: dict = {}     # stream index -> byte position of its first packet
        try:
            for pkt in container.demux(vs, *unknown):
                if pkt.stream.type == "audio":
                    if pkt.size:
                        late.setdefault(pkt.stream.index, pkt.pos)
                    continue
                n_data += pkt.size > 0
                if shown(pkt):
                    pkt_pts.append(int(pkt.pts))
                    stored.append(int(pkt.pts))
                    if pkt.is_keyframe:
                        keys.append(int(pkt.pts))
                for frame in pkt.decode():
                    if first is None:
                        first = frame
                    frame_pts.append(frame.pts)
                    sizes.append((frame.width, frame.height))
        except (av.error.InvalidDataError, av.error.EOFError, av.FFmpegError) as e:
            if not frame_pts:
                raise InputError(f"{name}: the video cannot be decoded ({_why(e)}). "
                                 "The file is corrupt or uses an unsupported codec.") from None
            raise InputError(f"{name}: video data is corrupt or truncated after "
                             f"{len(frame_pts)} frames ({_why(e)}). Re-export or re-download "
                             "the file.") from None
        if not n_data:
            raise InputError(f"{name}: the video stream has no frames. Give a complete video.")
        if first is None:
            raise InputError(f"{name}: no video frame could be decoded. The file is corrupt "
                             "or truncated.")
        if len(frame_pts) < 2 and set(container.format.name.split(",")) & ANIMATED_FORMATS:
            raise InputError(f"{name}: is a still image ({container.format.name}, one frame), "
                             "not a video. Give a video file.")
        if "mov" in container.format.name.split(",") and vs.frames and n_data < vs.frames:
            # MP4/MOV index every sample up front: fewer in the file means its data stops early
            # (a truncated download or copy), which would otherwise give a shorter output.
            raise InputError(f"{name}: the file is truncated: its index lists {vs.frames} video "
                             f"frames but only {n_data} are in the file. Re-export or "
                             "re-download the complete file.")
        pkt_pts.sort()
        mode, pts, step = _timeline(name, vs, frame_pts, pkt_pts, stored)
        stream = vs.index
        audio_open = _wider_open(late)
        if audio_open:
            container.close()
            container = _reopen(src, name, audio_open)
            vs = container.streams[stream]
            if not any(audio_known(container.streams[i]) for i in late):
                audio_open = None       # nothing learnt: the plain open will do
        audio = audio_of(container)
        others = left_out(container, vs, audio)
        codec = vs.codec_context.name
        avg_rate = float(vs.average_rate) if vs.average_rate else None
        sar = sample_aspect(vs)
    finally:
        container.close()

    return assemble(name, first, tb, pts, keys, sizes, codec=codec, avg_rate=avg_rate,
                    audio=audio, sar=sar, mode=mode, step=step, video_stream=stream,
                    left_out=others, audio_open=audio_open)


def assemble(name: str, first, tb, pts: list, keys: list, sizes: list, *, codec: str,
             avg_rate: float | None, audio: list, sar: tuple | None,
             mode: str = "container", step=None, video_stream: int = 0,
             left_out: list | None = None, audio_open: dict | None = None) -> VideoInfo:
    """`VideoInfo` from what a probe learnt: the first decoded frame, the stream's time base,
    every shown frame's pts (sorted) and the keyframes' (`mode` "container"), each frame's
    size (`sizes`: one entry per frame, or just the first frame's when they cannot change)."""
    # MP4 cannot show a negative video time (an MPEG-TS whose 33-bit clock wraps soon after
    # the start is read with negative times before the wrap; MKV may start below zero): shift
    # video and audio together so that the first frame is at 0. (Audio before 0 is encoder
    # priming, which MP4 hides with an edit list, as the source meant.)
    offset = -pts[0] if pts[0] < 0 else 0
    if offset:
        pts = [p + offset for p in pts]
    keys = sorted({k + offset for k in keys} & set(pts)) if mode == "container" else []
    if pts[0] not in keys:
        keys.insert(0, pts[0])     # decoding from the very start always works
    w, h = sizes[0]
    changes = [[i, s[0], s[1]] for i, s in enumerate(sizes) if i and s != sizes[i - 1]]
    rotation = int(first.rotation or 0) % 360
    dw, dh = (h, w) if rotation in (90, 270) else (w, h)
    steps = np.diff(np.asarray(pts, dtype=np.int64)) if len(pts) > 1 else np.array([0])
    median = float(np.median(steps)) * tb if len(pts) > 1 else 0.0
    vfr = bool(len(pts) > 2 and (steps.max() - steps.min()) > 0.02 * max(1, np.median(steps)))
    duration = float((pts[-1] - pts[0]) * tb + median)
    return VideoInfo(
        name=name, width=w, height=h, display_width=dw, display_height=dh, rotation=rotation,
        time_base=(tb.numerator, tb.denominator), first_pts=int(pts[0]), n_packets=len(pts),
        duration_s=duration, codec=codec, pix_fmt=first.format.name,
        avg_rate=avg_rate, vfr=vfr,
        keyframes=[int(k) for k in keys], pts=[int(p) for p in pts], audio=audio,
        timestamps=mode, pts_offset=offset,
        frame_step=None if step is None else (step.numerator, step.denominator),
        size_changes=changes, color=color_of(first), sar=sar, video_stream=int(video_stream),
        left_out=list(left_out or []), audio_open=audio_open)


def sample_aspect(vs) -> tuple | None:
    """The stream's sample aspect ratio (the container's where it says one, else the
    codec's, as players choose), None for square or unknown pixels."""
    sar = vs.sample_aspect_ratio
    if not sar or sar <= 0 or sar == 1:
        return None
    return (sar.numerator, sar.denominator)


#: FFmpeg's "unspecified" value of each colour property
COLOR_UNSPECIFIED = {"colorspace": 2, "color_range": 0, "color_primaries": 2, "color_trc": 2}


def color_of(frame) -> dict:
    """The first frame's colour description (FFmpeg's enum values)."""
    return {k: int(getattr(frame, k) or 0) for k in COLOR_UNSPECIFIED}


def _increasing(xs) -> bool:
    return all(b > a for a, b in zip(xs, xs[1:]))


def _bridge(step):
    """The "segments" rule as a running function: raw frame pts in output order -> pts that
    keep each forward run and move a run that jumps back (or repeats) to step after the
    previous frame."""
    state = {"offset": 0, "last": None}

    def f(raw):
        q = raw + state["offset"]
        if state["last"] is not None and q <= state["last"]:
            state["offset"] += state["last"] + step - q
            q = state["last"] + step
        state["last"] = q
        return q
    return f


def _timeline(name, vs, frame_pts: list, pkt_pts: list, stored: list | None = None):
    """(mode, pts of every output frame, frame step or None): see TIMESTAMPS.
    frame_pts: the decoder's frames' pts in output order; pkt_pts: the shown packets' pts,
    sorted; stored: the same in the order the file stores them."""
    n = len(frame_pts)
    stored = pkt_pts if stored is None else stored
    if None not in frame_pts and _increasing(frame_pts):
        return "container", [int(p) for p in frame_pts], None
    if len(pkt_pts) == n and _increasing(stored):
        return "packets", list(pkt_pts), None
    if None not in frame_pts and n > 1:
        back = sum(1 for a, b in zip(frame_pts, frame_pts[1:]) if b <= a)
        steps = [b - a for a, b in zip(frame_pts, frame_pts[1:]) if b > a]
        if steps and back <= max(2, n // 50):
            step = int(np.median(steps))
            f = _bridge(step)
            return "segments", [f(int(p)) for p in frame_pts], Fraction(step)
    rate = vs.average_rate or vs.guessed_rate or vs.codec_context.framerate
    tb = vs.time_base
    if not rate or not tb or rate <= 0:
        raise InputError(f"{name}: the video's timestamps are missing or out of order and its "
                         "frame rate is unknown, so its frames cannot be timed. Remux it into "
                         "MP4 or MKV with a frame rate first.")
    step = 1 / (Fraction(rate) * Fraction(tb))
    first = pkt_pts[0] if pkt_pts else 0
    return "rate", [first + round(k * step) for k in range(n)], step


def _rebuilt_pts(src, info: "VideoInfo"):
    """A function (k, frame) -> pts of the k-th output frame, for a file whose timestamps are
    rebuilt (the probe's rule; the manifest does not carry every pts)."""
    if info.timestamps == "packets":
        table = info.pts
        if not table:
            c = _reopen(src, info.name)
            try:
                table = [p + info.pts_offset for p in _packet_pts(c, source_video(c, info))]
            finally:
                c.close()
        return lambda k, frame: table[k] if k < len(table) else None
    step = Fraction(*info.frame_step)
    if info.timestamps == "segments":
        f = _bridge(int(step))
        return lambda k, frame: (None if frame.pts is None or k >= info.n_packets
                                 else f(int(frame.pts)) + info.pts_offset)
    return lambda k, frame: info.first_pts + round(k * step) if k < info.n_packets else None


def _fit(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """A frame of another size scaled to w x h, aspect kept, centred on black."""
    import cv2

    fh, fw = rgb.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = max(1, min(w, round(fw * s))), max(1, min(h, round(fh * s)))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), np.uint8)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


@dataclass
class Frame:
    pts: int
    rgb: np.ndarray             # upright (display orientation), RGB, uint8


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb


def stored(rgb: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90))) if rotation else rgb


def rgb_frame(rgb: np.ndarray) -> av.VideoFrame:
    """An rgb24 frame of the array for swscale. Over the array's own memory where its rows
    allow it (from_ndarray's copy of the picture cost about 1 ms of a 720p frame's 1.6 ms
    conversion to YUV; the YUV is the same)."""
    if rgb.strides[1:] == (3, 1) and rgb.strides[0] >= 3 * rgb.shape[1]:
        return av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def iter_frames(src, info: VideoInfo, seek_pts: int | None, start_pts: int | None,
                stop_pts: int | None, threads: int = 0) -> Iterator[Frame]:
    """Decode frames with start_pts <= pts < stop_pts (None = open end), seeking first to the
    keyframe seek_pts. Yields upright RGB frames in presentation order, with exactly the pts
    the probe listed (info.pts), each at the size the probe gave (info.width x info.height,
    before rotation).

    Files whose timestamps are rebuilt are always decoded from the start. A seek is trusted
    only when the first keyframe decoded after it is at or before start_pts and the range
    ends where it should: MPEG-TS and program streams have no index, and FFmpeg's seek there
    can land a GOP late or on a frame that cannot be decoded. A seek that misses is tried again
    5 s earlier, then replaced by decoding from the start."""
    if not info.seekable or seek_pts is None or seek_pts <= info.first_pts:
        attempts = [None]
    else:
        early = seek_pts - int(5 / info.tb)
        attempts = [seek_pts] + ([early] if early > info.first_pts else []) + [None]
    for target in attempts:
        yielded = 0
        try:
            for frame in _decode_range(src, info, target, start_pts, stop_pts, threads):
                yielded += 1
                yield frame
            return
        except _SeekMissed:
            if yielded:         # cannot happen: a miss is found before the first frame
                raise RuntimeError("seek missed after frames were given out") from None


class _SeekMissed(Exception):
    pass


def _decode_range(src, info, seek_pts, start_pts, stop_pts, threads):
    # before opening the decoder: a file object (S3 range reader) is shared by both opens
    rebuilt = None if info.seekable else _rebuilt_pts(src, info)
    container = _reopen(src, info.name)
    try:
        vs = source_video(container, info)
        _decoder_setup(vs, threads)
        if seek_pts is not None:
            container.seek(seek_pts - info.pts_offset, stream=vs, backward=True,
                           any_frame=False)
        keyed = seek_pts is None    # after a seek: nothing counts before a decoded keyframe
        last_pts = None
        k = 0
        for frame in container.decode(vs):
            if rebuilt is not None:
                pts = rebuilt(k, frame)
                if pts is None:
                    raise InputError(f"{info.name}: the decoder's frames differ from the "
                                     f"{info.n_packets} the probe counted (frame {k + 1}). The "
                                     "file cannot be read reliably; remux it into MP4 or MKV "
                                     "first.")
                k += 1
            elif frame.pts is None:
                raise RuntimeError(f"a frame without a timestamp after {last_pts}, in a file "
                                   "whose frames all had one")
            else:
                pts = frame.pts + info.pts_offset
            if not keyed:
                if not frame.key_frame:
                    if start_pts is not None and pts >= start_pts:
                        raise _SeekMissed()     # our frames, decoded without their keyframe
                    continue
                keyed = True
            if last_pts is None and start_pts is not None and pts > start_pts:
                if seek_pts is not None:
                    raise _SeekMissed()
                raise RuntimeError(f"decoding from the start began at {pts}, after {start_pts}")
            if last_pts is not None and pts <= last_pts:
                if start_pts is None or pts >= start_pts:
                    raise RuntimeError(f"frame pts {pts} after {last_pts}: not the order the "
                                       "probe saw")
                continue        # leading pictures before the seek point: never ours
            last_pts = pts
            if start_pts is not None and pts < start_pts:
                continue
            if stop_pts is not None and pts >= stop_pts:
                return
            rgb = frame.to_ndarray(format="rgb24")
            if (frame.width, frame.height) != (info.width, info.height):
                rgb = _fit(rgb, info.width, info.height)
            yield Frame(pts, upright(rgb, info.rotation))
        if last_pts is None and seek_pts is not None:
            raise _SeekMissed()     # landed at the end: nothing decodable after the seek
        if stop_pts is not None:
            raise InputError(f"{info.name}: the video ended before the frame at "
                             f"{float((stop_pts - info.first_pts) * info.tb):.3f} s that the "
                             "probe found. The file is corrupt or changed while it was read.")
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

    def __init__(self, path: str, info: VideoInfo, *, crf: int = 23, preset: str = "veryfast",
                 threads: int = 0):
        self.info = info
        self.path = path
        self.container = av.open(path, "w", format="nut")
        odd = info.width % 2 or info.height % 2
        # yuv420p cannot hold odd sizes; 4:4:4 keeps the exact size (High 4:4:4 profile).
        self.pix_fmt = "yuv444p" if odd else "yuv420p"
        s = self.container.add_stream("libx264")
        s.width, s.height, s.pix_fmt = info.width, info.height, self.pix_fmt
        if info.sar:
            # in the H.264 stream itself (VUI), so the MP4 carries it too (pasp)
            s.codec_context.sample_aspect_ratio = Fraction(*info.sar)
        s.codec_context.time_base = info.tb
        s.time_base = info.tb
        opts = {"crf": str(crf), "preset": preset, "bf": "0", "g": "250"}
        if threads:
            opts["threads"] = str(threads)
        s.options = opts
        # The decoder turned YUV into RGB with the source's matrix and range; turning it back
        # with the same ones (and tagging the output alike) keeps every unmasked pixel's
        # colour. swscale's default (BT.601, limited) would shift BT.709 HD by 2-3 levels.
        self._convert = {"format": self.pix_fmt}
        # one swscale context for the whole segment (frame.reformat makes one per frame)
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._tags = []             # (frame attribute, value) set on each converted frame
        for key, value in (info.color or {}).items():
            if value not in (COLOR_UNSPECIFIED[key], None):
                setattr(s.codec_context, key, value)
                if key in ("colorspace", "color_range"):
                    self._convert["dst_" + key] = value
                    self._tags.append((key, value))
        self.stream = s
        self.count = 0
        # Colour conversion and x264 run in their own thread, overlapping with detection.
        self._q: queue.Queue = queue.Queue(maxsize=6)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="blurfaces-encode")
        self._thread.start()

    def _run(self) -> None:
        ended = False       # the sentinel (None) was taken: nothing more will come
        try:
            while True:
                item = self._q.get()
                if item is None:
                    ended = True
                    break
                rgb, pts = item
                f = self._reformatter.reformat(rgb_frame(stored(rgb, self.info.rotation)),
                                               **self._convert)
                for key, value in self._tags:
                    setattr(f, key, value)
                f.pts = pts
                f.time_base = self.info.tb
                for pkt in self.stream.encode(f):
                    self.container.mux(pkt)
            for pkt in self.stream.encode(None):
                self.container.mux(pkt)
        except BaseException as e:  # re-raised in the caller's thread
            self._error = e
            # keep draining so the producer never blocks, up to the one sentinel: a failure
            # while flushing (a full disk) comes after it, and waiting for another would
            # hang close() forever
            while not ended:
                ended = self._q.get() is None
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
            self.close()
        self._q.put((rgb_upright, pts))
        self.count += 1

    def close(self) -> None:
        """Finish the segment; raises what went wrong in the encoder (once)."""
        self.stop()
        if self._error is not None:
            e, self._error = self._error, None
            self._raise(e)

    def stop(self) -> None:
        """End the encoder thread (the segment is complete, or abandoned); never raises, so
        it may run while another error (SIGTERM's Interrupted) is on its way out."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()

    def _raise(self, e: BaseException):
        if getattr(e, "errno", None) in DISK_FULL:
            raise OutputError(f"{os.path.dirname(self.path)}: no space left while writing a "
                              "temporary video segment. Free space there or set TMPDIR to a "
                              "folder with more room; nothing was published.") from None
        raise e


def _open_segment(seg):
    """A segment is a path, or a callable returning a file object (read straight from S3,
    never staged on local disk). Returns (container, file object to close or None)."""
    if callable(seg):
        f = seg()
        return av.open(f), f
    return av.open(seg), None


def _packets(seg):
    c, f = _open_segment(seg)
    try:
        s = c.streams.video[0]
        for pkt in c.demux(s):
            if pkt.size:
                yield pkt
    finally:
        c.close()
        if f is not None:
            f.close()


def stitch(segments: list[str], source, info: VideoInfo, out_path: str, *,
           keep_audio: bool = True) -> dict:
    """Join segments (in order, packets copied) and every audio stream of the source into one
    MP4. Returns the video packets written and, per audio stream, how it was carried and the
    seconds of it read from the source (for the self-check)."""
    scale = str(mp4_timescale(info.tb))
    out = av.open(out_path, "w", format="mp4", options={
        "movflags": "+faststart", "video_track_timescale": scale, "movie_timescale": scale})
    tracks = []
    try:
        first, first_file = _open_segment(segments[0])
        vs = out.add_stream_from_template(first.streams.video[0])
        first.close()
        if first_file is not None:
            first_file.close()
        vs.time_base = info.tb
        if info.rotation:
            vs.set_display_rotation(info.rotation)
        sources = [_video_copy(segments, info.tb, vs)]
        src_container = None
        if keep_audio and info.audio:
            if hasattr(source, "seek"):
                source.seek(0)
            src_container = _open(source, info.name, info.audio_open)
            tracks = [_audio_track(src_container, a, out, info) for a in info.audio]
            sources.append(_audio(src_container, tracks, info.name))
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
    # A track no packet reached (its source stream had none) is left out of the MP4 by the
    # muxer: the self-check expects the others only.
    written = [t for t in tracks if t.i]
    return {"video_packets": n_video, "audio": bool(written),
            "audio_mode": written[0].mode if written else None,
            "audio_modes": [t.mode if t.i else "empty" for t in tracks],
            "source_audio_s": [float(t.seconds) for t in written] if written else None,
            "audio_streams": [t.index for t in written]}


def mp4_timescale(tb: Fraction) -> int:
    """The MP4 timescale (ticks per second) that holds every time of a video whose time base
    is `tb`: its denominator (doubled up to 10000 at least, as FFmpeg's mov muxer does). It
    is given to the video track and to the movie as a whole: the edit list that places the
    first frame (MPEG-TS/PS clocks start anywhere, e.g. 0.5333 s = 48000/90000) is counted
    in the movie's timescale, which is 1000 by default and moved that frame to 0.533 s."""
    scale = Fraction(tb).denominator
    while scale < 10000:
        scale *= 2
    return scale


def _video_copy(segments, tb, v_out):
    """The segments' packets in order, keyed for merging with the audio by decode time."""
    packets = (p for seg in segments for p in _packets(seg))
    for i, pkt in enumerate(packets):
        ts = pkt.dts if pkt.dts is not None else pkt.pts
        yield (float(ts * tb), 0, i, pkt, v_out)


def _audio_shift(info: VideoInfo, tb) -> int:
    """The probe's pts_offset (video ticks) in ticks of the audio time base `tb`."""
    return round(Fraction(info.pts_offset) * info.tb / Fraction(tb)) if info.pts_offset else 0


def _audio_track(container, a: dict, out, info: VideoInfo):
    """The output stream for the source's audio stream `a` (an entry of `info.audio`) and
    what carries its packets there: copied where MP4 can hold the codec, else AAC."""
    a_in = source_stream(container, a["index"], "audio", info.name)
    if a["copy"]:
        a_out = out.add_stream_from_template(a_in)
        track = _CopiedAudio(a_in, a_out, info)
    else:
        rate = a_in.sample_rate or 48000
        a_out = out.add_stream("aac", rate=next((r for r in AAC_RATES if r >= rate), 96000))
        # the default layout for the channel count where the source names none (Matroska and
        # some AVI/WAV PCM: "4 channels", order unspecified), which the AAC encoder refuses;
        # its channels are taken in their order. (A fixed "stereo" downmixed 3-8 channels.)
        name = named_layout(a_in)
        if name is None:
            name = AAC_LAYOUTS.get(a_in.channels)
            if name is None:
                raise InputError(f"{info.name}: audio stream {a['index']} has {a_in.channels} "
                                 "channels in no named layout, which AAC in MP4 cannot hold. "
                                 "Remux its audio to 8 channels or fewer, or run with "
                                 "--no-audio.")
        a_out.layout = name
        track = _EncodedAudio(a_in, a_out, info)
    language = mp4_language(a.get("language"))
    if language:
        a_out.metadata["language"] = language
    track.index = a["index"]        # (a closed container's streams read back garbage)
    return track


def _audio(container, tracks, name: str):
    """Every audio track's packets for the output, from one pass over the source (a source on
    S3 is one range reader: its streams cannot be read by separate passes at once). Audio the
    decoder reports as damaged ends the run (InputError): skipping it would move the rest of
    the sound earlier than its pictures."""
    by_index = {t.index: t for t in tracks}
    track, at = None, None
    try:
        for pkt in container.demux(*(t.a_in for t in tracks)):
            track = by_index[pkt.stream.index]
            at = float(pkt.pts * pkt.time_base) if pkt.pts is not None else at
            yield from track.push(pkt)
        for track in tracks:
            yield from track.finish()
    except (av.error.InvalidDataError, av.error.EOFError, av.FFmpegError) as e:
        where = f"audio stream {track.index}" if track is not None else "the audio"
        when = f" at {at:.2f} s" if at is not None else ""
        raise InputError(f"{name}: {where} cannot be read{when} ({_why(e)}): it is damaged or "
                         "truncated. Repair or re-export the file, or run with --no-audio to "
                         "leave the sound out.") from None


class _CopiedAudio:
    """A source's audio packets as they are, keyed by decode time; shifted with the video
    when the probe moved a negative start to zero. Where the times jump back (recordings joined
    byte for byte, each with its own clock), the rest is moved to follow on, as the video's
    "segments" rule does (MP4 needs increasing times)."""
    mode = "copy"

    def __init__(self, a_in, a_out, info: VideoInfo):
        self.a_in, self.a_out, self.info = a_in, a_out, info
        self.tb = a_in.time_base
        self.shift = _audio_shift(info, self.tb)
        self.seconds = Fraction(0)      # the source audio read, for the self-check
        self.expected = None            # where the next packet starts: previous start + duration
        self.bridge = 0                 # added to every packet from a backward jump on
        self.last = None
        self.i = 0

    def push(self, pkt):
        if pkt.size == 0:
            return
        self.i += 1
        self.seconds += (pkt.duration or 0) * self.tb
        if pkt.dts is None:
            pkt.dts = pkt.pts if pkt.pts is not None else self.expected
        if pkt.dts is None:
            # a packet with no time before any packet with one: it cannot be placed, and
            # dropping it would shorten the audio silently
            raise InputError(f"{self.info.name}: the audio packets have no timestamps, so the "
                             "audio cannot be copied in sync. Remux the file, or run with "
                             "--no-audio.")
        if pkt.pts is None:
            pkt.pts = pkt.dts
        self.expected = pkt.dts + pkt.duration if pkt.duration else None
        last = self.last
        if last is not None and pkt.dts + self.bridge <= last[0]:
            self.bridge = (last[1] if last[1] is not None else last[0] + 1) - pkt.dts
        move = self.shift + self.bridge
        if move:
            pkt.dts += move
            pkt.pts += move
        self.last = (pkt.dts - self.shift,
                     None if self.expected is None else self.expected + self.bridge)
        yield (float(pkt.dts * self.tb), 1, self.i, pkt, self.a_out)

    def finish(self):
        return iter(())


class _EncodedAudio:
    """A source's audio decoded and re-encoded to AAC, its first sample at the source's time
    (shifted with the video as above), the rest following on sample by sample."""
    mode = "aac"

    def __init__(self, a_in, a_out, info: VideoInfo):
        self.a_in, self.a_out = a_in, a_out
        # a source layout with no name ("4 channels"): its channels are the output layout's,
        # in order (the resampler would mix an unnamed layout into a named one: measured, 4
        # channels came out as 3 distinct ones, 3 as 2 and silence)
        self.relabel = None if named_layout(a_in) else a_out.layout.name
        self.shift_s = float(Fraction(info.pts_offset) * info.tb)
        self.resampler = av.AudioResampler(format="fltp", layout=a_out.layout.name,
                                           rate=a_out.rate)
        self.tb = Fraction(1, a_out.rate)
        self.seconds = Fraction(0)
        self.next_pts = None
        self.i = 0

    def _emit(self, frames):
        for fr in frames:
            for pkt in self.a_out.encode(fr):
                self.i += 1
                yield (float(pkt.pts * pkt.time_base) if pkt.pts is not None else 0.0, 1,
                       self.i, pkt, self.a_out)

    def push(self, pkt):
        for frame in pkt.decode():
            if self.relabel:
                frame = _relabelled(frame, self.relabel, self.a_out.channels)
            if frame.sample_rate:
                self.seconds += Fraction(frame.samples, frame.sample_rate)
            for rf in self.resampler.resample(frame):
                if self.next_pts is None:
                    self.next_pts = round((float(frame.pts * frame.time_base) + self.shift_s)
                                          * self.a_out.rate) if frame.pts is not None else 0
                rf.pts, rf.time_base = self.next_pts, self.tb
                self.next_pts += rf.samples
                yield from self._emit([rf])

    def finish(self):
        for rf in self.resampler.resample(None):
            rf.pts, rf.time_base = self.next_pts or 0, self.tb
            self.next_pts = (self.next_pts or 0) + rf.samples
            yield from self._emit([rf])
        yield from self._emit([None])


#: planar sample formats -> (the packed format, numpy dtype of a sample)
_PLANAR = {"u8p": ("u8", "u1"), "s16p": ("s16", "<i2"), "s32p": ("s32", "<i4"),
           "s64p": ("s64", "<i8"), "fltp": ("flt", "<f4"), "dblp": ("dbl", "<f8")}


def _relabelled(frame, layout: str, channels: int):
    """`frame`'s samples with the channel layout `layout` (of as many channels), packed. (PyAV
    18 counts one plane too many in a planar frame of 8 channels: reading or filling its
    planes whole crashed or failed, so only the first `channels` planes are read.)"""
    fmt = frame.format.name
    if fmt in _PLANAR:
        fmt, dtype = _PLANAR[fmt]
        planes = [np.frombuffer(frame.planes[k], dtype, count=frame.samples)
                  for k in range(channels)]
        samples = np.ascontiguousarray(np.stack(planes).T).reshape(1, -1)
    else:
        samples = frame.to_ndarray()
    out = av.AudioFrame.from_ndarray(samples, format=fmt, layout=layout)
    out.sample_rate, out.pts = frame.sample_rate, frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


def audio_seconds(packets) -> float | None:
    """Sum of the durations of audio packets (None when there are none). A sum, not
    first-to-last: joined recordings whose clock jumps back hold more audio than their span."""
    total, n = Fraction(0), 0
    for pkt in packets:
        if pkt.size == 0:
            continue
        n += 1
        total += (pkt.duration or 0) * pkt.time_base
    return float(total) if n else None
