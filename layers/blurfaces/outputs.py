"""Output names, and what the outputs already there say about an input: for local paths and
S3 alike.

* **Names.** Every output of a run derives from its video's final name: the video
  `<stem>.mp4`, the data `<stem>.<fmt>` (csv, tsv, txt), the heatmap `<stem>_heatmap.png`,
  the review page `<stem>_review.html` and the summary `<stem>_summary.json`, written
  last: it marks a complete result and names the video. Beside an input `clip.mp4` the
  video is `clip_blurred.mp4` (then `clip_blurred_1.mp4` ... when taken: `reserve_output`).
* **Is this our own output?** A video is one of ours when the summary beside it is a
  blurfaces summary that names this very file as its output video, never by a substring of
  its name (a user's `lens_blurred_take2.mp4` is an input like any other), the same locally
  and on S3.
* **Is this input already done?** A complete result (its summary records the same input
  version) or a failure report for that version (`done`).
"""
from __future__ import annotations

import os
import posixpath
import re

from . import storage as st
from .errors import BlurfacesError, OptionError, OutputError, TransientError

SUFFIX = "_blurred"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")
SUMMARY = "_summary.json"
HEATMAP = "_heatmap.png"
REVIEW = "_review.html"


# ------------------------------------------------------------------------------ names

def _stem(uri: str) -> str:
    ext = os.path.splitext(uri)[1]
    return uri[: -len(ext)] if ext else uri


def output_names(video_uri: str) -> dict:
    """All output URIs of a run, derived from the video's final name (the manifest's
    "outputs")."""
    stem = _stem(video_uri)
    return {"video": video_uri, "stem": stem, "heatmap": stem + HEATMAP,
            "review": stem + REVIEW, "summary": stem + SUMMARY}


def data_uri(names: dict, fmt: str) -> str:
    """The data file of format `fmt` of a run named `names` (`output_names`)."""
    return f"{names['stem']}.{fmt}"


def final_uris(names: dict, formats=(), heatmap: bool = True, review: bool = True
               ) -> list[str]:
    """Every name a run may publish: the video, the data files, the heatmap, the review page,
    the summary last."""
    return [names["video"], *(data_uri(names, f) for f in formats),
            *([names["heatmap"]] if heatmap else []), *([names["review"]] if review else []),
            names["summary"]]


def video_name(source: str, folder: str | None = None) -> str:
    """`<source stem>_blurred.mp4` beside the source, or in `folder`."""
    if folder is None:
        return _stem(source) + SUFFIX + ".mp4"
    stem = os.path.splitext(os.path.basename(source.rstrip("/")))[0]
    return st.join(folder, stem + SUFFIX + ".mp4") if st.is_s3(folder) \
        else os.path.join(folder, stem + SUFFIX + ".mp4")


def summary_of(video_uri: str) -> str:
    return output_names(video_uri)["summary"]


# ------------------------------------------------------------------------------ records

def read_record(uri: str):
    """The JSON at `uri` (a summary, a report, a claim); None when it is missing or cannot
    be read."""
    store = st.get_storage(uri)
    try:
        if not store.exists(uri):
            return None
        return store.read_json(uri)
    except TransientError:
        raise                   # not "absent": S3 is unavailable
    except (BlurfacesError, OSError, ValueError):
        return None


def is_own_output(uri: str, listing=None) -> bool:
    """True when the video at `uri` (a path or an s3:// URI) is one blurfaces wrote: the
    summary beside it is a blurfaces summary that names this very file. `listing` (the URIs
    of a folder or prefix, when the caller has them) saves a look-up when no summary is
    there."""
    summary_uri = summary_of(uri)
    if listing is not None and summary_uri not in listing:
        return False
    summary = read_record(summary_uri)
    if not isinstance(summary, dict) or "versions" not in summary:
        return False
    out = (summary.get("outputs") or {}).get("video")
    return isinstance(out, str) and posixpath.basename(out.replace(os.sep, "/")) == \
        posixpath.basename(uri.replace(os.sep, "/"))


def same_version(version: dict | None, stat: st.Stat) -> bool:
    """Whether `version` (a recorded `Stat.to_dict()`) is the version `stat` describes. A
    listing's entry has no version id: on S3 its ETag and size identify the bytes."""
    version = version if isinstance(version, dict) else {}
    if version.get("token") == stat.token:
        return True
    return bool(stat.version_id is None and stat.etag and version.get("etag") == stat.etag
                and version.get("size") == stat.size)


def finished(summary_uri: str, stat: st.Stat) -> dict | None:
    """The summary at `summary_uri` if it is a complete result for this input version."""
    s = read_record(summary_uri)
    if isinstance(s, dict) and same_version(s.get("input_version"), stat):
        return s
    return None


def reported(report_uri: str, stat: st.Stat) -> dict | None:
    """The failure report at `report_uri` if it is about this input version."""
    r = read_record(report_uri)
    if isinstance(r, dict) and same_version(r.get("version"), stat):
        return r
    return None


