"""The command line: `blurfaces anonymize`, `batch`, `fetch-model`, `--version`.

Expected errors (BlurfacesError) print one line, `blurfaces: error: ...`, and exit with 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from . import __version__
from .errors import BlurfacesError, OptionError

VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts", ".wmv",
              ".flv", ".3gp", ".mpg", ".mpeg"}


def _color(text: str):
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"colour must be R,G,B integers, got {text!r}")
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise argparse.ArgumentTypeError(f"colour must be three integers 0-255, got {text!r}")
    return tuple(parts)


def _add_processing(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("masking")
    g.add_argument("--mask", default="blur",
                   help="blur (default), rectangle, mosaic, image, or none (data only)")
    g.add_argument("--mask-image", metavar="PATH", help="image pasted over faces (--mask image)")
    g.add_argument("--mask-scale", type=float, default=1.0, metavar="F",
                   help="scale each box about its centre: 1.5 = 1.5x wider and taller")
    g.add_argument("--no-ellipse", action="store_true",
                   help="mask the whole box instead of the ellipse inscribed in it")
    g.add_argument("--color", type=_color, default=(0, 0, 0), metavar="R,G,B",
                   help="colour of --mask rectangle (default 0,0,0)")
    g.add_argument("--draw-scores", action="store_true", help="draw detector scores")
    g = p.add_argument_group("detection and tracking")
    g.add_argument("--quality", default="balanced", choices=["fast", "balanced", "max"],
                   help="detection preset: balanced (default) adds a rotating 2x-upscaled "
                        "pass that finds small, far faces (crowds); max runs all of it on "
                        "every frame (slowest); fast is a single 640 px pass (large faces "
                        "only, misses small ones)")
    g.add_argument("--threshold", type=float, default=None, metavar="F",
                   help="detector score threshold (default: the preset's, 0.3; fast 0.4)")
    g.add_argument("--detect-size", type=int, default=None, metavar="N",
                   help="longer side of the detector's input, multiple of 32 (default 640)")
    g.add_argument("--tiles", dest="tiles", action="store_const", const="on", default="auto",
                   help="always add the small-face pass (2x2 overlapping tiles); default: "
                        "only for frames >= 1600 px and >= 2.5x --detect-size (1080p and up)")
    g.add_argument("--no-tiles", dest="tiles", action="store_const", const="off",
                   help="never run the small-face tile pass")
    g.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="run the detector on every N-th frame; tracking fills the others "
                        "(default 1)")
    g.add_argument("--no-track", action="store_true",
                   help="mask raw detections only (no gap filling, hold or look-ahead)")
    g.add_argument("--hold", type=float, default=0.5, metavar="S",
                   help="seconds a mask stays after a face was last detected (default 0.5)")
    g.add_argument("--lookahead", type=float, default=0.3, metavar="S",
                   help="seconds a mask starts before a face is first detected (default 0.3)")
    g = p.add_argument_group("outputs")
    g.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (default: add _1, _2, ...)")
    g.add_argument("--no-data", action="store_true", help="do not write face coordinates")
    g.add_argument("--data-format", default="csv", metavar="FMT[,FMT]",
                   help="csv, tsv, txt or several, comma-separated (default csv)")
    g.add_argument("--heatmap", action="store_true", help="write <stem>_heatmap.png")
    g.add_argument("--neighbours", type=int, default=32, metavar="N",
                   help="heatmap: nearest neighbours per cell (default 32)")
    g.add_argument("--resolution", type=int, default=250, metavar="N",
                   help="heatmap: cells along the longer side (default 250)")
    g.add_argument("--no-audio", action="store_true", help="drop the audio track")
    g.add_argument("--crf", type=int, default=20, help="x264 quality, lower is better (20)")
    g.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel chunk workers (default: all CPUs)")
    g.add_argument("--chunk-seconds", type=float, default=None, metavar="S",
                   help="chunk length in seconds (default: one chunk per worker, >= 10 s)")
    g.add_argument("--chunks", type=int, default=None, metavar="N",
                   help="cut the video into N chunks (instead of --chunk-seconds)")
    g.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _kwargs(a) -> dict:
    return dict(mask=a.mask, mask_image=a.mask_image, mask_scale=a.mask_scale,
                ellipse=not a.no_ellipse, draw_heatmap=a.heatmap, neighbours=a.neighbours,
                resolution=a.resolution, draw_scores=a.draw_scores, save_data=not a.no_data,
                data_format=a.data_format, color=a.color, overwrite=a.overwrite,
                quality=a.quality, threshold=a.threshold, detect_size=a.detect_size, tiles=a.tiles,
                detect_every=a.detect_every,
                track=not a.no_track, hold=a.hold, lookahead=a.lookahead,
                keep_audio=not a.no_audio, crf=a.crf, preset=a.preset, workers=a.workers,
                chunk_seconds=a.chunk_seconds, chunks=a.chunks)


class _Bar:
    """tqdm progress over all frames of a run, only on a terminal."""

    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc, self.bar = enabled, desc, None

    def __call__(self, n: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="frame", desc=self.desc, dynamic_ncols=True,
                            file=sys.stderr)
        if n:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _one(path: str, a, target=None) -> dict:
    from .api import blur_faces
    bar = _Bar(not a.quiet and sys.stderr.isatty(), os.path.basename(path))
    try:
        r = blur_faces(path, target_name=target, progress=bar, **_kwargs(a))
    finally:
        bar.close()
    out = {"input": path, "video": r.video, "data": r.data, "heatmap": r.heatmap,
           "summary": r.summary_file, "frames": r.frames, "detections": r.detections,
           "masked_boxes": r.masked_boxes, "tracks": r.tracks, "seconds": r.seconds,
           "fps": round(r.fps, 2)}
    if not a.json:
        print(f"{path} -> {r.video}: {r.frames} frames, {r.detections} face detections in "
              f"{r.tracks} tracks, {r.seconds:.1f} s ({r.fps:.1f} frames/s)", file=sys.stderr)
    return out


def cmd_anonymize(a) -> int:
    out = _one(a.input, a, a.output)
    if a.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_batch(a) -> int:
    folder = a.folder
    if not os.path.isdir(folder):
        raise OptionError(f"{folder}: not a folder. `blurfaces batch` takes a folder of videos.")
    names = sorted(n for n in os.listdir(folder)
                   if os.path.splitext(n)[1].lower() in VIDEO_EXTS and "_blurred" not in n
                   and not n.startswith("."))
    results, failed = [], 0
    for n in names:
        path = os.path.join(folder, n)
        try:
            results.append(_one(path, a))
        except BlurfacesError as e:
            failed += 1
            print(f"blurfaces: error: {e}", file=sys.stderr)
            results.append({"input": path, "error": str(e)})
    if a.json:
        print(json.dumps(results, indent=2))
    print(f"batch: {len(names) - failed} of {len(names)} videos done", file=sys.stderr)
    return 2 if failed else 0


def cmd_fetch_model(a) -> int:
    from .model import fetch_model
    path = fetch_model(a.output)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blurfaces", description="Anonymize every face in a video.")
    p.add_argument("--version", action="version", version=f"blurfaces {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    an = sub.add_parser("anonymize", help="mask the faces in one video",
                        description="Mask every face in INPUT (a path or s3:// URI).")
    an.add_argument("input")
    an.add_argument("-o", "--output", help="output video (default <stem>_blurred.mp4 beside it)")
    _add_processing(an)
    an.set_defaults(func=cmd_anonymize)
    ba = sub.add_parser("batch", help="mask every video in a folder")
    ba.add_argument("folder")
    _add_processing(ba)
    ba.set_defaults(func=cmd_batch)
    fm = sub.add_parser("fetch-model", help="download and convert the CenterFace model")
    fm.add_argument("--output", help="where to write it (default: models/centerface.onnx)")
    fm.set_defaults(func=cmd_fetch_model)
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    try:
        return a.func(a)
    except BlurfacesError as e:
        print(f"blurfaces: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blurfaces: interrupted; no output was written.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
