"""Worker Lambda: one chunk of one job, {"work": "s3://.../<job id>/", "index": 3}, one item
of the Distributed Map's items.json. `blurfaces.aws.run_chunk` runs `stages.worker` with as
many threads as this Lambda has vCPUs and returns only URIs and counts (Step Functions
payloads are capped at 256 KiB). Re-running a chunk rewrites the same two objects, so
retries are safe (a chunk whose part is already there is not run again). Metrics per
chunk (frames, faces, seconds, frames/s, US$) and logs keyed by job_id and chunk: see
`blurfaces.observe`. Expected errors (BlurfacesError subclasses) are raised with their class
name as the Lambda errorType, which the state machine matches to not retry them.
"""
from __future__ import annotations

from blurfaces import aws, observe

logger, metrics, tracer = observe.powertools("worker")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    observe.bind(event, function="worker")  # job_id, chunk: keys of every log line
    result = aws.run_chunk(event, aws.Settings.from_env())
    observe.chunk_metrics(metrics, result)
    logger.info("chunk done", extra=result)
    return result
