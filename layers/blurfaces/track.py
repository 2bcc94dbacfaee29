"""Face tracks: link detections across frames and keep masking through the detector's gaps.

A per-frame detector misses a face now and then (motion blur, a turned head, a hand); in the
output that is a face flashing visible. The tracker links each frame's detections to the
tracks alive so far (Hungarian assignment on IoU, with a constant-velocity prediction and a
centre-distance fallback for fast motion), then decides each frame's mask boxes with a short
look-ahead:

- detected:     the detection, smoothed over +-`smooth` seconds and grown back to contain the
                detected box (smoothing never lets the mask lag behind the face);
- followed:     a face the detector followed by its picture where the networks lost it
                (detect.py, follow.py): as `detected`, with no score;
- interpolated: between two detections of the same track (at most `hold` seconds apart, or
                a bridged gap or a confirmed walk link: below),
                each side moved out by up to a quarter of its travel between them (most
                at the middle of the gap): a face that moves or grows fast need not move in
                a straight line;
- held:         up to `hold` seconds after a track's last detection (the last box, grown
                along the face's motion, at most a width; a track whose last three
                detections move at one velocity, a walker, is carried on along it at its
                last size, in the frame rather than the scene where the camera moved and it
                moved less in the frame: a subject the camera follows);
- lead:         up to `lookahead` seconds before a track's first detection (a face entering
                or turning toward the camera is masked before the detector is sure of it);
                a track whose first box touches the frame edge (a face entering, cut by the
                border, is found only once enough of it shows) gets max(`hold`, `lookahead`)
                seconds: the look-ahead window is that long anyway, so this costs no latency.
                Its lead box is also grown by `EDGE_GROW` of its size away from the edges it
                touches: the detector draws a cut face's box short of the visible chin or
                brow, and the box moves back out through the edge with the face. Its lead
                box also reaches to where the frame, not the scene, would have carried it: a
                face may walk in with the camera (a followed subject) as well as be panned
                in, and near the edge a zoom makes the scene's translation a poor guide.
- a track of two or more detections that the detector misses for longer than its hold, found
                again where the track predicts it within `bridge` seconds, continues: the gap
                is interpolated (`Tracker._bridge`).
- a track of two or more detections that a frame misses, where a new track starts on its
                last detected box (or, for a moving track, near it), is taken over: its hold
                ends at the new track's first detection (`Tracker._take_over`).

A small face is one whose box (as the detector grew it) is under `small` on its longer side or,
unless the frame edge cuts it, under SMALL_WIDTH of that in width: a face covered at the chin or
brow gets a taller box than a face's. At the video's end (`flush(at_end=True)`), a small face's
track of two or more detections, not last seen at the frame edge, whose hold reaches the
frames still undecided, stays masked to the last frame: a darkened or covered face that the
looks miss for longer than its hold has no later detection there to be masked back from.

A small face seen once and then, on a later look, found nearby but not where it was (a
walker: it moves a box width or two between two looks of its region) is linked into one track
rather than starting a second; until a third detection confirms the walk, both parts keep the
masks they would have had alone (`Tracker._link_walkers`).

When the detections carry the camera's translation (`Detections.shift`, see motion.py), the
tracker works in scene coordinates: each frame's boxes minus the translation accumulated so
far, and back on release; a pan then no longer breaks the tracks of small faces. Every
decision depends only on differences of positions, so where the accumulation starts (a chunk
starts it a little earlier than its first frame) does not change the result. The camera's
zoom (`Detections.zoom`) is not in the scene coordinates (box sizes there stay frame pixels);
a held or lead box is moved by it instead: the box it is held (led) from, as the frame showed
it then, carried by the picture's motion between, each frame's pan and zoom composed as
motion.py measures them (`Tracker._zoomed`), and the track's own velocity is taken without
the drift the zoom gave it (`Tracker._velocity`). A walker carried along its walk is not
moved (its walk's velocity holds the drift) but keeps the face's size under the zoom.
Interpolated boxes lie between two detections and need no more.

Every decision about a frame needs only the detections up to `window` seconds after it, so
frames are released in order once that much newer video has been pushed (a look-ahead sized by
time, so variable frame rate works). A mask never outlives its track's last detection by more
than its hold (`small_hold` for a small face; to the last frame at the video's end, above),
so nothing drifts onto the background after a face leaves. The same detections give the same
output on every run.
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from .detect import Detections, edge_sides
from .geometry import box_sizes, centre_distance, iou_matrix
from .options import QUALITY

SOURCES = ("detected", "followed", "interpolated", "held", "lead")
_OUTWARD = np.array([-1.0, -1.0, 1.0, 1.0])
_NO_MATCH = 1e6


@dataclass
class TrackOptions:
    enabled: bool = True
    hold: float = 0.5           # seconds a mask stays after a track's last detection
    lookahead: float = 0.3      # seconds a mask starts before a track's first detection
    smooth: float = 0.1         # seconds either side averaged to steady the box
    match_iou: float = 0.2
    # A small face (boxes under `small` px, as the detector grew them: `_small`) is seen by a
    # pass that looks at each place only every few frames, and less surely: its mask stays
    # `small_hold` seconds (if longer than `hold`) after its last detection.
    small_hold: float = 0.0
    # ... and is first found up to a sweep after it came into view: its mask starts
    # `small_lead` seconds (if longer than the look-ahead) before its first detection.
    small_lead: float = 0.0
    # ... and may be walking while it is seen only once (a walker moves more than its own
    # width between two looks of its region): the held and lead boxes of a small face with a
    # single detection grow by `small_walk` of its width per second away from it, on each
    # side, up to WALK_MAX of its width (boxes narrower than WALK_GROW_UNDER px: faces under
    # about 16 px). With `small_walk` on, seen-once tracks are also
    # linked into walks (Tracker._link_walkers).
    small_walk: float = 0.0
    small: float = 48.0
    # A track of two or more detections that the detector then misses for longer than its
    # hold, found again where its track predicts it (IoU) within `bridge` seconds of its last
    # detection, continues: the gap is interpolated, not left unmasked between the held box
    # and the new track's lead. At most the tracker's memory (`longest_hold`); `window`
    # reaches past the hold to it, so that every frame of a gap is decided with the detection
    # that closes it. A small face's hold is already `small_hold` (1.5 s), so in the presets
    # only larger faces are bridged.
    bridge: float = 0.0

    @classmethod
    def of(cls, options) -> "TrackOptions":
        """The tracking settings of an `Options` record."""
        preset = QUALITY[options.quality]
        return cls(enabled=options.track, hold=options.hold, lookahead=options.lookahead,
                   small_hold=preset.get("small_hold", 0.0),
                   small_lead=preset.get("small_lead", 0.0),
                   small_walk=preset.get("small_walk", 0.0),
                   bridge=preset.get("bridge", 0.0))

    @property
    def longest_hold(self) -> float:
        return max(self.hold, self.small_hold)

    @property
    def window(self) -> float:
        """Seconds of newer video needed before a frame's masks are final."""
        if not self.enabled:
            return 0.0
        return max(self.hold, self.lookahead, self.small_lead,
                   self.bridge - self.hold) + self.smooth + 1e-6


