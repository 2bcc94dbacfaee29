"""Re-render from a coordinate file (`--boxes FILE`): the boxes to mask come from the file
instead of the detector.

The file has the tool's own columns (data.py; CSV, TSV or TXT by its extension). Each row
masks its box (`x1`, `y1`, `x2`, `y2`, pixels of the upright picture, x2/y2 exclusive) on its
frame (`frame`, counted from 0; `time (ms)` is not read). Boxes reaching past the picture are
cut at its edges. Rows deleted are frames unmasked.

A track given by hand at a few keyframes is interpolated between them: a row whose `source`
is empty (or `keyframe`) is a keyframe, and the frames between it and the rows of the same
`track` (>= 0) before and after it get boxes linearly interpolated between the two (source
`interpolated`). Rows the tool wrote itself (detected, interpolated, held, lead) mask their
own frame only, so the tool's own file fed back reproduces its run.

`Replay` stands in for the tracker in the worker (stages.worker): one FrameMasks per frame.
"""
from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from . import storage as st
from .errors import OptionError
from .regions import REGION_SOURCE
from .track import SOURCES, FrameMasks

KEYFRAME = "keyframe"
_REQUIRED = ("x1", "y1", "x2", "y2", "frame")
_SUFFIXES = (".csv", ".tsv", ".txt")


def _parse(uri: str, text: str) -> pd.DataFrame:
    ext = os.path.splitext(uri)[1].lower()
    if ext not in _SUFFIXES:
        raise OptionError(f"{uri}: a boxes file must be the tool's coordinates as .csv, .tsv "
                          "or .txt (the <stem>.csv of a run, edited).")
    try:
        if ext == ".txt":
            df = pd.read_fwf(io.StringIO(text), dtype=str)
        else:
            df = pd.read_csv(io.StringIO(text), sep="\t" if ext == ".tsv" else ",", dtype=str,
                             skipinitialspace=True, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as e:
        raise OptionError(f"{uri}: cannot read it as a coordinate table "
                          f"({str(e).splitlines()[0]}).") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise OptionError(f"{uri}: no column {', '.join(missing)}; a boxes file has the "
                          "columns of the tool's own CSV (x1, y1, x2, y2, frame, and track, "
                          "score, source).")
    return df


def _numbers(uri: str, df: pd.DataFrame, col: str, *, integer: bool,
             default=None) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), default, dtype=np.float64)
    raw = df[col].fillna("").astype(str).str.strip().replace({"-": ""})
    blank = raw == ""
    vals = pd.to_numeric(raw.where(~blank, "nan"), errors="coerce").to_numpy(np.float64,
                                                                             copy=True)
    bad = np.isnan(vals) & ~blank.to_numpy()
    if integer:
        bad |= ~np.isnan(vals) & (vals != np.round(vals))
    if default is None:
        bad |= blank.to_numpy()
    else:
        vals[blank.to_numpy()] = default
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise OptionError(f"{uri}: line {i + 2}: {col} is {df[col].iloc[i]!r}, not "
                          f"{'an integer' if integer else 'a number'}. Fix or delete that row.")
    return vals


