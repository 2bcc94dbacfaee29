"""Inputs, settings and folders as they are found in the wild (issue 21's H to K): each ends
with one clear line and exit 2, or with a correct result; never a traceback, never a silent
skip, never a file written where it does not belong.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from tests import media
from blurfaces.options import Execution, Options
from blurfaces import OptionError, blur_faces, cli as bcli, jobs, unattended

FAST = dict(workers=1, detect_size=320)


def main(capsys, *argv) -> tuple[int, str]:
    code = bcli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line(err: str, *needles) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------ I: the model

@pytest.mark.slow
def test_a_corrupt_or_foreign_model_is_one_line_and_exit_2(tmp_path, short_clip, capsys,
                                                          monkeypatch):
    """I: a truncated fp32 model (or BLURFACES_MODEL naming another file) ended in a 37-line
    protobuf DecodeError and exit 1."""
    from blurfaces.model import default_model_path
    real = default_model_path()
    cut = tmp_path / "models" / "centerface.onnx"
    cut.parent.mkdir()
    cut.write_bytes(real.read_bytes()[:100_000])            # cut short: no int8 beside it
    monkeypatch.setenv("BLURFACES_MODEL", str(cut))
    code, err = main(capsys, "anonymize", short_clip, "-q", "--workers", "1")
    assert code == 2
    one_line(err, str(cut), "not a usable face model", "fetch-model")
    other = tmp_path / "models" / "notes.onnx"
    other.write_text("not a model at all")
    monkeypatch.setenv("BLURFACES_MODEL", str(other))
    code, err = main(capsys, "anonymize", short_clip, "-q", "--workers", "1",
                     "--precision", "fp32")
    assert code == 2
    one_line(err, str(other), "not a usable face model")
    assert sorted(os.listdir(short_clip.parent)) == ["clip.mp4"]


# ------------------------------------------------------------------------------ J, K: sidecars

def test_sidecars_that_cannot_be_read_are_errors_not_ignored(tmp_path):
    """J: a deeply nested sidecar raised RecursionError (exit 1); K: a sidecar that is a
    folder, a FIFO or a dangling link was silently ignored (a FIFO would block)."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    side = tmp_path / "v.mp4.blurfaces.json"
    side.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(OptionError, match="nested too deeply"):
        jobs.sidecar_options(str(video))
    for make in (os.mkdir, os.mkfifo, lambda p: os.symlink(tmp_path / "gone.json", p)):
        side.unlink() if side.is_file() or side.is_symlink() else (
            side.rmdir() if side.is_dir() else None)
        if side.exists():
            side.unlink()
        make(side)
        with pytest.raises(OptionError, match="not a regular file"):
            jobs.sidecar_options(str(video))
        side.rmdir() if side.is_dir() and not side.is_symlink() else side.unlink()
    side.write_text('{"mask": "mosaic"}')
    assert jobs.sidecar_options(str(video)) == {"mask": "mosaic"}


def test_a_dropped_sidecar_cannot_turn_masking_off_unless_the_owner_allows(drop_root,
                                                                          short_clip):
    """K: `{"mask": "none"}` dropped beside a video by an uploader published it unmasked."""
    inc = drop_root / "incoming"
    shutil.copy(short_clip, inc / "a.mp4")
    (inc / "a.mp4.blurfaces.json").write_text('{"mask": "none"}')
    layout = jobs.Layout(str(drop_root))
    r = jobs.run_job(str(inc / "a.mp4"), Options(), layout=layout,
                     execution=Execution(workers=1))
    assert r.status == "failed" and r.error_type == "OptionError"
    assert '"mask": "none"' in r.error and "--allow-unmasked-sidecars" in r.error
    assert not (drop_root / "anonymized").exists() or os.listdir(drop_root / "anonymized") == []
    # the user's own sidecar beside a file they anonymize themselves is theirs to set
    assert jobs.sidecar_options(str(inc / "a.mp4"), unmasked_ok=True) == {"mask": "none"}


@pytest.fixture
def drop_root(tmp_path):
    root = tmp_path / "drop"
    (root / "incoming").mkdir(parents=True)
    return root


# ------------------------------------------------------------------------------ K: names

def test_output_to_a_device_is_refused(short_clip, capsys):
    """K: `-o /dev/null` wrote /dev/null.mp4 and friends into /dev."""
    before = set(glob.glob("/dev/null*"))
    for target in ("/dev/null", "/dev/x.mp4"):
        code, err = main(capsys, "anonymize", short_clip, "-o", target, "-q")
        assert code == 2
        one_line(err, target, "not a place for the outputs")
    assert set(glob.glob("/dev/null*")) == before and not os.path.exists("/dev/x.mp4")


def test_watch_of_a_missing_folder_says_so_before_watching(capsys, tmp_path):
    code, err = main(capsys, "watch", tmp_path / "nonexistent")
    assert code == 2
    one_line(err, "nonexistent", "not a folder")


