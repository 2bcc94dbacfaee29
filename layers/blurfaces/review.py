"""The review page: `<stem>_review.html`, one self-contained file to check a run before its
video goes out (no network: the frames and the heatmap are inline data URIs, no scripts or
styles from elsewhere).

It shows
- the timeline: one row per track over the video's time, its boxes coloured by source
  (detected, shaded by score; followed; interpolated; held; lead; by hand) and a row for untracked
  boxes (`--always-mask` regions, `--no-track`); clicking a track or a moment shows a frame;
- the moments to check, ranked (`moments`): near-misses (the detector doubted and nothing
  was masked: a box it scored under its threshold but above `still.DOUBT` x it, of which no
  mask covers half; consecutive frames at one place are one moment, ranked by the score's
  share of the threshold), tracks that start or end away from the frame edge (a face found
  late or lost), long gaps the tracker filled, frames where the face count drops, short
  isolated tracks (possible false positives);
- frames of the anonymized *output* (decoded from the staged video, so the page shows nothing
  the published video does not) at those moments, at each track's first frame and at even
  steps through the video, with each mask's outline and track id, and the near-misses left
  unmasked outlined in their own colour;
- the heatmap and the summary's counts.

`write` is called by stitch with the staged outputs and the workers' near-misses (which
reach no data file: those list what was masked); the page is published with them.
"""
from __future__ import annotations

import base64
import html
import json
import math

import cv2
import numpy as np
import pandas as pd

from .video import upright

MAX_MOMENTS = 12
STRIP_FRAMES = 40           # frames at even steps, for clicks anywhere on the timeline
MAX_TRACK_FRAMES = 40       # first frames of the longest tracks
THUMB_WIDTH = 480
EDGE = 0.02                 # a box within 2% of the picture's side touches the edge
SHORT_TRACK_S = 0.4
LONG_GAP_S = 0.3
NEAR_MISS = "near-miss"
MAX_NEAR_MOMENTS = MAX_MOMENTS // 2     # kept for near-misses; the rest for the others
NEAR_COVERED = 0.5          # a near-miss with this share of its box under a mask was masked
NEAR_GAP_S = 0.5            # near-misses this close in time at one place are one moment
                            # (the fine pass sees a region once per cycle, not every frame)
# outline colours (RGB) by source; near-misses are no source of masks, only outlines here
COLOURS = {"detected": (40, 200, 90), "followed": (150, 230, 60), "interpolated": (255, 160, 0),
           "held": (180, 90, 255), "lead": (40, 140, 255), "keyframe": (255, 255, 255),
           "region": (255, 60, 60), NEAR_MISS: (255, 0, 255)}
NEAR_COLUMNS = ("frame", "x1", "y1", "x2", "y2", "score", "threshold")


