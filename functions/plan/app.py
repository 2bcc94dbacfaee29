"""Plan Lambda: an upload to S3 becomes one Step Functions execution.

Design (see docs/aws.md): the S3 upload triggers THIS function (an S3 event notification on
the input prefix, or an EventBridge "Object Created" rule: both event shapes are accepted).
It filters the key, derives a deterministic job id, plans the job with `blurfaces.stages.plan`
(probe + manifest in the work area), writes the chunk list `items.json` for the Distributed
Map's ItemReader, and starts the state machine with the job id as the execution name. The
state machine starts directly with the Map (worker per chunk), then stitch.

Why here and not in an EventBridge rule that starts the state machine: the execution name
is the idempotency key. S3 and EventBridge deliver events at least once; an EventBridge
target cannot choose the execution name, so duplicate events would start duplicate jobs.
Here a duplicate event finds the execution already there (DescribeExecution) and does
nothing; two duplicates racing both call StartExecution with the same name and the same
input, which Step Functions answers idempotently (or with ExecutionAlreadyExists).

Job id = `<stem>-<sha256(bucket, key, version id, or etag + sequencer)[:20]>`: the same
upload (and every redelivery of its event) maps to one id; a new upload of the same key
(new sequencer / version) is a new job. A direct invocation may pass `"rerun": "<token>"`
to force a new job for an object that was already processed.

Loop guard: keys outside INPUT_PREFIX, keys under OUTPUT_PREFIX or WORK_PREFIX (this
pipeline's own writes), folder markers, empty objects and non-video names are ignored,
so the outputs written back into the bucket can never trigger another job.

Event shapes:
  * S3 notification: {"Records": [{"eventSource": "aws:s3", "s3": {...}}, ...]}
  * EventBridge:     {"source": "aws.s3", "detail-type": "Object Created", "detail": {...}}
  * direct:          {"source": "s3://bucket/key"} or {"bucket": ..., "key": ...}, with
                     optional "options" (dict, over the env defaults), "chunk_seconds",
                     "rerun".

Environment:
  INPUT_PREFIX (default "incoming/"), OUTPUT_PREFIX ("anonymized/"), WORK_PREFIX
  ("blurfaces-work/"), OUTPUT_BUCKET (default: the input bucket), STATE_MACHINE_ARN (when
  empty, the job is planned but not started: the return value holds the execution input),
  CHUNK_SECONDS, MAX_CONCURRENCY (worker Lambdas at once per job, default 100), and
  option defaults MASK, DATA_FORMAT, DRAW_HEATMAP, KEEP_AUDIO,
  THRESHOLD, MASK_SCALE, BLURFACES_OPTIONS (a JSON object of any `Options` fields).

Returns {"jobs": [...]}, one entry per record: job id, status ("started", "duplicate",
"planned", "ignored"), execution ARN and the small execution input. Expected errors
(BlurfacesError: not a video, bad option) are raised, never swallowed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

from blurfaces import stages, storage as st
from blurfaces.errors import OptionError
from blurfaces.options import Options

logger = Logger(service="blurfaces", child=False)

VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts", ".wmv",
              ".flv", ".3gp", ".mpg", ".mpeg"}
ITEMS = "items.json"

_ENV_OPTIONS = {  # env var -> (Options field, parser)
    "MASK": ("mask", str),
    "DATA_FORMAT": ("data_format", str),
    "DRAW_HEATMAP": ("draw_heatmap", "bool"),
    "KEEP_AUDIO": ("keep_audio", "bool"),
    "THRESHOLD": ("threshold", float),
    "MASK_SCALE": ("mask_scale", float),
}


@dataclass
class Upload:
    bucket: str
    key: str
    etag: str = ""
    version_id: str | None = None
    sequencer: str = ""
    size: int | None = None
    created: bool = True


# ------------------------------------------------------------------------------ config

def _prefix(name: str, default: str) -> str:
    value = os.environ.get(name, default).strip().lstrip("/")
    if value and not value.endswith("/"):
        value += "/"
    return value


def _config() -> dict:
    cfg = {"input": _prefix("INPUT_PREFIX", "incoming/"),
           "output": _prefix("OUTPUT_PREFIX", "anonymized/"),
           "work": _prefix("WORK_PREFIX", "blurfaces-work/"),
           "output_bucket": os.environ.get("OUTPUT_BUCKET", "").strip() or None,
           "state_machine": os.environ.get("STATE_MACHINE_ARN", "").strip() or None}
    for name in ("output", "work"):
        if not cfg[name]:
            raise OptionError(f"{name.upper()}_PREFIX must be a non-empty prefix such as "
                              f"'{'anonymized/' if name == 'output' else 'blurfaces-work/'}'; "
                              "the function ignores keys under it to avoid a trigger loop.")
    return cfg


def _bool(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise OptionError(f"environment variable {name}={text!r}: use true or false.")


def options_from(event_options: dict | None) -> Options:
    """Options: library defaults < BLURFACES_OPTIONS (JSON) < single env vars < the event."""
    d: dict = {}
    raw = os.environ.get("BLURFACES_OPTIONS", "").strip()
    if raw:
        try:
            d.update(json.loads(raw))
        except ValueError as e:
            raise OptionError(f"BLURFACES_OPTIONS is not a JSON object ({e}).") from None
    for env, (field, parse) in _ENV_OPTIONS.items():
        text = os.environ.get(env)
        if text is None or text == "":
            continue
        if parse == "bool":
            d[field] = _bool(env, text)
        else:
            try:
                d[field] = parse(text)
            except ValueError:
                raise OptionError(f"environment variable {env}={text!r} is not valid.") from None
    if event_options:
        if not isinstance(event_options, dict):
            raise OptionError("the event's 'options' must be a JSON object.")
        d.update(event_options)
    return Options.from_dict(d)


def chunk_seconds_from(event: dict) -> float:
    value = event.get("chunk_seconds") or os.environ.get("CHUNK_SECONDS") \
        or stages.DEFAULT_CHUNK_SECONDS
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"chunk_seconds must be a number of seconds (got {value!r}).") from None
    if value <= 0:
        raise OptionError(f"chunk_seconds must be above 0 (got {value}).")
    return value


def max_concurrency() -> int:
    """Worker Lambdas running at once for one job (the Map's MaxConcurrencyPath)."""
    text = os.environ.get("MAX_CONCURRENCY", "").strip() or "100"
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"MAX_CONCURRENCY={text!r}: use a whole number.") from None
    if not 1 <= value <= 10000:
        raise OptionError(f"MAX_CONCURRENCY={value}: use 1 to 10000.")
    return value


