"""A frame index from the container, without decoding: plan in seconds, whatever the length.

`video.probe` decodes every frame once (about 4 ns per pixel: an hour of 1080p30 takes longer
than plan's Lambda may run). For containers whose own index can be trusted, the frames, their
presentation timestamps and the keyframes are what the demuxer says, without decoding:

* MP4/MOV (ISO BMFF with one ``moov``): FFmpeg's mov demuxer reads the sample tables
  (stts/ctts/stss, edit lists: pre-roll samples come out flagged discard) when the file is
  opened. Demuxing then yields every sample's pts and flags, and the only thing it does with
  the samples' bytes is hand them over: `_SampleSkipper` answers reads that fall inside the
  video samples (their positions and sizes are the stream's index entries) with zeros
  instead of fetching them (audio samples are skipped alike: its demuxer never asks for them),
so an hour of video costs a few MB of reads (the ``moov`` box)
  and a demux loop, not gigabytes;
* Matroska/WebM: block timestamps are presentation times; packets are demuxed (the whole
  file is read) but none is decoded.

Only the first frame is decoded (rotation, pixel format, colour). Anything the index cannot
vouch for sends the caller back to the decode-every-frame probe (None): another container,
a fragmented MP4 (the index is spread over ``moof`` boxes), packets without timestamps or
with repeated ones, a video stream that is not the file's only sample table.

The index is checked twice later, as for a decoded probe: each worker refuses a chunk whose
decoded frames differ in number from the index (`stages.worker`, InputError naming the
chunk), and stitch's self-check compares every output frame's timestamp with it.
"""
from __future__ import annotations

import bisect
import io

import av

from .errors import InputError
from .video import (VideoInfo, assemble, audio_of, audio_unlearnt, left_out,
                    main_video_stream, sample_aspect, shown)

#: how this module describes the index it made (the manifest's ``job.index``)
DEMUXER = "demuxer"


def _formats(container) -> set:
    return set(container.format.name.split(","))


class _SampleSkipper(io.RawIOBase):
    """A seekable reader over `raw` that returns zeros for bytes inside `ranges` (sorted,
    merged [start, end) byte ranges of the samples) without reading them."""

    def __init__(self, raw, ranges: list[tuple[int, int]], size: int):
        super().__init__()
        self._raw, self._size, self._pos = raw, size, 0
        self._starts = [a for a, _ in ranges]
        self._ranges = ranges
        self.skipped = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b):
        view = memoryview(b).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        k = bisect.bisect_right(self._starts, self._pos) - 1
        if k >= 0 and self._pos < self._ranges[k][1]:           # inside a sample
            n = min(n, self._ranges[k][1] - self._pos)
            view[:n] = bytes(n)
            self.skipped += n
        else:                                                   # boxes: read for real
            if k + 1 < len(self._starts):
                n = min(n, self._starts[k + 1] - self._pos)
            self._raw.seek(self._pos)
            data = self._raw.read(n)
            n = len(data)
            view[:n] = data
        self._pos += n
        return n


def _merged(entries) -> list[tuple[int, int]]:
    spans = sorted((int(e.pos), int(e.pos) + int(e.size)) for e in entries if e.size > 0)
    out: list[list[int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def index(open_source, name: str, size: int) -> VideoInfo | None:
    """The `VideoInfo` of a source from its container's index (see the module docstring),
    or None when the index cannot be trusted. `open_source()` returns a fresh seekable binary
    file object (a local file or an S3 range reader) each time it is called."""
    if not size:
        return None                            # the probe says what is wrong
    with open_source() as f:
        try:
            c = av.open(f, "r")
        except (av.FFmpegError, OSError):
            return None                        # the probe says what is wrong
        try:
            formats = _formats(c)
            if not c.streams.video or not ({"mov", "mp4"} & formats or "matroska" in formats):
                return None
            try:
                vs = main_video_stream(c, name)
            except InputError:
                return None                    # the probe says what is wrong
            if any(audio_unlearnt(a) for a in c.streams.audio):
                return None                    # the probe finds out whether it has packets
            stream = vs.index
            ranges = key_pos = None
            if "mov" in formats:
                entries = vs.index_entries
                if not vs.frames or len(entries) != vs.frames:
                    return None                # fragmented, or an index FFmpeg built partly
                # every stream's samples (audio interleaved between video samples too): a
                # gap read for real would cost a ranged GET on S3
                ranges = _merged(e for st in c.streams for e in st.index_entries)
                # keyframes from the sample table (stss): the demuxer's parser would look for
                # them in the (skipped) bytes
                key_pos = {int(e.pos) for e in entries if e.is_keyframe}
        finally:
            c.close()
        if ranges is not None:
            f = _SampleSkipper(f, ranges, size)
        f.seek(0)
        pkt_pts, keys, n_data = _demux(f, name, stream, key_pos)
    if not pkt_pts or n_data == 0:
        return None
    pts = sorted(pkt_pts)
    if len(set(pts)) != len(pts):
        return None                            # repeated timestamps: decode to know
    return _info(open_source, name, stream, pts, keys)


def _demux(f, name, stream: int, key_pos=None):
    try:
        c = av.open(f, "r")
    except av.FFmpegError:
        return [], [], 0
    try:
        vs = c.streams[stream]
        pts, keys, n_data = [], [], 0
        for pkt in c.demux(vs):
            if not pkt.size:
                continue
            n_data += 1
            if pkt.pts is None:
                return [], [], 0               # no timestamps: the probe rebuilds them
            if shown(pkt):
                pts.append(int(pkt.pts))
                if (pkt.pos in key_pos) if key_pos is not None else pkt.is_keyframe:
                    keys.append(int(pkt.pts))
        if "mov" in _formats(c) and vs.frames and n_data < vs.frames:
            raise InputError(f"{name}: the file is truncated: its index lists {vs.frames} "
                             f"video frames but only {n_data} are in the file. Re-export or "
                             "re-download the complete file.")
        return pts, keys, n_data
    except (av.error.InvalidDataError, av.error.EOFError, av.FFmpegError):
        return [], [], 0
    finally:
        c.close()


def _info(open_source, name: str, stream: int, pts: list, keys: list) -> VideoInfo | None:
    """The rest of `VideoInfo`: stream headers and the first decoded frame."""
    with open_source() as f:
        c = av.open(f, "r")
        try:
            vs = c.streams[stream]
            vs.thread_type = "SLICE"           # as the probe and the workers decode
            first = None
            try:
                for frame in c.decode(vs):
                    first = frame
                    break
            except (av.error.InvalidDataError, av.FFmpegError):
                return None                    # the probe says what is wrong
            if first is None or first.pts is None or first.pts != pts[0]:
                return None                    # the decoder starts elsewhere: decode all
            tb = vs.time_base
            audio = audio_of(c)
            others = left_out(c, vs, audio)
            codec = vs.codec_context.name
            avg_rate = float(vs.average_rate) if vs.average_rate else None
            sar = sample_aspect(vs)
        finally:
            c.close()
    return assemble(name, first, tb, pts, keys, [(first.width, first.height)], codec=codec,
                    avg_rate=avg_rate, audio=audio, sar=sar, video_stream=stream,
                    left_out=others)