@dataclass
class FrameMasks:
    key: object                 # what the caller passed to push() (e.g. the frame's pts)
    t: float
    boxes: np.ndarray           # float (M, 4)
    tracks: np.ndarray          # int (M,), -1 with tracking off
    scores: np.ndarray          # float (M,), NaN where no detection is behind the box
    sources: list


class Camera(NamedTuple):
    """The camera's motion accumulated up to a frame (`Tracker.push`; only differences between
    two frames' are used). `offset`: the summed translation, which scene coordinates subtract;
    `zoom`: the log zoom about the frame's centre c; `move`: the translation that completes
    the picture's motion with it: a point p of the first frame is at c + move + exp(zoom)(p - c)
    (each pan scaled by every later zoom, as motion.py measures them)."""
    offset: np.ndarray
    zoom: float
    move: np.ndarray


_STILL = Camera(np.zeros(2), 0.0, np.zeros(2))


@dataclass
class _Track:
    id: int
    times: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    sides: tuple = (False, False, False, False)     # frame edges the first box touches:
                                                    # left, top, right, bottom
    # _smoothed's final results by index: computed once, not for every frame released
    smoothed: dict = field(default_factory=dict)
    # Tracker._link_walkers: the two seen-once tracks this one was linked from, masked as
    # they were until a third detection confirms the walk
    parts: tuple | None = None
    # Tracker._take_over: when a new track took its face over (its hold ends there), until
    # its next detection
    taken: float | None = None
    # per detection: its box touches the frame edge (`_small`; kept with `times`, so a walk
    # link undone takes its first part's back). It follows from `boxes`, `cams` and the
    # frame's size, but `_usual_hold` asks for every track on every frame: computed once.
    cuts: list = field(default_factory=list)
    # per detection: the camera's motion then (a Camera; kept as `cuts` is)
    cams: list = field(default_factory=list)
    # walk()'s and Tracker._velocity's results until the next detection: a held box asks on
    # every frame of its hold
    walks: dict = field(default_factory=dict)

    @property
    def cut(self) -> bool:
        """The last detection's box touches the frame edge."""
        return bool(self.cuts and self.cuts[-1])

    def add(self, t: float, box, score: float) -> None:
        """The track's next detection (`box` in the scene)."""
        self.taken = None
        self.walks = {}
        self.times.append(t)
        self.boxes.append(box)
        self.scores.append(score)

    def views(self) -> tuple:
        """The tracks to mask: this one, or while its walk link is unconfirmed, its parts."""
        return self.parts if self.parts is not None else (self,)

    def walks_on(self) -> bool:
        """A walk link's third detection is nearer where the walk from the first to the
        second predicts it than to the second (a standing face found again is not)."""
        a, b, c = ((box[:2] + box[2:]) / 2 for box in self.boxes[:3])
        ta, tb, tc = self.times[:3]
        ahead = b + (b - a) * (tc - tb) / (tb - ta)
        return bool(np.linalg.norm(c - ahead) < np.linalg.norm(c - b))

    @property
    def edge(self) -> bool:
        """The first box touches the frame edge (a face entering, cut by it)."""
        return any(self.sides)

    def velocity(self, at_end: bool) -> np.ndarray:
        """Box velocity (px/s) from the two detections at one end of the track."""
        if len(self.times) < 2:
            return np.zeros(4)
        i, j = (-2, -1) if at_end else (0, 1)
        dt = self.times[j] - self.times[i]
        if dt <= 0:
            return np.zeros(4)
        return (self.boxes[j] - self.boxes[i]) / dt

    def predict(self, t: float) -> np.ndarray:
        return self.boxes[-1] + self.velocity(True) * min(t - self.times[-1], 0.5)

    def walk(self, frame: bool) -> tuple[np.ndarray, bool] | None:
        """The box velocity (px/s; in the frame, or in the scene) over the last three
        detections, and whether both steps between them move at one velocity (WALK_AGREE)
        and span WALK_LEAST of its width; None before the third detection."""
        if frame not in self.walks:
            self.walks[frame] = self._walk(frame)
        return self.walks[frame]

    def _walk(self, frame: bool) -> tuple[np.ndarray, bool] | None:
        if len(self.times) < 3:
            return None
        (ta, tb, tc) = self.times[-3:]
        a, b, c = self.boxes[-3:]
        if frame:
            a, b, c = (box + _twice(cam.offset) for box, cam in zip((a, b, c), self.cams[-3:]))
        if tb <= ta or tc <= tb:
            return None
        first, second = (b - a) / (tb - ta), (c - b) / (tc - tb)
        steady = _speed(second - first) <= WALK_AGREE * _speed(second) and \
            _speed(c - a) >= WALK_LEAST * (c[2] - c[0])
        return (c - a) / (tc - ta), bool(steady)


