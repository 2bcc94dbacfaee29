"""Face masks: how one detected face is hidden in a frame.

Owns the box geometry (`scaling_mask`, `scale_boxes`), option parsing for the mask colour and
image (`parse_color`, `load_mask_image`) and `Masker`, which paints every detection of a frame
in place (the largest box first: a smaller, overlapping face's mask lies on top, its edge
faded in where the earlier mask lies under it) with one of
`MASKS`: a strong blur, a solid rectangle, a mosaic, an image, or nothing,
optionally limited to an ellipse in the box (the inscribed one grown `ELLIPSE_REACH` times,
cut by the box) and with the detector score drawn next to it.

Frames are RGB uint8 (the decoder's order), so colours and mask images are RGB(A) too.

Boxes reaching `Masker.apply` are already clipped to the frame. An image mask is resized to the
clipped box, so a face cut by the frame edge gets the whole image squeezed into the visible part
rather than the visible part of the image.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError, OptionError
from .options import MASKS, parse_color  # noqa: F401 - re-exported (seed API)


# Blur: the face is shrunk to about this many pixels across, blurred there and scaled back up,
# so the strength follows the face size and the cost does not. Sigma is 0.4 of that size: at
# 0.2 a 10 px face in the middle of its (grown, 20 px) box kept enough detail to count as
# visible (score.py: 99.02% -> 99.54% covered on the 720p crowd; half of the leaks were such).
_BLUR_SIZE = 16
_BLUR_SIGMA = _BLUR_SIZE / 2.5
# Mosaic: blocks across the longer side of the face.
_MOSAIC_BLOCKS = 9
_CACHE_LIMIT = 256
# Ellipses by box size, least recently used dropped first: a crowd shows many sizes (830 in
# 6 s of the 720p crowd, 6 kB each), and making one costs as much as masking a box.
_ELLIPSE_LIMIT = 2048


def _fixed_gaussian(n: int, sigma: float) -> np.ndarray:
    """The integer kernel (sums to 256) cv2.GaussianBlur uses on uint8 images: OpenCV's
    exact Gaussian rounded to 8 fractional bits with the error carried to the next tap."""
    k = cv2.getGaussianKernel(n, sigma, cv2.CV_64F).ravel()
    out = np.zeros(n, np.int64)
    err = 0.0
    for i in range(n // 2):
        adj = float(k[i]) * 256.0 + err
        out[i] = out[n - 1 - i] = round(adj)
        err = adj - out[i]
    out[n // 2] = 256 - 2 * out[:n // 2].sum()
    return out


def _gaussian_tables() -> tuple[np.ndarray, np.ndarray]:
    """Folded kernels for the blur's small images: [m, n] is the (n, n) matrix, padded to
    `_BLUR_SIZE`, that the Gaussian of a small image whose longer side is m applies along a side
    of length n, BORDER_REFLECT folded in. Returned as (for columns: transposed, for rows)."""
    z = _BLUR_SIZE
    rows = np.zeros((z + 1, z + 1, z, z), np.float32)
    for m in range(1, z + 1):
        sigma = m / _BLUR_SIZE * _BLUR_SIGMA
        ksize = int(round(sigma * 6 + 1)) | 1                 # cv2's size for uint8 images
        kernel = _fixed_gaussian(ksize, sigma)
        r = ksize // 2
        for n in range(1, m + 1):
            if n == 1:              # cv2 does not filter along a side of one pixel
                rows[m, n, 0, 0] = 256
                continue
            src = (np.arange(n)[:, None] + np.arange(ksize)[None, :] - r) % (2 * n)
            src = np.where(src >= n, 2 * n - 1 - src, src)    # reflect, repeatedly
            np.add.at(rows[m, n], (np.repeat(np.arange(n), ksize), src.ravel()),
                      np.tile(kernel, n).astype(np.float32))
    return np.ascontiguousarray(rows.transpose(0, 1, 3, 2)), rows


_GAUSS: tuple[np.ndarray, np.ndarray] | None = None


def _blur_small(smalls: list, sizes: list) -> np.ndarray:
    """cv2.GaussianBlur(small, (0, 0), sigma, sigma, BORDER_REFLECT) of many small images at
    once, bit for bit: on uint8, OpenCV filters with integer kernels summing to 256 and rounds
    once at the end, so two small matrix products and that rounding give its exact result.
    smalls: uint8 (h, w, 3) arrays with h, w <= `_BLUR_SIZE`; sizes: their (w, h). Returns
    uint8 (N, `_BLUR_SIZE`, `_BLUR_SIZE`, 3) with each result at the top left."""
    global _GAUSS
    if _GAUSS is None:
        _GAUSS = _gaussian_tables()
    cols, rows = _GAUSS
    z = _BLUR_SIZE
    x = np.zeros((len(smalls), z, z, 3), np.float32)
    for i, (small, (w, h)) in enumerate(zip(smalls, sizes)):
        x[i, :h, :w] = small
    wh = np.array(sizes, np.intp).reshape(-1, 2)
    m = wh.max(axis=1)
    # Every value below is an integer under 2**24, so float32 products and sums are exact.
    x = x.transpose(0, 3, 1, 2)                                   # (N, 3, y, x)
    x = np.matmul(x, cols[m, wh[:, 0]][:, None])                  # along x
    x = np.matmul(rows[m, wh[:, 1]][:, None], x)                  # along y
    x = np.floor((x + np.float32(32768)) * np.float32(1 / 65536))
    return np.ascontiguousarray(x.astype(np.uint8).transpose(0, 2, 3, 1))


def _waves(boxes: np.ndarray) -> list:
    """Group boxes (N, 4) into waves of boxes none of which overlaps another of its wave, each
    box in a later wave than every earlier box it overlaps: painting the waves in turn, each
    read first and painted after, gives what painting one box after the other does (later
    boxes over earlier ones' results). Returns the boxes' indices per wave."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    over = ((x1[:, None] < x2[None, :]) & (x1[None, :] < x2[:, None])
            & (y1[:, None] < y2[None, :]) & (y1[None, :] < y2[:, None]))
    over = np.triu(over, 1)                       # [i, j]: box j overlaps the earlier box i
    wave = np.zeros(len(boxes), np.int64)
    while True:     # as many rounds as the longest chain of overlapping boxes
        later = np.max(np.where(over, wave[:, None] + 1, 0), axis=0)
        if (later <= wave).all():
            break
        wave = np.maximum(wave, later)
    return [np.flatnonzero(wave == w) for w in range(int(wave.max()) + 1)]


