"""Selective masking: what the options that change which boxes a run masks do to each frame
(their values are parsed by `options`).

- `keep_track` ID[,ID]: tracks left unmasked (a consenting person), by the ids of a
  coordinate file (the run's `<stem>.csv`, its review page). Track ids are only global once a
  run is stitched, so this needs `boxes` (a re-render from that file).
- `ignore_region` x1,y1,x2,y2[;...]: a mask box whose centre (of its part inside the picture)
  lies inside one of these rectangles is dropped (a poster, a TV screen).
- `always_mask` x1,y1,x2,y2[@T1-T2][;...]: the rectangle is masked on every frame (or on the
  frames from T1 to T2 seconds, both included) whatever the detector says (a window, a name
  badge); always the whole rectangle, cut at the picture's edges. Its rows in the
  coordinate file have track -1 and source `region`.

Rectangles are in pixels of the upright picture, x2/y2 exclusive. Values normalise to
canonical text (`"10,20,110,80@1.5-3"`, `options.parse_rects`), so a sidecar, an event, the
environment and the CLI give the same record.
"""
from __future__ import annotations

import numpy as np

from .errors import OptionError
from .options import parse_rect

REGION_SOURCE = "region"


class Selection:
    """The selective-masking options of a run applied to one frame's mask boxes."""

    def __init__(self, keep_track=(), ignore_region=(), always_mask=()):
        self.keep = np.array(keep_track, np.int64)
        self.ignore = [parse_rect("ignore_region", r, False) for r in ignore_region]
        self.always = [parse_rect("always_mask", r, True) for r in always_mask]

    @classmethod
    def of(cls, options) -> "Selection":
        if options.keep_track and not options.boxes:
            raise OptionError("keep_track names track ids of a coordinate file: re-render with "
                              "--boxes <stem>.csv (the run whose review page or CSV shows "
                              "those ids) --keep-track ID.")
        return cls(options.keep_track, options.ignore_region, options.always_mask)

    def kept(self, boxes: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """Which of a frame's mask boxes (int (N, 4), already cut to the picture) stay masked."""
        keep = ~np.isin(tracks, self.keep) if len(self.keep) else np.ones(len(boxes), bool)
        if self.ignore and len(boxes):
            cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
            cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
            for r in self.ignore:
                keep &= ~((cx >= r.x1) & (cx < r.x2) & (cy >= r.y1) & (cy < r.y2))
        return keep

    def always_at(self, t: float, width: int, height: int) -> np.ndarray:
        """The always-masked rectangles at `t` seconds, cut to a width x height picture."""
        out = [(max(0, r.x1), max(0, r.y1), min(width, r.x2), min(height, r.y2))
               for r in self.always
               if (r.t1 is None or r.t1 - 1e-6 <= t <= r.t2 + 1e-6)
               and r.x1 < width and r.y1 < height]
        return np.array(out, np.int64).reshape(-1, 4)
