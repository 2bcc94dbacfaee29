"""Selective masking: --keep-track, --ignore-region, --always-mask (parsing, one definition
for every entry point, and what each does to the pixels, at the frame edges too)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests import media
from blurfaces import cli, data as datamod
from blurfaces.api import blur_faces
from blurfaces.errors import OptionError
from blurfaces.options import Options, from_env, layered, parse_ids, parse_rects
from blurfaces.regions import Selection


def test_parsing_normalises_every_form():
    assert parse_ids("k", "5, 3,5") == (3, 5) == parse_ids("k", [5, 3])
    assert parse_ids("k", 7) == (7,)
    assert parse_rects("r", "10,20,110,80; 0,0,5,5", False) == ("10,20,110,80", "0,0,5,5")
    assert parse_rects("r", [[10, 20, 110, 80]], False) == ("10,20,110,80",)
    assert parse_rects("r", ["1,2,3,4@0.5-2"], True) == ("1,2,3,4@0.5-2",)
    # env, sidecar/API and CLI give the same record
    env = from_env({"BLURFACES_ALWAYS_MASK": "1,2,3,4@0.5-2", "BLURFACES_KEEP_TRACK": "2,1"})
    o, _ = layered(env)
    assert o.always_mask == ("1,2,3,4@0.5-2",) and o.keep_track == (1, 2)
    p = cli.build_parser().parse_args(["anonymize", "x.mp4", "--ignore-region", "0,0,9,9",
                                       "--keep-track", "4"])
    assert Options(**cli._given(p)).ignore_region == ("0,0,9,9",)
    assert Options.from_dict(o.to_dict()) == o


@pytest.mark.parametrize("name, value, says", [
    ("keep_track", "a", "track ids are whole numbers"),
    ("keep_track", "-1", "track ids are whole numbers"),
    ("ignore_region", "1,2,3", "is not a rectangle x1,y1,x2,y2"),
    ("ignore_region", "1,2,3,4@0-1", "is not a rectangle x1,y1,x2,y2 "),
    ("always_mask", "5,5,1,9", "is empty"),
    ("always_mask", "1,2,3,4@3-1", "0 <= T1 <= T2"),
    ("always_mask", "1.5,2,3,4", "whole pixels"),
])
def test_bad_values_say_what_is_wrong(name, value, says):
    with pytest.raises(OptionError, match=f"{name}.*{says}"):
        Options(**{name: value})


def test_selection_geometry_at_the_edges():
    s = Selection(keep_track=(2,), ignore_region=("600,0,700,100",),
                  always_mask=("620,-10,700,30@1-2", "0,0,10,10"))
    boxes = np.array([[590, 10, 630, 50], [560, 10, 600, 50], [10, 10, 40, 40]])
    # centre 610 inside the region (which runs past the right edge); 580 outside; track 2 kept
    assert s.kept(boxes, np.array([0, 0, 2])).tolist() == [False, True, False]
    assert s.always_at(1.5, 640, 360).tolist() == [[620, 0, 640, 30], [0, 0, 10, 10]]
    assert s.always_at(2.5, 640, 360).tolist() == [[0, 0, 10, 10]]
    assert Selection().kept(boxes, np.array([0, 0, 2])).all()
    assert Selection().always_at(1.5, 640, 360).shape == (0, 4)


def test_keep_track_needs_a_coordinate_file(short_clip, private_tmp):
    with pytest.raises(OptionError, match="keep_track names track ids of a coordinate file"):
        blur_faces(str(short_clip), keep_track="1")


# ------------------------------------------------------------------------------ on video

HEADER = "time (ms),x1,y1,x2,y2,track,frame,score,source\n"
RED = np.array([255, 0, 0])


def _red(frame, box, inset=3) -> bool:
    x1, y1, x2, y2 = box
    roi = frame[y1 + inset:y2 - inset, x1 + inset:x2 - inset].astype(int)
    return bool(np.abs(roi - RED).mean() < 20 and roi[..., 0].std() < 20)


def _two_patches(n):
    """Two checkerboard patches over grey: A slides along y=40 from x=0 to x=608 (so its
    centre crosses x=320), B stays at (100, 250)."""
    cb = (np.indices((32, 32)).sum(axis=0) // 4 % 2 * 255).astype(np.uint8)[..., None]
    xs = [round(608 * f / (n - 1)) for f in range(n)]

    def render(t):
        img = np.full((360, 640, 3), 128, np.uint8)
        img[40:72, xs[min(n - 1, round(t * 30))]:][:, :32] = cb
        img[250:282, 100:132] = cb
        return img
    return render, [(x, 40, x + 32, 72) for x in xs], (100, 250, 132, 282)


@pytest.mark.slow
def test_keep_ignore_and_always_on_pixels(tmp_path, private_tmp):
    n = 30
    render, a_boxes, b_box = _two_patches(n)
    clip = media.make_clip(tmp_path / "two.mp4", renderer=render, seconds=n / 30, fps=30)
    edit = tmp_path / "edit.csv"
    (x1, y1, x2, y2), (u1, v1, u2, v2) = a_boxes[0], a_boxes[-1]
    edit.write_text(HEADER + f"0,{x1},{y1},{x2},{y2},1,0,,\n0,{u1},{v1},{u2},{v2},1,{n - 1},,\n"
                    + f"0,{','.join(map(str, b_box))},2,0,,\n"
                    + f"0,{','.join(map(str, b_box))},2,{n - 1},,\n")
    out = blur_faces(str(clip["path"]), target_name=str(tmp_path / "o.mp4"), boxes=str(edit),
                     mask="rectangle", color=(255, 0, 0), chunks=2,
                     keep_track="2", ignore_region="320,0,700,200",
                     always_mask="600,300,700,400@0.5-0.8")
    frames = media.decode_frames(out.video)[0]
    assert len(frames) == n
    corner = (600, 300, 640, 360)               # cut at the right and bottom edges
    for f, frame in enumerate(frames):
        a_in_ignored = (a_boxes[f][0] + a_boxes[f][2]) / 2 >= 320
        assert _red(frame, a_boxes[f], inset=6) != a_in_ignored, f"frame {f}: patch A"
        assert not _red(frame, b_box), f"frame {f}: kept track 2 was masked"
        x1, y1, x2, y2 = b_box
        assert frame[y1 + 3:y2 - 3, x1 + 3:x2 - 3].std() > 80, f"frame {f}: B not visible"
        in_window = 0.5 - 1e-6 <= f / 30 <= 0.8 + 1e-6
        # the whole rectangle (not its ellipse: the corner pixels too) up to the edges
        assert _red(frame, corner, inset=0) == in_window, f"frame {f}: always-mask"
    rows = datamod.read(out.data[0])
    assert set(rows["track"]) == {1, -1} and set(rows[rows["track"] == -1]["source"]) == {"region"}
    assert (rows["source"] == "region").sum() == sum(0.5 - 1e-6 <= f / 30 <= 0.8 + 1e-6
                                                    for f in range(n))
    with open(out.summary_file) as f:
        recorded = json.load(f)["options"]
    assert recorded["keep_track"] == [2] and recorded["ignore_region"] == ["320,0,700,200"]
    assert recorded["always_mask"] == ["600,300,700,400@0.5-0.8"]


@pytest.mark.slow
def test_ignore_region_drops_detections(single_face, tmp_path, private_tmp):
    """With the detector: a region over the whole picture leaves the face unmasked."""
    out = blur_faces(str(single_face), target_name=str(tmp_path / "o.mp4"),
                     ignore_region="0,0,640,360")
    assert out.masked_boxes == 0 and out.frames == 72
    src = media.decode_frames(single_face)[0]
    got = media.decode_frames(out.video)[0]
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(src, got)) < 3