def _check_scale(mask_scale) -> float:
    try:
        scale = float(mask_scale)
    except (TypeError, ValueError):
        scale = math.nan
    if not math.isfinite(scale) or scale <= 0:
        raise OptionError(f"mask_scale must be a finite number > 0 (1.0 keeps the detected box, "
                          f"1.5 makes it 1.5 times wider and taller); got {mask_scale!r}.")
    return scale


def scaling_mask(x1, y1, x2, y2, mask_scale=1.0) -> tuple[int, int, int, int]:
    """Scale one box about its centre so the mask covers the whole face.

    `mask_scale` multiplies both the width and the height (1.5 gives a box 1.5 times wider and
    1.5 times taller). The corners are rounded to the nearest integer (halves up) and not
    clipped to the frame; use `scale_boxes` for boxes that go to `Masker.apply`.
    """
    scale = _check_scale(mask_scale)
    grow = (scale - 1.0) / 2.0
    w, h = x2 - x1, y2 - y1
    # Halves round up (not to even), so both sides of a box move the same way.
    return (math.floor(x1 - w * grow + 0.5), math.floor(y1 - h * grow + 0.5),
            math.floor(x2 + w * grow + 0.5), math.floor(y2 + h * grow + 0.5))


def scale_boxes(boxes, mask_scale, width, height) -> np.ndarray:
    """Scale boxes about their centres by `mask_scale` and clip them to a width x height frame.

    `boxes` is (N, 4) x1, y1, x2, y2 in pixels (floats). Returns an int64 (N, 4) array with
    0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height, where x2 and y2 are exclusive. Corners
    are rounded outwards (floor for x1/y1, ceil for x2/y2), so with mask_scale >= 1 the result
    contains the original box. A box with non-finite coordinates becomes (0, 0, 0, 0), which
    `Masker.apply` skips, so the rows keep lining up with the scores.
    """
    scale = _check_scale(mask_scale)
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2; got {b.shape}")
    x_lo = np.minimum(b[:, 0], b[:, 2])
    x_hi = np.maximum(b[:, 0], b[:, 2])
    y_lo = np.minimum(b[:, 1], b[:, 3])
    y_hi = np.maximum(b[:, 1], b[:, 3])
    # Growing each side by (scale - 1) / 2 of the size keeps scale == 1 exact for integer boxes.
    grow = (scale - 1.0) / 2.0
    gx = (x_hi - x_lo) * grow
    gy = (y_hi - y_lo) * grow
    out = np.stack([np.floor(x_lo - gx), np.floor(y_lo - gy),
                    np.ceil(x_hi + gx), np.ceil(y_hi + gy)], axis=1)
    bad = ~np.isfinite(out).all(axis=1)
    out[bad] = 0.0
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out.astype(np.int64)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return np.clip(np.rint(np.nan_to_num(img) * 255.0), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {img.dtype}")


def _rgba_from_array(img: np.ndarray, *, bgr: bool) -> np.ndarray:
    """Any grey / grey+alpha / colour / colour+alpha image as contiguous RGBA uint8."""
    img = _to_uint8(np.asarray(img))
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        rgb = np.repeat(img[:, :, None], 3, axis=2)
        alpha = np.full(img.shape, 255, np.uint8)
    elif img.ndim == 3 and img.shape[2] == 2:
        rgb = np.repeat(img[:, :, :1], 3, axis=2)
        alpha = img[:, :, 1]
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        rgb = img[:, :, 2::-1] if bgr else img[:, :, :3]
        alpha = img[:, :, 3] if img.shape[2] == 4 else np.full(img.shape[:2], 255, np.uint8)
    else:
        raise ValueError(f"expected a grey, RGB or RGBA image; got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError("the image is empty")
    return np.ascontiguousarray(np.dstack([rgb, alpha]))


def load_mask_image(path) -> np.ndarray:
    """Load the image for mask="image" as RGBA uint8 (H, W, 4).

    PNG transparency is kept; grey and RGB images get an opaque alpha channel.
    """
    name = os.fspath(path)
    what = "check the mask_image option"
    if not os.path.isfile(name):
        raise InputError(f"mask image {name!r} does not exist or is not a file; {what}.")
    try:
        raw = np.fromfile(name, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"mask image {name!r} cannot be read ({e.strerror or e}); {what}.") from e
    # imdecode rather than imread: it reads non-ASCII paths too, and says None for non-images.
    img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if img is None:
        raise InputError(f"mask image {name!r} is not an image OpenCV can decode "
                         f"(use a PNG or JPEG); {what}.")
    try:
        return _rgba_from_array(img, bgr=True)
    except ValueError as e:
        raise InputError(f"mask image {name!r} cannot be used: {e}; {what}.") from e


@dataclass(frozen=True)
class _Ellipse:
    """Coverage of the mask's ellipse in a w x h box, split so the common case is a copy;
    the partly covered (anti-aliased) edge pixels are listed per byte (pixel and channel)."""
    inside: np.ndarray   # uint8 (h, w), 1 = fully covered pixel (a cv2.copyTo mask)
    edge_f: np.ndarray   # int32 (3K,): offset in the frame from the box's first byte
    edge_c: np.ndarray   # int32 (3K,): index in the box's own packed (h, w, 3) pixels
    edge_a: np.ndarray   # float32 (3K,): coverage, in (0, 1)


# The mask's ellipse is the inscribed one grown by this much, cut by the box: it passes
# beyond the corners of the box's central 80% (0.8 x sqrt 2 = 1.13), where a face's brow,
# chin and hair reach (placed truth's 48 px faces: 91-95% -> 100% covered on two seeds;
# docs/measurements.md).
ELLIPSE_REACH = 1.15
# Where a mask is painted over an earlier one (boxes overlap), its ellipse's edge fades in over
# this share of its shorter side (at least FEATHER_MIN px) instead of 1 px: two blurs of
# different pictures meeting in a sharp line drew an edge across the face under them, which
# score.py's rule (and an eye) reads as detail (docs/measurements.md "Seams between masks").
FEATHER = 0.25
FEATHER_MIN = 2.0


def _ellipse_alpha(w: int, h: int) -> np.ndarray:
    """float32 (h, w) coverage of every pixel by the mask's ellipse in a w x h box
    (ELLIPSE_REACH times the inscribed one, cut by the box)."""
    return np.clip(1.0 - _ellipse_distance(w, h), 0.0, 1.0).astype(np.float32)


def _ellipse_distance(w: int, h: int) -> np.ndarray:
    """float64 (h, w) signed distance in pixels (first order; negative inside) of every pixel
    centre of a w x h box to the edge of its mask's ellipse."""
    cx, cy = w / 2.0, h / 2.0
    a, b = cx * ELLIPSE_REACH, cy * ELLIPSE_REACH
    x = (np.arange(w, dtype=np.float64) + 0.5 - cx)[None, :]
    y = (np.arange(h, dtype=np.float64) + 0.5 - cy)[:, None]
    f = (x / a) ** 2 + (y / b) ** 2 - 1.0
    # First-order signed distance to the ellipse edge in pixels (f / |grad f|). Everything inside
    # the ellipse is fully masked and the anti-aliasing ramp lies in the 1 px just outside it, so
    # the face is never partly let through (a 2 x 2 box is fully covered).
    grad = 2.0 * np.sqrt((x / a ** 2) ** 2 + (y / b ** 2) ** 2)
    return f / np.maximum(grad, 1e-12)


def _feathered_alpha(w: int, h: int, under: np.ndarray) -> np.ndarray:
    """float32 (h, w) coverage by the mask's ellipse of a w x h box painted over earlier masks:
    `under` (uint8 (h, w)) is 1 where an earlier mask of the frame fully covers the pixel.
    Away from those, the ellipse's own coverage (`_ellipse_alpha`); deep inside them, an edge
    that fades in over FEATHER of the box's shorter side, so the two masks' pictures blend
    instead of meeting in a line; between the two, a mix by the depth in the earlier mask (so
    nothing changes where the earlier mask ends). Every pixel that gets less than full
    coverage here keeps an earlier mask's picture in the rest: nothing of the face shows."""
    sharp, lift, per_px = _fade_for(w, h, FEATHER, FEATHER_MIN)
    # depth in the earlier masks, from their nearest uncovered pixel (0 there; the box's own
    # border is not an uncovered pixel)
    alpha = cv2.distanceTransform(under, cv2.DIST_L2, 3)
    alpha *= per_px
    np.minimum(alpha, np.float32(1.0), out=alpha)     # the mix, 0..1
    alpha *= lift
    alpha += sharp
    return alpha


# Kept by box size, as the ellipses are (8 bytes a pixel; only boxes over an earlier mask).
@functools.lru_cache(maxsize=512)
def _fade_for(w: int, h: int, feather: float,
              least: float) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """The parts of `_feathered_alpha` that follow from the box's size (and the fade's share
    `feather` of its shorter side, at least `least` px): the sharp edge's coverage, what the
    faded edge adds to it (<= 0), and 1 / the fade's width in px. Read only: shared."""
    dist = _ellipse_distance(w, h)
    width = max(least, feather * min(w, h))
    sharp = np.clip(1.0 - dist, 0.0, 1.0)
    soft = np.clip(-dist / width, 0.0, 1.0)
    return sharp.astype(np.float32), (soft - sharp).astype(np.float32), np.float32(1 / width)


def _make_ellipse(w: int, h: int, stride: int) -> _Ellipse:
    """The ellipse of a w x h box in a frame whose rows are `stride` bytes apart."""
    alpha = _ellipse_alpha(w, h)
    inside = alpha >= 1.0
    edge = (alpha > 0.0) & ~inside
    ey, ex = np.nonzero(edge)
    byte = (ex[:, None] * 3 + np.arange(3)).ravel()
    ey3 = np.repeat(ey, 3)
    return _Ellipse(inside=inside.astype(np.uint8),
                    edge_f=(ey3 * stride + byte).astype(np.int32),
                    edge_c=(ey3 * (w * 3) + byte).astype(np.int32),
                    edge_a=np.repeat(alpha[ey, ex], 3))


class Masker:
    """Paints the mask over every face of a frame.

    mask: one of `MASKS`. mask_image: a path, or an already loaded RGB/RGBA uint8 array (RGB
    order), required for mask="image" and ignored otherwise. ellipse: limit the mask to an
    ellipse in each box (anti-aliased edge; `_ellipse_alpha`) instead of the whole box. color: the
    rectangle colour, see `parse_color`. draw_scores: write each detection's score next to it.
    """

    def __init__(self, mask="blur", mask_image=None, ellipse=True, color=(0, 0, 0),
                 draw_scores=False):
        if not isinstance(mask, str) or mask.strip().lower() not in MASKS:
            raise OptionError(f"mask must be one of {', '.join(MASKS)}; got {mask!r}.")
        self.mask = mask.strip().lower()
        self.ellipse = bool(ellipse)
        self.color = parse_color(color)
        self.draw_scores = bool(draw_scores)
        self._color_px = np.array(self.color, dtype=np.uint8)
        self._image = None
        if self.mask == "image":
            if mask_image is None:
                raise OptionError("mask=\"image\" needs mask_image: the path of the image "
                                  "(PNG with transparency works) to put over each face.")
            if isinstance(mask_image, np.ndarray):
                try:
                    self._image = _rgba_from_array(mask_image, bgr=False)
                except ValueError as e:
                    raise OptionError(f"mask_image array cannot be used: {e}.") from e
            else:
                self._image = load_mask_image(mask_image)
        self._ellipses: dict[tuple[int, int, int], _Ellipse] = {}
        self._resized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ----- per-size caches (face sizes repeat from frame to frame) -----

    def _ellipse_for(self, w: int, h: int, stride: int) -> _Ellipse:
        key = (w, h, stride)
        e = self._ellipses.pop(key, None)     # back in last: the most recently used
        if e is None:
            e = _make_ellipse(w, h, stride)
            if len(self._ellipses) >= _ELLIPSE_LIMIT:
                del self._ellipses[next(iter(self._ellipses))]
        self._ellipses[key] = e
        return e

    def _image_for(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The mask image resized to w x h: RGB uint8, its weight and the frame's weight
        (float32 (h, w), summing to 1), with the ellipse already folded into the weights."""
        r = self._resized.get((w, h))
        if r is None:
            if len(self._resized) >= _CACHE_LIMIT:
                self._resized.clear()
            src = self._image
            interp = cv2.INTER_AREA if (w < src.shape[1] and h < src.shape[0]) else cv2.INTER_LINEAR
            img = cv2.resize(src, (w, h), interpolation=interp)
            if img.ndim == 2:  # cv2 drops the channel axis of 1 x 1 results on some versions
                img = img.reshape(h, w, 4)
            alpha = img[:, :, 3].astype(np.float32) / np.float32(255.0)
            if self.ellipse:
                alpha *= _ellipse_alpha(w, h)
            r = (np.ascontiguousarray(img[:, :, :3]), alpha, np.float32(1.0) - alpha)
            self._resized[(w, h)] = r
        return r

    # ----- mask bodies -----

    @staticmethod
    def _mosaic(roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        block = max(w, h) / _MOSAIC_BLOCKS
        bw, bh = min(w, max(1, round(w / block))), min(h, max(1, round(h / block)))
        if (bw, bh) == (w, h):  # a face a few pixels wide: averaged in blocks of 2 at least,
            bw, bh = max(1, w // 2), max(1, h // 2)     # never left as it was
            if (bw, bh) == (w, h):
                return roi.copy()                       # one pixel: nothing to average
        small = cv2.resize(roi, (bw, bh), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    def _paint_image(self, roi: np.ndarray) -> None:
        h, w = roi.shape[:2]
        rgb, w_img, w_roi = self._image_for(w, h)
        # blendLinear passes a pixel through exactly where its weight is 0 (transparent).
        roi[:] = cv2.blendLinear(rgb, roi, w_img, w_roi)

    def _paint_run(self, frame: np.ndarray, flat: np.ndarray, boxes: list, whole: bool,
                   under: np.ndarray | None = None) -> None:
        """Mask boxes none of which overlaps another (blur, rectangle, mosaic): the blurs of
        them all in one pass, their anti-aliased ellipse edges in one blend. flat: the frame's
        bytes, from its first pixel. under: None, or uint8 (H, W), 1 where an earlier mask
        fully covers the pixel (an ellipse over it gets a feathered edge there, and marks its
        own inside in it)."""
        fh, fw = frame.shape[:2]
        stride = frame.strides[0]
        rois = [frame[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes]
        if self.mask == "blur":
            fgs = self._blurred_many(rois)
        elif self.mask == "rectangle":
            fgs = []
            for roi in rois:
                fg = np.empty_like(roi)
                fg[:] = self._color_px
                fgs.append(fg)
        else:
            fgs = [self._mosaic(roi) for roi in rois]
        edges, at, fg_at = [], [], []
        # where each box's picture starts in the concatenation of them all
        offsets = np.cumsum([0] + [fg.size for fg in fgs[:-1]]).tolist()
        for (x1, y1, x2, y2), roi, fg, offset in zip(boxes, rois, fgs, offsets):
            if not self.ellipse or whole or _cut(x1, y1, x2, y2, fw, fh):
                roi[:] = fg
                if under is not None:
                    under[y1:y2, x1:x2] = 1
                continue
            e = self._ellipse_for(x2 - x1, y2 - y1, stride)
            below = None if under is None else under[y1:y2, x1:x2]
            if below is not None and below.any():
                a = _feathered_alpha(x2 - x1, y2 - y1, below)
                roi[:] = cv2.blendLinear(fg, roi, a, np.float32(1.0) - a)
            else:
                cv2.copyTo(fg, e.inside, roi)  # writes into the frame: roi is a view of it
                if e.edge_c.size:
                    edges.append(e)
                    at.append(y1 * stride + x1 * 3)
                    fg_at.append(offset)
            if below is not None:
                below |= e.inside
        if not edges:
            return
        # The edges of them all: rint(old + (new - old) * coverage) in float32.
        n = [e.edge_c.size for e in edges]
        where = np.concatenate([e.edge_f for e in edges]) + np.repeat(at, n)
        new = np.concatenate([fg.reshape(-1) for fg in fgs])[
            np.concatenate([e.edge_c for e in edges]) + np.repeat(fg_at, n)]
        old = flat[where].astype(np.float32)
        flat[where] = np.rint(old + (new - old) * np.concatenate([e.edge_a for e in edges])
                              ).astype(np.uint8)

    def _blurred_many(self, rois: list) -> list:
        """Each roi shrunk to about `_BLUR_SIZE` px across (INTER_AREA), blurred with sigma
        0.4 of that (as cv2.GaussianBlur, BORDER_REFLECT) and scaled back (INTER_LINEAR)."""
        smalls, sizes = [], []
        for roi in rois:
            h, w = roi.shape[:2]
            factor = max(1.0, max(w, h) / _BLUR_SIZE)
            sw, sh = max(1, round(w / factor)), max(1, round(h / factor))
            smalls.append(roi if (sw, sh) == (w, h)
                          else cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA))
            sizes.append((sw, sh))
        blurred = _blur_small(smalls, sizes)
        out = []
        for roi, b, (sw, sh) in zip(rois, blurred, sizes):
            h, w = roi.shape[:2]
            small = b[:sh, :sw]
            out.append(np.ascontiguousarray(small) if (sw, sh) == (w, h)
                       else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
        return out

    def apply(self, frame: np.ndarray, boxes, scores=None, *, whole: bool = False) -> None:
        """Mask every box of `frame` (RGB uint8 (H, W, 3)) in place, the largest box first
        (where boxes overlap, the smaller one's mask lies on top).

        boxes: int (N, 4) x1, y1, x2, y2 as returned by `scale_boxes`; empty boxes are skipped.
        scores: float (N,) or None; a NaN score draws no number.
        whole: mask the whole boxes, never their inscribed ellipse (fixed regions).
        """
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3
                and frame.shape[2] == 3):
            raise ValueError("frame must be an RGB uint8 array of shape (H, W, 3)")
        if (frame.strides[1:] != (3, 1) or frame.strides[0] < 3 * frame.shape[1]
                or not frame.flags.writeable):
            # OpenCV can only draw into rows of packed pixels; anything else would be a copy.
            raise ValueError("frame must be writeable with packed RGB pixels (C-contiguous rows)")
        b = np.asarray(boxes)
        if b.size == 0:
            return
        b = b.reshape(-1, 4).astype(np.int64)
        fh, fw = frame.shape[:2]
        # Cheap insurance: a box outside the frame must not wrap around through negative indices.
        np.clip(b[:, 0::2], 0, fw, out=b[:, 0::2])
        np.clip(b[:, 1::2], 0, fh, out=b[:, 1::2])
        if self.mask != "none":
            paint = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
            # Larger boxes first, so each smaller one is painted last over its face: a larger
            # mask's edge crossing a small face (both masked) stays under the small one's blur,
            # where painted on top it drew a sharp line through that face (docs/measurements.md);
            # the small one's own edge fades in where the larger one lies under it.
            area = (paint[:, 2] - paint[:, 0]) * (paint[:, 3] - paint[:, 1])
            paint = paint[np.argsort(-area, kind="stable")]
            if self.mask == "image":    # the image's own ellipse, at frame edges too
                for x1, y1, x2, y2 in paint.tolist():
                    self._paint_image(frame[y1:y2, x1:x2])
            elif self.mask != "blur" and (whole or not self.ellipse):
                for x1, y1, x2, y2 in paint.tolist():   # each box replaced: nothing to batch
                    roi = frame[y1:y2, x1:x2]
                    roi[:] = self._color_px if self.mask == "rectangle" else self._mosaic(roi)
            elif len(paint):
                # every byte of the frame, addressed from its first pixel
                flat = np.lib.stride_tricks.as_strided(
                    frame, shape=((fh - 1) * frame.strides[0] + fw * 3,), strides=(1,))
                waves = _waves(paint)
                # what the earlier waves covered, where a later wave's ellipses overlap them
                under = (np.zeros((fh, fw), np.uint8)
                         if len(waves) > 1 and self.ellipse and not whole else None)
                for wave in waves:
                    self._paint_run(frame, flat, paint[wave].tolist(), whole, under)
        if self.draw_scores and scores is not None:
            s = np.asarray(scores, dtype=np.float64).reshape(-1)
            for (x1, y1, x2, y2), score in zip(b.tolist(), s.tolist()):
                if x2 > x1 and y2 > y1 and math.isfinite(score):
                    _draw_score(frame, x1, y1, x2, y2, score)


def _cut(x1: int, y1: int, x2: int, y2: int, fw: int, fh: int) -> bool:
    """A box touching the frame edge holds a face cut by the border: an ellipse in the
    visible part would leave its corners (the part of the face right at the edge) visible,
    so such a box is masked whole."""
    return x1 == 0 or y1 == 0 or x2 == fw or y2 == fh


def _draw_score(frame: np.ndarray, x1: int, y1: int, x2: int, y2: int, score: float) -> None:
    fh, fw = frame.shape[:2]
    text = f"{score:.2f}"
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = min(1.2, max(0.4, fh / 900.0))
    thick = max(1, round(scale * 1.6))
    outline = thick + 2
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = outline
    x = min(max(x1, pad), max(pad, fw - tw - pad))
    if y1 - base - pad - th >= 0:
        y = y1 - base - pad            # above the box
    else:
        y = y1 + th + pad              # no room above: just inside the top of the box
    y = min(y, fh - base - 1)
    cv2.putText(frame, text, (x, y), font, scale, (0, 0, 0), outline, cv2.LINE_AA)
    cv2.putText(frame, text, (x, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
