"""Observability of the Lambda functions: Powertools Logger, Metrics and Tracer, set up the
same way for plan, worker and stitch, and what each of them emits.

Owns:

* `powertools(function)`: the Logger (service ``blurfaces``; the handler binds the key
  ``function`` per invocation, as Logger instances of one service share their keys), Metrics
  (namespace ``POWERTOOLS_METRICS_NAMESPACE``, default ``blurfaces``; one dimension,
  ``function``, set by each emitter) and Tracer of one handler. The blurfaces core's own loggers
  (``blurfaces.*``, standard `logging`) are given the Powertools formatter, so their lines
  carry the same keys (job_id, chunk) as the handler's;
* `bind(event)`: the log keys of an event: ``job_id`` (from the event, or the work area
  URI, which ends in the job id) and ``chunk`` (the Map item's index). Events are never
  logged whole: `event_keys` is what may be logged of one (its shape and the object keys,
  never requester IPs, principals or request ids);
* `chunk_metrics` / `job_metrics` / `plan_metrics`: the metric names and units (listed in
  docs/aws.md), one EMF document per invocation; the job id is metadata, not a dimension
  (a dimension per job would be a new CloudWatch metric per video).

aws_lambda_powertools is imported only inside `powertools`: the core loads no AWS library.
"""
from __future__ import annotations

import os

NAMESPACE = "blurfaces"
SERVICE = "blurfaces"
_LOGGER = None


def powertools(function: str):
    """(logger, metrics, tracer) for the handler of `function` (plan, worker, stitch)."""
    global _LOGGER
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.logging import utils

    logger = Logger(service=SERVICE, child=False)
    utils.copy_config_to_registered_loggers(source_logger=logger, include={"blurfaces"})
    metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE,
                      service=SERVICE)
    tracer = Tracer(service=SERVICE)
    _LOGGER = logger
    return logger, metrics, tracer


def job_id_of(work) -> str | None:
    """The job id at the end of a work area URI (``.../work/<job id>/``)."""
    if not isinstance(work, str) or not work.rstrip("/"):
        return None
    return work.rstrip("/").rsplit("/", 1)[-1] or None


def keys_of(event) -> dict:
    """The log keys of an event: job_id and chunk where it names them."""
    if not isinstance(event, dict):
        return {}
    out = {}
    jid = event.get("job_id") or job_id_of(event.get("work"))
    if jid:
        out["job_id"] = str(jid)
    if isinstance(event.get("index"), int) and not isinstance(event.get("index"), bool):
        out["chunk"] = event["index"]
    return out


def bind(event=None, **keys) -> dict:
    """Append the event's keys (and `keys`) to every following log line of this invocation
    (the handler's and the core's). Returns what was bound."""
    k = {**keys_of(event), **{n: v for n, v in keys.items() if v is not None}}
    if _LOGGER is not None and k:
        _LOGGER.append_keys(**k)
    return k


def event_keys(event) -> dict:
    """What may be logged of an event: its kind and the object keys it names. Never the
    whole event (requester IP addresses, principal ids, request ids stay out)."""
    if not isinstance(event, dict):
        return {"event": type(event).__name__}
    if "Records" in event:
        return {"event": "s3", "objects": [
            str(((r.get("s3") or {}).get("object") or {}).get("key"))
            for r in event["Records"] if isinstance(r, dict)][:20]}
    if event.get("source") == "aws.s3":
        return {"event": "eventbridge",
                "objects": [str(((event.get("detail") or {}).get("object") or {}).get("key"))]}
    return {"event": "direct",
            "fields": sorted(k for k in event if isinstance(k, str))[:20]}


def _add(metrics, name: str, unit: str, value) -> None:
    if value is None:
        return
    metrics.add_metric(name=name, unit=unit, value=float(value))


def chunk_metrics(metrics, result: dict) -> None:
    """Per chunk: frames, faces (detections), seconds, frames/s and the estimated US$. Both
    worker functions report as `function=worker` (one metric for the deployment's chunks);
    which of them ran a chunk is its metadata (`memory_mb`, `threads`), as the job id is."""
    metrics.add_dimension(name="function", value="worker")
    _add(metrics, "ChunkFrames", "Count", result.get("frames"))
    _add(metrics, "ChunkFaces", "Count", result.get("detections"))
    _add(metrics, "ChunkSeconds", "Seconds", result.get("seconds"))
    _add(metrics, "ChunkFramesPerSecond", "Count/Second", result.get("fps"))
    _add(metrics, "ChunkCostUSD", "None", result.get("cost_usd"))
    if result.get("reused"):
        _add(metrics, "ChunksReused", "Count", 1)
    metrics.add_metadata(key="job_id", value=result.get("job_id"))
    metrics.add_metadata(key="chunk", value=result.get("index"))
    for key in ("memory_mb", "threads"):
        if result.get(key) is not None:
            metrics.add_metadata(key=key, value=result[key])


def job_metrics(metrics, result: dict) -> None:
    """Per finished job: frames, faces, seconds (upload to published), frames/s, US$."""
    metrics.add_dimension(name="function", value="stitch")
    _add(metrics, "JobsSucceeded", "Count", 1)
    _add(metrics, "JobFrames", "Count", result.get("frames"))
    _add(metrics, "JobFaces", "Count", result.get("detections"))
    _add(metrics, "JobSeconds", "Seconds", result.get("seconds"))
    _add(metrics, "JobFramesPerSecond", "Count/Second", result.get("fps"))
    _add(metrics, "JobCostUSD", "None", (result.get("cost") or {}).get("usd"))
    metrics.add_metadata(key="job_id", value=result.get("job_id"))


def failed_metrics(metrics, result: dict) -> None:
    """Per failed job (the Abort path)."""
    metrics.add_dimension(name="function", value="stitch")
    _add(metrics, "JobsFailed", "Count", 1)
    metrics.add_metadata(key="job_id", value=result.get("job_id"))


def plan_metrics(metrics, jobs: list[dict]) -> None:
    """Per plan invocation: jobs started, refused up front (limits), failed in plan."""
    metrics.add_dimension(name="function", value="plan")
    by = {}
    for j in jobs:
        by[j.get("status")] = by.get(j.get("status"), 0) + 1
    _add(metrics, "JobsStarted", "Count", by.get("started", 0) + by.get("planned", 0))
    _add(metrics, "JobsFailedInPlan", "Count", by.get("failed", 0))
    _add(metrics, "JobsOverLimits", "Count",
         sum(1 for j in jobs if j.get("error_type") == "LimitError"))
    _add(metrics, "DuplicateEvents", "Count", by.get("duplicate", 0) + by.get("done", 0))


def backfill_metrics(metrics, result: dict) -> None:
    """Per backfill call: jobs it started, and whether more calls follow."""
    metrics.add_dimension(name="function", value="plan")
    _add(metrics, "BackfillJobsStarted", "Count", len(result.get("started") or ()))
    _add(metrics, "BackfillCallsPending", "Count", 1 if result.get("next") else 0)
