"""Bad input gets one clear error and loses nothing.

Every case is run twice: through the Python API (a specific BlurfacesError subclass whose
message names the file or option) and through the CLI (`python -m blurfaces anonymize ...`:
exit status 2, exactly one `blurfaces: error: ...` line on stderr, no traceback). After each,
the folder holding the input (and the output folder asked for) lists exactly the same files,
hidden ones included, the input's bytes are unchanged, and the run's temporary folder is
empty (no work area or staged output left behind).

Decisions recorded here:
- Truncated MP4: a file cut before its index (`moov` at the end, like single_face.mp4) cannot
  be opened -> InputError. A "fast start" MP4 (`moov` first) cut short still opens and its
  first frames decode; its index lists more frames than the file holds, and `probe` refuses it
  (InputError "truncated") rather than writing a silently shorter video.
- Corrupt data in the middle: FFmpeg conceals small damage; when it does, the output must be
  complete (same frame count as the input); when the decoder reports the damage, the run ends
  with InputError and publishes nothing. Either way: no traceback, exit 0 or 2.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from tests import media
from blurfaces import InputError, OptionError, OutputError, blur_faces

FAST = dict(workers=1, detect_size=320)
FAST_CLI = ["--workers", "1", "--detect-size", "320", "-q"]


# ------------------------------------------------------------------------------ helpers

def tree(folder) -> dict:
    """Every file and folder under `folder` (hidden ones too) -> sha256 (None for folders)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = None
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = media.sha256_file(p)
    return out


