"""Processing options: one typed, frozen record, each field defined once, and the one way
every entry point layers and validates them.

`Options` is an ordinary frozen dataclass: `options.threshold` is a `float | None` that type
checkers and readers see. Each field carries its whole definition in its metadata (a `Spec`:
default, bounds or choices, CLI flag, environment variable `BLURFACES_<NAME>`, help, and its
default in the drop-folder layout). Everything else derives from those fields: validation
(`Options.__post_init__`), the CLI's flags (`cli.py`), the environment layer (`from_env`),
the API's defaults (`api.blur_faces`), sidecar files and events (`layered`). Adding an option
means adding its field and the code that uses it.

A record holds what was given or the field's plain default, never a value a preset derives:
`threshold` and `reuse` stay None ("the quality preset's") until they are read through
`score_threshold` and `reuse_s`. So an `Options` can be layered again (a video's sidecar over
the options of a batch) with the same result as layering everything at once.

`resolve` is the one function every entry point calls (CLI, API, batch/watch, the Lambdas):
defaults < drop-folder layout < environment < the call's own options (CLI, API, event) <
sidecar. `with_sidecar` lays a video's sidecar over options resolved earlier. Records are
serialised (`to_dict`/`from_dict`) only where they cross a process: the manifest, the
summary, a Lambda event.

The names and meanings of the seed's parameters (`mask`, `mask_image`, `mask_scale`,
`ellipse`, `draw_heatmap`, `neighbours`, `resolution`, `draw_scores`, `save_data`,
`data_format`, `color`) are kept; the rest are blurfaces' own. Execution settings (`workers`,
`chunk_seconds`, `chunks`) are the separate record `Execution`: they change how a result is
computed, never the result.

This module is a leaf: it imports nothing of blurfaces but `errors`.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from .errors import OptionError

MASKS = ("blur", "rectangle", "mosaic", "image", "none")
DATA_FORMATS = ("csv", "tsv", "txt")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
DEFAULT_DETECT_SIZE = 640
DEFAULT_THRESHOLD = 0.4
ENV_PREFIX = "BLURFACES_"

# Detection presets (`quality`): the score threshold and the rotating 2x-upscaled fine pass
# for small and far faces (detect.FinePass; `fine_cycle` = frames per sweep of its grid, None
# = off). "fast" is the single 640 px pass of earlier releases. Measured coverage and cost
# of each: docs/measurements.md "Small, far and noisy faces".
# `reuse_s`: a region whose picture has not changed reuses its last detections within
# periods of this many seconds (detect.py, still.py; None = the preset has no reuse).
# The fine pass runs `fine_network` (nets.py) at `fine_threshold`; a small face's mask stays
# `small_hold` seconds after its last detection and starts `small_lead` seconds before its
# first, and while it has been seen once its mask grows by `small_walk` of its width per
# second (track.py; the region that finds it looks at it once per sweep); `persist`: a near-miss
# seen on two looks of its region is a face (detect.FinePass; in `max` the looks are a frame
# apart, which is not more evidence: a 14-frame leak on crowd720); `detect_size` is the
# whole-frame pass's size where --detect-size keeps its default (the fine pass sees faces up
# to 96 px), at least (frames over 1920 px: WHOLE_MOST_SHRINK), and `whole_every` the frames
# from one run of that pass to the next (the tracker
# interpolates the larger faces it is left between two runs; max: every frame); `weak`: a
# fainter box (above this share of the fine threshold), under 48 px, seen on two looks (at one
# place, or a walker's few widths apart: detect.MOVED_REACH) is run again alone at 3x, and is
# a face if that run scores it over 0.15 (detect.FinePass.weak, .verify); `bridge`: a track
# the detector misses for up to this many seconds, found again where it predicts, continues
# through the gap (track.TrackOptions.bridge); `sure_over`: a fine-pass box this wide (px)
# or wider scored under 0.3 is a face only if a run of it alone at 3x scores it over 0.3, and
# is never a near-miss (detect.FinePass.sure_over); `persist_edge`: a near-miss seen twice
# at the frame's edge is a face only if that run at 3x scores it over 0.15
# (detect.FinePass.persist_edge); `follow`: a small face found on two looks running that no
# pass finds later is followed by its picture (follow.py; detect.FinePass.follow).
# Measured on placed-truth and hard clips: docs/measurements.md "Small, far and noisy faces".
QUALITY = {
    "fast": {"threshold": DEFAULT_THRESHOLD, "fine_cycle": None, "reuse_s": None},
    "balanced": {"threshold": 0.3, "fine_cycle": 8, "reuse_s": 0.5,
                 "fine_network": "retinaface", "fine_threshold": 0.1, "small_hold": 1.5,
                 "small_lead": 1.0, "small_walk": 2.0, "persist": True, "detect_size": 384,
                 "whole_every": 2, "weak": 0.15, "bridge": 1.5, "sure_over": 32.0,
                 "persist_edge": True, "follow": True},
    "max": {"threshold": 0.3, "fine_cycle": 1, "reuse_s": None,
            "fine_network": "retinaface", "fine_threshold": 0.1, "small_hold": 1.5,
            "bridge": 1.5},
}
DEFAULT_QUALITY = "balanced"
DEFAULT_PRECISION = "int8"
PRECISIONS = ("int8", "fp32")     # CenterFace's arithmetic (model.py builds int8)

# Measured on a 1080p crowd clip (faces 40-80 px): at detect_size 640 one small face leaked
# for 23 frames (99.05% covered); the tile pass covered 99.95% for ~1.9x the time. 720p
# clips gain nothing from it, so "auto" turns it on from 1600 px (at 640) upwards; a smaller
# detect_size (chosen for speed) does not switch it on for smaller frames.
TILES_AUTO_RATIO = 2.5
TILES_AUTO_MIN_SIDE = 1600

# With the fine pass, the whole-frame pass is left the faces wider than the fine pass keeps
# (detect.FinePass.largest, 96 px); shrunk more than this many times, those are under 19 px
# in its input, where CenterFace scores them near its threshold or misses them. At 4K (10x at
# 384 px) bench/largefaces.py's `large4k` (60 faces of 96-200 px, plain, darkened, partly
# covered) was 99.11% covered with a 17-frame run, 99.83% and 2 frames at 768 px; a harsher
# first version 87.3% against 100% (96 px faces 41%); at 1440p (512 px) the scores rose, the
# coverage was already there (docs/measurements.md "The whole-frame pass grows with the
# frame"). So where `--detect-size` is not given, its size is at least the frame's longer side
# over this (1920 px and under: the preset's size as before). `--tiles on` runs its tiles at
# that size too.
WHOLE_MOST_SHRINK = 5.0


# ------------------------------------------------------------------------------ parsers

def parse_color(color) -> tuple[int, int, int]:
    """Read an RGB colour given as (r, g, b) with ints 0..255 or as the string "R,G,B"."""
    parts = None
    if isinstance(color, str):
        try:
            parts = [int(p.strip()) for p in color.split(",")]
        except ValueError:
            parts = None
    elif isinstance(color, (tuple, list)) or type(color).__name__ == "ndarray":
        parts = [int(p) if _integral(p) else None for p in color]
        if None in parts:
            parts = None
    if parts is None or len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise OptionError(f"color must be three integers 0..255 as R,G,B (for example "
                          f"\"255,0,0\" for red); got {color!r}.")
    return tuple(int(p) for p in parts)


def parse_formats(data_format) -> list[str]:
    """'csv', 'csv,tsv', ['csv', 'txt'] -> ['csv', 'tsv', ...] (order kept, duplicates dropped)."""
    if data_format is None:
        return ["csv"]
    items = data_format.split(",") if isinstance(data_format, str) else list(data_format)
    out = []
    for item in items:
        f = str(item).strip().lower().lstrip(".")
        if f not in DATA_FORMATS:
            raise OptionError(f"unknown data format {item!r}: use one or more of "
                              f"{', '.join(DATA_FORMATS)} (e.g. --data-format csv,tsv).")
        if f not in out:
            out.append(f)
    if not out:
        raise OptionError("data_format is empty: use one or more of csv, tsv, txt.")
    return out


# Selective masking (regions.py): track ids and rectangles.
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


def _integral(v) -> bool:
    return not isinstance(v, bool) and type(v).__name__ != "bool_" and \
        (isinstance(v, int) or (hasattr(v, "dtype") and v.dtype.kind in "iu"))


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


# ------------------------------------------------------------------------------ specs

@dataclass(frozen=True)
class Spec:
    """One option: everything every entry point needs to know about it."""
    name: str
    kind: str               # bool | int | float | choice | text | formats | color | ids |
                            # rects | timed_rects (selective masking: regions.py)
    default: object
    help: str
    flag: str               # CLI flag; bools get --flag / --no-flag
    group: str = "masking"
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    multiple_of: int | None = None
    nullable: bool = False  # None is a valid value (meaning: see help)
    metavar: str | None = None
    layout: object = None   # the default in the drop-folder layout (None: the same)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def check(self, v):
        """The value, normalised; OptionError naming the option when it is not valid."""
        if v is None and self.nullable:
            return None
        k, name = self.kind, self.name
        if k == "bool":
            if not isinstance(v, bool):
                raise OptionError(f"{name} must be true or false (got {v!r}).")
            return v
        if k == "choice":
            if v not in self.choices:
                raise OptionError(f"{name} must be one of {', '.join(self.choices)} "
                                  f"(got {v!r}).")
            return v
        if k == "formats":
            return tuple(parse_formats(v))
        if k == "color":
            return parse_color(v)
        if k == "ids":
            return parse_ids(name, v)
        if k in ("rects", "timed_rects"):
            return parse_rects(name, v, timed=k == "timed_rects")
        if k == "text":
            if not isinstance(v, str) or not v:
                raise OptionError(f"{name} must be a non-empty text (got {v!r}).")
            return v
        ok = _int(v) if k == "int" else _num(v)
        if ok and self.lo is not None and v < self.lo:
            ok = False
        if ok and self.hi is not None and v > self.hi:
            ok = False
        if ok and self.multiple_of and v % self.multiple_of:
            ok = False
        if not ok:
            what = "an integer" if k == "int" else "a number"
            extra = f", a multiple of {self.multiple_of}" if self.multiple_of else ""
            raise OptionError(f"{name} must be {what} from {self.lo:g} to {self.hi:g}{extra} "
                              f"(got {v!r}).")
        return float(v) if k == "float" else v

    def parse_text(self, text: str):
        """A value given as text (CLI, environment) -> the option's type (not yet checked)."""
        t = text.strip()
        if self.nullable and t.lower() in ("", "none", "default"):
            return None
        if self.kind == "bool":
            if t.lower() in _TRUE:
                return True
            if t.lower() in _FALSE:
                return False
            raise OptionError(f"{self.name}: use true or false (got {text!r}).")
        try:
            if self.kind == "int":
                return int(t)
            if self.kind == "float":
                return float(t)
        except ValueError:
            raise OptionError(f"{self.name} must be {'an integer' if self.kind == 'int' else 'a number'} "
                              f"(got {text!r}).") from None
        return t