def _touches_edge(box, width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    mx, my = EDGE * width, EDGE * height
    return x1 <= mx or y1 <= my or x2 >= width - mx or y2 >= height - my


def _as_near(near) -> np.ndarray:
    """Near-miss rows (NEAR_COLUMNS) as a float (K, 7) array."""
    return np.asarray(near if near is not None and len(near) else np.zeros((0, 7)),
                      np.float64).reshape(-1, len(NEAR_COLUMNS))


def unmasked_near_misses(df: pd.DataFrame, near) -> np.ndarray:
    """The rows of `near` (NEAR_COLUMNS) that the masks of their frame in `df` leave open:
    less than NEAR_COVERED of the box under any one mask."""
    near = _as_near(near)
    if not len(near) or not len(df):
        return near
    by_frame = {int(f): rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
                for f, rows in df[df["frame"].isin(near[:, 0])].groupby("frame")}
    keep = np.ones(len(near), bool)
    for i, (f, x1, y1, x2, y2) in enumerate(near[:, :5]):
        masks = by_frame.get(int(f))
        if masks is None:
            continue
        iw = np.clip(np.minimum(masks[:, 2], x2) - np.maximum(masks[:, 0], x1), 0, None)
        ih = np.clip(np.minimum(masks[:, 3], y2) - np.maximum(masks[:, 1], y1), 0, None)
        area = max(1.0, (x2 - x1) * (y2 - y1))
        keep[i] = (iw * ih / area).max() < NEAR_COVERED
    return near[keep]


def _near_moments(df: pd.DataFrame, near, fps: float) -> list[dict]:
    """Unmasked near-misses grouped by place: one at frame f joins the group whose last one
    is at most NEAR_GAP_S earlier with its centre inside that box grown by half its size.
    Each group is one moment at its best-scoring frame, weighted by that score's share of
    its threshold (1.5 to 2)."""
    near = unmasked_near_misses(df, near)
    near = near[np.lexsort((-near[:, 5] / np.maximum(near[:, 6], 1e-9), near[:, 0]))]
    groups: list[dict] = []
    live: list[dict] = []           # the groups a near-miss at this frame may still join
    gap = max(1, round(NEAR_GAP_S * fps))
    for f, x1, y1, x2, y2, sc, thr in near:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        live = [g for g in live if f - g["last"] <= gap]
        for g in reversed(live):
            bx1, by1, bx2, by2 = g["box"]
            mx, my = (bx2 - bx1) / 2, (by2 - by1) / 2
            if bx1 - mx <= cx <= bx2 + mx and by1 - my <= cy <= by2 + my and f != g["last"]:
                break
        else:
            g = {"first": f, "best": -1.0, "n": 0}
            groups.append(g)
            live.append(g)
        g["last"], g["box"], g["n"] = f, (x1, y1, x2, y2), g["n"] + 1
        if sc / thr > g["best"]:
            g.update(best=sc / thr, frame=int(f), score=float(sc), threshold=float(thr),
                     best_box=[int(x1), int(y1), int(x2), int(y2)])
    out = []
    for g in groups:
        f0, f1 = int(g["first"]), int(g["last"])
        when = f"frame {f0}" if f0 == f1 else f"frames {f0}-{f1}, on {g['n']} of them"
        out.append({"frame": g["frame"], "kind": NEAR_MISS, "weight": 1.0 + float(g["best"]),
                    "box": g["best_box"], "frames": [f0, f1], "score": round(g["score"], 4),
                    "threshold": round(g["threshold"], 4),
                    "text": f"the detector doubted here and nothing was masked ({when}; best "
                            f"score {math.floor(g['score'] * 1000) / 1000:.3f}, under its "
                            f"threshold {g['threshold']:.3g}): is it a face?"})
    return out


def moments(df: pd.DataFrame, frames: int, fps: float, width: int, height: int,
            near=None) -> list[dict]:
    """The moments to check, most important first: {frame, kind, text, weight} (a
    near-miss also has its best `box`, `frames` first and last, `score`, `threshold`).
    `near`: the detector's near-misses (NEAR_COLUMNS rows)."""
    out = []
    tracked = df[df["track"] >= 0]
    for tr, rows in tracked.groupby("track", sort=True):
        rows = rows.sort_values("frame")
        f0, f1 = int(rows["frame"].iloc[0]), int(rows["frame"].iloc[-1])
        first = rows[["x1", "y1", "x2", "y2"]].iloc[0].to_numpy()
        last = rows[["x1", "y1", "x2", "y2"]].iloc[-1].to_numpy()
        span_s = (f1 - f0 + 1) / fps
        if span_s < SHORT_TRACK_S and 0 < f0 and f1 < frames - 1:
            out.append({"frame": f0, "kind": "short track", "weight": 2.0 - span_s,
                        "text": f"track {tr} lasts {span_s:.2f} s: a face, or a false "
                                "positive?"})
        if f0 > 0 and not _touches_edge(first, width, height):
            out.append({"frame": f0, "kind": "starts mid-picture", "weight": 1.5,
                        "text": f"track {tr} starts away from the frame edge: was the face "
                                "visible (and unmasked) before?"})
        if f1 < frames - 1 and not _touches_edge(last, width, height):
            out.append({"frame": f1, "kind": "ends mid-picture", "weight": 1.5,
                        "text": f"track {tr} ends away from the frame edge: is the face "
                                "still there, unmasked?"})
        filled = rows["source"].isin(["interpolated", "held"]).to_numpy()
        fr = rows["frame"].to_numpy()
        i = 0
        while i < len(filled):
            if filled[i]:
                j = i
                while j + 1 < len(filled) and filled[j + 1] and fr[j + 1] == fr[j] + 1:
                    j += 1
                gap_s = (fr[j] - fr[i] + 1) / fps
                if gap_s >= LONG_GAP_S:
                    out.append({"frame": int(fr[(i + j) // 2]), "kind": "long filled gap",
                                "weight": 1.0 + gap_s,
                                "text": f"track {tr}: {gap_s:.2f} s without a detection, "
                                        "filled by the tracker: does the mask follow the "
                                        "face?"})
                i = j + 1
            else:
                i += 1
    counts = np.bincount(df["frame"].to_numpy(np.int64), minlength=frames)[:frames] \
        if len(df) else np.zeros(frames, np.int64)
    for f in np.flatnonzero(np.diff(counts) < 0) + 1:
        drop = int(counts[f - 1] - counts[f])
        out.append({"frame": int(f), "kind": "face count drops", "weight": 1.0 + 0.25 * drop,
                    "text": f"{counts[f - 1]} masked faces, then {counts[f]}: did one leave "
                            "the picture or slip through?"})
    order = lambda m: (-m["weight"], m["frame"])        # noqa: E731
    # Near-misses (grouped by place already: two at one time are two places) keep up to
    # MAX_NEAR_MOMENTS of the places, whatever the others weigh: they are the moments where
    # a face may show unmasked.
    nears = sorted(_near_moments(df, near, fps), key=order)[:MAX_NEAR_MOMENTS]
    ranked, seen = [], []
    for m in sorted(out, key=order):        # one moment per place in the video
        if len(ranked) == MAX_MOMENTS - len(nears):
            break
        if all(abs(m["frame"] - f) > fps * 0.25 for f in seen):
            ranked.append(m)
            seen.append(m["frame"])
    return sorted(ranked + nears, key=order)


def _segments(rows: pd.DataFrame) -> list[list]:
    """Runs of consecutive frames with one source: [first, last, source, mean score]."""
    segs = []
    for f, src, sc in zip(rows["frame"], rows["source"], rows["score"]):
        f = int(f)
        if segs and segs[-1][2] == src and segs[-1][1] == f - 1:
            segs[-1][1] = f
            segs[-1][4].append(sc)
        else:
            segs.append([f, f, src, None, [sc]])
    for s in segs:
        scores = [x for x in s.pop() if x == x]
        s[3] = round(float(np.mean(scores)), 3) if scores else None
    return segs


def _thumb(rgb: np.ndarray, rows: pd.DataFrame, near: np.ndarray | None = None) -> str:
    h, w = rgb.shape[:2]
    k = THUMB_WIDTH / w if w > THUMB_WIDTH else 1.0
    img = cv2.resize(rgb, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA) \
        if k != 1.0 else rgb.copy()
    for x1, y1, x2, y2 in (near if near is not None else ()):
        p1 = (int(x1 * k), int(y1 * k))
        p2 = (max(p1[0], int(x2 * k) - 1), max(p1[1], int(y2 * k) - 1))
        cv2.rectangle(img, p1, p2, COLOURS[NEAR_MISS], 1)
        cv2.putText(img, "?", (p1[0] + 2, max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, COLOURS[NEAR_MISS], 1, cv2.LINE_AA)
    for x1, y1, x2, y2, tr, src in zip(rows["x1"], rows["y1"], rows["x2"], rows["y2"],
                                       rows["track"], rows["source"]):
        p1 = (int(x1 * k), int(y1 * k))
        p2 = (max(p1[0], int(x2 * k) - 1), max(p1[1], int(y2 * k) - 1))
        colour = COLOURS.get(src, (255, 255, 255))
        cv2.rectangle(img, p1, p2, colour, 2)
        if tr >= 0:
            label = str(int(tr))
            cv2.putText(img, label, (p1[0] + 2, max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, label, (p1[0] + 2, max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, colour, 1, cv2.LINE_AA)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 75])
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode()


def _frames(video: str, wanted: set, df: pd.DataFrame, near: np.ndarray | None = None) -> dict:
    """Thumbnails (data URIs, outlines drawn) of the output video's frames `wanted`; the
    unmasked near-misses `near` (NEAR_COLUMNS) outlined too."""
    import av
    by_frame = {f: rows for f, rows in df[df["frame"].isin(wanted)].groupby("frame")}
    near = _as_near(near)
    near_at = {int(f): near[near[:, 0] == f, 1:5] for f in np.unique(near[:, 0])
               if int(f) in wanted}
    empty = df.iloc[0:0]
    out = {}
    last = max(wanted) if wanted else -1
    with av.open(video) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(vs)):
            if i in wanted:
                rgb = upright(frame.to_ndarray(format="rgb24"), int(frame.rotation or 0) % 360)
                out[i] = _thumb(rgb, by_frame.get(i, empty), near_at.get(i))
            if i >= last:
                break
    return out


def write(path: str, *, df: pd.DataFrame, video: str, times_s: list, width: int,
          height: int, title: str, counts: dict, heatmap: str | None = None,
          near=None) -> None:
    """Write the page for the output `video` (a local file: the staged output) whose rows
    are `df` and frame times `times_s`; `near`: the detector's near-misses (NEAR_COLUMNS
    rows), of which those no mask covers are moments and outlined on the frames."""
    frames = len(times_s)
    duration = float(times_s[-1]) if frames else 0.0
    fps = (frames - 1) / duration if duration > 0 else 30.0
    open_near = unmasked_near_misses(df, near)
    ranked = moments(df, frames, fps, width, height, open_near)
    tracks = []
    for tr, rows in df[df["track"] >= 0].sort_values(["track", "frame"]).groupby("track"):
        tracks.append({"id": int(tr), "segments": _segments(rows), "rows": int(len(rows))})
    loose = df[df["track"] < 0].sort_values("frame")
    by_length = sorted(tracks, key=lambda t: -t["rows"])[:MAX_TRACK_FRAMES]
    strip = {round(k * (frames - 1) / max(1, STRIP_FRAMES - 1)) for k in range(STRIP_FRAMES)} \
        if frames else set()
    wanted = strip | {m["frame"] for m in ranked} | {t["segments"][0][0] for t in by_length}
    images = _frames(video, wanted, df, open_near) if frames else {}
    heat = None
    if heatmap:
        with open(heatmap, "rb") as f:
            heat = "data:image/png;base64," + base64.b64encode(f.read()).decode()
    page = {"title": title, "frames": frames, "fps": fps, "times": [round(float(t), 4)
                                                                   for t in times_s],
            "width": width, "height": height, "tracks": tracks,
            "loose": _segments(loose) if len(loose) else [],
            "moments": ranked, "images": {str(k): v for k, v in sorted(images.items())},
            "counts": {**counts, "near_misses_unmasked": int(len(open_near))},
            "heatmap": heat, "colours": COLOURS}
    with open(path, "w", encoding="utf-8") as f:
        f.write(_HTML.replace("__TITLE__", html.escape(title))
                .replace("__DATA__", json.dumps(page, separators=(",", ":"))
                         .replace("</", "<\\/")))


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Review: __TITLE__</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;background:#111;color:#ddd}
h1{font-size:18px}h2{font-size:15px;margin:18px 0 6px}
#layout{display:flex;gap:16px;align-items:flex-start}
#left{flex:1;min-width:0}#right{width:500px}
#timeline{position:relative;border:1px solid #444;background:#1b1b1b}
.track-row{display:flex;height:16px;border-bottom:1px solid #2a2a2a;cursor:pointer}
.track-row:hover{background:#262626}
.track-row .label{width:72px;flex:none;font-size:11px;color:#aaa;padding-left:3px}
.lane{position:relative;flex:1}
.seg{position:absolute;top:3px;height:10px}
#ruler{position:relative;height:16px;margin-left:72px}
#lanes{position:absolute;top:0;bottom:0;left:72px;right:0;pointer-events:none}
#cursor{position:absolute;top:0;bottom:0;width:2px;background:#fff}
.moment-mark{position:absolute;top:0;width:2px;height:16px;background:#f44;cursor:pointer}
#moments li{cursor:pointer;margin:2px 0;padding:3px;border-radius:3px}
#moments li:hover,#moments li.sel{background:#333}
.kind{color:#fa0;font-weight:600}
#frame img{width:100%;border:1px solid #444}
#caption{color:#aaa;margin:4px 0}
table{border-collapse:collapse}td{padding:1px 8px;border-bottom:1px solid #333}
.legend span{display:inline-block;width:10px;height:10px;margin:0 3px 0 10px}
#heatmap img{max-width:100%}
</style></head><body>
<h1>Review: __TITLE__</h1>
<div class="legend" id="legend"></div>
<div id="layout"><div id="left">
<h2>Timeline <small>(one row per track; click to see the frame)</small></h2>
<div id="ruler"></div><div id="timeline"><div id="lanes"><div id="cursor"></div></div></div>
<h2>Moments to check</h2><ol id="moments"></ol>
<h2>Counts</h2><table id="counts"></table>
</div><div id="right">
<div id="frame"><img id="shown" alt="frame of the anonymized output"></div>
<div id="caption"></div>
<div id="heatmap"></div>
</div></div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const N = Math.max(1, D.frames);
const shownFrames = Object.keys(D.images).map(Number).sort((a, b) => a - b);
const pct = f => (100 * f / N) + "%";
function colour(src, score) {
  const c = D.colours[src] || [200, 200, 200];
  const a = src === "detected" && score !== null ? 0.35 + 0.65 * score : 0.9;
  return `rgba(${c[0]},${c[1]},${c[2]},${a})`;
}
function nearest(f) {
  let best = shownFrames[0];
  for (const g of shownFrames) if (Math.abs(g - f) < Math.abs(best - f)) best = g;
  return best;
}
function show(f, why) {
  if (!shownFrames.length) return;
  const g = nearest(f);
  const img = document.getElementById("shown");
  img.src = D.images[String(g)];
  img.dataset.frame = String(g);
  const t = D.times[g] !== undefined ? D.times[g].toFixed(2) : "?";
  document.getElementById("caption").textContent =
    `frame ${g} (${t} s)` + (g !== f ? ` (nearest shown to frame ${f})` : "") + (why ? ": " + why : "");
  document.getElementById("cursor").style.left = pct(g);
}
function row(label, segs, trackId) {
  const r = document.createElement("div");
  r.className = "track-row";
  if (trackId !== null) r.dataset.track = String(trackId); else r.dataset.untracked = "1";
  const l = document.createElement("span");
  l.className = "label"; l.textContent = label; r.appendChild(l);
  const lane = document.createElement("div");
  lane.className = "lane"; r.appendChild(lane);
  for (const [a, b, src, score] of segs) {
    const s = document.createElement("div");
    s.className = "seg"; s.style.left = pct(a); s.style.width = `max(2px, ${pct(b - a + 1)})`;
    s.style.background = colour(src, score);
    s.title = `${label}: frames ${a}-${b}, ${src}` + (score !== null ? `, score ${score}` : "");
    lane.appendChild(s);
  }
  r.addEventListener("click", ev => {
    const box = lane.getBoundingClientRect();
    const f = Math.max(0, Math.round((ev.clientX - box.left) / box.width * (N - 1)));
    const first = segs.length ? segs[0][0] : f;
    const inside = segs.some(([a, b]) => a <= f && f <= b);
    show(inside ? f : first, label);
  });
  return r;
}
const tl = document.getElementById("timeline");
for (const t of D.tracks) tl.appendChild(row("track " + t.id, t.segments, t.id));
if (D.loose.length) tl.appendChild(row("untracked", D.loose, null));
const ruler = document.getElementById("ruler");
D.moments.forEach((m, i) => {
  const k = document.createElement("div");
  k.className = "moment-mark"; k.style.left = pct(m.frame); k.title = m.kind;
  if (D.colours[m.kind]) k.style.background = `rgb(${D.colours[m.kind].join(",")})`;
  k.addEventListener("click", () => pick(i));
  ruler.appendChild(k);
});
const ol = document.getElementById("moments");
function pick(i) {
  const m = D.moments[i];
  document.querySelectorAll("#moments li").forEach((li, j) => li.classList.toggle("sel", j === i));
  show(m.frame, m.text);
}
D.moments.forEach((m, i) => {
  const li = document.createElement("li");
  li.dataset.frame = String(m.frame);
  li.dataset.kind = m.kind;
  const k = document.createElement("span"); k.className = "kind"; k.textContent = m.kind;
  li.appendChild(k);
  li.appendChild(document.createTextNode(` frame ${m.frame} (${(D.times[m.frame] || 0).toFixed(2)} s): ${m.text}`));
  li.addEventListener("click", () => pick(i));
  ol.appendChild(li);
});
if (!D.moments.length) ol.innerHTML = "<li>nothing flagged</li>";
const ct = document.getElementById("counts");
function addCount(k, v) {
  const tr = document.createElement("tr");
  const a = document.createElement("td"); a.textContent = k;
  const b = document.createElement("td"); b.textContent = typeof v === "object" ? JSON.stringify(v) : String(v);
  tr.appendChild(a); tr.appendChild(b); ct.appendChild(tr);
}
for (const [k, v] of Object.entries(D.counts)) addCount(k, v);
const lg = document.getElementById("legend");
for (const [k, c] of Object.entries(D.colours)) {
  const s = document.createElement("span"); s.style.background = `rgb(${c.join(",")})`;
  lg.appendChild(s); lg.appendChild(document.createTextNode(k));
}
if (D.heatmap) {
  const h = document.getElementById("heatmap");
  h.innerHTML = "<h2>Heatmap</h2>";
  const img = document.createElement("img"); img.src = D.heatmap; img.alt = "heatmap";
  h.appendChild(img);
}
if (D.moments.length) pick(0); else show(0, "");
</script></body></html>
"""
