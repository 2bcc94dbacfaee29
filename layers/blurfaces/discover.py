"""Which files are inputs: the one list of video extensions, and whether a file is still
being written: a file that another process has open for writing (an upload that paused for
longer than the settle time) is not an input yet (`open_for_writing`, where Linux can tell).
(How the tool's own outputs are recognised: `outputs.is_own_output`.)"""
from __future__ import annotations

import errno
import fcntl
import os

VIDEO_EXTS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts",
                        ".ts", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg", ".h264", ".264",
                        ".hevc", ".265", ".mxf", ".vob", ".ogv", ".gif"})


def is_video_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTS


def open_for_writing(path: str) -> bool:
    """Whether another process has the file at `path` open for writing, as far as this
    system can tell: Linux refuses a read lease (fcntl F_SETLEASE) while any writer has the
    file open; where leases are not available (a network file system, another user's file
    without CAP_LEASE) the open files listed in /proc are read. False where neither works."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EBUSY):
            return True
        return _writers_in_proc(path)
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def _writers_in_proc(path: str) -> bool:
    """Whether any process visible in /proc has `path` open write-only or read-write."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    for pid in pids:
        fds = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fds)
        except OSError:
            continue
        for n in names:
            try:
                s = os.stat(f"{fds}/{n}")
                if (s.st_dev, s.st_ino) != (target.st_dev, target.st_ino):
                    continue
                with open(f"/proc/{pid}/fdinfo/{n}", encoding="ascii") as f:
                    flags = next((int(line.split()[1], 8) for line in f
                                  if line.startswith("flags:")), 0)
            except (OSError, ValueError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                return True
    return False
