"""The end of a job: `stitch_job` (join, self-check, publish all or nothing, clean up, "Job
Succeeded") and `abort_job` (the state machine's failure path: roll back this job's outputs,
clean up, failure report, "Job Failed").

Rollback is by ownership (`publish.rollback_s3`): an S3 output is deleted only if its
metadata carries this job's publish token (the job id), by version id on a versioned bucket
(the previous version comes back); another job's outputs of the same names are never
touched.
"""
from __future__ import annotations

import json
import logging
import time

from .. import jobs, stages, storage as st
from ..errors import BlurfacesError, InputError, OptionError, Superseded, hint_for
from ..outputs import final_uris
from ..publish import ensure_current, rollback_s3
from .notify import (FAILED, SUCCEEDED, SUPERSEDED, failed_detail, notify,
                     superseded_detail)
from .settings import Settings
from .work import delete_work, error_uri

log = logging.getLogger("blurfaces.aws")

#: Errors that say nothing about the input (throttling, service errors, S3 unavailable
#: through the retries): the job fails without a failure report, so a re-delivered event or
#: a backfill starts it again.
RETRYABLE = {"TransientError", "Lambda.TooManyRequestsException", "Lambda.ServiceException",
             "Lambda.AWSLambdaException", "Lambda.SdkClientException"}


def output_uris(manifest: dict) -> list[str]:
    """Every name a job may publish (the summary last)."""
    return final_uris(manifest["outputs"], manifest["options"].get("data_format", []))


def published(summary_uri: str, jid: str | None) -> dict | None:
    """Job `jid`'s own published summary (it is written last: the job is complete)."""
    store = st.get_storage(summary_uri)
    try:
        s = store.read_json(summary_uri) if store.exists(summary_uri) else None
    except InputError:
        return None
    return s if isinstance(s, dict) and jid and (s.get("job") or {}).get("id") == jid \
        else None


def rollback(manifest: dict) -> list[str]:
    """Delete the outputs this job wrote (see the module's docstring)."""
    removed = rollback_s3(output_uris(manifest), manifest.get("publish_token"))
    if removed:
        log.warning("rolled back the outputs of failed job %s: %s",
                    manifest.get("publish_token"), removed)
    return removed


def _seconds(manifest_or_job: dict) -> float | None:
    t0 = (manifest_or_job.get("job") or manifest_or_job).get("started")
    return round(time.time() - float(t0), 3) if t0 else None


def summary_of(settings: Settings, source) -> str | None:
    """Where the layout puts the summary of `source` (None if it is no input of it)."""
    if not (isinstance(source, str) and st.is_s3(source)):
        return None
    layout = settings.layout(st.parse_s3(source)[0])
    return layout.outputs(source)["summary"] if source.startswith(layout.incoming) else None


def stitch_job(work: str, settings: Settings, *, job_id: str | None = None,
               source: str | None = None) -> dict:
    """Join and publish; a failing stitch rolls back its own outputs and re-raises.
    Idempotent: a retry after the job had published (and even cleaned up its work area:
    found by `job_id` and `source`) only finishes up. Sends "Job Succeeded"."""
    summary = None
    if not st.get_storage(work).exists(st.join(work, stages.MANIFEST)):
        uri = summary_of(settings, source)
        summary = published(uri, job_id) if uri else None
        if summary is None:
            stages.load_manifest(work)          # raises: no such job
    else:
        manifest = stages.load_manifest(work)
        summary = published(manifest["outputs"]["summary"], manifest["job"].get("id"))
        if summary is None:
            try:
                summary = stages.stitch(manifest)
            except Superseded as e:
                return _superseded(settings, work, manifest, str(e))
            except BaseException as e:
                try:
                    rollback(manifest)
                except Exception:  # noqa: BLE001 - keep the original error; abort retries it
                    log.exception("rollback after a failed stitch failed")
                if isinstance(e, InputError):   # a replaced unversioned input: reads refused
                    try:
                        ensure_current(manifest["source"], manifest.get("source_version"))
                    except Superseded as s:
                        return _superseded(settings, work, manifest, str(s))
                raise
    cleaned = False
    if not settings.keep_work:
        try:
            delete_work(work)
            cleaned = True
        except BlurfacesError:      # complete anyway; the lifecycle rule removes leftovers
            log.exception("could not clean the work area %s", work)
    c, job = summary["counts"], summary.get("job") or {}
    counts = {k: c[k] for k in ("frames", "detections", "tracks", "masked_boxes", "chunks")}
    seconds = _seconds(job)
    detail = {"job_id": job.get("id"), "status": "succeeded", "input": summary["input"],
              "version": summary["input_version"], "outputs": summary["outputs"],
              "counts": counts, "seconds": seconds, "cost": summary.get("cost")}
    return {"job_id": detail["job_id"], "source": detail["input"], "status": "succeeded",
            "outputs": summary["outputs"], "work_cleaned": cleaned, **counts,
            "seconds": seconds,
            "fps": round(counts["frames"] / seconds, 2) if seconds else None,
            "cost": summary.get("cost"), "notified": notify(settings, SUCCEEDED, detail)}


