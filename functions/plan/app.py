"""Plan Lambda: an upload under ROOT/incoming/ (S3 notification or EventBridge "Object
Created", through the upload queue), a direct {"source": "s3://bucket/ROOT/incoming/x.mp4",
"rerun"?, "options"?, "chunk_seconds"?}, or a backfill {"backfill": "s3://bucket/ROOT/incoming/...", "limit"?,
"after"?, "follow"?} becomes Step Functions executions named by the job id.

Every rule (which keys are inputs, job id, outputs, pinned version, sidecar options,
duplicates, failure reports and events) is in `blurfaces.aws` / `blurfaces.jobs`; see
docs/aws.md. A corrupt upload is a "failed" job with a report, not an exception: only a
broken deployment (bad settings, no access) raises, into Lambda's retries and the
PlanFailures queue.

Returns {"jobs": [...]} (one record per object) or the backfill's summary with "next",
the event for the following call when more objects are left.
"""
from __future__ import annotations

from blurfaces import aws, observe

logger, metrics, tracer = observe.powertools("plan")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event, context):
    observe.bind(function="plan")                # job_id is bound by start_job
    settings = aws.Settings.from_env()
    if isinstance(event, dict) and "backfill" in event:
        result = aws.backfill(event["backfill"], settings, limit=event.get("limit"),
                              after=event.get("after"), rerun=event.get("rerun"),
                              options=event.get("options"),
                              follow=context.invoked_function_arn if event.get("follow")
                              else None)
        logger.info("backfill", extra={"counts": result["counts"], "next": result["next"]})
        observe.backfill_metrics(metrics, result)
        return result
    jobs = [aws.start_job(up, settings, rerun=up.rerun, options=up.options,
                          chunk_seconds=up.chunk_seconds, bind=observe.bind)
            for up in aws.uploads(event)]
    for job in jobs:        # keys of the event at most (observe.event_keys), never the event
        logger.info(job["status"], extra={"job_id": job.get("job_id"), **{
            k: v for k, v in job.items() if k != "input"}, **observe.event_keys(event)})
    observe.plan_metrics(metrics, jobs)
    return {"jobs": jobs}
