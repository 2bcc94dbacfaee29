"""The command line: `blurfaces anonymize`, `batch`, `fetch-model`, `--version`.

Expected errors (BlurfacesError) print one line, `blurfaces: error: ...`, and exit with 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from ._version import __version__
from .errors import BlurfacesError, Interrupted, OptionError, hold_signal


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gives the one-line error every other failure gives."""

    def error(self, message):
        self.exit(2, f"blurfaces: error: {message.rstrip('.')}. See `{self.prog} --help`.\n")


def _arg_type(spec):
    """argparse type for a spec: the text converted to the option's type (bounds are checked
    with the other layers, by `Options`, so the CLI and the API say the same thing)."""
    def convert(text):
        try:
            return spec.parse_text(text)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = spec.name
    return convert


def _add_processing(p: argparse.ArgumentParser) -> None:
    """One flag per option spec (options.SPECS). Defaults are None: an option not given on
    the command line takes its value from the layers below (sidecar, environment, default)."""
    from .options import SPECS
    groups: dict = {}
    for spec in SPECS:
        g = groups.get(spec.group) or groups.setdefault(spec.group, p.add_argument_group(
            spec.group))
        help_ = f"{spec.help} [env {spec.env}]"
        if spec.kind == "bool":
            g.add_argument(spec.flag, dest=spec.name, default=None,
                           action=argparse.BooleanOptionalAction, help=help_)
        elif spec.name == "tiles":
            g.add_argument("--tiles", dest="tiles", nargs="?", const="on", default=None,
                           type=_arg_type(spec), help=help_)
            g.add_argument("--no-tiles", dest="tiles", action="store_const", const="off",
                           help="never run the small-face tile pass")
        else:
            g.add_argument(spec.flag, dest=spec.name, default=None, type=_arg_type(spec),
                           metavar=spec.metavar or spec.name.upper(), help=help_)
    g = groups["outputs"]
    g.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (default: add _1, _2, ...)")
    g = groups["execution"]
    g.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _given(a) -> dict:
    """The options and execution settings given on the command line (and only those)."""
    from .options import SPECS
    return {s.name: getattr(a, s.name) for s in SPECS if getattr(a, s.name) is not None}


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
    from .api import anonymize
    from .options import resolve
    bar = _Bar(not a.quiet and sys.stderr.isatty(), os.path.basename(path))
    try:
        options, execution = resolve(_given(a))
        r = anonymize(path, options, execution, target_name=target, overwrite=a.overwrite,
                      progress=bar)
    finally:
        bar.close()
    out = {"input": path, "video": r.video, "data": r.data, "heatmap": r.heatmap,
           "summary": r.summary_file, "frames": r.frames, "detections": r.detections,
           "masked_boxes": r.masked_boxes, "tracks": r.tracks, "seconds": r.seconds,
           "fps": round(r.fps, 2)}
    if not a.json:
        print(f"{path} -> {r.video}: {r.frames} frames, {r.detections} face detections in "
              f"{r.tracks} tracks, {r.seconds:.1f} s ({r.fps:.1f} frames/s)", file=sys.stderr)
        _say_left_out(path, r.summary)
    return out


def cmd_anonymize(a) -> int:
    out = _one(a.input, a, a.output)
    if a.json:
        print(json.dumps(out, indent=2))
    return 0


def _job_args(a, *, drop_folder: bool):
    """(Options, Execution) from defaults < the layout's defaults < the environment < the
    command line; validated up front so a bad option stops before the first file."""
    from .options import resolve
    return resolve(_given(a), layout=drop_folder)


def _say_left_out(who: str, summary: dict) -> None:
    """The input's streams the output does not carry (the summary's video.left_out)."""
    left = (summary.get("video") or {}).get("left_out")
    if left:
        print(f"{who}: not carried into the output: {'; '.join(left)}", file=sys.stderr)


def _say_result(r, a, k=None, total=None) -> None:
    if a.json:
        print(json.dumps(r.row()), flush=True)
        return
    where = f"[{k}/{total}] " if k is not None else ""
    if r.status == "done":
        print(f"{where}{r.input} -> {r.outputs.get('video')}: {r.frames} frames, {r.faces} "
              f"face detections, {r.seconds:.1f} s", file=sys.stderr)
        _say_left_out(f"{where}{r.input}", r.summary)
    elif r.status == "skipped":
        print(f"{where}{r.input}: already done for this version, skipped", file=sys.stderr)
    else:
        print(f"blurfaces: error: {r.error}", file=sys.stderr)


def _seconds(v: float, lo: float = 0.0) -> float:
    import math
    if not math.isfinite(v) or not lo <= v <= 86400:
        raise OptionError(f"{v!r} seconds: give a number from {lo:g} to 86400.")
    return v


def cmd_batch(a) -> int:
    from .unattended import batch
    opts, execution = _job_args(a, drop_folder=a.drop_folder)
    results, table = batch(a.root, opts, execution=execution, drop_folder=a.drop_folder,
                           table=a.table, resume=not a.no_resume, settle=_seconds(a.settle),
                           overwrite=a.overwrite, unmasked_sidecars=a.allow_unmasked_sidecars,
                           on_result=lambda k, n, r: _say_result(r, a, k, n))
    counts = {s: sum(r.status == s for r in results)
              for s in ("done", "skipped", "failed", "pending")}
    print(f"batch: {counts['done'] + counts['skipped']} of {len(results)} videos done "
          f"({counts['done']} processed, {counts['skipped']} already done, {counts['failed']} "
          f"failed, {counts['pending']} still being written); table: {table}", file=sys.stderr)
    return 2 if counts["failed"] else 0


