"""The self-check: an output is published only if it matches the input's packet index.

Before stitch publishes anything it reads back the finished MP4 (demux only, no decoding) and
compares it with what plan recorded about the source: the number of video frames, every
presentation timestamp, the coded size, the sample aspect ratio (an anamorphic picture that
lost it plays squeezed) and the number of audio streams and each one's duration and channels. Any difference
raises `VerifyError` naming the chunk where it starts and what differs, and nothing is
published. This is the safety net under every bug of the class "frames dropped, duplicated,
re-timed or truncated while the run says done".

`check_segment` does the same for one worker's segment (frame count), so a segment that lost
frames (a full disk while the encoder flushed, say) fails in its worker, naming the chunk.
"""
from __future__ import annotations

from fractions import Fraction

import av

from .errors import VerifyError
from .video import audio_codec, audio_seconds

#: Audio may differ from the source by the encoder's priming and the last partial codec frame
#: (AAC: 1024 samples each, about 21 ms at 48 kHz) when it had to be re-encoded; copied audio
#: matches exactly. At low sample rates two codec frames are more than this: see check_output.
AUDIO_TOLERANCE_S = 0.05


def _chunk_of(frame: int, chunks: list[dict]) -> str:
    first = 0
    for c in chunks:
        n = c["frames_expected"]
        if frame < first + n:
            return f"chunk {c['index']} ({c['start_s']:.2f}-{c['stop_s']:.2f} s)"
        first += n
    return f"after the last chunk (frame {frame})"


def _read_output(path: str) -> dict:
    c = av.open(path)
    try:
        vs = c.streams.video[0]
        tb = vs.time_base
        pts = []
        audio = {a.index: [] for a in c.streams.audio}
        described = [{"codec": _as_in_mp4(audio_codec(a)), "channels": a.codec_context.channels,
                      "language": (a.metadata or {}).get("language"),
                      "frame_s": (a.codec_context.frame_size or 1024)
                      / (a.codec_context.sample_rate or 48000)} for a in c.streams.audio]
        for pkt in c.demux(vs, *c.streams.audio):
            if pkt.size == 0:
                continue
            if pkt.stream.type != "video":
                audio[pkt.stream.index].append(pkt)
            elif pkt.pts is not None:
                pts.append(pkt.pts)
        return {"tb": tb, "pts": sorted(pts), "width": vs.codec_context.width,
                "height": vs.codec_context.height,
                "audio_s": [audio_seconds(p) for p in audio.values()],
                "audio_streams": described,
                "has_audio": bool(audio),
                # the container's (pasp) and the H.264 stream's own: players read either
                "sar": {_ratio(vs.sample_aspect_ratio),
                        _ratio(vs.codec_context.sample_aspect_ratio)}}
    finally:
        c.close()


def _as_in_mp4(codec: str | None) -> str | None:
    """An audio codec's name as an MP4 reads back: MP4 labels MPEG-1 audio layers 2 and 3
    alike (object type 0x6B), both read as `mp3`."""
    return "mp3" if codec == "mp2" else codec


def _ratio(r) -> Fraction:
    """A sample aspect ratio, square (1) where unset or unknown."""
    return Fraction(r) if r and r > 0 else Fraction(1)


