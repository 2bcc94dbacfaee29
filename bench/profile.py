"""Where each frame's CPU time goes: decode, RGB conversion, detection (the 640 px pass, the
rotating upscaled regions, camera motion), tracking, masking, conversion back to YUV, x264. One
thread for everything (onnxruntime, decoder, x264), CPU time per stage measured with
`time.thread_time` around each call, so the numbers are per-core costs and are not moved much
by other load on the machine.

The floor is the eval harness's transcode.py, stage by stage: decode, to BGR, back to YUV,
libx264 veryfast crf 23 (x264's default B-frames). blurfaces encodes with its own options
(default crf 23, veryfast, no B-frames so that segments concatenate).

  python -m bench.profile [--size 1280x720] [--seconds 4] [--quality default] [--json OUT]

Prints a table of CPU milliseconds per frame by stage and the share of each, plus the same
for a plain transcode (decode + x264, the floor any anonymizer pays).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import common


class _Timed:
    """A callable object (CameraMotion) whose calls are timed, its attributes (`zoom`) kept."""

    def __init__(self, obj, call):
        self._obj, self._call = obj, call

    def __call__(self, *a, **k):
        return self._call(*a, **k)

    def __getattr__(self, name):
        return getattr(self._obj, name)


def profile(path: str, extra: dict) -> dict:
    import av
    import numpy as np

    from blurfaces import stages
    from blurfaces.mask import Masker, scale_boxes
    from blurfaces.options import Options
    from blurfaces.track import Tracker, TrackOptions
    from blurfaces.video import probe, rgb_frame, upright

    info = probe(path)
    options = Options.from_dict(extra)
    w, h = info.display_width, info.display_height
    detector = stages._detector(options, 1, options.tiles_for(w, h), (w, h))
    tracker = Tracker(TrackOptions.of(options), (w, h))     # as stages.worker makes it
    masker = Masker(options.mask, ellipse=options.ellipse)
    t = {k: 0.0 for k in ("decode", "to_rgb", "detect", "track", "mask", "to_yuv", "x264")}
    sub = {"regions": 0.0, "motion": 0.0, "reuse": 0.0, "reuse_in_regions": 0.0}
    inside = []                                 # non-empty while the regions run
    detector.reset(reuse_frames=stages.reuse_frames(options, info))  # as stages.worker does

    def part(key, fn):
        def wrapped(*a, **k):
            c0 = time.thread_time()
            inside.append(key)
            try:
                return fn(*a, **k)
            finally:
                inside.pop()
                dt = time.thread_time() - c0
                sub[key] += dt
                if key == "reuse" and "regions" in inside:
                    sub["reuse_in_regions"] += dt
        return wrapped

    if detector.fine is not None:
        detector._fine_pass = part("regions", detector._fine_pass)
        detector.motion = _Timed(detector.motion, part("motion", detector.motion))
    # the still-camera checks (still.py), inside both passes: a line of their own
    detector.still.frame = part("reuse", detector.still.frame)
    detector.still.plan = part("reuse", detector.still.plan)
    out = av.open(os.devnull, "w", format="nut")
    s = out.add_stream("libx264")
    s.width, s.height, s.pix_fmt = info.width, info.height, "yuv420p"
    s.codec_context.time_base = info.tb
    s.options = {"crf": str(options.crf), "preset": options.preset, "bf": "0", "threads": "1"}
    frames = {}
    n = 0

    def clock(key, fn, *a):
        c0 = time.thread_time()
        r = fn(*a)
        t[key] += time.thread_time() - c0
        return r

    def finish(fm):
        rgb = frames.pop(fm.key)
        boxes = scale_boxes(fm.boxes, options.mask_scale, w, h) if len(fm.boxes) \
            else np.zeros((0, 4), np.int64)
        clock("mask", masker.apply, rgb, boxes, fm.scores)
        vf = clock("to_yuv", lambda: rgb_frame(rgb).reformat(format="yuv420p"))
        vf.pts, vf.time_base = fm.key, info.tb
        for pkt in clock("x264", s.encode, vf):
            out.mux(pkt)

    with av.open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type, vs.codec_context.thread_count = "SLICE", 1
        it = iter(c.decode(vs))
        while True:
            frame = clock("decode", next, it, None)
            if frame is None:
                break
            rgb = clock("to_rgb", lambda: upright(frame.to_ndarray(format="rgb24"),
                                                   info.rotation))
            dets = clock("detect", detector.detect, rgb, n)
            frames[frame.pts] = rgb
            for fm in clock("track", tracker.push, frame.pts,
                            float((frame.pts - info.first_pts) * info.tb), dets):
                finish(fm)
            n += 1
    for fm in clock("track", tracker.flush):
        finish(fm)
    for pkt in clock("x264", s.encode, None):
        out.mux(pkt)
    out.close()
    regions = sub["regions"] - sub["reuse_in_regions"]
    t["detect"] -= sub["regions"] + sub["motion"] + sub["reuse"] - sub["reuse_in_regions"]
    ms = {}
    for k, v in t.items():
        if k == "detect":
            ms["detect_640"] = round(1000 * v / n, 2)
            ms["detect_regions"] = round(1000 * regions / n, 2)
            ms["detect_motion"] = round(1000 * sub["motion"] / n, 2)
            ms["detect_reuse"] = round(1000 * sub["reuse"] / n, 2)
        else:
            ms[k] = round(1000 * v / n, 2)
    st = detector.still
    return {"frames": n, "ms_per_frame": ms,
            "regions": {"run": st.runs, "partial": st.partial, "reused": st.reused}}


def floor(path: str) -> dict:
    """The harness's plain transcode, per stage: decode, to BGR, back to YUV, x264."""
    import av
    t = {"decode": 0.0, "to_rgb": 0.0, "to_yuv": 0.0, "x264": 0.0}
    n = 0
    with av.open(path) as c, av.open(os.devnull, "w", format="nut") as out:
        vs = c.streams.video[0]
        vs.thread_type, vs.codec_context.thread_count = "SLICE", 1
        s = out.add_stream("libx264")
        s.width, s.height, s.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv420p"
        s.codec_context.time_base = vs.time_base
        s.options = {"crf": "23", "preset": "veryfast", "threads": "1"}
        it = iter(c.decode(vs))
        while True:
            c0 = time.thread_time()
            f = next(it, None)
            t["decode"] += time.thread_time() - c0
            if f is None:
                break
            c0 = time.thread_time()
            img = f.to_ndarray(format="bgr24")
            t["to_rgb"] += time.thread_time() - c0
            c0 = time.thread_time()
            f = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
            t["to_yuv"] += time.thread_time() - c0
            c0 = time.thread_time()
            for pkt in s.encode(f):
                out.mux(pkt)
            t["x264"] += time.thread_time() - c0
            n += 1
    return {"frames": n, "ms_per_frame": {k: round(1000 * v / n, 2) for k, v in t.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="video (default: the synthetic pan/zoom clip)")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--options", default="{}", help="JSON object of blurfaces options")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args(argv)
    path = a.input or str(common.synthetic_clip(size=common.parse_size(a.size),
                                                seconds=a.seconds, audio=False))
    res = {"input": path, "options": json.loads(a.options),
           "blurfaces": profile(path, json.loads(a.options)), "floor": floor(path),
           "machine": common.machine_info()}
    b, f = res["blurfaces"]["ms_per_frame"], res["floor"]["ms_per_frame"]
    total_b, total_f = sum(b.values()), sum(f.values())
    print(f"{path}: {res['blurfaces']['frames']} frames, CPU ms per frame (one thread)")
    print(f"{'stage':10s} {'blurfaces':>10s} {'share':>6s} {'floor':>8s}")
    for k, v in b.items():
        print(f"{k:10s} {v:10.2f} {100 * v / total_b:5.1f}% {f.get(k, 0):8.2f}")
    print(f"{'total':10s} {total_b:10.2f} {'':6s} {total_f:8.2f}   ratio {total_b / total_f:.2f}")
    if a.json:
        common.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
