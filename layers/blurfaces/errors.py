"""Exception types for expected failures.

Everything a user can cause (a bad input file, a bad option, an unwritable output folder, a
missing model) raises a subclass of `BlurfacesError` with one message that says which file,
what is wrong and what to do. The CLI prints that message and exits with status 2; anything
else is a bug and keeps its traceback.
"""


class BlurfacesError(Exception):
    """Base class of every expected error."""


class InputError(BlurfacesError):
    """The input video (or mask image) is missing, unreadable, or not a usable video."""


class LimitError(InputError):
    """The input is beyond what this deployment can process (too long, frames too large,
    an output that would not fit stitch's /tmp): refused in plan, before any worker runs."""


class OptionError(BlurfacesError, ValueError):
    """An option has a value outside what it accepts."""


class OutputError(BlurfacesError):
    """The outputs cannot be written where they were asked for."""


class ModelError(BlurfacesError):
    """The face model is missing or cannot be fetched or loaded."""


class ChunkError(BlurfacesError):
    """A chunk of the video kept failing after its retries."""


class VerifyError(BlurfacesError):
    """The finished output does not match the input (frames, timestamps, size or audio):
    the self-check refused to publish it."""


class Interrupted(BlurfacesError):
    """The run was stopped by a signal (SIGINT or SIGTERM); nothing was published."""

    def __init__(self, signum: int):
        import signal
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; nothing of the unfinished job was published.")
