"""Throughput of `blurfaces anonymize` against the re-encode floor, in the same run.

  python -m bench.throughput [-n 3] [--input FILE | --size 1280x720 --fps 30 --seconds 10]
                             [--variants default,no-track,detect480,detect320,workers1,deface]
                             [--baseline own|harness] [--json OUT]

For each of n rounds and each variant: the baseline transcode (PyAV decode of every frame to
RGB + libx264 veryfast crf 23, audio copied), then the variant. Reports per variant the median
wall time, frames/s, median child CPU seconds, peak RSS, and tool/baseline (ratio of medians,
and the median of each run over the baseline run just before it, which is more robust to
drifting load). blurfaces runs also carry the stage breakdown from their summary JSON (plan,
workers, stitch; chunks, workers x threads).

Variants (blurfaces CLI flags added to `anonymize IN -o OUT -q --overwrite`):
  default    (none: --quality balanced)   no-reuse  --no-reuse
  fast       --quality fast           max        --quality max (not in the default list)
  no-track   --no-track
  detect480  --detect-size 480        detect320  --detect-size 320
  workers1   --workers 1              tiles      --tiles     (not in the default list)
  deface     deface 1.5.0 via the eval harness's run_anchor.sh (defaults + --keep-audio);
             skipped, with a note, when the harness is not set up.
Note: the default chunk rule makes chunks of at least 10 s, so a 10 s clip is one chunk and
`default` and `workers1` then do the same work (one worker with all CPUs as threads).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from bench import common

VARIANTS = {
    "default": [],
    "fast": ["--quality", "fast"],
    "max": ["--quality", "max"],
    "fp32": ["--precision", "fp32"],
    "no-reuse": ["--no-reuse"],          # every region run afresh (no still-camera reuse)
    "previous": ["--precision", "fp32", "--crf", "20"],     # the default before the speed work
    "fast-every2": ["--quality", "fast", "--detect-every", "2"],
    "no-track": ["--no-track"],
    "detect480": ["--detect-size", "480"],
    "detect320": ["--detect-size", "320"],
    "workers1": ["--workers", "1"],
    "tiles": ["--tiles"],
    "every2": ["--detect-every", "2"],
    "every2-480": ["--detect-every", "2", "--detect-size", "480"],
    "deface": None,
}
DEFAULT_VARIANTS = "default,fast,no-track,detect480,workers1,deface"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=3, help="rounds (runs of each variant; default 3)")
    common.add_clip_args(ap)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help=f"comma-separated, from {','.join(VARIANTS)} (default {DEFAULT_VARIANTS})")
    ap.add_argument("--baseline", choices=("own", "harness"), default="own",
                    help="baseline transcode: bench/common.py (own, default) or the harness's "
                         "transcode.py")
    ap.add_argument("--extra", default="", help="extra blurfaces flags for every blurfaces "
                                                 "variant, e.g. '--no-data'")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)

    names = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    notes = []
    src = common.clip_from_args(a)
    facts = common.video_facts(src)
    frames = facts["frames"]
    work = common.work_dir("throughput-")
    base_out = os.path.join(work, "baseline.mp4")
    outs = {}
    jobs = []
    for v in names:
        out = os.path.join(work, f"{v}.mp4")
        if v == "deface":
            cmd = common.deface_cmd(src, out)
            if cmd is None:
                notes.append("deface skipped: the eval harness (run_anchor.sh / deface-venv) is "
                             f"not set up at {common.EVAL_DIR} / {common.EVAL_CACHE}")
                common.log(notes[-1])
                continue
        else:
            cmd = common.blurfaces_cmd() + ["anonymize", str(src), "-o", out, "-q",
                                            "--overwrite"] + VARIANTS[v] + a.extra.split()
        outs[v] = out
        jobs.append((v, lambda i, c=cmd: c))

    def clean(name, i):
        path = base_out if name == "baseline" else outs[name]
        if os.path.exists(path):
            os.remove(path)

    load_before = os.getloadavg()
    machine = common.machine_info()
    common.log(f"input {src}: {frames} frames {facts['width']}x{facts['height']}, "
               f"{facts['duration_s']} s; variants {', '.join(n for n, _ in jobs)}; n={a.n}")
    try:
        runs = common.alternate(jobs, a.n, baseline=lambda i: common.baseline_cmd(
            src, base_out, a.baseline), before_each=clean)
        load_after = os.getloadavg()
        res = {"benchmark": "throughput", "input": facts, "n": a.n,
               "baseline": {"kind": a.baseline, "definition": "PyAV decode every frame to "
                            "rgb24 ndarray + libx264 veryfast crf 23, audio copied",
                            **common.summarize(runs["baseline"], frames)},
               "variants": {}, "machine": machine,
               "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in load_after],
               "harness": common.harness(), "notes": notes}
        for v, _ in jobs:
            s = common.summarize(runs[v], frames, runs["baseline"])
            s["flags"] = VARIANTS[v] if v != "deface" else "run_anchor.sh (deface 1.5.0)"
            out_facts = common.video_facts(outs[v]) if os.path.exists(outs[v]) else None
            s["output_frames"] = out_facts["frames"] if out_facts else None
            s["output_frames_match"] = bool(out_facts and out_facts["frames"] == frames)
            summ = os.path.splitext(outs[v])[0] + "_summary.json"
            if v != "deface" and os.path.exists(summ):
                with open(summ) as f:
                    sj = json.load(f)
                s["stages_last_run"] = sj.get("timings")
                s["chunks"] = sj.get("counts", {}).get("chunks")
                s["detections"] = sj.get("counts", {}).get("detections")
            s["runs"] = runs[v]
            res["variants"][v] = s
        res["baseline"]["runs"] = runs["baseline"]
        w = common.load_warning(load_before, load_after)
        if w:
            notes.append(w)
    finally:
        common.rmtree(work)

    common.write_json(a.json, res)
    b = res["baseline"]
    print(f"{frames} frames {facts['width']}x{facts['height']} | baseline "
          f"{b['median_wall_s']:.2f} s ({b['fps']:.1f} fps) | medians of {a.n}")
    print(f"{'variant':<11} {'wall s':>8} {'fps':>7} {'CPU s':>7} {'RSS MB':>7} "
          f"{'x base':>7} {'paired':>7} {'chunks':>6} frames")
    for v, s in res["variants"].items():
        print(f"{v:<11} {s['median_wall_s']:>8.2f} {s['fps']:>7.1f} {s['median_cpu_s']:>7.1f} "
              f"{s['median_peak_rss_mb'] or 0:>7.0f} {s['ratio_over_baseline']:>7.2f} "
              f"{s.get('ratio_over_baseline_paired_median') or 0:>7.2f} "
              f"{str(s.get('chunks', '-')):>6} "
              f"{'ok' if s['output_frames_match'] else s['output_frames']}")
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
