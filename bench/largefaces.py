"""Placed truth for faces wider than the fine pass keeps: 96-200 px faces at 1440p and 4K.

The balanced preset leaves faces wider than 96 px (detect.FinePass.largest) to its whole-frame
pass, which at 384 px shrinks a 1440p frame 6.7x and a 4K frame 10x: such a face is 10-20 px
there. The placed clips (`placed.py`, the eval harness's placed_clip.py) have faces of 10-48
px only, so they cannot show what that pass misses. A clip here: `placed.face_crops()` pasted
at known places on `placed.world()` (face-free pictures), four faces per width of
`KINDS[kind]["sizes"]` in each of three variants (plain; darkened to 40%; a grey bar over the
crop's right 40%, about 37% of the face box, `occluded`), the camera panning 4 px right and 1 px down a frame; noise sigma 4,
60 frames at 30 fps, crf 23. Truth in placed_clip.py's format: its `placed_score.py` scores
an output as it does the placed clips (`sizes` are the widths here).

    python -m bench.largefaces [large1440 large4k] [--seed N]   # the clip paths (made once)
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench import placed

KINDS = {
    "large1440": dict(size=(2560, 1440), sizes=(96, 110, 130)),
    "large4k": dict(size=(3840, 2160), sizes=(96, 110, 130, 160, 200)),
}
VARIANTS = ("plain", "dark", "covered")
FPS, FRAMES, CRF, NOISE = 30, 60, 23, 4.0
STEP = (4, 1)               # the pan, px per frame (right, down)
GAP = 60                    # px of canvas around the pan's frames
PER_VARIANT = 4             # faces per width and variant


class Large:
    """The clip's renderer (t -> RGB frame, for media.make_clip) and its truth."""

    def __init__(self, kind: str, seed: int = 1):
        import cv2
        spec = KINDS[kind]
        self.kind, self.seed, self.size, self.sizes = kind, seed, spec["size"], spec["sizes"]
        self.fps, self.n, self.crf = FPS, FRAMES, CRF
        W, H = self.size
        cw, ch = W + STEP[0] * FRAMES + 2 * GAP, H + STEP[1] * FRAMES + 2 * GAP   # the pan's
        self.canvas = np.ascontiguousarray(placed.world(self.size, seed)[:ch, :cw])
        crops = placed.face_crops()
        order = np.random.default_rng(seed).permutation(len(crops))
        self.faces, self.boxes = [], []
        # where every frame of the pan sees the canvas: each face is whole in every frame
        left, top = GAP + STEP[0] * (FRAMES - 1) + 20, GAP + STEP[1] * (FRAMES - 1) + 20
        right, bottom = GAP + W - 20, GAP + H - 20
        x, y, row = left, top, 0
        for width in self.sizes:
            for variant in VARIANTS:
                for j in range(PER_VARIANT):
                    tag, crop, fbox = crops[order[(len(self.faces)) % len(crops)]]
                    s = width / (fbox[2] - fbox[0])
                    img = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA
                                     if s < 1 else cv2.INTER_CUBIC)
                    h, w = img.shape[:2]
                    if variant == "dark":
                        img = (img * 0.4).astype(np.uint8)
                    elif variant == "covered":
                        img[:, int(w * 0.6):] = 70
                    covered = (fbox[2] * s - int(w * 0.6)) / width     # of the face box
                    if x + w > right:
                        x, y, row = left, y + row + 40, 0
                    if y + h > bottom:
                        raise RuntimeError(f"{kind}: no room for face {len(self.faces)}")
                    self.canvas[y:y + h, x:x + w] = img
                    self.boxes.append(fbox * s + [x, y, x, y])
                    self.faces.append({
                        "id": len(self.faces), "size": width, "source": tag, "flip": False,
                        "variant": variant, "darkened": variant == "dark",
                        "occluded": ({"side": "right", "fraction": round(covered, 2),
                                      "grey": 70}
                                     if variant == "covered" else None),
                        "edge": None, "walking": False})
                    x, row = x + w + 40, max(row, h)
        self.per_frame: list = [None] * FRAMES

    def __call__(self, t: float) -> np.ndarray:
        W, H = self.size
        k = int(round(t * FPS))
        ox, oy = GAP + STEP[0] * k, GAP + STEP[1] * k
        frame = self.canvas[oy:oy + H, ox:ox + W].astype(np.float32)
        frame += np.random.default_rng((self.seed, k)).normal(0, NOISE, frame.shape)
        row = []
        for f, b in zip(self.faces, self.boxes):
            box = (b - [ox, oy, ox, oy]).tolist()
            if box[0] >= 0 and box[1] >= 0 and box[2] <= W and box[3] <= H:
                row.append({"id": f["id"], "size": f["size"], "w": box[2] - box[0],
                            "box": box, "inside": 1.0})
        self.per_frame[k] = row
        return np.clip(frame, 0, 255).astype(np.uint8)

    def truth(self, video_name: str) -> dict:
        W, H = self.size
        return {"version": 1, "generator": "blurfaces bench/largefaces.py", "kind": self.kind,
                "video": video_name, "width": W, "height": H, "fps": FPS, "frames": FRAMES,
                "seed": self.seed, "sizes": list(self.sizes), "noise_sigma": NOISE,
                "crf": CRF, "camera": f"pan {STEP[0]},{STEP[1]} px a frame",
                "box_note": "face box without the crop margin, output px",
                "faces": self.faces, "per_frame": self.per_frame}


def clip(kind: str, seed: int = 1):
    """(video, truth) paths of the clip, made on first use (placed.py's cache folder)."""
    return placed.cached(f"{kind}_s{seed}", lambda: Large(kind, seed), audio=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kinds", nargs="*", default=list(KINDS), help=f"of {list(KINDS)}")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    for k in a.kinds:
        print(clip(k, a.seed)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
