"""The one data path: plan -> worker (one per chunk) -> stitch.

Every run goes through these three functions, whether it is one chunk on a laptop, a process
pool on a workstation, or Step Functions fanning chunks out to Lambdas. They take URIs (local
paths or s3://) and do all their I/O through `storage`, so they carry no AWS code.

plan    probes the source (every packet's pts, keyframes, rotation, audio), cuts it by time
        into chunks at exact frame boundaries and writes `manifest.json` to the work area.
worker  decodes one chunk plus a margin before and after it (from the keyframe at or before
        the margin: never the whole file), detects and tracks faces over all of it so tracks
        behave as in one pass, masks and encodes only its own frames to a video-only H.264
        segment, and writes its data rows and stats beside it (and, for the review page,
        the detector's near-misses on its own frames: never data rows, never masked).
stitch  joins the segments without re-encoding, muxes the source's audio once, merges the
        data rows (frame numbers and track ids made global), draws the heatmap, writes the
        JSON summary (and the review page), and publishes the outputs only when all of them
        are complete.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import json
import math
import os
import platform
import tempfile
import time
from fractions import Fraction

import numpy as np

from . import cost, data as datamod, follow, frameindex, storage as st
from ._version import __version__
from .boxes import BoxTable, Replay
from .detect import LOOKS_REMEMBERED, Detections, FaceDetector, FinePass, available_cpus
from .discover import open_for_writing
from .errors import ChunkError, InputChanged, InputError, OptionError, OutputError
from .mask import Masker, load_mask_image, scale_boxes
from .options import QUALITY, Options
from .outputs import data_uri
from .track import Tracker, TrackOptions
from .publish import Publisher
from .regions import REGION_SOURCE, Selection
from .verify import check_output, check_segment
from .video import (DISK_FULL, SegmentEncoder, VideoInfo, iter_frames, mp4_language, prefetch,
                    probe)

MANIFEST = "manifest.json"
INDEX = "index.json"        # every frame's pts: what stitch's self-check compares against
DEFAULT_CHUNK_SECONDS = 30.0


# ------------------------------------------------------------------------------ plan

def margins(options: Options, info: VideoInfo | None = None,
            frame: tuple[int, int] | None = None) -> tuple[float, float]:
    """Seconds decoded before and after a chunk so detection and tracking match a single
    pass (the reuse period of `info`'s frame rate, else about `reuse_s`; the faces followed
    by their picture where `info`'s or `frame`'s (width, height) has them: follow.applies,
    and where neither is given)."""
    if options.boxes:
        return 0.0, 0.0     # boxes from a file: no detection, no tracking, nothing to see
    reuse = 0.0         # detections equal a single pass's once a reuse period has begun
    if options.reuse_s and info is None:
        reuse = options.reuse_s + 0.1
    elif options.reuse_s:
        reuse = (reuse_frames(options, info) * options.detect_step + 1) / info.mean_fps
    if options.fine_cycle and QUALITY[options.quality].get("persist"):
        # the regions' evidence of their last looks (detect.LOOKS_REMEMBERED), and the faces
        # followed by their picture since a look found them (follow.looks_remembered)
        fps = info.mean_fps if info is not None else 30.0
        if info is not None:
            frame = (info.display_width, info.display_height)
        looks = LOOKS_REMEMBERED + (follow.looks_remembered() if _follows(options, frame)
                                    else 0)
        reuse += looks * options.fine_cycle * options.detect_step / fps
    if not options.track:
        return reuse, 0.0
    track = TrackOptions.of(options)
    w = track.window
    # a small face's mask is held longer than the look-ahead: its last detection before
    # the chunk must be in the lead-in
    return w + max(w, track.longest_hold) + 0.5 + reuse, w + 0.05


def _follows(options: Options, frame: tuple[int, int] | None) -> bool:
    """Whether the preset follows small faces by their picture in frames of `frame`'s
    (width, height) size (follow.applies; any size where it is not known)."""
    return bool(QUALITY[options.quality].get("follow")) and (frame is None
                                                            or follow.applies(*frame))


def end_lead_in(options: Options, info: VideoInfo | None = None) -> float:
    """Seconds before the video's last frame from which a decode that runs to the video's end
    must start (whatever its chunk's own start): the tracker decides the last `window`
    seconds at the end (track.Tracker.flush), holding a small face of two or more detections
    to the last frame, and the second-last of those may be a hold before the last. Like a
    chunk's own start, that needs `margins`' lead-in before it, and one hold more."""
    if options.boxes or not options.track:
        return 0.0
    track = TrackOptions.of(options)
    return track.window + track.longest_hold + margins(options, info)[0]


def probe_source(source: str, storage=None, pin: dict | None = None) -> VideoInfo:
    """Probe a local file directly, an S3 object through range reads (of the pinned version
    when `pin` is given): from the container's own index where it can be trusted
    (`frameindex`: MP4/MOV/MKV, no decoding), else by decoding every frame (`video.probe`)."""
    storage = storage or st.get_storage(source)
    local = storage.local_path(source)
    if local is not None:
        info = frameindex.index(lambda: open(local, "rb"), source, os.path.getsize(local)) \
            or probe(local, source)
        check_unchanged(source, pin, storage)
        return info
    size = (pin or {}).get("size") or storage.stat(source).size
    info = frameindex.index(lambda: storage.open_read(source, pin=pin), source, size)
    if info is not None:
        return info
    with storage.open_read(source, pin=pin) as f:
        return probe(f, source)


def check_unchanged(source: str, pin: dict | None, storage=None) -> None:
    """InputChanged when the source is no longer the version `pin` names or, locally, when
    another program still has it open for writing (an upload that paused): what was read of
    it may be a part of it."""
    storage = storage or st.get_storage(source)
    storage.check_pin(source, pin)
    local = storage.local_path(source)
    if local is not None and open_for_writing(local):
        raise InputChanged(f"{source}: another program still has the input open for writing "
                           "(an upload that paused?); nothing was published. It is processed "
                           "once it is complete.")


def pin_source(source: str, storage=None) -> dict:
    """The version of the source a job is planned on (`storage.Stat` as a dict)."""
    return (storage or st.get_storage(source)).stat(source).to_dict()


def plan(source: str, *, outputs: dict, options: Options, work: str,
         chunk_seconds: float | None = None, chunks: int | None = None,
         storage=None, info: VideoInfo | None = None, overwrite: bool = False,
         publish_token: str | None = None, pin: dict | None = None,
         job: dict | None = None) -> dict:
    """Probe the source (unless `info` is its probe already) and cut it into chunks; write
    and return the manifest. `overwrite` and `publish_token` (the output claim's token) go
    to stitch's publisher. `pin` is the source version every later read must see (taken
    now when not given); `job` (id and such, from the job layer) is recorded as is."""
    t0 = time.perf_counter()
    source, work = os.fspath(source), os.fspath(work)
    pin = pin or pin_source(source, storage)
    info = info or probe_source(source, storage, pin)
    Selection.of(options)   # options that only fail together stop the job here
    if options.boxes:       # a bad boxes file stops the job before any chunk runs
        BoxTable.read(options.boxes, len(info.pts), info.display_width, info.display_height)
    tb = info.tb
    times = (np.asarray(info.pts, dtype=np.int64) - info.first_pts) * float(tb)
    duration = info.duration_s
    if chunks:
        n = max(1, int(chunks))
    else:
        cs = float(chunk_seconds or DEFAULT_CHUNK_SECONDS)
        if cs <= 0:
            raise OptionError(f"chunk_seconds must be above 0 (got {chunk_seconds!r}).")
        n = max(1, math.ceil(duration / cs - 1e-9))
    n = min(n, len(info.pts))
    if not info.seekable:
        n = 1           # timestamps rebuilt by counting frames from the start: no seeking
    # Cut at the frame nearest to each k * duration / n (exact frame boundaries, by pts).
    cut_idx = sorted({int(np.searchsorted(times, k * duration / n)) for k in range(1, n)})
    cut_idx = [i for i in cut_idx if 0 < i < len(info.pts)]
    bounds = [0] + cut_idx + [len(info.pts)]
    pre, post = margins(options, info)
    end_lead = end_lead_in(options, info)
    keys = np.asarray(info.keyframes, dtype=np.int64)
    chunk_list = []
    for k in range(len(bounds) - 1):
        i0, i1 = bounds[k], bounds[k + 1]
        start = info.pts[i0]
        stop = info.pts[i1] if i1 < len(info.pts) else None
        tail = None
        if stop is not None:
            tail_i = int(np.searchsorted(times, times[i1] + post, side="right"))
            tail = info.pts[tail_i] if tail_i < len(info.pts) else None
        # a decode to the video's end decides its last frames as a single pass does (the
        # tracker's flush(at_end)); only a chunk shorter than about 2.6 s reads more for it
        begin = times[i0] - pre
        if tail is None:
            begin = min(begin, times[-1] - end_lead)
        lead_i = int(np.searchsorted(times, begin - 1e-9))
        lead = info.pts[lead_i]
        seek = int(keys[max(0, np.searchsorted(keys, lead, side="right") - 1)])
        chunk_list.append({"index": k, "start_pts": start, "stop_pts": stop, "lead_pts": lead,
                           "lead_index": lead_i,
                           "tail_pts": tail, "seek_pts": seek, "frames_expected": i1 - i0,
                           "start_s": float(times[i0]),
                           "stop_s": float(times[i1]) if i1 < len(times) else duration})
    info_d = info.to_dict()
    info_d["pts"] = []          # the manifest stays small: workers do not need every pts
    info_d["keyframes"] = []
    manifest = {"version": 1, "blurfaces": __version__, "source": source, "work": work,
                "outputs": outputs, "options": options.to_dict(), "info": info_d,
                "margins_s": [pre, post], "chunks": chunk_list, "overwrite": bool(overwrite),
                "publish_token": publish_token, "source_version": pin, "job": job or {},
                "plan_seconds": time.perf_counter() - t0}
    work_store = st.get_storage(work)
    work_store.write_json(st.join(work, INDEX), {"pts": [int(p) for p in info.pts]})
    work_store.write_json(st.join(work, MANIFEST), manifest)
    return manifest


def load_manifest(work: str) -> dict:
    return st.get_storage(work).read_json(st.join(work, MANIFEST))


# ------------------------------------------------------------------------------ worker

_DETECTORS: dict = {}


def _detector(options: Options, threads: int | None, tiles: bool,
              frame: tuple[int, int] | None = None) -> FaceDetector:
    """The job's detector (cached per process): the quality preset's passes. With the fine
    pass on, "auto" tiles stay off (the fine pass sees small faces at 2x, tiles at ~1.2x) and
    the whole-frame pass runs at `Options.whole_size_for` the `frame`'s (width, height)
    (`--detect-size`, else the preset's, grown for large frames; without a frame size:
    `Options.whole_size`)."""
    preset = QUALITY[options.quality]
    fine = FinePass(cycle=options.fine_cycle, network=preset["fine_network"],
                    threshold=preset["fine_threshold"],
                    persist=preset.get("persist", False),
                    weak=preset.get("weak"),
                    sure_over=preset.get("sure_over"),
                    persist_edge=preset.get("persist_edge", False),
                    follow=_follows(options, frame)) \
        if options.fine_cycle else None
    size = options.whole_size_for(*frame) if frame is not None else options.whole_size
    if fine is not None:
        tiles = tiles and options.tiles == "on"
    # counted in detection frames; without tracking nothing would mask the frames between
    whole_every = (max(1, preset.get("whole_every", 1) // options.detect_step)
                   if fine is not None and options.track else 1)
    key = (size, options.score_threshold, tiles, fine, threads, options.precision, whole_every)
    if key not in _DETECTORS:
        _DETECTORS.clear()
        # on two cores the next frames' regions run on one of their own (FaceDetector.ahead,
        # up to 720p: on one core there is nothing to overlap; on more, one thread for the
        # regions is slower than all of them inline)
        _DETECTORS[key] = FaceDetector(detect_size=size, threshold=options.score_threshold,
                                       tiles=tiles, fine=fine, threads=threads,
                                       precision=options.precision, whole_every=whole_every,
                                       ahead=(threads or available_cpus()) == 2)
    return _DETECTORS[key]


def reuse_frames(options: Options, info: VideoInfo) -> int:
    """Detection frames per reuse period (still.py) of a job: `options.reuse_s` seconds, a
    whole number of fine-pass cycles; 0 when reuse is off."""
    if not options.reuse_s or not options.fine_cycle:
        return 0
    cycle = options.fine_cycle
    return cycle * max(1, round(options.reuse_s * info.mean_fps / options.detect_step / cycle))


def _masker(options: Options, tmp: str) -> Masker:
    image = None
    if options.mask == "image":
        uri = options.mask_image
        if st.is_s3(uri):
            local = os.path.join(tmp, "mask" + os.path.splitext(uri)[1])
            st.get_storage(uri).download(uri, local)
            uri = local
        image = load_mask_image(uri)
    return Masker(options.mask, mask_image=image, ellipse=options.ellipse, color=options.color,
                  draw_scores=options.draw_scores)


def segment_uri(work: str, index: int) -> str:
    return st.join(work, f"segments/chunk-{index:05d}.nut")


def part_uri(work: str, index: int) -> str:
    return st.join(work, f"parts/chunk-{index:05d}.json")


def worker(manifest: dict, index: int, *, threads: int | None = None, progress=None) -> dict:
    """Process chunk `index`: returns (and writes) its part record."""
    t0 = time.perf_counter()
    chunk = manifest["chunks"][index]
    info = VideoInfo.from_dict(manifest["info"])
    options = Options.from_dict(manifest["options"])
    work = manifest["work"]
    work_store = st.get_storage(work)
    size = (info.display_width, info.display_height)
    if options.boxes:       # re-render from a coordinate file: no model, no tracking
        detector = None
        frames = sum(c["frames_expected"] for c in manifest["chunks"])
        tracker = Replay(BoxTable.read(options.boxes, frames, *size), chunk["lead_index"])
    else:
        detector = _chunk_detector(options, info, threads)
        tracker = Tracker(TrackOptions.of(options), size)
    with tempfile.TemporaryDirectory(prefix="blurfaces-chunk-",
                                     dir=work_store.local_path(work)) as tmp:
        segment = _Segment(work_store, work, index, tmp)
        encoder = SegmentEncoder(segment.path, info, crf=options.crf, preset=options.preset,
                                 threads=threads or 0)
        frames = _ChunkFrames(chunk, info, options, _masker(options, tmp), encoder, progress)
        with _open_source(manifest) as src:
            _detect_track_mask(src, chunk, info, options, detector, tracker, frames, threads)
        frames.report_progress()
        _check_index(manifest, chunk, frames.n_own)
        check_segment(segment.path, frames=frames.n_own, chunk=chunk)
        segment.publish()
    return _write_part(work_store, work, index, segment.target, frames,
                       detector.still if detector is not None else None, t0)


def _check_index(manifest: dict, chunk: dict, n_own: int) -> None:
    """A chunk whose decoded frames differ in number from the container's own index (plan
    read it without decoding: blurfaces.frameindex) is the input's fault, not ours."""
    if n_own != chunk["frames_expected"] and \
            (manifest.get("job") or {}).get("index") == "demuxer":
        raise InputError(f"{manifest['source']}: chunk {chunk['index']} "
                         f"({chunk['start_s']:.2f}-{chunk['stop_s']:.2f} s) decodes to {n_own} "
                         f"frames where the container's index lists {chunk['frames_expected']}"
                         ": the file is damaged. Re-export or re-download it; nothing was "
                         "published.")


