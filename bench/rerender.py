"""Cost of a re-render from a coordinate file (`anonymize --boxes FILE`) against a plain
re-encode of the same clip, in the same run.

  python -m bench.rerender [-n 3] [--input FILE | --size 1280x720 --fps 30 --seconds 10]
                           [--json OUT]

One untimed detection run writes the clip's coordinates (<stem>.csv); then, for n rounds, the
baseline transcode (bench/common.py: PyAV decode to RGB + libx264 veryfast crf 23, audio
copied), `blurfaces anonymize IN --boxes THAT.csv` and the same with `--review` (the review
page's cost: one more decode of the output at stitch) alternate. Reported: median wall and
CPU seconds of each and their ratio to the re-encode (target: --boxes <= 1.3x).
"""
from __future__ import annotations

import argparse
import os
import sys

from bench import common


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=3, help="rounds (default 3)")
    common.add_clip_args(ap)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)

    src = common.clip_from_args(a)
    facts = common.video_facts(src)
    work = common.work_dir("rerender-")
    try:
        detected = os.path.join(work, "detected.mp4")
        common.timed(common.blurfaces_cmd() + ["anonymize", str(src), "-o", detected, "-q"])
        boxes = os.path.splitext(detected)[0] + ".csv"
        base_out, out = os.path.join(work, "baseline.mp4"), os.path.join(work, "boxes.mp4")
        cmd = common.blurfaces_cmd() + ["anonymize", str(src), "-o", out, "-q", "--overwrite",
                                        "--boxes", boxes]
        machine, load_before = common.machine_info(), os.getloadavg()
        runs = common.alternate([("boxes", lambda i: cmd),
                                 ("boxes-review", lambda i: cmd + ["--review"])], a.n,
                                baseline=lambda i: common.baseline_cmd(src, base_out),
                                baseline_per="round")
        res = {"benchmark": "rerender", "input": facts, "n": a.n, "machine": machine,
               "baseline": common.summarize(runs["baseline"], facts["frames"]),
               "boxes": common.summarize(runs["boxes"], facts["frames"], runs["baseline"]),
               "boxes_review": common.summarize(runs["boxes-review"], facts["frames"],
                                                runs["baseline"]),
               "output_frames_match": common.video_facts(out)["frames"] == facts["frames"],
               "notes": [w for w in [common.load_warning(load_before, os.getloadavg())] if w]}
    finally:
        common.rmtree(work)
    common.write_json(a.json, res)
    b = res["baseline"]
    print(f"{facts['frames']} frames {facts['width']}x{facts['height']} | medians of {a.n} | "
          f"CPU: {machine.get('cpu_model')} | frames "
          f"{'ok' if res['output_frames_match'] else 'MISMATCH'}")
    print(f"baseline re-encode  {b['median_wall_s']:.2f} s wall, {b['median_cpu_s']:.1f} s CPU")
    for name, key in (("--boxes", "boxes"), ("--boxes --review", "boxes_review")):
        r = res[key]
        print(f"{name:<19} {r['median_wall_s']:.2f} s wall, {r['median_cpu_s']:.1f} s CPU | "
              f"x base {r['ratio_over_baseline']:.2f} wall, "
              f"{r['median_cpu_s'] / b['median_cpu_s']:.2f} CPU")
    for n in res["notes"]:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
