"""Reuse of detections where the picture has not changed (a still camera).

A region whose pixels are what they were when the network last ran on it holds the same
faces, so that run's detections can stand for a new one. "What they were": a grey copy of
the frame at a quarter of its size (each value the mean of 4x4 pixels, so sensor grain and
compression noise average out) differs by no more than `LEVEL` grey levels from the copy
taken at that run. A face moving in, a head turning, a light changing or the camera moving
by a pixel changes some values by more.

Where only part of a region changed (people walking through a still scene), the network runs
on that part alone: the changed values, grown by a margin as large as a face the pass is
responsible for, cut into boxes (one per connected area). Detections over a changed value
are dropped and come from the new run; the others are kept (one the new run finds again is
merged with it). That is safe only when every face over a change fits in a box with
picture around it: if an old one does not (a large face that moved a little), if the new run
sees something over a change crossing its box's edge (a large face not found before), or
when the boxes cover most of the region, the whole region runs afresh.

Near-misses (boxes scoring between `DOUBT` x the threshold and the threshold) are run again on
every turn with `DOUBT_CONTEXT` pixels around them, and what they find is added to what is
kept: without reuse, such a face would get a new chance on every turn, since noise differs
from frame to frame, and it keeps those chances.

The grey copy also tells the detector's walker checks (detect.py) where the picture under a
box is what it was at the region's previous look while the camera stood still: nothing walked
there. That reaches one look back, as the detector's evidence does (stages.margins).

Reuse never outlives a period of `reuse_frames` detection frames counted from the video's first
frame: each region's first run in a period is fresh and whole. The detections at a frame
therefore depend only on the frames since its period began, and a chunk whose lead-in holds
one period (stages.margins) gives the same detections as a single pass.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

SCALE = 4           # the grey copy is 1/SCALE of the frame on each side
# Largest change (grey levels, of a 4x4 mean) still taken for "unchanged". On the still crowd
# clip (bench/hardclips.py static720: grain sigma 6, crf 32) 99% of the values moved by 1 or
# less between frames 4 apart, while people walking through it moved some by 130 and more.
LEVEL = 10
PARTIAL_MAX = 0.5   # boxes covering more than this share of the region: run it whole
DOUBT = 0.5         # near-misses: boxes scoring above this share of the threshold, below it
DOUBT_CONTEXT = 32  # pixels of picture around a near-miss run with it (at least its size)
STILL_CAMERA = 1.0  # camera motion (px) between two looks of a region still taken for none


class Stillness:
    """Per frame: `frame(rgb, index)`; per region: `plan(key, region, margin)` says what to
    run, `keep(key, region, dets, changed)` records the result (`dets`: a
    detect.Detections); per look of a region, `changed_since_last_look` says where its
    picture changed since the one before (detect.py's walker checks)."""

    def __init__(self):
        self._memo: dict = {}
        self._looked: dict = {}     # key -> its region's grey copy and the camera's offset
                                    # at its last look
        self._grey = None
        self._period = None
        self._changed = None
        self.reset()

    @property
    def active(self) -> bool:
        return self._grey is not None

    def reset(self, reuse_frames: int = 0) -> None:
        """Forget every region; `reuse_frames` detection frames per period (0: never reuse)."""
        self.reuse_frames = max(0, int(reuse_frames))
        self.reused = self.partial = self.runs = 0      # regions, while reuse is on
        self._memo.clear()
        self._looked.clear()
        self._grey = None

    def frame(self, rgb: np.ndarray, index: int | None) -> None:
        """The frame about to be detected (`index`: its detection number in the video)."""
        if not self.reuse_frames or index is None:
            self._grey = None
            return
        h, w = rgb.shape[:2]
        # Grey first (a third of the pixels), then exact 4x4 means: the pixels past the last
        # whole cell (at most 3 rows or columns) are not looked at.
        gw, gh = max(1, w // SCALE), max(1, h // SCALE)
        grey = cv2.cvtColor(rgb[:gh * SCALE, :gw * SCALE], cv2.COLOR_RGB2GRAY)
        self._grey = cv2.resize(grey, (gw, gh), interpolation=cv2.INTER_AREA)
        self._period = index // self.reuse_frames

    @staticmethod
    def _cells(box, origin=(0, 0)):
        """Rows and columns of the grey copy under `box` (pixels), from `origin` (cells)."""
        x0, y0 = (int(math.floor(v)) for v in box[:2])
        x1, y1 = (int(math.ceil(v)) for v in box[2:])
        return (slice(max(0, y0 // SCALE - origin[1]), max(0, -(-y1 // SCALE) - origin[1])),
                slice(max(0, x0 // SCALE - origin[0]), max(0, -(-x1 // SCALE) - origin[0])))

    @classmethod
    def _over(cls, changed: np.ndarray, origin, boxes) -> np.ndarray:
        """For each box (pixels): does it lie over a True value of the cell mask `changed`,
        whose first cell is `origin`? One integral image, not a slice per box."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros(0, bool)
        h, w = changed.shape
        sums = cv2.integral(changed.astype(np.uint8))
        c0 = np.clip(np.floor(boxes[:, 0]).astype(np.int64) // SCALE - origin[0], 0, w)
        r0 = np.clip(np.floor(boxes[:, 1]).astype(np.int64) // SCALE - origin[1], 0, h)
        c1 = np.clip(-(-np.ceil(boxes[:, 2]).astype(np.int64) // SCALE) - origin[0], 0, w)
        r1 = np.clip(-(-np.ceil(boxes[:, 3]).astype(np.int64) // SCALE) - origin[1], 0, h)
        return (sums[r1, c1] - sums[r0, c1] - sums[r1, c0] + sums[r0, c0]) > 0

    @staticmethod
    def _within(arr: np.ndarray, boxes: list) -> np.ndarray:
        """For each row of `arr` (x0, y0, x1, y1): does it lie wholly inside one of `boxes`?"""
        if not len(boxes) or not len(arr):
            return np.zeros(len(arr), bool)
        b = np.asarray(boxes, np.float64)
        a = np.asarray(arr, np.float64)[:, None, :]
        return ((a[..., 0] >= b[:, 0]) & (a[..., 1] >= b[:, 1]) & (a[..., 2] <= b[:, 2])
                & (a[..., 3] <= b[:, 3])).any(1)

    def _components(self, mask, region, origin):
        """Bounding boxes (pixels, inside `region`) of the connected areas of a cell mask."""
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        x0, y0, x1, y1 = region
        gx, gy = origin[0] * SCALE, origin[1] * SCALE       # the cells' origin in pixels
        return [(max(x0, gx + cx * SCALE), max(y0, gy + cy * SCALE),
                 min(x1, gx + (cx + cw) * SCALE), min(y1, gy + (cy + ch) * SCALE))
                for cx, cy, cw, ch, _ in stats[1:n]]

    def plan(self, key, region, margin: int):
        """None: run the whole region. Else (kept, changed, doubtful): `changed` boxes
        (x0, y0, x1, y1, pixels, inside the region) are where the picture changed, grown by
        `margin`, one per connected area, to be run again in place of what they held;
        `doubtful` boxes hold the last run's near-misses with their surroundings, to be run
        again in addition; `kept` the last run's detections that no change touches (its
        near-misses: none, all are run again). No boxes: nothing to run, `kept` is the
        answer (with the near-misses, of which there are none then)."""
        self._changed = None
        if self._grey is None:
            return None
        memo = self._memo.get(key)
        if memo is None or memo["period"] != self._period:
            return None
        rows, cols = self._cells(region)
        origin = (cols.start, rows.start)
        changed = cv2.absdiff(self._grey[rows, cols], memo["grey"]) > LEVEL
        self._changed = (key, changed, origin)
        dets = memo["dets"]
        share = np.count_nonzero(changed) / changed.size
        if share == 0 and not len(dets.doubt):
            self.reused += 1
            return dets, [], []
        if share > PARTIAL_MAX:         # a moving camera: no need to look closer
            return None
        x0, y0, x1, y1 = region
        boxes = []
        if share:
            m = -(-int(margin) // SCALE)
            grown = cv2.dilate(changed.astype(np.uint8), np.ones((2 * m + 1, 2 * m + 1),
                                                                   np.uint8))
            boxes = self._components(grown, region, origin)

        # A face over a changed value is stale: it is dropped, and found again by the new
        # run if it lies wholly inside a box, with context around it. A larger one (a big
        # face that moved a little) is not: run the whole region. Faces elsewhere stand; one
        # the new run finds as well is merged with it. Near-misses over a change likewise:
        # they are run again with their changed box.
        old, doubt = dets.boxes, dets.doubt
        stale, doubt_over = self._over(changed, origin, old), self._over(changed, origin, doubt)
        over = np.concatenate([old[stale], doubt[doubt_over]])
        if len(over):
            # with half its size of picture around it, as the whole region would give it
            g = 0.5 * np.maximum(over[:, 2] - over[:, 0], over[:, 3] - over[:, 1])
            context = np.column_stack([np.maximum(x0, over[:, 0] - g),
                                       np.maximum(y0, over[:, 1] - g),
                                       np.minimum(x1, over[:, 2] + g),
                                       np.minimum(y1, over[:, 3] + g)])
            if not self._within(context, boxes).all():
                return None
        # Near-misses in unchanged places are looked at again on every turn, with their
        # surroundings, as the whole region would look at them: a face the network is unsure
        # of gets its chances (noise differs between frames) instead of a period's verdict.
        doubt = doubt[~(doubt_over | self._within(doubt, boxes))]
        doubtful = []
        if len(doubt):
            mask = np.zeros_like(changed, np.uint8)
            for b in doubt:
                g = max(DOUBT_CONTEXT, float(max(b[2] - b[0], b[3] - b[1])))
                mask[self._cells(b + np.array([-g, -g, g, g]), origin)] = 1
            doubtful = self._components(mask, region, origin)
        if sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes + doubtful) > \
                PARTIAL_MAX * (x1 - x0) * (y1 - y0):
            return None
        kept = type(dets)(old[~stale], dets.scores[~stale])
        kept.doubt = np.zeros((0, 4), np.float32)       # each is in a doubtful box: run again
        return kept, boxes, doubtful

    def runs_whole(self, key, index: int, previous: int | None = None) -> bool:
        """Whether `plan` of `key` on detection frame `index` (this frame's, or a later
        one's) will run the whole region whatever its picture: reuse off, or its kept run
        from an earlier period than `index`'s and no look of it meanwhile (`previous`: the
        detection frame of its previous look, which may not have happened yet) in that
        period."""
        if not self.reuse_frames:
            return True
        period = index // self.reuse_frames
        memo = self._memo.get(key)
        if memo is not None and memo["period"] == period:
            return False
        return previous is None or previous // self.reuse_frames != period

    def changed_since_last_look(self, key, region, boxes, camera) -> np.ndarray:
        """For each of `boxes` (pixels): whether the picture under it changed since the last
        call for `key` (the region's previous look), by more than `LEVEL` anywhere under it;
        True for all where that is not known: reuse off, no previous look, or the camera
        (`camera`: its measured offset, pixels) moved more than `STILL_CAMERA` px since (a
        flat wall under a pan keeps its values without being still). Then this look becomes
        the previous one."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if self._grey is None:
            return np.ones(len(boxes), bool)
        rows, cols = self._cells(region)
        now, camera = self._grey[rows, cols], np.asarray(camera, np.float64)
        before, was = self._looked.get(key, (None, None))
        self._looked[key] = (now.copy(), camera.copy())
        if not len(boxes) or before is None or before.shape != now.shape or \
                np.abs(camera - was).max() > STILL_CAMERA:
            return np.ones(len(boxes), bool)
        return self._over(cv2.absdiff(now, before) > LEVEL, (cols.start, rows.start), boxes)

    def touches_change(self, key, boxes) -> bool:
        """Whether any of `boxes` (pixels) lies over a value found changed by the last `plan`
        of `key`."""
        if boxes is None or not len(boxes) or self._changed is None or \
                self._changed[0] != key:
            return False
        _, changed, origin = self._changed
        return bool(self._over(changed, origin, boxes).any())

    def keep(self, key, region, dets, changed=None) -> None:
        """Record a run's detections: of the whole region (`changed` None), or with the
        `changed` boxes run afresh (their grey copy is updated; the rest keeps its own)."""
        if self._grey is None:
            return
        rows, cols = self._cells(region)
        if changed is None:
            self.runs += 1
            self._memo[key] = {"period": self._period, "grey": self._grey[rows, cols].copy(),
                               "dets": dets}
            return
        self.partial += 1
        memo = self._memo[key]
        origin = (cols.start, rows.start)
        for b in changed:           # the doubtful boxes' pictures were not changed
            memo["grey"][self._cells(b, origin)] = self._grey[self._cells(b)]
        memo["dets"] = dets
