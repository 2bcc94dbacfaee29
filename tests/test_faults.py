"""Faults: a run ends with a correct output, or with one line and a non-zero exit. Never a
wrong output with exit 0, never a traceback, never leftovers under final names or in TMPDIR
(after SIGKILL: the next run cleans what the dead one left).

Covers issue 7's defects 3-8 and its fault suite: the self-check (dropped and re-timed frames),
a full temporary disk and a full output disk (small tmpfs mounts; these tests need root, as
in CI), publishing errors (a folder in an output's place, names too long, a failure half-way
through the commit), concurrent runs on the same names, SIGTERM / SIGINT / SIGKILL, a
read-only output folder, unbounded options, pipes and devices as input.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import av
import pytest

from tests import media
from blurfaces import OptionError, OutputError, VerifyError, blur_faces, cli as bcli
from blurfaces import outputs, publish, runner, stages
from blurfaces.options import Options
from blurfaces.outputs import output_names

FAST = dict(workers=1, detect_size=320)
FAST_CLI = ["--workers", "1", "--detect-size", "320", "-q"]


# ------------------------------------------------------------------------------ helpers

def cli(*args, cwd=None, tmpdir=None, timeout=180, wait=True):
    env = dict(os.environ)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    cmd = [sys.executable, "-m", "blurfaces", *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def one_error_line(stderr: str, code: int, *needles) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def ours(folder) -> list[str]:
    """blurfaces' temporary files, locks and work areas in a folder."""
    return sorted(n for n in os.listdir(folder) if "blurfaces" in n)


def frames(path) -> int:
    return media.probe(path)["n_frames"]


def _alone(folder, synth_clip_factory, seconds):
    """A 320x180 clip with faces and audio, as `clip.mp4` alone in `folder`."""
    meta = synth_clip_factory(size=(320, 180), seconds=seconds, audio=True)
    folder.mkdir()
    shutil.copy(meta["path"], folder / "clip.mp4")
    return folder / "clip.mp4"


@pytest.fixture
def clip(tmp_path, synth_clip_factory):
    return _alone(tmp_path / "in", synth_clip_factory, 2.0)


@pytest.fixture
def long_clip(tmp_path, synth_clip_factory):
    """8 s: long enough to be stopped half-way."""
    return _alone(tmp_path / "long", synth_clip_factory, 8.0)


# ------------------------------------------------------------------------------ self-check

@pytest.mark.slow
def test_dropped_frame_is_refused_naming_the_chunk(clip, private_tmp, monkeypatch):
    """A decoder that loses one frame (issue 7's AVI defect, or any future one) makes the
    worker's self-check refuse the chunk: VerifyError, nothing published."""
    real = stages.iter_frames

    def lose_frame_7(*a, **k):
        for i, f in enumerate(real(*a, **k)):
            if i != 7:
                yield f

    monkeypatch.setattr(stages, "iter_frames", lose_frame_7)
    before = sorted(os.listdir(clip.parent))
    with pytest.raises(VerifyError, match=r"chunk 0 .* should have 60 frames; 59 were decoded"):
        blur_faces(clip, **FAST)
    assert sorted(os.listdir(clip.parent)) == before
    assert ours(private_tmp) == []


def _rewrite_segment(path, edit):
    """Rewrite a NUT segment's packets through `edit(list_of_packets) -> packets`."""
    tmp = path + ".new"
    with av.open(path) as src, av.open(tmp, "w", format="nut") as dst:
        vs = src.streams.video[0]
        out = dst.add_stream_from_template(vs)
        pkts = [p for p in src.demux(vs) if p.size]
        for p in edit(pkts):
            p.stream = out
            dst.mux(p)
    os.replace(tmp, path)


