"""The large-face placed clips of bench/largefaces.py: every face whole in every frame, the
truth box on the pasted face (darkened ones darker, covered ones under the grey bar at the
right), the pan moving each box 4 px left and 1 px up a frame."""
from __future__ import annotations

import numpy as np
import pytest

from bench import largefaces

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind,faces", [("large1440", 36), ("large4k", 60)])
def test_every_face_is_whole_in_every_frame_where_its_truth_says(kind, faces):
    clip = largefaces.Large(kind, 1)
    W, H = clip.size
    assert len(clip.faces) == faces
    assert [f["size"] for f in clip.faces].count(96) == 12
    assert all(0.3 < f["occluded"]["fraction"] < 0.45 for f in clip.faces if f["occluded"])
    first, last = clip(0.0), clip((largefaces.FRAMES - 1) / largefaces.FPS)
    rows0, rows1 = clip.per_frame[0], clip.per_frame[-1]
    assert len(rows0) == len(rows1) == faces
    grey = {"plain": [], "dark": []}
    for a, b in zip(rows0, rows1):
        x1, y1, x2, y2 = a["box"]
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
        assert abs((x2 - x1) - a["size"]) < 0.5
        assert np.allclose(np.subtract(a["box"], b["box"]),
                           [4 * 59, 59, 4 * 59, 59]), (a, b)
        face = first[int(y1):int(y2), int(x1):int(x2)].astype(float)
        variant = clip.faces[a["id"]]["variant"]
        if variant == "covered":         # the bar, grey 70 under the noise, at the right
            assert abs(face[:, -3:].mean() - 70) < 3
        else:
            grey[variant].append(face.mean())
        assert np.abs(last[int(b["box"][1]):int(b["box"][3]),
                           int(b["box"][0]):int(b["box"][2])].astype(float).mean()
                      - face.mean()) < 3          # the same face, moved with the pan
    assert max(grey["dark"]) < min(grey["plain"])
