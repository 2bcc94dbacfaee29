"""Small faces followed by their picture where the networks lose them (`FollowPool`).

A darkened or partly covered 14-18 px face that the fine pass found on a few looks can drop
under every network's floor for seconds: RetinaFace scored such faces 0.00-0.04 at 2x and
0.02-0.10 at 3x for 90 and 180 frames of two placed-truth clips, CenterFace no better, and
the tracker's hold (1.5 s) ran out with the face still there (docs/measurements.md "Faces
followed by their picture"). Its picture has not gone: where the camera carried it, the grey
patch of the face and a quarter of its size around it still matches the patch of the look
that found it.

The pool keeps, for each small face (under `detect.VERIFY_UNDER`) that a region's network
run or its checks found, that patch and its box in scene coordinates (the camera's
translation taken out, as the tracker's). On the detection frame one fine-pass cycle later,
a face that no pass of that frame found near its place is looked for by its patch
(normalised cross-correlation, `cv2.matchTemplate`) within FOLLOW_REACH of its size of where
the camera carried it; where the best match scores MATCH or more, it is a face there: a box
the detector reports with no score (NaN; the coordinate file's source `followed`), and the
patch is looked for again a cycle later. A face is followed only if a network found it on
two looks running (FOLLOW_FINDS: a texture found once, the commoner false detection, is
never followed), for at most FOLLOW_MOST cycles after the last look that found it, from
the patch of that look (never from a followed one, which would drift onto the background).
A face found again starts over. Patches with less contrast than CONTRAST (grey levels,
standard deviation) are not followed: a flat patch matches any flat picture.

What a frame's follows depend on reaches back FOLLOW_MOST + FOLLOW_FINDS cycles
(`looks_remembered`); stages.margins decodes that much more before a chunk, so that a
chunked run equals one pass: 1.6 s at 30 fps. Above 1080p (MOST_PIXELS) faces are not
followed: there a worker's chunk is short (6.3 s of 4K at 5307 MB), and 1.6 s more of margin
would have cut it to 4.7 s, a third more cost per video-hour.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import box_sizes, near

MATCH = 0.8             # normalised cross-correlation of the patch, at least
FOLLOW_REACH = 1.0      # how far from where the camera carried it (its sizes) a face is looked for
FOLLOW_MOST = 4         # cycles a face is followed after the last look that found it
FOLLOW_FINDS = 2        # looks running that found it, at least
CONTEXT = 0.25          # picture around the face in its patch (share of its size, each side)
CONTRAST = 6.0          # grey levels (standard deviation) a patch needs
MOST_PIXELS = 1920 * 1088   # frames larger than this follow no faces (1080p as H.264 codes it)


def applies(width: int, height: int) -> bool:
    """Whether faces are followed in frames of this size (MOST_PIXELS)."""
    return width * height <= MOST_PIXELS


def looks_remembered() -> int:
    """How many fine-pass cycles back what a frame's follows depend on reaches."""
    return FOLLOW_MOST + FOLLOW_FINDS


def _near(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(len(boxes), len(others)): which of `others` are of 0.5-2x each box's size within one
    of its sizes, centre to centre (as detect._lost judges a face of the last look found
    again)."""
    return near(boxes, others, 1.0, 0.5, 2.0)


def _grey(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)


def patch(rgb: np.ndarray, box: np.ndarray):
    """The grey patch of the face at `box` (frame pixels) with CONTEXT of its size around
    it, cut by the frame, and the box in the patch's pixels; None where it is too small or
    too flat to be followed."""
    h, w = rgb.shape[:2]
    m = CONTEXT * float(box_sizes(box[None])[0])
    x0, y0 = int(round(max(0.0, box[0] - m))), int(round(max(0.0, box[1] - m)))
    x1, y1 = int(round(min(w, box[2] + m))), int(round(min(h, box[3] + m)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    grey = _grey(rgb, x0, y0, x1, y1)
    if grey.std() < CONTRAST:
        return None
    return grey, np.array([box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0], np.float32)


def match(rgb: np.ndarray, box: np.ndarray, template) -> np.ndarray | None:
    """Where `template` (a `patch`) is in `rgb` within FOLLOW_REACH of its face's size of
    `box`: the face's box there (frame pixels), or None if the best match is under MATCH."""
    grey, inner = template
    h, w = rgb.shape[:2]
    ph, pw = grey.shape
    reach = max(4.0, FOLLOW_REACH * float(box_sizes(box[None])[0]))
    px, py = box[0] - inner[0], box[1] - inner[1]       # the patch's corner if not moved
    x0, y0 = int(max(0.0, px - reach)), int(max(0.0, py - reach))
    x1, y1 = int(min(w, px + pw + reach)), int(min(h, py + ph + reach))
    if x1 - x0 < pw or y1 - y0 < ph:
        return None
    scores = cv2.matchTemplate(_grey(rgb, x0, y0, x1, y1), grey, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    if best < MATCH:
        return None
    return inner + np.array([x0 + bx, y0 + by, x0 + bx, y0 + by], np.float32)


class FollowPool:
    """The faces being followed (module docstring); `cycle`: detection frames between two
    looks of a region."""

    def __init__(self, cycle: int):
        self.cycle = max(1, int(cycle))
        # (scene box, patch of the last look that found it, cycles followed since,
        #  looks running that found it, the detection index it is due at)
        self._pool: list = []

    def reset(self) -> None:
        self._pool = []

    def step(self, rgb: np.ndarray, index: int, offset: np.ndarray, found: np.ndarray,
             small: np.ndarray) -> np.ndarray:
        """Frame `index`'s followed faces (frame pixels, (K, 4)). `offset`: the camera's
        translation so far (x, y); `found`: every box the frame's passes found (frame
        pixels); `small`: those of them under VERIFY_UNDER that the fine pass's network
        runs and checks found, whose patches start (or restart) a follow."""
        off = np.tile(np.asarray(offset, np.float32), 2)
        found_scene = found - off if len(found) else np.zeros((0, 4), np.float32)
        small_scene = small - off if len(small) else np.zeros((0, 4), np.float32)
        finds = np.ones(len(small), np.int32)
        boxes = np.array([e[0] for e in self._pool], np.float32).reshape(-1, 4)
        again_all = _near(boxes, small_scene)
        found_any = _near(boxes, found_scene).any(axis=1)
        keep, followed = [], []
        for entry, again, found_it in zip(self._pool, again_all, found_any):
            box, template, since, seen, due = entry
            if again.any():                 # found again: starts over below, one look more
                finds[again] = np.maximum(finds[again], seen + 1)
                continue
            if found_it:
                continue                    # a larger face's pass has it
            if due > index:
                keep.append(entry)
                continue
            if since >= FOLLOW_MOST or seen < FOLLOW_FINDS:
                continue
            at = match(rgb, box + off, template)
            if at is None:
                continue
            followed.append(at)
            keep.append((at - off, template, since + 1, seen, index + self.cycle))
        for box, seen in zip(small, finds):
            template = patch(rgb, box)
            if template is not None:
                keep.append((box - off, template, 0, int(seen), index + self.cycle))
        self._pool = keep
        return np.array(followed, np.float32).reshape(-1, 4)
