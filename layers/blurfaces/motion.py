"""Global camera motion between consecutive frames, for the tracker.

A camera pan moves every face in the frame by the same amount; a small face that the detector
sees only every few frames (the rotating fine pass, a noisy far face) moves tens of pixels
between two detections, further than its own size, so a tracker working in frame coordinates
cannot link the detections nor hold the mask on it. `CameraMotion` measures the frame-to-frame
translation by phase correlation on a small grey copy of the frame (1.3 ms at 720p); the
tracker subtracts the accumulated translation, so it links, interpolates and holds boxes in
scene coordinates and hands them back in frame coordinates.

The result depends only on the two frames, so a chunked run (which starts the chain a few
seconds before its first frame) gives the same translations as a single pass. A weak or
implausible peak counts as no motion.
"""
from __future__ import annotations

import cv2
import numpy as np

WIDTH = 320             # analysis width in pixels
MIN_RESPONSE = 0.1      # phase-correlation peak below which the estimate is ignored
MAX_SHIFT = 0.25        # larger estimates (share of the analysis width) are ignored


class CameraMotion:
    """Call with each frame in order; returns (dx, dy) in frame pixels since the previous
    frame (None for the first one or when the estimate is unreliable)."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self._prev = None
        self._window = None
        self._size = None

    def reset(self) -> None:
        self._prev = None

    def __call__(self, rgb: np.ndarray):
        h, w = rgb.shape[:2]
        f = min(1.0, self.width / max(w, h))
        sw, sh = max(16, round(w * f)), max(16, round(h * f))
        grey = cv2.cvtColor(cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY).astype(np.float32)
        if self._size != (sw, sh, w, h):
            self._size = (sw, sh, w, h)
            self._window = cv2.createHanningWindow((sw, sh), cv2.CV_32F)
            self._prev = None
        prev, self._prev = self._prev, grey
        if prev is None:
            return None
        (dx, dy), response = cv2.phaseCorrelate(prev, grey, self._window)
        if response < MIN_RESPONSE or max(abs(dx), abs(dy)) > MAX_SHIFT * max(sw, sh):
            return None
        return float(dx * w / sw), float(dy * h / sh)
