"""bench/far.py: far over-masking attributed to the coordinate-file rows whose boxes cover it,
on a clip whose changed pixels, placed face and rows are known."""
from __future__ import annotations

import csv

import av
import numpy as np
import pytest

from bench import far

W, H, N = 320, 240, 10
FACE = [40.0, 40.0, 60.0, 64.0]             # placed face; far leaves 30-70 x 28-76 out
TEXTURE = (200, 100, 240, 140)             # a "texture" masked on frames 2-5
NEAR = (45, 45, 55, 55)                    # changed beside the face: not far
STRAY = (100, 180, 120, 200)               # changed with no row (frame 3): unboxed
BESIDE = (75, 30, 100, 90)                 # changed on frame 8 under the face's held box


def _write(path, frames):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"qp": "0"}                     # lossless: the changes are exactly ours
        for g in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(g, format="gray").reformat(
                    format="yuv420p")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _set(g, box):
    x1, y1, x2, y2 = box
    g[y1:y2, x1:x2] = (g[y1:y2, x1:x2].astype(np.int16) + 128) % 256


@pytest.fixture()
def clip(tmp_path):
    rng = np.random.default_rng(5)
    src = [rng.integers(40, 216, (H, W), dtype=np.uint8) for _ in range(N)]
    out = [g.copy() for g in src]
    for k in range(2, 6):
        _set(out[k], TEXTURE)
    for k in range(N):
        _set(out[k], NEAR)
    _set(out[3], STRAY)
    _set(out[8], BESIDE)
    _write(tmp_path / "in.mp4", src)
    _write(tmp_path / "out.mp4", out)
    rows = [(k, "lead") for k in (2, 3)] + [(k, "held") for k in (4, 5)] + [(6, "detected")]
    with open(tmp_path / "out.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["time (ms)", "x1", "y1", "x2", "y2", "track", "frame", "score", "source"])
        for k, source in rows:
            wr.writerow([k * 1000 / 30, *TEXTURE, 7, k, "0.2" if source == "detected" else "",
                         source])
        wr.writerow([0.0, 36, 36, 64, 68, 1, 0, "0.9", "detected"])     # the face, frame 0
        wr.writerow([8000 / 30, 30, 30, 100, 90, 1, 8, "", "held"])     # its box, grown
    truth = {"per_frame": [[{"id": 0, "size": 20, "box": FACE}] for _ in range(N)]}
    return tmp_path, truth


def test_far_pixels_go_to_the_rows_that_cover_them(clip):
    d, truth = clip
    res = far.attribute(str(d / "in.mp4"), truth, str(d / "out.mp4"), str(d / "out.csv"))
    outside = N * (W * H - 40 * 48)                 # the face's box grown to twice its size
    box = 40 * 40

    def pts(n):
        return round(100.0 * n / outside, 3)

    groups = {(g["source"], g["track_detections"], g["on"]): g["far_points"]
              for g in res["groups"]}
    # the texture's 4 frames, its lead and its hold (a track with one detection, on no face),
    # and the face's held box where it reaches past twice the face's size
    assert groups == {("lead", "once", "none"): pts(2 * box),
                      ("held", "once", "none"): pts(2 * box),
                      ("held", "once", "face"): pts(25 * 60)}
    assert res["unboxed_pct"] == pts(20 * 20)       # the stray change; beside the face: none
    assert res["far_pct"] == pts(4 * box + 400 + 25 * 60)
    assert [(t["track"], t["source"]) for t in res["tracks_on_no_face"]] == \
        [("7", "lead"), ("7", "held")]
