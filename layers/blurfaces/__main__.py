import os
import signal
import sys


def _early(signum, frame):
    # A signal before the command line has set its own handlers (the interpreter and the
    # imports can take a while on a busy machine): nothing has started, nothing to clean up.
    name = signal.Signals(signum).name
    sys.stderr.write(f"blurfaces: interrupted by {name} before the run started; nothing was "
                     "written.\n")
    sys.stderr.flush()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _early)
signal.signal(signal.SIGINT, _early)

from .cli import main  # noqa: E402

sys.exit(main())
