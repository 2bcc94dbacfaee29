"""Worker Lambda sizing and cost from measurement: one whole worker chunk, as plan cuts it.

  python -m bench.lambda_sizing [--sizes 1280x720,1920x1080 | --input FILE]
                                [--threads 1,2] [--chunk-seconds S] [-n 1] [--json OUT]

Lambda gives 1 vCPU per 1,769 MB: threads 1, 2, 3, 6 at 1769, 3538, 5307 and 10240 MB (the
worker passes its vCPU count to onnxruntime, the decoder and x264). For each frame size and
thread count, the chunk length is the one plan cuts for a worker of that memory
(`aws.worker_chunk_seconds`, at most the template's `ChunkSeconds`: 1080p gets about 29.7 s at
1769 MB, all 40 s at 3538 MB), unless --chunk-seconds says otherwise. A clip of three
such chunks (the synthetic clip, bench/common.synthetic_clip: faces under a pan/zoom; or
--input, e.g. a long `bench.hardclips` crowd, cut into chunks of at most that length) is
planned and its middle chunk, with both of its margins (stages.margins: the lead-in before it,
the look-ahead after it, as nearly every chunk of a long video has), runs in a FRESH subprocess
(bench/memory.measure: wall, CPU, peak RSS). Thread counts above this machine's CPUs are not
measured and not derived.

Reported per (size, threads): the chunk, frames/s (wall), frames per CPU-second, cores used,
peak RSS, and from that very measurement:
  * billed seconds of the chunk: its process's CPU seconds at 1 vCPU (the decoder's and
    x264's threads share the one vCPU), its wall seconds at more (this machine idle enough:
    the load average before and after is reported); imports and model load included;
  * US$ and wall clock per video-hour (blurfaces.cost.per_video_hour): that many billed
    seconds per chunk of that length, 3 s more each for a cold start (assumed: the image's
    start on Lambda; imports and model load are in the measured seconds already), no margin
    added (the measured chunk decoded and detected its own);
  * the longest chunk whose worst case (this speed / `--slowdown`) ends inside
    `aws.sizing.WORKER_BUDGET_S` (720 s of the 900 s timeout), and the memory needed (peak
    + 25% + 150 MB for the Lambda runtime).
Speed is a measurement of this machine, not of Lambda: docs/aws.md says so.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from bench import common, memory

LAMBDA_MB = {1: 1769, 2: 3538, 3: 5307, 6: 10240}
COLD_START_S = 3.0


def derive(run: dict, fps: float, slowdown: float, margins_s: float) -> dict:
    """US$ per video-hour, the longest safe chunk and the memory need of one measured run."""
    from blurfaces import cost
    from blurfaces.aws import sizing
    t, mb = run["threads"], run["lambda_mb"]
    billed = run["cpu_s"] if t == 1 else run["wall_s"]
    own_fps = run["frames"] / billed
    decoded = run["frames"] + margins_s * fps        # own frames plus both margins
    worst_frame_s = billed / decoded * slowdown
    est = {arch: cost.per_video_hour(fps_processed=own_fps, worker_memory_mb=mb,
                                     video_fps=fps, chunk_seconds=run["chunk_s"],
                                     margin_seconds=0.0, startup_seconds=COLD_START_S,
                                     arch=arch)
           for arch in ("x86_64", "arm64")}
    need_mb = run["peak_rss_mb"] * 1.25 + 150
    return {"size": run["size"], "threads": t, "lambda_mb": mb,
            "chunk_s": run["chunk_s"], "billed_s_per_chunk": round(billed, 2),
            "billed_as": "CPU seconds (1 vCPU)" if t == 1 else "wall seconds",
            "max_chunk_s_worst_case": round(sizing.WORKER_BUDGET_S / worst_frame_s / fps
                                            - margins_s, 1),
            "memory_needed_mb": round(need_mb), "memory_fits": need_mb <= mb,
            "per_video_hour": est["x86_64"],
            "per_video_hour_arm64_usd": est["arm64"]["usd"],
            "arm64_basis": "this machine's speed at arm64 prices: not measured on Graviton"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1280x720,1920x1080",
                    help="synthetic clip sizes (ignored with --input)")
    ap.add_argument("--input", help="measure this video instead of the synthetic clips; it "
                                    "must hold three chunks")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--chunk-seconds", type=float, default=None,
                    help="chunk length (default: what plan cuts for each worker size)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("-n", type=int, default=1, help="repeats (median time, max peak)")
    ap.add_argument("--slowdown", type=float, default=3.0,
                    help="worst case = measured throughput / this (default 3)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)

    from blurfaces import stages
    from blurfaces.options import Options
    from blurfaces.outputs import output_names

    cpus = common.available_cpus()
    wanted = sorted({int(t) for t in a.threads.split(",") if t.strip()})
    measured_threads = [t for t in wanted if t <= cpus and t in LAMBDA_MB]
    not_measured = [t for t in wanted if t not in measured_threads]
    pre, post = stages.margins(Options())
    if a.input:
        facts = common.video_facts(a.input)
        clips = [((facts["width"], facts["height"]), a.input)]
        rate = facts["frames"] / facts["duration_s"]
    else:
        clips = [(common.parse_size(s), None) for s in a.sizes.split(",") if s.strip()]
        rate = a.fps
    work = common.work_dir("lambda-sizing-")
    rows, derived = [], []
    machine = common.machine_info()
    try:
        for (w, h), given in clips:
            for t in measured_threads:
                L = a.chunk_seconds or common.plan_chunk_seconds(w, h, rate, LAMBDA_MB[t])
                # plan cuts a clip into equal chunks: three of about L (the middle one measured)
                src = given or common.synthetic_clip(size=(w, h), fps=a.fps,
                                                     seconds=math.floor(3 * L))
                wdir = os.path.join(work, f"{w}x{h}-{t}")
                m = stages.plan(str(src), outputs=output_names(os.path.join(wdir, "o.mp4")),
                                options=Options(), work=wdir, chunk_seconds=L)
                if len(m["chunks"]) < 3:
                    raise SystemExit(f"{src}: {len(m['chunks'])} chunks of {L:g} s; the "
                                     "middle one of three is measured: give a longer clip")
                c = m["chunks"][1]
                load0 = os.getloadavg()[0]
                runs = [memory.measure(os.path.join(wdir, stages.MANIFEST), 1, t, 0.05)
                        for _ in range(a.n)]
                mid = sorted(runs, key=lambda r: r["cpu_s"])[len(runs) // 2]
                row = {"size": f"{w}x{h}", "input": str(src), "threads": t,
                       "lambda_mb": LAMBDA_MB[t],
                       "chunk_s": round(c["stop_s"] - c["start_s"], 3),
                       "margins_s": [round(pre, 2), round(post, 2)],
                       "frames": mid["frames"], "cpu_s": mid["cpu_s"],
                       "wall_s": mid["wall_s"], "worker_s": mid["worker_s"],
                       "fps": round(mid["frames"] / mid["worker_s"], 2),
                       "fps_per_cpu_s": round(mid["frames"] / mid["cpu_s"], 2),
                       "cores_used": round(mid["cpu_s"] / mid["wall_s"], 2),
                       "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                       "runs": [{k: r[k] for k in ("cpu_s", "wall_s", "worker_s")}
                                for r in runs]}
                rows.append(row)
                d = derive(row, row["frames"] / row["chunk_s"], a.slowdown, pre + post)
                derived.append(d)
                common.log(f"{w}x{h} threads={t} ({row['lambda_mb']} MB): chunk "
                           f"{row['chunk_s']:g} s, {row['frames']} frames, {row['cpu_s']:.1f} "
                           f"CPU s, {row['wall_s']:.1f} s wall, load {row['load_avg_1m']}, "
                           f"peak {row['peak_rss_mb']:.0f} MB -> US$"
                           f"{d['per_video_hour']['usd']:.3f} per video-hour (arm64 prices "
                           f"{d['per_video_hour_arm64_usd']:.3f})")
    finally:
        common.rmtree(work)
    out = {"machine": machine, "cpus": cpus, "measured_threads": measured_threads,
           "not_measured_threads": not_measured, "slowdown": a.slowdown,
           "runs": rows, "derived": derived}
    print(json.dumps(out, indent=2, default=str))
    if a.json:
        common.write_json(a.json, out)
    if not_measured:
        common.log(f"NOT measured (this machine has {cpus} CPUs): threads {not_measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
