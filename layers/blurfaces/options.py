"""Processing options: one validated, JSON-serialisable record shared by every stage.

The names and meanings of the seed's parameters (`mask`, `mask_image`, `mask_scale`,
`ellipse`, `draw_heatmap`, `neighbours`, `resolution`, `draw_scores`, `save_data`,
`data_format`, `color`) are kept; the rest are blurfaces' own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .data import parse_formats
from .detect import DEFAULT_DETECT_SIZE, DEFAULT_THRESHOLD, FinePass
from .errors import OptionError
from .mask import MASKS, parse_color
from .track import TrackOptions


# Measured on a 1080p crowd clip (faces 40-80 px): at detect_size 640 one small face leaked
# for 23 frames (99.05% covered); the tile pass covered 99.95% for ~1.9x the time. 720p
# clips gain nothing from it, so "auto" turns it on from 1600 px (at 640) upwards; a smaller
# detect_size (chosen for speed) does not switch it on for smaller frames.
TILES_AUTO_RATIO = 2.5
TILES_AUTO_MIN_SIDE = 1600

# Detection presets (`quality`): the score threshold and the rotating fine pass for small and
# far faces (detect.FinePass). "fast" is the single 640 px pass of earlier releases.
# Measured coverage and cost of each: README "Measured results".
QUALITY = {
    "fast": dict(threshold=DEFAULT_THRESHOLD, fine=None),
    "balanced": dict(threshold=0.3, fine=FinePass(cycle=4)),
    "max": dict(threshold=0.3, fine=FinePass(cycle=1)),
}
DEFAULT_QUALITY = "balanced"


@dataclass
class Options:
    mask: str = "blur"
    mask_image: str | None = None
    mask_scale: float = 1.0
    ellipse: bool = True
    color: tuple = (0, 0, 0)
    draw_scores: bool = False
    quality: str = DEFAULT_QUALITY   # preset, see QUALITY
    threshold: float | None = None  # None: the preset's
    detect_size: int = DEFAULT_DETECT_SIZE
    tiles: str = "auto"         # "auto": see tiles_for()
    detect_every: int = 1
    track: bool = True
    hold: float = 0.5
    lookahead: float = 0.3
    save_data: bool = True
    data_format: list = field(default_factory=lambda: ["csv"])
    draw_heatmap: bool = False
    neighbours: int = 32
    resolution: int = 250
    keep_audio: bool = True
    crf: int = 20
    preset: str = "veryfast"

    def __post_init__(self):
        if self.mask not in MASKS:
            raise OptionError(f"unknown mask {self.mask!r}: use one of {', '.join(MASKS)}.")
        if self.mask == "image" and not self.mask_image:
            raise OptionError("mask='image' needs mask_image (a PNG/JPEG path; "
                              "CLI: --mask-image PATH).")
        if self.mask_image is not None:
            self.mask_image = str(self.mask_image)
        if not _num(self.mask_scale) or self.mask_scale <= 0:
            raise OptionError(f"mask_scale must be a number above 0 (got {self.mask_scale!r}); "
                              "1.0 is the detected box, 1.5 is 1.5x wider and taller.")
        self.mask_scale = float(self.mask_scale)
        self.color = parse_color(self.color)
        if self.quality not in QUALITY:
            raise OptionError(f"unknown quality {self.quality!r}: use one of "
                              f"{', '.join(QUALITY)}.")
        if self.threshold is None:
            self.threshold = QUALITY[self.quality]["threshold"]
        if not _num(self.threshold) or not 0 < self.threshold < 1:
            raise OptionError(f"threshold must be between 0 and 1 (got {self.threshold!r}).")
        if not isinstance(self.detect_size, int) or self.detect_size < 64 \
                or self.detect_size % 32:
            raise OptionError(f"detect_size must be a multiple of 32, at least 64 "
                              f"(got {self.detect_size!r}).")
        self.tiles = {True: "on", False: "off"}.get(self.tiles, self.tiles)
        if self.tiles not in ("auto", "on", "off"):
            raise OptionError(f"tiles must be auto, on or off (got {self.tiles!r}).")
        if not isinstance(self.detect_every, int) or isinstance(self.detect_every, bool) \
                or not 1 <= self.detect_every <= 10:
            raise OptionError(f"detect_every must be an integer from 1 to 10 "
                              f"(got {self.detect_every!r}).")
        for name in ("hold", "lookahead"):
            v = getattr(self, name)
            if not _num(v) or v < 0 or v > 10:
                raise OptionError(f"{name} must be between 0 and 10 seconds (got {v!r}).")
        self.data_format = parse_formats(self.data_format)
        for name, lo in (("neighbours", 1), ("resolution", 2)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise OptionError(f"{name} must be an integer >= {lo} (got {v!r}).")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise OptionError(f"crf must be an integer from 0 to 51 (got {self.crf!r}).")

    def tiles_for(self, width: int, height: int) -> bool:
        """Whether the small-face tile pass runs on frames of this size."""
        if self.tiles == "auto":
            return max(width, height) >= max(TILES_AUTO_MIN_SIDE,
                                              TILES_AUTO_RATIO * self.detect_size)
        return self.tiles == "on"

    @property
    def fine_pass(self) -> FinePass | None:
        """The rotating multi-scale pass of the chosen quality (None: off)."""
        return QUALITY[self.quality]["fine"]

    @property
    def tracking(self) -> TrackOptions:
        return TrackOptions(enabled=self.track, hold=self.hold, lookahead=self.lookahead)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["color"] = list(self.color)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Options":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise OptionError(f"unknown option(s): {', '.join(sorted(unknown))}.")
        return cls(**d)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
