"""Face detection: which pictures go through which network (nets.py), at what scale.

The whole-frame pass: a frame (RGB, upright) is resized keeping its aspect ratio so its longer
side is `detect_size` pixels and run through CenterFace; boxes are mapped back to frame pixels,
sides ending just short of the frame's edge moved onto it, and clipped to the frame.

`tiles=True` adds a second pass for small faces: the frame is cut into 2x2 overlapping tiles,
each tile is detected at the same `detect_size` (so faces are seen larger), and the results
are merged with the full-frame pass by NMS.

`fine=FinePass(...)` adds the multi-scale pass for small and far faces (crowds): the frame is
cut into a grid of overlapping regions, each upscaled `zoom` times (faces of 10 px become
20 px, which the network finds) and run through `FinePass.network` (the balanced preset:
RetinaFace-mobilenet0.25, whose recall at 10-14 px is much higher than CenterFace's at the
same scale, for about 1.5x less CPU per pixel); boxes larger than `FinePass.largest` are left
to the whole-frame pass. Running every region on every frame costs several full
inferences, so frame `index` runs only about n / `cycle` of the n regions, in turn: each
region is seen once every `cycle` frames, and the tracker carries the faces found in between
(and masks a newly found face back to where it appeared). The choice depends only on the
frame's index in the whole video, so a chunked run equals a single pass. `detect(rgb)`
without an index runs every region (a still image gets the full pass), and so does
`detect(rgb, index, sweep=True)`: the worker asks for it on the video's first and last
detection frames, which have no earlier (later) frames whose sweep would find a face for the
tracker to mask back (ahead) to them.

With the fine pass, the whole-frame pass (and the tiles) runs on every `whole_every`-th
detection frame of a video only (by its index; every frame without an index, and on sweeps):
the faces it is left (larger than `FinePass.largest`) move a small part of their size per
frame, and the tracker interpolates them between two of its runs; the balanced preset runs it
every second frame (docs/measurements.md "The whole-frame pass every second frame"). On
the frames between, its last boxes, moved with the camera, still keep near-misses off the
faces it found (neither promoted nor reported).

A face the fine pass scores under its threshold but above its near-miss floor (`still.DOUBT`
x the threshold) on two looks of its region running, at the same place in the scene (the
camera's translation since the previous look compensated), is taken as a face on the second
(`FinePass.persist`, on in the balanced preset): one look below the threshold is noise as often as a
face, two at one place are evidence. Such a face only adds a box where no detection of the
frame overlaps it. A texture is at one place look after look too: with
`FinePass.persist_edge` (on in the balanced preset), a near-miss seen twice touching the
frame's edge is a face only where the faint boxes' check (below) confirms it. Where the
region's picture is reused (still camera), its near-misses are run again on every turn
(below), so the evidence stands.

Fainter evidence (`FinePass.weak`, on in the balanced preset): a box that a whole run of a
region scores above `weak` x the fine threshold but under the near-miss floor (a *faint* box),
seen at the same place as a near-miss or faint box of the region's previous look, smaller
than VERIFY_UNDER, and not where this look found a face, is run again on its own, with
VERIFY_CONTEXT pixels of picture around it (at least VERIFY_SPAN of its size), at VERIFY_ZOOM
(3x where the region was 2x): it is a face if that run scores a face there over
`FinePass.verify`, or, for a box under ESCALATE_UNDER (20 px) that it scores at least
ESCALATE_SHARE of that, if a run of the same crop at ESCALATE_ZOOM (4x) scores it over
ESCALATE_VERIFY; at most VERIFY_MOST checks per look. A walker moves several of its widths
between two looks of its region (8 frames), so its evidence is never at one place: a near-miss
or faint box with no match at its place, where the previous look had one of about its size
within MOVED_REACH of its size, is checked the same way (after the boxes seen at one place,
at most MOVED_MOST per look; never taken without the check), unless the camera stood still
and the picture under it is what it was at that look (still.Stillness
.changed_since_last_look: nothing walked onto a still camera's unchanging texture).
Darkened and partly covered 10-14 px faces score 0.015-0.05 at 2x and often over 0.15 at 3x;
texture that scores that low at 2x rarely scores higher at 3x (docs/measurements.md
"Faint faces checked at 3x"). One or two checks per 720p frame, 2-6 ms each, and up to
MOVED_MOST more per look in a moving crowd (docs/measurements.md "Walkers' evidence"). A
near-miss where the previous look had a faint box is a face without the check (one look over
the near-miss floor, the other over the faint floor: checking those too lost 0.4-0.9 points
on three placed-truth seeds and let a 14 px face leak 78 frames). Faint boxes are not near-misses:
still.py and the review page never see them. A look that reuses the region's picture whole
runs no network and leaves no evidence, and a run of part of it no faint boxes (on a still
camera, where a region's picture is reused every other look, keeping the last whole run's
found a few more faces for 25% more CPU: docs/measurements.md).
A box `FinePass.sure_over` px wide or wider that a region's run scores under
`FinePass.sure` is a face only if the same check (a run of it alone at VERIFY_ZOOM) scores
it over `sure`, and is never a near-miss (nor evidence): faces that wide score high at 2x;
the textures the regions find at that size score 0.05-0.3 on look after look. The width, not
the longer side: a small face covered at the chin or brow gets a tall box of a low score
(docs/measurements.md "Large boxes scored low, checked at 3x").
The faces a region's network run found (under VERIFY_UNDER) are evidence for its next look
too: a faint or walked box near one is checked. A face with nothing of about its size near its
place on the next look (scored under the faint floor at 2x, as a 24 px face under a bar was for
a second while a check at 3x scored it 0.23-0.71) is checked where the camera carried it, at
most LOST_MOST per look, and kept over LOST_VERIFY where the check found it; not on a look that
reused the picture, and not twice in a row (LOOKS_REMEMBERED; docs/measurements.md
"Faces kept by their checks").

With `FinePass.follow` (on in the balanced preset, frames up to 1080p): a small face that the
regions' runs or checks found on two looks running and that no pass finds on a later look is
looked for by its picture where the camera carried it (follow.py), and is a face there while
that picture matches the one of the look that found it, for at most follow.FOLLOW_MOST
cycles: a darkened or partly covered face that drops under every network's floor stays
masked. These faces have no score (NaN): the tracker reports them as `followed`.

With `ahead=True` (the worker sets it where it has two cores), the regions that the
next AHEAD_FRAMES frames (stages.py) run whole go through the network on a thread and session
of their own while `detect` works on the frames before (`ahead`): the same runs on the same
pixels, so the same detections, but the region pass, 40-60% of the CPU, no longer waits for the
rest of the frame's work nor it for the region pass, on frames up to 720p (AHEAD_MAX_PIXELS;
docs/measurements.md "Regions run ahead at 720p").

With `reset(reuse_frames=N)` (the worker sets it from `--reuse`), every pass that is due (the 640 px
pass, a region, a tile) first asks `still.Stillness` whether its picture changed since its last
run: unchanged, its faces stand; partly changed, only the changed parts (and the last run's
near-misses) go through the network.

With `reset(near_misses=True)` (the worker sets it when the review page is written), `detect`
also returns the frame's near-misses (`Detections.doubt`, `.doubt_scores`): boxes the networks
scored below their pass's threshold but above `still.DOUBT` x it, that no detection of any
pass covers (IoU above NMS_IOU), after NMS among themselves. They come from the same network
runs (a lower floor when decoding the outputs), never from an extra one, and change nothing
of the detections: greedy NMS takes the higher scores first, so the boxes above the threshold
are the same with or without the candidates below it. Where reuse keeps a region's faces
without running the network, it has no near-misses (a region with near-misses is run again
around them on every turn, still.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import geometry
from .errors import OptionError
from .follow import FollowPool
from .geometry import box_sizes, centre_distance, iou_matrix  # noqa: F401 (API)
from .model import check_source, ensure_model
from .motion import CameraMotion
from .nets import NETWORKS, NMS_IOU, CenterFace, available_cpus, nms  # noqa: F401 (API)
from .options import DEFAULT_DETECT_SIZE, DEFAULT_PRECISION, DEFAULT_THRESHOLD
from .still import DOUBT, Stillness
# Each side of a 10 px box moves out by this share of its size (2.5x); less below `small`.
# Measured on the crowd clips (score.py): 0.5 (2x) 99.54% / 99.29% covered at 720p / 1080p,
# 0.625 99.53% at 1080p, 0.75 99.82% / 99.64%; over-masking 4.6% -> 7.2% on those crowds.
SMALL_GROWTH = 0.75
# FaceDetector.ahead: no regions run ahead for frames larger than 720p. There the region thread
# (one onnxruntime thread) becomes the critical path wherever the rest of the frame's work is
# light: a synthetic 1080p clip of five faces took 12% longer (a crowd at 1080p: within 3%),
# and it holds 344 MB more. At 720p a crowd runs 10% faster, five faces within 2% (noise).
AHEAD_MAX_PIXELS = 1280 * 720
# FinePass.persist: how well a near-miss must overlap its region's previous look's to count
# as the same place in the scene (a 10 px face's box moves by a pixel or two between looks)
PERSIST_IOU = 0.4
# FinePass.weak: a faint box seen twice is checked alone at this zoom, with VERIFY_CONTEXT
# pixels of picture around it, at least VERIFY_SPAN of its size, if it is smaller than
# VERIFY_UNDER px (larger faint boxes were never faces in the measurements, and cost the most
# to check). The network's time goes with the crop's pixels: a 12 px box's crop is 60 px, not
# the 76 px of a near-miss's re-run on a still camera (still.DOUBT_CONTEXT, at least its own
# size), a 40 px box's 100 px, not 120: 31-44% fewer network pixels; on placed truth, over
# 0.2, 167 faces and 7 textures confirmed against 163 and 11 (docs/measurements.md "Smaller checks")
VERIFY_ZOOM = 3.0
VERIFY_UNDER = 48.0
VERIFY_CONTEXT = 24.0
VERIFY_SPAN = 0.75
# A check of a box under ESCALATE_UNDER px whose 3x run scores it under `FinePass.verify` but
# at least ESCALATE_SHARE of that (a face there, faintly) runs the same crop again at
# ESCALATE_ZOOM, and the box is a face if that run scores it over ESCALATE_VERIFY (or the
# check's own floor, if higher). A still camera shows every look the same pixels, so a 14 px
# face scored 0.13-0.21 at 3x is never confirmed on any look, where 4x scores it 0.5. Of the
# checks that 4x passed over 0.25 on six placed-truth clips, boxes under 16 px were 96 faces
# and 12 textures, 20-24 px 8 and 9, from 24 px up none and 44 (docs/measurements.md "Faint
# small faces looked at again at 4x").
ESCALATE_ZOOM = 4.0
ESCALATE_UNDER = 20.0
ESCALATE_SHARE = 0.2
ESCALATE_VERIFY = 0.25
# ... and a near-miss or faint box seen nowhere on the previous look at its place, but with a
# near-miss or faint box of 0.6-1.6x its size at most this many of its sizes away (centre to
# centre, in the scene), is checked too: a walking 10 px face moves 2-6 of its widths between
# two looks (placed truth: docs/measurements.md "Walkers' evidence"); at most MOVED_MOST of
# them per look, after the faint boxes seen at one place (in a moving crowd nearly every look
# has that many: each check costs a few ms)
MOVED_REACH = 6.0
MOVED_MOST = 8
# checks per region look at most of the faint boxes seen at one place (a bound on the cost; the
# highest 2x scores first), and MOVED_MOST more
VERIFY_MOST = 32
# A face the region's previous network run found (under VERIFY_UNDER) is evidence as a faint
# box is: a faint or walked box near it is checked. A face of the previous look with nothing of
# about its size within a size of its place on this look (the 2x run scored it under the faint
# floor: a 24 px face under a bar scored 0.01-0.03 at 2x and 0.23-0.71 at 3x) is checked where
# the camera carried it, at most LOST_MOST per look, and kept only over LOST_VERIFY (higher
# than a faint box's: a texture once taken for a face scores the same again), at the place the
# check found it (docs/measurements.md "Faces kept by their checks")
LOST_MOST = 8
LOST_VERIFY = 0.3
# What a region's look depends on reaches this many of its looks back, no further: a face is
# kept by its check only if the look before found it by its network run (FOUND_RUN) or by a
# check (FOUND_CHECK, whose evidence is the look before that), never if that look had kept it
# (FOUND_KEPT); and only FOUND_RUN faces are evidence for faint boxes. stages.margins decodes
# that much more before a chunk, so that a chunk detects what one pass does.
LOOKS_REMEMBERED = 2
FOUND_RUN, FOUND_CHECK, FOUND_KEPT = 0, 1, 2


@dataclass(frozen=True)
class FinePass:
    """The rotating high-resolution pass (see the module docstring)."""
    zoom: float = 2.0           # upscale factor of each region
    tile: int = 1280            # network pixels per region side, about (sets the grid)
    cycle: int = 4              # frames per sweep of the whole grid; 1: every region, every frame
    # Overlap between regions, as a share of the frame's longer side, at least: a face cut by
    # one region's edge is whole in its neighbour, with picture around it (the network needs
    # it: at 5% a 15 px face 50 px from a region's edge scored 0.27 instead of over 0.3, and
    # a darkened still crowd lost it for 31 frames; over five other hard clips 5% and 10%
    # were within a few face-frames).
    overlap: float = 0.1
    small: float = 64.0         # boxes smaller than this (px) are grown, a 10 px box 2.5x:
                                # a far face's box jitters by a good part of its size
    # The fine pass is for the faces the whole-frame pass cannot see; larger boxes there are
    # left to it (RetinaFace's 256-512 px anchors fire on cloud and fabric textures).
    largest: float | None = 96.0
    network: str = "centerface"         # nets.NETWORKS
    threshold: float | None = None      # None: the detector's
    # A near-miss of a region (above still.DOUBT x the threshold) that its previous look
    # had at the same place in the scene (camera translation compensated, IoU >= PERSIST_IOU)
    # is taken as a face: evidence over two looks, where one is below the threshold. Not for
    # a cycle of 1: two looks a frame apart see the same texture, not more evidence.
    persist: bool = False
    # With persist: a box scored above `weak` x the threshold but under the near-miss floor
    # (still.DOUBT x the threshold), seen on two looks, is a face if a run of it alone at
    # VERIFY_ZOOM scores it over `verify` (module docstring). None: off; else 0 < weak < DOUBT.
    # Over 0.15 in the bounded crop (VERIFY_CONTEXT): on four placed-truth seeds 191 of 319
    # checked faces and 16 of 1,773 textures, against 167 and 7 over 0.2
    # (docs/measurements.md "Smaller checks")
    weak: float | None = None
    verify: float = 0.15
    # A box `sure_over` px wide or wider that a region's run scores under `sure` is a face
    # only if a run of it alone at VERIFY_ZOOM (as a faint box's check) scores it over
    # `sure`, and is never a near-miss: faces that wide score high at 2x, the textures the
    # fine pass finds there (fabric, an arm, helmets) score 0.05-0.3 on look after look and
    # were the larger part of far over-masking; covered 32-48 px faces that score that low
    # passed the check (darkened ones mostly not, but other looks find them). By width: an
    # 18 px face a third covered had near-misses 30 px wide and 50 px tall, its only
    # evidence for 40 frames (docs/measurements.md "Large boxes scored low, checked at 3x").
    # None: off.
    sure_over: float | None = None
    sure: float = 0.3
    # With persist: a near-miss seen on two looks that touches the frame's edge (`edge_sides`)
    # is a face only if its check (a run of it alone at VERIFY_ZOOM, as a faint box's) scores
    # it over `verify`; one that fails stays a near-miss. On 23 placed-truth clips the 48
    # near-misses seen twice at the edge were all textures (helmets of small figures at the
    # bottom edge), 43 of them failing the check, and their seen-once edge tracks' leads and
    # holds (1 s and 1.5 s of a small face; 60 and 90 frames at 60 fps) a fifth of far
    # over-masking on seed 104, an eighth on 221. Checking near-misses 24 px wide or wider
    # (a fist) lowered it more, but lost a darkened 18 px walker for 10 frames whose
    # near-miss was that wide, and from 16 px a 14 px face under a hat brim for 180
    # (docs/measurements.md "Near-misses seen twice at the frame's edge, checked at 3x").
    persist_edge: bool = False
    # With persist: a small face found on two looks running that no pass finds on a later
    # look is looked for by its picture where the camera carried it, and is a face there
    # while that picture matches (follow.py; at most follow.FOLLOW_MOST cycles).
    follow: bool = False

    def grid(self, w: int, h: int) -> list[tuple[int, int, int, int]]:
        """Regions (x0, y0, x1, y1) of a w x h frame, row by row."""
        ov = int(round(self.overlap * max(w, h)))
        n = max(2, math.ceil(self.zoom * max(w, h) / self.tile))

        def cuts(size):
            span = math.ceil((size + (n - 1) * ov) / n)
            # grown to fill the network's input, whose sides are padded to multiples of 32
            unit = 32 / self.zoom
            span = min(size, int(math.ceil(math.ceil(span / unit) * unit)))
            step = (size - span) / (n - 1)
            return [(int(round(i * step)), int(round(i * step)) + span) for i in range(n)]

        return [(x0, y0, x1, y1) for y0, y1 in cuts(h) for x0, x1 in cuts(w)]


@dataclass
class Detections:
    boxes: np.ndarray       # float32 (N, 4) x1, y1, x2, y2 in frame pixels
    scores: np.ndarray      # float32 (N,)
    shift: tuple | None = None  # camera translation (dx, dy) since the previous detected frame
    zoom: float = 1.0       # ... and the picture's scale about its centre (motion.py)
    doubt: np.ndarray | None = None  # float32 (K, 4): near-misses, when asked for (still.py)
    cut: np.ndarray | None = None   # a part's run (still.py): boxes dropped at its edges
    # float32 (K, 2): each near-miss's score and the threshold of the pass that scored it
    doubt_scores: np.ndarray | None = None
    weak: np.ndarray | None = None  # float32 (J, 4): fainter boxes (FinePass.weak), fine pass only

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


def _union_of_overlaps(kept: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Each kept box grown to contain every box it suppressed (IoU above NMS_IOU): passes
    at different scales draw the same face's box differently, and the mask must cover the
    largest of them, not the highest-scoring one."""
    if len(kept) == 0 or len(boxes) == len(kept):
        return kept
    over = iou_matrix(kept, boxes) > NMS_IOU
    out = kept.copy()
    big = np.where(over[:, :, None], boxes[None, :, :], kept[:, None, :])
    out[:, 0], out[:, 1] = big[:, :, 0].min(1), big[:, :, 1].min(1)
    out[:, 2], out[:, 3] = big[:, :, 2].max(1), big[:, :, 3].max(1)
    return out