def _chunk_detector(options: Options, info: VideoInfo, threads: int | None) -> FaceDetector:
    """The process's detector for this job, with no camera motion or kept detections from
    an earlier chunk or job, and the job's reuse period (`--reuse`, still.py)."""
    frame = (info.display_width, info.display_height)
    detector = _detector(options, threads, options.tiles_for(*frame), frame)
    detector.reset(reuse_frames=reuse_frames(options, info), near_misses=bool(options.review))
    return detector


class _Segment:
    """Where a chunk's video-only segment is encoded (beside its final place in a local work
    area, else in `tmp`) and how it gets there."""

    def __init__(self, work_store, work: str, index: int, tmp: str):
        self.store, self.target = work_store, segment_uri(work, index)
        self.local = work_store.local_path(self.target)
        if self.local is not None:
            os.makedirs(os.path.dirname(self.local), exist_ok=True)
            self.path = self.local + f".{os.getpid()}.part"
        else:
            self.path = os.path.join(tmp, "segment.nut")

    def publish(self) -> None:
        if self.local is not None:
            os.replace(self.path, self.local)
        else:
            self.store.upload(self.path, self.target)


@contextlib.contextmanager
def _open_source(manifest: dict):
    """The source as a local path or an open S3 object, pinned to the planned version (a
    local file is checked before and after it is read)."""
    source, pin = manifest["source"], manifest.get("source_version")
    store = st.get_storage(source)
    local = store.local_path(source)
    if local is None:
        handle = store.open_read(source, pin=pin)
        try:
            yield handle
        finally:
            handle.close()
        return
    store.check_pin(source, pin)
    yield local
    store.check_pin(source, pin)        # not changed while it was read


