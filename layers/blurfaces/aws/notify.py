"""Notifications: one EventBridge event per finished job on the deployment's bus (source
``blurfaces``, detail-type ``Job Succeeded`` / ``Job Failed`` / ``Job Superseded``; samples
in events/). "Job Superseded": the input was replaced while its job ran, nothing was
published for the old version (not a failure: the new version is its own job)."""
from __future__ import annotations

import json
import logging
import time

from .clients import client, region

log = logging.getLogger("blurfaces.aws")

EVENT_SOURCE = "blurfaces"
SUCCEEDED, FAILED, SUPERSEDED = "Job Succeeded", "Job Failed", "Job Superseded"


def notify(settings, detail_type: str, detail: dict) -> bool:
    """Put one event on the bus; False (logged) when EventBridge refused it: a finished job
    stays finished whether or not its notification went out."""
    try:
        resp = client("events", region()).put_events(Entries=[{
            "Source": EVENT_SOURCE, "DetailType": detail_type, "EventBusName": settings.bus,
            "Detail": json.dumps(detail, default=str)}])
    except Exception:  # noqa: BLE001 - botocore errors, no credentials, no endpoint
        log.exception("could not send the %r event for %s", detail_type, detail.get("job_id"))
        return False
    if resp.get("FailedEntryCount"):
        log.error("EventBridge refused the %r event: %s", detail_type, resp.get("Entries"))
        return False
    return True


def failed_detail(report: dict, report_uri: str | None, t0: float,
                  retryable: bool = False) -> dict:
    """The "Job Failed" event's detail, from the failure report (`retryable`: a service
    failure, no report written: a re-delivered event or backfill runs the job again)."""
    return {"job_id": report["job_id"], "status": "failed", "retryable": retryable,
            "input": report["input"],
            "version": report["version"], "report": report_uri, "stage": report["stage"],
            "chunk": report["chunk"], "error_type": report["error_type"],
            "message": report["message"], "seconds": round(time.time() - t0, 3)}


def superseded_detail(jid: str | None, source: str, pin: dict | None, t0: float | None,
                      message: str) -> dict:
    """The "Job Superseded" event's detail."""
    return {"job_id": jid, "status": "superseded", "input": source, "version": pin,
            "message": message, "seconds": round(time.time() - t0, 3) if t0 else None}
