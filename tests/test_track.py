"""Tracking: gaps filled, masks held and started early by time, no drift, determinism, and a
real clip whose face the detector misses in isolated frames still masked there."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests import media
from blurfaces import data as datamod, stages
from blurfaces.detect import Detections
from blurfaces.options import Options
from blurfaces.outputs import output_names
from blurfaces.runner import run
from blurfaces.track import Tracker, TrackOptions


def det(*boxes, score=0.9):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.full(len(b), score, np.float32))


def run_tracker(times, dets, **kw):
    tr = Tracker(TrackOptions(**kw))
    out = []
    for i, (t, d) in enumerate(zip(times, dets)):
        out += tr.push(i, t, d)
    out += tr.flush()
    assert [o.key for o in out] == list(range(len(times))), "every frame released once, in order"
    return out


def moving_face(n, fps=30.0, miss=(), start=0, stop=None, speed=60.0):
    """A 50x60 face moving right at `speed` px/s; detected except in `miss` frames."""
    stop = n if stop is None else stop
    times = [i / fps for i in range(n)]
    dets = []
    for i, t in enumerate(times):
        if start <= i < stop and i not in miss:
            x = 100 + speed * t
            dets.append(det([x, 100, x + 50, 160]))
        else:
            dets.append(Detections.empty())
    return times, dets


def test_gaps_are_interpolated_and_tracks_keep_their_id():
    times, dets = moving_face(30, miss={10, 11, 12, 20})
    out = run_tracker(times, dets)
    for i in (10, 11, 12, 20):
        assert out[i].sources == ["interpolated"]
        x = 100 + 60 * times[i]
        b = out[i].boxes[0]
        assert b[0] <= x + 1 and b[2] >= x + 50 - 1        # covers where the face really is
    assert {int(t) for o in out for t in o.tracks} == {0}


def test_an_interpolated_box_widens_with_the_travel_between_its_detections():
    """A face detected on frames 0 and 4 only, its sides moving 4-26 px between them, and
    then on the next few frames: in the gap each side moves out by w(1-w) of its travel
    (a quarter of it at the middle, frame 2), so a face that does not move in a straight
    line between two looks stays under the mask. A still face's box is the straight line."""
    times = [i / 30 for i in range(12)]
    a, b = np.array([100, 100, 150, 160.0]), np.array([116, 96, 176, 168.0])

    def face(i):
        return a if i < 4 else b
    dets = [det(face(i)) if i in (0, 4, 5, 6, 7, 8) else Detections.empty() for i in range(12)]
    out = run_tracker(times, dets, smooth=0.0, hold=0.5)
    assert out[2].sources == ["interpolated"]
    travel = np.abs(b - a)
    mid = (a + b) / 2 + travel / 4 * np.array([-1, -1, 1, 1])
    assert np.allclose(out[2].boxes[0], mid)
    w = 0.25
    assert np.allclose(out[1].boxes[0], a + (b - a) * w + travel * w * (1 - w) * [-1, -1, 1, 1])
    still = [det(a) if i in (0, 4) else Detections.empty() for i in range(6)]
    assert np.allclose(run_tracker(times[:6], still, smooth=0.0)[2].boxes[0], a)


def test_masks_contain_every_detected_box():
    rng = np.random.default_rng(0)
    times = [i / 25 for i in range(50)]
    dets = [det([100 + rng.normal(0, 3), 100 + rng.normal(0, 3), 150 + rng.normal(0, 3),
                 160 + rng.normal(0, 3)]) for _ in times]
    out = run_tracker(times, dets)
    for o, d in zip(out, dets):
        assert o.sources == ["detected"]
        b, db = o.boxes[0], d.boxes[0]
        assert b[0] <= db[0] + 1e-4 and b[1] <= db[1] + 1e-4
        assert b[2] >= db[2] - 1e-4 and b[3] >= db[3] - 1e-4


def test_hold_and_lookahead_are_measured_in_time_and_end():
    fps = 30.0
    times, dets = moving_face(90, fps=fps, start=30, stop=45)   # face seen 1.0 s - 1.5 s
    out = run_tracker(times, dets, hold=0.5, lookahead=0.3)
    masked = [o.t for o in out if len(o.boxes)]
    assert min(masked) >= 1.0 - 0.3 - 1e-9 and min(masked) < 1.0 - 0.3 + 1 / fps
    last_det = times[44]
    assert max(masked) <= last_det + 0.5 + 1e-9 and max(masked) > last_det + 0.5 - 1 / fps
    sources = {o.sources[0] for o in out if len(o.boxes)}
    assert sources == {"detected", "held", "lead"}
    # nothing after the hold: no mask drifts onto the background after the face left
    assert all(len(o.boxes) == 0 for o in out if o.t > last_det + 0.5 + 1e-9)


def test_variable_frame_rate_uses_seconds_not_frames():
    rng = np.random.default_rng(1)
    steps = rng.choice([1 / 30, 1 / 15, 1 / 10], size=80)
    times = list(np.cumsum(steps))
    dets = [det([100, 100, 150, 160]) if t < 2.0 else Detections.empty() for t in times]
    out = run_tracker(times, dets, hold=0.4)
    last_det = max(t for t in times if t < 2.0)
    masked = [o.t for o in out if len(o.boxes)]
    assert max(masked) <= last_det + 0.4 + 1e-9
    assert max(masked) >= last_det + 0.4 - 0.1 - 1e-9


def test_two_faces_keep_separate_tracks():
    times = [i / 30 for i in range(40)]
    dets = [det([50 + 2 * i, 100, 100 + 2 * i, 160], [400 - 2 * i, 300, 450 - 2 * i, 360])
            for i in range(40)]
    out = run_tracker(times, dets)
    ids = {int(t) for o in out for t in o.tracks}
    assert ids == {0, 1}
    for o in out:                       # the face on the left keeps id 0 all along
        left = o.tracks[np.argmin(o.boxes[:, 0])]
        assert left == 0


def test_no_track_passes_detections_through():
    times, dets = moving_face(20, miss={5, 6})
    out = run_tracker(times, dets, enabled=False)
    assert len(out[5].boxes) == 0 and len(out[4].boxes) == 1
    assert set(out[4].tracks) == {-1}


def test_same_input_same_output():
    times, dets = moving_face(60, miss={7, 8, 30})
    a = run_tracker(times, dets)
    b = run_tracker(times, dets)
    for x, y in zip(a, b):
        assert np.array_equal(x.boxes, y.boxes) and list(x.tracks) == list(y.tracks)
        assert x.sources == y.sources


# -- end to end on video ----------------------------------------------------------------------

MISSED = (12, 14, 28, 40)      # even: the frames the whole-frame pass runs