# frames decoded ahead of detection whose fine-pass regions run meanwhile (detect.ahead):
# fewer than a fine-pass cycle (8), so a region is never due twice in the window
AHEAD_FRAMES = 4


def _detections(frames, detector: FaceDetector | None, first: int, every: int, count: int):
    """(frame, detections) in frame order: the detector on every `every`-th frame of the
    video (counted from its first, `first` being this one's index, so every chunking picks
    the same frames; the first and the last of them, of the video's `count` frames, sweep
    the whole fine grid); empty detections between, which the tracker fills (and on every
    frame without a detector: boxes from a file)."""
    ends = (0, (count - 1) // every * every)
    window: collections.deque = collections.deque()     # (index, frame), the next ones
    read = first
    upcoming = iter(frames)
    try:
        while True:
            while len(window) <= AHEAD_FRAMES:
                frame = next(upcoming, None)
                if frame is None:
                    break
                if detector is not None and read % every == 0 and read not in ends:
                    detector.ahead(frame.rgb, read // every)
                window.append((read, frame))
                read += 1
            if not window:
                return
            gidx, frame = window.popleft()
            due = detector is not None and gidx % every == 0
            yield frame, (detector.detect(frame.rgb, gidx // every, sweep=gidx in ends) if due
                          else Detections.empty())
    finally:
        if detector is not None:
            detector.drop_pending()     # a consumer that stopped early leaves no runs queued
        frames.close()          # stops the decode thread before the source closes


def _detect_track_mask(src, chunk: dict, info: VideoInfo, options: Options,
                       detector: FaceDetector, tracker: Tracker, frames: "_ChunkFrames",
                       threads: int | None) -> None:
    """Decode the chunk with its margins, detect, track, and hand every tracked frame to
    `frames` (which masks and encodes the chunk's own). Three threads: decode, detection (in
    frame order: the fine pass and the camera motion depend on it), and this one (tracking,
    masks), which hands frames to the encoder's thread; onnxruntime releases the GIL."""
    tb = float(info.tb)
    pipeline = prefetch(_detections(prefetch(iter_frames(
        src, info, chunk["seek_pts"], chunk["lead_pts"], chunk["tail_pts"],
        threads=threads or 0)), detector, chunk.get("lead_index", 0), options.detect_step,
        info.n_packets),
        depth=2)
    try:
        for frame, dets in pipeline:
            frames.decoded(frame, dets)
            t = (frame.pts - info.first_pts) * tb
            for fm in tracker.push(frame.pts, t, dets):
                frames.tracked(fm)
        # the decode ran to the video's end, not to a tail margin
        for fm in tracker.flush(at_end=chunk["tail_pts"] is None):
            frames.tracked(fm)
        frames.encoder.close()
    finally:
        pipeline.close()            # both threads stopped (joined) on any exit
        frames.encoder.stop()


class _ChunkFrames:
    """What becomes of each tracked frame of a chunk: lead-margin frames are seen for
    tracking only; the chunk's own frames are masked, encoded and give their data rows; the
    tail margin's boxes are kept (`tail`) so stitch can join track ids across chunks."""

    def __init__(self, chunk: dict, info: VideoInfo, options: Options, masker: Masker,
                 encoder: SegmentEncoder, progress=None):
        self.start, self.stop = chunk["start_pts"], chunk["stop_pts"]
        self.info, self.tb = info, float(info.tb)
        self.size = (info.display_width, info.display_height)
        # a coordinate file's boxes are masked as given
        self.mask_scale = 1.0 if options.boxes else options.mask_scale
        self.masker, self.encoder = masker, encoder
        self.selection = Selection.of(options)
        self.progress, self.pending_progress = progress, 0
        self.rows: list = []
        self.tail: list = []
        # each track's first detection in everything decoded (lead margin included):
        # track -> [pts, x1, y1, x2, y2]. Two chunks that saw that detection saw one track,
        # even where it was out of view at the boundary between them (stitch).
        self.births: dict = {}
        # the detector's near-misses on own frames, for the review page only (never masked,
        # never in the data files): [own frame number, x1, y1, x2, y2, score, its threshold]
        self.near: list = []
        self.n_decoded = 0                  # own frames decoded so far
        self.pictures: dict = {}            # pts -> picture, own frames awaiting their masks
        self.n_own = self.n_detections = 0

    def own(self, pts: int) -> bool:
        return pts >= self.start and (self.stop is None or pts < self.stop)

    def decoded(self, frame, dets: Detections) -> None:
        if self.own(frame.pts):
            self.pictures[frame.pts] = frame.rgb
            self.n_detections += len(dets)
            if dets.doubt is not None:
                for b, (sc, thr) in zip(dets.doubt, dets.doubt_scores):
                    self.near.append([self.n_decoded, math.floor(b[0]), math.floor(b[1]),
                                      math.ceil(b[2]), math.ceil(b[3]), round(float(sc), 4),
                                      round(float(thr), 4)])
            self.n_decoded += 1

    def tracked(self, fm) -> None:
        pts = fm.key
        for b, tr, src in zip(fm.boxes, fm.tracks, fm.sources):
            if src == "detected" and int(tr) not in self.births:
                self.births[int(tr)] = [pts, *(int(round(v)) for v in b)]
        if not self.own(pts) and (self.stop is None or pts < self.stop):
            return                      # lead margin: seen for tracking only
        w, h = self.size
        ib = scale_boxes(fm.boxes, self.mask_scale, w, h) if len(fm.boxes) \
            else np.zeros((0, 4), np.int64)
        keep = (ib[:, 2] > ib[:, 0]) & (ib[:, 3] > ib[:, 1])
        if not self.own(pts):
            self.tail.extend([pts, *map(int, b), int(tr)]
                             for b, tr in zip(ib[keep], fm.tracks[keep]))
            return
        keep &= self.selection.kept(ib, fm.tracks)
        rgb = self.pictures.pop(pts)
        boxes, scores = ib[keep], fm.scores[keep]
        self.masker.apply(rgb, boxes, scores)
        fixed = self.selection.always_at((pts - self.info.first_pts) * self.tb, w, h)
        self.masker.apply(rgb, fixed, whole=True)
        self.encoder.encode(rgb, pts)
        self._rows(pts, boxes, fm.tracks[keep], scores,
                   [s for s, k in zip(fm.sources, keep) if k])
        self._rows(pts, fixed, np.full(len(fixed), -1), np.full(len(fixed), np.nan),
                   [REGION_SOURCE] * len(fixed))
        self.n_own += 1
        self.pending_progress += 1
        if self.pending_progress >= 8:
            self.report_progress()

    def _rows(self, pts, boxes, tracks, scores, sources) -> None:
        t_ms = (pts - self.info.first_pts) * self.tb * 1000.0
        for b, tr, sc, src in zip(boxes, tracks, scores, sources):
            self.rows.append([pts, round(t_ms, 3), int(b[0]), int(b[1]), int(b[2]),
                              int(b[3]), int(tr), self.n_own,
                              None if np.isnan(sc) else round(float(sc), 4), src])

    def report_progress(self) -> None:
        if self.progress is not None and self.pending_progress:
            self.progress(self.pending_progress)
            self.pending_progress = 0


def _write_part(work_store, work: str, index: int, segment: str, frames: _ChunkFrames,
                still, t0: float) -> dict:
    """Write the chunk's part record (its rows and the tail margin's boxes, for stitch);
    return it without them."""
    part = {"index": index, "segment": segment, "frames": frames.n_own,
            "detections": frames.n_detections,
            # network runs saved on unchanged pictures (still.py)
            "regions": {"run": still.runs, "partial": still.partial, "reused": still.reused}
            if still is not None else {},
            "rows": frames.rows, "tail": frames.tail,
            "births": [[tr, *first] for tr, first in frames.births.items()],
            "near_misses": frames.near,
            "seconds": time.perf_counter() - t0, "pid": os.getpid()}
    work_store.write_json(part_uri(work, index), part)
    return {k: v for k, v in part.items()
            if k not in ("rows", "tail", "births", "near_misses")}


# ------------------------------------------------------------------------------ stitch

def _global_tracks(parts: list[dict]) -> list[dict]:
    """Map each chunk's local track ids to ids that continue across chunk boundaries, then
    renumber them 0, 1, ... in order of first appearance. A track continues the previous
    chunk's that has its box in that chunk's tail margin, else an earlier chunk's that began
    with the same detection (a held track out of view at the boundary)."""
    next_id = 0
    prev_tail: dict = {}
    prev_map: dict = {}
    born: dict = {}                 # (pts, box) of a track's first detection -> global id
    for part in parts:
        mapping: dict = {}
        births = {b[0]: tuple(b[1:]) for b in part.get("births", ())}
        if part["rows"] and prev_tail:
            for r in part["rows"]:
                key = (r[0], r[2], r[3], r[4], r[5])
                local = r[6]
                if local < 0 or local in mapping:
                    continue
                prev_local = prev_tail.get(key)
                if prev_local is not None and prev_local in prev_map \
                        and prev_map[prev_local] not in mapping.values():
                    mapping[local] = prev_map[prev_local]
        for r in part["rows"]:
            if r[6] >= 0 and r[6] not in mapping:
                known = born.get(births.get(r[6]))
                if known is not None and known not in mapping.values():
                    mapping[r[6]] = known
                else:
                    mapping[r[6]] = next_id
                    next_id += 1
        for local, key in births.items():
            if local in mapping:
                born.setdefault(key, mapping[local])
        for r in part["rows"]:
            r[6] = mapping.get(r[6], r[6]) if r[6] >= 0 else -1
        prev_tail = {(t[0], t[1], t[2], t[3], t[4]): t[5] for t in part["tail"]}
        prev_map = mapping
    order: dict = {}
    for part in parts:
        for r in part["rows"]:
            if r[6] >= 0 and r[6] not in order:
                order[r[6]] = len(order)
    for part in parts:
        for r in part["rows"]:
            if r[6] >= 0:
                r[6] = order[r[6]]
    return parts


def _versions() -> dict:
    import av
    import cv2
    import onnxruntime
    import pandas
    return {"blurfaces": __version__, "python": platform.python_version(),
            "av": av.__version__, "ffmpeg": av.library_versions.get("libavformat"),
            "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
            "numpy": np.__version__, "pandas": pandas.__version__}


def stitch(manifest: dict, *, timings: dict | None = None) -> dict:
    """Join the chunk segments and data parts into the final outputs; returns the summary."""
    t0 = time.perf_counter()
    work = manifest["work"]
    info = VideoInfo.from_dict(manifest["info"])
    options = Options.from_dict(manifest["options"])
    outputs = manifest["outputs"]
    work_store = st.get_storage(work)
    out_store = st.get_storage(outputs["video"])
    parts = []
    for c in manifest["chunks"]:
        uri = part_uri(work, c["index"])
        if not work_store.exists(uri):
            raise ChunkError(f"chunk {c['index']} ({c['start_s']:.2f}-{c['stop_s']:.2f} s) has "
                             f"no result in {work}: run its worker again before stitching.",
                             index=c["index"], start_s=c["start_s"], stop_s=c["stop_s"],
                             input=manifest["source"], stage="stitch")
        parts.append(work_store.read_json(uri))
    if not options.boxes:       # a boxes file's track ids are global already
        parts = _global_tracks(parts)

    out_local = out_store.local_path(outputs["video"])
    stage_dir = os.path.dirname(os.path.abspath(out_local)) if out_local else None
    if stage_dir is not None and not os.path.isdir(stage_dir):
        try:
            os.makedirs(stage_dir, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{stage_dir}: cannot create the output folder "
                              f"({e.strerror}). Choose a writable folder.") from None
    work_local = work_store.local_path(work)
    with tempfile.TemporaryDirectory(prefix="blurfaces-stitch-", dir=work_local) as tmp:
        pub = Publisher(tmp, overwrite=bool(manifest.get("overwrite")),
                        token=manifest.get("publish_token"), source=manifest["source"],
                        pin=manifest.get("source_version"))
        try:
            summary = _stitch_into(pub, tmp, manifest, parts, info, options, outputs, timings,
                                   t0)
            # the last look before anything gets a final name
            check_unchanged(manifest["source"], manifest.get("source_version"))
            stale = _replaced_leftovers(outputs, summary) if manifest.get("overwrite") else []
            pub.commit()
            for path in stale:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        except OSError as e:
            if getattr(e, "errno", None) not in DISK_FULL | {errno.EACCES, errno.EROFS,
                                                             errno.EPERM}:
                raise
            raise OutputError(f"{stage_dir or outputs['video']}: cannot write the outputs "
                              f"({e.strerror or e}). Free space there or choose another "
                              "output folder; nothing was published.") from None
        finally:
            pub.discard()
    return summary


def _replaced_leftovers(outputs: dict, summary: dict) -> list[str]:
    """Local outputs of the run whose set this one replaces (`--overwrite`) that this run
    does not write again (a heatmap or data format asked for then and not now): named by
    the previous summary, they would otherwise sit beside the new set as if part of it."""
    path = st.get_storage(outputs["summary"]).local_path(outputs["summary"])
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)["outputs"]
        named = [old.get("heatmap"), old.get("review"), *(old.get("data") or [])]
    except (OSError, TypeError, ValueError, KeyError, RecursionError):
        return []
    new = summary["outputs"]
    keep = {new["video"], new["summary"], new.get("heatmap"), new.get("review"), *new["data"]}
    folder = os.path.dirname(os.path.abspath(path))
    return [p for p in named if isinstance(p, str) and p not in keep
            and os.path.dirname(os.path.abspath(p)) == folder
            and os.path.basename(p).startswith(os.path.basename(outputs["stem"]))]


def _stitch_into(pub, tmp, manifest, parts, info, options, outputs, timings, t0) -> dict:
    """Write every output to its staged path and self-check the video; returns the summary."""
    video_tmp = pub.stage(outputs["video"], ".mp4")
    mux = _join_segments(manifest, parts, info, options, video_tmp)
    index = st.get_storage(manifest["work"]).read_json(st.join(manifest["work"], INDEX))
    check_output(video_tmp, expected_pts=index["pts"], tb=info.tb, width=info.width,
                 height=info.height, chunks=manifest["chunks"], audio_s=mux["source_audio_s"],
                 sar=info.sar, audio_expected=_audio_expected(info, mux))
    df, frames = _data_rows(parts)
    detected = df[df["source"] == "detected"]
    written = {"video": outputs["video"], "data": _write_data(pub, df, options, outputs),
               "heatmap": _write_heatmap(pub, detected, info, options, outputs,
                                         manifest["source"])}
    counts = _counts(df, detected, parts, frames, info)
    written["review"] = _write_review(pub, df, _near_rows(parts), video_tmp, index, info,
                                      options, outputs, counts, manifest["source"])
    written["summary"] = outputs["summary"]
    timing = dict(timings or {})
    timing["plan_s"] = manifest.get("plan_seconds")
    timing["workers_s"] = [round(p["seconds"], 3) for p in parts]
    timing["stitch_s"] = round(time.perf_counter() - t0, 3)
    summary = _summary(manifest, info, options, written, mux, index, counts, timing)
    with open(pub.stage(outputs["summary"], ".json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=_json_default)
    return summary


def _audio_expected(info, mux: dict) -> list | None:
    """What the self-check expects of each audio stream stitch wrote, from the probe of the
    source (not from stitch): its codec (the source's where copied, else AAC), channels and
    language (as MP4 can carry it), in the output's order."""
    by_index = {a["index"]: a for a in info.audio}
    return [{"codec": a["codec"] if a["copy"] else "aac", "copied": a["copy"],
             "channels": a["channels"], "language": mp4_language(a.get("language"))}
            for a in (by_index[i] for i in mux.get("audio_streams") or [])] or None


def _join_segments(manifest, parts, info, options, video_tmp) -> dict:
    """Join the chunks' segments (no re-encode) into `video_tmp` with the source's audio
    muxed once; returns `video.stitch`'s record."""
    from .video import stitch as stitch_video
    work_store = st.get_storage(manifest["work"])
    segs = []
    for p in parts:
        if not p["frames"]:
            continue
        local = work_store.local_path(p["segment"])
        # Segments on S3 are read in place (range reads): stitch's disk holds only the output.
        segs.append(local if local is not None else
                    (lambda uri=p["segment"]: work_store.open_read(uri)))
    with _open_source(manifest) as src:
        return stitch_video(segs, src, info, video_tmp, keep_audio=options.keep_audio)


def _data_rows(parts) -> tuple:
    """The chunks' rows as one table, frame numbers made global; and the number of frames."""
    offset, rows = 0, []
    for p in parts:
        for r in p["rows"]:
            rows.append((r[1], r[2], r[3], r[4], r[5], r[6], r[7] + offset,
                         np.nan if r[8] is None else r[8], r[9]))
        offset += p["frames"]
    return datamod.to_frame(rows), offset


def _near_rows(parts) -> list:
    """The chunks' near-misses (review page only), frame numbers made global:
    [frame, x1, y1, x2, y2, score, threshold]."""
    offset, rows = 0, []
    for p in parts:
        rows.extend([r[0] + offset, *r[1:]] for r in p.get("near_misses", []))
        offset += p["frames"]
    return rows


def _write_data(pub, df, options: Options, outputs: dict) -> list[str]:
    data_files = []
    if options.save_data:
        for fmt in options.data_format:
            uri = data_uri(outputs, fmt)
            datamod.write(df, pub.stage(uri, "." + fmt), fmt)
            data_files.append(uri)
    return data_files


def _write_heatmap(pub, detected, info, options: Options, outputs: dict,
                   source: str) -> str | None:
    if not options.draw_heatmap:
        return None
    from .heatmap import centroid_mask, draw_heatmap
    cents = centroid_mask(detected[["x1", "y1", "x2", "y2"]].to_numpy(float)) \
        if len(detected) else np.zeros((0, 2))
    # drawn as the picture is shown: anamorphic pixels widened by their aspect ratio
    wide = float(info.display_aspect * info.display_height / info.display_width)
    cents[:, 0] *= wide
    draw_heatmap(cents, max(1, round(info.display_width * wide)), info.display_height,
                 pub.stage(outputs["heatmap"], ".png"), neighbours=options.neighbours,
                 resolution=options.resolution, title=os.path.basename(source))
    return outputs["heatmap"]


def _write_review(pub, df, near: list, video_tmp, index, info, options: Options,
                  outputs: dict, counts: dict, source: str) -> str | None:
    """The review page (review.py) of the staged output, published with it."""
    if not options.review:
        return None
    from .review import write as write_review
    heatmap = next((path for path, final in pub.staged if final == outputs["heatmap"]), None)
    write_review(pub.stage(outputs["review"], ".html"), df=df, video=video_tmp,
                 times_s=[(p - info.first_pts) * float(info.tb) for p in index["pts"]],
                 width=info.display_width, height=info.display_height,
                 title=os.path.basename(source), counts=counts, heatmap=heatmap, near=near)
    return outputs["review"]


def _counts(df, detected, parts, frames: int, info: VideoInfo) -> dict:
    tracks = sorted(int(t) for t in df["track"].unique() if t >= 0)
    return {
        "frames": int(frames), "frames_in_source_packets": info.n_packets,
        "chunks": len(parts), "masked_boxes": int(len(df)),
        "detections": int(len(detected)), "tracks": len(tracks),
        "frames_with_faces": int(df["frame"].nunique()),
        "by_source": {k: int(v) for k, v in df["source"].value_counts().items()},
        # network passes over a region (lead-ins included) while reuse is on: run whole,
        # run on the changed part only, or reused unchanged (still.py)
        "regions": {k: sum(p.get("regions", {}).get(k, 0) for p in parts)
                    for k in ("run", "partial", "reused")},
    }


def _summary(manifest, info, options: Options, written: dict, mux: dict, index: dict,
             counts: dict, timing: dict) -> dict:
    return {
        "input": manifest["source"], "outputs": written,
        "video": {"width": info.display_width, "height": info.display_height,
                  "coded_width": info.width, "coded_height": info.height,
                  "rotation": info.rotation, "duration_s": info.duration_s,
                  # anamorphic pixels are kept as they are, with their aspect ratio
                  "sample_aspect_ratio": "{}:{}".format(*(info.sar or (1, 1))),
                  "display_aspect_ratio": "{0.numerator}:{0.denominator}".format(
                      info.display_aspect),
                  "vfr": info.vfr, "codec": info.codec,
                  # every audio stream, each copied or re-encoded to AAC ("mode"; None: not
                  # carried, --no-audio); audio_mode: the first one's
                  "audio": [dict(a, mode=m) for a, m in zip(
                      info.audio, mux.get("audio_modes") or [None] * len(info.audio))],
                  "audio_mode": mux["audio_mode"],
                  # the source's streams the output does not carry (other video, subtitles,
                  # data): never copied, since a picture in them would go out unmasked
                  "video_stream": info.video_stream, "left_out": info.left_out,
                  # how the output's timestamps relate to the container's (README, Inputs)
                  "timestamps": getattr(info, "timestamps", "container"),
                  "pts_offset": getattr(info, "pts_offset", 0),
                  "size_changes": getattr(info, "size_changes", [])},
        "verified": {"frames": len(index["pts"]), "pts": "equal",
                     "audio_s": mux["source_audio_s"]},
        "input_version": manifest.get("source_version"), "job": manifest.get("job") or {},
        "options": options.to_dict(), "counts": counts, "timings": timing,
        "versions": _versions(),
        "cost": cost.of_job(manifest, timing),      # US$ estimate on Lambda, else None
    }


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Fraction):
        return str(o)
    raise TypeError(type(o))


def default_workers() -> int:
    return available_cpus()