@pytest.mark.parametrize("fault", ["missing-frame", "shifted-pts"])
@pytest.mark.slow
def test_stitch_refuses_output_that_differs_from_the_input(clip, tmp_path, fault):
    """Segments that no longer match the plan (a packet gone, timestamps moved) are caught
    by stitch's read-back of the finished MP4, which names the chunk; nothing is published."""
    work = tmp_path / "work"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    outputs = output_names(str(out_dir / "o.mp4"))
    m = stages.plan(str(clip), outputs=outputs, options=Options(detect_size=320), work=str(work),
                    chunks=2)
    for c in m["chunks"]:
        stages.worker(m, c["index"], threads=1)
    seg = stages.segment_uri(str(work), 1)
    if fault == "missing-frame":
        _rewrite_segment(seg, lambda pkts: pkts[:-1])
        pattern = r"output has 59 frames, the input 60.*chunk 1 "
    else:
        def shift(pkts):
            for p in pkts[5:]:                      # 10 ms later: re-timed frames
                ticks = max(1, round(0.01 / float(p.time_base)))
                p.pts += ticks
                p.dts += ticks
            return pkts
        _rewrite_segment(seg, shift)
        pattern = r"timestamps differ.*chunk 1 "
    with pytest.raises(VerifyError, match=pattern):
        stages.stitch(m)
    assert os.listdir(out_dir) == []


def test_encoder_close_error_reaches_the_caller(tmp_path, monkeypatch):
    """Defect 3: a full disk while the segment is flushed (container.close) used to kill
    only the encoder thread; the run then published a 1-frame video with exit 0."""
    from blurfaces.video import SegmentEncoder, probe
    src = media.pyfeat_file("single_face.mp4")
    info = probe(str(src))
    enc = SegmentEncoder(str(tmp_path / "seg.nut"), info)
    real_close = enc.container.close

    def close_full():
        real_close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(enc, "container", _Wrap(enc.container, close=close_full))
    import numpy as np
    enc.encode(np.zeros((info.display_height, info.display_width, 3), np.uint8), info.pts[0])
    with pytest.raises(OutputError, match="no space left"):
        enc.close()


def test_a_full_disk_while_the_encoder_flushes_never_hangs(tmp_path, monkeypatch):
    """E: the flush after the last frame (x264 holds back its lookahead) hit ENOSPC after the
    encoder thread had taken the only end marker; it then waited for another, and close()
    waited for it in join: forever. Now close() raises the disk error, once, and stop()
    (what the worker runs while SIGTERM's Interrupted is on its way out) never raises."""
    import threading
    from blurfaces.video import SegmentEncoder, probe
    src = media.pyfeat_file("single_face.mp4")
    info = probe(src)
    enc = SegmentEncoder(str(tmp_path / "seg.nut"), info)

    def mux_full(_pkt):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(enc, "container", _Wrap(enc.container, mux=mux_full))
    import numpy as np
    for k in range(3):      # fewer than x264's lookahead: the first packet comes at the flush
        enc.encode(np.zeros((info.display_height, info.display_width, 3), np.uint8),
                   info.pts[k])
    raised = []

    def close():
        try:
            enc.close()
        except OutputError as e:
            raised.append(e)
    t = threading.Thread(target=close, daemon=True)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive(), "close() hangs"
    assert raised and "no space left" in str(raised[0])
    enc.stop()
    enc.close()             # raised once already: the caller has it


class _Wrap:
    def __init__(self, inner, **over):
        self._inner, self._over = inner, over

    def __getattr__(self, name):
        return self._over.get(name) or getattr(self._inner, name)


# ------------------------------------------------------------------------------ disks

@pytest.mark.slow
@pytest.mark.parametrize("size,needle", [
    ("4k", "manifest.json: cannot be written (no space left"),      # no room for the plan
    ("24k", "no space left while writing a temporary video segment"),
    ("150k", None), ("600k", None)])                                # room enough
def test_full_temp_disk(clip, tmpfs, size, needle):
    """TMPDIR on a small tmpfs: where a stage runs out of room, the run ends with one line
    naming what could not be written, exit 2 and nothing published; with room enough it
    completes with a correct output. The tmpfs is left empty either way."""
    tmp = tmpfs(size)
    before = sorted(os.listdir(clip.parent))
    proc = cli("anonymize", clip, *FAST_CLI, cwd=clip.parent, tmpdir=tmp)
    if needle is None:
        assert proc.returncode == 0, proc.stderr
        assert frames(clip.parent / "clip_blurred.mp4") == 60
    else:
        assert proc.returncode == 2, proc.stderr
        line = one_error_line(proc.stderr, 2, "blurfaces: error: ")
        assert needle in line and "nothing was published" in line, line
        assert sorted(os.listdir(clip.parent)) == before
    assert ours(tmp) == []


