"""Worker Lambda sizing from measurement: one worker chunk at the thread counts Lambda gives.

  python -m bench.lambda_sizing [--sizes 1280x720,1920x1080] [--seconds 6] [--chunk-seconds 3]
                                [--threads 1,2,3,6] [-n 1] [--json OUT]

Lambda gives 1 vCPU per 1,769 MB: threads 1, 2, 3, 6 at 1769, 3538, 5307 and 10240 MB (the
worker passes its vCPU count to onnxruntime, the decoder and x264). For each frame size, a
synthetic clip (bench/common.synthetic_clip: faces under a pan/zoom) is planned into chunks
and chunk 1 (it has a lead margin, like most chunks) runs in a FRESH subprocess per thread
count (bench/memory.measure: wall, CPU, peak RSS). Thread counts above this machine's CPUs
are NOT measured: they are listed as "not measured" and left out of the derived figures.

Reported per (size, threads): frames/s (wall), frames per CPU-second (what one dedicated
vCPU would give: on a shared machine the wall figure includes waiting for a core; the load
average before and after is reported), frames/s per vCPU, peak RSS; and derived, from the
1-thread frames per CPU-second (threads > 1 only where measured on an idle enough machine):
  * the longest chunk whose worst case ends inside half the 900 s timeout at that size
    (worst case: this throughput / `--slowdown`, for busier scenes, more faces, tiles);
  * memory: the measured peak + 25% + 150 MB (the Lambda runtime), vs the vCPU step;
  * US$ and wall clock per video-hour (blurfaces.cost.per_video_hour) at 30 fps.
Speed is a measurement of this machine, not of Lambda: the table in docs/aws.md says so.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from bench import common, memory

LAMBDA_MB = {1: 1769, 2: 3538, 3: 5307, 6: 10240}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=6.0, help="clip length (6)")
    ap.add_argument("--chunk-seconds", type=float, default=3.0, help="chunk length (3)")
    ap.add_argument("--threads", default="1,2,3,6")
    ap.add_argument("-n", type=int, default=1, help="repeats (median fps, max peak)")
    ap.add_argument("--slowdown", type=float, default=3.0,
                    help="worst case = measured throughput / this (default 3)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)

    from blurfaces import cost, stages
    from blurfaces.options import Options
    from blurfaces.outputs import output_names

    cpus = common.available_cpus()
    wanted = sorted({int(t) for t in a.threads.split(",") if t.strip()})
    measured_threads = [t for t in wanted if t <= cpus]
    not_measured = [t for t in wanted if t > cpus]
    work = common.work_dir("lambda-sizing-")
    rows, derived = [], []
    machine = common.machine_info()
    try:
        for size in a.sizes.split(","):
            w, h = common.parse_size(size)
            src = common.synthetic_clip(size=(w, h), fps=a.fps, seconds=a.seconds)
            wdir = os.path.join(work, size)
            m = stages.plan(str(src), outputs=output_names(os.path.join(work, f"{size}.mp4")),
                            options=Options(), work=wdir, chunk_seconds=a.chunk_seconds)
            mpath = os.path.join(wdir, stages.MANIFEST)
            index = 1 if len(m["chunks"]) > 1 else 0
            for t in measured_threads:
                load0 = os.getloadavg()[0]
                runs = [memory.measure(mpath, index, t, 0.05) for _ in range(a.n)]
                fps = sorted(r["frames"] / r["worker_s"] for r in runs)[len(runs) // 2]
                fps_cpu = sorted(r["frames"] / r["cpu_s"] for r in runs)[len(runs) // 2]
                peak = max(r["peak_rss_mb"] for r in runs)
                row = {"size": size, "threads": t, "lambda_mb": LAMBDA_MB.get(t),
                       "frames": runs[0]["frames"], "worker_s": [r["worker_s"] for r in runs],
                       "cpu_s": [r["cpu_s"] for r in runs], "fps": round(fps, 2),
                       "fps_per_vcpu": round(fps / t, 2), "fps_per_cpu_s": round(fps_cpu, 2),
                       "cores_used": round(sum(r["cpu_s"] for r in runs)
                                           / sum(r["worker_s"] for r in runs), 2),
                       "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                       "peak_rss_mb": peak}
                rows.append(row)
                common.log(f"{size} threads={t}: {fps:.1f} fps wall ({fps / t:.1f}/vCPU), "
                           f"{fps_cpu:.1f} frames per CPU-s, {row['cores_used']} cores used, "
                           f"load {row['load_avg_1m']}, peak {peak:.0f} MB")
            one = [r for r in rows if r["size"] == size and r["threads"] == 1]
            if not one:
                continue
            per_vcpu = one[0]["fps_per_cpu_s"]
            peak = max(r["peak_rss_mb"] for r in rows if r["size"] == size)
            for t, mb in LAMBDA_MB.items():
                # 1 vCPU: measured (frames per CPU-second). More: linear scaling, an upper
                # bound (threads do not scale perfectly), marked as not measured.
                fps = per_vcpu * t
                worst_fps = fps / a.slowdown
                max_chunk_s = 450.0 * worst_fps / a.fps - 2.35     # margins decoded too
                need_mb = peak * 1.25 + 150
                est = cost.per_video_hour(fps_processed=fps, worker_memory_mb=mb,
                                          video_fps=a.fps, chunk_seconds=20)
                est_arm = cost.per_video_hour(fps_processed=fps, worker_memory_mb=mb,
                                              video_fps=a.fps, chunk_seconds=20, arch="arm64")
                derived.append({"size": size, "threads": t, "lambda_mb": mb,
                                "basis": "measured (1 thread, frames per CPU-second)"
                                if t == 1 else "1-thread figure x threads: NOT measured, "
                                               "upper bound of speed",
                                "fps_assumed": round(fps, 2),
                                "max_chunk_s_worst_case": round(max_chunk_s, 1),
                                "memory_needed_mb": round(need_mb),
                                "memory_fits": need_mb <= mb,
                                "per_video_hour": est,
                                "per_video_hour_arm64_usd": est_arm["usd"]})
    finally:
        common.rmtree(work)
    out = {"machine": machine, "cpus": cpus, "measured_threads": measured_threads,
           "not_measured_threads": not_measured, "clip_seconds": a.seconds,
           "chunk_seconds": a.chunk_seconds, "slowdown": a.slowdown, "runs": rows,
           "derived": derived}
    print(json.dumps(out, indent=2, default=str))
    if a.json:
        common.write_json(a.json, out)
    if not_measured:
        common.log(f"NOT measured (this machine has {cpus} CPUs): threads {not_measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
