"""Re-render from a coordinate file (`--boxes`): the file's rows are the masks, keyframed
tracks are interpolated, deleted rows are unmasked, the run's own file reproduces the run, and
no model is needed."""
from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from tests import media
from blurfaces import cli, data as datamod
from blurfaces.api import blur_faces
from blurfaces.boxes import BoxTable
from blurfaces.errors import OptionError

HEADER = "time (ms),x1,y1,x2,y2,track,frame,score,source\n"


def _table(text, frames=100, size=(640, 360)):
    return BoxTable.parse("edit.csv", HEADER + text, frames, *size)


def test_keyframes_are_interpolated_and_tool_rows_are_not():
    t = _table("0,10,10,30,30,4,0,,\n"          # keyframes of track 4 at frames 0 and 4
               "0,50,30,70,50,4,4,,keyframe\n"
               "0,100,100,120,120,7,0,0.9,detected\n"   # the tool's rows: own frame only
               "0,200,100,220,120,7,5,0.8,detected\n")
    assert sorted(t.by_frame) == [0, 1, 2, 3, 4, 5]
    boxes, tracks, scores, sources = t.by_frame[2]
    assert tracks.tolist() == [4] and sources == ["interpolated"]
    assert boxes.tolist() == [[30, 20, 50, 40]]
    assert np.isnan(scores[0])
    assert t.by_frame[0][1].tolist() == [4, 7] and t.by_frame[0][3] == ["keyframe", "detected"]
    assert t.by_frame[4][1].tolist() == [4]     # track 7 not filled between its tool rows
    assert t.by_frame[5][3] == ["detected"]


def test_minimal_columns_and_untracked_rows():
    t = BoxTable.parse("e.tsv", "frame\tx1\ty1\tx2\ty2\n3\t1\t2\t30\t40\n9\t5\t5\t9\t9\n", 10,
                       64, 64)
    assert sorted(t.by_frame) == [3, 9]         # track -1: never interpolated
    assert t.by_frame[3][1].tolist() == [-1]


@pytest.mark.parametrize("row, says", [
    ("0,1,1,20,20,0,100,,", "line 2: frame 100 is outside the video"),
    ("0,30,1,20,20,0,0,,", "line 2: the box 30,1,20,20 is empty"),
    ("0,700,1,720,20,0,0,,", "lies outside the 640x360 picture"),
    ("0,a,1,20,20,0,0,,", "line 2: x1 is 'a', not a number"),
    ("0,1,1,20,20,0,1.5,,", "line 2: frame is '1.5', not an integer"),
    ("0,1,1,20,20,0,0,,guess", "source 'guess' is not one of"),
])
def test_bad_rows_name_their_line(row, says):
    with pytest.raises(OptionError, match=says.replace("(", r"\(")):
        _table(row)


def test_missing_columns_and_wrong_suffix():
    with pytest.raises(OptionError, match="no column frame"):
        BoxTable.parse("e.csv", "x1,y1,x2,y2\n1,1,5,5\n", 10, 64, 64)
    with pytest.raises(OptionError, match="must be the tool's coordinates as .csv"):
        BoxTable.parse("e.json", "{}", 10, 64, 64)


# ------------------------------------------------------------------------------ on video

def _decoded(path):
    return media.decode_frames(path)[0]


@pytest.mark.slow
def test_round_trip_reproduces_the_run(single_face, tmp_path, private_tmp):
    """The run's own CSV fed back gives the same decoded frames and the same rows, through
    two chunks (track ids must stay global)."""
    src = single_face
    run = blur_faces(str(src), target_name=str(tmp_path / "a.mp4"), chunks=2, workers=1)
    again = blur_faces(str(src), target_name=str(tmp_path / "b.mp4"), chunks=2, workers=1,
                       boxes=run.data[0])
    assert run.masked_boxes >= 72 and again.masked_boxes == run.masked_boxes
    assert again.summary["options"]["boxes"] == run.data[0]
    assert again.summary["counts"]["regions"] == {"run": 0, "partial": 0, "reused": 0}
    fa, fb = _decoded(run.video), _decoded(again.video)
    assert len(fa) == len(fb) == 72
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    da, db = datamod.read(run.data[0]), datamod.read(again.data[0])
    pd.testing.assert_frame_equal(da, db)


