"""Heatmap of where faces were in a video.

Owns the seed helpers `centroid_mask`, `nearest_neighbours` and `heatmap_data`, and
`draw_heatmap`, which writes the PNG. The density at a point is the inverse of the mean distance
to its k nearest face centres (one centre per detection per frame), evaluated on a grid that
keeps the video's aspect ratio; image row 0 is the top of the video, as in the frames.
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .errors import OptionError

_DISPLAY_LONG_SIDE = 800
_COLORMAP = cv2.COLORMAP_INFERNO


def centroid_mask(data) -> np.ndarray:
    """Centres (cx, cy) of boxes x1, y1, x2, y2, as a float (N, 2) array.

    `data` is an (N, 4) array-like or a pandas DataFrame with columns x1, y1, x2, y2 (other
    columns, such as the time, are ignored).
    """
    if hasattr(data, "columns"):
        boxes = data[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
    else:
        boxes = np.asarray(data, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2; got {boxes.shape}")
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0,
                     (boxes[:, 1] + boxes[:, 3]) / 2.0], axis=1)


def _grid_shape(width, height, resolution) -> tuple[int, int]:
    if not (isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool)
            and resolution >= 1):
        raise OptionError(f"resolution (heatmap cells along the longer side of the video) must "
                          f"be an integer >= 1; got {resolution!r}.")
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise OptionError(f"the video size must be positive to draw a heatmap; got "
                          f"{width!r} x {height!r}.")
    res = int(resolution)
    if width >= height:
        return max(1, round(res * height / width)), res
    return res, max(1, round(res * width / height))


def nearest_neighbours(x, y, width, height, resolution, n_neighbours) -> np.ndarray:
    """Mean distance (pixels) from each grid cell centre to its k nearest face centres.

    The grid covers [0, width] x [0, height] with `resolution` cells along the longer side and
    proportionally fewer (at least 1) along the other. k = min(n_neighbours, N). Returns an
    array (rows, cols), row 0 at the top; all +inf when there are no (finite) centres.
    """
    if not (isinstance(n_neighbours, (int, np.integer)) and not isinstance(n_neighbours, bool)
            and n_neighbours >= 1):
        raise OptionError(f"neighbours (faces averaged for the heatmap density) must be an "
                          f"integer >= 1; got {n_neighbours!r}.")
    rows, cols = _grid_shape(width, height, resolution)
    pts = np.column_stack([np.asarray(x, dtype=np.float64).reshape(-1),
                           np.asarray(y, dtype=np.float64).reshape(-1)])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return np.full((rows, cols), np.inf)
    k = min(int(n_neighbours), len(pts))
    gx = (np.arange(cols) + 0.5) * (width / cols)
    gy = (np.arange(rows) + 0.5) * (height / rows)
    cells = np.column_stack([np.tile(gx, rows), np.repeat(gy, cols)])
    dist, _ = cKDTree(pts).query(cells, k=k)
    return dist.reshape(rows * cols, -1).mean(axis=1).reshape(rows, cols)


def heatmap_data(data, resolution, data_min=None, data_max=None) -> np.ndarray:
    """Turn a distance grid from `nearest_neighbours` into a density in [0, 1].

    resolution: the size of one grid cell in the units of `data` (pixels). Distances under half
    a cell count as half a cell, because the grid cannot tell anything closer apart (and a cell
    sitting on a face centre would otherwise be infinitely dense).
    The density is 1 / distance, mapped linearly so data_min -> 0 and data_max -> 1 and clipped;
    data_min / data_max are densities (1 / pixels) and default to the grid's own min and max,
    pass them to put several heatmaps on one scale. No faces (all distances inf) gives all zeros;
    a grid with faces but a single density value gives all ones.
    """
    try:
        cell = float(resolution)
    except (TypeError, ValueError):
        cell = math.nan
    if not (math.isfinite(cell) and cell > 0):
        raise OptionError(f"heatmap cell size must be a number > 0; got {resolution!r}.")
    dist = np.asarray(data, dtype=np.float64)
    density = 1.0 / np.maximum(dist, cell / 2.0)
    density[~np.isfinite(density)] = 0.0  # NaN distances: nothing known there
    if not density.any():
        return np.zeros(dist.shape)
    lo = float(density.min()) if data_min is None else float(data_min)
    hi = float(density.max()) if data_max is None else float(data_max)
    if hi <= lo:
        if data_min is not None or data_max is not None:
            raise OptionError(f"heatmap data_max must be above data_min; got {lo} and {hi}.")
        return np.ones(dist.shape)
    return np.clip((density - lo) / (hi - lo), 0.0, 1.0)


def _ascii(text: str) -> str:
    # Hershey fonts only have ASCII glyphs.
    return text.encode("ascii", "replace").decode("ascii")


def _put(img, text, org, scale, color=(20, 20, 20), thick=1):
    cv2.putText(img, _ascii(text), org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def _text_size(text, scale, thick=1):
    return cv2.getTextSize(_ascii(text), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0]


def draw_heatmap(centroids, width, height, path, neighbours=32, resolution=250,
                 title=None) -> str:
    """Write a PNG heatmap of face centres over a width x height video to `path`.

    centroids: (N, 2) face centres in pixels (see `centroid_mask`). The image keeps the video's
    aspect ratio (longer side 800 px), uses the inferno colour map, has a colour scale from
    "low" to "high" on the right and a caption with the number of detections. With no
    detections it is uniform and says "no faces". The file appears atomically (written beside
    `path`, then renamed); an OSError from writing surfaces unchanged. Returns `path`.
    """
    pts = np.asarray(centroids, dtype=np.float64)
    pts = pts.reshape(-1, 2) if pts.size else np.zeros((0, 2))
    n = len(pts)
    dist = nearest_neighbours(pts[:, 0], pts[:, 1], width, height, resolution, neighbours)
    cell = max(width, height) / int(resolution)
    density = heatmap_data(dist, cell)

    long_side = max(width, height)
    dw = max(1, round(_DISPLAY_LONG_SIDE * width / long_side))
    dh = max(1, round(_DISPLAY_LONG_SIDE * height / long_side))
    # Nearest keeps the grid honest for tiny grids; linear smooths the usual 250-cell one.
    interp = cv2.INTER_LINEAR if min(density.shape) >= 8 else cv2.INTER_NEAREST
    levels = cv2.resize(density.astype(np.float32), (dw, dh), interpolation=interp)
    heat = cv2.applyColorMap(np.clip(np.rint(levels * 255), 0, 255).astype(np.uint8), _COLORMAP)

    margin, top, bottom, bar_w, label_w = 20, 50, 50, 24, 60
    bar_h = max(dh, 160)
    canvas_h = top + bar_h + bottom
    canvas_w = margin + dw + margin + bar_w + 8 + label_w
    canvas = np.full((canvas_h, canvas_w, 3), 255, np.uint8)
    canvas[top:top + dh, margin:margin + dw] = heat
    cv2.rectangle(canvas, (margin - 1, top - 1), (margin + dw, top + dh), (80, 80, 80), 1)

    if n == 0:
        note = "no faces"
        tw, th = _text_size(note, 0.8, 2)
        org = (margin + max(0, (dw - tw) // 2), top + max(th, (dh + th) // 2))
        _put(canvas, note, org, 0.8, (255, 255, 255), 2)

    bx = margin + dw + margin
    ramp = np.linspace(255, 0, bar_h).astype(np.uint8)[:, None]
    bar = cv2.applyColorMap(np.repeat(ramp, bar_w, axis=1), _COLORMAP)
    canvas[top:top + bar_h, bx:bx + bar_w] = bar
    cv2.rectangle(canvas, (bx - 1, top - 1), (bx + bar_w, top + bar_h), (80, 80, 80), 1)
    _put(canvas, "high", (bx + bar_w + 6, top + 12), 0.45)
    _put(canvas, "low", (bx + bar_w + 6, top + bar_h), 0.45)

    _put(canvas, title or "Where faces were", (margin, top - 18), 0.7, thick=2)
    caption = (f"{n} face detection{'s' if n != 1 else ''}; density = 1 / mean distance to the "
               f"{min(neighbours, n)} nearest" if n else "0 face detections")
    _put(canvas, caption, (margin, top + bar_h + 30), 0.5)

    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise OSError(f"could not encode the heatmap PNG for {os.fspath(path)!r}")
    final = os.fspath(path)
    from .storage import get_storage
    get_storage(final).write_bytes(final, png.tobytes())     # atomic: whole PNG or none
    return final