def edge_sides(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Which edges of a w x h frame (left, top, right, bottom: N x 4) each of `boxes` touches,
    as a face cut by them does: a cut box ends near the edge (within a quarter of its smaller
    side, at least 4 px)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    m = np.maximum(4.0, 0.25 * np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
    return np.column_stack([boxes[:, 0] <= m, boxes[:, 1] <= m,
                            boxes[:, 2] >= w - m, boxes[:, 3] >= h - m])


def snap_to_edges(boxes: np.ndarray, w: int, h: int) -> None:
    """Move box sides that end just short of the frame edge (within 10% of the box size, at
    least 3 px) onto it, in place: the box of a face cut by the border stops a little inside
    it, which would leave the face's outermost pixels unmasked."""
    m = np.maximum(3.0, 0.1 * np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
    boxes[:, 0] = np.where(boxes[:, 0] < m, np.minimum(boxes[:, 0], 0), boxes[:, 0])
    boxes[:, 1] = np.where(boxes[:, 1] < m, np.minimum(boxes[:, 1], 0), boxes[:, 1])
    boxes[:, 2] = np.where(boxes[:, 2] > w - m, np.maximum(boxes[:, 2], w), boxes[:, 2])
    boxes[:, 3] = np.where(boxes[:, 3] > h - m, np.maximum(boxes[:, 3], h), boxes[:, 3])


def grow_small(boxes: np.ndarray, small: float, w: int, h: int) -> np.ndarray:
    """Boxes smaller than `small` px grown about their centres, up to 2.5x for 10 px (the
    mask of a far face must cover it despite a pixel or two of jitter, and x264's ringing at
    the mask's edge must stay off the face), clipped to the frame."""
    size = box_sizes(boxes)
    g = SMALL_GROWTH * np.clip((small - size) / (small - 10.0), 0.0, 1.0)[:, None]
    d = np.column_stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]]) * g
    out = boxes - np.concatenate([d, -d], axis=1)
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out.astype(np.float32)