class BoxTable:
    """Every frame's boxes from a coordinate file, keyframed tracks filled in."""

    def __init__(self, by_frame: dict):
        self.by_frame = by_frame    # frame -> (boxes float (M, 4), tracks, scores, sources)

    @classmethod
    def read(cls, uri: str, frames: int, width: int, height: int) -> "BoxTable":
        """Read and check the file at `uri` (local or s3://) against a video of `frames`
        frames of `width` x `height` (upright); OptionError naming the line when a row is
        not usable."""
        try:
            text = st.get_storage(uri).read_bytes(uri).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise OptionError(f"{uri}: not a text file; give the tool's coordinates "
                              "(.csv, .tsv or .txt).") from None
        return cls.parse(uri, text, frames, width, height)

    @classmethod
    def parse(cls, uri: str, text: str, frames: int, width: int, height: int) -> "BoxTable":
        df = _parse(uri, text)
        xyxy = np.stack([_numbers(uri, df, c, integer=False) for c in ("x1", "y1", "x2", "y2")],
                        axis=1)
        frame = _numbers(uri, df, "frame", integer=True).astype(np.int64)
        track = _numbers(uri, df, "track", integer=True, default=-1).astype(np.int64)
        score = _numbers(uri, df, "score", integer=False, default=np.nan)
        source = (df["source"].fillna("").astype(str).str.strip().replace({"-": ""})
                  if "source" in df.columns else pd.Series([""] * len(df))).to_numpy(object)
        for i in range(len(df)):
            x1, y1, x2, y2 = xyxy[i]
            where = f"{uri}: line {i + 2}"
            if not 0 <= frame[i] < frames:
                raise OptionError(f"{where}: frame {frame[i]} is outside the video (frames "
                                  f"0 to {frames - 1}). Fix or delete that row.")
            if not (x2 > x1 and y2 > y1):
                raise OptionError(f"{where}: the box {x1:g},{y1:g},{x2:g},{y2:g} is empty "
                                  "(x2 must be above x1, y2 above y1).")
            if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
                raise OptionError(f"{where}: the box {x1:g},{y1:g},{x2:g},{y2:g} lies outside "
                                  f"the {width}x{height} picture.")
            if source[i] not in (*SOURCES, REGION_SOURCE, KEYFRAME, ""):
                raise OptionError(f"{where}: source {source[i]!r} is not one of "
                                  f"{', '.join(SOURCES)}, {REGION_SOURCE}, {KEYFRAME} or "
                                  "empty.")
        source = np.where(source == "", KEYFRAME, source).astype(object)
        rows = [(int(frame[i]), int(track[i]), xyxy[i], float(score[i]), str(source[i]))
                for i in range(len(df))]
        rows += _filled(rows)
        by_frame: dict = {}
        for f, tr, box, sc, src in sorted(rows, key=lambda r: (r[0], r[1], r[2][0], r[2][1])):
            by_frame.setdefault(f, []).append((box, tr, sc, src))
        table = {f: (np.array([r[0] for r in rs], np.float64).reshape(-1, 4),
                     np.array([r[1] for r in rs], np.int64),
                     np.array([r[2] for r in rs], np.float64), [r[3] for r in rs])
                 for f, rs in by_frame.items()}
        return cls(table)

    def at(self, frame: int, key, t: float) -> FrameMasks:
        got = self.by_frame.get(frame)
        if got is None:
            return FrameMasks(key, t, np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), [])
        return FrameMasks(key, t, *got)


def _filled(rows: list) -> list:
    """Rows interpolated between a keyframe and the neighbouring rows of its track."""
    out = []
    by_track: dict = {}
    for r in rows:
        if r[1] >= 0:
            by_track.setdefault(r[1], []).append(r)
    for tr, rs in by_track.items():
        rs.sort(key=lambda r: r[0])
        for a, b in zip(rs, rs[1:]):
            gap = b[0] - a[0]
            if gap <= 1 or KEYFRAME not in (a[4], b[4]):
                continue
            for f in range(a[0] + 1, b[0]):
                alpha = (f - a[0]) / gap
                out.append((f, tr, np.rint(a[2] + alpha * (b[2] - a[2])), np.nan,
                            "interpolated"))
    return out


class Replay:
    """The tracker's stand-in when boxes are given: frames pushed in order from the video's
    frame `first_index` get the file's boxes of that frame, at once."""

    def __init__(self, table: BoxTable, first_index: int):
        self.table, self.index = table, first_index

    def push(self, key, t: float, dets=None) -> list[FrameMasks]:
        fm = self.table.at(self.index, key, t)
        self.index += 1
        return [fm]

    def flush(self, at_end: bool = True) -> list[FrameMasks]:
        return []