def check_output(path: str, *, expected_pts: list[int], tb: Fraction, width: int, height: int,
                 chunks: list[dict], audio_s: list | None = None,
                 sar: tuple | None = None, audio_expected: list | None = None) -> dict:
    """Compare the MP4 at `path` with the plan's index; raise VerifyError on any difference.

    expected_pts: every input frame's pts in `tb` (sorted); audio_s: the duration of each
    audio stream that was muxed, in order (None: the output must have no audio); sar: the
    input's sample aspect ratio (num, den), None for square pixels; audio_expected: each
    audio stream's {"codec", "copied", "channels", "language"} as the output should carry it
    (the language as video.mp4_language makes it; None: not compared). Returns what was
    read."""
    try:
        out = _read_output(path)
    except (av.FFmpegError, IndexError) as e:
        raise VerifyError(f"the finished video cannot be read back ({e}); nothing was "
                          "published.") from None
    got = out["pts"]
    if len(got) != len(expected_pts):
        raise VerifyError(f"self-check failed: the output has {len(got)} frames, the input "
                          f"{len(expected_pts)}; {_first_diff(got, out['tb'], expected_pts, tb, chunks)}"
                          " Nothing was published.")
    diff = _first_diff(got, out["tb"], expected_pts, tb, chunks)
    if diff:
        raise VerifyError(f"self-check failed: timestamps differ from the input's; {diff} "
                          "Nothing was published.")
    if (out["width"], out["height"]) != (width, height):
        raise VerifyError(f"self-check failed: the output is {out['width']}x{out['height']}, "
                          f"the input {width}x{height}. Nothing was published.")
    want = Fraction(*sar) if sar else Fraction(1)
    if out["sar"] != {want}:
        got_sar = " and ".join(f"{r.numerator}:{r.denominator}" for r in sorted(out["sar"]))
        raise VerifyError(f"self-check failed: the output's pixels have an aspect ratio of "
                          f"{got_sar}, the input's {want.numerator}:{want.denominator} (it "
                          "would play stretched or squeezed). Nothing was published.")
    if audio_s is None and out["has_audio"]:
        raise VerifyError("self-check failed: the output has an audio track that was not "
                          "asked for. Nothing was published.")
    if audio_s is not None:
        got_a = out["audio_s"]
        if not got_a:
            raise VerifyError("self-check failed: the output lost the input's audio. "
                              "Nothing was published.")
        if len(got_a) != len(audio_s):
            raise VerifyError(f"self-check failed: the output has {len(got_a)} audio streams, "
                              f"the input {len(audio_s)}. Nothing was published.")
        for k, (got_s, want_s) in enumerate(zip(got_a, audio_s)):
            which = f"audio stream {k + 1} of {len(audio_s)}" if len(audio_s) > 1 else "audio"
            if got_s is None and want_s:
                raise VerifyError(f"self-check failed: the output lost the input's {which}. "
                                  "Nothing was published.")
            # re-encoded audio may differ by the encoder's priming and the last partial frame
            # (two AAC frames: 43 ms at 48 kHz, 256 ms at the 8 kHz of G.711 CCTV sound)
            copied = (audio_expected or [{}] * len(audio_s))[k].get("copied", False)
            tolerance = AUDIO_TOLERANCE_S if copied else max(
                AUDIO_TOLERANCE_S, 2 * out["audio_streams"][k]["frame_s"])
            if abs((got_s or 0.0) - want_s) > tolerance:
                raise VerifyError(f"self-check failed: the output's {which} lasts "
                                  f"{got_s or 0.0:.3f} s, the input's {want_s:.3f} s. "
                                  "Nothing was published.")
        for k, (got, want) in enumerate(zip(out["audio_streams"], audio_expected or [])):
            which = f"audio stream {k + 1}" if len(audio_s) > 1 else "audio"
            codec = _as_in_mp4(want.get("codec"))
            if codec and got["codec"] != codec:
                raise VerifyError(f"self-check failed: the output's {which} is {got['codec']}, "
                                  f"the input's {codec} (streams out of order?). Nothing was "
                                  "published.")
            if want.get("channels") and got["channels"] != want["channels"]:
                raise VerifyError(f"self-check failed: the output's {which} has "
                                  f"{got['channels']} channels, the input's {want['channels']}. "
                                  "Nothing was published.")
            if want.get("language") and got["language"] != want["language"]:
                raise VerifyError(f"self-check failed: the output's {which} is in "
                                  f"'{got['language']}', the input's in '{want['language']}' "
                                  "(streams out of order?). Nothing was published.")
    return out


def _first_diff(got, got_tb, expected, tb, chunks) -> str:
    """'' when every timestamp matches (to within half a tick of the coarser time base)."""
    tol = max(Fraction(got_tb), Fraction(tb)) / 2
    n = min(len(got), len(expected))
    for i in range(n):
        if abs(got[i] * got_tb - expected[i] * tb) > tol:
            return (f"first difference at frame {i} in {_chunk_of(i, chunks)}: "
                    f"{float(got[i] * got_tb):.6f} s in the output, "
                    f"{float(expected[i] * tb):.6f} s in the input.")
    if len(got) != len(expected):
        return f"the difference starts at frame {n} in {_chunk_of(n, chunks)}."
    return ""


def segment_frames(path: str) -> int:
    """Number of video packets (= frames: no B-frames, one packet a frame) in a segment."""
    c = av.open(path)
    try:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    finally:
        c.close()


def check_segment(path: str, *, frames: int, chunk: dict) -> None:
    try:
        n = segment_frames(path)
    except (av.FFmpegError, IndexError) as e:
        raise VerifyError(f"self-check failed: chunk {chunk['index']} "
                          f"({chunk['start_s']:.2f}-{chunk['stop_s']:.2f} s): its segment cannot "
                          f"be read back ({e}). Nothing was published.",
                          chunk=chunk["index"], stage="worker") from None
    if n != frames or frames != chunk["frames_expected"]:
        raise VerifyError(f"self-check failed: chunk {chunk['index']} "
                          f"({chunk['start_s']:.2f}-{chunk['stop_s']:.2f} s) should have "
                          f"{chunk['frames_expected']} frames; {frames} were decoded and "
                          f"{n} encoded. Nothing was published.",
                          chunk=chunk["index"], stage="worker")
