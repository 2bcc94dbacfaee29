"""Plan at archive scale: how long plan's frame index takes, and the docs/aws.md table.

  python -m bench.plan_scale [--hours 1,10] [--sizes 1280x720,1920x1080] [--json OUT]

1. Measured: for each length and frame size, a long MP4 (tests/media.long_still_clip: a
   still picture's GOP copied with shifted timestamps, cached under the bench cache) is
   indexed by `blurfaces.frameindex` (what plan does for MP4/MOV/MKV) from a local file:
   CPU seconds (one thread), bytes read (the moov box; the samples are never read). On S3,
   plan reads the same bytes through 8 MiB ranged GETs.
2. Derived, per length (1 min, 1 h, 10 h) and size: chunks (`aws.worker_chunk_seconds` at
   the default worker size and ChunkSeconds), wall clock at the default MaxConcurrency and
   US$ per video-hour (`cost.per_video_hour`), from the worker's measured CPU per megapixel
   (`aws.sizing.WORKER_CPU_S_PER_MPIXEL`, bench/lambda_sizing.py) and the measured speed-up
   of 2 threads over 1 (`SPEEDUP_2_THREADS`; other vCPU counts: linear, not measured),
   3 s start-up per chunk
   and 120 s of stitch per video-hour (assumed); and whether the default stack's limits
   (MaxVideoSeconds, stitch's /tmp) accept the video.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from bench import common
from tests import media


def measure_index(hours: float, size) -> dict:
    from blurfaces import frameindex
    path = common.BENCH_CACHE / "media" / f"still-{size[0]}x{size[1]}-{hours:g}h.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        media.long_still_clip(path, hours * 3600, size=size)
    opened = []

    def open_source():
        opened.append(media.CountingFile(path))
        return opened[-1]
    t0, w0 = time.process_time(), time.perf_counter()
    info = frameindex.index(open_source, str(path), os.path.getsize(path))
    return {"hours": hours, "size": f"{size[0]}x{size[1]}", "frames": info.n_packets,
            "file_mb": round(os.path.getsize(path) / 2**20, 1),
            "read_mb": round(sum(f.read_bytes for f in opened) / 2**20, 1),
            "cpu_s": round(time.process_time() - t0, 2),
            "wall_s": round(time.perf_counter() - w0, 2)}


#: Frames per second of a worker with 2 threads over 1 thread's frames per CPU-second,
#: measured with bench/lambda_sizing.py --threads 1,2 on 2 idle cores (2026-12-05): the
#: worker's threads do not scale linearly.
SPEEDUP_2_THREADS = {(1280, 720): 1.74, (1920, 1080): 1.61}


def derived_table(plan_cpu_s_per_hour: dict) -> list[dict]:
    from blurfaces import cost, stages
    from blurfaces.aws import Settings, sizing
    from blurfaces.options import Options
    s = Settings()      # its defaults are the template's (tests/test_plan_sizing.py)
    conc = int(common.template_default("MaxConcurrency"))
    rows = []
    for (w, h) in ((1280, 720), (1920, 1080)):
        # the worker plan chooses for an hour of these frames (the one-vCPU one for both)
        memory = sizing.choose_worker({"chunk_seconds": common.template_default("ChunkSeconds")},
                                      {"w": w, "h": h, "fps": 30.0, "seconds": 3600.0},
                                      s).memory_mb
        cap = common.plan_chunk_seconds(w, h, 30, memory)
        speedup = {1: 1.0, 2: SPEEDUP_2_THREADS[(w, h)]}.get(cost.vcpus(memory),
                                                             cost.vcpus(memory))
        fps = speedup / (sizing.WORKER_CPU_S_PER_MPIXEL * w * h / 1e6)
        for seconds, label in ((60, "1 min"), (3600, "1 h"), (36000, "10 h")):
            chunks = math.ceil(seconds / cap)
            est = cost.per_video_hour(fps_processed=fps, worker_memory_mb=memory,
                                      chunk_seconds=cap, max_concurrency=conc,
                                      margin_seconds=sum(stages.margins(Options(),
                                                                        frame=(w, h))))
            chunk_s = est["chunk_s"]
            share = min(1.0, sizing.PLAN_MEMORY_MB / cost.MB_PER_VCPU)   # of one vCPU
            plan_s = plan_cpu_s_per_hour.get(f"{w}x{h}", 0.5) * seconds / 3600 / share + 1
            stitch_s = 120.0 * seconds / 3600
            wall = plan_s + math.ceil(chunks / conc) * chunk_s + stitch_s
            output_mb = seconds * 30 * w * h * sizing.OUTPUT_BITS_PER_PIXEL / 8 / 2**20
            refused = []
            if seconds > s.max_video_seconds:
                refused.append("MaxVideoSeconds")
            if output_mb + 256 > s.stitch_tmp_mb:
                refused.append("stitch /tmp")
            if stitch_s > 840:
                refused.append("stitch timeout")
            rows.append({"length": label, "size": f"{w}x{h}", "chunk_s_of_video": round(cap, 1),
                         "chunks": chunks, "plan_s": round(plan_s, 1),
                         "worker_s_per_chunk": chunk_s, "wall_s": round(wall),
                         "usd_per_video_hour": est["usd"], "refused_by": refused})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", default="1,10")
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    measured = [measure_index(float(hr), common.parse_size(sz))
                for sz in a.sizes.split(",") for hr in a.hours.split(",")]
    per_hour = {}
    for m in measured:
        per_hour[m["size"]] = max(per_hour.get(m["size"], 0), m["cpu_s"] / m["hours"])
    out = {"machine": common.machine_info(), "measured_index": measured,
           "derived": derived_table(per_hour)}
    json.dump(out, sys.stdout, indent=1)
    print()
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
