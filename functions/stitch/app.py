"""Stitch Lambda: publish a job, or abort a failed one (the state machine's Catch path).

    {"work": "s3://bucket/.../<job id>/", "job_id": ..., "source": ...}       -> stitch
    {"action": "abort", "work": ..., "job_id": ..., "source": ..., "error": {...}} -> abort

stitch (`blurfaces.aws.stitch_job`): join, self-check, publish all or nothing (summary
last), roll back its own outputs if that fails, remove the work area, send "Job Succeeded".
abort (`blurfaces.aws.abort_job`): roll back this job's outputs (never another job's, never
a complete result), remove the work area, write failed/<rel>.json, send "Job Failed".
"""
from __future__ import annotations

from blurfaces import aws, observe
from blurfaces.errors import OptionError

logger, metrics, tracer = observe.powertools("stitch")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    observe.bind(event, function="stitch")  # job_id: a key of every log line
    settings = aws.Settings.from_env()
    if isinstance(event, dict) and event.get("action") == "abort":
        result = aws.abort_job(event, settings)
        observe.failed_metrics(metrics, result)
        logger.warning("job aborted", extra=result)
        return result
    if not isinstance(event, dict) or not isinstance(event.get("work"), str):
        raise OptionError("stitch event needs 'work' (the job's work area URI).")
    result = aws.stitch_job(event["work"], settings, job_id=event.get("job_id"),
                            source=event.get("source"))
    observe.job_metrics(metrics, result)
    logger.info("job done", extra=result)
    return result
