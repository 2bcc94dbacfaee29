"""The Python API: `blur_faces(path, ...)`, the seed's `mg_blurfaces` as a function.

Validates the options, checks the input and the output folder before any work, picks the
output names, then runs the local pipeline (plan -> workers -> stitch) and returns where
everything went.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from . import storage as st
from .errors import InputError
from .jobs import run_job
from .options import Execution, Options


@dataclass
class BlurResult:
    video: str
    data: list = field(default_factory=list)
    heatmap: str | None = None
    summary_file: str | None = None
    frames: int = 0
    detections: int = 0
    masked_boxes: int = 0
    tracks: int = 0
    seconds: float = 0.0
    summary: dict = field(default_factory=dict, repr=False)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


_D = Options()      # the API's defaults are the record's


def blur_faces(path, mask=_D.mask, mask_image=_D.mask_image, mask_scale=_D.mask_scale,
               ellipse=_D.ellipse, draw_heatmap=_D.draw_heatmap, neighbours=_D.neighbours,
               resolution=_D.resolution, draw_scores=_D.draw_scores, save_data=_D.save_data,
               data_format=_D.data_format, color=_D.color, target_name=None,
               overwrite=False, *, quality=_D.quality, reuse=_D.reuse,
               precision=_D.precision, threshold=_D.threshold, detect_size=_D.detect_size,
               tiles=_D.tiles, detect_every=_D.detect_every, track=_D.track, hold=_D.hold,
               lookahead=_D.lookahead, boxes=_D.boxes, keep_track=_D.keep_track,
               ignore_region=_D.ignore_region, always_mask=_D.always_mask, review=_D.review,
               keep_audio=_D.keep_audio, crf=_D.crf, preset=_D.preset, workers=None,
               chunk_seconds=None, chunks=None, progress=None, retries=2) -> BlurResult:
    """Mask every face in the video at `path` (a local path or an s3:// URI).

    The seed's parameters keep their meaning: `mask` is 'blur', 'rectangle', 'mosaic',
    'image' (`mask_image` pasted over each face, alpha honoured) or 'none' (video unchanged,
    data still written); `mask_scale` scales each box about its centre (1.5 = 1.5x wider and
    taller); `ellipse` masks an ellipse in the box (1.15x the inscribed one, cut by it);
    `draw_heatmap` writes `<stem>_heatmap.png` (k-nearest-neighbour density with `neighbours`
    and `resolution`); `save_data` writes `<stem>.<fmt>` for each of `data_format` (csv, tsv, txt);
    `target_name` names the output video (default `<input stem>_blurred.mp4` beside the input);
    without `overwrite` an existing name gets `_1`, `_2`, ... The other options are
    `options.Options`' fields (their help: `blurfaces anonymize --help`).

    Raises a `BlurfacesError` subclass (InputError, OptionError, OutputError, ModelError,
    ChunkError) for every expected failure; the input is never modified and no partial output
    is left under a final name.
    """
    # The seed took any truthy value for its switches.
    options = Options(
        mask=mask, mask_image=None if mask_image is None else os.fspath(mask_image),
        mask_scale=mask_scale, ellipse=bool(ellipse), color=color,
        draw_scores=bool(draw_scores), quality=quality, threshold=threshold,
        reuse=None if reuse is None else bool(reuse), precision=precision,
        detect_size=detect_size, tiles=tiles, detect_every=detect_every, track=bool(track),
        hold=hold, lookahead=lookahead, boxes=None if boxes is None else os.fspath(boxes),
        keep_track=keep_track, ignore_region=ignore_region, always_mask=always_mask,
        review=bool(review), save_data=bool(save_data), data_format=data_format,
        draw_heatmap=bool(draw_heatmap), neighbours=neighbours, resolution=resolution,
        keep_audio=bool(keep_audio), crf=crf, preset=preset)
    execution = Execution(workers=workers, chunk_seconds=chunk_seconds, chunks=chunks)
    return anonymize(path, options, execution, target_name=target_name, overwrite=overwrite,
                     progress=progress, retries=retries)


def anonymize(path, options: Options, execution: Execution = Execution(), *,
              target_name=None, overwrite: bool = False, progress=None,
              retries: int = 2) -> BlurResult:
    """`blur_faces` with its options as records (what the CLI calls after `options.resolve`)."""
    source = os.fspath(path) if not isinstance(path, str) else path
    store = st.get_storage(source)
    if store.local_path(source) is not None:
        if os.path.isdir(source):
            raise InputError(f"{source}: is a directory, not a video file. Give a video file "
                             "(or `blurfaces batch FOLDER` for every video in it).")
        if not os.path.exists(source):
            raise InputError(f"{source}: file not found. Check the path.")
        if not stat.S_ISREG(os.stat(source).st_mode):
            raise InputError(f"{source}: not a regular file (a pipe, socket or device); "
                             "blurfaces needs a seekable video file. Save the stream to a file "
                             "first.")
    elif not store.exists(source):
        raise InputError(f"{source}: object not found. Check the bucket and key.")
    if options.mask == "image":
        from .mask import load_mask_image
        if not st.is_s3(options.mask_image):
            load_mask_image(options.mask_image)     # fail before any video work
    r = run_job(source, options, execution=execution, target_name=None if target_name is None
                else os.fspath(target_name), overwrite=overwrite, resume=False,
                raise_errors=True, progress=progress, retries=retries)
    summary = r.summary
    c = summary["counts"]
    return BlurResult(video=summary["outputs"]["video"], data=summary["outputs"]["data"],
                      heatmap=summary["outputs"]["heatmap"],
                      summary_file=summary["outputs"]["summary"], frames=c["frames"],
                      detections=c["detections"], masked_boxes=c["masked_boxes"],
                      tracks=c["tracks"], seconds=summary["timings"]["total_s"],
                      summary=summary)
