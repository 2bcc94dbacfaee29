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

from tests import media
from blurfaces.options import Execution, Options

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
        (inc / "readme.txt").write_text("not a video: reported, moved to failed/")
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
        # 20 jobs one after the other: about 70 s alone, several times that on a busy machine
        wait_for(lambda: files(inc) == [], 480, "incoming/ to empty")
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
    assert set(by_input) == set(good) | {"truncated.mp4", "notes.mp4", "readme.txt"}
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
    for bad in ("truncated.mp4", "notes.mp4", "readme.txt"):
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
    assert again.returncode == 0, (out, err)
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


WRITER = r"""
import sys, time
data = open(sys.argv[1], "rb").read()
cut = int(len(data) * float(sys.argv[3]))
with open(sys.argv[2], "wb") as f:        # one open file, as an uploader writes it
    f.write(data[:cut])
    f.flush()
    print("paused", flush=True)
    time.sleep(float(sys.argv[4]))
    f.write(data[cut:])
"""


@pytest.mark.slow
def test_an_upload_that_pauses_longer_than_settle_is_taken_only_when_complete(
        drop, synth_clip_factory):
    """B: an MKV written 60%, paused longer than --settle, then finished on the same open
    file was published with half its frames and moved to done/ while the uploader went on
    writing it there (or went to failed/ and stayed there once complete). A writer that still
    has the file open is seen (Linux: a read lease is refused), so the file is taken only
    once it is complete."""
    root, tmp = drop
    meta = synth_clip_factory(suffix=".mkv", size=(320, 180), seconds=1.4, audio=True)
    target = root / "incoming" / "upload.mkv"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(meta["path"]), str(target),
                               "0.6", "5"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "paused"
    watcher = start(root, tmp, "--once")            # settle 1 s: 5 s of pause is longer
    out, err = watcher.communicate(timeout=240)
    assert writer.wait(timeout=30) == 0
    assert watcher.returncode == 0, err
    (r,) = lines(out)
    assert r["status"] == "done" and r["frames"] == meta["n_frames"] == 42
    assert media.probe(root / "anonymized" / "upload_blurred.mp4")["n_frames"] == 42
    assert media.sha256_file(root / "done" / "upload.mkv") == media.sha256_file(meta["path"])
    assert not (root / "failed").exists() or files(root / "failed") == []
    assert_clean(root, tmp)


def test_a_result_for_an_input_that_changed_or_is_still_open_is_withdrawn(tmp_path):
    """B, the last look: between publishing and the move to done/ (and right after it), an
    input that grew or that a writer still holds open gets no result: what was published
    for it is removed and it stays in incoming/, to be taken again once complete."""
    from blurfaces import jobs
    inc, done, out = tmp_path / "incoming", tmp_path / "done", tmp_path / "anonymized"
    inc.mkdir()
    out.mkdir()
    src = inc / "x.mkv"
    src.write_bytes(b"part one")
    version = {"size": 8, "mtime_ns": os.stat(src).st_mtime_ns}

    def finished():
        published = {"video": str(out / "x_blurred.mp4"), "summary": str(out / "x_s.json"),
                     "data": [str(out / "x_blurred.csv")], "heatmap": None}
        for p in (published["video"], published["summary"], *published["data"]):
            open(p, "w").close()
        return jobs.JobResult(str(src), "done", outputs=published, version=version)

    with open(src, "ab") as f:                       # a writer holds it open
        assert jobs.move_finished(str(src), str(done / "x.mkv"), finished()) is None
        f.write(b" and two")
    assert os.listdir(out) == [] and os.listdir(inc) == ["x.mkv"]
    # closed, but it grew after the job read it
    assert jobs.move_finished(str(src), str(done / "x.mkv"), finished()) is None
    assert os.listdir(out) == [] and os.listdir(inc) == ["x.mkv"]
    # unchanged and closed: moved, and the result stands
    version = {"size": os.stat(src).st_size, "mtime_ns": os.stat(src).st_mtime_ns}
    assert jobs.move_finished(str(src), str(done / "x.mkv"), finished()) == str(done / "x.mkv")
    assert sorted(os.listdir(out)) == ["x_blurred.csv", "x_blurred.mp4", "x_s.json"]


def _watch_once(root):
    from blurfaces import unattended
    got = []
    unattended.watch(str(root), Options(detect_size=320, draw_heatmap=False),
                     execution=Execution(workers=1), once=True, settle=0, poll=0.1,
                     on_result=got.append)
    return got


@pytest.mark.slow
def test_the_same_name_twice_keeps_every_result_and_report(drop, short_clip):
    """C, C2, D: two phones' dup.mp4 one after the other each keep their outputs, named like
    the input once moved (done/dup_1.mp4 -> anonymized/dup_1_blurred.mp4); a file of the
    user's already in anonymized/ is never replaced; two bad x.mp4 keep a report each."""
    root, _ = drop
    inc, out = root / "incoming", root / "anonymized"
    out.mkdir()
    (out / "dup_blurred.mp4").write_bytes(b"the user's own file")          # C2
    shutil.copy(short_clip, inc / "dup.mp4")
    (inc / "x.mp4").write_bytes(b"not a video, first")
    first = _watch_once(root)
    shutil.copy(short_clip, inc / "dup.mp4")
    with open(inc / "dup.mp4", "ab") as f:          # another file of the same name
        f.write(b"\0")
    (inc / "x.mp4").write_bytes(b"not a video either, second")
    second = _watch_once(root)
    assert sorted(r.status for r in first + second) == ["done", "done", "failed", "failed"]
    assert (out / "dup_blurred.mp4").read_bytes() == b"the user's own file"
    assert files(out) == ["dup_1_blurred.csv", "dup_1_blurred.mp4",
                          "dup_1_blurred_summary.json", "dup_2_blurred.csv",
                          "dup_2_blurred.mp4", "dup_2_blurred_summary.json",
                          "dup_blurred.mp4"]
    assert files(root / "done") == ["dup_1.mp4", "dup_2.mp4"]
    for n in (1, 2):        # each set describes the input now beside it in done/
        s = json.loads((out / f"dup_{n}_blurred_summary.json").read_text())
        assert s["input_version"]["size"] == os.path.getsize(root / "done" / f"dup_{n}.mp4")
    assert files(root / "failed") == ["x.mp4", "x.mp4.json", "x_1.mp4", "x_1.mp4.json"]
    for name, body in (("x.mp4", b"not a video, first"),
                       ("x_1.mp4", b"not a video either, second")):
        assert (root / "failed" / name).read_bytes() == body
        report = json.loads((root / "failed" / f"{name}.json").read_text())
        assert report["version"]["size"] == len(body)
