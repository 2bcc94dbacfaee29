"""`blurfaces watch`: a local drop folder, run as a real process.

Files arrive over time (some bad, one still being written, one uploaded under a `.part`
name and renamed); every good one is anonymized exactly once into anonymized/, every bad one
ends in failed/ beside its report, inputs are intact in done/; a watcher killed with SIGKILL
mid-job and restarted reaches the same end state with no duplicates and no leftovers; two
watchers on one folder process each file once.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import media

ARGS = ["--workers", "1", "--detect-size", "320", "--poll", "0.3", "--settle", "1", "-q",
        "--json"]


def start(root, tmp, *extra):
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.Popen([sys.executable, "-m", "blurfaces", "watch", str(root), *ARGS,
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def lines(text):
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def files(folder) -> list[str]:
    out = []
    for d, dirs, names in os.walk(folder):
        out += [os.path.relpath(os.path.join(d, n), folder) for n in names]
    return sorted(out)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def drop(tmp_path):
    root = tmp_path / "drop"
    (root / "incoming").mkdir(parents=True)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return root, tmp


def assert_clean(root, tmp):
    assert [n for n in os.listdir(tmp) if "blurfaces" in n] == []
    leftovers = [f for f in files(root) if "blurfaces-" in f or f.endswith("-lock")
                 or f.startswith(".blurfaces/claims/")]
    assert leftovers == []


@pytest.mark.slow
def test_twenty_files_over_time(drop, short_clip, single_face):
    root, tmp = drop
    inc = root / "incoming"
    good = {}
    proc = start(root, tmp)
    try:
        for i in range(16):                              # arrive in three waves
            sub = inc / ("cam1" if i % 2 else "cam2")
            sub.mkdir(exist_ok=True)
            p = sub / f"clip{i:02d}.mp4"
            shutil.copy(short_clip if i % 3 else single_face, p)
            good[os.path.relpath(p, inc)] = media.sha256_file(p)
            if i in (5, 10):
                time.sleep(2)
        (inc / "truncated.mp4").write_bytes(short_clip.read_bytes()[:5000])
        (inc / "notes.mp4").write_text("not a video at all")
        (inc / "readme.txt").write_text("not a video name: ignored, left alone")
        # An upload under a temporary name, renamed when complete.
        shutil.copy(short_clip, inc / "upload.mp4.part")
        time.sleep(0.5)
        os.rename(inc / "upload.mp4.part", inc / "upload.mp4")
        good["upload.mp4"] = media.sha256_file(inc / "upload.mp4")
        # A copy still being written: half now, the rest 2.5 s later.
        data = single_face.read_bytes()
        with open(inc / "slow.mp4", "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(2.5)
            f.write(data[len(data) // 2:])
        good["slow.mp4"] = media.sha256_file(inc / "slow.mp4")
        wait_for(lambda: files(inc) == ["readme.txt"], 240, "incoming/ to empty")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    results = lines(out)
    assert "Traceback" not in err, err
    by_input = {}
    for r in results:
        rel = os.path.relpath(r["input"], inc)
        assert rel not in by_input, f"{rel} processed twice"
        by_input[rel] = r
    assert set(by_input) == set(good) | {"truncated.mp4", "notes.mp4"}
    for rel, sha in good.items():
        r = by_input[rel]
        assert r["status"] == "done", r
        stem = os.path.splitext(rel)[0]
        video = root / "anonymized" / f"{stem}_blurred.mp4"
        assert r["video"] == str(video)
        n = 72 if media.sha256_file(root / "done" / rel) == media.sha256_file(single_face) \
            else media.probe(short_clip)["n_frames"]
        assert media.probe(video)["n_frames"] == n == r["frames"]
        assert (root / "anonymized" / f"{stem}_blurred_heatmap.png").is_file()
        assert (root / "anonymized" / f"{stem}_blurred_review.html").is_file()   # layout default
        assert media.sha256_file(root / "done" / rel) == sha          # input intact
    for bad in ("truncated.mp4", "notes.mp4"):
        assert by_input[bad]["status"] == "failed"
        report = json.loads((root / "failed" / f"{bad}.json").read_text())
        assert report["input"] == str(inc / bad) and report["error_type"] == "InputError"
        assert bad in report["message"] and report["what_to_do"] and report["job_id"]
        assert (root / "failed" / bad).is_file()                       # the input, kept
    outputs = files(root / "anonymized")
    assert not any("_blurred_1" in f for f in outputs)                  # never twice
    assert_clean(root, tmp)


def _job_running(tmp):
    return any(n.startswith("blurfaces-work-") and os.path.isdir(tmp / n / "segments")
               for n in os.listdir(tmp))


@pytest.mark.slow
def test_kill_9_mid_job_then_restart(drop, synth_clip_factory):
    root, tmp = drop
    meta = synth_clip_factory(size=(320, 180), seconds=8.0, audio=True)
    shutil.copy(meta["path"], root / "incoming" / "long.mp4")
    sha = media.sha256_file(root / "incoming" / "long.mp4")
    os.utime(root / "incoming" / "long.mp4", (time.time() - 10, time.time() - 10))
    proc = start(root, tmp)
    wait_for(lambda: _job_running(tmp), 120, "the job to start")
    proc.kill()
    proc.communicate(timeout=30)
    assert [f for f in files(root / "anonymized") if not f.startswith(".")] == []
    again = start(root, tmp, "--once")
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, err
    (r,) = lines(out)
    assert r["status"] == "done" and r["frames"] == 240
    assert files(root / "anonymized") == ["long_blurred.csv", "long_blurred.mp4",
                                          "long_blurred_heatmap.png",
                                          "long_blurred_review.html",
                                          "long_blurred_summary.json"]
    assert files(root / "done") == ["long.mp4"]
    assert media.sha256_file(root / "done" / "long.mp4") == sha
    assert files(root / "incoming") == []
    assert_clean(root, tmp)


@pytest.mark.slow
def test_two_watchers_process_each_file_once(drop, short_clip):
    root, tmp = drop
    old = time.time() - 10
    for i in range(6):
        p = root / "incoming" / f"v{i}.mp4"
        shutil.copy(short_clip, p)
        os.utime(p, (old, old))
    a, b = start(root, tmp, "--once"), start(root, tmp, "--once")
    out_a, err_a = a.communicate(timeout=240)
    out_b, err_b = b.communicate(timeout=240)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    results = lines(out_a) + lines(out_b)
    assert sorted(os.path.basename(r["input"]) for r in results) == \
        [f"v{i}.mp4" for i in range(6)]
    assert all(r["status"] == "done" for r in results)
    assert sorted(f for f in files(root / "anonymized") if f.endswith(".mp4")) == \
        [f"v{i}_blurred.mp4" for i in range(6)]
    assert files(root / "done") == [f"v{i}.mp4" for i in range(6)]
    assert_clean(root, tmp)


@pytest.mark.slow
def test_sidecar_options_and_keep_inputs(drop, short_clip):
    """A `<video>.blurfaces.json` beside the video sets its options (here: no data files,
    no heatmap, mosaic); --keep-inputs leaves inputs in place, and a second pass skips them."""
    root, tmp = drop
    p = root / "incoming" / "side.mp4"
    shutil.copy(short_clip, p)
    (root / "incoming" / "side.mp4.blurfaces.json").write_text(json.dumps(
        {"save_data": False, "draw_heatmap": False, "mask": "mosaic"}))
    old = time.time() - 10
    os.utime(p, (old, old))
    runs = []
    for _ in range(2):
        w = start(root, tmp, "--once", "--keep-inputs")
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        runs.append(lines(out))
    assert [r["status"] for r in runs[0]] == ["done"]
    assert runs[1] == []                                 # already done for this version
    assert files(root / "anonymized") == ["side_blurred.mp4", "side_blurred_review.html",
                                          "side_blurred_summary.json"]
    summary = json.loads((root / "anonymized" / "side_blurred_summary.json").read_text())
    assert summary["options"]["mask"] == "mosaic"
    assert files(root / "incoming") == ["side.mp4", "side.mp4.blurfaces.json"]