@pytest.mark.slow
def test_full_output_disk(clip, tmpfs, private_tmp):
    out = tmpfs("48k")
    proc = cli("anonymize", clip, "-o", out / "o.mp4", *FAST_CLI, tmpdir=private_tmp)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, 2, str(out), "No space left")
    assert os.listdir(out) == []
    assert ours(private_tmp) == []


@pytest.mark.slow
def test_read_only_output_folder(clip, tmpfs, private_tmp):
    out = tmpfs("1m", ro=True)
    proc = cli("anonymize", clip, "-o", out / "o.mp4", *FAST_CLI, tmpdir=private_tmp)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, 2, str(out), "Read-only")
    assert ours(private_tmp) == []


# ------------------------------------------------------------------------------ publishing

@pytest.mark.slow
def test_folder_in_an_outputs_place(clip, private_tmp):
    """Defect 4: a folder where the CSV should go. Without --overwrite the set moves to the
    next free name; with it, one line, and nothing of the set is published."""
    d = clip.parent
    (d / "clip_blurred.csv").mkdir()
    r = blur_faces(clip, **FAST)
    assert r.video == str(d / "clip_blurred_1.mp4") and frames(r.video) == 60

    (d / "clip_blurred.mp4").write_bytes(b"old video")
    before = {n: (d / n).read_bytes() for n in os.listdir(d) if (d / n).is_file()}
    proc = cli("anonymize", clip, "--overwrite", *FAST_CLI, cwd=d, tmpdir=private_tmp)
    assert proc.returncode == 2
    one_error_line(proc.stderr, 2, "clip_blurred.csv", "folder")
    after = {n: (d / n).read_bytes() for n in os.listdir(d) if (d / n).is_file()}
    assert after == before                          # the old video is still there, unchanged
    assert (d / "clip_blurred.csv").is_dir()
    assert ours(d) == [] and ours(private_tmp) == []


@pytest.mark.slow
def test_name_too_long_fails_before_any_work(clip, private_tmp):
    target = clip.parent / ("n" * 240 + ".mp4")     # its _summary.json is over 255 bytes
    t0 = time.monotonic()
    proc = cli("anonymize", clip, "-o", target, *FAST_CLI, tmpdir=private_tmp)
    assert proc.returncode == 2
    one_error_line(proc.stderr, 2, "too long")
    assert sorted(os.listdir(clip.parent)) == ["clip.mp4"]
    assert ours(private_tmp) == []
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("overwrite", [False, True])
def test_commit_is_all_or_nothing(tmp_path, monkeypatch, overwrite):
    """A failure at the third rename puts back everything the commit had touched."""
    d = tmp_path / "out"
    d.mkdir()
    finals = [str(d / n) for n in ("v.mp4", "v.csv", "v_heatmap.png", "v_summary.json")]
    if overwrite:
        for f in finals:
            open(f, "w").write("old " + f)
    pub = publish.Publisher(str(tmp_path), overwrite=overwrite)
    for f in finals:
        with open(pub.stage(f, ".x"), "w") as fh:
            fh.write("new " + f)
    calls = {"n": 0}
    real_replace, real_link = os.replace, os.link

    def failing(fn):
        def call(a, b, *rest):
            if b in finals:
                calls["n"] += 1
                if calls["n"] == 3:
                    raise OSError(errno.ENOSPC, "No space left on device")
            return fn(a, b, *rest)
        return call

    monkeypatch.setattr(publish.os, "replace", failing(real_replace))
    monkeypatch.setattr(publish.os, "link", failing(real_link))
    with pytest.raises(OutputError, match="v_heatmap.png.*nothing was published"):
        pub.commit()
    monkeypatch.undo()
    if overwrite:
        assert {f: open(f).read() for f in finals} == {f: "old " + f for f in finals}
        assert sorted(os.listdir(d)) == sorted(os.path.basename(f) for f in finals)
    else:
        assert os.listdir(d) == []


