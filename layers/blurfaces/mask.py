"""Face masks: how one detected face is hidden in a frame.

Owns the box geometry (`scaling_mask`, `scale_boxes`), option parsing for the mask colour and
image (`parse_color`, `load_mask_image`) and `Masker`, which paints every detection of a frame
in place with one of `MASKS`: a strong blur, a solid rectangle, a mosaic, an image, or nothing,
optionally limited to the ellipse inscribed in the box and with the detector score drawn next
to it.

Frames are RGB uint8 (the decoder's order), so colours and mask images are RGB(A) too.

Boxes reaching `Masker.apply` are already clipped to the frame. An image mask is resized to the
clipped box, so a face cut by the frame edge gets the whole image squeezed into the visible part
rather than the visible part of the image.
"""
from __future__ import annotations

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
    """Coverage of the ellipse inscribed in a w x h box, split so the common case is a copy."""
    inside: np.ndarray   # uint8 (h, w), 1 = fully covered pixel (a cv2.copyTo mask)
    edge_y: np.ndarray   # rows of the partly covered (anti-aliased) pixels
    edge_x: np.ndarray
    edge_a: np.ndarray   # float32 (K, 1) coverage of those pixels, in (0, 1)
    alpha: np.ndarray    # float32 (h, w) coverage of every pixel


def _make_ellipse(w: int, h: int) -> _Ellipse:
    a, b = w / 2.0, h / 2.0
    x = (np.arange(w, dtype=np.float64) + 0.5 - a)[None, :]
    y = (np.arange(h, dtype=np.float64) + 0.5 - b)[:, None]
    f = (x / a) ** 2 + (y / b) ** 2 - 1.0
    # First-order signed distance to the ellipse edge in pixels (f / |grad f|). Everything inside
    # the ellipse is fully masked and the anti-aliasing ramp lies in the 1 px just outside it, so
    # the face is never partly let through (a 2 x 2 box is fully covered).
    grad = 2.0 * np.sqrt((x / a ** 2) ** 2 + (y / b ** 2) ** 2)
    dist = f / np.maximum(grad, 1e-12)
    alpha = np.clip(1.0 - dist, 0.0, 1.0).astype(np.float32)
    inside = alpha >= 1.0
    edge = (alpha > 0.0) & ~inside
    ey, ex = np.nonzero(edge)
    return _Ellipse(inside=inside.astype(np.uint8), edge_y=ey, edge_x=ex,
                    edge_a=alpha[ey, ex][:, None], alpha=alpha)


class Masker:
    """Paints the mask over every face of a frame.

    mask: one of `MASKS`. mask_image: a path, or an already loaded RGB/RGBA uint8 array (RGB
    order), required for mask="image" and ignored otherwise. ellipse: limit the mask to the
    ellipse inscribed in each box (anti-aliased edge) instead of the whole box. color: the
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
        self._ellipses: dict[tuple[int, int], _Ellipse] = {}
        self._resized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ----- per-size caches (face sizes repeat from frame to frame) -----

    def _ellipse_for(self, w: int, h: int) -> _Ellipse:
        e = self._ellipses.get((w, h))
        if e is None:
            if len(self._ellipses) >= _CACHE_LIMIT:
                self._ellipses.clear()
            e = self._ellipses[(w, h)] = _make_ellipse(w, h)
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
                alpha *= self._ellipse_for(w, h).alpha
            r = (np.ascontiguousarray(img[:, :, :3]), alpha, np.float32(1.0) - alpha)
            self._resized[(w, h)] = r
        return r

    # ----- mask bodies -----

    @staticmethod
    def _blurred(roi: np.ndarray) -> np.ndarray:
        h, w = roi.shape[:2]
        factor = max(1.0, max(w, h) / _BLUR_SIZE)
        sw, sh = max(1, round(w / factor)), max(1, round(h / factor))
        small = roi if (sw, sh) == (w, h) else cv2.resize(roi, (sw, sh),
                                                          interpolation=cv2.INTER_AREA)
        sigma = max(sw, sh) / _BLUR_SIZE * _BLUR_SIGMA
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma, sigmaY=sigma,
                                 borderType=cv2.BORDER_REFLECT)
        if (sw, sh) == (w, h):
            return small
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

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

    def _paint(self, roi: np.ndarray, ellipse: bool = True) -> None:
        """Mask roi in place; ellipse=False masks the whole box even in ellipse mode."""
        h, w = roi.shape[:2]
        if self.mask == "image":
            rgb, w_img, w_roi = self._image_for(w, h)
            # blendLinear passes a pixel through exactly where its weight is 0 (transparent).
            roi[:] = cv2.blendLinear(rgb, roi, w_img, w_roi)
            return
        if self.mask == "rectangle":
            fg = np.empty_like(roi)
            fg[:] = self._color_px
        elif self.mask == "blur":
            fg = self._blurred(roi)
        else:
            fg = self._mosaic(roi)
        if not (self.ellipse and ellipse):
            roi[:] = fg
            return
        e = self._ellipse_for(w, h)
        cv2.copyTo(fg, e.inside, roi)  # writes into the frame: roi is a view of it
        if e.edge_y.size:
            old = roi[e.edge_y, e.edge_x].astype(np.float32)
            new = fg[e.edge_y, e.edge_x]
            roi[e.edge_y, e.edge_x] = np.rint(old + (new - old) * e.edge_a).astype(np.uint8)

    def apply(self, frame: np.ndarray, boxes, scores=None, *, whole: bool = False) -> None:
        """Mask every box of `frame` (RGB uint8 (H, W, 3)) in place.

        boxes: int (N, 4) x1, y1, x2, y2 as returned by `scale_boxes`; empty boxes are skipped.
        scores: float (N,) or None; a NaN score draws no number.
        whole: mask the whole boxes, never their inscribed ellipse (fixed regions).
        """
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3
                and frame.shape[2] == 3):
            raise ValueError("frame must be an RGB uint8 array of shape (H, W, 3)")
        if frame.strides[1:] != (3, 1) or not frame.flags.writeable:
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
            for x1, y1, x2, y2 in b.tolist():
                if x2 > x1 and y2 > y1:
                    # A box touching the frame edge holds a face cut by the border: the
                    # ellipse inscribed in the visible part would leave its corners (the
                    # part of the face right at the edge) visible, so mask the whole box.
                    cut = x1 == 0 or y1 == 0 or x2 == fw or y2 == fh
                    self._paint(frame[y1:y2, x1:x2], ellipse=not (cut or whole))
        if self.draw_scores and scores is not None:
            s = np.asarray(scores, dtype=np.float64).reshape(-1)
            for (x1, y1, x2, y2), score in zip(b.tolist(), s.tolist()):
                if x2 > x1 and y2 > y1 and math.isfinite(score):
                    _draw_score(frame, x1, y1, x2, y2, score)


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
