"""Face coordinate data: one row per masked face per frame, written as CSV, TSV or TXT.

The first five columns are exactly the seed's: `time (ms)`, `x1`, `y1`, `x2`, `y2` (the mask
box in integer pixels of the upright picture, x2/y2 exclusive). Then `track` (the face's
track id, -1 with tracking off), `frame` (index of the frame in the video, from 0), `score`
(the detector's score; empty where no detection is behind the box) and `source` (detected,
interpolated, held, lead; `region` for an --always-mask rectangle, `keyframe` for a row given
by hand to --boxes). Rows are sorted by frame, then track.

TXT is a fixed-width table whose header lines up with its columns (the seed's did not).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


COLUMNS = ["time (ms)", "x1", "y1", "x2", "y2", "track", "frame", "score", "source"]
DTYPES = {"time (ms)": "float64", "x1": "int64", "y1": "int64", "x2": "int64", "y2": "int64",
          "track": "int64", "frame": "int64", "score": "float64", "source": "object"}


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in DTYPES.items()})


def to_frame(rows: list[tuple]) -> pd.DataFrame:
    if not rows:
        return empty_frame()
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype(DTYPES).sort_values(["frame", "track", "x1", "y1"], kind="stable") \
        .reset_index(drop=True)


def render(df: pd.DataFrame, fmt: str) -> str:
    """The text of a data file in one of options.DATA_FORMATS."""
    out = df.copy()
    out["time (ms)"] = out["time (ms)"].map(lambda v: f"{v:.3f}")
    out["score"] = out["score"].map(lambda v: "" if np.isnan(v) else f"{v:.4f}")
    if fmt == "csv":
        return out.to_csv(index=False, lineterminator="\n")
    if fmt == "tsv":
        return out.to_csv(index=False, sep="\t", lineterminator="\n")
    if out.empty:
        return "  ".join(COLUMNS) + "\n"
    out["score"] = out["score"].replace("", "-")
    return out.to_string(index=False, justify="right") + "\n"


def write(df: pd.DataFrame, path: str, fmt: str) -> str:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(render(df, fmt))
    return path


def read(path: str) -> pd.DataFrame:
    """Read a data file written by `write` back into a typed DataFrame."""
    if path.endswith(".txt"):
        df = pd.read_fwf(path)
        df.columns = COLUMNS
        df["score"] = pd.to_numeric(df["score"].replace("-", np.nan))
    else:
        df = pd.read_csv(path, sep="\t" if path.endswith(".tsv") else ",")
    return df.astype({k: v for k, v in DTYPES.items() if k != "source"})
