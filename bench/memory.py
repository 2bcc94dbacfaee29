"""Peak memory (RSS) of ONE chunk worker, to choose the worker Lambda's memory setting.

  python -m bench.memory [--seconds 60] [--size 1920x1080] [--fps 30]
                         [--chunk-seconds auto] [--threads 1,6] [-n 1]
                         [--input FILE] [--detect-size N] [--tiles] [--no-track] [--json OUT]

Makes (once) a synthetic clip of --seconds at --size (default 60 s of 1080p30, slow to make on
few cores: --seconds shrinks it), plans it with each chunk length of --chunk-seconds (auto =
a quarter, half and all of the clip: 15, 30, 60 s by default) and runs stages.worker on one
chunk (the second when there are several, so the lead margin is decoded too, as in most
chunks) in a FRESH subprocess per measurement, with each onnxruntime/x264 thread count of
--threads (the worker Lambda passes its vCPU count: 1 per 1769 MB, 6 at 10240 MB).

Measured per run: peak RSS of the worker process from os.wait4 (ru_maxrss), its VmHWM, RSS
after imports and model load (the floor), and an RSS time series polled from /proc. As the
baseline in the same run: the peak RSS of the baseline transcode (PyAV decode + libx264) of
the same clip, in its own subprocess; ratio = worker peak / transcode peak.

Reported: peak RSS per (chunk length, threads), MB of peak per extra minute of chunk (least
squares over the chunk lengths; about 0 when the worker streams, as it should), and the
largest peak with 25% headroom as a starting point for WorkerMemorySize. Not included: the
Lambda runtime's own overhead and the page cache / /tmp (ephemeral storage, separate from
memory); with an s3:// source the input is read through storage.open_read.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

from bench import common


def _status_mb(pid="self") -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = round(int(v.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def child(manifest_path: str, index: int, threads: int) -> int:
    """Runs in the fresh subprocess: load, report the floor, run one worker, report."""
    import resource
    from blurfaces import stages
    from blurfaces.options import Options
    from blurfaces.outputs import output_names
    with open(manifest_path) as f:
        manifest = json.load(f)
    opts = Options.from_dict(manifest["options"])
    info = manifest["info"]
    frame = (info["display_width"], info["display_height"])
    stages._detector(opts, threads, opts.tiles_for(*frame), frame)   # model loaded once
    floor = _status_mb()
    t = time.perf_counter()
    part = stages.worker(manifest, index, threads=threads)
    secs = time.perf_counter() - t
    end = _status_mb()
    print(json.dumps({"rss_after_init_mb": floor.get("VmRSS"), "vmhwm_mb": end.get("VmHWM"),
                      "rss_end_mb": end.get("VmRSS"),
                      "ru_maxrss_self_mb": round(
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "frames": part["frames"], "worker_s": round(secs, 3)}), flush=True)
    return 0


def measure(manifest_path, index, threads, interval) -> dict:
    cmd = [sys.executable, "-m", "bench.memory", "--child", manifest_path, str(index),
           str(threads)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr)
        series = []
        while True:         # os.wait4, not p.poll(): reaping must return the child's rusage
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            s = _status_mb(p.pid)
            if "VmRSS" in s:
                series.append((round(time.perf_counter() - t0, 2), s["VmRSS"]))
            time.sleep(interval)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read().decode(), ferr.read().decode(errors="replace")
    if p.returncode:
        sys.stderr.write(err[-3000:])
        raise SystemExit(f"worker subprocess failed ({p.returncode})")
    r = json.loads(out.strip().splitlines()[-1])
    r.update({"peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "wall_s": round(wall, 3),
              "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
              "polled_max_rss_mb": max((v for _, v in series), default=None)})
    step = max(1, len(series) // 200)                     # keep at most ~200 points
    r["rss_series_s_mb"] = series[::step]
    return r


def _fit(xs, ys):
    """Least-squares slope and intercept."""
    if len(set(xs)) < 2:
        return None, None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_clip_args(ap, "1920x1080", 60.0)
    ap.add_argument("--chunk-seconds", default="auto",
                    help="comma-separated chunk lengths, or auto = clip/4, clip/2, clip")
    ap.add_argument("--threads", default="1,6",
                    help="worker threads to try, comma-separated (default 1,6: Lambda's "
                         "1 and 6 vCPUs)")
    ap.add_argument("-n", type=int, default=1, help="repeats of each (peak = max; default 1)")
    ap.add_argument("--detect-size", type=int, default=None)
    ap.add_argument("--tiles", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                    help="the small-face tile pass, as the CLI's --tiles (default auto)")
    ap.add_argument("--no-track", action="store_true")
    ap.add_argument("--interval", type=float, default=0.05, help="/proc poll interval (s)")
    ap.add_argument("--baseline", choices=("own", "harness"), default="own")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)

    from blurfaces import stages
    from blurfaces.options import Options
    from blurfaces.outputs import output_names

    src = common.clip_from_args(a)
    facts = common.video_facts(src)
    dur = facts["duration_s"]
    if a.chunk_seconds == "auto":
        lengths = sorted({round(dur / 4, 3), round(dur / 2, 3), round(dur, 3)})
    else:
        lengths = sorted({float(x) for x in a.chunk_seconds.split(",") if x.strip()})
    threads = sorted({int(t) for t in a.threads.split(",") if t.strip()})
    kw = {}
    if a.detect_size:
        kw["detect_size"] = a.detect_size
    opts = Options(tiles=a.tiles, track=not a.no_track, **kw)
    work = common.work_dir("memory-")
    load_before = os.getloadavg()
    machine = common.machine_info()
    notes = []
    results = []
    try:
        base_out = os.path.join(work, "baseline.mp4")
        base = common.timed(common.baseline_cmd(src, base_out, a.baseline))
        common.log(f"baseline transcode: peak RSS {base['peak_rss_mb']:.0f} MB, "
                   f"{base['wall_s']:.1f} s")
        for L in lengths:
            wdir = os.path.join(work, f"L{L:g}")
            outputs = output_names(os.path.join(work, f"out-{L:g}.mp4"))
            m = stages.plan(str(src), outputs=outputs, options=opts, work=wdir,
                            chunk_seconds=L + 1e-6)
            idx = 1 if len(m["chunks"]) > 1 else 0
            c = m["chunks"][idx]
            mpath = os.path.join(wdir, stages.MANIFEST)
            for T in threads:
                reps = []
                for i in range(a.n):
                    common.log(f"chunk {idx} of {len(m['chunks'])} ({c['start_s']:.1f}-"
                               f"{c['stop_s']:.1f} s, {c['frames_expected']} frames), "
                               f"threads {T}, run {i + 1}/{a.n}")
                    r = measure(mpath, idx, T, a.interval)
                    common.log(f"  peak RSS {r['peak_rss_mb']:.0f} MB (after init "
                               f"{r['rss_after_init_mb']:.0f} MB), {r['frames']} frames in "
                               f"{r['worker_s']:.1f} s")
                    reps.append(r)
                peak = max(r["peak_rss_mb"] for r in reps)
                results.append({
                    "chunk_s": round(c["stop_s"] - c["start_s"], 3), "chunk_index": idx,
                    "chunks_in_plan": len(m["chunks"]), "frames": c["frames_expected"],
                    "threads": T, "peak_rss_mb": peak,
                    "median_peak_rss_mb": common.median(r["peak_rss_mb"] for r in reps),
                    "rss_after_init_mb": common.median(r["rss_after_init_mb"] for r in reps),
                    "growth_over_init_mb": round(peak - max(r["rss_after_init_mb"]
                                                            for r in reps), 1),
                    "ratio_over_baseline_transcode": round(peak / base["peak_rss_mb"], 2),
                    "median_worker_s": common.median(r["worker_s"] for r in reps),
                    "runs": reps})
        load_after = os.getloadavg()
    finally:
        common.rmtree(work)

    per_threads = {}
    for T in threads:
        rows = [r for r in results if r["threads"] == T]
        slope, icpt = _fit([r["chunk_s"] / 60 for r in rows], [r["peak_rss_mb"] for r in rows])
        per_threads[str(T)] = {
            "mb_per_chunk_minute": None if slope is None else round(slope, 1),
            "intercept_mb": None if icpt is None else round(icpt, 1),
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}
    pre, post = stages.margins(opts)
    if min(r["chunk_s"] for r in results) < 10:
        notes.append(f"chunks under 10 s: the frames held for tracking (about {post:.1f} s of "
                     "video) and the encoder's look-ahead are a large share of such a chunk, "
                     "so the MB-per-minute slope is not meaningful; use chunks of 15 s and up")
    top = max(r["peak_rss_mb"] for r in results)
    suggestion = int(math.ceil(top * 1.25 / 64) * 64)
    res = {"benchmark": "memory", "input": facts, "n": a.n,
           "options": opts.to_dict(), "chunk_lengths_s": lengths, "threads": threads,
           "baseline_transcode": base, "results": results, "fit_by_threads": per_threads,
           "max_peak_rss_mb": top, "peak_plus_25pct_mb": suggestion, "machine": machine,
           "loadavg_before": [round(x, 2) for x in load_before],
           "loadavg_after": [round(x, 2) for x in load_after], "notes": notes}
    common.write_json(a.json, res)

    print(f"{facts['width']}x{facts['height']}, {dur:.1f} s clip | baseline transcode peak "
          f"RSS {base['peak_rss_mb']:.0f} MB")
    print(f"{'chunk s':>8} {'frames':>6} {'thr':>4} {'init MB':>8} {'peak MB':>8} "
          f"{'growth':>7} {'x base':>7} {'worker s':>9}")
    for r in results:
        print(f"{r['chunk_s']:>8.1f} {r['frames']:>6} {r['threads']:>4} "
              f"{r['rss_after_init_mb']:>8.0f} {r['peak_rss_mb']:>8.0f} "
              f"{r['growth_over_init_mb']:>7.0f} {r['ratio_over_baseline_transcode']:>7.2f} "
              f"{r['median_worker_s']:>9.1f}")
    for T, f in per_threads.items():
        if f["mb_per_chunk_minute"] is not None:
            print(f"threads {T}: peak = {f['intercept_mb']:.0f} MB + "
                  f"{f['mb_per_chunk_minute']:.1f} MB per minute of chunk")
    print(f"largest peak {top:.0f} MB; with 25% headroom {suggestion} MB (plus the Lambda "
          "runtime's overhead; the vCPUs that come with a memory size set the threads)")
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