SUMMARY = '{"mark": "%s", "outputs": {"video": "%s"}, "versions": {}}'
PUBLISH_KILLED = "SUMMARY = %r\n" % SUMMARY + r"""
import os, signal, sys
from blurfaces import publish
folder, step, overwrite = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
stem = os.path.join(folder, "x_blurred")
names = {"video": stem + ".mp4", "stem": stem, "heatmap": stem + "_heatmap.png",
         "summary": stem + "_summary.json"}
held = publish.claim([], names["video"])
pub = publish.Publisher(folder, overwrite=overwrite, token=held.token)
for key, suffix in (("video", ".mp4"), ("csv", ".csv"), ("heatmap", ".png"),
                    ("summary", ".json")):
    final = names[key] if key != "csv" else names["stem"] + ".csv"
    with open(pub.stage(final, suffix), "w") as f:
        f.write(SUMMARY % ("new", names["video"]) if key == "summary"
                else "new " + os.path.basename(final))
calls = {"n": 0}
for name in ("replace", "link", "unlink", "chmod"):
    real = getattr(os, name)
    def counted(*a, _real=real, **k):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return _real(*a, **k)
    setattr(publish.os, name, counted)
pub.commit()
print(calls["n"])
"""


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [False, True])
def test_sigkill_at_each_step_of_publishing_leaves_nothing_to_mishandle(tmp_path, overwrite):
    """F: a run killed while publishing left its video and CSV final without a summary, its
    lock and .part files beside them; the next run went to _1 and batch anonymized the
    orphan x_blurred.mp4. Killed at each file-system step of the commit, the next look (a
    batch's discovery, then a run on the same names) rolls the dead commit back (or forward
    once its summary is in place): the set is all old or all new, never mixed, the next run
    takes the same names, and no orphan is taken for an input."""
    from blurfaces import jobs
    names = ["x_blurred.csv", "x_blurred.mp4", "x_blurred_heatmap.png",
             "x_blurred_summary.json"]
    step, steps = 0, None
    while steps is None or step <= steps:
        step += 1
        d = tmp_path / f"step{step}"
        d.mkdir()
        (d / "x.mp4").write_bytes(b"the input")
        if overwrite:
            for n in names:
                (d / n).write_text("old " + n)
            (d / names[-1]).write_text(SUMMARY % ("old", d / "x_blurred.mp4"))
        p = subprocess.run([sys.executable, "-c", PUBLISH_KILLED, str(d), str(step),
                            "1" if overwrite else "0"], capture_output=True, text=True,
                           timeout=60)
        if p.returncode == 0:               # the commit needed fewer steps: all were tried
            steps = int(p.stdout)
            continue
        assert p.returncode == -signal.SIGKILL, p.stderr
        ready, _ = jobs.discover(str(d), settle=0)
        assert [os.path.basename(f.uri) for f in ready] == ["x.mp4"], step
        left = sorted(os.listdir(d))
        assert left in (["x.mp4"] + names, ["x.mp4"]), (step, left)
        contents = {json.loads((d / n).read_text())["mark"] if n.endswith(".json")
                    else (d / n).read_text().split()[0] for n in left if n != "x.mp4"}
        assert len(contents) <= 1, (step, left, contents)           # never mixed
        if overwrite:
            assert left == ["x.mp4"] + names
        # the next run on these names takes them (no _1), cleaning nothing more
        again, held = outputs.reserve_output(str(d / "x.mp4"), None, True, formats=("csv",),
                                            heatmap=True)
        held.release()
        assert again["video"] == str(d / "x_blurred.mp4")
        if contents == {"new"} or not left[1:]:
            n, held = outputs.reserve_output(str(d / "x.mp4"), None, False,
                                            formats=("csv",), heatmap=True)
            held.release()
            assert n["video"] == str(d / ("x_blurred_1.mp4" if left[1:] else "x_blurred.mp4"))
    assert steps and steps >= 8