def cli(*args, cwd=None, tmpdir=None, timeout=120):
    env = dict(os.environ)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run([sys.executable, "-m", "blurfaces", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def assert_one_error_line(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("blurfaces: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert proc.stdout == ""
    return lines[0]


def leftovers(tmp) -> list:
    """blurfaces' own work areas and staged files left in a temp dir (onnxruntime keeps a
    `.ses` file of its own there, which is not ours to judge)."""
    return [n for n in os.listdir(tmp) if "blurfaces" in n]


def write_audio_only(path, seconds=1.0, rate=44100, cover=False):
    """AAC audio; `cover`: with cover art (a JPEG picture of a face, muxed as MP4's `covr`,
    which FFmpeg reads back as a one-frame video stream marked attached_pic)."""
    with av.open(str(path), "w", format="mp4" if cover else None) as out:
        c = out.add_stream("mjpeg", rate=1) if cover else None
        s = out.add_stream("aac", rate=rate, layout="stereo")
        if cover:
            face = media.load_rgb(media.pyfeat_file("single_face.jpg"))
            c.width, c.height, c.pix_fmt = face.shape[1] // 2 * 2, face.shape[0] // 2 * 2, "yuvj420p"
            c.disposition = av.stream.Disposition.attached_pic
            pic = av.VideoFrame.from_ndarray(np.ascontiguousarray(
                face[:c.height, :c.width]), format="rgb24").reformat(format="yuvj420p")
            pic.pts, pic.time_base = 0, Fraction(1, 1)
            for p in [*c.encode(pic), *c.encode(None)]:
                out.mux(p)
        n = 1024
        for i in range(int(seconds * rate) // n):
            t = (np.arange(n) + i * n) / rate
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            f = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp",
                                           layout="stereo")
            f.sample_rate, f.pts, f.time_base = rate, i * n, Fraction(1, rate)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)


def remux_faststart(src, dst):
    """The same packets as `src`, with the MP4 index (moov) before the data."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mp4",
                                         options={"movflags": "+faststart"}) as o:
        m = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for p in i.demux():
            if p.dts is None:
                continue
            p.stream = m[p.stream.index]
            o.mux(p)


def garbage(data: bytes, at: float, size: int, seed: int = 1) -> bytes:
    b = bytearray(data)
    rng = random.Random(seed)
    m = int(len(b) * at)
    b[m:m + size] = bytes(rng.randrange(256) for _ in range(size))
    return bytes(b)


# ------------------------------------------------------------------------------ cases
# Each builder gets a fresh folder `d` and returns
#   (input path, API kwargs, CLI args, folders that must stay untouched, needles)
# where needles are strings the message must contain (the file or the option it is about).

def _missing(d):
    return d / "missing.mp4", {}, [], ["missing.mp4", "not found"]


def _directory(d):
    (d / "clips.mp4").mkdir()
    (d / "clips.mp4" / "inside.txt").write_text("x")
    return d / "clips.mp4", {}, [], ["clips.mp4", "directory"]


def _zero_byte(d):
    (d / "empty.mp4").write_bytes(b"")
    return d / "empty.mp4", {}, [], ["empty.mp4", "empty"]


def _text(d):
    (d / "notes.mp4").write_text("this is not a video\n" * 50)
    return d / "notes.mp4", {}, [], ["notes.mp4"]


def _jpeg(d):
    shutil.copy(media.pyfeat_file("multi_face.jpg"), d / "photo.mp4")
    return d / "photo.mp4", {}, [], ["photo.mp4", "image"]


def _truncated(frac):
    def build(d):
        data = media.pyfeat_file("single_face.mp4").read_bytes()
        p = d / f"cut{int(frac * 100)}.mp4"
        p.write_bytes(data[: int(len(data) * frac)])
        return p, {}, [], [p.name]
    return build


def _truncated_faststart(frac):
    def build(d):
        full = d.parent / "faststart_full.mp4"
        remux_faststart(media.pyfeat_file("single_face.mp4"), full)
        data = full.read_bytes()
        full.unlink()
        p = d / f"faststart_cut{int(frac * 100)}.mp4"
        p.write_bytes(data[: int(len(data) * frac)])
        return p, {}, [], [p.name, "truncated"]
    return build


def _audio_only(d):
    write_audio_only(d / "voice.m4a")
    return d / "voice.m4a", {}, [], ["voice.m4a", "no video stream"]


def _song_with_cover(d):
    """An M4A song with cover art used to come out as a one-frame video of the cover, exit 0."""
    write_audio_only(d / "song.m4a", cover=True)
    return d / "song.m4a", {}, [], ["song.m4a", "attached picture"]


def _two_lenses(d):
    """Two video streams of one size, both marked default (a dual-lens camera's MP4): which
    one to anonymize is a guess, and the other would be lost from the output."""
    p = d / "VID_360.mp4"
    with av.open(str(p), "w") as out:
        streams = []
        for _ in range(2):
            v = out.add_stream("libx264", rate=25)
            v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
            v.disposition = av.stream.Disposition.default
            streams.append(v)
        packets = []
        for v in streams:
            for i in range(10):
                f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8),
                                               format="rgb24").reformat(format="yuv420p")
                f.pts = i
                packets += v.encode(f)
            packets += v.encode(None)
        for pkt in packets:
            out.mux(pkt)
    return p, {}, [], ["VID_360.mp4", "2 video streams of 160x120"]


def _damaged_audio(d):
    """Vorbis sound (re-encoded to AAC, so decoded) whose packets 20-39 are random bytes: the
    decoder's error ended the run with a traceback (exit 1)."""
    import random
    from tests import corpus
    p = d / "recording.mkv"
    with av.open(str(p), "w") as out:
        v = corpus._encoder(out, "libx264", 160, 120, 25, "yuv420p")
        a = out.add_stream("vorbis", rate=48000, layout="stereo",
                           options={"strict": "experimental"})
        a.codec_context.thread_count = 1
        packets = []
        for i in range(50):
            packets += [(v, q) for q in v.encode(corpus._frame(corpus.picture(i, 160, 120),
                                                               "yuv420p", i, Fraction(1, 25)))]
        packets += [(v, q) for q in v.encode(None)]
        rnd = random.Random(1)
        for k, q in enumerate(corpus._audio_frames(a, 2.0)):
            if 20 <= k < 40:
                bad = av.Packet(bytes(rnd.randrange(256) for _ in range(q.size)))
                bad.pts, bad.dts, bad.time_base, bad.duration = q.pts, q.dts, q.time_base, q.duration
                bad.stream = a
                q = bad
            packets.append((a, q))
        corpus._mux_sorted(out, packets)
    return p, {}, [], ["recording.mkv", "audio stream 1", "--no-audio"]


def _single(d):
    p = d / "clip.mp4"
    shutil.copy(media.pyfeat_file("single_face.mp4"), p)
    return p


def _mask_image_missing(d):
    return (_single(d), dict(mask="image", mask_image=str(d / "nope.png")),
            ["--mask", "image", "--mask-image", str(d / "nope.png")], ["nope.png"])


def _mask_image_text(d):
    (d / "fake.png").write_text("not a png")
    return (_single(d), dict(mask="image", mask_image=str(d / "fake.png")),
            ["--mask", "image", "--mask-image", str(d / "fake.png")], ["fake.png"])


def _unknown_mask(d):
    return _single(d), dict(mask="sparkles"), ["--mask", "sparkles"], ["sparkles", "mask"]


def _unknown_format(d):
    return (_single(d), dict(data_format="csv,xlsx"), ["--data-format", "csv,xlsx"],
            ["xlsx", "data format"])


def _mask_scale(v):
    def build(d):
        return _single(d), dict(mask_scale=v), ["--mask-scale", str(v)], ["mask_scale"]
    return build


def _output_under_file(d):
    (d / "afile").write_text("a regular file, not a folder")
    target = d / "afile" / "out.mp4"
    return _single(d), dict(target_name=str(target)), ["-o", str(target)], ["afile"]


def _output_missing_folder(d):
    target = d / "no" / "such" / "folder" / "out.mp4"
    return _single(d), dict(target_name=str(target)), ["-o", str(target)], ["folder"]


def _target_is_input(d):
    p = _single(d)
    return (p, dict(target_name=str(p), overwrite=True), ["-o", str(p), "--overwrite"],
            ["clip.mp4", "input"])


CASES = {
    "missing-file": (_missing, InputError),
    "directory": (_directory, InputError),
    "zero-byte": (_zero_byte, InputError),
    "text-as-mp4": (_text, InputError),
    "jpeg-as-mp4": (_jpeg, InputError),
    "truncated-30pct": (_truncated(0.3), InputError),
    "truncated-90pct": (_truncated(0.9), InputError),
    "truncated-faststart-30pct": (_truncated_faststart(0.3), InputError),
    "truncated-faststart-90pct": (_truncated_faststart(0.9), InputError),
    "audio-only": (_audio_only, InputError),
    "song-with-cover-art": (_song_with_cover, InputError),
    "two-equal-video-streams": (_two_lenses, InputError),
    "damaged-audio": (_damaged_audio, InputError),
    "mask-image-missing": (_mask_image_missing, InputError),
    "mask-image-not-an-image": (_mask_image_text, InputError),
    "unknown-mask": (_unknown_mask, OptionError),
    "unknown-data-format": (_unknown_format, OptionError),
    "mask-scale-0": (_mask_scale(0), OptionError),
    "mask-scale-negative": (_mask_scale(-1), OptionError),
    "output-under-a-file": (_output_under_file, OutputError),
    "output-folder-missing": (_output_missing_folder, OutputError),
    "target-is-input-overwrite": (_target_is_input, OptionError),
}


# Cases that decode or probe before they fail (a few seconds each): the slow lane.
SLOW_CASES = {"zero-byte", "text-as-mp4", "jpeg-as-mp4", "truncated-30pct", "truncated-90pct",
              "truncated-faststart-30pct", "truncated-faststart-90pct", "audio-only",
              "song-with-cover-art", "two-equal-video-streams", "damaged-audio",
              "output-under-a-file", "output-folder-missing", "target-is-input-overwrite"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES
                                  else c for c in CASES])
def test_bad_input_clear_error_nothing_lost(case, tmp_path, private_tmp):
    build, exc = CASES[case]
    d = tmp_path / "in"
    d.mkdir()
    src, kwargs, args, needles = build(d)
    before = tree(tmp_path / "in")

    # Python API: the specific type, a message naming the file/option, nothing written.
    with pytest.raises(exc) as info:
        blur_faces(src, **FAST, **kwargs)
    msg = str(info.value)
    for n in needles:
        assert n in msg, (n, msg)
    assert "\n" not in msg
    assert tree(tmp_path / "in") == before
    assert leftovers(private_tmp) == []

    # CLI: exit 2, one line, no traceback, nothing written.
    proc = cli("anonymize", src, *args, *FAST_CLI, cwd=d, tmpdir=private_tmp)
    line = assert_one_error_line(proc, *needles)
    if "mask_scale" not in kwargs:      # the CLI parses --mask-scale 0 as 0.0
        assert line == f"blurfaces: error: {msg}"
    assert tree(tmp_path / "in") == before
    assert leftovers(private_tmp) == []


def test_a_failure_report_takes_chunk_and_hint_from_the_error_not_its_message(tmp_path):
    """Issue 17's defects: the report's `chunk` was parsed out of the message (an InputError
    on a file named `chunk 12.mp4` was reported as chunk 12) and hints were looked up by
    exact class name (LimitError got "Run again; if it keeps failing, report it.")."""
    import pickle

    from blurfaces import errors, jobs
    from blurfaces.errors import BlurfacesError, ChunkError, LimitError
    from blurfaces.options import Options
    layout = jobs.Layout(tmp_path)
    layout.ensure()
    bad = tmp_path / "incoming" / "chunk 12.mp4"
    bad.write_bytes(b"chunk 12 of nothing: not a video at all " * 50)
    r = jobs.run_job(str(bad), Options(), layout=layout)
    assert r.status == "failed" and r.error_type == "InputError"
    import json
    report = json.loads(open(r.report).read())
    assert "chunk 12.mp4" in report["message"] and report["chunk"] is None
    assert report["what_to_do"] == InputError.hint

    e = ChunkError("chunk 3 (6.00-9.00 s) failed", index=3, start_s=6.0, stop_s=9.0,
                   input="in.mp4", stage="worker")
    e = pickle.loads(pickle.dumps(e))           # as it comes back from a worker process
    assert (e.index, e.chunk, e.start_s, e.stop_s, e.input) == (3, 3, 6.0, 9.0, "in.mp4")
    rep = jobs.failure_report("in.mp4", None, "j", e, stage="job", started=0.0)
    assert (rep["chunk"], rep["stage"], rep["what_to_do"]) == (3, "worker", ChunkError.hint)

    # hints are class attributes: subclasses inherit them unless they say better
    assert LimitError.hint != BlurfacesError.hint and LimitError.hint != InputError.hint
    assert "Split the video" in jobs.failure_report(
        "s3://b/incoming/long.mp4", None, "j", LimitError("too long"), stage="plan",
        started=0.0)["what_to_do"]

    class Unreadable(InputError):
        pass
    assert Unreadable("x").hint == InputError.hint
    assert errors.hint_for("LimitError") == LimitError.hint         # a name from a Lambda
    assert errors.hint_for("ZeroDivisionError") == BlurfacesError.hint
    # every error type lives in errors.py, with a hint
    import ast
    import pathlib
    lib = pathlib.Path(errors.__file__).parent
    for path in lib.rglob("*.py"):
        if path.name != "errors.py":
            for node in ast.walk(ast.parse(path.read_text())):
                assert not (isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Interrupted"))
                    for b in node.bases)), f"{path.name} defines {node.name}"
    for name in dir(errors):
        t = getattr(errors, name)
        if isinstance(t, type) and issubclass(t, Exception) and t.__module__ == errors.__name__:
            assert issubclass(t, BlurfacesError) and t.hint, name
    assert issubclass(OptionError, ValueError)      # the seed raised ValueError for options


@pytest.mark.parametrize("size,outcome", [(64, "ok"), (4096, "error")],
                         ids=["small-damage", "large-damage"])
@pytest.mark.slow
def test_corrupt_middle_is_concealed_completely_or_refused(size, outcome, tmp_path, private_tmp):
    """Garbage over the middle of the data: 64 bytes are concealed by the decoder (every
    frame comes out), 4096 bytes end the run with a clean refusal. The API and the CLI decide
    the same way, the input is never changed, nothing is left behind."""
    d = tmp_path / "in"
    d.mkdir()
    src = media.pyfeat_file("single_face.mp4")
    p = d / "damaged.mp4"
    p.write_bytes(garbage(src.read_bytes(), 0.5, size))
    n_in = len(media.decode_frames(src)[1])
    sha_in = media.sha256_file(p)
    before = tree(d)

    if outcome == "error":
        with pytest.raises(InputError, match="damaged.mp4.*corrupt or truncated"):
            blur_faces(p, **FAST)
        assert tree(d) == before
    else:
        r = blur_faces(p, **FAST)
        assert r.frames == n_in
        assert media.probe(r.video)["n_frames"] == n_in
        new = set(tree(d)) - set(before)
        assert new == {"damaged_blurred.mp4", "damaged_blurred.csv",
                       "damaged_blurred_summary.json"}
        for f in new:
            os.unlink(d / f)
    assert media.sha256_file(p) == sha_in
    assert leftovers(private_tmp) == []

    proc = cli("anonymize", p, *FAST_CLI, cwd=d, tmpdir=private_tmp)
    assert "Traceback" not in proc.stderr, proc.stderr
    if outcome == "error":
        assert proc.returncode == 2
        assert_one_error_line(proc, "damaged.mp4")
        assert tree(d) == before
    else:
        assert proc.returncode == 0, proc.stderr
        assert media.probe(d / "damaged_blurred.mp4")["n_frames"] == n_in
    assert media.sha256_file(p) == sha_in
    assert leftovers(private_tmp) == []


@pytest.mark.slow
def test_decode_error_exits_every_time(tmp_path, private_tmp):
    """A decoder error must end the process: freeing a frame-threaded H.264 decoder right
    after it reported corrupt data used to deadlock inside FFmpeg about one run in ten."""
    src = media.pyfeat_file("single_face.mp4")
    p = tmp_path / "damaged.mp4"
    p.write_bytes(garbage(src.read_bytes(), 0.5, 4096))
    for _ in range(4):                  # 4096 bytes of garbage: refused, every time
        proc = cli("anonymize", p, *FAST_CLI, cwd=tmp_path, tmpdir=private_tmp, timeout=60)
        assert "Traceback" not in proc.stderr
        assert proc.returncode == 2, proc.stderr
        assert_one_error_line(proc, "damaged.mp4")
        assert not any(n.startswith("damaged_blurred") for n in os.listdir(tmp_path))


# ------------------------------------------------------------------------------ overwrite

def _names(stem):
    return [f"{stem}.mp4", f"{stem}.csv", f"{stem}_heatmap.png", f"{stem}_summary.json"]


@pytest.mark.slow
def test_without_overwrite_outputs_are_never_replaced(short_clip, private_tmp):
    d = short_clip.parent
    sha_in = media.sha256_file(short_clip)
    r0 = blur_faces(short_clip, draw_heatmap=True, **FAST)
    assert os.path.basename(r0.video) == "clip_blurred.mp4"
    first = tree(d)
    r1 = blur_faces(short_clip, draw_heatmap=True, **FAST)
    r2 = blur_faces(short_clip, draw_heatmap=True, **FAST)
    for r, stem in ((r0, "clip_blurred"), (r1, "clip_blurred_1"), (r2, "clip_blurred_2")):
        assert r.video == str(d / f"{stem}.mp4")
        assert r.data == [str(d / f"{stem}.csv")]
        assert r.heatmap == str(d / f"{stem}_heatmap.png")
        assert r.summary_file == str(d / f"{stem}_summary.json")
        for n in _names(stem):
            assert (d / n).is_file(), n
    after = tree(d)
    assert {k: after[k] for k in first} == first          # the first run's files untouched
    assert set(after) == set(first) | set(_names("clip_blurred_1")) | \
        set(_names("clip_blurred_2"))
    assert media.sha256_file(short_clip) == sha_in
    assert leftovers(private_tmp) == []


def test_any_taken_companion_file_moves_the_whole_set(short_clip, private_tmp):
    """A leftover data file alone makes the run pick the next stem for all its outputs."""
    d = short_clip.parent
    (d / "clip_blurred.csv").write_text("someone else's data\n")
    r = blur_faces(short_clip, **FAST)
    assert r.video == str(d / "clip_blurred_1.mp4")
    assert r.data == [str(d / "clip_blurred_1.csv")]
    assert (d / "clip_blurred.csv").read_text() == "someone else's data\n"
    assert not (d / "clip_blurred.mp4").exists()


@pytest.mark.slow
def test_overwrite_replaces_outputs(short_clip, private_tmp):
    d = short_clip.parent
    for n in _names("clip_blurred"):
        (d / n).write_bytes(b"old")
    sha_in = media.sha256_file(short_clip)
    r = blur_faces(short_clip, overwrite=True, draw_heatmap=True, **FAST)
    assert r.video == str(d / "clip_blurred.mp4")
    for n in _names("clip_blurred"):
        assert (d / n).read_bytes() != b"old", n
    assert media.probe(r.video)["n_frames"] == r.frames > 0
    assert not any(n.startswith("clip_blurred_1") for n in os.listdir(d))
    assert media.sha256_file(short_clip) == sha_in
    # and through the CLI
    proc = cli("anonymize", short_clip, "--overwrite", *FAST_CLI, cwd=d, tmpdir=private_tmp)
    assert proc.returncode == 0, proc.stderr
    # without --heatmap this time: the replaced set's heatmap (named by its summary) goes too
    assert sorted(os.listdir(d)) == sorted(["clip.mp4"] + [
        n for n in _names("clip_blurred") if not n.endswith("_heatmap.png")])
    assert media.sha256_file(short_clip) == sha_in


def test_target_equal_to_input_without_overwrite_gets_a_new_name(short_clip, private_tmp):
    d = short_clip.parent
    sha_in = media.sha256_file(short_clip)
    r = blur_faces(short_clip, target_name=str(short_clip), **FAST)
    assert r.video == str(d / "clip_1.mp4")
    assert media.sha256_file(short_clip) == sha_in
