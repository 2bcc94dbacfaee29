"""Processing options: one validated, JSON-serialisable record shared by every stage.

The names and meanings of the seed's parameters (`mask`, `mask_image`, `mask_scale`,
`ellipse`, `draw_heatmap`, `neighbours`, `resolution`, `draw_scores`, `save_data`,
`data_format`, `color`) are kept; the rest are blurfaces' own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .data import parse_formats
from .detect import DEFAULT_DETECT_SIZE, DEFAULT_THRESHOLD
from .errors import OptionError
from .mask import MASKS, parse_color
from .track import TrackOptions


# Measured on a 1080p crowd clip (faces 40-80 px): at detect_size 640 one small face leaked
# for 23 frames (99.05% covered); the tile pass covered 99.95% for ~1.9x the time. 720p
# clips gain nothing from it, so "auto" turns it on from 1600 px (at 640) upwards; a smaller
# detect_size (chosen for speed) does not switch it on for smaller frames.
TILES_AUTO_RATIO = 2.5
TILES_AUTO_MIN_SIDE = 1600

# Bounds. detect_size: the network's activations at 3840 px already take ~2.5 GB per frame
# (memory grows with the square of the size). resolution: the heatmap's kNN grid is
# resolution^2 cells x neighbours. Chunk and worker bounds keep a run within what a
# process table and a manifest can hold.
MAX_DETECT_SIZE = 3840
MAX_RESOLUTION = 2000
MAX_NEIGHBOURS = 1000
MAX_MASK_SCALE = 10.0
MAX_WORKERS = 256
MAX_CHUNKS = 100_000
MIN_CHUNK_SECONDS = 0.1
MAX_CHUNK_SECONDS = 3600.0
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


@dataclass
class Options:
    mask: str = "blur"
    mask_image: str | None = None
    mask_scale: float = 1.0
    ellipse: bool = True
    color: tuple = (0, 0, 0)
    draw_scores: bool = False
    threshold: float = DEFAULT_THRESHOLD
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
        if not _num(self.mask_scale) or not 0 < self.mask_scale <= MAX_MASK_SCALE:
            raise OptionError(f"mask_scale must be a number above 0 and at most "
                              f"{MAX_MASK_SCALE:g} (got {self.mask_scale!r}); "
                              "1.0 is the detected box, 1.5 is 1.5x wider and taller.")
        self.mask_scale = float(self.mask_scale)
        self.color = parse_color(self.color)
        if not _num(self.threshold) or not 0 < self.threshold < 1:
            raise OptionError(f"threshold must be between 0 and 1 (got {self.threshold!r}).")
        if not _int(self.detect_size) or not 64 <= self.detect_size <= MAX_DETECT_SIZE \
                or self.detect_size % 32:
            raise OptionError(f"detect_size must be a multiple of 32 from 64 to "
                              f"{MAX_DETECT_SIZE} (got {self.detect_size!r}).")
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
        for name, lo, hi in (("neighbours", 1, MAX_NEIGHBOURS),
                             ("resolution", 2, MAX_RESOLUTION)):
            v = getattr(self, name)
            if not _int(v) or not lo <= v <= hi:
                raise OptionError(f"{name} must be an integer from {lo} to {hi} (got {v!r}).")
        if not _int(self.crf) or not 0 <= self.crf <= 51:
            raise OptionError(f"crf must be an integer from 0 to 51 (got {self.crf!r}).")
        if self.preset not in X264_PRESETS:
            raise OptionError(f"preset must be one of {', '.join(X264_PRESETS)} "
                              f"(got {self.preset!r}).")

    def tiles_for(self, width: int, height: int) -> bool:
        """Whether the small-face tile pass runs on frames of this size."""
        if self.tiles == "auto":
            return max(width, height) >= max(TILES_AUTO_MIN_SIDE,
                                              TILES_AUTO_RATIO * self.detect_size)
        return self.tiles == "on"

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


def validate_execution(workers=None, chunk_seconds=None, chunks=None) -> None:
    """Bounds of the execution settings (not part of `Options`: they do not change the
    result, only how it is computed)."""
    if workers is not None and (not _int(workers) or not 1 <= workers <= MAX_WORKERS):
        raise OptionError(f"workers must be an integer from 1 to {MAX_WORKERS} "
                          f"(got {workers!r}).")
    if chunks is not None and chunk_seconds is not None:
        raise OptionError("give either chunks or chunk_seconds, not both.")
    if chunks is not None and (not _int(chunks) or not 1 <= chunks <= MAX_CHUNKS):
        raise OptionError(f"chunks must be an integer from 1 to {MAX_CHUNKS} (got {chunks!r}).")
    if chunk_seconds is not None and (
            not _num(chunk_seconds)
            or not MIN_CHUNK_SECONDS <= chunk_seconds <= MAX_CHUNK_SECONDS):
        raise OptionError(f"chunk_seconds must be a number from {MIN_CHUNK_SECONDS:g} to "
                          f"{MAX_CHUNK_SECONDS:g} (got {chunk_seconds!r}).")


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