@pytest.mark.slow
def test_batch_goes_on_after_a_publish_error(tmp_path, short_clip, private_tmp):
    d = tmp_path / "batch"
    d.mkdir()
    shutil.copy(short_clip, d / "a.mp4")
    shutil.copy(short_clip, d / "b.mp4")
    (d / "a_blurred.mp4").mkdir()                    # cannot be overwritten: a folder
    proc = cli("batch", d, "--overwrite", "--settle", "0", *FAST_CLI, tmpdir=private_tmp)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("blurfaces: error: ")]
    assert len(errors) == 1 and "a_blurred.mp4" in errors[0]
    assert "1 of 2 videos done" in proc.stderr
    assert frames(d / "b_blurred.mp4") == frames(short_clip)
    assert not (d / "a_blurred.csv").exists()


# ------------------------------------------------------------------------------ concurrency

def _run_many(n, args, cwd, tmpdir):
    procs = [cli(*args, cwd=cwd, tmpdir=tmpdir, wait=False) for _ in range(n)]
    return [(p.wait(timeout=300), *p.communicate()) for p in procs]


@pytest.mark.slow
def test_two_concurrent_runs_get_two_names(clip, private_tmp):
    """Defect 5: two runs with the default name used to both write clip_blurred.mp4."""
    res = _run_many(2, ["anonymize", clip, *FAST_CLI], clip.parent, private_tmp)
    assert [r[0] for r in res] == [0, 0], res
    d = clip.parent
    for stem in ("clip_blurred", "clip_blurred_1"):
        assert frames(d / f"{stem}.mp4") == 60
        s = json.loads((d / f"{stem}_summary.json").read_text())
        assert s["outputs"]["video"].endswith(f"{stem}.mp4")
    assert ours(d) == [] and ours(private_tmp) == []


@pytest.mark.slow
def test_eight_concurrent_runs(clip, private_tmp):
    d = clip.parent
    res = _run_many(8, ["anonymize", clip, *FAST_CLI], d, private_tmp)
    assert [r[0] for r in res] == [0] * 8, res
    stems = ["clip_blurred"] + [f"clip_blurred_{i}" for i in range(1, 8)]
    assert sorted(os.listdir(d)) == sorted(["clip.mp4"] + [f"{s}{x}" for s in stems
                                                          for x in (".mp4", ".csv",
                                                                    "_summary.json")])
    for s in stems:
        assert frames(d / f"{s}.mp4") == 60
    # Eight at once onto one name with --overwrite: each run succeeds or says another run
    # holds the name; the name ends up with one complete output.
    res = _run_many(8, ["anonymize", clip, "-o", d / "same.mp4", "--overwrite", *FAST_CLI],
                    d, private_tmp)
    assert 0 in [r[0] for r in res]
    for code, out, err in res:
        if code:
            assert code == 2
            one_error_line(err, 2, "another blurfaces run")
    assert frames(d / "same.mp4") == 60
    assert json.loads((d / "same_summary.json").read_text())["counts"]["frames"] == 60
    assert ours(d) == [] and ours(private_tmp) == []


# ------------------------------------------------------------------------------ signals

def _children(pid) -> list[int]:
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                with open(f"/proc/{n}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(n))
    return out


def _alive(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_and_wait_for_workers(clip, tmp):
    proc = cli("anonymize", clip, "--workers", "2", "--chunks", "2", "--detect-size", "320",
               "-q", cwd=clip.parent, tmpdir=tmp, wait=False)
    deadline = time.monotonic() + 90
    kids = []
    while time.monotonic() < deadline:
        kids = [k for k in _children(proc.pid) if _alive(k)]
        work = [n for n in os.listdir(tmp) if n.startswith("blurfaces-work-")]
        if len(kids) >= 2 and work and any(
                os.path.isdir(os.path.join(tmp, w, "segments")) for w in work):
            return proc, kids
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the workers did not start")


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_workers_and_cleans_up(long_clip, private_tmp, sig, code):
    """Defect 6: SIGTERM left the workers running (then idle forever) and the work folder."""
    before = sorted(os.listdir(long_clip.parent))
    proc, kids = _start_and_wait_for_workers(long_clip, private_tmp)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    one_error_line(err, code, "interrupted by " + signal.Signals(sig).name)
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids)
    assert sorted(os.listdir(long_clip.parent)) == before
    assert ours(private_tmp) == []


@pytest.mark.slow
def test_sigkill_then_next_run_cleans_up(long_clip, private_tmp):
    proc, kids = _start_and_wait_for_workers(long_clip, private_tmp)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids)          # the workers died with their parent
    assert ours(private_tmp)                        # a SIGKILL leaves its work area ...
    r = cli("anonymize", long_clip, *FAST_CLI, cwd=long_clip.parent, tmpdir=private_tmp)
    assert r.returncode == 0, r.stderr
    d = long_clip.parent
    assert frames(d / "clip_blurred.mp4") == 240    # ... and its claim: the name is free again
    assert ours(private_tmp) == [] and ours(d) == []


