"""Selective masking: the options that change which boxes a run masks, their parsing, and the
per-frame selection.

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
canonical text (`"10,20,110,80@1.5-3"`), so a sidecar, an event, the environment and the
CLI give the same record. This module is a leaf (numpy and `errors` only): `options` uses its
parsers.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import OptionError

REGION_SOURCE = "region"
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_RECT = re.compile(rf"^{_NUM},{_NUM},{_NUM},{_NUM}(?:@{_NUM}-{_NUM})?$")


@dataclass(frozen=True)
class Rect:
    x1: int
    y1: int
    x2: int
    y2: int
    t1: float | None = None     # seconds; None: the whole video
    t2: float | None = None

    def text(self) -> str:
        when = "" if self.t1 is None else f"@{self.t1:g}-{self.t2:g}"
        return f"{self.x1},{self.y1},{self.x2},{self.y2}{when}"


def _items(name: str, value) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [p for p in re.split(r"[;\s]+", value.strip()) if p]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                         for v in value):
            return [value]          # one rectangle given as numbers
        return list(value)
    raise OptionError(f"{name}: give text such as \"10,20,110,80\" or a list of them "
                      f"(got {value!r}).")


def parse_rect(name: str, item, timed: bool) -> Rect:
    """One rectangle: "x1,y1,x2,y2" (and "@T1-T2" when `timed`) or a list of 4 numbers."""
    text = ",".join(str(v) for v in item) if isinstance(item, (list, tuple)) else str(item)
    m = _RECT.match(text)
    form = "x1,y1,x2,y2[@T1-T2]" if timed else "x1,y1,x2,y2"
    if not m or (m.group(5) is not None and not timed):
        raise OptionError(f"{name}: {text!r} is not a rectangle {form} in whole pixels "
                          "(e.g. 10,20,110,80).")
    nums = [float(g) for g in m.groups()[:4]]
    if any(v != int(v) for v in nums):
        raise OptionError(f"{name}: {text!r}: corners are whole pixels.")
    x1, y1, x2, y2 = (int(v) for v in nums)
    if x2 <= x1 or y2 <= y1 or x2 <= 0 or y2 <= 0:
        raise OptionError(f"{name}: {text!r} is empty or left/above the picture (x2 must be "
                          "above x1 and y2 above y1, both above 0).")
    t1 = t2 = None
    if m.group(5) is not None:
        t1, t2 = float(m.group(5)), float(m.group(6))
        if not (math.isfinite(t1) and math.isfinite(t2) and 0 <= t1 <= t2):
            raise OptionError(f"{name}: {text!r}: the times T1-T2 are seconds with "
                              "0 <= T1 <= T2.")
    return Rect(x1, y1, x2, y2, t1, t2)


def parse_rects(name: str, value, timed: bool) -> tuple[str, ...]:
    """The canonical texts of the rectangles of an option value (see the module doc)."""
    return tuple(parse_rect(name, item, timed).text() for item in _items(name, value))


def parse_ids(name: str, value) -> tuple[int, ...]:
    """Track ids "3,5", 3, [3, 5] -> (3, 5): sorted, unique, each >= 0."""
    if value is None:
        return ()
    items = value.replace(";", ",").split(",") if isinstance(value, str) else \
        (list(value) if isinstance(value, (list, tuple)) else [value])
    ids = set()
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            ok = not isinstance(item, (bool, float)) and int(item) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise OptionError(f"{name}: track ids are whole numbers >= 0, comma-separated, "
                              f"as on the review page and in the coordinate file (got "
                              f"{value!r}).")
        ids.add(int(item))
    return tuple(sorted(ids))


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
