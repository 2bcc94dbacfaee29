"""Worker Lambda: one chunk of one job.

Event (one item of the Distributed Map's items.json, written by the plan function):
    {"work": "s3://bucket/blurfaces-work/<job-id>/", "index": 3}

Reads the job's manifest from the work area, runs `blurfaces.stages.worker` with as many
onnxruntime / decoder threads as this Lambda has vCPUs, and returns only URIs and counts
(never frames or data rows: Step Functions state payloads are capped at 256 KiB):
    {"index": 3, "frames": 900, "segment": "s3://.../segments/chunk-00003.nut",
     "part": "s3://.../parts/chunk-00003.json"}

Re-running a chunk rewrites the same two objects, so Step Functions retries are safe.
Expected errors (BlurfacesError: missing manifest, unreadable source, ...) are raised with
their class name as the Lambda errorType, which the state machine matches to not retry them.
"""
from __future__ import annotations

import os

from aws_lambda_powertools import Logger

from blurfaces import stages
from blurfaces.errors import OptionError

logger = Logger(service="blurfaces", child=False)


def vcpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parse(event: dict) -> tuple[str, int]:
    work, index = event.get("work") if isinstance(event, dict) else None, None
    if isinstance(event, dict):
        index = event.get("index")
    if not isinstance(work, str) or not work:
        raise OptionError("worker event needs 'work' (the job's work area URI).")
    if isinstance(index, bool) or not isinstance(index, (int, str)):
        raise OptionError(f"worker event needs an integer 'index' (got {index!r}).")
    try:
        index = int(index)
    except ValueError:
        raise OptionError(f"worker event needs an integer 'index' (got {index!r}).") from None
    return work, index


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event, context):
    work, index = parse(event)
    manifest = stages.load_manifest(work)
    n = len(manifest["chunks"])
    if not 0 <= index < n:
        raise OptionError(f"chunk index {index} is out of range: the job in {work} has "
                          f"{n} chunks.")
    threads = vcpus()
    logger.append_keys(work=work, index=index)
    part = stages.worker(manifest, index, threads=threads)
    logger.info("chunk done", extra={"frames": part["frames"], "detections": part["detections"],
                                     "seconds": round(part["seconds"], 3), "threads": threads})
    return {"index": index, "frames": part["frames"], "segment": part["segment"],
            "part": stages.part_uri(work, index)}
