"""Which files are inputs: the one list of video extensions. (How the tool's own outputs are
recognised: `outputs.is_own_output`.)"""
from __future__ import annotations

import os

VIDEO_EXTS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts",
                        ".ts", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg", ".h264", ".264",
                        ".hevc", ".265", ".mxf", ".vob", ".ogv"})


def is_video_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTS
