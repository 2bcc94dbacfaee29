"""The deployment's settings, parsed once from the environment into one typed, frozen record
(`Settings.from_env`), and the options of one job (`job_options`).

The environment is the template's (template.yaml: Globals and each function's variables):
the drop folder's root in the bucket (``ROOT_PREFIX``; ``ROOT/incoming/**`` is the only place
that triggers), the work prefix, the state machine, the EventBridge bus, the Map's
concurrency, the backfill's batch size and parallelism, what the stack can process (limits),
the functions' sizes (for the cost estimate and the chunk length). Nothing else in
`blurfaces.aws` reads ``os.environ``.

The options of a job are layered (`options.resolve`): library defaults < the drop-folder
layout's (`options.LAYOUT_DEFAULTS`) < the environment (`options.from_env`:
``BLURFACES_OPTIONS``, then ``BLURFACES_<NAME>``) < the event's ``options`` < the video's
sidecar.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .. import cost, jobs, stages
from ..errors import OptionError
from ..options import Options, resolve
from . import sizing


def _bool(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise OptionError(f"environment variable {name}={text!r}: use true or false.")


def _prefix(text: str) -> str:
    text = text.strip().lstrip("/")
    return text + "/" if text and not text.endswith("/") else text


def number(name: str, text, kind, lo, hi):
    """`text` as a `kind` within lo..hi, else an OptionError naming `name`."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise OptionError(f"{name}={text!r}: use a number from {lo} to {hi}.") from None
    if not lo <= value <= hi:
        raise OptionError(f"{name}={value}: use a number from {lo} to {hi}.")
    return value


@dataclass(frozen=True)
class Settings:
    root_prefix: str = ""
    work_prefix: str = ".blurfaces/work/"
    state_machine: str | None = None
    bus: str = "default"
    max_concurrency: int = 100
    backfill_limit: int = 1000         # keys listed per backfill call (one S3 page)
    backfill_concurrency: int = 8       # jobs planned at once by a call (without a queue)
    upload_queue: str | None = None     # the queue plan consumes (backfill sends to it)
    keep_work: bool = False
    # what the stack can process (template parameters -> environment)
    max_video_seconds: float = 4 * 3600.0
    max_frame_pixels: int = 3840 * 2160
    stitch_tmp_mb: int = 10240
    max_chunks: int = sizing.MAP_ITEMS_MAX
    # the functions' sizes: the cost estimate and the chunk length a worker finishes
    worker_memory_mb: int = cost.DEFAULT_WORKER_MEMORY_MB
    large_worker_memory_mb: int = cost.DEFAULT_LARGE_WORKER_MEMORY_MB
    # the two worker functions (names or ARNs) the state machine invokes, by plan's choice
    worker_function: str | None = None
    large_worker_function: str | None = None
    stitch_memory_mb: int = 3008
    architecture: str = "x86_64"
    function_memory_mb: int | None = None     # this function's own (None outside Lambda)
    worker_cpu_s_per_mpixel: float = sizing.WORKER_CPU_S_PER_MPIXEL
    plan_budget_s: float = sizing.PLAN_BUDGET_S

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        env = (os.environ if environ is None else environ).get

        def num(name, default, kind, lo, hi):
            return number(name, env(name, "") or default, kind, lo, hi)

        root = _prefix(env("ROOT_PREFIX", ""))
        fn_mb = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        s = cls(root_prefix=root,
                work_prefix=_prefix(env("WORK_PREFIX", "") or f"{root}.blurfaces/work/"),
                state_machine=env("STATE_MACHINE_ARN", "").strip() or None,
                bus=env("EVENT_BUS", "").strip() or "default",
                max_concurrency=num("MAX_CONCURRENCY", 100, int, 1, 10000),
                backfill_limit=num("BACKFILL_LIMIT", 1000, int, 1, 1000),
                backfill_concurrency=num("BACKFILL_CONCURRENCY", 8, int, 1, 64),
                upload_queue=env("UPLOAD_QUEUE_URL", "").strip() or None,
                keep_work=_bool("KEEP_WORK", env("KEEP_WORK", "")),
                max_video_seconds=num("MAX_VIDEO_SECONDS", 4 * 3600.0, float, 0.001, 1e7),
                max_frame_pixels=num("MAX_FRAME_PIXELS", 3840 * 2160, int, 1, 10**9),
                stitch_tmp_mb=num("STITCH_TMP_MB", 10240, int, 1, 10240),
                max_chunks=num("MAX_CHUNKS", sizing.MAP_ITEMS_MAX, int, 1,
                               sizing.MAP_ITEMS_MAX),
                worker_memory_mb=num("WORKER_MEMORY_MB", cost.DEFAULT_WORKER_MEMORY_MB, int, 128,
                                     10240),
                large_worker_memory_mb=num("LARGE_WORKER_MEMORY_MB",
                                           cost.DEFAULT_LARGE_WORKER_MEMORY_MB, int, 128,
                                           10240),
                worker_function=env("WORKER_FUNCTION", "").strip() or None,
                large_worker_function=env("LARGE_WORKER_FUNCTION", "").strip() or None,
                stitch_memory_mb=num("STITCH_MEMORY_MB", 3008, int, 128, 10240),
                architecture=env("LAMBDA_ARCHITECTURE", "").strip() or "x86_64",
                function_memory_mb=number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", fn_mb, int,
                                          128, 10240) if fn_mb else None,
                worker_cpu_s_per_mpixel=num("WORKER_CPU_S_PER_MPIXEL",
                                            sizing.WORKER_CPU_S_PER_MPIXEL, float, 1e-6, 1e3),
                plan_budget_s=num("PLAN_BUDGET_S", sizing.PLAN_BUDGET_S, float, 0.001, 900))
        if s.architecture not in cost.PRICES["lambda_gb_s"]:
            raise OptionError(f"LAMBDA_ARCHITECTURE={s.architecture!r}: use x86_64 or arm64.")
        if s.state_machine and not (s.worker_function and s.large_worker_function):
            raise OptionError("STATE_MACHINE_ARN is set but WORKER_FUNCTION or "
                              "LARGE_WORKER_FUNCTION is not: plan names the worker function "
                              "of each job's chunks (template.yaml sets both).")
        if s.work_prefix.startswith(f"{root}incoming/"):
            raise OptionError(f"WORK_PREFIX={s.work_prefix!r} is under {root}incoming/, "
                              "which triggers jobs: choose a prefix outside it.")
        return s

    def layout(self, bucket: str) -> jobs.Layout:
        return jobs.Layout(f"s3://{bucket}/{self.root_prefix}")

    def work(self, bucket: str, jid: str) -> str:
        return f"s3://{bucket}/{self.work_prefix}{jid}/"

    def workers(self) -> tuple[sizing.Worker, sizing.Worker]:
        """The two worker functions, the default one first (`sizing.choose_worker`)."""
        return (sizing.Worker(self.worker_memory_mb, self.worker_function, "WorkerMemorySize"),
                sizing.Worker(self.large_worker_memory_mb, self.large_worker_function,
                              "LargeWorkerMemorySize"))

    def functions(self, worker: sizing.Worker) -> dict:
        """The Lambda sizes a job runs with (the manifest's ``job.lambda``, for its cost
        estimate): its worker's (`sizing.choose_worker`), plan's (this function's own) and
        stitch's."""
        return {"worker_memory_mb": worker.memory_mb,
                "plan_memory_mb": self.function_memory_mb or sizing.PLAN_MEMORY_MB,
                "stitch_memory_mb": self.stitch_memory_mb,
                "architecture": self.architecture}


def job_options(event_options: dict | None = None, sidecar: dict | None = None,
                chunk_seconds=None) -> tuple[Options, dict]:
    """The options of one job and how it is cut (`options.resolve`, as every entry point):
    defaults < the layout's < the environment < the event < the sidecar. Returns (options,
    {"chunk_seconds", "chunks"}); without either, chunks of `stages.DEFAULT_CHUNK_SECONDS`."""
    if event_options is not None and not isinstance(event_options, dict):
        raise OptionError("the event's 'options' must be a JSON object.")
    event = dict(event_options or {})
    if chunk_seconds is not None:
        event["chunk_seconds"] = chunk_seconds
    options, execution = resolve(event, layout=True, sidecar=sidecar)
    cut = {"chunk_seconds": execution.chunk_seconds, "chunks": execution.chunks}
    if cut["chunk_seconds"] is None and cut["chunks"] is None:
        cut["chunk_seconds"] = stages.DEFAULT_CHUNK_SECONDS
    return options, cut
