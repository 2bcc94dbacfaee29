"""The job layer: what a job is, for every entry point (CLI `anonymize`, `batch`, `watch`,
the Lambdas, the backfill).

It owns:

* **discovery** of inputs under a root (a local folder tree or ``s3://bucket/prefix``): one
  list of video extensions (`discover.VIDEO_EXTS`); skips the tool's own outputs, work area,
  claims and failure reports, folder markers, empty files, hidden and temporary names
  (``.part``, ``.crdownload``, ``~`` ...) and, locally, files still being written (modified
  less than `settle` seconds ago, or open for writing in another process);
* **job identity**: a stable job id from the input's URI and its version (`Storage.stat`:
  VersionId or ETag on S3; size, mtime and inode locally); the job is pinned to that version
  (every read of the pipeline checks it);
* the **output policy**: beside the input (`<stem>_blurred.mp4`, then `_1`, `_2`, ...), or the
  drop-folder layout (`Layout`), the same locally and on S3::

      ROOT/incoming/**          the only place that is watched or triggers
      ROOT/anonymized/**        outputs, mirroring the input's relative path
      ROOT/failed/**/<name>.json  failure reports (locally the input moves beside its report)
      ROOT/done/**              processed inputs (local only; S3 inputs stay where they are)

* an edited coordinate file (``<video name>.boxes.csv``, .tsv, .txt, next to a video): the
  video is re-rendered from it (`--boxes`) and its outputs replaced, one job per version of
  the file;
* per-video **sidecar** options (``<video name>.blurfaces.json`` next to the video);
* **results**: a complete result for the same input version (its summary) or a failure report
  for it means the job is done: batch runs resume, watchers never redo or republish;
* the **failure report** (input, version, job id, stage, chunk, error type, message, what to
  do, times).

`run_job` is the one loop body every entry point shares.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import posixpath
import re
import shutil
import socket
import stat as stat_mod
import time
from dataclasses import dataclass, field

from . import storage as st
from .discover import VIDEO_EXTS, is_video_name, open_for_writing
from .errors import (BlurfacesError, InputChanged, InputError, Interrupted, OptionError,
                     Superseded, TransientError)
from .outputs import (SUFFIX, SUMMARY, done, final_uris, finished, finished_beside,
                      is_own_output, output_names, read_record, reported, video_name)
from .options import Execution, Options, with_sidecar

SIDECAR = ".blurfaces.json"
BOXES_SUFFIXES = (".boxes.csv", ".boxes.tsv", ".boxes.txt")    # an edited coordinate file
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


#: files that are not inputs and never will be: in a drop folder they get a failure report
REFUSED = ("not a video file name", "an empty file")


def discover(root: str, *, settle: float = DEFAULT_SETTLE_S, skip_dirs=(),
             now: float | None = None,
             refused: list | None = None) -> tuple[list[Found], list[Found]]:
    """Inputs under `root`, recursively: (ready, still being written). Skips what
    `skip_reason` names, blurfaces' own outputs (by their summaries), hidden folders and
    the folders named in `skip_dirs` (relative to root). Local files skipped for a reason in
    REFUSED that have settled are appended to `refused` (a list) as (Found, reason)."""
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
            if skip_reason(uri, s.size) or is_own_output(uri, stats):
                continue
            ready.append(Found(uri, s))          # S3 objects appear whole: no settling
        return ready, pending
    if not os.path.isdir(root):
        raise OptionError(f"{root}: not a folder. Give a folder of videos or an s3:// prefix.")
    skip_abs = {os.path.abspath(os.path.join(root, d)) for d in skip_dirs}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(folder, d)) not in skip_abs)
        publishing = _settle_claims(folder, files)
        for name in sorted(files):
            if name.startswith(publishing):
                continue                # outputs a live run is publishing now
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            why = skip_reason(path, info.st_size)
            if why and not (refused is not None and why in REFUSED):
                continue
            if not os.path.isfile(path) or is_own_output(path):
                continue
            s = st.Stat(size=info.st_size, mtime=info.st_mtime, inode=info.st_ino,
                        mtime_ns=info.st_mtime_ns)
            busy = now - info.st_mtime < settle or open_for_writing(path)
            if why:
                if not busy:
                    refused.append((Found(path, s), why))
                continue
            (pending if busy else ready).append(Found(path, s))
    return ready, pending


def _settle_claims(folder: str, names) -> tuple[str, ...]:
    """Clean the output claims of dead runs in `folder` (a set they half-published is rolled
    back, so its video is never taken for an input); returns the stems of the output sets that
    live runs hold."""
    from .publish import LOCK_SUFFIX, clean_if_stale
    busy = []
    for n in names:
        if n.startswith(".") and n.endswith(LOCK_SUFFIX):
            video = n[1:-len(LOCK_SUFFIX)]
            if clean_if_stale(os.path.join(folder, video)):
                busy.append(os.path.splitext(video)[0])
    return tuple(busy)


# ------------------------------------------------------------------------------ layout

@dataclass
class Layout:
    """The drop-folder layout under `root` (a local folder or an s3:// prefix).

    Locally, every input keeps its own outputs and report: two inputs of one name (two
    phones' IMG_0001.MOV, one after the other) never share them, and a file already in
    anonymized/ or failed/ is never replaced. The second input's set is named like the input
    once moved (`moves_inputs`: done/dup_1.mp4 -> anonymized/dup_1_blurred.mp4, failed/x_1.mp4
    beside failed/x_1.mp4.json). On S3 an input stays where it is and a new upload of a key is
    a new version of the same input: its outputs replace the previous version's."""
    root: str
    moves_inputs: bool = False      # local inputs move to done/ or failed/ when finished
    unmasked_sidecars: bool = False     # a sidecar may say "mask": "none" (the owner allows)

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
        return output_names(video_name(self._under("anonymized", self.rel(uri))))

    def report(self, uri: str) -> str:
        return self._under("failed", self.rel(uri) + ".json")

    def failed_input(self, uri: str) -> str:
        return self._under("failed", self.rel(uri))

    def done(self, uri: str) -> str:
        return self._under("done", self.rel(uri))

    def reserve(self, uri: str, formats=(), heatmap=False, review=False):
        """(output names, output claim, where the input moves when done) for a local input:
        the first of <stem>, <stem>_1, ... whose outputs are all free (and, when inputs move,
        done/<stem>_N<ext> too). The claim is taken before looking, so a dead run's
        leftovers under a name are cleaned, never a reason to move on to the next name."""
        from .publish import Taken, claim
        stem, ext = os.path.splitext(self.rel(uri))
        for n in itertools.count():
            name = stem if n == 0 else f"{stem}_{n}"
            names = output_names(video_name(self._under("anonymized", name + ext)))
            finals = final_uris(names, formats, heatmap, review)
            moved = self._under("done", name + ext) if self.moves_inputs else None
            os.makedirs(os.path.dirname(names["video"]), exist_ok=True)
            try:
                held = claim(finals, names["video"])
            except Taken:
                continue
            if any(os.path.lexists(p) for p in finals + [moved] if p):
                held.release()
                continue
            return names, held, moved

    def failure_report(self, uri: str) -> str:
        """Where the failure report of `uri` goes: failed/<rel>.json, or, when local inputs
        move, the first failed/<stem>_N<ext>.json whose input name is free too (created
        empty here, so two watchers never pick the same)."""
        if not self.moves_inputs:
            return self.report(uri)
        stem, ext = os.path.splitext(self.rel(uri))
        for n in itertools.count():
            name = self._under("failed", (stem if n == 0 else f"{stem}_{n}") + ext)
            if os.path.lexists(name):
                continue
            os.makedirs(os.path.dirname(name), exist_ok=True)
            try:
                os.close(os.open(name + ".json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            return name + ".json"

    def result_for(self, uri: str, stat: st.Stat) -> bool:
        """Whether a complete result or a failure report for this version of `uri` exists
        (under any of the names `reserve` and `failure_report` give)."""
        if st.is_s3(self.root):
            return done(self.outputs(uri)["summary"], self.report(uri), stat) is not None
        rel = self.rel(uri)
        stem, ext = os.path.splitext(os.path.basename(rel))
        n = r"(_\d+)?"
        for folder, pattern, check in (
                ("anonymized", f"{re.escape(stem)}{n}{re.escape(SUFFIX + SUMMARY)}", finished),
                ("failed", f"{re.escape(stem)}{n}{re.escape(ext)}\\.json", reported)):
            where = os.path.dirname(self._under(folder, rel))
            if any(check(p, stat) for p in _matching(where, pattern)):
                return True
        return False

    def claim_uri(self, uri: str) -> str:
        h = hashlib.sha256(self.rel(uri).encode("utf-8")).hexdigest()[:24]
        return st.join(self.root, f"{STATE_DIR}/claims/{h}.lock")

    def ensure(self) -> None:
        if st.is_s3(self.root):
            return
        for d in LAYOUT_DIRS:
            os.makedirs(self.dir(d), exist_ok=True)


# ------------------------------------------------------------------------------ edits

def boxes_beside(source: str) -> str | None:
    """The edited coordinate file dropped beside an input (`<video name>.boxes.csv`, .tsv,
    .txt), or None."""
    for suffix in BOXES_SUFFIXES:
        uri = source + suffix
        if st.get_storage(uri).exists(uri):
            return uri
    return None


def edited_video(uri: str) -> str | None:
    """The video an edited coordinate file `uri` is for (its name less the suffix), or None
    when `uri` is not one."""
    for suffix in BOXES_SUFFIXES:
        if uri.endswith(suffix) and is_video_name(posixpath.basename(uri[:-len(suffix)])):
            return uri[:-len(suffix)]
    return None


def boxes_rerun(boxes: str, rerun: str | None = None) -> str:
    """The job's rerun key for a re-render from `boxes`: each version of the file is a job."""
    return f"{rerun or ''}boxes:{st.get_storage(boxes).stat(boxes).token}"


def requeue_edited(layout: "Layout", settle: float = DEFAULT_SETTLE_S) -> list[str]:
    """Local drop folder: an edited `<video name>.boxes.csv` dropped in incoming/ for a video
    already processed (in done/) brings that video back beside it, where the watcher
    re-renders it from the file and replaces its outputs. Returns the videos brought back."""
    back = []
    for folder, dirs, names in os.walk(layout.incoming):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = os.path.join(folder, name)
            video = edited_video(path)
            if video is None or os.path.lexists(video):
                continue
            try:
                if time.time() - os.stat(path).st_mtime < settle:
                    continue                    # still being written
                _move_file(layout.done(video), video)   # `video` is free: never replaces
            except OSError:
                continue                        # no such video done (yet): nothing to redo
            back.append(video)
    return back


def _job_of(record: dict) -> str | None:
    return (record.get("job") or {}).get("id", record.get("job_id"))


def done_for(summary_uri: str, report_uri: str | None, stat: st.Stat, jid: str,
             boxes: str | None) -> tuple[str, str] | None:
    """`outputs.done`; for a re-render from an edited file (`boxes`), done only by this very
    job (its id includes the file's version): an older result is what it replaces."""
    if not boxes:
        return done(summary_uri, report_uri, stat)
    for kind, uri, record in (("summary", summary_uri, finished(summary_uri, stat)),
                              ("report", report_uri,
                               reported(report_uri, stat) if report_uri else None)):
        if isinstance(record, dict) and _job_of(record) == jid:
            return kind, uri
    return None


# ------------------------------------------------------------------------------ sidecar

def sidecar_options(source: str, *, unmasked_ok: bool = False) -> dict:
    """Per-video options from `<video name>.blurfaces.json` beside the video ({} if none).

    A sidecar that is there but cannot be read as one (a folder, a pipe, a broken link, JSON
    that is invalid or nested too deeply) is an OptionError, never silently ignored. Unless
    `unmasked_ok` (a user's own file; a drop folder whose owner allows it), a sidecar may not
    turn masking off: anyone who can drop a file could otherwise publish faces."""
    uri = source + SIDECAR
    store = st.get_storage(uri)
    local = store.local_path(uri)
    if local is not None:
        if not os.path.lexists(local):
            return {}
        try:
            regular = stat_mod.S_ISREG(os.stat(local).st_mode)
        except OSError:
            regular = False             # a link to nothing
        if not regular:
            raise OptionError(f"{uri}: the options file beside the video is not a regular file "
                              "(a folder, a pipe or a broken link). Replace it with a JSON "
                              "file of options, or remove it.")
    elif not store.exists(uri):
        return {}
    try:
        data = json.loads(store.read_bytes(uri).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise OptionError(f"{uri}: not a valid JSON options file "
                          f"({e if not isinstance(e, RecursionError) else 'nested too deeply'})"
                          '. Give a JSON object of options, such as {"mask": "mosaic"}.') \
            from None
    if not isinstance(data, dict):
        raise OptionError(f"{uri}: must hold a JSON object of options, such as "
                          '{"mask": "mosaic"}.')
    if data.get("mask") == "none" and not unmasked_ok:
        raise OptionError(f'{uri}: asks for no masking ("mask": "none"), which this drop '
                          "folder does not take from a file dropped beside a video. Remove "
                          "that option (the folder's owner can allow it: "
                          "--allow-unmasked-sidecars).")
    return data


# ------------------------------------------------------------------------------ results

def _matching(folder: str, pattern: str) -> list[str]:
    """Paths of the files in `folder` whose whole name matches `pattern` (sorted)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    pat = re.compile(pattern + "$")
    return [os.path.join(folder, n) for n in names if pat.match(n)]


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
        held = read_record(uri) or {}
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
    status: str                      # done | skipped | failed | pending (still being written)
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
    version: dict | None = None      # the input version the job was pinned to
    dest: str | None = None          # where a local drop-folder input moves (done/ failed/)

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
    from .outputs import reserve_output
    t0 = time.time()
    execution = execution or Execution()
    store = st.get_storage(source)
    stat = jid = None
    held = dest = None
    s3_layout = layout is not None and st.is_s3(layout.root)
    try:
        stat = store.stat(source)
        boxes = None if options.boxes else boxes_beside(source)
        if boxes:           # re-render from an edited file: a job per version of the file
            rerun = boxes_rerun(boxes, rerun)
        jid = job_id(source, stat, rerun)
        if layout is not None:
            if resume and (done_for(layout.outputs(source)["summary"], layout.report(source),
                                    stat, jid, boxes) if boxes
                           else layout.result_for(source, stat)):
                return JobResult(source, "skipped", jid)
        elif resume and target_name is None and (earlier := finished_beside(source, stat)) \
                and (not boxes or _job_of(earlier) == jid):
            return JobResult(source, "skipped", jid)
        options, execution = with_sidecar(options, execution, {
            **({"boxes": boxes} if boxes else {}),
            **sidecar_options(source, unmasked_ok=layout is None or layout.unmasked_sidecars)})
        formats = options.data_format if options.save_data else ()
        # a new version of an S3 key, or an edit of a video's boxes, replaces its outputs
        replace = s3_layout or (layout is not None and boxes is not None)
        if replace:
            names, held = reserve_output(source, layout.outputs(source)["video"], True,
                                         formats=formats, heatmap=options.draw_heatmap,
                                         review=options.review)
        elif layout is not None:
            names, held, dest = layout.reserve(source, formats, options.draw_heatmap,
                                               options.review)
        else:
            names, held = reserve_output(source, target_name, overwrite, formats=formats,
                                         heatmap=options.draw_heatmap, review=options.review)
        summary = run(source, outputs=names, options=options, progress=progress,
                      overwrite=replace or (layout is None and overwrite),
                      publish_token=held.token if held else None, pin=stat.to_dict(),
                      job={"id": jid, "input": source, "rerun": rerun}, retries=retries,
                      workers=execution.workers, chunk_seconds=execution.chunk_seconds,
                      chunks=execution.chunks)
    except Interrupted:
        raise
    except InputChanged as e:
        if raise_errors:
            raise
        # an upload that paused or went on: no report, taken again once complete
        return JobResult(source, "pending", jid, error=str(e), error_type=type(e).__name__,
                         seconds=round(time.time() - t0, 3))
    except BlurfacesError as e:
        if raise_errors:
            raise
        report = failure_report(source, stat, jid, e, stage="job", started=t0)
        report_uri = None
        if layout is not None and not isinstance(e, (TransientError, Superseded)):
            # (no report for those: the input is fine, and a report marks it done)
            try:
                report_uri = layout.failure_report(source)
                write_report(report_uri, report)
            except (BlurfacesError, OSError):
                report_uri = None
        return JobResult(source, "failed", jid, report=report_uri, error=str(e),
                         error_type=type(e).__name__, seconds=round(time.time() - t0, 3),
                         version=stat.to_dict() if stat else None,
                         dest=report_uri[:-len(".json")] if report_uri and layout.moves_inputs
                         else None)
    finally:
        if held is not None:
            held.release()
    c = summary["counts"]
    return JobResult(source, "done", jid, outputs=summary["outputs"], frames=c["frames"],
                     faces=c["detections"], tracks=c["tracks"],
                     seconds=summary["timings"].get("total_s"), summary=summary,
                     version=stat.to_dict(), dest=dest)


def _settled(path: str, version: dict | None) -> bool:
    """The local file at `path` is still the version a job read (size and modification time:
    a move keeps both) and no other program has it open for writing."""
    try:
        s = os.stat(path)
    except OSError:
        return False
    v = version or {}
    return (s.st_size, s.st_mtime_ns) == (v.get("size"), v.get("mtime_ns")) \
        and not open_for_writing(path)


def withdraw(result: JobResult) -> None:
    """Remove what a finished job published (its summary first: it marks a complete result)
    or its failure report: they describe a part of an input that was still being written."""
    out = result.outputs or {}
    for uri in [out.get("summary"), out.get("video"), out.get("heatmap"),
                *(out.get("data") or []), result.report]:
        if uri:
            try:
                os.unlink(uri)
            except OSError:
                pass


def move_finished(source: str, dest: str, result: JobResult) -> str | None:
    """Move a local input whose job finished to `dest` (done/ or failed/, see move_input),
    unless it changed since the job read it or another program still has it open for
    writing, before or right after the move: then the job's outputs or report are withdrawn
    and the input stays in (or goes back to) incoming/, to be taken again once complete.
    Returns where it went, None when it stayed."""
    if not _settled(source, result.version):
        withdraw(result)
        return None
    target = move_input(source, dest)
    if not _settled(target, result.version):
        move_input(target, source)
        withdraw(result)
        return None
    return target


def refuse(layout: Layout, found: Found, why: str) -> JobResult:
    """A failure report for a file in incoming/ that is no input (another kind of file, an
    empty one): it would otherwise stay there for ever, unexplained."""
    e = InputError(f"{found.uri}: {why}, not a video blurfaces can process. Drop video files "
                   "here (" + ", ".join(sorted(VIDEO_EXTS)) + ").")
    uri = layout.failure_report(found.uri)
    jid = job_id(found.uri, found.stat)
    report = failure_report(found.uri, found.stat, jid, e, stage="discover",
                            started=time.time())
    write_report(uri, report)
    return JobResult(found.uri, "failed", jid, report=uri, error=str(e), error_type="InputError",
                     version=found.stat.to_dict(),
                     dest=uri[:-len(".json")] if layout.moves_inputs else None)


def unmovable(result: JobResult, dest: str, error: OSError) -> JobResult:
    """The result to report for an input whose job finished but which cannot be moved out of
    incoming/ (a read-only folder): failed, saying so; its outputs or report stand."""
    done = "processed" if result.status in ("done", "skipped") else "failed"
    return JobResult(result.input, "failed", result.job_id, outputs=result.outputs,
                     report=result.report, error_type="OutputError",
                     error=f"{result.input}: {done}, but it cannot be moved to "
                           f"{os.path.dirname(dest)} ({error.strerror or error}). Make "
                           "incoming/ writable for the watcher; until then it stays there "
                           "and is not processed again.")


def move_input(source: str, dest: str) -> str:
    """Move a local input (to done/ or failed/), its sidecar with it, never overwriting: a
    name clash gets a numeric suffix. Inputs are never lost, nor left in two places: a move
    that cannot remove the source (a read-only incoming/) takes its copy back and raises the
    OSError. Returns where it went."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    base, ext = os.path.splitext(dest)
    n, target = 0, dest
    while os.path.lexists(target):
        n += 1
        target = f"{base}_{n}{ext}"
    _move_file(source, target)
    for companion in (SIDECAR, *BOXES_SUFFIXES):
        if os.path.exists(source + companion):
            beside, k = target + companion, 0
            while companion != SIDECAR and os.path.lexists(beside):
                k += 1      # an earlier edit of this video is kept too
                beside = f"{target}.{k}{companion}"
            try:
                _move_file(source + companion, beside)
            except OSError:
                pass
    return target


def _move_file(source: str, target: str) -> None:
    """Rename `source` to the free name `target` (a copy across file systems)."""
    try:
        os.link(source, target)
    except OSError:
        if os.path.lexists(target):
            raise
        shutil.copy2(source, target)
    try:
        os.unlink(source)
    except OSError:
        os.unlink(target)
        raise


def check_root(root: str) -> None:
    if st.is_s3(root):
        st.parse_s3(root)
        return
    if not os.path.isdir(root):
        raise InputError(f"{root}: not a folder. Give a folder or an s3:// prefix.")
