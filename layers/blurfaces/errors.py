"""Exception types for expected failures: every one of them is defined here.

Everything a user can cause (a bad input file, a bad option, an unwritable output folder, a
missing model) raises a subclass of `BlurfacesError` with one message that says which file,
what is wrong and what to do. The CLI prints that message and exits with status 2; anything
else is a bug and keeps its traceback.

What a failure report needs is carried as fields, never parsed out of the message: `input`
(the file or URI the error is about, when known), `stage`, `chunk` (the chunk's index), and
the class's `hint` (what to do), which subclasses inherit unless they say better. Errors
pickle with their fields (they cross from worker processes to the runner).
"""
from __future__ import annotations

import contextlib
import sys


class BlurfacesError(Exception):
    """Base class of every expected error."""

    hint = "Run again; if it keeps failing, report it."

    def __init__(self, message: str = "", *, input: str | None = None,
                 stage: str | None = None, chunk: int | None = None):
        super().__init__(message)
        self.input, self.stage, self.chunk = input, stage, chunk


class InputError(BlurfacesError):
    """The input video (or mask image) is missing, unreadable, or not a usable video."""

    hint = "Check or replace the input file; a new version is processed again."


class InputChanged(InputError):
    """The input changed, or another program still had it open for writing, while it was
    being processed (an upload that paused): no result for it, it is taken again once it is
    complete."""


class LimitError(InputError):
    """The input is beyond what this deployment can process (too long, frames too large,
    an output that would not fit stitch's /tmp): refused in plan, before any worker runs."""

    hint = ("Split the video or scale it down (the message says which limit), or raise the "
            "deployment's limits; a new version is processed again.")


class OptionError(BlurfacesError, ValueError):
    """An option has a value outside what it accepts."""

    hint = "Fix the options (sidecar file or settings) and upload the video again."


class OutputError(BlurfacesError):
    """The outputs cannot be written where they were asked for."""

    hint = "Fix the output location (space, permissions), then run again."


class ModelError(BlurfacesError):
    """The face model is missing or cannot be fetched or loaded."""

    hint = "Check the model installation (blurfaces fetch-model)."


class TransientError(BlurfacesError):
    """A service was briefly unavailable (S3 throttling, 5xx, timeouts) and stayed so through
    the retries: the job failed, but the input is fine. Nothing marks it done; run it again
    (on AWS the state machine retries, and a re-delivered event or backfill starts it anew)."""

    hint = "Run again later: a service was unavailable; the input is fine."


class Superseded(BlurfacesError):
    """The input was replaced by a newer version (or deleted) while its job ran: nothing was
    published for the old version. Not a failure: the newer version is its own job."""

    hint = "Nothing to do: the newer version is processed as its own job."


class ChunkError(BlurfacesError):
    """A chunk of the video kept failing after its retries (or has no result)."""

    hint = "Run again; if it keeps failing, report it with the input."

    def __init__(self, message: str = "", *, index: int | None = None,
                 start_s: float | None = None, stop_s: float | None = None, **fields):
        super().__init__(message, chunk=index, **fields)
        self.index, self.start_s, self.stop_s = index, start_s, stop_s


class VerifyError(BlurfacesError):
    """The finished output does not match the input (frames, timestamps, size or audio):
    the self-check refused to publish it."""

    hint = "This is a blurfaces bug: report it with the input."


_HELD: list = [0, []]  # signals_held: [depth, signal numbers that arrived meanwhile]


@contextlib.contextmanager
def signals_held():
    """A block that the CLI's SIGINT/SIGTERM handler does not interrupt: a signal arriving in
    it is sent again when it ends. For imports of native modules whose initialisation runs
    Python code: onnx's (nanobind) cannot unwind through an exception raised there by a
    handler, and the process aborted (exit -6, no message) instead of ending with one line.
    Of two different signals held, the first ends the run (its exit status)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield                       # Python runs signal handlers in the main thread only
        return
    if _HELD[0] == 0:
        _HELD[1] = []
    _HELD[0] += 1
    try:
        yield
    finally:
        _HELD[0] -= 1
        if _HELD[0] == 0 and _HELD[1]:
            import signal
            pending, _HELD[1] = _HELD[1], []
            for signum in dict.fromkeys(pending):
                signal.raise_signal(signum)


def hold_signal(signum: int) -> bool:
    """For a signal handler: True (and the signal kept for later) inside `signals_held`."""
    if _HELD[0] > 0:
        _HELD[1].append(signum)
        return True
    return False


class Interrupted(BlurfacesError):
    """The run was stopped by a signal (SIGINT or SIGTERM); nothing was published."""

    hint = "Run again."

    def __init__(self, signum: int):
        import signal
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; nothing of the unfinished job was published.")


def hint_for(name: str) -> str:
    """The hint of the error class called `name`: for an error that crossed a Lambda or
    Step Functions boundary as its name only."""
    cls = getattr(sys.modules[__name__], name, None)
    return cls.hint if isinstance(cls, type) and issubclass(cls, BlurfacesError) \
        else BlurfacesError.hint