def cmd_watch(a) -> int:
    from .unattended import watch
    opts, execution = _job_args(a, drop_folder=True)
    failed = []

    def said(r):
        if r.status == "failed":
            failed.append(r)
        _say_result(r, a)

    from .jobs import check_root
    check_root(a.root)              # before saying "watching" a folder that is not there
    if not a.json:
        print(f"watching {a.root} (incoming/ -> anonymized/, failed/"
              f"{'' if a.keep_inputs else ', done/'}); Ctrl-C to stop", file=sys.stderr)
    watch(a.root, opts, execution=execution, once=a.once, poll=_seconds(a.poll, 0.1),
          settle=_seconds(a.settle),
          keep_inputs=a.keep_inputs, on_result=said,
          unmasked_sidecars=a.allow_unmasked_sidecars)
    return 2 if (a.once and failed) else 0


def cmd_fetch_model(a) -> int:
    from .model import fetch_model
    path = fetch_model(a.output)
    print(path)
    return 0


def _add_unmasked(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-unmasked-sidecars", action="store_true",
                   help='in the drop-folder layout, let a sidecar file dropped beside a video '
                        'turn masking off ({"mask": "none"}); refused by default')


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="blurfaces", description="Anonymize every face in a video.")
    p.add_argument("--version", action="version", version=f"blurfaces {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    an = sub.add_parser("anonymize", help="mask the faces in one video",
                        description="Mask every face in INPUT (a path or s3:// URI).")
    an.add_argument("input")
    an.add_argument("-o", "--output", help="output video (default <stem>_blurred.mp4 beside it)")
    _add_processing(an)
    an.set_defaults(func=cmd_anonymize)
    ba = sub.add_parser("batch", help="mask every video under a folder or S3 prefix, resumably",
                        description="Every video under ROOT (a folder tree or s3://bucket/"
                                    "prefix), once; inputs already done for the same version "
                                    "are skipped. Writes a CSV table of every input.")
    ba.add_argument("root", metavar="ROOT")
    ba.add_argument("--drop-folder", action="store_true",
                    help="ROOT has the drop-folder layout (incoming/ -> anonymized/, failed/)")
    ba.add_argument("--table", metavar="PATH",
                    help="CSV table of every input (default ROOT/blurfaces_batch.csv)")
    ba.add_argument("--no-resume", action="store_true",
                    help="process inputs again even when a result for them exists")
    ba.add_argument("--settle", type=float, default=2.0, metavar="S",
                    help="a local file modified in the last S seconds is being written: "
                         "left for a later run (default 2)")
    _add_unmasked(ba)
    _add_processing(ba)
    ba.set_defaults(func=cmd_batch)
    wa = sub.add_parser("watch", help="process a drop folder: ROOT/incoming -> ROOT/anonymized",
                        description="Process every video in ROOT/incoming (a folder or "
                                    "s3://bucket/prefix), then new arrivals. Outputs go to "
                                    "ROOT/anonymized, failure reports to ROOT/failed; local "
                                    "inputs move to ROOT/done (or ROOT/failed).")
    wa.add_argument("root", metavar="ROOT")
    wa.add_argument("--once", action="store_true",
                    help="process what is there (and what is being written), then exit")
    wa.add_argument("--poll", type=float, default=5.0, metavar="S",
                    help="seconds between looks at incoming/ (default 5)")
    wa.add_argument("--settle", type=float, default=2.0, metavar="S",
                    help="a local file is taken once unchanged for S seconds (default 2)")
    wa.add_argument("--keep-inputs", action="store_true",
                    help="leave local inputs in incoming/ instead of moving them to done/")
    _add_unmasked(wa)
    _add_processing(wa)
    wa.set_defaults(func=cmd_watch)
    fm = sub.add_parser("fetch-model", help="download and convert the CenterFace model, "
                        "build its int8 version beside it, and write RetinaFace beside them")
    fm.add_argument("--output", help="where to write it (default: models/centerface.onnx; the "
                    "int8 model goes beside it as centerface-int8.onnx)")
    fm.set_defaults(func=cmd_fetch_model)
    return p


def _on_signal(signum, frame):
    if hold_signal(signum):         # errors.signals_held: sent again when the block ends
        return
    if signum == signal.SIGINT:
        signal.default_int_handler(signum, frame)
    raise Interrupted(signum)


def main(argv=None) -> int:
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")     # before cv2 is first imported
    # SIGTERM ends a run like Ctrl-C: workers stopped, temporary files removed, one line.
    # Called in-process (argv given), the caller's handlers come back afterwards.
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        p = build_parser()
        a = p.parse_args(argv)
        code = a.func(a)
        if argv is None:
            # Done and published, and the process ends here: a signal from now to the exit
            # must not turn a complete run into a traceback and a failure status.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return code
    except Interrupted as e:
        print(f"blurfaces: {e}", file=sys.stderr)
        return 128 + e.signum
    except BlurfacesError as e:
        print(f"blurfaces: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blurfaces: interrupted by SIGINT; nothing of the unfinished job was published.",
              file=sys.stderr)
        return 130
    finally:
        if argv is not None:
            for s, handler in saved.items():
                signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