@pytest.mark.slow
def test_overwrite_removes_what_the_replaced_run_wrote_and_this_one_does_not(short_clip):
    """K: `--overwrite` without the heatmap left the previous run's `_heatmap.png` beside
    the new set (and a data format no longer asked for)."""
    d = short_clip.parent
    blur_faces(short_clip, draw_heatmap=True, data_format="csv,tsv", **FAST)
    assert sorted(os.listdir(d)) == ["clip.mp4", "clip_blurred.csv", "clip_blurred.mp4",
                                     "clip_blurred.tsv", "clip_blurred_heatmap.png",
                                     "clip_blurred_summary.json"]
    (d / "clip_blurred_notes.txt").write_text("the user's")      # not the old run's: stays
    blur_faces(short_clip, overwrite=True, **FAST)
    assert sorted(os.listdir(d)) == ["clip.mp4", "clip_blurred.csv", "clip_blurred.mp4",
                                     "clip_blurred_notes.txt", "clip_blurred_summary.json"]


# ------------------------------------------------------------------------------ K: animations

def _gif(path, n):
    with av.open(str(path), "w", format="gif") as o:
        s = o.add_stream("gif", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "rgb8"
        for i in range(n):
            a = np.zeros((120, 160, 3), np.uint8)
            a[:, i * 10:i * 10 + 20] = 255
            f = av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format="rgb8")
            f.pts, f.time_base = i, Fraction(1, 10)
            for p in s.encode(f):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)


@pytest.mark.slow
def test_animated_gif_is_a_video_a_still_one_and_an_animated_webp_are_refused(tmp_path,
                                                                              capsys):
    """K: an animated GIF was refused as "a still image". FFmpeg decodes it with its frames'
    times: it is processed like a video (every frame at its time); a one-frame GIF is a still
    image; an animated WebP, which this FFmpeg cannot decode, is refused saying so."""
    _gif(tmp_path / "anim.gif", 10)
    r = blur_faces(tmp_path / "anim.gif", **FAST)
    out = media.probe(r.video)
    assert out["n_frames"] == 10
    assert np.allclose(out["times"], [k / 10 for k in range(10)], atol=1e-6)
    _gif(tmp_path / "still.gif", 1)
    code, err = main(capsys, "anonymize", tmp_path / "still.gif", "-q")
    assert code == 2
    one_line(err, "still.gif", "still image")
    webp = tmp_path / "anim.webp"
    with av.open(str(webp), "w", format="webp") as o:
        s = o.add_stream("libwebp_anim", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 40 * i, np.uint8),
                                           format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 10)
            for p in s.encode(f):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    code, err = main(capsys, "anonymize", webp, "-q")
    assert code == 2
    one_line(err, "anim.webp", "animated WebP")


# ------------------------------------------------------------------------------ H, K: incoming/

@pytest.mark.slow
def test_read_only_incoming_and_files_that_are_no_videos(drop_root, short_clip, tmpfs):
    """H: a read-only incoming/ crashed the watcher with a traceback in move_input and the
    other files were never processed; K: empty and non-video files in incoming/ stayed there
    for ever with no report."""
    root = drop_root
    inc = root / "incoming"
    tmpfs("4m", at=inc)
    shutil.copy(short_clip, inc / "a.mp4")
    shutil.copy(short_clip, inc / "b.mp4")
    (inc / "empty.mp4").write_bytes(b"")
    (inc / "notes.txt").write_text("not a video")
    (inc / "b.mp4.blurfaces.json").write_text('{"mask": "rectangle"}')
    results = []
    unattended.watch(str(root), Options(detect_size=320), execution=Execution(workers=1),
                     once=True, settle=0, poll=0.1, on_result=results.append)
    # K: reports for what is no video; the sidecar moved with its video
    by = {os.path.basename(r.input): r for r in results}
    assert set(by) == {"a.mp4", "b.mp4", "empty.mp4", "notes.txt"}
    assert by["a.mp4"].status == by["b.mp4"].status == "done"
    for name, why in (("empty.mp4", "an empty file"), ("notes.txt", "not a video file name")):
        assert by[name].status == "failed"
        report = json.loads((root / "failed" / f"{name}.json").read_text())
        assert why in report["message"] and report["error_type"] == "InputError"
        assert (root / "failed" / name).exists()
    assert sorted(os.listdir(inc)) == []
    assert sorted(os.listdir(root / "done")) == ["a.mp4", "b.mp4", "b.mp4.blurfaces.json"]
    # H: the same folder read-only: one failure line per file, the watcher goes on
    for name in ("c.mp4", "d.mp4"):
        shutil.copy(short_clip, inc / name)
    subprocess.run(["mount", "-o", "remount,ro", str(inc)], check=True)
    results.clear()
    # one watcher, polling on: each file is said once, and nothing is processed twice
    unattended.watch(str(root), Options(detect_size=320), execution=Execution(workers=1),
                     settle=0, poll=0.1, on_result=results.append, max_idle_polls=3)
    assert sorted(os.path.basename(r.input) for r in results) == ["c.mp4", "d.mp4"]
    for r in results:
        assert r.status == "failed" and "cannot be moved" in r.error
        stem = os.path.splitext(os.path.basename(r.input))[0]
        assert (root / "anonymized" / f"{stem}_blurred_summary.json").is_file()
    assert sorted(os.listdir(inc)) == ["c.mp4", "d.mp4"]
    assert sorted(os.listdir(root / "done")) == ["a.mp4", "b.mp4", "b.mp4.blurfaces.json"]
    assert sorted(f for f in os.listdir(root / "anonymized") if f.endswith(".mp4")) == \
        ["a_blurred.mp4", "b_blurred.mp4", "c_blurred.mp4", "d_blurred.mp4"]