def done(summary_uri: str, report_uri: str | None, stat: st.Stat) -> tuple[str, str] | None:
    """Is this input version already done? ("summary", uri) for a complete result,
    ("report", uri) for a failure report of it, else None. Watchers, batch runs and the
    Lambdas never redo or republish a done input."""
    if finished(summary_uri, stat):
        return "summary", summary_uri
    if report_uri is not None and reported(report_uri, stat):
        return "report", report_uri
    return None


def finished_beside(source: str, stat: st.Stat) -> dict | None:
    """A complete result beside the input (`<stem>_blurred[_N]_summary.json`)."""
    first = summary_of(video_name(source))
    if st.is_s3(source):
        return finished(first, stat)
    folder = os.path.dirname(os.path.abspath(source))
    pat = re.compile(re.escape(os.path.basename(_stem(source)) + SUFFIX) + r"(_\d+)?"
                     + re.escape(SUMMARY) + "$")
    for name in sorted(os.listdir(folder)):
        if pat.match(name):
            s = finished(os.path.join(folder, name), stat)
            if s:
                return s
    return None


# ------------------------------------------------------------------------------ reserving

def reserve_output(source: str, target_name: str | None = None, overwrite: bool = False,
                   storage=None, formats=("csv",), heatmap=False, review=False):
    """`<stem>_blurred.mp4` beside the source (or `target_name`; an existing folder or a name
    ending in a path separator means "in this folder"); without `overwrite`, the first free
    name among `_1`, `_2`, ... so no existing file is ever replaced. The names are claimed for
    this run (`publish.claim`): two runs at once never get the same local names. Returns
    (names, claim or None)."""
    from .publish import Taken, claim, clean_if_stale, ensure_writable
    storage = storage or st.get_storage(target_name or source)
    if target_name:
        target_name = str(target_name)
        if not st.is_s3(target_name):
            _refuse_special(target_name)
        if not st.is_s3(target_name) and (target_name.endswith((os.sep, "/"))
                                          or os.path.isdir(target_name)):
            if not os.path.isdir(target_name):
                raise OutputError(f"{target_name}: output folder does not exist. Create it "
                                  "or choose another output path.")
            target_name = video_name(source, target_name)
        base, ext = os.path.splitext(target_name)
        if not ext:
            ext = ".mp4"
        if ext.lower() not in VIDEO_SUFFIXES:
            raise OptionError(f"{target_name}: the output is an MP4 video; give a name ending "
                              f"in .mp4 (or .m4v/.mov).")
        if not os.path.basename(base) and not st.is_s3(base):
            raise OptionError(f"{target_name}: the output name is empty. Give a file name "
                              "such as out.mp4.")
    else:
        base, ext = os.path.splitext(video_name(source))
    ensure_writable(f"{base}{ext}")
    n = 0
    while True:
        video = f"{base}{'' if n == 0 else f'_{n}'}{ext}"
        names = output_names(video)
        if not st.is_s3(video):
            clean_if_stale(video)   # a dead run's leftovers are cleaned, never a reason to skip
        if _same(video, source):
            if target_name and overwrite:
                raise OptionError(f"{video}: the output would replace the input; "
                                  "choose another target name.")
        else:
            finals = final_uris(names, formats, heatmap, review)
            if overwrite or not any(_taken(storage, u) for u in finals):
                try:
                    held = claim(finals, video)
                    # Claiming may have cleaned a dead run's leftovers and put back a file it
                    # had moved aside: look again.
                    if held is None or overwrite or not any(_taken(storage, u) for u in finals):
                        return names, held
                    held.release()
                except Taken as t:
                    if overwrite:
                        raise OutputError(
                            f"{video}: another blurfaces run (pid {t.owner.get('pid', '?')}) "
                            "is writing this output now. Wait for it to finish or choose "
                            "another output name (-o PATH).") from None
        n += 1


def _refuse_special(target: str) -> None:
    """OptionError for an output named after a device, pipe or socket (`-o /dev/null`), or
    anywhere under /dev: the run writes a video and its data files beside it."""
    real = os.path.realpath(target)
    special = os.path.exists(real) and not (os.path.isfile(real) or os.path.isdir(real))
    if special or real == "/dev" or real.startswith("/dev/"):
        raise OptionError(f"{target}: not a place for the outputs (a device, pipe or /dev): "
                          "blurfaces writes a video and its data files there. Give a file "
                          "name in a folder (-o out/clip_blurred.mp4).")


def _taken(storage, uri: str) -> bool:
    """A name is taken by anything there: a file, a folder, a dangling link."""
    local = storage.local_path(uri)
    return os.path.lexists(local) if local is not None else storage.exists(uri)


def _same(a: str, b: str) -> bool:
    if st.is_s3(a) or st.is_s3(b):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)
