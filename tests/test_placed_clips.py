"""The placed-truth clips of bench/placed.py can be made for every kind: all 72 faces placed
(12 per width), each inside every frame it is meant to be in and never over another, and on
`zoom720` the faces grow and shrink with the camera's zoom."""
from __future__ import annotations

import numpy as np
import pytest

from bench import placed

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", sorted(placed.KINDS))
def test_every_kind_places_all_faces_apart(kind):
    clip = placed.Placed(kind, 1)
    sizes = [rec["size"] for rec, *_ in clip.faces]
    assert len(sizes) == 72 and all(sizes.count(s) == 12 for s in placed.SIZES)
    assert sum(rec["variant"] == "blurred" for rec, *_ in clip.faces) == 6
    zoom = clip.cams[:, 2:3] if clip.scales else np.ones((clip.n, 1))
    W, H = clip.size
    patches = []
    for rec, img, alpha, box, xy, tone in clip.faces:
        fb = np.concatenate([xy + box[:2] * zoom, xy + box[2:] * zoom], 1)
        inside = np.array([placed._inside(b, W, H) for b in fb])
        if rec["edge"]:
            assert (inside >= placed.MIN_INSIDE).sum() >= 40, rec
        else:       # a fast walker's box includes its motion blur's reach
            assert inside.min() > (0.9 if rec["variant"] == "blurred" else 0.99), rec
        # the face box itself (the patch's faded margin may touch a neighbour's)
        patches.append(fb)
    for i in range(len(patches)):
        for j in range(i):
            assert not placed._overlap(patches[i], patches[j], pad=0), (i, j)


def test_zoom720_faces_grow_and_shrink_with_the_zoom():
    clip = placed.Placed("zoom720", 2)
    z = clip.cams[:, 2]
    mid = int(np.argmax(z))
    assert z[0] < 0.75 and z[mid] > 1.45 and z[-1] < 0.75
    clip(0.0)
    clip(mid / clip.fps)
    first = {b["id"]: b for b in clip.per_frame[0]}
    peak = {b["id"]: b for b in clip.per_frame[mid]}
    both = [i for i in first if i in peak and first[i]["inside"] == 1 and peak[i]["inside"] == 1]
    assert len(both) >= 50
    ratio = np.array([peak[i]["w"] / first[i]["w"] for i in both])
    assert np.allclose(ratio, z[mid] / z[0], rtol=0.02)