@pytest.mark.slow
def test_frames_where_the_detector_misses_are_still_masked(synth_clip_factory, tmp_path):
    """Frames drawn with the photo blanked out have no face for the detector; the tracker must
    still place masks there (drawn as solid red rectangles so the pixels prove it)."""
    clip = synth_clip_factory(size=(640, 360), fps=30, seconds=2.0, blank_frames=MISSED)
    outputs = output_names(str(tmp_path / "out.mp4"))
    run(clip["path"], outputs=outputs, workers=1,
        options=Options(mask="rectangle", color=(255, 0, 0), ellipse=False))
    df = datamod.read(outputs["stem"] + ".csv")
    frames, _, _ = media.decode_frames(outputs["video"])
    # the photo's faces: detected on most frames the whole-frame pass runs (every second one;
    # a one-off detection elsewhere, held for its hold time, is not one of them)
    detected = df[df["source"] == "detected"].groupby("track").size()
    faces = set(detected[detected >= 20].index)
    assert len(faces) >= 4
    for i in MISSED:
        rows = df[(df["frame"] == i) & df["track"].isin(faces)]
        assert len(rows) >= 4, f"frame {i}: expected masks carried over the detector's miss"
        assert set(rows["source"]) == {"interpolated"}
        for _, r in rows.iterrows():
            patch = frames[i][int(r.y1) + 2:int(r.y2) - 2, int(r.x1) + 2:int(r.x2) - 2].astype(int)
            red = (patch[..., 0] > 200) & (patch[..., 1] < 60) & (patch[..., 2] < 60)
            assert red.mean() > 0.9
    # and without tracking, the same frames have no mask at all (the test can fail)
    outputs2 = output_names(str(tmp_path / "notrack.mp4"))
    run(clip["path"], outputs=outputs2, workers=1, options=Options(track=False))
    df2 = datamod.read(outputs2["stem"] + ".csv")
    assert all((df2["frame"] == i).sum() == 0 for i in MISSED)


@pytest.mark.slow
def test_data_columns_and_sources(synth_clip_factory, tmp_path):
    clip = synth_clip_factory(size=(640, 360), fps=30, seconds=2.0, blank_frames=MISSED)
    outputs = output_names(str(tmp_path / "o.mp4"))
    run(clip["path"], outputs=outputs, workers=1, options=Options(mask="none"))
    with open(outputs["stem"] + ".csv") as f:
        assert f.readline().strip() == "time (ms),x1,y1,x2,y2,track,frame,score,source"
    df = datamod.read(outputs["stem"] + ".csv")
    assert set(df["source"]) <= {"detected", "followed", "interpolated", "held", "lead"}
    assert df.loc[df["source"] != "detected", "score"].isna().all()
    assert df.loc[df["source"] == "detected", "score"].between(0, 1).all()
    assert os.path.getsize(outputs["video"]) > 0


def test_a_small_face_is_held_longer_than_a_large_one():
    """The fine pass sees a small face only every few frames and less surely: with
    `small_hold`, its mask stays that long after its last detection; a large face's mask
    stays `hold`, as before."""
    fps, n = 30.0, 60
    times = [i / fps for i in range(n)]
    small = [det([100, 100, 125, 125]) if i in (0, 4) else det() for i in range(n)]
    large = [det([300, 100, 380, 180]) if i in (0, 4) else det() for i in range(n)]
    for dets, expect_last in ((small, 4 + 30), (large, 4 + 15)):
        out = run_tracker(times, dets, hold=0.5, small_hold=1.0, small=48.0)
        masked = [i for i, o in enumerate(out) if len(o.boxes)]
        assert masked[0] == 0 and masked[-1] == expect_last, masked
        assert masked == list(range(expect_last + 1))


def test_a_small_face_is_masked_earlier_before_it_is_found():
    """The fine pass finds a small face up to a sweep after it came into view: with
    `small_lead`, its mask starts that long before its first detection; a large face keeps
    the plain look-ahead."""
    fps, n = 30.0, 60
    times = [i / fps for i in range(n)]
    small = [det([100, 100, 125, 125]) if i >= 30 else det() for i in range(n)]
    large = [det([300, 100, 380, 180]) if i >= 30 else det() for i in range(n)]
    for dets, first in ((small, 30 - 15), (large, 30 - 9)):
        out = run_tracker(times, dets, lookahead=0.3, hold=0.5, small_lead=0.5, small=48.0)
        masked = [i for i, o in enumerate(out) if len(o.boxes)]
        assert masked == list(range(first, n)), masked
    out = run_tracker(times, small, lookahead=0.3, hold=0.5, small_lead=0.5, small=48.0)
    np.testing.assert_allclose(out[15].boxes[0], [100, 100, 125, 125])


def test_the_default_masks_a_small_face_found_a_second_late_from_then():
    """The fine pass may be sure of a small face (darkened, covered, or at the start of the
    video) only a second after it came into view: with the default preset its mask starts
    1.0 s before its first detection; a large face keeps the plain look-ahead (0.3 s)."""
    fps, n = 30.0, 60
    times = [i / fps for i in range(n)]
    for box, first in (([100, 100, 125, 125], 0), ([300, 100, 380, 180], 30 - 9)):
        dets = [det(box) if i >= 30 else det() for i in range(n)]
        tracker, out = Tracker(TrackOptions.of(Options())), []
        for i, (t, d) in enumerate(zip(times, dets)):
            out += tracker.push(i, t, d)
        out += tracker.flush()
        masked = [i for i, o in enumerate(out) if len(o.boxes)]
        assert masked == list(range(first, n)), masked


def test_a_covered_small_face_is_held_as_small_by_the_width_of_its_box():
    """A small face covered at the chin (a bar, a hand, a scarf) gets a box taller than a
    face's: the default preset judges it small by its width (under 0.75 of `small`) and holds
    it 1.5 s, not the 0.5 s of a face whose box is as tall and wider, nor of one as narrow
    because the frame edge cuts it (a face leaving); masks it 1.0 s before it is found; and,
    seen once, grows its held box as a small walker's."""
    fps, n = 30.0, 120
    times = [i / fps for i in range(n)]
    for box, last in (([100, 100, 132, 151], 8 + 45), ([300, 100, 340, 151], 8 + 15),
                      ([1248, 100, 1280, 151], 8 + 15)):
        tracker, out = Tracker(TrackOptions.of(Options()), frame_size=(1280, 720)), []
        for i, t in enumerate(times):
            out += tracker.push(i, t, det(box) if i in (0, 8) else det())
        out += tracker.flush()
        assert [i for i, o in enumerate(out) if len(o.boxes)] == list(range(last + 1))
    # seen once, its held box grows (it may be walking: `small_walk`), half its width a side
    for box, grown in (([100, 100, 132, 151], 16), ([300, 100, 340, 151], 0)):
        tracker, out = Tracker(TrackOptions.of(Options()), frame_size=(1280, 720)), []
        for i, t in enumerate(times):
            out += tracker.push(i, t, det(box) if i == 30 else det())
        out += tracker.flush()
        assert out[45].sources == ["held"]
        np.testing.assert_allclose(out[45].boxes[0][[0, 2]], [box[0] - grown, box[2] + grown],
                                   atol=0.5)
    # and masked 1.0 s before its first detection, not 0.3 s
    for box, first in (([100, 100, 132, 151], 60 - 30), ([300, 100, 340, 151], 60 - 9)):
        tracker, out = Tracker(TrackOptions.of(Options()), frame_size=(1280, 720)), []
        for i, t in enumerate(times):
            out += tracker.push(i, t, det(box) if i in (60, 68) else det())
        out += tracker.flush()
        assert [i for i, o in enumerate(out) if len(o.boxes)][0] == first


