"""Where placed truth's far over-masking comes from: every far pixel of an output, attributed to
the row of its coordinate file whose mask box covers it.

  python -m bench.far INPUT TRUTH OUTPUT CSV [--top 12] [--json OUT]

INPUT and TRUTH come from the eval harness's placed_clip.py (or bench/placed.py), OUTPUT and CSV
from `blurfaces anonymize INPUT` (`<stem>_blurred.mp4` and `.csv`). A far pixel is
placed_score.py's: its grey level changed by more than 25 (score.py's CHANGED) and it lies
outside every placed face's box grown to twice its width and height. Each is given to the
first row of its frame (in the file's order) whose box, grown by the blur's 3 px fade, holds
it; the rest are "unboxed" (x264's noise). Rows are grouped by source (`lead`, `held`, ...), by
whether their track has one detection or more (`once` / `twice+`: detected or followed rows),
and by whether the box's centre lies within a placed face's box grown by its size on each side
(`face`) or not (`none`: a texture, or a real face the truth does not list). Prints the shares
(points of far over-masking, as placed_score.py reports it) and the tracks on no face that
changed the most.
"""
from __future__ import annotations

import argparse
import collections
import csv
import json

import av
import numpy as np

CHANGED = 25        # score.py's grey-level change (placed_score.py imports it from there)
FADE = 3            # px: the mask's edge fades in beyond its box (mask.py)


def _grey_frames(path: str):
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for f in c.decode(s):
            yield f.to_ndarray(format="gray")


def _rows(path: str):
    by_frame, detections = collections.defaultdict(list), collections.Counter()
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            box = tuple(int(float(r[k])) for k in ("x1", "y1", "x2", "y2"))
            row = (box, r.get("track") or "", r.get("source") or "")
            by_frame[int(r["frame"])].append(row)
            if row[2] in ("detected", "followed"):
                detections[row[1]] += 1
    return by_frame, detections


def attribute(input_path: str, truth: dict, output_path: str, csv_path: str) -> dict:
    """The far pixels of `output_path` against `input_path`, by group and by track."""
    per_frame = truth["per_frame"]
    rows, detections = _rows(csv_path)
    groups, tracks = collections.Counter(), collections.Counter()
    far = outside = unboxed = 0
    for k, (a, b) in enumerate(zip(_grey_frames(input_path), _grey_frames(output_path))):
        h, w = a.shape
        away = np.ones((h, w), bool)
        near = []
        for e in per_frame[k]:
            x1, y1, x2, y2 = e["box"]
            bw, bh = x2 - x1, y2 - y1
            away[int(max(y1 - bh / 2, 0)):int(np.ceil(y2 + bh / 2)),
                 int(max(x1 - bw / 2, 0)):int(np.ceil(x2 + bw / 2))] = False
            near.append((x1 - bw, y1 - bh, x2 + bw, y2 + bh))
        changed = (np.abs(a.astype(np.int16) - b.astype(np.int16)) > CHANGED) & away
        outside += int(away.sum())
        far += int(changed.sum())
        left = changed.copy()
        for (x1, y1, x2, y2), track, source in rows.get(k, ()):
            xa, ya = max(x1 - FADE, 0), max(y1 - FADE, 0)
            xb, yb = min(x2 + FADE, w), min(y2 + FADE, h)
            part = left[ya:yb, xa:xb]
            n = int(part.sum())
            part[:] = False
            if not n:
                continue
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            on_face = any(p[0] <= cx <= p[2] and p[1] <= cy <= p[3] for p in near)
            once = "once" if detections[track] <= 1 else "twice+"
            groups[(source, once, "face" if on_face else "none")] += n
            if not on_face:
                tracks[(track, source)] += n
        unboxed += int(left.sum())

    def points(n):
        return round(100.0 * n / outside, 3) if outside else None

    return {"far_pct": points(far), "unboxed_pct": points(unboxed),
            "groups": [{"source": s, "track_detections": o, "on": f, "far_points": points(n)}
                       for (s, o, f), n in groups.most_common()],
            "tracks_on_no_face": [{"track": t, "source": s, "far_points": points(n)}
                                  for (t, s), n in tracks.most_common()]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("truth")
    ap.add_argument("output")
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=12, help="tracks on no face listed")
    ap.add_argument("--json", help="write the whole attribution here")
    a = ap.parse_args(argv)
    with open(a.truth) as f:
        truth = json.load(f)
    res = attribute(a.input, truth, a.output, a.csv)
    print(f"far {res['far_pct']}% (unboxed {res['unboxed_pct']})")
    for g in res["groups"]:
        print(f"  {g['source']:>12} {g['track_detections']:>6} {g['on']:>4}  {g['far_points']}")
    print("tracks on no face:")
    for t in res["tracks_on_no_face"][:a.top]:
        print(f"  track {t['track']:>5} {t['source']:>12}  {t['far_points']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