EDGE_GROW = 0.25
# Tracker._link_walkers: how far (in sizes of the seen-once box, centre to centre, in the scene)
# a detection may be from a seen-once track to be its next detection, growing with the time
# since, up to WALK_LINK_MAX (a placed 18 px walker moved 0.75-1.0 of its detector box between
# two looks of its region); how much the two may differ in size; and the largest boxes linked
# (of TrackOptions.small: the detector grows an 18 px face's box to 47-51 px)
WALK_LINK = 0.6
WALK_LINK_RATE = 6.0
WALK_LINK_MAX = 2.5
WALK_LINK_RATIO = 1.6
WALK_LINK_UNDER = 1.5
# Tracker.flush at the video's end: a small face's track of END_DETECTIONS or more detections
# held when the last frames begin stays masked to the last frame, its box grown by END_GROW of
# its size on each side beyond its usual hold (a standing face's held box drifts off it with
# the velocity of two noisy detections and the camera's zoom: 2-3 px of a 14 px face in 55
# frames)
END_DETECTIONS = 2
END_GROW = 0.25
# _Track.walk: a track whose last three detections move at one velocity (the two steps'
# velocities differ by at most WALK_AGREE of the later one) is walking. Its held box goes on
# along that velocity past the one width a plain hold allows, at its last size, grown by
# WALK_SPREAD of its travel beyond that width on each side (up to a width) for the velocity's
# error; in the frame, not the scene, where it moves less in the frame (a subject the camera
# follows: a 14 px walker kept near one place in the frame by a pan that then slowed left its
# held box, carried through the scene, bare for 58 frames on seed 92). A walker that stops is
# left by its box once that has gone a width past it (docs/measurements.md "Walkers held along
# their walk").
WALK_AGREE = 0.5
WALK_SPREAD = 0.15
# ... and the three detections span at least WALK_LEAST of its width: a standing face's box
# jitters by a pixel or two, and two steps of jitter agreeing sent its held box away
# (`crowd1080`: 14 more face-frames leaked). It is carried in the frame only where the camera
# moved that much over the three looks too: on a still camera, which of two near-equal speeds
# is the smaller is the motion estimate's noise.
WALK_LEAST = 0.5
# A face covered at the chin or brow (a bar, a hand, a scarf) gets a box taller than a face's
# (height 1.4x its width against 1.25x, placed 14 and 18 px faces a third covered): its width
# tells its size (docs/measurements.md)
SMALL_WIDTH = 0.75
WALK_MAX = 0.5          # TrackOptions.small_walk: the most a box grows on each side (of its width)
# ... and only a box narrower than WALK_GROW_UNDER px: the detector's box of a 10 px face is
# 24 px wide, of a 14 px face 31-32, of an 18 px face 39, of a 24 px face 48 (medians over
# three placed-truth seeds). A face that large is found again on its region's next look; the
# textures the regions find once at that width were masked about 2.5 s each at twice their
# width: 0.06-0.15 points of far over-masking on seeds 263, 267, 191, 270 and 271
# (docs/measurements.md "Seen-once boxes grown only under 40 px")
WALK_GROW_UNDER = 40.0
# Tracker._take_over: a new track within TAKE_OVER of a moving track's size of where that was
# last seen, + TAKE_OVER_RATE per second since, up to TAKE_OVER_MAX, takes its face over (seed
# 31's turning 18 px walker: 0.65 sizes 0.2 s after its last detection); "moving": its
# prediction has left its last box by TAKE_MOVED of its size
TAKE_OVER = 0.6
TAKE_OVER_RATE = 2.0
TAKE_OVER_MAX = 1.0
TAKE_MOVED = 0.5