def test_a_small_face_held_at_the_video_end_stays_masked_to_its_last_frame():
    """A darkened or covered small face that the looks miss for longer than its hold near the
    video's end has no later detection to mask back from: with the default preset, a small
    face's track of two or more detections whose hold reaches the frames decided at the end
    stays masked to the last frame. Not a seen-once track (as often a texture), not a large
    face, and not where the stream stops at a chunk's tail margin (`at_end` False: the next
    chunk decides those frames)."""
    fps, n = 30.0, 90                   # 3 s; frames from 1.9 s are decided at the end
    times = [i / fps for i in range(n)]
    small, large = [100, 100, 125, 125], [300, 100, 380, 180]

    def boxes(box, seen, at_end=True):
        tracker, out = Tracker(TrackOptions.of(Options()), frame_size=(1280, 720)), []
        for i, t in enumerate(times):
            out += tracker.push(i, t, det(box) if i in seen else det())
        out += tracker.flush(at_end=at_end)
        assert [o.key for o in out] == list(range(n))
        return [o.boxes for o in out]

    def masked(box, seen, at_end=True):
        return [i for i, b in enumerate(boxes(box, seen, at_end)) if len(b)]

    looks = (0, 8, 16, 24)              # last detection 0.8 s: held 1.5 s, to frame 69
    assert masked(small, looks) == list(range(n))
    end, plain = boxes(small, looks), boxes(small, looks, at_end=False)
    for i in range(70):                 # the usual hold is unchanged, grown only beyond it
        np.testing.assert_array_equal(end[i], plain[i])
    last = end[n - 1][0]
    assert last[0] <= 100 - 5 and last[1] <= 100 - 5 and last[2] >= 125 + 5 and last[3] >= 125 + 5
    assert masked(small, looks, at_end=False) == list(range(70))
    assert masked(small, (24,))[-1] == 69
    assert masked(large, looks)[-1] == 24 + 15
    # a hold that ended before the frames decided at the end is not revived there
    assert masked(small, (0, 8))[-1] == 8 + 45
    # nor is a face last seen cut by the frame edge (it may have left)
    assert masked([1255, 100, 1280, 125], looks)[-1] == 24 + 45
    # a plain hold (no small-face hold: `--quality fast`) is the last box, not grown
    out = run_tracker(times[:30], [det(large) if i in (0, 5) else det() for i in range(30)],
                      hold=0.5)
    assert out[10].sources == ["held"]
    np.testing.assert_allclose(out[10].boxes[0], large)


def test_the_video_end_is_decided_alike_by_a_single_pass_and_the_last_chunk():
    """A decode to the video's end starts at least `end_lead_in` before its last frame: a
    small face seen 1.45 s apart, 2.5 and 1.0 s before the end of the last chunk (0.8 s long,
    `--quality max`, no reuse in the lead-in), is held to the last frame in both."""
    opts = Options(quality="max")
    fps, n, start = 30.0, 144, 120
    times = [i / fps for i in range(n)]
    box, seen = [100, 100, 125, 125], (24, 68)

    def masked(first):
        tracker, out = Tracker(TrackOptions.of(opts), frame_size=(1280, 720)), []
        for i in range(first, n):
            out += tracker.push(i, times[i], det(box) if i in seen else det())
        out += tracker.flush()
        return [o.key for o in out if len(o.boxes) and o.key >= start]

    begin = min(times[start] - stages.margins(opts)[0], times[-1] - stages.end_lead_in(opts))
    first = int(np.searchsorted(times, begin - 1e-9))
    assert first < int(np.searchsorted(times, times[start] - stages.margins(opts)[0] - 1e-9))
    assert masked(0) == list(range(start, n))
    assert masked(first) == masked(0)


def test_a_walk_link_keeps_each_detection_s_frame_edge():
    """Whether a box is cut by the frame edge is kept per detection: a narrow box at the edge
    is not small (a face leaving), one inside it is. A seen-once small face linked to a box at
    the edge, the link then undone by a third detection there, keeps its own 1.5 s hold; the
    edge face, linked or alone, is held 0.5 s."""
    fps, n = 30.0, 150
    inner, edge = [1190, 100, 1220, 150], [1250, 100, 1280, 150]      # 30 x 50 each

    def spans(dets):
        tracker, out = Tracker(TrackOptions.of(Options()), frame_size=(1280, 720)), []
        for i in range(n):
            out += tracker.push(i, i / fps, det(*dets[i]) if i in dets else det())
        out += tracker.flush(at_end=False)
        got: dict = {}
        for o in out:
            for k in o.tracks:
                got.setdefault(int(k), []).append(o.key)
        return sorted((v[0], v[-1]) for v in got.values())

    assert spans({38: [edge]}) == [(23, 38 + 15)]
    assert spans({30: [inner]}) == [(0, 30 + 45)]
    assert spans({30: [inner], 38: [edge]}) == [(0, 30 + 45), (23, 38 + 15)]
    assert spans({30: [inner], 38: [edge], 39: [edge]}) == [(0, 30 + 45), (23, 39 + 15)]
    # the edge is the frame's, not the scene's: a face standing in the scene, panned from
    # `inner` onto the frame edge, is cut there (one track; held 0.5 s from its last box)
    tracker, out = Tracker(TrackOptions.of(Options()), frame_size=(1280, 720)), []
    for i in range(n):
        d = det(inner) if i == 30 else det(edge) if i == 38 else det()
        d.shift = (60.0, 0.0) if i == 34 else (0.0, 0.0)
        out += tracker.push(i, i / fps, d)
    out += tracker.flush(at_end=False)
    assert {int(k) for o in out for k in o.tracks} == {0}
    assert [o.key for o in out if len(o.boxes)][-1] == 38 + 15


def _contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] \
        and outer[3] >= inner[3]


