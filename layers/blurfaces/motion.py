"""Global camera motion between consecutive frames, for the tracker.

A camera pan moves every face in the frame by the same amount; a small face that the detector
sees only every few frames (the rotating fine pass, a noisy far face) moves tens of pixels
between two detections, further than its own size, so a tracker working in frame coordinates
cannot link the detections nor hold the mask on it. `CameraMotion` measures the frame-to-frame
translation of the picture's centre on a small grey copy of the frame; the tracker subtracts
the accumulated translation, so it links, interpolates and holds boxes in scene coordinates and
hands them back in frame coordinates.

Two measurements, the second refining the first. Phase correlation over the whole copy finds
the shift to within about a pixel of the copy, even for fast pans and noisy pictures; then up
to 200 corners of the previous copy are followed into this one (pyramidal Lucas-Kanade,
started from that shift), a similarity (pan, zoom, roll) is fitted to those that agree
(RANSAC), and the shift is where it takes the centre; the fit's scale is the zoom (`zoom`,
about the picture's centre). Phase correlation alone leans towards
whole pixels of the copy (a 5.4 px per frame pan measured 4.9, a 2.5 px one 3.1; placed truth:
0.3-0.45 px of error per 720p frame, 0.1-0.15 with the corners), so a face held for 1.5 s was
20-50 px off its mask by the end (docs/measurements.md "Camera motion from corners"). Where
the picture has too few corners to follow (flat), or they do not agree on one motion (a very
dark, noisy picture, whose "corners" are grain), the phase correlation's shift is kept; a cut
gives neither a phase peak nor corners that agree, and no motion.

The result depends only on the two frames (OpenCV's RANSAC draws from a fixed seed), so a
chunked run (which starts the chain a few seconds before its first frame) gives the same
translations as a single pass. A weak or implausible phase peak, without corners that agree
on a motion, counts as no motion.
"""
from __future__ import annotations

import cv2
import numpy as np

WIDTH = 320             # analysis width in pixels
MIN_RESPONSE = 0.1      # phase-correlation peak below which the estimate is ignored
MAX_SHIFT = 0.25        # larger estimates (share of the copy's longer side) are ignored
CORNERS = 200           # corners followed, at most, 8 analysis px apart at least
CORNER_QUALITY = 0.01   # (of the strongest corner's strength: goodFeaturesToTrack)
CORNER_SPACING = 8
LK_WINDOW = (15, 15)    # Lucas-Kanade's window around each corner (analysis px)
AGREE = 0.5             # analysis px from the fitted motion: a corner that moved with it
AGREE_MIN = 20          # corners that must agree, and at least this share of those followed
AGREE_SHARE = 0.4
# a fit that scales the picture by more between two measured frames is no camera's: its shift
# is not used either (phase correlation's is)
MAX_ZOOM = 0.1


class CameraMotion:
    """Call with each frame in order; returns (dx, dy) in frame pixels since the previous
    frame (None for the first one or when the estimate is unreliable). `zoom` is then the
    picture's scale about its centre since the previous frame (1.0 where the corners did not
    measure one)."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self._prev = None
        self._window = None
        self._size = None
        self.zoom = 1.0

    def reset(self) -> None:
        self._prev = None
        self.zoom = 1.0

    def __call__(self, rgb: np.ndarray):
        h, w = rgb.shape[:2]
        f = min(1.0, self.width / max(w, h))
        sw, sh = max(16, round(w * f)), max(16, round(h * f))
        grey = cv2.cvtColor(cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY)
        if self._size != (sw, sh, w, h):
            self._size = (sw, sh, w, h)
            self._window = cv2.createHanningWindow((sw, sh), cv2.CV_32F)
            self._prev = None
        prev, self._prev = self._prev, grey
        self.zoom = 1.0
        if prev is None:
            return None
        # float copies made afresh for each call: phaseCorrelate multiplies its inputs by the
        # window in place where their size needs no padding (320x180 does not), so a copy kept
        # for the next frame would be windowed twice
        (dx, dy), response = cv2.phaseCorrelate(prev.astype(np.float32),
                                                grey.astype(np.float32), self._window)
        limit = MAX_SHIFT * max(sw, sh)
        rough = None if response < MIN_RESPONSE or max(abs(dx), abs(dy)) > limit else (dx, dy)
        fit = _corners_motion(prev, grey, rough)
        shift = fit[0] if fit is not None else rough
        if shift is None or max(abs(shift[0]), abs(shift[1])) > limit:
            return None
        if fit is not None:
            self.zoom = fit[1]
        return float(shift[0] * w / sw), float(shift[1] * h / sh)


def _corners_motion(prev: np.ndarray, grey: np.ndarray, rough):
    """The shift of the picture's centre from `prev` to `grey` (analysis pixels) and the zoom
    about it that most corners of `prev` agree on, followed from `rough` (or from no motion);
    None where there are too few corners or they do not agree on one motion."""
    p0 = cv2.goodFeaturesToTrack(prev, CORNERS, CORNER_QUALITY, CORNER_SPACING)
    if p0 is None or len(p0) < AGREE_MIN:
        return None
    # from phase correlation's shift, a pixel or so off, two levels of the pyramid reach;
    # from no motion, four
    guess = p0 + np.asarray(rough if rough is not None else (0.0, 0.0), np.float32)
    p1, found, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, guess, winSize=LK_WINDOW,
                                            maxLevel=3 if rough is None else 1,
                                            flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    ok = found[:, 0] == 1
    if ok.sum() < AGREE_MIN:
        return None
    a, b = p0[ok, 0], p1[ok, 0]
    # a similarity (pan, zoom, roll), so that a zoom's corners, which move apart, agree too;
    # the shift is the motion of the picture's centre, as phase correlation measures it
    m, inliers = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC,
                                             ransacReprojThreshold=AGREE, maxIters=200,
                                             confidence=0.99, refineIters=10)
    if m is None or inliers.sum() < max(AGREE_MIN, AGREE_SHARE * len(a)):
        return None
    zoom = float(np.hypot(m[0, 0], m[1, 0]))
    if abs(zoom - 1.0) > MAX_ZOOM:
        return None
    h, w = prev.shape
    centre = np.array([w / 2, h / 2, 1.0])
    return tuple(float(v) for v in m @ centre - centre[:2]), zoom