_M, _D, _O, _E = "masking", "detection and tracking", "outputs", "execution"


def option(default, flag: str, help: str, kind: str, group: str, **limits):
    """A dataclass field whose metadata is the option's whole definition (its `Spec`; the
    name is the field's)."""
    spec = Spec("", kind, default, help, flag, group, **limits)
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _check_fields(record) -> None:
    """Validate and normalise every field of a frozen record in place (its Spec)."""
    for f in fields(record):
        object.__setattr__(record, f.name, BY_NAME[f.name].check(getattr(record, f.name)))


@dataclass(frozen=True)
class Options:
    """The validated processing options of one job."""

    mask: str = option("blur", "--mask", "blur (default), rectangle, mosaic, image, or none "
                       "(data only)", "choice", _M, choices=MASKS)
    mask_image: str | None = option(None, "--mask-image", "image pasted over faces (--mask "
                                    "image)", "text", _M, nullable=True, metavar="PATH")
    mask_scale: float = option(1.0, "--mask-scale", "scale each box about its centre: 1.5 = "
                               "1.5x wider and taller", "float", _M, lo=0.01, hi=10.0,
                               metavar="F")
    ellipse: bool = option(True, "--ellipse", "mask an ellipse in each box (1.15x the "
                           "inscribed one, cut by the box; --no-ellipse: the whole box)",
                           "bool", _M)
    color: tuple[int, int, int] = option((0, 0, 0), "--color", "colour of --mask rectangle "
                                         "(default 0,0,0)", "color", _M, metavar="R,G,B")
    draw_scores: bool = option(False, "--draw-scores", "draw detector scores", "bool", _M)
    quality: str = option(DEFAULT_QUALITY, "--quality", "detection preset: balanced "
                          "(default) adds a rotating 2x-upscaled pass that finds small, far "
                          "faces (crowds); max runs all of it on every frame (slowest); fast "
                          "is a single 640 px pass (large faces only)", "choice", _D,
                          choices=tuple(QUALITY))
    threshold: float | None = option(None, "--threshold", "detector score threshold "
                                     "(default: the quality preset's: 0.3; fast 0.4)",
                                     "float", _D, lo=0.01, hi=0.99, nullable=True,
                                     metavar="F")
    reuse: bool | None = option(None, "--reuse", "where the picture has not changed since "
                                "the detector last ran (a still camera), keep its faces "
                                "instead of running it again; each part runs afresh about "
                                "every 0.5 s (default: on where the quality preset has it: "
                                "balanced; refused with the others; --no-reuse: always run "
                                "it)", "bool", _D, nullable=True)
    precision: str = option(DEFAULT_PRECISION, "--precision", "face model arithmetic: int8 "
                            "(default; quantized at fetch time, about 1.7x faster, same "
                            "coverage on the hard clips) or fp32", "choice", _D,
                            choices=PRECISIONS)
    detect_size: int | None = option(None, "--detect-size", "longer side of the whole-frame "
                                     "pass's input, a multiple of 32 (default: the quality "
                                     "preset's: 384; fast and max 640; with balanced and max "
                                     "at least a fifth of the frame's longer side: 768 at "
                                     "4K)", "int", _D,
                                     lo=64, hi=3840, multiple_of=32, nullable=True,
                                     metavar="N")
    tiles: str = option("auto", "--tiles", "the small-face pass (2x2 overlapping tiles): auto "
                        "(default: frames >= 1600 px and >= 2.5x --detect-size), on, off",
                        "choice", _D, choices=("auto", "on", "off"))
    detect_every: int = option(1, "--detect-every", "run the detector on every N-th frame; "
                               "tracking fills the others (default 1; not with --no-track)",
                               "int", _D, lo=1, hi=10, metavar="N")
    track: bool = option(True, "--track", "follow faces across frames: gap filling, hold, "
                         "look-ahead (--no-track: raw detections only)", "bool", _D)
    hold: float = option(0.5, "--hold", "seconds a mask stays after a face was last detected "
                         "(default 0.5)", "float", _D, lo=0.0, hi=10.0, metavar="S")
    lookahead: float = option(0.3, "--lookahead", "seconds a mask starts before a face is "
                              "first detected (default 0.3)", "float", _D, lo=0.0, hi=10.0,
                              metavar="S")
    boxes: str | None = option(None, "--boxes", "mask exactly the boxes of this coordinate "
                               "file (a run's <stem>.csv/.tsv/.txt, edited) instead of "
                               "detecting: rows deleted are unmasked, a track given at "
                               "keyframes (rows with an empty source) is interpolated between "
                               "them", "text", _M, nullable=True, metavar="FILE")
    keep_track: tuple[int, ...] = option((), "--keep-track", "leave these tracks unmasked "
                                         "(ids of the --boxes file, as on the review page): "
                                         "a consenting person", "ids", _M, metavar="ID[,ID]")
    ignore_region: tuple[str, ...] = option((), "--ignore-region", "do not mask faces whose "
                                            "box centre lies inside these rectangles "
                                            "(pixels; several separated by ;): a poster, a "
                                            "TV screen", "rects", _M, metavar="X1,Y1,X2,Y2")
    always_mask: tuple[str, ...] = option((), "--always-mask", "always mask these "
                                          "rectangles, from T1 to T2 seconds if given "
                                          "(pixels; several separated by ;): a window, a "
                                          "name badge", "timed_rects", _M,
                                          metavar="X1,Y1,X2,Y2[@T1-T2]")
    save_data: bool = option(True, "--data", "write the face coordinates (--no-data: none)",
                             "bool", _O)
    data_format: tuple[str, ...] = option(("csv",), "--data-format", "csv, tsv, txt or "
                                          "several, comma-separated (default csv)",
                                          "formats", _O, metavar="FMT[,FMT]")
    draw_heatmap: bool = option(False, "--heatmap", "write <stem>_heatmap.png (default: off; "
                                "on in the drop-folder layout)", "bool", _O, layout=True)
    review: bool = option(False, "--review", "write <stem>_review.html: the timeline of every "
                          "track, the moments to check and frames of the output (default: "
                          "off; on in the drop-folder layout)", "bool", _O, layout=True)
    neighbours: int = option(32, "--neighbours", "heatmap: nearest neighbours per cell "
                             "(default 32)", "int", _O, lo=1, hi=1000, metavar="N")
    resolution: int = option(250, "--resolution", "heatmap: cells along the longer side "
                             "(default 250)", "int", _O, lo=2, hi=2000, metavar="N")
    keep_audio: bool = option(True, "--audio", "copy the audio track (--no-audio: drop it)",
                              "bool", _O)
    crf: int = option(23, "--crf", "x264 quality, lower is better (default 23, x264's own)",
                      "int", _O, lo=0, hi=51, metavar="N")
    preset: str = option("veryfast", "--preset", "x264 preset (default veryfast)", "choice",
                         _O, choices=X264_PRESETS)

    def __post_init__(self):
        _check_fields(self)
        if self.mask == "image" and not self.mask_image:
            raise OptionError("mask='image' needs mask_image (a PNG/JPEG path; "
                              "CLI: --mask-image PATH).")
        if self.detect_every > 1 and not self.track:
            raise OptionError(f"detect_every {self.detect_every} does nothing without tracking "
                              "(the tracker fills the frames between detections): drop "
                              "--no-track (BLURFACES_TRACK) or --detect-every.")
        if self.reuse and not QUALITY[self.quality]["reuse_s"]:
            raise OptionError(f"reuse does nothing with quality {self.quality}: only "
                              f"{', '.join(q for q, p in QUALITY.items() if p['reuse_s'])} "
                              "reuses detections. Drop reuse (--reuse, BLURFACES_REUSE) or "
                              "choose that quality.")

    # -- values the quality preset derives (never stored: see the module's docstring) -----
    @property
    def score_threshold(self) -> float:
        """The detector's score threshold: `threshold` when given, else the preset's."""
        return self.threshold if self.threshold is not None \
            else QUALITY[self.quality]["threshold"]

    @property
    def whole_size(self) -> int:
        """The whole-frame pass's input size: `detect_size` when given (640 too), else the
        preset's."""
        return self.detect_size if self.detect_size is not None \
            else QUALITY[self.quality].get("detect_size", DEFAULT_DETECT_SIZE)

    def whole_size_for(self, width: int, height: int) -> int:
        """The whole-frame pass's input size for frames of width x height: `whole_size`,
        grown where a preset with the fine pass would shrink the frame more than
        WHOLE_MOST_SHRINK times (to a multiple of 32); `detect_size` when given."""
        if self.detect_size is not None or not self.fine_cycle:
            return self.whole_size
        return max(self.whole_size, math.ceil(max(width, height) / WHOLE_MOST_SHRINK / 32) * 32)

    @property
    def fine_cycle(self) -> int | None:
        """Frames per sweep of the fine pass's grid for the chosen quality (None: no fine
        pass)."""
        return QUALITY[self.quality]["fine_cycle"]

    @property
    def reuse_s(self) -> float | None:
        """Seconds per reuse period of unchanged regions (still.py; None: no reuse): the
        preset's period unless `reuse` is False."""
        return QUALITY[self.quality]["reuse_s"] if self.reuse is not False else None

    @property
    def detect_step(self) -> int:
        """Frames from one detection to the next (the tracker fills those between; without
        tracking `detect_every` is 1: anything else is refused above)."""
        return self.detect_every

    def tiles_for(self, width: int, height: int) -> bool:
        """Whether the small-face tile pass runs on frames of this size."""
        if self.tiles == "auto":
            return max(width, height) >= max(TILES_AUTO_MIN_SIDE,
                                             TILES_AUTO_RATIO * self.whole_size)
        return self.tiles == "on"

    # -- the manifest / summary / event boundary -------------------------------------------
    def to_dict(self) -> dict:
        """A JSON object of every field (lists for the tuples)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Options":
        """From a JSON object (manifest, sidecar, event): unknown names are an error."""
        return cls(**_known(d, OPTION_SPECS, "options"))


@dataclass(frozen=True)
class Execution:
    """How a job is computed (never what it computes): parallel workers and the chunking."""

    workers: int | None = option(None, "--workers", "parallel chunk workers (default: all "
                                 "CPUs)", "int", _E, lo=1, hi=256, nullable=True, metavar="N")
    chunk_seconds: float | None = option(None, "--chunk-seconds", "chunk length in seconds "
                                         "(default: one chunk per worker, >= 10 s)", "float",
                                         _E, lo=0.1, hi=3600.0, nullable=True, metavar="S")
    chunks: int | None = option(None, "--chunks", "cut the video into N chunks (instead of "
                                "--chunk-seconds)", "int", _E, lo=1, hi=100_000,
                                nullable=True, metavar="N")

    def __post_init__(self):
        _check_fields(self)
        if self.chunks is not None and self.chunk_seconds is not None:
            raise OptionError("give either chunks or chunk_seconds, not both.")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _specs(cls) -> tuple[Spec, ...]:
    return tuple(replace(f.metadata["spec"], name=f.name) for f in fields(cls))


OPTION_SPECS = _specs(Options)
EXECUTION_SPECS = _specs(Execution)
SPECS: tuple[Spec, ...] = OPTION_SPECS + EXECUTION_SPECS
BY_NAME = {s.name: s for s in SPECS}
#: option defaults of the drop-folder layout
LAYOUT_DEFAULTS = {s.name: s.layout for s in SPECS if s.layout is not None}


def _known(d, specs, what: str) -> dict:
    if not isinstance(d, Mapping):
        raise OptionError(f"{what} must be a JSON object of option names and values.")
    names = {s.name for s in specs}
    unknown = set(d) - names
    if unknown:
        raise OptionError(f"unknown option(s): {', '.join(sorted(unknown))}; known: "
                          f"{', '.join(s.name for s in specs)}.")
    return dict(d)


def validate_execution(workers=None, chunk_seconds=None, chunks=None) -> Execution:
    """The execution settings as a record (OptionError when out of bounds)."""
    return Execution(workers=workers, chunk_seconds=chunk_seconds, chunks=chunks)


# ------------------------------------------------------------------------------ layering

def from_env(environ: Mapping | None = None) -> dict:
    """Options set in the environment: `BLURFACES_OPTIONS` (a JSON object), then one
    `BLURFACES_<NAME>` variable per option (which wins). Returns a dict of those only."""
    environ = os.environ if environ is None else environ
    out: dict = {}
    raw = environ.get(ENV_PREFIX + "OPTIONS", "").strip()
    if raw:
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise OptionError(f"{ENV_PREFIX}OPTIONS is not a JSON object ({e}).") from None
        if not isinstance(data, dict):
            raise OptionError(f"{ENV_PREFIX}OPTIONS must be a JSON object.")
        out.update(data)
    for s in SPECS:
        text = environ.get(s.env)
        if text is not None and text.strip() != "":
            try:
                out[s.name] = s.parse_text(text)
            except OptionError as e:
                raise OptionError(f"environment variable {s.env}: {e}") from None
    return out


def layered(*layers: Mapping | None, base: tuple[Options, Execution] | None = None
            ) -> tuple[Options, Execution]:
    """Options and execution settings from the defaults (or `base`, records resolved
    earlier) < each layer in turn (partial mappings of names to values; later wins),
    validated once."""
    merged: dict = {}
    if base is not None:
        merged.update(base[0].to_dict())
        merged.update(base[1].to_dict())
    for layer in layers:
        layer = _known(layer or {}, SPECS, "options")
        # chunks and chunk_seconds say one thing two ways: the later layer's choice wins.
        for a, b in (("chunks", "chunk_seconds"), ("chunk_seconds", "chunks")):
            if layer.get(a) is not None and layer.get(b) is None:
                merged.pop(b, None)
        merged.update(layer)
    execution = Execution(**{s.name: merged.pop(s.name, None) for s in EXECUTION_SPECS})
    return Options(**merged), execution


def resolve(given: Mapping | None = None, *, layout: bool = False,
            environ: Mapping | None = None, sidecar: Mapping | None = None
            ) -> tuple[Options, Execution]:
    """THE layering of every entry point: defaults < the drop-folder layout's (`layout`) <
    the environment (`environ`, default os.environ; {} for none) < `given` (the command
    line, the API call, the event) < the video's `sidecar`."""
    return layered(LAYOUT_DEFAULTS if layout else None, from_env(environ), given, sidecar)


def with_sidecar(options: Options, execution: Execution, sidecar: Mapping | None
                 ) -> tuple[Options, Execution]:
    """A video's sidecar over options `resolve`d earlier (equal to resolving with it)."""
    if not sidecar:
        return options, execution
    return layered(sidecar, base=(options, execution))