def test_a_face_entering_through_the_edge_is_masked_where_camera_or_scene_took_it():
    """A face cut by the frame edge and found once may have walked in with the camera (a
    followed subject) or been carried in by a pan (with the scene): before its detection its
    mask covers both places and the way between. A face found once away from the edges is
    masked where the scene took it only."""
    fps, n, found = 30.0, 40, 30
    times = [i / fps for i in range(n)]
    kw = dict(lookahead=0.3, hold=0.5, small_lead=1.0, small_walk=2.0, small=48.0)
    for face, edge in (([300, 0, 320, 16], True), ([300, 170, 320, 186], False)):
        dets = [Detections(np.array([face] if i == found else [], np.float32).reshape(-1, 4),
                           np.full(int(i == found), 0.9, np.float32),
                           shift=(-6.0, 0.0)) for i in range(n)]     # a pan: 6 px a frame
        tracker, out = Tracker(TrackOptions(**kw), (640, 360)), []
        for i, (t, d) in enumerate(zip(times, dets)):
            out += tracker.push(i, t, d)
        out += tracker.flush()
        masked = [i for i, o in enumerate(out) if len(o.boxes)]
        assert masked[0] == 0 and masked[-1] == n - 1 and len(masked) == n, masked
        for i in range(0, found, 5):
            box = out[i].boxes[0]
            assert out[i].sources == ["lead"]
            carried = np.array(face) + [6.0 * (found - i), 0, 6.0 * (found - i), 0]
            assert _contains(box, carried), (i, box)            # with the scene
            assert _contains(box, face) == edge, (i, box)       # with the camera


def test_a_face_leaving_through_the_edge_is_held_where_camera_or_scene_took_it():
    """A face last seen cut by the frame edge may leave with the camera (a followed subject,
    or one walking against the pan) as well as with the scene: its held box covers where the
    frame showed it, not only where the scene carried it (placed truth, seed 182: a 48 px
    walker leaving at the right edge against the pan was bare 4 frames while its held box ran
    out ahead of it). A face held away from the edges moves with the scene only."""
    fps, n, seen = 30.0, 30, (9, 10)
    times = [i / fps for i in range(n)]
    kw = dict(lookahead=0.3, hold=0.5, small=16.0)
    for face, edge in (([600, 170, 640, 200], True), ([300, 170, 340, 200], False)):
        dets = [Detections(np.array([face] if i in seen else [], np.float32).reshape(-1, 4),
                           np.full(int(i in seen), 0.9, np.float32),
                           shift=(6.0, 0.0)) for i in range(n)]     # a pan: 6 px a frame
        tracker, out = Tracker(TrackOptions(**kw), (640, 360)), []
        for i, (t, d) in enumerate(zip(times, dets)):
            out += tracker.push(i, t, d)
        out += tracker.flush()
        held = [i for i in range(11, n) if out[i].sources == ["held"]]
        assert held == list(range(11, 26)), held                  # 0.5 s of hold
        kept = [_contains(out[i].boxes[0], np.minimum(face, 640)) for i in held]
        assert all(kept) if edge else not any(kept[8:]), (edge, kept)


def _zoom_run(steps, seen, face0, n=150, fps=30.0, reported=None):
    """A still face seen through a camera that moves by `steps(i)` = ((dx, dy), zoom) from
    frame i-1 to frame i (a point p goes to c + (dx, dy) + zoom (p - c), c the centre of the
    1280x720 frame, as motion.py measures it; `reported` is what the detections say, `steps`
    by default), detected on the frames in `seen`. Returns the tracker's output, the face's
    box on every frame and on which frames a mask box covers it."""
    c = np.array([640.0, 360.0, 640.0, 360.0])
    truth = [np.array(face0, np.float64)]
    for i in range(1, n):
        d, z = steps(i)
        truth.append(c + np.tile(d, 2) + z * (truth[-1] - c))
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small=48.0)
    tracker, out = Tracker(TrackOptions(**kw), (1280, 720)), []
    for i in range(n):
        d, z = (reported or steps)(i)
        out += tracker.push(i, i / fps, Detections(
            np.array([truth[i]] if i in seen else [], np.float32).reshape(-1, 4),
            np.full(int(i in seen), 0.9, np.float32), shift=tuple(d), zoom=z))
    out += tracker.flush()
    covered = [any(_contains(b + [-1, -1, 1, 1], f) for b in o.boxes) for o, f in zip(out, truth)]
    return out, truth, covered


FACE_RIGHT = (1030.0, 350.0, 1050.0, 372.0)       # a 20 px face 400 px right of the centre


def test_held_and_lead_boxes_follow_the_camera_zoom():
    """The camera zooms in (0.5% a frame about the picture's centre) on a still 20 px face:
    it drifts outward 2 px a frame and grows. Found on two looks (one track), its held box
    (1.5 s) and its lead box (1 s) follow it, and are not grown by the drift a second time
    (the two looks' velocity is the zoom's, not the face's). With the zoom unreported (the
    old tracker), they leave it: a velocity carries a box one width at most, 20 px of 90."""
    zooming = lambda i: ((0.0, 0.0), 1.005)                             # noqa: E731
    out, truth, covered = _zoom_run(zooming, (30, 34), FACE_RIGHT)
    assert {int(t) for o in out for t in o.tracks} == {0}
    held, lead = range(35, 79), range(0, 30)
    assert all(covered[i] for i in held), [i for i in held if not covered[i]]
    assert all(covered[i] for i in lead), [i for i in lead if not covered[i]]
    assert out[78].sources == ["held"] and not len(out[80].boxes)
    assert all(o.boxes[0][2] - o.boxes[0][0] < 1.5 * (f[2] - f[0])
               for o, f in zip(out, truth) if len(o.boxes))
    _, _, unreported = _zoom_run(zooming, (30, 34), FACE_RIGHT,
                                 reported=lambda i: ((0.0, 0.0), 1.0))
    assert sum(unreported[i] for i in held) < 20 and sum(unreported[i] for i in lead) < 20


@pytest.mark.parametrize("steps", [
    lambda i: ((3.0, -1.0), 1.005),                         # pan and zoom at once
    lambda i: ((-4.0, 0.0), 1.0) if i <= 30 else ((0.0, 0.0), 1.005),   # a pan, then a zoom
])
def test_a_held_box_follows_pan_and_zoom_together(steps):
    """Each frame's pan is scaled by every later zoom: the tracker composes the picture's
    motion as motion.py measures it, frame by frame (adding pans and zooms up apart left a
    face seen once 12 px behind its held box after 40 frames of a 3 px pan and 0.5% zoom)."""
    out, truth, covered = _zoom_run(steps, (34,), FACE_RIGHT)
    held, lead = range(35, 79), range(4, 34)
    assert all(covered[i] for i in held), [i for i in held if not covered[i]]
    assert all(covered[i] for i in lead), [i for i in lead if not covered[i]]


def test_a_face_that_walks_only_by_the_zoom_keeps_its_size():
    """Found on three looks under the zoom, a still face drifts steadily outward: a walk,
    carried along its velocity (which holds the drift, so the zoom does not move the box
    again), at its size grown by the zoom: its held box covers it for the whole hold."""
    out, truth, covered = _zoom_run(lambda i: ((0.0, 0.0), 1.005), (30, 34, 38), FACE_RIGHT)
    held = range(39, 84)
    for i in held:
        (b,), f = out[i].boxes, truth[i]
        inside = max(0.0, min(b[2], f[2]) - max(b[0], f[0])) * \
            max(0.0, min(b[3], f[3]) - max(b[1], f[1]))
        assert out[i].sources == ["held"] and inside >= 0.9 * (f[2] - f[0]) * (f[3] - f[1]), i


