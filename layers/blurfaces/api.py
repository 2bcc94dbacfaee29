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
from .options import OPTION_SPECS, Options, validate_execution


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


def blur_faces(path, mask="blur", mask_image=None, mask_scale=1.0, ellipse=True,
               draw_heatmap=False, neighbours=32, resolution=250, draw_scores=False,
               save_data=True, data_format="csv", color=(0, 0, 0), target_name=None,
               overwrite=False, *, quality="balanced", reuse=None, precision=None,
               threshold=None, detect_size=None, tiles="auto", detect_every=1, track=True,
               hold=0.5, lookahead=0.3, boxes=None, keep_track=(),
               ignore_region=(), always_mask=(), review=False,
               keep_audio=True, crf=None, preset="veryfast",
               workers=None, chunk_seconds=None, chunks=None, progress=None,
               retries=2) -> BlurResult:
    """Mask every face in the video at `path` (a local path or an s3:// URI).

    The seed's parameters keep their meaning: `mask` is 'blur', 'rectangle', 'mosaic',
    'image' (`mask_image` pasted over each face, alpha honoured) or 'none' (video unchanged,
    data still written); `mask_scale` scales each box about its centre (1.5 = 1.5x wider and
    taller); `ellipse` masks the ellipse inscribed in the box; `draw_heatmap` writes
    `<stem>_heatmap.png` (k-nearest-neighbour density with `neighbours` and `resolution`);
    `save_data` writes `<stem>.<fmt>` for each of `data_format` (csv, tsv, txt);
    `target_name` names the output video (default `<input stem>_blurred.mp4` beside the input);
    without `overwrite` an existing name gets `_1`, `_2`, ...

    Raises a `BlurfacesError` subclass (InputError, OptionError, OutputError, ModelError,
    ChunkError) for every expected failure; the input is never modified and no partial output
    is left under a final name.
    """
    given = locals()
    opts = {}
    for spec in OPTION_SPECS:
        v = given[spec.name]
        if v is None and not spec.nullable:
            continue                        # None: the option's default
        if spec.kind == "bool":
            v = bool(v)                     # the seed took any truthy value
        elif spec.name in ("mask_image", "boxes") and v is not None:
            v = os.fspath(v)
        opts[spec.name] = v
    options = Options.from_dict(opts)
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
    validate_execution(workers, chunk_seconds, chunks)
    r = run_job(source, options.to_dict(), target_name=None if target_name is None
                else os.fspath(target_name), overwrite=overwrite, resume=False,
                raise_errors=True, progress=progress, retries=retries,
                execution={"workers": workers, "chunk_seconds": chunk_seconds,
                           "chunks": chunks})
    summary = r.summary
    c = summary["counts"]
    return BlurResult(video=summary["outputs"]["video"], data=summary["outputs"]["data"],
                      heatmap=summary["outputs"]["heatmap"],
                      summary_file=summary["outputs"]["summary"], frames=c["frames"],
                      detections=c["detections"], masked_boxes=c["masked_boxes"],
                      tracks=c["tracks"], seconds=summary["timings"]["total_s"],
                      summary=summary)