LINGER_SPAN = 0.5


def _lingers(tr: _Track) -> bool:
    """The track moved less in the frame than in the scene over its last LINGER_SPAN seconds
    of detections (from its earliest detection in them to its last; two detections a frame
    apart at the edge, where the box is cut, say too little)."""
    if len(tr.times) < 2:
        return False
    i = bisect.bisect_left(tr.times, tr.times[-1] - LINGER_SPAN)
    i = min(i, len(tr.times) - 2)
    a, b = tr.boxes[i], tr.boxes[-1]
    fa, fb = a + _twice(tr.cams[i].offset), b + _twice(tr.cams[-1].offset)
    return _speed(fb - fa) < _speed(b - a)


def _speed(v) -> float:
    """How fast a box's centre moves with box velocity `v`."""
    return float(np.hypot(v[0] + v[2], v[1] + v[3])) / 2


def _size(box) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def _small(box, small: float, cut: bool) -> bool:
    """A small face's box (TrackOptions.small): its longer side under `small`, or, unless the
    frame edge `cut` it (narrowed: a face entering or leaving), its width under SMALL_WIDTH of
    it."""
    return _size(box) < small or (not cut and box[2] - box[0] < SMALL_WIDTH * small)


def _grow_from_edges(box: np.ndarray, sides: tuple) -> np.ndarray:
    """The box grown by EDGE_GROW of its width (height) on the side opposite each frame edge it
    touches (left, top, right, bottom)."""
    out = np.array(box, dtype=np.float64)
    gw, gh = EDGE_GROW * (out[2] - out[0]), EDGE_GROW * (out[3] - out[1])
    left, top, right, bottom = sides
    if left and not right:
        out[2] += gw
    if right and not left:
        out[0] -= gw
    if top and not bottom:
        out[3] += gh
    if bottom and not top:
        out[1] -= gh
    return out


def _pairs(cost: np.ndarray) -> list:
    """(row, column) of the least-cost assignment (Hungarian) where the cost is under
    _NO_MATCH."""
    # imported here: a re-render from a coordinate file (boxes.py) never tracks, and
    # scipy.optimize costs about a second of start-up
    from scipy.optimize import linear_sum_assignment
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH]


def _found_by(score: float) -> str:
    """The source of a detection's row: `followed` (by its picture: no score) or `detected`."""
    return "followed" if score != score else "detected"


def _twice(v) -> np.ndarray:
    """(x, y) -> (x, y, x, y): a point as the offset of a box's two corners (np.tile, without
    its overhead: the tracker asks for it for every box of every frame)."""
    v = np.asarray(v, np.float64)
    return np.concatenate((v, v))


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