def test_an_edge_face_found_twice_is_masked_where_the_camera_took_it_too():
    """Found twice at one place in the frame while the camera pans (a followed subject
    walking in), an edge face's lead boxes still reach back to that place: its two detections'
    scene velocity, extrapolated a second back, is clipped to a box width, and near the edge a
    zoom moves the picture unlike the measured translation (placed truth: a 14 px face
    entering at the top was visible 4 frames). A face away from the edges is not."""
    fps, n = 30.0, 50
    times = [i / fps for i in range(n)]
    kw = dict(lookahead=0.3, hold=0.5, small_lead=1.0, small_walk=2.0, small=48.0)
    for face, edge in (([300, 0, 320, 16], True), ([300, 170, 320, 186], False)):
        dets = [Detections(np.array([face] if i in (30, 31) else [], np.float32).reshape(-1, 4),
                           np.full(int(i in (30, 31)), 0.9, np.float32),
                           shift=(-6.0, 0.0)) for i in range(n)]
        tracker, out = Tracker(TrackOptions(**kw), (640, 360)), []
        for i, (t, d) in enumerate(zip(times, dets)):
            out += tracker.push(i, t, d)
        out += tracker.flush()
        for i in range(0, 30, 5):
            assert out[i].sources == ["lead"]
            assert _contains(out[i].boxes[0], face) == edge, (i, out[i].boxes[0])


def test_a_face_missed_for_a_second_where_its_track_predicts_it_is_bridged():
    """A face standing in a panned scene, found on every look, then missed for 1.3 s (a hand,
    a turned head) and found again where it stood: with `bridge`, its track continues and
    the gap is interpolated, every frame masked; without, the frames between the held box
    and the new track's lead are bare. A face seen once is not bridged (a faint box seen once
    is no track to continue)."""
    fps, n = 30.0, 110
    times = [i / fps for i in range(n)]
    face = np.array([900.0, 100.0, 960.0, 170.0])          # 70 px: hold 0.5 s, not small
    seen = set(range(0, 41, 4)) | set(range(80, 101, 4))

    def frame_box(i):
        return face + [-4.0 * i, 0, -4.0 * i, 0]            # the scene pans 4 px a frame

    def pan_dets(seen):
        return [Detections(np.array([frame_box(i)] if i in seen else [],
                                    np.float32).reshape(-1, 4),
                           np.full(int(i in seen), 0.9, np.float32), shift=(-4.0, 0.0))
                for i in range(n)]

    dets = pan_dets(seen)
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small=48.0)
    for bridge in (1.5, 0.0):
        tracker, out = Tracker(TrackOptions(bridge=bridge, **kw), (1280, 720)), []
        for i, (t, d) in enumerate(zip(times, dets)):
            out += tracker.push(i, t, d)
        out += tracker.flush()
        covered = [any(_contains(b + [-1, -1, 1, 1], frame_box(i)) for b in out[i].boxes)
                   for i in range(101)]
        if bridge:
            assert all(covered), [i for i, c in enumerate(covered) if not c]
            assert {o.sources[0] for o in out[56:80]} == {"interpolated"}   # past the hold
            assert {int(k) for o in out[:101] for k in o.tracks} == {0}
        else:
            assert not any(covered[57:71]) and all(covered[:56]) and all(covered[71:101])
    # without a small face's look-ahead (`max`), the window still reaches the detection that
    # closes a 1.3 s gap; a 2 s gap (over `bridge`) is two tracks
    quick = dict(kw, small_lead=0.0)
    for gap_end, bridged in ((80, True), (104, False)):
        again = pan_dets(set(range(0, 41, 4)) | set(range(gap_end, n, 4)))
        out = run_tracker(times, again, bridge=1.5, **quick)
        tracks = {int(k) for o in out for k in o.tracks}
        assert (tracks == {0}) == bridged, (gap_end, tracks)
        if bridged:
            assert all(len(o.boxes) for o in out[:101])
    once = [Detections(np.array([face] if i in (10, 50) else [], np.float32).reshape(-1, 4),
                       np.full(int(i in (10, 50)), 0.9, np.float32)) for i in range(n)]
    out = run_tracker(times, once, bridge=1.5, **kw)
    assert len({int(k) for o in out for k in o.tracks}) == 2
    assert not any(len(o.boxes) for o in out[27:40])


def test_a_face_that_stops_is_taken_over_by_the_track_that_finds_it_where_it_was_last_seen():
    """A 40 px walker seen on every eighth frame stops, and a look misses it: the next finds
    it where it was last seen, 0.8 of its size short of where constant velocity puts it, a
    new track. From that detection on the new track masks the face and the old track's hold
    ends (Tracker._take_over); before it, both masks stand (the new track's lead and the
    old one's hold). Without that, the old track's held box went on along its course, past
    the face, for the rest of its 1.5 s. A face found two sizes from the last box is
    another face, and so is one beside a standing face: the old track's hold stands."""
    fps, n = 30.0, 70
    times = [i / fps for i in range(n)]
    looks = set(range(0, 57, 8)) - {32}

    def x(i):
        return 100.0 + 2.5 * min(i, 24)                   # walks 2.5 px a frame, stops at 24

    def dets(elsewhere=0.0):
        def box(i):
            dx = x(i) + (elsewhere if i > 24 else 0.0)
            return [dx, 100, dx + 40, 146]          # 46 px: a small face's hold, 1.5 s
        return [det(box(i)) if i in looks else Detections.empty() for i in range(n)]

    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small=48.0)
    out = run_tracker(times, dets(), **kw)
    for i in range(25, 40):
        assert sorted(int(k) for k in out[i].tracks) == [0, 1], i     # held and lead
    for i in range(40, 57):
        assert [int(k) for k in out[i].tracks] == [1], i
        b = out[i].boxes[0]
        assert b[0] <= x(i) + 1 and b[2] >= x(i) + 39 and b[2] <= x(i) + 40 + 0.5 * 40, (i, b)
    out = run_tracker(times, dets(elsewhere=96.0), **kw)
    assert sorted(int(k) for k in out[45].tracks) == [0, 1]
    # a standing face's hold stays on it: a neighbour found 0.9 of its size away, while a
    # look misses it, is not where it went
    stand = [det([100, 100, 140, 146]) if i in (0, 8) else
             det([141, 100, 181, 146]) if i in (16, 24, 32) else Detections.empty()
             for i in range(n)]
    out = run_tracker(times, stand, **kw)
    for i in range(16, 54):
        assert 0 in [int(k) for k in out[i].tracks], i


