"""Worker Lambda: one chunk of one job, {"work": "s3://.../<job id>/", "index": 3}, one item
of the Distributed Map's items.json. `blurfaces.aws.run_chunk` runs `stages.worker` with as
many threads as this Lambda has vCPUs and returns only URIs and counts (Step Functions
payloads are capped at 256 KiB). Re-running a chunk rewrites the same two objects, so
retries are safe. Expected errors (BlurfacesError subclasses) are raised with their class
name as the Lambda errorType, which the state machine matches to not retry them.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger

from blurfaces import aws

logger = Logger(service="blurfaces", child=False)


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event, context):
    result = aws.run_chunk(event)
    logger.info("chunk done", extra=result)
    return result
