"""Events into uploads: S3 notifications, EventBridge "Object Created" events and direct
``{"source": "s3://..."}`` events, as they are or in messages of the upload queue (SQS),
become `Upload` records; `input_reason` says why an object
must not start a job (the loop guard: only ROOT/incoming/** is input); `version_stat` pins
the version an event names."""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from .. import jobs, storage as st
from ..errors import OptionError


@dataclass
class Upload:
    uri: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    created: bool = True
    # a direct event's (or a backfill message's) own settings for this job
    rerun: str | None = None
    options: dict | None = None
    chunk_seconds: float | None = None


def uploads(event: dict) -> list[Upload]:
    """The objects named by an S3 notification, an EventBridge event or a direct event."""
    if not isinstance(event, dict):
        raise OptionError("the event must be a JSON object.")
    if "Records" in event:
        out = []
        for rec in event["Records"]:
            if rec.get("eventSource") == "aws:sqs":     # the upload queue: one event each
                out += uploads(_message(rec.get("body")))
                continue
            if rec.get("eventSource") != "aws:s3":
                continue
            obj = rec["s3"]["object"]
            out.append(Upload(f"s3://{rec['s3']['bucket']['name']}/{unquote_plus(obj['key'])}",
                              obj.get("versionId") or None, obj.get("eTag") or None,
                              obj.get("size"),
                              str(rec.get("eventName", "")).startswith("ObjectCreated")))
        return out
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        d, obj = event["detail"], event["detail"].get("object", {})
        return [Upload(f"s3://{d['bucket']['name']}/{unquote_plus(obj['key'])}",
                       obj.get("version-id") or None, obj.get("etag") or None, obj.get("size"),
                       event.get("detail-type") == "Object Created")]
    source = event.get("source")
    if isinstance(source, str) and st.is_s3(source):
        st.parse_s3(source)
        return [Upload(source, rerun=event.get("rerun"), options=event.get("options"),
                       chunk_seconds=event.get("chunk_seconds"))]
    raise OptionError("unrecognised event: expected an S3 notification, an EventBridge "
                      "'Object Created' event, {\"source\": \"s3://bucket/ROOT/incoming/...\"} "
                      "or {\"backfill\": \"s3://bucket/ROOT/incoming/\"}.")


def _message(body) -> dict:
    """The event carried by an upload-queue message (an S3 notification, an EventBridge
    event, a backfill's {"source": ...}); S3's "s3:TestEvent" carries no object."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        raise OptionError(f"an upload-queue message that is not JSON: {str(body)[:200]!r}") \
            from None
    return {"Records": []} if isinstance(event, dict) and event.get("Event") == "s3:TestEvent" \
        else event


def input_reason(layout: jobs.Layout, uri: str, size: int | None = None) -> str | None:
    """Why an object must not start a job (None: it is an input). Only ROOT/incoming/**
    is an input; hidden folders in it (and `.blurfaces/`) never are."""
    if not uri.startswith(layout.incoming):
        return f"outside {layout.incoming} (only uploads there start jobs)"
    if any(p.startswith(".") for p in uri[len(layout.incoming):].split("/")[:-1]):
        return "in a hidden folder"
    return jobs.skip_reason(uri, size)


def version_stat(up: Upload) -> st.Stat | None:
    """The version an event names, if it is still the object's current version; None when
    the object was replaced since (a newer upload: its own event starts that job) or
    deleted. The current object's VersionId must be the event's (versioned bucket), else its
    ETag (unversioned: a late event for replaced bytes names an ETag that is gone; S3 events'
    `sequencer` only orders events, and the current object's ETag is what a HEAD can
    compare)."""
    head = st.get_storage(up.uri).head(up.uri)
    if head is None:
        return None
    if up.version_id and head.stat.version_id != up.version_id:
        return None
    if up.etag and head.stat.etag != up.etag.strip('"'):
        return None
    return head.stat