@pytest.mark.slow
def test_signals_at_random_moments(clip, private_tmp):
    """SIGTERM, SIGINT and SIGKILL at seeded random moments of a run: each ends with one line
    and 143 / 130 (or, when the run was already done, exit 0 and a complete output); after a
    SIGKILL the next run cleans up; never a wrong output, never leftovers."""
    import random
    rng = random.Random(7)
    d = clip.parent
    plan = [(s, rng.uniform(0.3, 3.5)) for s in
            (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGTERM,
             signal.SIGKILL)]
    for sig, delay in plan:
        proc = cli("anonymize", clip, "--workers", "2", "--chunks", "2", "--detect-size",
                   "320", "-q", "--overwrite", cwd=d, tmpdir=private_tmp, wait=False)
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:                        # finished before the signal
            assert frames(d / "clip_blurred.mp4") == 60
        elif sig == signal.SIGKILL:
            assert proc.returncode == -9
        else:
            assert proc.returncode == 128 + sig, err
            one_error_line(err, proc.returncode, "interrupted")
        if sig != signal.SIGKILL:
            assert ours(private_tmp) == [] and ours(d) == []
        for n in os.listdir(d):
            if n.startswith("clip_blurred") and n.endswith(".mp4"):
                assert frames(d / n) == 60              # whatever is published is complete
    r = cli("anonymize", clip, *FAST_CLI, "--overwrite", cwd=d, tmpdir=private_tmp)
    assert r.returncode == 0, r.stderr
    assert frames(d / "clip_blurred.mp4") == 60
    assert ours(private_tmp) == [] and ours(d) == []


@pytest.mark.slow
def test_stale_claim_and_staged_files_are_cleaned(clip, private_tmp):
    """What a run killed during its commit left (claim, staged file, a moved-aside original)
    is cleaned by the next run, the original restored."""
    d = clip.parent
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = "deadbeef0001"
    (d / ".clip_blurred.mp4.blurfaces-lock").write_text(json.dumps(
        {"pid": dead.pid, "host": os.uname().nodename, "token": token}))
    (d / f".blurfaces-{token}-0.mp4.part").write_bytes(b"half a video")
    (d / f".blurfaces-{token}-1.bak").write_bytes(b"the user's csv")
    (d / f".blurfaces-{token}-1.bak.name").write_text(str(d / "clip_blurred.csv"))
    r = blur_faces(clip, **FAST)
    assert (d / "clip_blurred.csv").read_bytes() == b"the user's csv"   # restored, kept
    assert r.video == str(d / "clip_blurred_1.mp4")
    assert ours(d) == []


# ------------------------------------------------------------------------------ options

BAD_OPTIONS = [
    (["--detect-size", "100000"], "detect_size"),
    (["--detect-size", "100"], "detect_size"),
    (["--chunk-seconds", "nan"], "chunk_seconds"),
    (["--chunk-seconds", "0"], "chunk_seconds"),
    (["--heatmap", "--resolution", "100000"], "resolution"),
    (["--neighbours", "0"], "neighbours"),
    (["--workers", "0"], "workers"),
    (["--workers", "-1"], "workers"),
    (["--chunks", "0"], "chunks"),
    (["--chunks", "2", "--chunk-seconds", "5"], "not both"),
    (["--preset", "nonsense"], "preset"),
    (["--mask-scale", "1e9"], "mask_scale"),
    (["--crf", "abc"], "--crf"),
    (["--mask", "glitter"], "glitter"),
]


