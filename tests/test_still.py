"""Reuse of detections on unchanged pictures (still.py): what is reused, what runs again, and
that a still-camera clip is detected as a full run detects it."""
import numpy as np
import pytest

from bench import hardclips
from blurfaces.detect import Detections, FaceDetector, FinePass
from blurfaces.still import LEVEL, Stillness

REGION = (0, 0, 320, 240)


def _picture(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)


def _dets(*boxes, doubt=()):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    d = Detections(b, np.full(len(b), 0.9, np.float32))
    d.doubt = np.asarray(doubt, np.float32).reshape(-1, 4)     # near-misses
    return d


def _still(frame0, dets, refresh=8):
    s = Stillness()
    s.reset(refresh)
    s.frame(frame0, 0)
    assert s.plan("r", REGION, margin=32) is None        # nothing kept yet: run it
    s.keep("r", REGION, dets)
    return s


def test_an_unchanged_region_reuses_its_detections_within_its_period():
    pic = _picture()
    s = _still(pic, _dets((10, 10, 40, 40)))
    # grain below LEVEL on every pixel is not a change
    noisy = np.clip(pic.astype(int) + np.random.default_rng(1).integers(-LEVEL + 2, LEVEL - 1,
                                                                          pic.shape), 0, 255)
    s.frame(noisy.astype(np.uint8), 7)
    kept, changed, doubtful = s.plan("r", REGION, margin=32)
    assert changed == [] == doubtful and kept.boxes.tolist() == [[10, 10, 40, 40]]
    assert s.reused == 1
    s.frame(pic, 8)                                       # a new period: always a fresh run
    assert s.plan("r", REGION, margin=32) is None


def test_a_changed_patch_runs_alone_and_faces_elsewhere_stand():
    pic = _picture()
    s = _still(pic, _dets((10, 10, 40, 40), (200, 100, 230, 130)))
    moved = pic.copy()
    moved[100:130, 200:230] = 255 - moved[100:130, 200:230]     # the second face changed
    s.frame(moved, 1)
    kept, changed, doubtful = s.plan("r", REGION, margin=32)
    assert kept.boxes.tolist() == [[10, 10, 40, 40]]           # the unchanged face stands
    assert len(changed) == 1 and doubtful == []
    x0, y0, x1, y1 = changed[0]
    # the patch grown by the margin, on the grey copy's 4 px grid
    assert 164 <= x0 <= 168 and 64 <= y0 <= 68 and 262 <= x1 <= 266 and 162 <= y1 <= 166
    s.keep("r", REGION, _dets((10, 10, 40, 40), (201, 100, 231, 130)), changed)
    assert s.partial == 1 and s.runs == 1      # counted once the part's run is kept


def test_a_near_miss_is_looked_at_again_on_every_turn_with_its_surroundings():
    """A box that scored just under the threshold gets a new run each time its region is due
    (in addition to what is kept), as it would without reuse: noise differs between frames."""
    pic = _picture()
    s = _still(pic, _dets((10, 10, 40, 40), doubt=[(200, 100, 220, 124)]))
    for index in (1, 2):
        s.frame(pic, index)                                     # nothing changed
        kept, changed, doubtful = s.plan("r", REGION, margin=32)
        assert changed == [] and kept.boxes.tolist() == [[10, 10, 40, 40]]
        assert len(doubtful) == 1
        x0, y0, x1, y1 = doubtful[0]
        # the near-miss with 32 px (DOUBT_CONTEXT, > its 24 px size) around it, on the 4 px grid
        assert x0 <= 168 and y0 <= 68 and x1 >= 252 and y1 >= 156
        assert x1 - x0 <= 100 and y1 - y0 <= 100
        s.keep("r", REGION, _dets((10, 10, 40, 40), doubt=[(200, 100, 220, 124)]), changed)
    assert s.reused == 0 and s.partial == 2


def test_a_large_face_over_a_small_change_runs_the_whole_region():
    pic = _picture()
    s = _still(pic, _dets((40, 40, 200, 200)))      # larger than the changed box can hold
    moved = pic.copy()
    moved[110:118, 110:118] = 255 - moved[110:118, 110:118]
    s.frame(moved, 1)
    assert s.plan("r", REGION, margin=16) is None


def test_a_change_over_most_of_the_region_runs_it_whole():
    pic = _picture()
    s = _still(pic, _dets())
    s.frame(255 - pic, 1)
    assert s.plan("r", REGION, margin=16) is None