def _sliding_patch(n, a, b, size=32):
    """A renderer: a black-and-white checkerboard patch of `size` px sliding from corner `a`
    to `b` over frames 0..n-1 (at 30 fps), on grey; and the patch's box at each frame."""
    cb = (np.indices((size, size)).sum(axis=0) // 4 % 2 * 255).astype(np.uint8)
    where = [np.rint(np.asarray(a) + (np.asarray(b) - np.asarray(a)) * f / (n - 1)).astype(int)
             for f in range(n)]

    def render(t):
        img = np.full((360, 640, 3), 128, np.uint8)
        x, y = where[min(n - 1, round(t * 30))]
        img[y:y + size, x:x + size] = cb[..., None]
        return img
    return render, [(x, y, x + size, y + size) for x, y in where]


@pytest.mark.slow
def test_two_keyframes_mask_every_frame_between(tmp_path, private_tmp, monkeypatch):
    """A 'face' the detector never sees, added as two keyframe rows at the first and last
    frame, is masked (a solid red rectangle) on every frame between; a track whose rows
    were deleted is visible; nothing needs the model."""
    monkeypatch.setenv("BLURFACES_MODEL", str(tmp_path / "no-such-model.onnx"))
    n = 45
    render, where = _sliding_patch(n, (0, 100), (608, 200))     # starts and ends at the edges
    clip = media.make_clip(tmp_path / "patch.mp4", renderer=render, seconds=n / 30, fps=30)
    x1, y1, x2, y2 = where[0]
    u1, v1, u2, v2 = where[-1]
    edit = tmp_path / "edit.csv"
    edit.write_text(HEADER + f"0,{x1},{y1},{x2},{y2},3,0,,\n0,{u1},{v1},{u2},{v2},3,{n - 1},,\n")
    out = blur_faces(str(clip["path"]), target_name=str(tmp_path / "o.mp4"), boxes=str(edit),
                     mask="rectangle", color=(255, 0, 0), ellipse=False, chunks=2)
    frames = _decoded(out.video)
    assert len(frames) == n and out.masked_boxes == n
    for f, (a, b, c, d) in enumerate(where):
        inside = frames[f][b + 2:d - 2, a + 2:c - 2].astype(int)
        # solid red up to the encoder's noise (the checkerboard's std is ~127)
        assert np.abs(inside - [255, 0, 0]).mean() < 15 and inside[..., 0].std() < 15, \
            f"frame {f}: patch not masked"
    rows = datamod.read(out.data[0])
    assert rows["source"].tolist() == ["keyframe"] + ["interpolated"] * (n - 2) + ["keyframe"]

    # The same file with the track's rows deleted: the patch shows on every frame.
    edit.write_text(HEADER)
    out = blur_faces(str(clip["path"]), target_name=str(tmp_path / "p.mp4"), boxes=str(edit),
                     mask="rectangle", color=(255, 0, 0), ellipse=False)
    frames = _decoded(out.video)
    assert out.masked_boxes == 0
    for f, (a, b, c, d) in enumerate(where):
        patch = frames[f][b + 2:d - 2, a + 2:c - 2].astype(int)
        assert patch.std() > 80, f"frame {f}: the unmasked patch is not visible"


def test_bad_boxes_file_stops_before_any_output(tmp_path, short_clip, private_tmp, capsys):
    edit = tmp_path / "edit.csv"
    edit.write_text(HEADER + "0,1,1,20,20,0,999,,\n")
    with pytest.raises(OptionError, match="line 2: frame 999 is outside the video"):
        blur_faces(str(short_clip), boxes=str(edit))
    assert cli.main(["anonymize", str(short_clip), "--boxes", str(edit), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edit.csv: line 2: frame 999 is outside the video" in err[0]
    assert sorted(os.listdir(short_clip.parent)) == ["clip.mp4"]


# ------------------------------------------------------------------------------ unattended

def _drop_tracks(csv_path, dest, tracks):
    rows = datamod.read(str(csv_path))
    datamod.write(rows[~rows["track"].isin(tracks)], str(dest), "csv")
    return rows


@pytest.mark.slow
def test_watch_rerenders_from_an_edited_file_dropped_beside(tmp_path, short_clip, private_tmp):
    """Drop folder: `clip.mp4.boxes.csv` dropped in incoming/ after the video was done brings
    it back, re-renders it from the file and replaces its outputs; a bad edit fails with a
    report and leaves the previous result as it was."""
    from blurfaces import unattended
    from blurfaces.options import Execution, resolve
    root = tmp_path / "drop"
    (root / "incoming").mkdir(parents=True)
    shutil.copy(short_clip, root / "incoming" / "clip.mp4")
    old = time.time() - 10
    os.utime(root / "incoming" / "clip.mp4", (old, old))
    opts, _ = resolve({"detect_size": 320}, layout=True, environ={})

    def watch():
        return unattended.watch(str(root), opts, execution=Execution(workers=1), once=True,
                                settle=0.5)

    assert watch() == 1
    out = root / "anonymized"
    first = {n: (out / n).read_bytes() for n in os.listdir(out)}
    assert set(first) == {"clip_blurred.mp4", "clip_blurred.csv", "clip_blurred_heatmap.png",
                          "clip_blurred_review.html", "clip_blurred_summary.json"}
    edit = root / "incoming" / "clip.mp4.boxes.csv"

    # A bad edit: the job fails with a report naming the line; the outputs stay as they were.
    edit.write_text(HEADER + "0,1,1,20,20,0,9999,,\n")
    os.utime(edit, (old, old))
    assert watch() == 1
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == first
    report = json.loads((root / "failed" / "clip.mp4.json").read_text())
    assert "line 2: frame 9999 is outside the video" in report["message"]
    assert (root / "failed" / "clip.mp4.boxes.csv").exists()
    shutil.move(root / "failed" / "clip.mp4", root / "done" / "clip.mp4")   # the user puts back

    # A good edit (track 0 deleted): re-rendered, every output replaced.
    rows = _drop_tracks(out / "clip_blurred.csv", edit, [0])
    assert (rows["track"] == 0).any()
    os.utime(edit, (old, old))
    assert watch() == 1
    summary = json.loads((out / "clip_blurred_summary.json").read_text())
    assert summary["options"]["boxes"] == str(edit)
    assert summary["job"]["rerun"].startswith("boxes:")
    again = datamod.read(str(out / "clip_blurred.csv"))
    assert len(again) == (rows["track"] != 0).sum() and not (again["track"] == 0).any()
    assert (out / "clip_blurred.mp4").read_bytes() != first["clip_blurred.mp4"]
    assert sorted(os.listdir(root / "done")) == ["clip.mp4", "clip.mp4.boxes.csv"]
    assert sorted(os.listdir(root / "incoming")) == []
    assert watch() == 0                                  # nothing left to do
