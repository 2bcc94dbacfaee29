"""The job layer: what a job is, for every entry point (CLI `anonymize`, `batch`, `watch`,
the Lambdas, the backfill).

It owns:

* **discovery** of inputs under a root (a local folder tree or ``s3://bucket/prefix``): one
  list of video extensions (`discover.VIDEO_EXTS`); skips the tool's own outputs, work area,
  claims and failure reports, folder markers, empty files, hidden and temporary names
  (``.part``, ``.crdownload``, ``~`` ...) and, locally, files still being written (modified
  less than `settle` seconds ago);
* **job identity**: a stable job id from the input's URI and its version (`Storage.stat`:
  VersionId or ETag on S3; size, mtime and inode locally); the job is pinned to that version
  (every read of the pipeline checks it);
* the **output policy**: beside the input (`<stem>_blurred.mp4`, then `_1`, `_2`, ...), or the
  drop-folder layout (`Layout`), the same locally and on S3::

      ROOT/incoming/**          the only place that is watched or triggers
      ROOT/anonymized/**        outputs, mirroring the input's relative path
      ROOT/failed/**/<name>.json  failure reports (locally the input moves beside its report)
      ROOT/done/**              processed inputs (local only; S3 inputs stay where they are)

* per-video **sidecar** options (``<video name>.blurfaces.json`` next to the video);
* **results**: a complete result for the same input version (its summary) or a failure report
  for it means the job is done: batch runs resume, watchers never redo or republish;
* the **failure report** (input, version, job id, stage, chunk, error type, message, what to
  do, times).

`run_job` is the one loop body every entry point shares.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import socket
import time
from dataclasses import dataclass, field

from . import storage as st
from .discover import is_own_output, is_video_name
from .errors import (BlurfacesError, InputError, Interrupted, OptionError, Superseded,
                     TransientError)
from .options import Execution, Options, with_sidecar

SIDECAR = ".blurfaces.json"
TEMP_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", "~",
                 ".swp", ".filepart", ".!ut", ".opdownload")
LAYOUT_DIRS = ("incoming", "anonymized", "failed", "done")
STATE_DIR = ".blurfaces"        # claims of watchers, under ROOT
DEFAULT_SETTLE_S = 2.0
S3_CLAIM_TTL_S = 6 * 3600.0     # an S3 claim older than this belonged to a dead watcher


# ------------------------------------------------------------------------------ identity

def job_id(source: str, stat: st.Stat, rerun: str | None = None) -> str:
    """Deterministic id, a valid Step Functions execution name ([A-Za-z0-9_-], <= 80):
    the same input version always maps to the same id; a new version is a new job."""
    material = "\0".join([source, stat.token, rerun or ""])
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()[:20]
    stem = os.path.splitext(os.path.basename(source.rstrip("/")))[0]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:40] or "video"
    return f"{slug}-{digest}"


# ------------------------------------------------------------------------------ discovery

def skip_reason(uri: str, size: int | None = None) -> str | None:
    """Why the file or object at `uri` is not an input (None: it is one)."""
    if uri.endswith("/"):
        return "a folder marker"
    path = st.parse_s3(uri)[1] if st.is_s3(uri) else uri
    base = posixpath.basename(path.replace(os.sep, "/"))
    if base.startswith("."):
        return "a hidden or temporary name"
    if base.lower().endswith(TEMP_SUFFIXES) or base.endswith(SIDECAR):
        return "a temporary name (still being written)" if not base.endswith(SIDECAR) \
            else "a sidecar options file"
    if not is_video_name(base):
        return "not a video file name"
    if size == 0:
        return "an empty file"
    return None


@dataclass
class Found:
    uri: str
    stat: st.Stat


def discover(root: str, *, settle: float = DEFAULT_SETTLE_S, skip_dirs=(),
             now: float | None = None) -> tuple[list[Found], list[Found]]:
    """Inputs under `root`, recursively: (ready, still being written). Skips what
    `skip_reason` names, blurfaces' own outputs (by their summaries), hidden folders and
    the folders named in `skip_dirs` (relative to root)."""
    now = time.time() if now is None else now
    ready, pending = [], []
    if st.is_s3(root):
        store = st.get_storage(root)
        prefix = root if root.endswith("/") else root + "/"
        skip = tuple(st.join(prefix, d.strip("/")) + "/" for d in skip_dirs)
        stats = dict(store.list_stats(prefix))
        for uri, s in stats.items():
            rel = uri[len(prefix):]
            if uri.startswith(skip) or any(p.startswith(".") for p in rel.split("/")[:-1]):
                continue
            if skip_reason(uri, s.size) or _is_s3_output(uri, stats):
                continue
            ready.append(Found(uri, s))          # S3 objects appear whole: no settling
        return ready, pending
    if not os.path.isdir(root):
        raise OptionError(f"{root}: not a folder. Give a folder of videos or an s3:// prefix.")
    skip_abs = {os.path.abspath(os.path.join(root, d)) for d in skip_dirs}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(folder, d)) not in skip_abs)
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            if skip_reason(path, info.st_size) or not os.path.isfile(path) \
                    or is_own_output(path):
                continue
            s = st.Stat(size=info.st_size, mtime=info.st_mtime, inode=info.st_ino,
                        mtime_ns=info.st_mtime_ns)
            (pending if now - info.st_mtime < settle else ready).append(Found(path, s))
    return ready, pending


def _is_s3_output(uri: str, listing: dict) -> bool:
    """On S3 an output is recognised like locally: its summary beside it names it."""
    summary = f"{posixpath.splitext(uri)[0]}_summary.json"
    return summary in listing


# ------------------------------------------------------------------------------ layout

@dataclass
class Layout:
    """The drop-folder layout under `root` (a local folder or an s3:// prefix)."""
    root: str

    def __post_init__(self):
        if st.is_s3(self.root):
            st.parse_s3(self.root)
            self.root = self.root if self.root.endswith("/") else self.root + "/"
        else:
            self.root = os.path.abspath(self.root)

    def dir(self, name: str) -> str:
        return st.join(self.root, name) + ("/" if st.is_s3(self.root) else "")

    @property
    def incoming(self) -> str:
        return self.dir("incoming")

    def rel(self, uri: str) -> str:
        inc = self.incoming
        if st.is_s3(uri):
            if not uri.startswith(inc):
                raise OptionError(f"{uri}: not under {inc}.")
            return uri[len(inc):]
        rel = os.path.relpath(os.path.abspath(uri), inc)
        if rel.startswith(".."):
            raise OptionError(f"{uri}: not under {inc}.")
        return rel

    def _under(self, name: str, rel: str) -> str:
        return st.join(self.dir(name), rel) if not st.is_s3(self.root) \
            else self.dir(name) + rel.replace(os.sep, "/")

    def outputs(self, uri: str) -> dict:
        from .stages import output_names
        rel = self.rel(uri)
        stem = os.path.splitext(rel)[0]
        return output_names(self._under("anonymized", f"{stem}_blurred.mp4"))

    def report(self, uri: str) -> str:
        return self._under("failed", self.rel(uri) + ".json")

    def failed_input(self, uri: str) -> str:
        return self._under("failed", self.rel(uri))

    def done(self, uri: str) -> str:
        return self._under("done", self.rel(uri))

    def claim_uri(self, uri: str) -> str:
        h = hashlib.sha256(self.rel(uri).encode("utf-8")).hexdigest()[:24]
        return st.join(self.root, f"{STATE_DIR}/claims/{h}.lock")

    def ensure(self) -> None:
        if st.is_s3(self.root):
            return
        for d in LAYOUT_DIRS:
            os.makedirs(self.dir(d), exist_ok=True)


# ------------------------------------------------------------------------------ sidecar

def sidecar_options(source: str) -> dict:
    """Per-video options from `<video name>.blurfaces.json` beside the video ({} if none)."""
    uri = source + SIDECAR
    store = st.get_storage(uri)
    if not store.exists(uri):
        return {}
    data = store.read_json(uri)
    if not isinstance(data, dict):
        raise OptionError(f"{uri}: must hold a JSON object of options, such as "
                          '{"mask": "mosaic"}.')
    return data


# ------------------------------------------------------------------------------ results

def _read_json(uri: str):
    store = st.get_storage(uri)
    try:
        if not store.exists(uri):
            return None
        return store.read_json(uri)
    except TransientError:
        raise                   # not "absent": S3 is unavailable
    except BlurfacesError:
        return None


def same_version(version: dict | None, stat: st.Stat) -> bool:
    """Whether `version` (a recorded `Stat.to_dict()`) is the version `stat` describes. A
    listing's entry has no version id: on S3 its ETag and size identify the bytes."""
    version = version or {}
    if version.get("token") == stat.token:
        return True
    return bool(stat.version_id is None and stat.etag and version.get("etag") == stat.etag
                and version.get("size") == stat.size)


def finished(summary_uri: str, stat: st.Stat) -> dict | None:
    """The summary at `summary_uri` if it is a complete result for this input version."""
    s = _read_json(summary_uri)
    if isinstance(s, dict) and same_version(s.get("input_version"), stat):
        return s
    return None


def reported(report_uri: str, stat: st.Stat) -> dict | None:
    r = _read_json(report_uri)
    if isinstance(r, dict) and same_version(r.get("version"), stat):
        return r
    return None


def done_in(layout: "Layout", uri: str, stat: st.Stat) -> bool:
    """Whether the layout holds a result or a failure report for this version of `uri`."""
    return bool(finished(layout.outputs(uri)["summary"], stat)
                or reported(layout.report(uri), stat))


def finished_beside(source: str, stat: st.Stat) -> dict | None:
    """A complete result beside the input (`<stem>_blurred[_N]_summary.json`)."""
    if st.is_s3(source):
        return finished(f"{posixpath.splitext(source)[0]}_blurred_summary.json", stat)
    base = os.path.splitext(source)[0] + "_blurred"
    folder = os.path.dirname(os.path.abspath(source))
    pat = re.compile(re.escape(os.path.basename(base)) + r"(_\d+)?_summary\.json$")
    for name in sorted(os.listdir(folder)):
        if pat.match(name):
            s = finished(os.path.join(folder, name), stat)
            if s:
                return s
    return None


# ------------------------------------------------------------------------------ reports

def failure_report(source: str, stat: st.Stat | None, jid: str | None, error: BaseException,
                   *, stage: str, started: float, chunk: int | None = None) -> dict:
    """The failure report of a job: its stage, chunk and what to do come from the error's
    fields and class (errors.py), never from its message."""
    typed = isinstance(error, BlurfacesError)
    if chunk is None and typed:
        chunk = error.chunk
    return {"input": source, "version": stat.to_dict() if stat else None, "job_id": jid,
            "stage": (error.stage if typed else None) or stage, "chunk": chunk,
            "error_type": type(error).__name__, "message": str(error),
            "what_to_do": error.hint if typed else BlurfacesError.hint,
            "started": _iso(started), "failed": _iso(time.time()),
            "host": socket.gethostname()}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def write_report(uri: str, report: dict) -> None:
    st.get_storage(uri).write_json(uri, report)


# ------------------------------------------------------------------------------ claims

class InputClaim:
    """A watcher's exclusive claim on one input (so two watchers never process one file)."""

    def __init__(self, uri: str, local=None):
        self.uri, self._local = uri, local

    def release(self) -> None:
        if self._local is not None:
            self._local.release()
        else:
            try:
                st.get_storage(self.uri).delete(self.uri)
            except BlurfacesError:
                pass


def claim_input(layout: Layout, source: str) -> InputClaim | None:
    """Claim `source` for this process; None when another live watcher holds it."""
    from .publish import Taken, lock
    uri = layout.claim_uri(source)
    if not st.is_s3(uri):
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        try:
            return InputClaim(uri, lock(uri))
        except Taken:
            return None
    store = st.get_storage(uri)
    body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                       "input": source, "started": time.time()}).encode()
    for _ in range(2):
        if store.create_exclusive(uri, body):
            return InputClaim(uri)
        held = _read_json(uri) or {}
        from .publish import pid_alive
        dead_here = held.get("host") == socket.gethostname() and \
            not pid_alive(int(held.get("pid") or -1))
        if not dead_here and time.time() - float(held.get("started", 0)) < S3_CLAIM_TTL_S:
            return None                       # a live watcher (or one on another machine)
        store.delete(uri)                     # a dead watcher's claim
    return None


