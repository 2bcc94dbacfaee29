"""Starting jobs: one upload (`start_job`) or every input under a prefix (`backfill`).

`start_job`: the loop guard, the pinned version (the event's version, or a HEAD),
`jobs.job_id`, duplicate detection (a result or report for this version, or an execution
of that name), the frame index from the container without decoding where it can be trusted
(`frameindex`: MP4/MOV/MKV; else plan decodes every frame, refused from the header when that
would not fit plan's budget), the worker function (`sizing.choose_worker`) and the chunk
length it finishes, `stages.plan`
with the pin and the layout's outputs, the chunk list for the Distributed Map, then
``StartExecution`` named by the job id. A planning failure of the input (corrupt upload, bad
sidecar, over a limit) becomes ``failed/<rel>.json`` and a "Job Failed" event, never an
exception (so no Lambda retries).
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from .. import frameindex, jobs, stages, storage as st
from ..errors import BlurfacesError, OptionError, TransientError
from . import sizing
from .clients import client, execution_status, invoke_async, region
from .events import Upload, input_reason, version_stat
from .notify import FAILED, failed_detail, notify
from .settings import Settings, job_options, number
from .work import delete_work, items_uri

log = logging.getLogger("blurfaces.aws")


def start_job(up: Upload, settings: Settings, *, rerun: str | None = None,
              options: dict | None = None, chunk_seconds: float | None = None,
              bind=None) -> dict:
    """Plan one upload and start its execution (name = job id). Returns a small record
    with "status": ignored | done | duplicate | planned | started | failed. `bind(job_id=)`,
    when given, is called with the job id once known (the handler's log keys)."""
    bucket, _ = st.parse_s3(up.uri)
    layout = settings.layout(bucket)
    video = jobs.edited_video(up.uri) if up.created else None
    if video is not None and input_reason(layout, video) is None:
        up = Upload(video)          # an edited coordinate file beside it: re-render the video
    reason = input_reason(layout, up.uri, up.size) if up.created \
        else "not an object-created event"
    given = options.get("boxes") if isinstance(options, dict) else None
    boxes = None if reason or given else jobs.boxes_beside(up.uri)
    if boxes:
        rerun, options = jobs.boxes_rerun(boxes, rerun), {**(options or {}), "boxes": boxes}
    stat = None if reason else version_stat(up)
    if not reason and stat is None:
        reason = "replaced or deleted since this event (a newer upload is its own job)"
    if not reason and stat.size == 0:
        reason = "an empty file"
    if reason:
        return {"status": "ignored", "input": up.uri, "reason": reason}
    jid = jobs.job_id(up.uri, stat, rerun)
    if bind is not None:
        bind(job_id=jid)
    outputs, report_uri = layout.outputs(up.uri), layout.report(up.uri)
    rec = {"job_id": jid, "input": up.uri, "version": stat.token}
    found = jobs.done_for(outputs["summary"], report_uri, stat, jid, boxes) \
        if rerun is None or boxes else None
    if found:
        return {**rec, "status": "done", found[0]: found[1]}
    sm = settings.state_machine
    name, status = execution_name(sm, jid) if sm else (jid, None)
    if name is None:
        return {**rec, "status": "duplicate", "execution_status": status}
    job_options(options, chunk_seconds=chunk_seconds)   # a bad event or setting raises
    work, t0 = settings.work(bucket, jid), time.time()
    try:
        opts, cut = job_options(options, jobs.sidecar_options(up.uri), chunk_seconds)
        pin = stat.to_dict()
        store = st.get_storage(up.uri)
        info = frameindex.index(lambda: store.open_read(up.uri, pin=pin), up.uri, stat.size)
        if info is None:        # no trustworthy index: plan decodes every frame (budgeted)
            head = sizing.precheck(up.uri, pin, settings)
        else:
            head = {"w": info.display_width, "h": info.display_height,
                    "fps": info.mean_fps, "seconds": info.duration_s}
        worker = sizing.choose_worker(cut, head, settings, opts)
        cut = sizing.cap_chunks(cut, head, settings, worker, opts)
        manifest = stages.plan(up.uri, outputs=outputs, options=opts, work=work, **cut,
                               pin=pin, info=info, publish_token=jid, overwrite=True,
                               job={"id": jid, "input": up.uri, "rerun": rerun,
                                    "started": t0, "report": report_uri,
                                    "index": frameindex.DEMUXER if info else "decoded",
                                    "lambda": settings.functions(worker)})
        limits = sizing.check_limits(manifest, settings, worker)
    except BlurfacesError as e:
        delete_work(work)
        if isinstance(e, TransientError):
            raise               # S3 unavailable: Lambda's retries, then the failure queue
        if version_stat(Upload(up.uri, stat.version_id, stat.etag)) is None:
            return {**rec, "status": "ignored", "reason": "replaced or deleted while planned"}
        report = jobs.failure_report(up.uri, stat, jid, e, stage="plan", started=t0)
        jobs.write_report(report_uri, report)
        notified = notify(settings, FAILED, failed_detail(report, report_uri, t0))
        return {**rec, "status": "failed", "report": report_uri, "error": str(e),
                "error_type": type(e).__name__, "notified": notified}
    items = items_uri(work)
    # each item names the worker function its chunk runs on (the state machine's Task
    # invokes "$.worker")
    named = {"worker": worker.function} if worker.function else {}
    st.get_storage(work).write_json(items, [{"work": work, "index": c["index"], **named}
                                            for c in manifest["chunks"]])
    # Deterministic (no times): a duplicate StartExecution must send the same input.
    log.info("planned %s: %s", jid, limits)
    exec_input = {"job_id": jid, "source": up.uri, "work": work, "bucket": bucket,
                  "items_key": st.parse_s3(items)[1], "chunks": len(manifest["chunks"]),
                  "max_concurrency": settings.max_concurrency,
                  "outputs": {"video": outputs["video"], "summary": outputs["summary"]}}
    if not sm:
        return {**rec, "status": "planned", "input": exec_input}
    sfn = client("stepfunctions", region(sm))
    try:
        arn = sfn.start_execution(stateMachineArn=sm, name=name,
                                  input=json.dumps(exec_input, sort_keys=True))["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        status = execution_status(sm, name)
        if status not in (None, "RUNNING"):
            delete_work(work)           # that execution already finished and cleaned up
        return {**rec, "status": "duplicate", "execution_status": status}
    return {**rec, "status": "started", "execution_arn": arn, "input": exec_input}


#: Executions of one job id at most: the first is named by the job id, later attempts (after
#: a failure that left no report: throttling, S3 unavailable) by the job id and a number.
MAX_ATTEMPTS = 20
_FINISHED_BADLY = ("FAILED", "TIMED_OUT", "ABORTED")


def execution_name(state_machine: str, jid: str) -> tuple[str | None, str | None]:
    """(name to start, status of the last attempt): the job id, or after attempts that
    failed without a report (the caller checked there is none) the next "<job id>-N";
    None when an attempt is running or succeeded (a duplicate)."""
    status = None
    for k in range(1, MAX_ATTEMPTS + 1):
        name = jid if k == 1 else f"{jid}-{k}"
        status = execution_status(state_machine, name)
        if status is None:
            return name, (None if k == 1 else "retry")
        if status not in _FINISHED_BADLY:
            return None, status
    return None, status


def backfill(prefix: str, settings: Settings, *, limit: int | None = None,
             after: str | None = None, rerun: str | None = None,
             options: dict | None = None, follow: str | None = None) -> dict:
    """Start a job for every input under `prefix` (within ROOT/incoming/) that has no
    result, report or execution for its current version. One call lists one page of at
    most `limit` keys after the URI `after` (S3's StartAfter: never the whole prefix again)
    and fans the inputs out: one message each to the upload queue, which plan consumes
    PlanConcurrency at a time, or (no queue) `start_job` in `backfill_concurrency` threads.
    Re-running starts nothing new (`start_job` finds the result, report or execution).
    "next" is the event for the following call (None when done); with `follow` (the plan
    function's ARN) this call invokes the function asynchronously with it, so one event
    walks the whole prefix."""
    bucket, _ = st.parse_s3(prefix)
    layout = settings.layout(bucket)
    if not (prefix if prefix.endswith("/") else prefix + "/").startswith(layout.incoming):
        raise OptionError(f"backfill {prefix}: give a prefix under {layout.incoming}, "
                          "where inputs live.")
    limit = settings.backfill_limit if limit is None else number("limit", limit, int, 1, 1000)
    page, more = st.get_storage(prefix).list_page(
        prefix if prefix.endswith("/") else prefix + "/", start_after=after, max_keys=limit)
    inputs = [Upload(uri, size=stat.size, rerun=rerun, options=options)
              for uri, stat in page if input_reason(layout, uri, stat.size) is None]
    counts: dict = {"listed": len(page)}
    started: list = []
    if settings.upload_queue:
        _enqueue(settings.upload_queue, inputs)
        counts["queued"] = len(inputs)
    else:
        with ThreadPoolExecutor(settings.backfill_concurrency) as pool:
            for r in pool.map(lambda up: start_job(up, settings, rerun=up.rerun,
                                                   options=up.options), inputs):
                counts[r["status"]] = counts.get(r["status"], 0) + 1
                if r["status"] in ("started", "planned"):
                    started.append(r["job_id"])
    last = page[-1][0] if page else after
    nxt = {"backfill": prefix, "after": last, "limit": limit} if more else None
    if nxt and (rerun or options):
        nxt.update({k: v for k, v in (("rerun", rerun), ("options", options)) if v})
    if nxt and follow:
        nxt["follow"] = True
        invoke_async(follow, json.dumps(nxt).encode())
    return {"backfill": prefix, "started": started, "counts": counts, "next": nxt,
            "followed": bool(nxt and follow)}


def _enqueue(queue_url: str, inputs: list[Upload]) -> None:
    """One upload-queue message per input ({"source", "rerun"?, "options"?}), 10 a call."""
    sqs = client("sqs", region())
    for i in range(0, len(inputs), 10):
        batch = inputs[i:i + 10]
        resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(k), "MessageBody": json.dumps(
                {"source": up.uri, **({"rerun": up.rerun} if up.rerun else {}),
                 **({"options": up.options} if up.options else {})})}
            for k, up in enumerate(batch)])
        if resp.get("Failed"):
            raise TransientError(f"{queue_url}: SQS refused {len(resp['Failed'])} backfill "
                                 f"messages ({resp['Failed'][0].get('Code')}); run the "
                                 "backfill again (it starts nothing twice).")