def _boxes_cover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each box of `a`: is its centre inside some box of `b`?"""
    if not len(a) or not len(b):
        return np.zeros(len(a), bool)
    cx, cy = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2
    return ((cx[:, None] >= b[None, :, 0]) & (cx[:, None] <= b[None, :, 2])
            & (cy[:, None] >= b[None, :, 1]) & (cy[:, None] <= b[None, :, 3])).any(1)


@pytest.mark.slow
def test_still_camera_crowd_is_detected_as_a_full_run_detects_it():
    """A still crowd (faces 10-30 px, grain) with eight people walking through it: with reuse,
    most region passes are saved, and the sure faces (score > 0.5) of a run without reuse
    are found in every frame, the walkers included."""
    render = hardclips.Collage(size=(640, 360), face=(10, 30), speed=0.0, walkers=8, noise=6.0)
    frames = [render(i / 30) for i in range(40)]
    det = FaceDetector(threshold=0.3, fine=FinePass(cycle=4))
    runs = {}
    for refresh in (0, 16):
        det.reset(refresh)
        runs[refresh] = [det.detect(f, i) for i, f in enumerate(frames)]
    st = det.still
    assert st.partial > 0 and st.reused > 0
    assert st.runs == 3 * 5      # each period: the 640 px pass and the 4 regions, once
    sure = found = 0
    for full, reuse in zip(runs[0], runs[16]):
        b = full.boxes[full.scores > 0.5]
        sure += len(b)
        found += _boxes_cover(b, reuse.boxes).sum()
    assert sure > 40 * 20
    assert found == sure


def test_a_box_over_a_change_is_told_from_one_beside_it():
    """The detector runs the whole region when its run of a changed part drops, at the part's
    edge, something lying over the change (a large face not found before)."""
    pic = _picture()
    s = _still(pic, _dets())
    moved = pic.copy()
    moved[100:120, 200:220] = 255 - moved[100:120, 200:220]
    s.frame(moved, 1)
    kept, changed, _ = s.plan("r", REGION, margin=16)
    assert len(changed) == 1
    assert s.touches_change("r", np.array([[150, 60, 210, 130]], np.float32))
    assert not s.touches_change("r", np.array([[10, 10, 40, 40]], np.float32))
    assert not s.touches_change("other", np.array([[150, 60, 210, 130]], np.float32))


def test_frame_sides_not_divisible_by_four():
    s = Stillness()
    s.reset(8)
    pic = np.random.default_rng(0).integers(0, 255, (243, 322, 3), dtype=np.uint8)
    s.frame(pic, 0)
    region = (0, 0, 322, 243)
    assert s.plan("r", region, margin=16) is None
    s.keep("r", region, _dets((300, 220, 322, 243)))
    s.frame(pic, 1)
    kept, changed, doubtful = s.plan("r", region, margin=16)
    assert changed == [] == doubtful and len(kept.boxes) == 1


@pytest.mark.parametrize("fps", [29.97, 30.0, 60.0, 12.5])
def test_a_chunk_lead_in_holds_a_whole_reuse_period(fps):
    from blurfaces import stages
    from blurfaces.options import Options
    from blurfaces.video import VideoInfo

    n = int(round(fps * 60))
    info = VideoInfo(name="x", width=640, height=360, display_width=640, display_height=360,
                     rotation=0, time_base=(1, 90000), first_pts=0, n_packets=n,
                     duration_s=n / fps, codec="h264", pix_fmt="yuv420p", avg_rate=fps,
                     vfr=False)
    for track in (True, False):
        on, off = Options(track=track), Options(track=track, reuse=False)
        period = stages.reuse_frames(on, info) / fps            # seconds
        assert stages.reuse_frames(off, info) == 0
        assert period >= 0.5 - 2 / fps
        assert stages.margins(on, info)[0] - stages.margins(off, info)[0] > period


def test_a_faint_box_where_the_picture_did_not_change_is_no_walker():
    """A walker's evidence (a faint box of about its size within MOVED_REACH of its size on the
    region's last look) sends a faint box with nothing at its place to a check at 3x (the
    network, stubbed here, would say face), but not where the picture under it is what it was
    at that look while the camera stood still: nothing walked there (a still camera's
    flickering texture). Where it changed (a face walked in), where the camera moved since
    (a pan leaves a flat wall's values as they were), or with reuse off (no grey copy to
    tell), the check runs."""
    from blurfaces import detect as detect_mod
    assert detect_mod.MOVED_REACH * 12 > 40         # the second box is within a walker's reach
    region = (0, 0, 640, 360)
    pic = np.random.default_rng(5).integers(60, 200, (360, 640, 3), dtype=np.uint8)
    walked_in = pic.copy()
    walked_in[100:116, 160:176] = 255 - walked_in[100:116, 160:176]

    def checks(second, reuse=8, pan=0.0):
        det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                           fine=FinePass(network="retinaface", threshold=0.9, cycle=1,
                                         persist=True, weak=0.05, verify=0.2))
        det.reset(reuse_frames=reuse)
        asked = []
        det._verify = lambda rgb, box, floor=0.0: (asked.append(box.tolist()) or 0.5, box)
        empty = np.zeros((0, 4), np.float32)

        def look(rgb, index, faint):
            det.still.frame(rgb, index)
            d = Detections(empty, np.zeros(0, np.float32), doubt=empty,
                           doubt_scores=np.zeros((0, 2), np.float32),
                           weak=np.asarray(faint, np.float32).reshape(-1, 4))
            return det._persisted(region, d, rgb)

        look(pic, 0, [(120, 100, 132, 112)])                # evidence: a 12 px faint box
        det._offset += np.float32(pan)                      # as the camera's motion adds up
        _, promoted = look(second, 1, [(160, 102, 172, 114)])   # 40 px away: a walker?
        return asked, promoted

    asked, promoted = checks(pic)
    assert asked == [] and promoted is None
    asked, promoted = checks(walked_in)
    assert asked == [[160, 102, 172, 114]] and promoted.boxes.tolist() == asked
    asked, _ = checks(pic, reuse=0)
    assert asked == [[160, 102, 172, 114]]
    asked, _ = checks(pic, pan=3.0)
    assert asked == [[160, 102, 172, 114]]
    asked, _ = checks(pic, pan=0.5)                     # measurement noise: still
    assert asked == []


class _Frame:
    def __init__(self, rgb):
        self.rgb = rgb


@pytest.mark.slow
@pytest.mark.parametrize("speed, walkers", [(1.0, 0), (0.0, 8)])
def test_regions_run_ahead_give_the_detections_of_regions_run_in_turn(speed, walkers):
    """With two cores the next frames' regions run on a thread of their own while the
    detector works on the frame before (FaceDetector(ahead=True), stages._detections): the
    same detections and near-misses, frame by frame, as one thread gives. On a moving camera
    nearly every region runs ahead; on a still one (reuse) few run ahead for nothing."""
    from blurfaces import stages
    render = hardclips.Collage(size=(640, 360), face=(10, 30), speed=speed, walkers=walkers,
                               noise=6.0)
    frames = [render(i / 30) for i in range(40)]
    fine = FinePass(cycle=8, network="retinaface", threshold=0.1, persist=True, weak=0.15)
    out = {}
    for ahead in (False, True):
        det = FaceDetector(threshold=0.3, fine=fine, ahead=ahead, detect_size=384)
        det.reset(16, near_misses=True)
        if ahead:
            helper = det._ahead[1]
            ran, real = [], helper.run
            helper.run = lambda *a, **k: ran.append(1) or real(*a, **k)
            whole, fresh = [], det._fresh      # the whole fine regions' runs: used ahead?

            def counted(rgb, region, scale, fine, within=None, det=det, fresh=fresh):
                if fine and within is None and det._index is not None:    # not a sweep
                    whole.append((det._index, region) in det._pending)
                return fresh(rgb, region, scale, fine, within)
            det._fresh = counted
        out[ahead] = [d for _, d in stages._detections(
            (_Frame(f.copy()) for f in frames), det, 0, 1, len(frames))]
    for a, b in zip(out[False], out[True]):
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.scores, b.scores)
        assert np.array_equal(a.doubt, b.doubt)
        assert np.array_equal(a.doubt_scores, b.doubt_scores)
    assert sum(len(d.boxes) for d in out[True]) > 40 * 10
    grid = len(det.fine_regions(640, 360, None))
    # whole runs made inline: at most each region's first look that reuse could have kept
    assert len(whole) - sum(whole) <= grid, whole
    assert len(ran) - sum(whole) < grid, (len(ran), whole)      # wasted: the first period's
    if speed:                           # a region every other frame, each run whole
        assert len(whole) >= 40 // 2 - 2 and sum(whole) >= len(whole) - grid
    else:                                # most runs are reuse's: few whole, few wasted
        assert det.still.partial + det.still.reused > 2 * sum(whole) > 0


def test_regions_run_ahead_only_where_it_pays_and_fits():
    """No thread ahead where every frame runs every region (`--quality max`: one thread for
    them is slower than all inline), nor for frames over 720p (there the one region thread
    holds the rest up, and more memory); a consumer that stops early leaves no run queued."""
    from blurfaces.detect import AHEAD_MAX_PIXELS
    assert FaceDetector(fine=FinePass(cycle=1), ahead=True)._ahead is None
    det = FaceDetector(fine=FinePass(cycle=8, network="retinaface", threshold=0.1),
                       ahead=True)
    det.reset(0)
    fhd = np.zeros((1080, 1920, 3), np.uint8)
    assert 1920 * 1080 > AHEAD_MAX_PIXELS
    det.ahead(fhd, 3)
    assert det._pending == {}
    hd = np.zeros((720, 1280, 3), np.uint8)
    for index in range(1, 5):
        det.ahead(hd, index)
    assert len(det._pending) == sum(len(det.fine_regions(1280, 720, i)) for i in range(1, 5)) > 0
    queued = list(det._pending.values())
    det.drop_pending()
    assert det._pending == {}
    # every queued run cancelled but the one running, which ends unread
    assert sum(not (f.cancelled() or f.done()) for f in queued) <= 1
    assert sum(f.cancelled() for f in queued) >= len(queued) - 2
