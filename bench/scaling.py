"""Speed-up of `blurfaces anonymize` vs the number of local workers, on a longer input.

  python -m bench.scaling [-n 3] [--workers-list 1,2,4,8,16] [--seconds auto]
                          [--input FILE | --size 1280x720 --fps 30] [--chunk-seconds S]
                          [--no-baseline] [--json OUT]

For each of n rounds: the baseline transcode once (the re-encode floor, for tool/baseline),
then `blurfaces anonymize --workers W` for every W in the list (values above this machine's
CPUs are dropped; the CPU count itself is added if missing). The round order of W alternates
(ascending, then descending) so slow drift of the machine's load does not favour one end.

Chunking is the CLI's own rule (runner.local_chunks: one chunk per worker, none shorter than
10 s) unless --chunk-seconds is given, so W workers only help when the input has at least
W x 10 s: the default --seconds auto = max(60, 10 x largest W) (60 s on 2-6 CPUs, 160 s on
16). Each run's chunk count, pool size and threads per worker come from its summary JSON.

Reported per W: median wall s, speed-up = wall(W=1) / wall(W), parallel efficiency =
speed-up / W, tool/baseline, CPU seconds and the average number of busy cores (CPU s / wall
s). Every W uses all CPUs: the runner gives each of the W workers cpus // W onnxruntime/x264
threads, so W=1 is already multi-threaded and the efficiency compares process-level
parallelism with thread-level parallelism on the same cores (it is not a per-core figure).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from bench import common


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--workers-list", default="1,2,4,8,16",
                    help="worker counts, capped at the CPU count (default 1,2,4,8,16)")
    ap.add_argument("--input", help="video to use (default: the synthetic clip)")
    ap.add_argument("--size", default="1280x720", help="synthetic clip size (1280x720)")
    ap.add_argument("--fps", type=int, default=30, help="synthetic clip rate (30)")
    ap.add_argument("--seconds", default="auto",
                    help="synthetic clip length in s, or auto = max(60, 10 x largest W)")
    ap.add_argument("--chunk-seconds", type=float, default=None,
                    help="pass --chunk-seconds to blurfaces (default: its own rule)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline transcode")
    ap.add_argument("--baseline", choices=("own", "harness"), default="own")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)

    cpus = common.available_cpus()
    wanted = sorted({int(w) for w in a.workers_list.split(",") if w.strip()})
    ws = sorted({w for w in wanted if 1 <= w <= cpus} | {1, cpus})
    dropped = [w for w in wanted if w > cpus]
    notes = []
    if dropped:
        notes.append(f"worker counts {dropped} dropped: this machine has {cpus} CPUs")
    if a.input:
        seconds = None
    elif a.seconds == "auto":
        seconds = float(max(60, 10 * max(ws)))
    else:
        seconds = float(a.seconds)
    a.seconds = seconds
    src = common.clip_from_args(a)
    facts = common.video_facts(src)
    frames = facts["frames"]
    if a.chunk_seconds is None and facts["duration_s"] < 10 * max(ws):
        notes.append(f"input is {facts['duration_s']:.0f} s: the default chunk rule (>= 10 s "
                     f"per chunk) gives at most {max(1, int(facts['duration_s'] // 10))} "
                     f"chunks, fewer than {max(ws)} workers; use --seconds "
                     f"{10 * max(ws)} or --chunk-seconds")
        common.log(notes[-1])
    work = common.work_dir("scaling-")
    base_out = os.path.join(work, "baseline.mp4")
    outs = {w: os.path.join(work, f"w{w}.mp4") for w in ws}

    def cmd(w):
        c = common.blurfaces_cmd() + ["anonymize", str(src), "-o", outs[w], "-q", "--overwrite",
                                      "--workers", str(w)]
        if a.chunk_seconds:
            c += ["--chunk-seconds", str(a.chunk_seconds)]
        return c

    stages = {w: [] for w in ws}

    def clean(name, i):
        path = base_out if name == "baseline" else outs[int(name[1:])]
        for p in (path, os.path.splitext(path)[0] + "_summary.json"):
            if os.path.exists(p):
                os.remove(p)

    load_before = os.getloadavg()
    machine = common.machine_info()
    common.log(f"input {src}: {frames} frames, {facts['duration_s']} s; workers {ws}; n={a.n}")
    runs = {f"w{w}": [] for w in ws}
    runs["baseline"] = []
    try:
        for i in range(a.n):
            order = ws if i % 2 == 0 else list(reversed(ws))
            jobs = [(f"w{w}", lambda _i, w=w: cmd(w)) for w in order]
            r = common.alternate(jobs, 1, before_each=clean, baseline_per="round",
                                 baseline=None if a.no_baseline else
                                 (lambda _i: common.baseline_cmd(src, base_out, a.baseline)))
            for k, v in r.items():
                runs[k].extend(v)
            for w in order:
                summ = os.path.splitext(outs[w])[0] + "_summary.json"
                if os.path.exists(summ):
                    with open(summ) as f:
                        sj = json.load(f)
                    stages[w].append({"chunks": sj["counts"]["chunks"], **sj["timings"]})
        load_after = os.getloadavg()
        out_ok = {w: common.video_facts(outs[w])["frames"] == frames for w in ws
                  if os.path.exists(outs[w])}
    finally:
        common.rmtree(work)

    base = runs["baseline"] or None
    res = {"benchmark": "scaling", "input": facts, "n": a.n, "cpus": cpus,
           "chunk_seconds": a.chunk_seconds, "machine": machine,
           "loadavg_before": [round(x, 2) for x in load_before],
           "loadavg_after": [round(x, 2) for x in load_after], "notes": notes,
           "baseline": common.summarize(base, frames) if base else None, "workers": {}}
    if base:
        res["baseline"]["runs"] = base
    wall1 = common.median(r["wall_s"] for r in runs["w1"])
    for w in ws:
        s = common.summarize(runs[f"w{w}"], frames, base)
        s["speedup"] = round(wall1 / s["median_wall_s"], 3)
        s["efficiency"] = round(s["speedup"] / w, 3)
        s["median_cores_busy"] = common.median(r["cores_busy"] for r in runs[f"w{w}"])
        last = stages[w][-1] if stages[w] else {}
        s["chunks"] = last.get("chunks")
        s["pool_size"] = last.get("workers")
        s["threads_per_worker"] = last.get("threads_per_worker")
        s["output_frames_match"] = out_ok.get(w)
        s["stages"] = stages[w]
        s["runs"] = runs[f"w{w}"]
        res["workers"][str(w)] = s
    lw = common.load_warning(load_before, load_after)
    if lw:
        notes.append(lw)
    common.write_json(a.json, res)

    print(f"{frames} frames {facts['width']}x{facts['height']}, {facts['duration_s']:.1f} s, "
          f"{cpus} CPUs | medians of {a.n}" + (
              f" | baseline {res['baseline']['median_wall_s']:.2f} s" if base else ""))
    print(f"{'W':>3} {'chunks':>6} {'pool x thr':>10} {'wall s':>8} {'fps':>7} {'speedup':>8} "
          f"{'effic.':>7} {'busy':>5} {'x base':>7} frames")
    for w in ws:
        s = res["workers"][str(w)]
        print(f"{w:>3} {str(s['chunks']):>6} "
              f"{str(s['pool_size']) + 'x' + str(s['threads_per_worker']):>10} "
              f"{s['median_wall_s']:>8.2f} {s['fps']:>7.1f} {s['speedup']:>8.2f} "
              f"{s['efficiency']:>7.2f} {s['median_cores_busy'] or 0:>5.2f} "
              f"{s.get('ratio_over_baseline') or 0:>7.2f} "
              f"{'ok' if s['output_frames_match'] else 'MISMATCH'}")
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