@pytest.mark.parametrize("args,needle", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_unbounded_options_are_refused(args, needle, clip, capsys, private_tmp):
    before = sorted(os.listdir(clip.parent))
    try:
        code = bcli.main(["anonymize", str(clip), "-q", *args])
    except SystemExit as e:         # argparse's own errors (a value of the wrong type)
        code = e.code
    err = capsys.readouterr()
    assert code == 2
    one_error_line(err.err, 2, "blurfaces: error: ", needle)
    assert err.out == ""
    assert sorted(os.listdir(clip.parent)) == before
    assert ours(private_tmp) == []


def test_bad_option_noise_free_in_a_real_process(clip, private_tmp):
    """argparse's usage block and x264's own log lines do not precede the one line."""
    for args in (["--crf", "abc"], ["--preset", "nonsense"]):
        proc = cli("anonymize", clip, *args, tmpdir=private_tmp)
        assert proc.returncode == 2
        one_error_line(proc.stderr, 2, "blurfaces: error: ")


def test_output_folder_means_inside_it(clip, tmp_path, private_tmp):
    out = tmp_path / "results"
    out.mkdir()
    r = blur_faces(clip, target_name=str(out) + os.sep, **FAST)
    assert r.video == str(out / "clip_blurred.mp4")
    assert sorted(os.listdir(out)) == ["clip_blurred.csv", "clip_blurred.mp4",
                                       "clip_blurred_summary.json"]
    with pytest.raises(OutputError, match="does not exist"):
        blur_faces(clip, target_name=str(tmp_path / "missing") + os.sep, **FAST)


def test_pipes_and_devices_are_not_empty_files(tmp_path, capsys):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    for p in (fifo, "/dev/null"):
        assert bcli.main(["anonymize", str(p), "-q", "-o", str(tmp_path / "o.mp4")]) == 2
        line = one_error_line(capsys.readouterr().err, 2, "not a regular file")
        assert str(p) in line
    with pytest.raises(OptionError):
        runner.validate_execution(workers=True)


def test_a_signal_while_onnx_is_imported_waits_for_the_import(tmp_path, monkeypatch):
    """SIGTERM or SIGINT arriving while a native module initialises (onnx's nanobind module
    cannot unwind through the handler's exception: the process aborted with -6 and no message,
    once in `test_signals_at_random_moments`) is sent again after the import, and ends the run
    as any other signal does; outside `signals_held` the handler raises at once. Checked on
    model._onnx(), every import of onnx, with a stand-in onnx that is signalled mid-import."""
    from blurfaces import cli as bcli, model
    from blurfaces.errors import Interrupted, signals_held

    fake = tmp_path / "onnx"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import signal\nsignal.raise_signal(signal.SIGTERM)\nFINISHED = True\n")
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGTERM, bcli._on_signal)
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in [m for m in sys.modules if m == "onnx" or m.startswith("onnx.")]:
            monkeypatch.delitem(sys.modules, name)
        with pytest.raises(Interrupted):
            model._onnx()
        assert sys.modules["onnx"].FINISHED       # the import ran to its end first
        for sig, raised in ((signal.SIGTERM, Interrupted), (signal.SIGINT, KeyboardInterrupt)):
            signal.signal(sig, bcli._on_signal)
            reached = []
            with pytest.raises(raised):
                with signals_held():
                    with signals_held():            # nested: sent once, when the outer ends
                        signal.raise_signal(sig)    # the handler runs here and holds it
                        reached.append("inner")
                    reached.append("outer")
            assert reached == ["inner", "outer"]
            with pytest.raises(raised):
                signal.raise_signal(sig)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        # the stand-in must not outlive the test (monkeypatch puts back a real onnx
        # imported before it)
        for name in [m for m in sys.modules if m == "onnx" or m.startswith("onnx.")]:
            del sys.modules[name]