def _superseded(settings: Settings, work: str, manifest: dict, message: str) -> dict:
    """A job whose input was replaced: nothing of it published (its own outputs, if any,
    rolled back), work area removed, a "Job Superseded" event. Not a failure."""
    removed = rollback(manifest)
    delete_work(work)
    job = manifest.get("job") or {}
    detail = superseded_detail(job.get("id"), manifest["source"],
                               manifest.get("source_version"), job.get("started"), message)
    log.warning("job %s superseded: %s", job.get("id"), message)
    return {"job_id": job.get("id"), "source": manifest["source"], "status": "superseded",
            "outputs": None, "work_cleaned": True, "removed_outputs": removed,
            **{k: None for k in ("frames", "detections", "tracks", "masked_boxes", "chunks")},
            "seconds": detail["seconds"], "fps": None, "cost": None, "reason": message,
            "notified": notify(settings, SUPERSEDED, detail)}


def state_error(error: dict | None) -> tuple[str, str]:
    """(error name, message) from a Catch's {"Error", "Cause"} (Cause: a Lambda error JSON)."""
    error = error if isinstance(error, dict) else {}
    name, cause = str(error.get("Error") or "JobError"), error.get("Cause") or ""
    try:
        body = json.loads(cause)
        cause = body.get("errorMessage") or body.get("Cause") or cause
    except (TypeError, ValueError, AttributeError):
        pass
    return name, str(cause) or name


def abort_job(event: dict, settings: Settings) -> dict:
    """The state machine's failure path: roll back this job's outputs (never another's,
    never a complete result), delete the work area, write ``failed/<rel>.json``, send
    "Job Failed"."""
    work = event.get("work") if isinstance(event, dict) else None
    if not isinstance(work, str) or not work:
        raise OptionError("abort event needs 'work' (the job's work area URI).")
    store = st.get_storage(work)
    manifest = stages.load_manifest(work) \
        if store.exists(st.join(work, stages.MANIFEST)) else None
    source = manifest["source"] if manifest else event.get("source")
    jid = manifest["job"]["id"] if manifest else event.get("job_id")
    summary_uri = manifest["outputs"]["summary"] if manifest else summary_of(settings, source)
    if summary_uri and published(summary_uri, jid):
        delete_work(work)
        return {"job_id": jid, "status": "completed", "aborted": False,
                "reason": "the job had completed"}
    if manifest:
        try:
            ensure_current(source, manifest.get("source_version"))
        except Superseded as e:     # e.g. an unversioned input replaced: reads refused
            return {**_superseded(settings, work, manifest, str(e)), "aborted": True}
    removed = rollback(manifest) if manifest else []
    name, message = state_error(event.get("error"))
    stage, chunk = "stitch", None
    present = None
    if manifest:
        present = set(store.list(work))         # one listing, not a HEAD per chunk
        missing = [c["index"] for c in manifest["chunks"]
                   if stages.part_uri(work, c["index"]) not in present]
        stage, chunk = ("worker", missing[0]) if missing else ("stitch", None)
        for index in missing:       # the chunk's own error, when its worker recorded one
            if error_uri(work, index) in present:
                e = store.read_json(error_uri(work, index))
                name, message, chunk = e["error_type"], e["message"], index
                break
    delete_work(work, present)
    out = {"job_id": jid, "status": "failed", "aborted": True, "removed_outputs": removed,
           "retryable": name in RETRYABLE}
    if summary_of(settings, source) is None:
        return out
    layout = settings.layout(st.parse_s3(source)[0])
    stat = st.Stat.from_dict(manifest["source_version"]) if manifest else None
    t0 = (manifest["job"].get("started") if manifest else None) or time.time()
    report = jobs.failure_report(source, stat, jid, RuntimeError(message), stage=stage,
                                 started=t0, chunk=chunk)
    report.update(error_type=name, what_to_do=hint_for(name))
    report_uri = None
    if not out["retryable"]:        # a report marks this version done: never for these
        report_uri = layout.report(source)
        jobs.write_report(report_uri, report)
    out.update(report=report_uri, notified=notify(
        settings, FAILED, failed_detail(report, report_uri, t0, out["retryable"])))
    return out