# ------------------------------------------------------------------------------ one job

@dataclass
class JobResult:
    input: str
    status: str                      # done | skipped | failed
    job_id: str | None = None
    outputs: dict = field(default_factory=dict)
    report: str | None = None
    frames: int | None = None
    faces: int | None = None
    tracks: int | None = None
    seconds: float | None = None
    error: str | None = None
    error_type: str | None = None
    summary: dict = field(default_factory=dict, repr=False)

    def row(self) -> dict:
        return {"input": self.input, "status": self.status, "job_id": self.job_id,
                "video": self.outputs.get("video"), "frames": self.frames,
                "faces": self.faces, "tracks": self.tracks, "seconds": self.seconds,
                "error": self.error, "report": self.report}


def run_job(source: str, options: Options, *, layout: Layout | None = None,
            execution: Execution | None = None, progress=None, rerun: str | None = None,
            target_name: str | None = None, overwrite: bool = False,
            resume: bool = True, raise_errors: bool = False, retries: int = 2) -> JobResult:
    """Process one input as one job: pin its version, read its sidecar, choose the outputs
    (layout or beside the input), skip it when a result for this version exists (`resume`),
    run the pipeline, and on failure write the report (layout) and return a "failed"
    result (or raise, with `raise_errors`). Interrupted always propagates."""
    from .runner import run
    from .stages import reserve_output
    t0 = time.time()
    execution = execution or Execution()
    store = st.get_storage(source)
    stat = jid = None
    report_uri = layout.report(source) if layout else None
    held = None
    try:
        stat = store.stat(source)
        jid = job_id(source, stat, rerun)
        if layout is not None:
            outputs = layout.outputs(source)
            if resume and (finished(outputs["summary"], stat) or reported(report_uri, stat)):
                return JobResult(source, "skipped", jid, outputs=outputs)
        elif resume and target_name is None and finished_beside(source, stat):
            return JobResult(source, "skipped", jid)
        options, execution = with_sidecar(options, execution, sidecar_options(source))
        if layout is not None:
            if not st.is_s3(outputs["video"]):
                os.makedirs(os.path.dirname(outputs["video"]), exist_ok=True)
            names, held = reserve_output(source, outputs["video"], True,
                                         formats=options.data_format if options.save_data
                                         else (), heatmap=options.draw_heatmap)
        else:
            names, held = reserve_output(source, target_name, overwrite,
                                         formats=options.data_format if options.save_data
                                         else (), heatmap=options.draw_heatmap)
        summary = run(source, outputs=names, options=options, progress=progress,
                      overwrite=layout is not None or overwrite,
                      publish_token=held.token if held else None, pin=stat.to_dict(),
                      job={"id": jid, "input": source, "rerun": rerun}, retries=retries,
                      workers=execution.workers, chunk_seconds=execution.chunk_seconds,
                      chunks=execution.chunks)
    except Interrupted:
        raise
    except BlurfacesError as e:
        if raise_errors:
            raise
        report = failure_report(source, stat, jid, e, stage="job", started=t0)
        if isinstance(e, (TransientError, Superseded)):
            report_uri = None       # no report: the input is fine (a report marks it done)
        if report_uri is not None:
            try:
                write_report(report_uri, report)
            except BlurfacesError:
                report_uri = None
        return JobResult(source, "failed", jid, report=report_uri, error=str(e),
                         error_type=type(e).__name__, seconds=round(time.time() - t0, 3))
    finally:
        if held is not None:
            held.release()
    c = summary["counts"]
    return JobResult(source, "done", jid, outputs=summary["outputs"], frames=c["frames"],
                     faces=c["detections"], tracks=c["tracks"],
                     seconds=summary["timings"].get("total_s"), summary=summary)


def move_input(source: str, dest: str) -> None:
    """Move a local input (to done/ or failed/), never overwriting: a name clash gets a
    numeric suffix. Inputs are never lost."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    base, ext = os.path.splitext(dest)
    n, target = 0, dest
    while os.path.lexists(target):
        n += 1
        target = f"{base}_{n}{ext}"
    try:
        os.link(source, target)
        os.unlink(source)
    except OSError:
        if os.path.lexists(target):
            raise
        shutil.move(source, target)
    if os.path.exists(source + SIDECAR):
        try:
            os.replace(source + SIDECAR, target + SIDECAR)
        except OSError:
            pass


def check_root(root: str) -> None:
    if st.is_s3(root):
        st.parse_s3(root)
        return
    if not os.path.isdir(root):
        raise InputError(f"{root}: not a folder. Give a folder or an s3:// prefix.")