# ------------------------------------------------------------------------------ events

def uploads(event: dict) -> list[Upload]:
    """The uploaded objects named by an S3 notification, EventBridge or direct event."""
    if "Records" in event:
        out = []
        for rec in S3Event(event).records:
            if rec.event_source != "aws:s3":
                continue
            obj = rec.s3.get_object
            out.append(Upload(bucket=rec.s3.bucket.name, key=unquote_plus(obj.key),
                              etag=obj.etag.strip('"'), version_id=obj.version_id,
                              sequencer=obj.get("sequencer") or "",
                              size=int(obj["size"]) if obj.get("size") is not None else None,
                              created=rec.event_name.startswith("ObjectCreated")))
        return out
    if event.get("source") == "aws.s3" and "detail" in event:
        ev = S3EventBridgeNotificationEvent(event)
        obj = ev.detail.object
        return [Upload(bucket=ev.detail.bucket.name, key=obj.key,
                       etag=(obj.get("etag") or "").strip('"'),
                       version_id=obj.get("version-id"), sequencer=obj.get("sequencer") or "",
                       size=obj.size, created=ev.detail_type == "Object Created")]
    source = event.get("source")
    if isinstance(source, str) and st.is_s3(source):
        bucket, key = st.parse_s3(source)
        return [Upload(bucket=bucket, key=key)]
    if event.get("bucket") and event.get("key"):
        return [Upload(bucket=str(event["bucket"]), key=str(event["key"]))]
    raise OptionError("unrecognised event: expected an S3 notification, an EventBridge "
                      "'Object Created' event, or {\"source\": \"s3://bucket/key\"}.")


def ignore_reason(up: Upload, cfg: dict) -> str | None:
    """Why this object must not start a job (None: process it)."""
    key = up.key
    if not up.created:
        return "not an object-created event"
    if key.startswith(cfg["output"]) or key.startswith(cfg["work"]):
        return "under the output or work prefix (written by this pipeline)"
    if not key.startswith(cfg["input"]):
        return f"outside the input prefix {cfg['input']!r}"
    if key.endswith("/"):
        return "a folder marker"
    if up.size == 0:
        return "an empty object"
    if posixpath.splitext(key)[1].lower() not in VIDEO_EXTS:
        return "not a video file name"
    return None


def job_id(up: Upload, rerun: str | None = None) -> str:
    """Deterministic id (a valid execution name: [A-Za-z0-9_-], <= 80 chars)."""
    token = up.version_id or f"{up.etag}:{up.sequencer}"
    material = "\0".join([up.bucket, up.key, token, rerun or ""])
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()[:20]
    stem = posixpath.splitext(posixpath.basename(up.key))[0]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:40] or "video"
    return f"{slug}-{digest}"


def output_video_uri(up: Upload, cfg: dict) -> str:
    rel = up.key[len(cfg["input"]):]
    rel_dir, name = posixpath.split(rel)
    stem = posixpath.splitext(name)[0]
    key = posixpath.join(cfg["output"] + rel_dir, f"{stem}_blurred.mp4") if rel_dir \
        else f"{cfg['output']}{stem}_blurred.mp4"
    return f"s3://{cfg['output_bucket'] or up.bucket}/{key}"


