"""Processing options: one definition per option, and the validated record built from them.

Each option is one `Spec`: its name, default, bounds or choices, CLI flag, environment
variable (`BLURFACES_<NAME>`) and help text. Everything else derives from that table: the
`Options` record and its validation, the CLI's flags (`cli.py`), the environment layer of the
Lambdas and services (`from_env`), sidecar files and events (`Options.from_dict`). Adding an
option means adding its `Spec` and the code that uses it.

The names and meanings of the seed's parameters (`mask`, `mask_image`, `mask_scale`,
`ellipse`, `draw_heatmap`, `neighbours`, `resolution`, `draw_scores`, `save_data`,
`data_format`, `color`) are kept; the rest are blurfaces' own. Execution settings (`workers`,
`chunk_seconds`, `chunks`) are specs too, kept out of `Options`: they change how a result is
computed, never the result.

This module is a leaf: it imports nothing of blurfaces but `errors` and the parsers of the
leaf `regions`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, make_dataclass

from .errors import OptionError
from .regions import parse_ids, parse_rects

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
# of each: README "Measured results".
# `reuse_s`: a region whose picture has not changed reuses its last detections within
# periods of this many seconds (detect.py, still.py; None = always run afresh).
QUALITY = {
    "fast": {"threshold": DEFAULT_THRESHOLD, "fine_cycle": None, "reuse_s": None},
    "balanced": {"threshold": 0.3, "fine_cycle": 4, "reuse_s": 0.5},
    "max": {"threshold": 0.3, "fine_cycle": 1, "reuse_s": None},
}
DEFAULT_QUALITY = "balanced"
DEFAULT_PRECISION = "int8"
PRECISIONS = ("int8", "fp32")     # the face model's arithmetic (model.py builds int8)

# Measured on a 1080p crowd clip (faces 40-80 px): at detect_size 640 one small face leaked
# for 23 frames (99.05% covered); the tile pass covered 99.95% for ~1.9x the time. 720p
# clips gain nothing from it, so "auto" turns it on from 1600 px (at 640) upwards; a smaller
# detect_size (chosen for speed) does not switch it on for smaller frames.
TILES_AUTO_RATIO = 2.5
TILES_AUTO_MIN_SIDE = 1600


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
                            # rects | timed_rects (regions.py)
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
    execution: bool = False

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
            return parse_formats(v)
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

SPECS: tuple[Spec, ...] = (
    Spec("mask", "choice", "blur", "blur (default), rectangle, mosaic, image, or none (data "
         "only)", "--mask", _M, choices=MASKS),
    Spec("mask_image", "text", None, "image pasted over faces (--mask image)", "--mask-image",
         _M, nullable=True, metavar="PATH"),
    Spec("mask_scale", "float", 1.0, "scale each box about its centre: 1.5 = 1.5x wider and "
         "taller", "--mask-scale", _M, lo=0.01, hi=10.0, metavar="F"),
    Spec("ellipse", "bool", True, "mask the ellipse inscribed in each box (--no-ellipse: the "
         "whole box)", "--ellipse", _M),
    Spec("color", "color", (0, 0, 0), "colour of --mask rectangle (default 0,0,0)", "--color",
         _M, metavar="R,G,B"),
    Spec("draw_scores", "bool", False, "draw detector scores", "--draw-scores", _M),
    Spec("boxes", "text", None, "mask exactly the boxes of this coordinate file (a run's "
         "<stem>.csv/.tsv/.txt, edited) instead of detecting: rows deleted are unmasked, a "
         "track given at keyframes (rows with an empty source) is interpolated between them",
         "--boxes", _M, nullable=True, metavar="FILE"),
    Spec("keep_track", "ids", (), "leave these tracks unmasked (ids of the --boxes file, as "
         "on the review page): a consenting person", "--keep-track", _M, metavar="ID[,ID]"),
    Spec("ignore_region", "rects", (), "do not mask faces whose box centre lies inside these "
         "rectangles (pixels; several separated by ;): a poster, a TV screen",
         "--ignore-region", _M, metavar="X1,Y1,X2,Y2"),
    Spec("always_mask", "timed_rects", (), "always mask these rectangles, from T1 to T2 "
         "seconds if given (pixels; several separated by ;): a window, a name badge",
         "--always-mask", _M, metavar="X1,Y1,X2,Y2[@T1-T2]"),
    Spec("quality", "choice", DEFAULT_QUALITY, "detection preset: balanced (default) adds a "
         "rotating 2x-upscaled pass that finds small, far faces (crowds); max runs all of it "
         "on every frame (slowest); fast is a single 640 px pass (large faces only)",
         "--quality", _D, choices=tuple(QUALITY)),
    Spec("threshold", "float", None, "detector score threshold (default: the quality "
         "preset's: 0.3; fast 0.4)", "--threshold", _D, lo=0.01, hi=0.99, nullable=True,
         metavar="F"),
    Spec("reuse", "bool", True, "where the picture has not changed since the detector last "
         "ran (a still camera), keep its faces instead of running it again; each part runs "
         "afresh about every 0.5 s (balanced only; --no-reuse: always run it)", "--reuse", _D),
    Spec("precision", "choice", DEFAULT_PRECISION, "face model arithmetic: int8 (default; quantized at "
         "fetch time, about 1.7x faster, same coverage on the hard clips) or fp32",
         "--precision", _D, choices=PRECISIONS),
    Spec("detect_size", "int", DEFAULT_DETECT_SIZE, "longer side of the detector's input, a "
         "multiple of 32 (default 640)", "--detect-size", _D, lo=64, hi=3840, multiple_of=32,
         metavar="N"),
    Spec("tiles", "choice", "auto", "the small-face pass (2x2 overlapping tiles): auto "
         "(default: frames >= 1600 px and >= 2.5x --detect-size), on, off", "--tiles", _D,
         choices=("auto", "on", "off")),
    Spec("detect_every", "int", 1, "run the detector on every N-th frame; tracking fills the "
         "others (default 1)", "--detect-every", _D, lo=1, hi=10, metavar="N"),
    Spec("track", "bool", True, "follow faces across frames: gap filling, hold, look-ahead "
         "(--no-track: raw detections only)", "--track", _D),
    Spec("hold", "float", 0.5, "seconds a mask stays after a face was last detected "
         "(default 0.5)", "--hold", _D, lo=0.0, hi=10.0, metavar="S"),
    Spec("lookahead", "float", 0.3, "seconds a mask starts before a face is first detected "
         "(default 0.3)", "--lookahead", _D, lo=0.0, hi=10.0, metavar="S"),
    Spec("save_data", "bool", True, "write the face coordinates (--no-data: none)", "--data",
         _O),
    Spec("data_format", "formats", ("csv",), "csv, tsv, txt or several, comma-separated "
         "(default csv)", "--data-format", _O, metavar="FMT[,FMT]"),
    Spec("draw_heatmap", "bool", False, "write <stem>_heatmap.png (default: off; on in the "
         "drop-folder layout)", "--heatmap", _O),
    Spec("review", "bool", False, "write <stem>_review.html: the timeline of every track, the "
         "moments to check and frames of the output (default: off; on in the drop-folder "
         "layout)", "--review", _O),
    Spec("neighbours", "int", 32, "heatmap: nearest neighbours per cell (default 32)",
         "--neighbours", _O, lo=1, hi=1000, metavar="N"),
    Spec("resolution", "int", 250, "heatmap: cells along the longer side (default 250)",
         "--resolution", _O, lo=2, hi=2000, metavar="N"),
    Spec("keep_audio", "bool", True, "copy the audio track (--no-audio: drop it)", "--audio",
         _O),
    Spec("crf", "int", 23, "x264 quality, lower is better (default 23, x264's own)", "--crf", _O, lo=0,
         hi=51, metavar="N"),
    Spec("preset", "choice", "veryfast", "x264 preset (default veryfast)", "--preset", _O,
         choices=X264_PRESETS),
    Spec("workers", "int", None, "parallel chunk workers (default: all CPUs)", "--workers", _E,
         lo=1, hi=256, nullable=True, metavar="N", execution=True),
    Spec("chunk_seconds", "float", None, "chunk length in seconds (default: one chunk per "
         "worker, >= 10 s)", "--chunk-seconds", _E, lo=0.1, hi=3600.0, nullable=True,
         metavar="S", execution=True),
    Spec("chunks", "int", None, "cut the video into N chunks (instead of --chunk-seconds)",
         "--chunks", _E, lo=1, hi=100_000, nullable=True, metavar="N", execution=True),
)
BY_NAME = {s.name: s for s in SPECS}
OPTION_SPECS = tuple(s for s in SPECS if not s.execution)
EXECUTION_SPECS = tuple(s for s in SPECS if s.execution)


# ------------------------------------------------------------------------------ the record

def _post_init(self):
    for s in OPTION_SPECS:
        setattr(self, s.name, s.check(getattr(self, s.name)))
    if self.threshold is None:
        self.threshold = QUALITY[self.quality]["threshold"]
    if self.mask == "image" and not self.mask_image:
        raise OptionError("mask='image' needs mask_image (a PNG/JPEG path; "
                          "CLI: --mask-image PATH).")


def _tiles_for(self, width: int, height: int) -> bool:
    """Whether the small-face tile pass runs on frames of this size."""
    if self.tiles == "auto":
        return max(width, height) >= max(TILES_AUTO_MIN_SIDE, TILES_AUTO_RATIO * self.detect_size)
    return self.tiles == "on"


def _to_dict(self) -> dict:
    d = {f.name: getattr(self, f.name) for f in fields(self)}
    d["color"] = list(self.color)
    d["data_format"] = list(self.data_format)
    return d


@classmethod
def _from_dict(cls, d: dict) -> "Options":
    """From a JSON object (sidecar, event, manifest): unknown names are an error."""
    if not isinstance(d, dict):
        raise OptionError("options must be a JSON object of option names and values.")
    unknown = set(d) - {s.name for s in OPTION_SPECS}
    if unknown:
        raise OptionError(f"unknown option(s): {', '.join(sorted(unknown))}; known: "
                          f"{', '.join(s.name for s in OPTION_SPECS)}.")
    return cls(**d)


def _default_factory(s: Spec):
    if isinstance(s.default, (tuple, list)):
        return field(default_factory=lambda v=s.default, k=s.kind: list(v) if k == "formats"
                     else tuple(v))
    return field(default=s.default)


def _fine_cycle(self) -> int | None:
    """Frames per sweep of the fine pass's grid for the chosen quality (None: no fine pass)."""
    return QUALITY[self.quality]["fine_cycle"]


