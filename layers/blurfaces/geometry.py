"""Box geometry shared by the detector, the follow pool and the tracker: each box's size,
the IoU and the centre distances of two sets of boxes (x1, y1, x2, y2), and which boxes of one
set lie near which of another."""
from __future__ import annotations

import numpy as np


def box_sizes(boxes: np.ndarray) -> np.ndarray:
    """The longer side of each box (x1, y1, x2, y2)."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` with every box of `b` (x1, y1, x2, y2), shape (len(a), len(b))."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def centre_distance(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every box of `a` and every box of `b` (x1, y1, x2, y2): the distance of their
    centres in sizes (longer side) of the `a` box, and the `b` box's size over the `a`
    box's; both shape (len(a), len(b))."""
    size_a = box_sizes(a)[:, None]
    size_b = box_sizes(b)[None, :]
    centre_a = (a[:, None, :2] + a[:, None, 2:]) / 2
    centre_b = (b[None, :, :2] + b[None, :, 2:]) / 2
    return (np.linalg.norm(centre_a - centre_b, axis=2) / np.maximum(size_a, 1.0),
            size_b / np.maximum(size_a, 1.0))


def near(boxes: np.ndarray, others: np.ndarray, reach: float, lo: float,
         hi: float) -> np.ndarray:
    """(len(boxes), len(others)): which of `others` are of lo-hi times each box's size
    (exclusive) within `reach` of its size, centre to centre."""
    if not len(boxes) or not len(others):
        return np.zeros((len(boxes), len(others)), bool)
    dist, ratio = centre_distance(boxes, others)
    return (dist <= reach) & (ratio > lo) & (ratio < hi)