def test_a_small_face_seen_once_is_masked_wider_with_time():
    """A small face seen once may walk out of its box before its region looks again: with
    `small_walk`, its held and lead boxes grow by that share of its width per second on each
    side, up to half its width; without it, for a large face, or for a box 40 px wide or
    wider, the box stays as found."""
    fps, n = 30.0, 40
    times = [i / fps for i in range(n)]
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.0, small_lead=0.5, small=48.0)

    def once(box):
        return [det(box) if i == 20 else det() for i in range(n)]

    out = run_tracker(times, once([100, 100, 120, 120]), small_walk=2.0, **kw)
    np.testing.assert_allclose(out[20].boxes[0], [100, 100, 120, 120])
    # 0.1 s from the detection, after (held) and before (lead): 2/s x 0.1 s x 20 px = 4 px
    np.testing.assert_allclose(out[23].boxes[0], [96, 96, 124, 124], atol=1e-6)
    np.testing.assert_allclose(out[17].boxes[0], [96, 96, 124, 124], atol=1e-6)
    np.testing.assert_allclose(out[35].boxes[0], [90, 90, 130, 130])        # at most 10 px
    assert [o.sources[0] for o in (out[17], out[23])] == ["lead", "held"]
    plain = run_tracker(times, once([100, 100, 120, 120]), **kw)
    np.testing.assert_allclose(plain[23].boxes[0], [100, 100, 120, 120])
    large = run_tracker(times, once([300, 100, 380, 180]), small_walk=2.0, **kw)
    np.testing.assert_allclose(large[23].boxes[0], [300, 100, 380, 180])
    # the detector's box of a face of about 16 px or more (40 px wide) stays as found: such a
    # face is found again on its region's next look; one a pixel narrower grows
    wide = run_tracker(times, once([300, 100, 340, 130]), small_walk=2.0, **kw)
    np.testing.assert_allclose(wide[23].boxes[0], [300, 100, 340, 130])
    np.testing.assert_allclose(wide[17].boxes[0], [300, 100, 340, 130])
    assert [o.sources[0] for o in (wide[17], wide[23])] == ["lead", "held"]
    narrower = run_tracker(times, once([300, 100, 339, 130]), small_walk=2.0, **kw)
    np.testing.assert_allclose(narrower[23].boxes[0], [292.2, 92.2, 346.8, 137.8], atol=1e-6)


def _walker(n, looks, speed, pan, box=40.0):
    """A small face (its detector box `box` px) walking right at `speed` px/s through the
    scene while the camera pans `pan` px a frame, found only on the frames in `looks`."""
    fps = 30.0
    times = [i / fps for i in range(n)]
    truth, dets = [], []
    for i, t in enumerate(times):
        x = 100 + speed * t + pan * i                  # in the frame
        truth.append(np.array([x, 100, x + box, 100 + box]))
        found = [truth[-1]] if i in looks else []
        dets.append(Detections(np.array(found, np.float32).reshape(-1, 4),
                               np.full(len(found), 0.9, np.float32), shift=(pan, 0.0)))
    return times, truth, dets


def test_a_small_walker_seen_once_per_look_is_one_track_without_trails():
    """A small face walking a box width through the scene between two looks of its region
    (8 frames) is seen once on each: linked (WALK_LINK), it is one track, masked between its
    looks by interpolation where it walks, with one box per frame, not a seen-once track per
    look each leaving its held and lead boxes behind it (the far over-masking on placed truth)."""
    looks = set(range(0, 41, 8))
    times, truth, dets = _walker(48, looks, speed=150.0, pan=-4.0)
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small=48.0)
    tracker, out = Tracker(TrackOptions(small_walk=2.0, **kw), (1280, 720)), []
    for i, (t, d) in enumerate(zip(times, dets)):
        out += tracker.push(i, t, d)
    out += tracker.flush()
    assert {int(k) for o in out for k in o.tracks} == {0}
    assert all(len(o.boxes) == 1 for o in out)
    for i in range(0, 41):
        assert out[i].sources == ["detected" if i in looks else "interpolated"], i
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (i, out[i].boxes[0])
    # without the link (no small_walk), each look starts a track of its own, and its held
    # and lead boxes stay behind where the face was and ahead where it is not yet
    plain = []
    tracker = Tracker(TrackOptions(**kw), (1280, 720))
    for i, (t, d) in enumerate(zip(times, dets)):
        plain += tracker.push(i, t, d)
    plain += tracker.flush()
    assert len({int(k) for o in plain for k in o.tracks}) == len(looks)
    assert max(len(o.boxes) for o in plain) >= 4


def _held_walker(pans, speed, looks=(0, 8, 16), n=110, box=30.0, short=0.0):
    """A small face (its detector box `box` px) moving `speed` px/s through the frame while
    the camera pans `pans[i]` px on frame i, found on the frames in `looks` only (the last
    look `short` px behind it): each frame's face box and the tracker's output (small faces
    held 1.5 s)."""
    fps = 30.0
    truth, dets, x = [], [], 100.0
    for i in range(n):
        x += speed / fps if i else 0.0
        truth.append(np.array([x, 300, x + box, 300 + box * 1.25]))
        found = [truth[-1] - [short, 0, short, 0] if i == looks[-1] else truth[-1]] \
            if i in looks else []
        dets.append(Detections(np.array(found, np.float32).reshape(-1, 4),
                               np.full(len(found), 0.9, np.float32), shift=(pans[i], 0.0)))
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    tracker, out = Tracker(TrackOptions(**kw), (1280, 720)), []
    for i, d in enumerate(dets):
        out += tracker.push(i, i / fps, d)
    out += tracker.flush()
    return truth, out