def _detect_step(self) -> int:
    """Frames from one detection to the next: `detect_every` when tracking fills the frames
    between, else every frame."""
    return self.detect_every if self.track else 1


def _reuse_s(self) -> float | None:
    """Seconds per reuse period of unchanged regions (still.py; None: off)."""
    return QUALITY[self.quality]["reuse_s"] if self.reuse else None


Options = make_dataclass(
    "Options", [(s.name, object, _default_factory(s)) for s in OPTION_SPECS],
    namespace={"__post_init__": _post_init, "tiles_for": _tiles_for, "to_dict": _to_dict,
               "fine_cycle": property(_fine_cycle), "reuse_s": property(_reuse_s),
               "detect_step": property(_detect_step),
               "from_dict": _from_dict,
               "__doc__": "The validated processing options of one job (see SPECS)."})
Options.__module__ = __name__


def validate_execution(workers=None, chunk_seconds=None, chunks=None) -> None:
    """Bounds of the execution settings (not part of `Options`)."""
    for name, v in (("workers", workers), ("chunk_seconds", chunk_seconds), ("chunks", chunks)):
        BY_NAME[name].check(v)
    if chunks is not None and chunk_seconds is not None:
        raise OptionError("give either chunks or chunk_seconds, not both.")


# ------------------------------------------------------------------------------ layering

def from_env(environ=None) -> dict:
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


def layered(*layers: dict) -> tuple["Options", dict]:
    """Options from defaults < each layer in turn (later wins), split into the processing
    options (validated) and the execution settings (validated)."""
    merged: dict = {}
    for layer in layers:
        layer = layer or {}
        # chunks and chunk_seconds say one thing two ways: the later layer's choice wins.
        for a, b in (("chunks", "chunk_seconds"), ("chunk_seconds", "chunks")):
            if layer.get(a) is not None and layer.get(b) is None:
                merged.pop(b, None)
        merged.update(layer)
    execution = {s.name: merged.pop(s.name, None) for s in EXECUTION_SPECS}
    validate_execution(**execution)
    return Options.from_dict(merged), execution
