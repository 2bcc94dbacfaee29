"""Stitch Lambda: publish a job, or abort a failed one (the state machine's Catch path).

    {"work": "s3://bucket/.../<job id>/", "job_id": ..., "source": ...}       -> stitch
    {"action": "abort", "work": ..., "job_id": ..., "source": ..., "error": {...}} -> abort

stitch (`blurfaces.aws.stitch_job`): join, self-check, publish all or nothing (summary
last), roll back its own outputs if that fails, remove the work area, send "Job Succeeded".
abort (`blurfaces.aws.abort_job`): roll back this job's outputs (never another job's, never
a complete result), remove the work area, write failed/<rel>.json, send "Job Failed".
"""
from __future__ import annotations

from aws_lambda_powertools import Logger

from blurfaces import aws
from blurfaces.errors import OptionError

logger = Logger(service="blurfaces", child=False)


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event, context):
    settings = aws.Settings.from_env()
    if isinstance(event, dict) and event.get("action") == "abort":
        result = aws.abort_job(event, settings)
        logger.warning("job aborted", extra=result)
        return result
    if not isinstance(event, dict) or not isinstance(event.get("work"), str):
        raise OptionError("stitch event needs 'work' (the job's work area URI).")
    result = aws.stitch_job(event["work"], settings, job_id=event.get("job_id"),
                            source=event.get("source"))
    logger.info("job done", extra=result)
    return result