class FaceDetector:
    """CenterFace (nets.py) with a fixed detection size and threshold for the whole frame,
    and the passes of the module docstring (the fine pass on its own network). `whole_every`:
    detection frames from one run of the whole-frame pass to the next (only with `fine`)."""

    def __init__(self, model_path=None, *, detect_size: int = DEFAULT_DETECT_SIZE,
                 threshold: float = DEFAULT_THRESHOLD, threads: int | None = None,
                 tiles: bool = False, fine: FinePass | None = None,
                 precision: str = DEFAULT_PRECISION, whole_every: int = 1,
                 ahead: bool = False):
        if not isinstance(detect_size, int) or detect_size < 64 or detect_size % 32:
            raise OptionError(f"detect_size must be a multiple of 32 and at least 64 "
                              f"(got {detect_size!r}).")
        path = ensure_model(model_path, precision=precision)
        self.net = CenterFace(path, threads)
        self.model_path = path
        if model_path is None:          # the fetched pair: int8 must come from this fp32
            check_source(path, precision,
                         self.net.session.get_modelmeta().custom_metadata_map)
        self.fine_net = self.net
        if fine is not None and fine.network != self.net.name:
            if fine.network not in NETWORKS:
                raise OptionError(f"the fine pass's network must be one of "
                                  f"{', '.join(NETWORKS)} (got {fine.network!r}).")
            self.fine_net = NETWORKS[fine.network](ensure_model(network=fine.network), threads)
        self.detect_size = detect_size
        self.threshold = float(threshold)
        self.tiles = bool(tiles)
        self.fine = fine
        if not isinstance(whole_every, int) or whole_every < 1:
            raise OptionError(f"whole_every must be a whole number >= 1 (got {whole_every!r}).")
        self.whole_every = whole_every
        self._grids: dict = {}
        self.motion = CameraMotion() if fine is not None else None
        self.still = Stillness()
        self.near = False
        self.persist = fine is not None and fine.persist
        if self.persist and fine.weak is not None:
            if not 0 < fine.weak < DOUBT:
                raise OptionError(f"FinePass.weak must be above 0 and under {DOUBT} "
                                  f"(got {fine.weak!r}).")
        self._offset = np.zeros(2, np.float32)  # camera translation so far (as track.py)
        # region -> its last look's near-misses and faint boxes, in one array (scene coordinates)
        self._evidence: dict = {}
        # region -> its last look's faces under VERIFY_UNDER (scene), and how each was found:
        # FOUND_RUN, FOUND_CHECK or FOUND_KEPT
        self._faces: dict = {}
        # the small faces followed by their picture (follow.py)
        self._follow = (FollowPool(fine.cycle) if fine is not None and fine.follow
                        and self.persist else None)
        self._whole = np.zeros((0, 4), np.float32)  # the whole-frame pass's last boxes (scene)
        # `ahead`: the next frame's regions run on a thread of their own (`ahead()`)
        self._ahead = None
        if ahead and fine is not None and fine.cycle > 1:
            from concurrent.futures import ThreadPoolExecutor
            self._ahead = (ThreadPoolExecutor(1, thread_name_prefix="blurfaces-regions"),
                           NETWORKS[fine.network](self.fine_net.model_path, 1))
        self._pending: dict = {}    # (detection index, region) -> future of its whole run
        # region -> whether its last look that reuse could have kept ran it whole all the same
        self._ran_whole: dict = {}
        self._index = None          # the detection index of the frame being detected

    def reset(self, reuse_frames: int = 0, near_misses: bool = False) -> None:
        """Forget the previous frames (camera motion, kept detections): the next frame starts
        a new sequence. `reuse_frames` > 0 lets an unchanged region reuse its last detections
        within periods of that many detection frames (still.py); `near_misses`: `detect`
        returns each frame's near-misses too (module docstring)."""
        if self.motion is not None:
            self.motion.reset()
        self.still.reset(reuse_frames)
        self._offset = np.zeros(2, np.float32)
        self._evidence = {}
        self._faces = {}
        if self._follow is not None:
            self._follow.reset()
        self._whole = np.zeros((0, 4), np.float32)
        self.near = bool(near_misses)
        self.drop_pending()
        self._ran_whole = {}

    # -- the next frame's regions, ahead ----------------------------------------------------
    def ahead(self, rgb: np.ndarray, index: int) -> None:
        """Start the network runs of the fine-pass regions that frame `index` (one of the
        next few `detect` will be given, not a sweep) runs whole, on the detector's own
        thread and its own session, while `detect` works on the frames before. Where reuse
        could keep the region's last run (still.py: within its period), the run starts only
        if the last such look ran the whole region all the same (a moving camera); on a still
        camera `detect` reuses or runs part of it, and a run ahead would be wasted (so too
        before any such look). The runs are those `detect` would make, on the same pixels:
        the detections are the same, only their time overlaps."""
        h, w = rgb.shape[:2]
        if self._ahead is None or w * h > AHEAD_MAX_PIXELS:
            return
        pool, net = self._ahead
        # a video's frame: reuse is active exactly where it is on (still.frame)
        doubt, faint = self._asks(True, True, self.still.reuse_frames > 0)
        for r in self.fine_regions(w, h, index):
            if not self.still.runs_whole((r, self.fine.zoom), index,
                                         previous=index - self.fine.cycle) and \
                    not self._ran_whole.get(r, False):
                continue
            x0, y0, x1, y1 = r
            self._pending[(index, r)] = pool.submit(
                self._run, rgb[y0:y1, x0:x1], self.fine.zoom, True, doubt, True, faint, net)

    def drop_pending(self, before: int | None = None) -> None:
        """Forget the runs ahead (of frames before `before`): queued ones are cancelled, a
        running one ends unread."""
        for (i, r), fut in list(self._pending.items()):
            if before is None or i < before:
                fut.cancel()
                del self._pending[(i, r)]

    def _asks(self, fine: bool, whole: bool, reusing: bool) -> tuple[bool, bool]:
        """What a network run of a region (or, `whole`, not a part of one) returns beyond its
        detections: its near-misses (`doubt`: for reuse, the review page, or the fine pass's
        evidence) and its faint boxes (`faint`: the fine pass's evidence, whole regions only).
        One rule for the runs `_fresh` makes and those `ahead` makes for it."""
        return reusing or self.near or (fine and self.persist), fine and self.persist and whole

    # -- one image ------------------------------------------------------------------------
    def _run(self, rgb: np.ndarray, scale: float, fine: bool, doubt: bool,
             cached: bool = True, faint: bool = False, net=None) -> Detections:
        """The faces that the whole-frame (or, if `fine`, the fine pass's) network finds in
        `rgb` seen `scale` times larger, in `rgb` pixels: sides ending just short of the
        picture's edge moved onto it, clipped to it; with `doubt`, the near-misses as
        `.doubt` (and `.doubt_scores`), and with `faint` too, the boxes under the near-miss
        floor but above `FinePass.weak` x the threshold as `.weak`. The fine pass keeps no
        box larger than `FinePass.largest`."""
        h, w = rgb.shape[:2]
        own, thr, largest = ((self.fine_net, self.fine.threshold or self.threshold,
                              self.fine.largest) if fine else (self.net, self.threshold, None))
        net = net or own
        floor = self.fine.weak if faint and doubt and self.fine.weak else DOUBT
        boxes, scores, near = net.run(rgb, scale, thr, thr * floor if doubt else None,
                                      cached, largest)
        if fine and self.fine.sure_over:
            boxes, scores, near = self._sure(rgb, net, boxes, scores, near)
        doubtful, doubt_scores = near if near is not None else (None, None)
        every = boxes if doubtful is None else np.concatenate([boxes, doubtful])
        snap_to_edges(every, w, h)
        np.clip(every[:, 0::2], 0, w, out=every[:, 0::2])
        np.clip(every[:, 1::2], 0, h, out=every[:, 1::2])
        ok = (every[:, 2] - every[:, 0] >= 1) & (every[:, 3] - every[:, 1] >= 1)
        n = len(boxes)
        out = Detections(every[:n][ok[:n]], scores[ok[:n]].astype(np.float32))
        if doubtful is not None:
            near, near_scores = every[n:][ok[n:]], doubt_scores[ok[n:]]
            sure = near_scores > thr * DOUBT
            out.doubt = near[sure]
            out.doubt_scores = np.column_stack([near_scores[sure],
                                                np.full(len(out.doubt), thr)]).astype(np.float32)
            if floor < DOUBT:
                out.weak = near[~sure]
        return out

    def detect(self, rgb: np.ndarray, index: int | None = None,
               sweep: bool = False) -> Detections:
        """Faces in one upright RGB frame; `index` (the frame's number in the video) picks
        the regions of the rotating fine pass and whether the whole-frame pass runs
        (`whole_every`), None (or `sweep`) runs all of them. With the
        fine pass, the result also carries the camera's translation since the previous call
        (`shift`)."""
        self.still.frame(rgb, index)
        self._index = None if sweep else index
        if self._pending:
            self.drop_pending(before=index)
        h, w = rgb.shape[:2]
        whole = self.fine is None or index is None or sweep or index % self.whole_every == 0
        dets = self._region(rgb, (0, 0, w, h), None) if whole else Detections.empty()
        if not self.tiles and self.fine is None:
            if self.near:
                dets.doubt, dets.doubt_scores = _near_misses([dets])
            return dets
        parts = [dets]
        shift = self.motion(rgb) if self.motion is not None and index is not None else None
        if shift is not None:
            self._offset += np.asarray(shift, np.float32)
        if whole:
            self._whole = dets.boxes - np.tile(self._offset, 2)
            screen = None
        else:   # where the whole-frame pass found faces last, moved with the camera since
            screen = self._whole + np.tile(self._offset, 2)
        if self.tiles and whole:
            parts += self._tile_pass(rgb)
        promoted: list = []
        regions: list = []
        if self.fine is not None:
            regions, promoted = self._fine_pass(rgb, None if sweep else index,
                                                video=index is not None)
            parts += regions
        merged = self._merge(parts)
        if promoted:
            merged = self._with_promoted(merged, promoted, screen)
        followed = None
        if self._follow is not None and index is not None and not sweep:
            merged, followed = self._followed(rgb, index, merged, regions + promoted)
        if self.near:
            # a followed face is masked: no near-miss over it
            merged.doubt, merged.doubt_scores = _near_misses(
                parts + ([followed] if followed is not None else []), screen)
        if self.fine is not None and len(merged):
            merged.boxes = grow_small(merged.boxes, self.fine.small, rgb.shape[1], rgb.shape[0])
        if self.motion is not None:
            merged.shift = shift
            merged.zoom = self.motion.zoom if shift is not None else 1.0
        return merged

    def _followed(self, rgb: np.ndarray, index: int, merged: Detections,
                  fine: list[Detections]) -> tuple[Detections, Detections | None]:
        """`merged` with the frame's faces followed by their picture (follow.py), and those
        alone (None if there are none); they have no score (NaN). `fine`: the fine pass's
        runs and checks of the frame."""
        small = [d.boxes for d in fine if len(d)]
        small = np.concatenate(small) if small else np.zeros((0, 4), np.float32)
        small = small[box_sizes(small) < VERIFY_UNDER]
        boxes = self._follow.step(rgb, index, self._offset, merged.boxes, small)
        if not len(boxes):
            return merged, None
        followed = Detections(boxes, np.full(len(boxes), np.nan, np.float32))
        return Detections(np.concatenate([merged.boxes, boxes]),
                          np.concatenate([merged.scores, followed.scores]),
                          doubt=merged.doubt, doubt_scores=merged.doubt_scores), followed

    # -- small and far faces: rotating upscaled regions -----------------------------------
    def fine_regions(self, w: int, h: int, index: int | None) -> list[tuple[int, int, int, int]]:
        """The fine-pass regions that frame `index` of a w x h video runs."""
        grid = self._grids.get((w, h))
        if grid is None:
            grid = self._grids[(w, h)] = self.fine.grid(w, h)
        n, cycle = len(grid), self.fine.cycle
        if index is None or cycle <= 1:
            return grid
        # Region j runs on the frames whose index modulo `cycle` is j * cycle // n: every
        # region once per `cycle` frames, the grid shared out as evenly as it divides (a 3x3
        # grid in 4 frames: 3, 2, 2, 2 regions).
        slot = index % cycle
        return [r for j, r in enumerate(grid) if j * cycle // n == slot]

    def _fine_pass(self, rgb: np.ndarray, index: int | None,
                   video: bool = True) -> tuple[list[Detections], list[Detections]]:
        """The detections of the regions that frame `index` runs, and the near-misses among
        them seen at the same place on the region's previous look, with the faint boxes a run
        at 3x confirms (FinePass.persist and .weak; only between the frames of a video,
        `video`, never between unrelated images)."""
        h, w = rgb.shape[:2]
        out, promoted = [], []
        for r in self.fine_regions(w, h, index):
            d = self._region(rgb, r, self.fine.zoom)
            if self.persist and video:
                d, seen = self._persisted(r, d, rgb)
                if seen is not None:
                    promoted.append(seen)
            out.append(d)
        return out, promoted

    def _persisted(self, region, d: Detections,
                   rgb: np.ndarray) -> tuple[Detections, Detections | None]:
        """`d` without the near-misses that the region's previous look had at the same place
        in the scene (as a near-miss or, with FinePass.weak, a faint box), and those
        near-misses, with the faint boxes seen there that a run of their own at 3x confirms,
        as detections (None if there are none)."""
        # A look that reused the region's picture whole ran no network, and a run of part of
        # it has no faint boxes: the evidence is what they have (keeping the last whole run's
        # cost a still crowd 25% more CPU in checks of an unchanged picture; docs/measurements.md)
        empty = np.zeros((0, 4), np.float32)
        near = d.doubt if d.doubt is not None else empty
        faint = d.weak if d.weak is not None else empty
        scores = _doubt_scores(d)
        offset = np.tile(self._offset, 2)
        scene_near, scene_faint = near - offset, faint - offset
        last = self._evidence.get(region, empty)     # its near-misses and faint boxes
        self._evidence[region] = np.concatenate([scene_near, scene_faint])
        faces, how = self._faces.get(region, (empty, np.zeros(0, np.int8)))   # and its faces

        def at(scene, last):
            if not len(scene) or not len(last):
                return np.zeros(len(scene), bool)
            return iou_matrix(scene, last).max(axis=1) >= PERSIST_IOU

        # a near-miss where the last look had a near-miss or (FinePass.weak) a faint box:
        # one look over the near-miss floor and the other over the faint one
        seen = at(scene_near, last)
        if self.fine.persist_edge and seen.any():
            edge = edge_sides(near, rgb.shape[1], rgb.shape[0]).any(axis=1)
            seen = (seen & ~edge) | self._checked(rgb, near, seen & edge)
        promoted = Detections(near[seen].astype(np.float32), scores[seen, 0].astype(np.float32))
        if self.fine.weak is not None:      # two faint looks: a run of its own decides
            # only the faces the last look's network run found (what a check found there came
            # from a faint box or near-miss, in `last` already): the evidence is one look deep
            evidence = np.concatenate([last, faces[how == FOUND_RUN]])
            again = at(scene_faint, evidence)
            alone = np.concatenate([near[~seen], faint[~again]])
            walked = _walked_to(np.concatenate([scene_near[~seen], scene_faint[~again]]),
                                evidence)
            # a walker changes the picture it walks onto: not where it is what it was at the
            # last look (a still camera; a moving one changes everywhere)
            walked[walked] = self.still.changed_since_last_look(
                (region, self.fine.zoom), region, alone[walked], self._offset)
            promoted = self._merge_checked(rgb, faint[again], d.boxes, promoted)
            promoted = self._merge_checked(rgb, alone[walked], d.boxes, promoted, MOVED_MOST)
            if d.doubt is not None:     # the network ran (a reused picture: its faces stand)
                lost = _lost(faces[how != FOUND_KEPT], np.concatenate([d.boxes - offset,
                                                                      scene_near, scene_faint]))
                n = len(promoted)
                promoted = self._merge_checked(rgb, _inside(lost + offset, region, rgb.shape),
                                               d.boxes, promoted, LOST_MOST, LOST_VERIFY,
                                               moved=True)
                now = np.concatenate([d.boxes, promoted.boxes]) - offset
                found = np.repeat(np.array([FOUND_RUN, FOUND_CHECK, FOUND_KEPT], np.int8),
                                  [len(d.boxes), n, len(promoted) - n])
            else:                       # the reused picture's faces (its last run's)
                now, found = d.boxes - offset, np.full(len(d.boxes), FOUND_RUN, np.int8)
            small = box_sizes(now) < VERIFY_UNDER
            self._faces[region] = (now[small], found[small])
        if not len(promoted):
            return d, None
        left = ~seen        # a near-miss that a check confirmed is a face, no longer a doubt
        if left.any():
            left &= ~(iou_matrix(near, promoted.boxes) > NMS_IOU).any(axis=1)
        return (Detections(d.boxes, d.scores, doubt=near[left], doubt_scores=scores[left]),
                promoted)

    def _merge_checked(self, rgb: np.ndarray, faint: np.ndarray, found: np.ndarray,
                       promoted: Detections, most: int = VERIFY_MOST, floor: float = 0.0,
                       moved: bool = False) -> Detections:
        """`promoted` plus those of the `faint` boxes that `_verify` confirms (over `floor`
        too), with its scores: only boxes under VERIFY_UNDER, not over a face `found` on this
        look nor over a promoted box (IoU above NMS_IOU), where nothing would be added
        (_with_promoted); at most `most`, in their order (the highest 2x score first).
        `moved`: each where the check found its face, not where it was asked to look (a box
        carried from the last look is the face's old place; the tracker, given both, made two
        tracks of one face)."""
        check = faint[box_sizes(faint) < VERIFY_UNDER]
        if len(check) and len(found):
            check = check[~(iou_matrix(check, found) > 0).any(axis=1)]
        if len(check) and len(promoted):
            check = check[~(iou_matrix(check, promoted.boxes) > NMS_IOU).any(axis=1)]
        got = [self._verify(rgb, box, floor) for box in check[:most]]
        scores = np.array([g[0] for g in got], np.float32)
        ok = scores > 0
        if not ok.any():
            return promoted
        boxes = np.array([g[1] for g in got], np.float32) if moved else check[:most]
        return Detections(np.concatenate([promoted.boxes, boxes[ok]]),
                          np.concatenate([promoted.scores, scores[ok]]))

    def _sure(self, rgb: np.ndarray, net, boxes: np.ndarray, scores: np.ndarray, near):
        """A fine run's boxes, scores and near-misses (as `Network.run` gives them, in `rgb`
        pixels) less its boxes `FinePass.sure_over` px wide or wider: those scored under
        `FinePass.sure` stay only where `_verify` scores them over it, near-misses not at
        all. `net`: the network of the run (`ahead` runs on a session of its own)."""
        large = boxes[:, 2] - boxes[:, 0] >= self.fine.sure_over
        ok = ~large | (scores >= self.fine.sure)
        ok |= self._checked(rgb, boxes, ~ok, self.fine.sure, net)
        if near is not None:
            small = near[0][:, 2] - near[0][:, 0] < self.fine.sure_over
            near = (near[0][small], near[1][small])
        return boxes[ok], scores[ok], near

    def _checked(self, rgb: np.ndarray, boxes: np.ndarray, ask: np.ndarray,
                 floor: float = 0.0, net=None) -> np.ndarray:
        """Per box of `boxes`: asked (`ask`) and confirmed by `_verify` (over `floor`, on
        `net`); False where not asked."""
        out = np.zeros(len(boxes), bool)
        for i in np.nonzero(ask)[0]:
            out[i] = self._verify(rgb, boxes[i], floor, net)[0] > 0
        return out

    def _verify(self, rgb: np.ndarray, box: np.ndarray,
                floor: float = 0.0, net=None) -> tuple[float, np.ndarray]:
        """The fine network's best score over `FinePass.verify` (and `floor`) for a face at
        `box` (IoU at least 0.2) in a run of the box alone, with its surroundings, at
        VERIFY_ZOOM (or, where that run scores it faintly, over ESCALATE_VERIFY at
        ESCALATE_ZOOM), and that face's box; 0 and `box` if there is none. `net`: the fine
        network's session to run on (default: the detector's own)."""
        net = net or self.fine_net
        h, w = rgb.shape[:2]
        size = float(box_sizes(np.asarray(box)[None])[0])
        g = max(VERIFY_CONTEXT, VERIFY_SPAN * size)
        x0, y0 = int(max(0, box[0] - g)), int(max(0, box[1] - g))
        x1, y1 = int(min(w, box[2] + g)), int(min(h, box[3] + g))
        crop, off = rgb[y0:y1, x0:x1], np.array([x0, y0, x0, y0], np.float32)
        box = np.asarray(box, np.float32)

        def at(boxes):
            """indices of `boxes` (crop pixels) on the checked box"""
            if not len(boxes):
                return np.zeros(0, np.int64)
            return np.nonzero(iou_matrix(box[None], boxes + off)[0] >= 0.2)[0]

        verify = max(self.fine.verify, floor)
        # the faint candidates are decoded only where they can send the box to ESCALATE_ZOOM
        small = size < ESCALATE_UNDER
        boxes, scores, faint = net.run(crop, VERIFY_ZOOM, verify,
                                       verify * ESCALATE_SHARE if small else None,
                                       False, self.fine.largest)
        hit = at(boxes)
        if not len(hit) and small and len(at(faint[0])):    # faintly there at 3x: closer
            boxes, scores, _ = net.run(crop, ESCALATE_ZOOM, max(ESCALATE_VERIFY, verify),
                                       None, False, self.fine.largest)
            hit = at(boxes)
        if not len(hit):
            return 0.0, box
        best = hit[np.argmax(scores[hit])]
        return float(scores[best]), boxes[best] + off

    def _with_promoted(self, merged: Detections, promoted: list[Detections],
                       screen: np.ndarray | None = None) -> Detections:
        """The frame's detections plus the persisted near-misses (NMS among them) that no
        detection (nor a box of `screen`) overlaps: they only add faces, never move one."""
        p = self._merge(promoted)
        taken = merged.boxes if screen is None else np.concatenate([merged.boxes, screen])
        if len(taken) and len(p):
            p = Detections(*(a[~(iou_matrix(p.boxes, taken) > 0).any(1)]
                             for a in (p.boxes, p.scores)))
        if not len(p):
            return merged
        return Detections(np.concatenate([merged.boxes, p.boxes]),
                          np.concatenate([merged.scores, p.scores]))

    def _region(self, rgb, region, zoom: float | None) -> Detections:
        """Detections in rgb[region] seen `zoom` times larger (None: at `detect_size`), in
        frame pixels; boxes cut by a region edge inside the frame are dropped (a neighbouring
        region sees them whole). Where the region's picture has not changed since its last
        run, that run's detections stand; where part of it changed, and around that run's
        near-misses, the network runs on those parts (still.py)."""
        x0, y0, x1, y1 = region
        scale = zoom if zoom is not None else self.detect_size / max(x1 - x0, y1 - y0)
        key = (region, zoom)
        h, w = rgb.shape[:2]
        # whether the region's picture decides (else it runs whole): what `ahead` predicts by
        decided = zoom is not None and self._index is not None and \
            not self.still.runs_whole(key, self._index)
        plan = self.still.plan(key, region, margin=max(48, max(w, h) // 20))
        if decided:
            self._ran_whole[region] = plan is None
        if plan is not None:
            kept, changed, doubtful = plan
            if not changed and not doubtful:
                return Detections(kept.boxes, kept.scores)     # and no near-misses
            parts = [kept] + [self._fresh(rgb, b, scale, zoom is not None, within=region)
                              for b in changed + doubtful]
            cut = [p.cut for p in parts[1:len(changed) + 1]]
            if not self.still.touches_change(key, np.concatenate(cut) if cut else None):
                d = self._merge(parts)
                d.doubt = np.concatenate([p.doubt for p in parts])
                d.doubt_scores = np.concatenate([_doubt_scores(p) for p in parts])
                self.still.keep(key, region, d, changed)
                return self._out(d)
            # something over a change reaches out of its part (a face not found before,
            # larger than the part): run the whole region after all
        d = self._fresh(rgb, region, scale, zoom is not None)
        self.still.keep(key, region, d)
        return self._out(d)

    def _out(self, d: Detections) -> Detections:
        """What a region gives `detect`: its detections, and its near-misses when asked (or
        kept as evidence: FinePass.persist)."""
        if not self.near and not self.persist:
            return Detections(d.boxes, d.scores)
        return Detections(d.boxes, d.scores, doubt=d.doubt, doubt_scores=d.doubt_scores,
                          weak=d.weak)

    def _fresh(self, rgb, region, scale: float, fine: bool, within=None) -> Detections:
        """The network's detections in rgb[region] at `scale`, as `_region` describes; while
        reuse is on or near-misses are asked for, with the near-misses (`doubt`,
        `doubt_scores`). `within`: the region that `region` is a part of; `.cut` then holds
        the boxes (and near-misses) dropped for crossing an edge of the part inside that
        region."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = region
        early = self._pending.pop((self._index, region), None) \
            if fine and within is None and self._index is not None else None
        if early is not None:
            d = early.result()              # run ahead (`ahead`), on this frame's pixels
        else:
            doubt, faint = self._asks(fine, within is None, self.still.active)
            d = self._run(rgb[y0:y1, x0:x1], scale, fine, doubt, within is None, faint)
        off = np.array([x0, y0, x0, y0], np.float32)

        def inner(b, bounds):
            bx0, by0, bx1, by1 = bounds
            keep = np.ones(len(b), bool)
            if x0 > bx0:
                keep &= b[:, 0] > x0 + 1
            if x1 < bx1:
                keep &= b[:, 2] < x1 - 1
            if y0 > by0:
                keep &= b[:, 1] > y0 + 1
            if y1 < by1:
                keep &= b[:, 3] < y1 - 1
            return keep

        # boxes and near-misses together, through both edge filters once
        n = len(d.boxes)
        every = d.boxes + off if d.doubt is None else np.concatenate([d.boxes, d.doubt]) + off
        whole = inner(every, (0, 0, w, h))
        out = Detections(every[:n][whole[:n]], d.scores[whole[:n]])
        if d.doubt is not None:
            out.doubt = every[n:][whole[n:]]
            out.doubt_scores = d.doubt_scores[whole[n:]]
        if d.weak is not None:
            faint = d.weak + off
            out.weak = faint[inner(faint, (0, 0, w, h))]
        if within is not None:
            out.cut = every[~inner(every, within)]
        return out

    # -- small faces: 2x2 overlapping tiles ---------------------------------------------
    def _tile_pass(self, rgb: np.ndarray) -> list[Detections]:
        h, w = rgb.shape[:2]
        tw, th = int(w * 0.6), int(h * 0.6)         # 20% overlap between the two tiles
        return [self._region(rgb, (x0, y0, x0 + tw, y0 + th), None)
                for x0 in (0, w - tw) for y0 in (0, h - th)]

    @staticmethod
    def _merge(parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        boxes = np.concatenate([p.boxes for p in parts])
        scores = np.concatenate([p.scores for p in parts])
        keep = nms(boxes, scores)
        return Detections(_union_of_overlaps(boxes[keep], boxes), scores[keep])


def _doubt_scores(d: Detections) -> np.ndarray:
    if d.doubt_scores is not None:
        return d.doubt_scores
    return np.zeros((0 if d.doubt is None else len(d.doubt), 2), np.float32)


def _near(boxes: np.ndarray, others: np.ndarray, reach: float, lo: float,
          hi: float) -> np.ndarray:
    """Which of `boxes` have one of `others` of lo-hi times their size (exclusive) within
    `reach` of their size, centre to centre (geometry.near)."""
    return geometry.near(boxes, others, reach, lo, hi).any(axis=1)


def _walked_to(boxes: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Which of `boxes` have one of `last` of 0.6-1.6x their size within MOVED_REACH of their
    size, centre to centre (both in scene coordinates)."""
    if MOVED_REACH <= 0:
        return np.zeros(len(boxes), bool)
    return _near(boxes, last, MOVED_REACH, 0.6, 1.6)


def _lost(faces: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Those of `faces` (the last look's) with none of `now` (this look's faces, near-misses
    and faint boxes) of 0.5-2x their size within one of their sizes (scene coordinates)."""
    return faces[~_near(faces, now, 1.0, 0.5, 2.0)]


def _inside(boxes: np.ndarray, region, shape) -> np.ndarray:
    """`boxes` (frame pixels) whose centre is in `region` (x0, y0, x1, y1), cut by the frame
    (of `shape`)."""
    x0, y0, x1, y1 = region
    h, w = shape[:2]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    keep = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    return np.clip(boxes[keep], 0, [w, h, w, h]).astype(np.float32)


def _near_misses(parts: list[Detections],
                 screen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A frame's near-misses from its passes' (module docstring): NMS among them by their
    share of their pass's threshold, then those that a detection of any pass (or a box of
    `screen`) covers (IoU above NMS_IOU) left out."""
    with_doubt = [p for p in parts if p.doubt is not None and len(p.doubt)]
    if not with_doubt:
        return np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32)
    boxes = np.concatenate([p.doubt for p in with_doubt]).astype(np.float32)
    scores = np.concatenate([_doubt_scores(p) for p in with_doubt])
    keep = nms(boxes, scores[:, 0] / scores[:, 1])
    boxes, scores = boxes[keep], scores[keep]
    sure = np.concatenate([p.boxes for p in parts] + ([] if screen is None else [screen]))
    if len(sure) and len(boxes):
        free = ~(iou_matrix(boxes, sure) > NMS_IOU).any(1)
        boxes, scores = boxes[free], scores[free]
    return boxes, scores
