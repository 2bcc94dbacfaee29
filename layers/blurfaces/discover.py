"""Which files are inputs: the one list of video extensions, and how the tool's own outputs
are recognised.

An output of blurfaces is recognised by what it is, never by a substring of its name: a video
is one of ours when the summary written beside it (`<stem>_summary.json`) is a blurfaces
summary that names this very file as its output video. A user's `lens_blurred_take2.mp4` is
an input like any other.
"""
from __future__ import annotations

import json
import os

VIDEO_EXTS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts",
                        ".ts", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg", ".h264", ".264",
                        ".hevc", ".265", ".mxf", ".vob", ".ogv"})


def is_video_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTS


def summary_path(video: str) -> str:
    return f"{os.path.splitext(video)[0]}_summary.json"


def is_own_output(path: str) -> bool:
    """True when `path` is a video that blurfaces wrote (its summary beside it says so)."""
    try:
        with open(summary_path(path), encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return False
    out = (summary.get("outputs") or {}).get("video") if isinstance(summary, dict) else None
    if not isinstance(out, str) or "versions" not in summary:
        return False
    return os.path.basename(out) == os.path.basename(path)