# ------------------------------------------------------------------------------ AWS

@functools.lru_cache(maxsize=8)
def _sfn_client(region: str, endpoint: str | None):
    import boto3
    return boto3.session.Session().client("stepfunctions", region_name=region,
                                          endpoint_url=endpoint)


def sfn_client(state_machine_arn: str):
    region = state_machine_arn.split(":")[3]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SFN") or os.environ.get("AWS_ENDPOINT_URL") \
        or None
    return _sfn_client(region, endpoint)


def execution_arn(state_machine_arn: str, name: str) -> str:
    parts = state_machine_arn.split(":")
    # arn:partition:states:region:account:stateMachine:NAME -> ...:execution:NAME:<name>
    return ":".join(parts[:5] + ["execution", parts[6], name])


def _existing(client, arn: str) -> str | None:
    try:
        return client.describe_execution(executionArn=arn)["status"]
    except client.exceptions.ExecutionDoesNotExist:
        return None


def _fill_identity(up: Upload) -> None:
    """Direct invocations carry no etag: read it (and the version) from the object."""
    if up.etag or up.version_id:
        return
    store = st.get_storage(f"s3://{up.bucket}/{up.key}")
    head = store._head(f"s3://{up.bucket}/{up.key}")
    up.etag = str(head.get("ETag", "")).strip('"')
    up.version_id = head.get("VersionId")
    up.sequencer = str(head.get("LastModified", ""))
    up.size = int(head.get("ContentLength", 0))


# ------------------------------------------------------------------------------ handler

def plan_upload(up: Upload, event: dict, cfg: dict) -> dict:
    reason = ignore_reason(up, cfg)
    if reason:
        logger.info("ignored", extra={"bucket": up.bucket, "key": up.key, "reason": reason})
        return {"status": "ignored", "bucket": up.bucket, "key": up.key, "reason": reason}
    _fill_identity(up)
    if up.size == 0:
        return {"status": "ignored", "bucket": up.bucket, "key": up.key,
                "reason": "an empty object"}
    jid = job_id(up, event.get("rerun"))
    sm = cfg["state_machine"]
    arn = execution_arn(sm, jid) if sm else None
    client = sfn_client(sm) if sm else None
    if client is not None:
        status = _existing(client, arn)
        if status is not None:
            logger.info("duplicate event: job already started",
                        extra={"job_id": jid, "execution_status": status})
            return {"status": "duplicate", "job_id": jid, "execution_arn": arn,
                    "execution_status": status}

    source = f"s3://{up.bucket}/{up.key}"
    work = f"s3://{up.bucket}/{cfg['work']}{jid}/"
    options = options_from(event.get("options"))
    chunk_s, concurrency = chunk_seconds_from(event), max_concurrency()
    outputs = stages.output_names(output_video_uri(up, cfg))
    manifest = stages.plan(source, outputs=outputs, options=options, work=work,
                           chunk_seconds=chunk_s)
    n = len(manifest["chunks"])
    items_uri = st.join(work, ITEMS)
    st.get_storage(work).write_json(items_uri, [{"work": work, "index": c["index"]}
                                                for c in manifest["chunks"]])
    # Deterministic (no timings): a duplicate StartExecution must send the same input.
    exec_input = {"job_id": jid, "source": source, "work": work, "bucket": up.bucket,
                  "items_key": st.parse_s3(items_uri)[1], "chunks": n,
                  "max_concurrency": concurrency,
                  "outputs": {"video": outputs["video"], "summary": outputs["summary"]}}
    logger.info("planned", extra={"job_id": jid, "source": source, "chunks": n,
                                  "duration_s": manifest["info"].get("duration_s")})
    if client is None:
        return {"status": "planned", "job_id": jid, "input": exec_input}
    try:
        resp = client.start_execution(stateMachineArn=sm, name=jid,
                                      input=json.dumps(exec_input, sort_keys=True))
    except client.exceptions.ExecutionAlreadyExists:
        status = _existing(client, arn)
        if status not in (None, "RUNNING"):
            # The first delivery's job already finished and cleaned its work area: remove
            # what this duplicate just wrote there.
            stages.cleanup(manifest)
        logger.info("duplicate event (race): job already started",
                    extra={"job_id": jid, "execution_status": status})
        return {"status": "duplicate", "job_id": jid, "execution_arn": arn,
                "execution_status": status}
    logger.info("started", extra={"job_id": jid, "execution_arn": resp["executionArn"]})
    return {"status": "started", "job_id": jid, "execution_arn": resp["executionArn"],
            "input": exec_input}


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event, context):
    cfg = _config()
    jobs = [plan_upload(up, event, cfg) for up in uploads(event)]
    return {"jobs": jobs}