def test_a_walker_is_held_along_its_walk():
    """A small face found on three looks moving at one velocity (a walker) is held for its
    1.5 s along that velocity, not stopped a box width from its last detection (there a
    walker at 4 widths a second is bare after a quarter second), its box grown only by a
    share of its travel. A face that stood, then moved (its two steps disagree), keeps the
    plain hold: its last box and a width on."""
    truth, out = _held_walker([0.0] * 110, speed=120.0)            # 4 widths a second
    for i in range(17, 62):                                         # 16 + 45 frames held
        assert out[i].sources == ["held"], i
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (i, out[i].boxes[0])
        assert out[i].boxes[0][2] - out[i].boxes[0][0] <= 2.6 * 30.0, i      # 75 at most
    assert not any(len(o.boxes) for o in out[62:])
    # found 2 px short on its third look (its velocity 3% low): the box's growth with its
    # travel still holds it; faster (6 widths a second), the growth stops at a width a side
    truth, out = _held_walker([0.0] * 110, speed=120.0, short=2.0)
    for i in range(30, 62):                     # past the plain hold's first width
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (i, out[i].boxes[0])
    truth, out = _held_walker([0.0] * 110, speed=180.0)
    for i in range(17, 62):
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (i, out[i].boxes[0])
        assert out[i].boxes[0][2] - out[i].boxes[0][0] <= 3 * 30.0 + 1e-6, i
    # stood for two looks, then moved: no walk; the held box stays within a width of the last
    step = {0: 0.0, 8: 0.0, 16: 15.0}
    moved = [det([100.0 + step[i], 300, 130 + step[i], 337.5]) if i in step else det()
             for i in range(110)]
    plain = run_tracker([i / 30.0 for i in range(110)], moved, lookahead=0.3, hold=0.5,
                        small_hold=1.5, small_lead=1.0, small_walk=2.0, small=48.0)
    for i in range(17, 62):
        assert plain[i].sources == ["held"] and plain[i].boxes[0][2] <= 145.0 + 30.0 + 1, i
    # steps of 24 and 40 px (they differ by 40% of the later: WALK_AGREE) are a walk, carried
    # on at their mean; a walker whose box shrinks as it goes (36, 27, 18 px) is carried at
    # its last box's size, never shrunk or turned inside out
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    at = {0: 100.0, 8: 124.0, 16: 164.0}
    steps = [det([at[i], 300, at[i] + 30, 337.5]) if i in at else det() for i in range(110)]
    out = run_tracker([i / 30.0 for i in range(110)], steps, **kw)
    for i in range(17, 62):
        face = [164.0 + 4 * (i - 16), 300, 194.0 + 4 * (i - 16), 337.5]
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], face), (i, out[i].boxes[0])
    shrink = {0: [100, 300, 136, 345], 8: [135.5, 300, 162.5, 334], 16: [171, 300, 189, 322]}
    out = run_tracker([i / 30.0 for i in range(110)],
                      [det(shrink[i]) if i in shrink else det() for i in range(110)], **kw)
    assert all(o.boxes[0][2] - o.boxes[0][0] >= 18 and o.boxes[0][3] - o.boxes[0][1] >= 22
               for o in out[17:62])
    # a box that crept 6 px a look (jitter; under half its width in all) is not a walker:
    # held over its last box
    crept = [det([100.0 + 6 * (i // 8), 300, 130 + 6 * (i // 8), 337.5]) if i in (0, 8, 16)
             else det() for i in range(110)]
    plain = run_tracker([i / 30.0 for i in range(110)], crept, lookahead=0.3, hold=0.5,
                        small_hold=1.5, small_lead=1.0, small_walk=2.0, small=48.0)
    for i in range(17, 62):
        assert _contains(plain[i].boxes[0], [112, 300, 142, 337.5]), (i, plain[i].boxes[0])
    # held to the video's end, a walker's box stays where its usual hold took it (grown)
    truth, out = _held_walker([0.0] * 75, speed=120.0, n=75)
    assert out[61].sources == ["held"] and out[74].sources == ["held"]
    for i in range(62, 75):
        centre = (out[i].boxes[0][:2] + out[i].boxes[0][2:]) / 2
        assert np.allclose(centre, (out[61].boxes[0][:2] + out[61].boxes[0][2:]) / 2), i


def test_a_followed_walker_is_held_where_the_frame_carries_it():
    """A walker the camera follows (a pan of 4 px a frame; the face moves 1 px a frame in
    the frame, 5 through the scene) is held where the frame carries it when the pan then
    slows: it moves less in the frame than in the scene, and there it went on as it was. Held
    through the scene, its box would trail off with the old pan (placed truth, seed 92: 58
    frames bare)."""
    pans = [-4.0] * 20 + [-4.0 + 0.2 * k for k in range(20)] + [0.0] * 70
    truth, out = _held_walker(pans, speed=30.0)
    for i in range(17, 62):
        assert out[i].sources == ["held"], i
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (i, out[i].boxes[0])


def test_a_standing_face_on_a_pan_and_a_walker_on_a_still_camera_are_held_in_the_scene():
    """A face standing in the scene while the camera pans (it moves in the frame, not in the
    scene) keeps the plain hold in the scene when the pan stops. A walker seen by a still
    camera moves alike in frame and scene: with no pan over its looks it is carried through
    the scene, so a pan that starts during its hold carries its box with the scene too."""
    fps = 30.0
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    for walk, pans in ((0.0, [-4.0] * 20 + [0.0] * 90),        # stands; the pan stops at 20
                       (120.0, [0.0] * 20 + [-4.0] * 90)):     # walks; a pan starts at 20
        truth, x = [], 400.0
        for i in range(110):
            x += (walk / fps + pans[i]) if i else 0.0
            truth.append(np.array([x, 300, x + 30, 337.5]))
        tracker, out = Tracker(TrackOptions(**kw), (1280, 720)), []
        for i in range(110):
            found = [truth[i]] if i in (0, 8, 16) else []
            d = Detections(np.array(found, np.float32).reshape(-1, 4),
                           np.full(len(found), 0.9, np.float32), shift=(pans[i], 0.0))
            out += tracker.push(i, i / fps, d)
        out += tracker.flush()
        for i in range(17, 62):
            assert out[i].sources == ["held"], (walk, i)
            assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (walk, i, out[i].boxes[0])


def test_a_track_whose_frame_steps_disagree_is_not_carried_in_the_frame():
    """Moving less in the frame than in the scene (a pan of 4 px a frame) but by unsteady
    steps there (4 px, then 16 px a look), a track is no followed walker: it keeps the plain
    hold in the scene, which covers it where it stopped (carried in the frame, its box would
    have gone on with it at 1.25 px a frame while the pan took the face away)."""
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    at = {0: 100.0, 8: 104.0, 16: 120.0}              # in the frame; then it stands
    tracker, out, x = Tracker(TrackOptions(**kw), (1280, 720)), [], 0.0
    truth = []
    for i in range(110):
        x = at[i] if i in at else (x - 4.0 if i > 16 else x)
        truth.append(np.array([x, 300, x + 30, 337.5]))
        found = [truth[i]] if i in at else []
        d = Detections(np.array(found, np.float32).reshape(-1, 4),
                       np.full(len(found), 0.9, np.float32), shift=(-4.0, 0.0))
        out += tracker.push(i, i / 30.0, d)
    out += tracker.flush()
    for i in range(17, 62):
        assert out[i].sources == ["held"], i
        assert _contains(out[i].boxes[0] + [-1, -1, 1, 1], truth[i]), (i, out[i].boxes[0])


def test_a_walk_link_undone_keeps_each_detection_s_camera_offset():
    """The camera offset of each detection (what a walker's frame velocity is measured with)
    stays with its detection when a walk link is made and undone."""
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    a, b = [100, 100, 140, 140], [140, 100, 180, 140]
    tracker = Tracker(TrackOptions(**kw), (1280, 720))
    for i in range(60):
        d = det(a) if i == 0 else det(b) if i in (16, 24) else det()
        d.shift = (-3.0, 1.0) if i == 10 else (0.0, 0.0)      # a jolt between A and B
        tracker.push(i, i / 30.0, d)
    assert len(tracker.tracks) == 2 and all(len(tr.cams) == len(tr.times)
                                            for tr in tracker.tracks)
    offsets = {tuple(np.round([c.offset for c in tr.cams], 6).ravel()) for tr in tracker.tracks}
    assert offsets == {(0.0, 0.0), (-3.0, 1.0, -3.0, 1.0)}, offsets


def test_a_face_found_far_from_a_seen_once_one_is_another_face():
    """A small face found more than WALK_LINK_MAX sizes from a seen-once one, or of another
    size, is a second face, even where a third detection goes on along the line from the
    first to the second (which confirms a walk within reach: one track)."""
    from blurfaces.track import WALK_LINK_MAX
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    times = [i / 30.0 for i in range(50)]
    a = np.array([100.0, 100, 140, 140])

    def ids(step, size, when=18):
        b = a + [step, 0, step + size - 40, size - 40]
        ahead = step * 8 / (when - 10)             # where a walk from a through b goes
        c = b + [ahead, 0, ahead, 0]
        dets = [det(a) if i == 10 else det(b) if i == when else det(c) if i == when + 8
                else det() for i in range(70)]
        out = run_tracker(times, dets, **kw)
        # from b on (frames before it were released before c confirmed the walk)
        return {int(k) for o in out[when:] for k in o.tracks}

    times = [i / 30.0 for i in range(70)]
    assert len(ids(40.0, 40.0)) == 1                                   # a walker, in reach
    assert len(ids(40.0 * 2.0, 40.0, when=50)) == 1                    # further, later
    assert WALK_LINK_MAX == 2.5
    assert len(ids(40.0 * 2.7, 40.0, when=50)) == 2                    # past the most: a, b
    assert len(ids(40.0 * 2.4, 40.0)) == 3                             # too far that soon
    assert len(ids(50.0, 70.0)) == 3                                   # 70 px against 40


def test_a_standing_face_found_again_undoes_a_walk_link():
    """A seen-once face A, then a standing face B one box away found where A is not (A's look
    missed it) and found again at its place: the third detection is not where the walk from A
    to B goes, so the link is undone and A keeps its whole 1.5 s hold, as without linking."""
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small=48.0)
    a, b = [100, 100, 140, 140], [140, 100, 180, 140]
    times = [i / 30.0 for i in range(90)]
    dets = [det(a) if i == 0 else det(b) if i in (16, 24, 32, 40, 48, 56) else det()
            for i in range(90)]
    for walk in (2.0, 0.0):
        out = run_tracker(times, dets, small_walk=walk, **kw)
        for i in range(46):
            assert any(_contains(box + [-1, -1, 1, 1], a) for box in out[i].boxes), (walk, i)
        for i in range(16, 57):
            assert any(_contains(box + [-1, -1, 1, 1], b) for box in out[i].boxes), (walk, i)
        assert len({int(k) for o in out for k in o.tracks}) == 2


def test_a_walk_link_no_third_detection_confirms_leaves_both_faces_masked():
    """A seen-once small face A, then a face B nearby found where A is not: linked as one
    walker, the track predicts B's next place along A -> B. A standing neighbour is found again
    where it was, not there: the link stays unconfirmed, and both are masked as two seen-once
    faces are (A held where it was for `small_hold`, B started `small_lead` early)."""
    kw = dict(lookahead=0.3, hold=0.5, small_hold=1.5, small_lead=1.0, small_walk=2.0,
              small=48.0)
    times = [i / 30.0 for i in range(80)]
    a, b = [100, 100, 140, 140], [160, 100, 200, 140]
    dets = [det(a) if i == 10 else det(b) if i in (18, 26, 34, 42) else det() for i in range(80)]
    out = run_tracker(times, dets, **kw)
    for i in (12, 30, 50, 54):              # A held up to 1.5 s after frame 10 (frame 55)
        assert any(_contains(box + [-1, -1, 1, 1], a) for box in out[i].boxes), i
    assert not any(_contains(box, a) and not _contains(box, b) for box in out[57].boxes)
    assert any(_contains(box + [-1, -1, 1, 1], b) for box in out[0].boxes)   # B's lead
    # a walker found a third time where its walk predicts it: one box, A's hold gone
    w = [det([100 + 60 * k, 100, 140 + 60 * k, 140]) if i == 10 + 8 * k else det()
         for i in range(80) for k in [min(max((i - 10) // 8, 0), 3)]]
    walk = run_tracker(times, w, **kw)
    assert {int(k) for o in walk[10:35] for k in o.tracks} == {0}
    assert all(len(o.boxes) == 1 for o in walk)


class _Forgetful(Tracker):
    """The tracker computing every smoothed box afresh for every frame."""

    def push(self, key, t, dets):
        for tr in self.tracks:
            tr.smoothed.clear()
        return super().push(key, t, dets)


def test_remembered_boxes_are_the_ones_computed_afresh():
    """What the tracker keeps between frames (its smoothed boxes) changes no
    released box: a crowd of small and large faces appearing, moving, missed at random, cut by
    the frame edge and panned, at a jittery frame rate, gives the same masks bit for bit."""
    rng = np.random.default_rng(5)
    n_faces, n = 40, 150
    start = rng.uniform(0, 1280, (n_faces, 2))
    size = rng.choice([14.0, 30.0, 80.0], n_faces)
    speed = rng.normal(0, 80, (n_faces, 2))
    alive = np.sort(rng.integers(0, n, (n_faces, 2)), axis=1)
    times = np.cumsum(rng.uniform(0.02, 0.05, n))
    dets = []
    for i, t in enumerate(times):
        seen = (alive[:, 0] <= i) & (i <= alive[:, 1]) & (rng.random(n_faces) > 0.3)
        xy = start + speed * t + rng.normal(0, 1.5, (n_faces, 2))
        b = np.concatenate([xy, xy + size[:, None]], axis=1)[seen]
        b = np.clip(b, 0, [1280, 720, 1280, 720])
        d = Detections(b.astype(np.float32), rng.uniform(0.3, 1, len(b)).astype(np.float32),
                       shift=(float(i % 3), -1.0) if i % 10 == 0 else None)
        dets.append(d)
    options = TrackOptions(small_hold=1.0)
    got, want = [], []
    for tracker, out in ((Tracker(options, (1280, 720)), got),
                         (_Forgetful(options, (1280, 720)), want)):
        for i, (t, d) in enumerate(zip(times, dets)):
            out += tracker.push(i, float(t), d)
        out += tracker.flush()
    assert len(got) == n and sum(len(fm.boxes) for fm in got) > 2000
    for a, b in zip(got, want):
        assert a.key == b.key and a.sources == b.sources
        for x, y in ((a.boxes, b.boxes), (a.tracks, b.tracks), (a.scores, b.scores)):
            assert x.tobytes() == y.tobytes()