class Tracker:
    """Streaming tracker: push each frame's detections in presentation order; get back the
    frames whose masks are final (in the same order); flush at the end of the stream."""

    def __init__(self, options: TrackOptions | None = None, frame_size=None):
        self.o = options or TrackOptions()
        self.frame_size = frame_size            # (w, h): enables the longer lead at edges
        self._centre = None if frame_size is None else _twice(np.asarray(frame_size) / 2)
        self.tracks: list[_Track] = []
        self.pending: deque = deque()          # (key, t) not yet released
        self.next_id = 0
        self.last_t = None
        self.cam = _STILL                       # camera motion accumulated so far
        self.ending = None                      # flush(at_end): the first pending frame's time

    # -- association ------------------------------------------------------------------------
    def _cost(self, boxes: np.ndarray, dets: np.ndarray, reach=0.6,
              ratio: float = 2.0) -> np.ndarray:
        """Assignment cost of each detection to each of `boxes` (a track's prediction or last
        box): 1 - IoU where the IoU is at least `match_iou`, else, where the centres are under
        `reach` of the box's size apart (a number, or one per row) and the sizes within
        `ratio` of each other, 0.9 + a tenth of that distance; else _NO_MATCH."""
        iou = iou_matrix(boxes, dets)
        dist, r = centre_distance(boxes, dets)
        near = (dist < reach) & (r > 1 / ratio) & (r < ratio)
        return np.where(iou >= self.o.match_iou, 1.0 - iou,
                        np.where(near, 0.9 + 0.1 * dist, _NO_MATCH))

    def _usual_hold(self, tr: _Track) -> float:
        """Seconds the track's mask stays after its last detection (before the video's end)."""
        if self.o.small_hold > self.o.hold and _small(tr.boxes[-1], self.o.small, tr.cut):
            return self.o.small_hold
        return self.o.hold

    def _hold(self, tr: _Track) -> float:
        """`_usual_hold`, or to the video's last frame for a small face's track of two or
        more detections, not last seen cut by the frame edge, whose hold reaches the frames
        `flush` decides at the video's end (`ending`)."""
        hold = self._usual_hold(tr)
        if self.ending is not None and hold > self.o.hold and \
                len(tr.times) >= END_DETECTIONS and not tr.cut and \
                tr.times[-1] + hold >= self.ending - 1e-9:
            return math.inf
        return hold

    def _associate(self, t: float, dets: Detections) -> None:
        active = [tr for tr in self.tracks if t - tr.times[-1] <= self._hold(tr) + 1e-9]
        frame_boxes = dets.boxes.astype(np.float64).reshape(-1, 4)
        boxes = frame_boxes - _twice(self.cam.offset)
        scores = [float(s) for s in dets.scores]
        matched, grown = set(), []
        if active and len(boxes):
            preds = np.stack([tr.predict(t) for tr in active])
            for r, c in _pairs(self._cost(preds, boxes)):
                active[r].add(t, boxes[c], scores[c])
                matched.add(c)
                grown.append(active[r])
        if self.o.bridge > self.o.hold and len(matched) < len(boxes):
            grown += self._bridge(t, boxes, scores, matched)
        self._confirm_walks(t, grown)
        if self.o.small_walk > 0 and active and len(matched) < len(boxes):
            self._link_walkers(t, active, frame_boxes, boxes, scores, matched)
        started = [self._start(t, frame_boxes[c], boxes[c], scores[c])
                   for c in range(len(boxes)) if c not in matched]
        if started and active:
            self._take_over(t, active, grown, started)
        self.tracks += started
        # each track that took one of this frame's detections: its edge flag
        added = [tr for tr in self.tracks if len(tr.cuts) < len(tr.times)] if len(boxes) else []
        if added:
            boxes_now = np.stack([tr.boxes[-1] for tr in added]) + _twice(self.cam.offset)
            for tr, c in zip(added, self._sides(boxes_now).any(axis=1)):
                tr.cuts.append(bool(c))
                tr.cams.append(self.cam)

    def _start(self, t: float, frame_box, box, score: float) -> _Track:
        """A new track from one detection (`box` in the scene, `frame_box` in the frame)."""
        sides = self._edge_sides(frame_box)
        tr = _Track(self.next_id, [t], [box], [score], sides,
                    cuts=[any(sides)], cams=[self.cam])
        self.next_id += 1
        return tr

    def _confirm_walks(self, t: float, grown: list) -> None:
        """Walk links (`_link_walkers`) among the tracks `grown` by a third detection on this
        frame: kept where it walks on (`_Track.walks_on`), otherwise undone, the two faces
        tracked apart again, the third detection the second face's."""
        for tr in grown:
            if tr.parts is None or len(tr.times) != 3:
                continue
            if not tr.walks_on():
                first, second = tr.parts
                second.add(t, tr.boxes[-1], tr.scores[-1])
                tr.times, tr.boxes, tr.scores = first.times, first.boxes, first.scores
                tr.cuts, tr.cams = first.cuts, first.cams
                tr.smoothed, tr.walks = first.smoothed, first.walks
                self.tracks.append(second)
            tr.parts = None

    def _take_over(self, t: float, active: list, grown: list, started: list) -> None:
        """A track of two or more detections that this frame did not find, where a new track
        starts on its last detected box (IoU over `match_iou`) or, if the track was moving,
        near it (centres within TAKE_OVER of its size + TAKE_OVER_RATE per
        second since, up to TAKE_OVER_MAX; the pairs of least total distance): the new track masks
        that face from now on, so the old one's hold ends here (`_Track.taken`; the first
        take-over stands). A face that slowed or turned is not where constant
        velocity carried it: the old track's held box went on along its old course, away
        from the face, a trail over the background (docs/measurements.md "Holds ended where a
        new track takes over"). Linking the two instead (OC-SORT's observation-centric
        recovery) cost the new track its lead box, which covers the face before its first
        detection (`fastpan720` 95.65 -> 95.48%)."""
        grew = {id(tr) for tr in grown}
        lost = [tr for tr in active if len(tr.times) > 1 and id(tr) not in grew
                and tr.times[-1] < t - 1e-9 and tr.taken is None]
        if not lost:
            return
        last = np.stack([tr.boxes[-1] for tr in lost])
        # Moving: the prediction for now has left the last box by TAKE_MOVED of its size. Only
        # then does the held box trail away from where the face was last seen; a standing
        # face's hold stays on it, and a neighbour found beside it (not on its box) must not
        # end that hold: no reach beyond the IoU.
        moved = np.diagonal(centre_distance(last, np.stack([tr.predict(t) for tr in lost]))[0])
        since = np.array([t - tr.times[-1] for tr in lost])
        reach = np.where(moved >= TAKE_MOVED,
                         np.minimum(TAKE_OVER + TAKE_OVER_RATE * since, TAKE_OVER_MAX), 0.0)
        first = np.stack([tr.boxes[0] for tr in started])
        for r, _ in _pairs(self._cost(last, first, reach[:, None], WALK_LINK_RATIO)):
            lost[r].taken = t

    def _bridge(self, t: float, boxes: np.ndarray, scores: list, matched: set) -> list:
        """Tracks of two or more detections, past their hold but within `bridge` seconds of
        their last detection, take a detection the first stage left where they predict it (IoU
        over `match_iou`): TrackOptions.bridge. Seen-once tracks are left to _link_walkers (a
        faint box seen once ahead of a walking face would take the face's own track and its
        lead box). `window` reaches past the hold to `bridge`, so every frame of the gap is
        decided with the detection that closes it; the tracker remembers a track for
        `longest_hold`. Returns the tracks continued."""
        reach = min(self.o.bridge, self.o.longest_hold)
        dormant = [tr for tr in self.tracks if len(tr.times) > 1
                   and self._hold(tr) + 1e-9 < t - tr.times[-1] <= reach + 1e-9]
        free = [c for c in range(len(boxes)) if c not in matched]
        if not dormant or not free:
            return []
        continued = []
        for r, c in _pairs(self._cost(np.stack([tr.predict(t) for tr in dormant]),
                                      boxes[free], reach=0.0)):
            dormant[r].add(t, boxes[free[c]], scores[free[c]])
            matched.add(free[c])
            continued.append(dormant[r])
        return continued

    def _link_walkers(self, t: float, active: list, frame_boxes: np.ndarray, boxes: np.ndarray,
                      scores: list, matched: set) -> None:
        """A small face seen once, then not where it was but nearby on a later look, may be one
        walking face, not two. Left as two tracks, each carries its held and lead boxes
        (`small_hold`, `small_lead`, grown by `small_walk`) where the face no longer is or
        not yet was: on placed truth that trail was most of the far over-masking. So a
        detection the first stage left is linked to a seen-once small track (not one cut by
        the frame edge) of about its size within WALK_LINK sizes, + WALK_LINK_RATE per second
        since that track's detection, up to WALK_LINK_MAX (the pairs of least total distance,
        Hungarian). The track then predicts the walk's next place; until a third detection, it
        is masked as its two parts were (`_Track.views`), and a third detection not on the walk
        undoes the link (`_confirm_walks`): a standing face found next to one missed keeps
        both faces' boxes (docs/measurements.md "Walkers linked")."""
        under = WALK_LINK_UNDER * self.o.small
        lonely = [tr for tr in active if len(tr.times) == 1 and tr.times[0] < t - 1e-9
                  and not tr.edge and _size(tr.boxes[0]) < under]
        if not lonely:
            return
        dist, ratio = centre_distance(np.stack([tr.boxes[0] for tr in lonely]), boxes)
        since = np.array([t - tr.times[0] for tr in lonely])
        reach = np.minimum(WALK_LINK + WALK_LINK_RATE * since, WALK_LINK_MAX)[:, None]
        ok = (dist <= reach) & (ratio > 1 / WALK_LINK_RATIO) & (ratio < WALK_LINK_RATIO) \
            & (box_sizes(boxes) < under)[None, :]
        ok[:, sorted(matched)] = False
        if not ok.any():
            return
        for r, k in _pairs(np.where(ok, dist, _NO_MATCH)):
            tr = lonely[r]
            tr.parts = (_Track(tr.id, list(tr.times), list(tr.boxes), list(tr.scores), tr.sides,
                               cuts=list(tr.cuts),
                               cams=list(tr.cams)),
                        self._start(t, frame_boxes[k], boxes[k], scores[k]))
            tr.add(t, boxes[k], scores[k])
            matched.add(k)

    # -- per-frame decisions ----------------------------------------------------------------
    def _smoothed(self, tr: _Track, i: int) -> np.ndarray:
        got = tr.smoothed.get(i)
        if got is not None:
            return got
        t = tr.times[i]
        end = t + self.o.smooth + 1e-9
        lo = bisect.bisect_left(tr.times, t - self.o.smooth - 1e-9)
        hi = bisect.bisect_right(tr.times, end)
        box = _union(np.mean(tr.boxes[lo:hi], axis=0), tr.boxes[i])
        # Every frame of the window asks again: keep the box once no later detection can fall
        # in its window (detections come in time order).
        if self.last_t is not None and self.last_t >= end:
            tr.smoothed[i] = box
        return box

    def _zoomed(self, tr: _Track, i: int, box: np.ndarray, now: Camera) -> np.ndarray:
        """How far the camera's zoom since (or until) detection `i` moved each side of a
        scene box held (or led) from it to frame `now`: its frame box then, carried by the
        picture's motion between (`Camera`), less where the translation alone carries it.
        Zero without a frame size, or where no zoom was measured between (the two agree)."""
        then = tr.cams[i]
        if self.frame_size is None or now.zoom == then.zoom:
            return 0.0
        carried = self._centre + _twice(now.move) + math.exp(now.zoom - then.zoom) * (
            box + _twice(then.offset) - self._centre - _twice(then.move))
        return carried - _twice(now.offset) - box

    def _velocity(self, tr: _Track, at_end: bool) -> np.ndarray:
        """`_Track.velocity` less the drift the zoom gave the box between the two detections
        (a held or lead box is moved by the zoom on its own: `_zoomed`); kept until the
        track's next detection."""
        key = ("velocity", at_end)
        v = tr.walks.get(key)
        if v is None:
            v = tr.velocity(at_end)
            i, j = (-2, -1) if at_end else (0, 1)
            if len(tr.times) >= 2 and tr.times[j] > tr.times[i]:
                v = v - self._zoomed(tr, i, tr.boxes[i], tr.cams[j]) / (tr.times[j] - tr.times[i])
            tr.walks[key] = v
        return v

    def _box_at(self, tr: _Track, t: float, now: Camera):
        i = bisect.bisect_left(tr.times, t - 1e-9)
        if i < len(tr.times) and abs(tr.times[i] - t) <= 1e-9:
            return self._smoothed(tr, i), tr.scores[i], _found_by(tr.scores[i])
        has_prev, has_next = i > 0, i < len(tr.times)
        if has_prev and has_next:
            ta, tb = tr.times[i - 1], tr.times[i]
            a, b = self._smoothed(tr, i - 1), self._smoothed(tr, i)
            w = (t - ta) / (tb - ta)
            # Between two detections the face need not move in a straight line: each side
            # moves out by a quarter of its travel at the middle of the gap, nothing at its ends.
            box = a + (b - a) * w + np.abs(b - a) * (w * (1 - w)) * _OUTWARD
            return box, np.nan, "interpolated"
        if has_prev and t - tr.times[-1] <= self._hold(tr) + 1e-9 and \
                (tr.taken is None or t < tr.taken - 1e-9):
            last = self._smoothed(tr, len(tr.times) - 1)
            box = self._held(tr, last, t - tr.times[-1], now)
            if self.ending is not None and t - tr.times[-1] > self._usual_hold(tr):
                # held to the video's end (flush)
                box = box + END_GROW * _twice(box[2:] - box[:2]) * _OUTWARD
            return box, np.nan, "held"
        if has_next and not has_prev and tr.times[0] - t <= self._lead(tr) + 1e-9:
            first = self._smoothed(tr, 0)
            if tr.edge:
                first = _grow_from_edges(first, tr.sides)
            shift = np.clip(self._velocity(tr, False) * (t - tr.times[0]),
                            -(first[2] - first[0]), first[2] - first[0])
            zoomed = first + self._zoomed(tr, 0, first, now)
            box = _union(zoomed, zoomed + shift)
            if tr.edge:
                # entering through the edge, the face may walk in with the camera (a followed
                # subject) as well as with the scene; and near the edge, a zoom moves the
                # picture unlike the frame's measured translation, so two detections' scene
                # velocity does not say which (a 14 px face entering at the top: its lead box
                # drifted 30 px off it in 16 frames)
                box = _union(box, first + _twice(tr.cams[0].offset - now.offset))
            return self._walked(tr, box, tr.times[0] - t), np.nan, "lead"
        return None

    def _held(self, tr: _Track, last: np.ndarray, dt: float, now: Camera) -> np.ndarray:
        """The held box `dt` seconds after the track's last (smoothed) box `last` on frame
        `now`: that box, moved by the camera's zoom since (`_zoomed`), and where the track's
        own velocity carried it, at most a width on; a walking track's (_Track.walk) box
        carried on along its walk, at its last size scaled by the zoom since, in the frame
        where the camera moved and the track moved less in the frame than in the scene. A
        track last seen cut by the frame edge (a face leaving) whose detections over its last
        LINGER_SPAN seconds moved less in the frame than in the scene (`_lingers`: a face the
        camera follows, or one walking against the pan) is also masked where the frame last
        showed it, for `hold` (not a small face's longer hold): it leaves slower than the scene
        carries its box, as `_box_at`'s lead box allows for on the way in. Not a track seen
        once, nor one that stays in the scene (a texture at the edge as often as a face:
        placed truth's far over-masking grew by up to 0.13 points when every edge track was
        held so)."""
        box = self._carried(tr, last, dt, now)
        if tr.cut and dt <= self.o.hold + 1e-9 and _lingers(tr):
            box = _union(box, last + _twice(tr.cams[-1].offset - now.offset))
        return box

    def _carried(self, tr: _Track, last: np.ndarray, dt: float, now: Camera) -> np.ndarray:
        """The held box where the scene (or a walk) carries the track's last box: `_held`
        without the frame's place of a face leaving through the edge."""
        width = last[2] - last[0]
        walk, scene = None, tr.walk(False)
        if scene is not None:
            panned = np.hypot(*(tr.cams[-1].offset - tr.cams[-3].offset)) >= WALK_LEAST * width
            frame = tr.walk(True) if panned else None
            if frame is not None and _speed(frame[0]) < _speed(scene[0]):
                # a followed subject: where the frame carried its last box, as a scene box
                if frame[1]:
                    last = last + _twice(tr.cams[-1].offset - now.offset)
                    walk = frame[0]
            elif scene[1]:
                walk = scene[0]
        if walk is None:
            # carried along a walk, a face's drift under the zoom is in the walk's velocity
            last = last + self._zoomed(tr, -1, last, now)
            width = last[2] - last[0]
        # held to the video's end (flush), a walker's box stays where its usual hold took it
        walked = min(dt, self._usual_hold(tr))
        if walk is not None and _speed(walk) * walked > width:
            travel = _speed(walk) * walked
            centre = (walk[:2] + walk[2:]) / 2 * walked
            box = last + _twice(centre)
            if self.frame_size is not None and now.zoom != tr.cams[-1].zoom:
                # ... but not its growth: the box keeps the face's size under the zoom
                box = box + (math.exp(now.zoom - tr.cams[-1].zoom) - 1.0) / 2 * \
                    _twice(box[2:] - box[:2]) * _OUTWARD
            return box + min(WALK_SPREAD * (travel - width), width) * _OUTWARD
        shift = np.clip((walk if walk is not None else self._velocity(tr, True)) * dt,
                        -width, width)
        return self._walked(tr, _union(last, last + shift), dt)

    def _walked(self, tr: _Track, box, dt: float):
        """`box` grown for a small face seen once, `dt` seconds from its detection
        (TrackOptions.small_walk), if its box is narrower than WALK_GROW_UNDER."""
        if self.o.small_walk <= 0 or len(tr.times) > 1 or \
                not _small(tr.boxes[0], self.o.small, tr.edge):
            return box
        width = tr.boxes[0][2] - tr.boxes[0][0]
        if width >= WALK_GROW_UNDER:
            return box
        return box + min(self.o.small_walk * dt, WALK_MAX) * width * _OUTWARD

    def _sides(self, boxes: np.ndarray) -> np.ndarray:
        """Which frame edges (left, top, right, bottom: N x 4) each of `boxes` (frame pixels)
        touches, as a face cut by them does (`detect.edge_sides`)."""
        if self.frame_size is None:
            return np.zeros((len(np.reshape(boxes, (-1, 4))), 4), bool)
        return edge_sides(boxes, *self.frame_size)

    def _edge_sides(self, box) -> tuple:
        """`_sides` of one box, as a tuple of bools."""
        return tuple(bool(v) for v in self._sides(box)[0])

    def _lead(self, tr: _Track) -> float:
        """Seconds masked before the track's first detection."""
        lead = max(self.o.lookahead, self.o.hold) if tr.edge else self.o.lookahead
        if self.o.small_lead > lead and _small(tr.boxes[0], self.o.small, tr.edge):
            return self.o.small_lead
        return lead

    def _release(self, key, t, now: Camera) -> FrameMasks:
        boxes, ids, scores, sources = [], [], [], []
        for tr in (view for track in self.tracks for view in track.views()):
            if tr.times[0] - t > self._lead(tr) + 1e-9 or t - tr.times[-1] > self._hold(tr) + 1e-9:
                continue
            got = self._box_at(tr, t, now)
            if got is None:
                continue
            boxes.append(got[0])
            ids.append(tr.id)
            scores.append(got[1])
            sources.append(got[2])
        out = np.array(boxes, np.float64).reshape(-1, 4) + _twice(now.offset)
        return FrameMasks(key, t, out, np.array(ids, np.int64), np.array(scores, np.float64),
                          sources)

    def _prune(self) -> None:
        if not self.pending:
            oldest = self.last_t if self.last_t is not None else 0.0
        else:
            oldest = self.pending[0][1]
        hold = self.o.longest_hold
        self.tracks = [tr for tr in self.tracks
                       if tr.times[-1] >= oldest - hold - self.o.smooth - 1e-6
                       or (self.last_t is not None and self.last_t - tr.times[-1] <= hold)]

    # -- public ------------------------------------------------------------------------------
    def push(self, key, t: float, dets: Detections) -> list[FrameMasks]:
        if self.last_t is not None and t <= self.last_t:
            raise ValueError(f"frames must come in presentation order ({t} after {self.last_t})")
        self.last_t = t
        if not self.o.enabled:
            n = len(dets)
            return [FrameMasks(key, t, dets.boxes.astype(np.float64).reshape(-1, 4),
                               np.full(n, -1, np.int64), dets.scores.astype(np.float64),
                               [_found_by(s) for s in dets.scores])]
        shift = dets.shift
        if shift is not None:
            d, c = np.asarray(shift, np.float64), self.cam
            # a new record each time: the tracks keep the ones they were detected under
            self.cam = Camera(c.offset + d, c.zoom + math.log(dets.zoom), dets.zoom * c.move + d)
        self._associate(t, dets)
        self.pending.append((key, t, self.cam))
        out = []
        while self.pending and self.pending[0][1] <= t - self.o.window:
            out.append(self._release(*self.pending.popleft()))
        self._prune()
        return out

    def flush(self, at_end: bool = True) -> list[FrameMasks]:
        """The frames still pending, decided with everything pushed. `at_end`: the stream ends
        where the video does (not at a chunk's tail margin): a small face held when the first
        of them begins stays masked to the last frame, if its track has two or more detections
        (a darkened or covered face that the looks miss for more than its hold would otherwise
        be bare for the video's last frames, with no later detection to mask back from; not a
        seen-once track, as often a texture, nor one last seen at the frame edge, which may
        have left: docs/measurements.md)."""
        self.ending = self.pending[0][1] if at_end and self.pending else None
        try:
            out = [self._release(*p) for p in self.pending]
        finally:
            self.ending = None
        self.pending.clear()
        return out
