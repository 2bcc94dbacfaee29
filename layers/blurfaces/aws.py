"""The job layer on AWS: what the Lambda adapters in functions/*/app.py call.

The adapters only parse their event and call one function here; every job rule comes from
`jobs` (inputs, job id, layout, sidecar options, results, failure reports), the data path
from `stages`. This module owns what is AWS-specific around them:

* **settings** from the environment (`Settings.from_env`): the drop-folder root in the bucket
  (``ROOT_PREFIX``; ``ROOT/incoming/**`` is the only place that triggers), the work prefix,
  the state machine, the EventBridge bus, concurrency, the backfill's rate; the options
  (`job_options`) are layered as: library defaults < the drop-folder layout's
  (`jobs.LAYOUT_OPTIONS`) < the environment (`options.from_env`: ``BLURFACES_OPTIONS``, then
  ``BLURFACES_<NAME>``) < the event's ``options`` < the video's sidecar;
* **events into uploads** (`uploads`): S3 notifications, EventBridge "Object Created", a
  direct ``{"source": "s3://..."}``;
* **starting a job** (`start_job`): loop guard, the pinned version (the event's version, or
  a HEAD), `jobs.job_id`, duplicate detection (a result or report for this version, or an
  execution of that name), `stages.plan` with the pin and the layout's outputs, the chunk
  list for the Distributed Map, ``StartExecution`` named by the job id. A planning failure
  of the input (corrupt upload, bad sidecar) becomes ``failed/<rel>.json`` and a "Job
  Failed" event, never an exception (so no Lambda retries);
* **backfill** (`backfill`): `jobs.discover` under an ``incoming/`` prefix, at most ``limit``
  starts per call, a continuation to pass back (or, with ``follow``, to invoke the plan
  function with asynchronously), idempotent on re-run;
* the **chunk** (`run_chunk`), **stitch** (`stitch_job`: idempotent; rolls back its own
  outputs on failure) and **abort** (`abort_job`: rollback, work area removed, failure report)
  of the state machine;
* **rollback by ownership**: an S3 output is deleted only if its metadata carries this job's
  publish token (the job id), by version id on a versioned bucket (the previous version comes
  back); another job's outputs of the same names are never touched;
* **notifications**: one EventBridge event per finished job (source ``blurfaces``,
  detail-type ``Job Succeeded`` / ``Job Failed``) on ``EVENT_BUS``;
* **limits up front** (`check_limits`): after probing, before any worker starts, the source
  is checked against what the stack can process (duration, frame size, chunks per Map,
  stitch's /tmp for the estimated output); over a limit is a ``LimitError`` failure report
  of stage "plan";
* the **cost estimate** of each chunk and job (`blurfaces.cost`; the functions' memory and
  architecture are recorded in the manifest's ``job.lambda`` for stitch's summary).

boto3 is imported only when a client is first needed.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus

from . import cost, jobs, stages, storage as st
from .errors import BlurfacesError, InputError, OptionError
from .options import Options, from_env, layered
from .publish import TOKEN_METADATA
from .video import plausible_fps

log = logging.getLogger("blurfaces.aws")

ITEMS = "items.json"
EVENT_SOURCE = "blurfaces"
SUCCEEDED, FAILED = "Job Succeeded", "Job Failed"


# ------------------------------------------------------------------------------ settings

def _bool(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise OptionError(f"environment variable {name}={text!r}: use true or false.")


def _prefix(text: str) -> str:
    text = text.strip().lstrip("/")
    return text + "/" if text and not text.endswith("/") else text


def _number(name: str, text, kind, lo, hi):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise OptionError(f"{name}={text!r}: use a number from {lo} to {hi}.") from None
    if not lo <= value <= hi:
        raise OptionError(f"{name}={value}: use a number from {lo} to {hi}.")
    return value


class LimitError(InputError):
    """The input is beyond what this deployment can process (too long, frames too large,
    an output that would not fit stitch's /tmp): refused in plan, before any worker runs."""


#: Estimated output bit rate for the /tmp check: bits per pixel per frame of H.264 at the
#: default crf 23 / veryfast (camera footage measures 0.05-0.12; 0.15 leaves headroom).
OUTPUT_BITS_PER_PIXEL = 0.15
#: Chunks per job: the Distributed Map runs at most 10,000 child executions in parallel and
#: the items list is read from S3 (never part of the 256 KiB state), so 10,000 is the cap.
MAP_ITEMS_MAX = 10_000


@dataclass
class Settings:
    root_prefix: str = ""
    work_prefix: str = ".blurfaces/work/"
    state_machine: str | None = None
    bus: str = "default"
    max_concurrency: int = 100
    backfill_limit: int = 25
    keep_work: bool = False
    # what the stack can process (template parameters -> environment)
    max_video_seconds: float = 4 * 3600.0
    max_frame_pixels: int = 3840 * 2160
    stitch_tmp_mb: int = 10240
    max_chunks: int = MAP_ITEMS_MAX
    # for the cost estimate
    worker_memory_mb: int = 3538
    stitch_memory_mb: int = 3008
    architecture: str = "x86_64"

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        root = _prefix(env("ROOT_PREFIX", ""))
        s = cls(root_prefix=root,
                work_prefix=_prefix(env("WORK_PREFIX", "") or f"{root}.blurfaces/work/"),
                state_machine=env("STATE_MACHINE_ARN", "").strip() or None,
                bus=env("EVENT_BUS", "").strip() or "default",
                max_concurrency=_number("MAX_CONCURRENCY", env("MAX_CONCURRENCY", "") or 100,
                                        int, 1, 10000),
                backfill_limit=_number("BACKFILL_LIMIT", env("BACKFILL_LIMIT", "") or 25,
                                       int, 1, 1000),
                keep_work=_bool("KEEP_WORK", env("KEEP_WORK", "")),
                max_video_seconds=_number("MAX_VIDEO_SECONDS",
                                          env("MAX_VIDEO_SECONDS", "") or 4 * 3600.0,
                                          float, 0.001, 1e7),
                max_frame_pixels=_number("MAX_FRAME_PIXELS",
                                         env("MAX_FRAME_PIXELS", "") or 3840 * 2160,
                                         int, 1, 10**9),
                stitch_tmp_mb=_number("STITCH_TMP_MB", env("STITCH_TMP_MB", "") or 10240,
                                      int, 1, 10240),
                max_chunks=_number("MAX_CHUNKS", env("MAX_CHUNKS", "") or MAP_ITEMS_MAX,
                                   int, 1, MAP_ITEMS_MAX),
                worker_memory_mb=_number("WORKER_MEMORY_MB", env("WORKER_MEMORY_MB", "")
                                         or 3538, int, 128, 10240),
                stitch_memory_mb=_number("STITCH_MEMORY_MB", env("STITCH_MEMORY_MB", "")
                                         or 3008, int, 128, 10240),
                architecture=env("LAMBDA_ARCHITECTURE", "").strip() or "x86_64")
        if s.architecture not in cost.PRICES["lambda_gb_s"]:
            raise OptionError(f"LAMBDA_ARCHITECTURE={s.architecture!r}: use x86_64 or arm64.")
        if s.work_prefix.startswith(f"{root}incoming/"):
            raise OptionError(f"WORK_PREFIX={s.work_prefix!r} is under {root}incoming/, "
                              "which triggers jobs: choose a prefix outside it.")
        return s

    def layout(self, bucket: str) -> jobs.Layout:
        return jobs.Layout(f"s3://{bucket}/{self.root_prefix}")

    def work(self, bucket: str, jid: str) -> str:
        return f"s3://{bucket}/{self.work_prefix}{jid}/"


def job_options(event_options: dict | None = None, sidecar: dict | None = None,
                chunk_seconds=None) -> tuple[Options, dict]:
    """The options of one job and how it is cut: defaults < the layout's < the environment
    < the event < the sidecar. Returns (options, {"chunk_seconds", "chunks"}); without
    either, chunks of `stages.DEFAULT_CHUNK_SECONDS`."""
    if event_options is not None and not isinstance(event_options, dict):
        raise OptionError("the event's 'options' must be a JSON object.")
    event = dict(event_options or {})
    if chunk_seconds is not None:
        event["chunk_seconds"] = chunk_seconds
    options, execution = layered(jobs.LAYOUT_OPTIONS, from_env(), event, sidecar or {})
    cut = {"chunk_seconds": execution.get("chunk_seconds"), "chunks": execution.get("chunks")}
    if cut["chunk_seconds"] is None and cut["chunks"] is None:
        cut["chunk_seconds"] = stages.DEFAULT_CHUNK_SECONDS
    return options, cut


# ------------------------------------------------------------------------------ events

@dataclass
class Upload:
    uri: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    created: bool = True


def uploads(event: dict) -> list[Upload]:
    """The objects named by an S3 notification, an EventBridge event or a direct event."""
    if not isinstance(event, dict):
        raise OptionError("the event must be a JSON object.")
    if "Records" in event:
        out = []
        for rec in event["Records"]:
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
        return [Upload(source)]
    raise OptionError("unrecognised event: expected an S3 notification, an EventBridge "
                      "'Object Created' event, {\"source\": \"s3://bucket/ROOT/incoming/...\"} "
                      "or {\"backfill\": \"s3://bucket/ROOT/incoming/\"}.")


def input_reason(layout: jobs.Layout, uri: str, size: int | None = None) -> str | None:
    """Why an object must not start a job (None: it is an input). Only ROOT/incoming/**
    is an input; hidden folders in it (and `.blurfaces/`) never are."""
    if not uri.startswith(layout.incoming):
        return f"outside {layout.incoming} (only uploads there start jobs)"
    if any(p.startswith(".") for p in uri[len(layout.incoming):].split("/")[:-1]):
        return "in a hidden folder"
    return jobs.skip_reason(uri, size)


def _s3(uri: str):
    return st.get_storage(uri)


def version_stat(up: Upload) -> st.Stat | None:
    """The version an event names (HEAD of that version id, or of the current object when
    its ETag is the event's); None when the object was replaced since (a newer upload: its
    own event starts that job) or deleted."""
    from botocore.exceptions import BotoCoreError, ClientError
    store = _s3(up.uri)
    bucket, key = st.parse_s3(up.uri)
    kw = {"VersionId": up.version_id} if up.version_id else {}
    try:
        head = store.client.head_object(Bucket=bucket, Key=key, **kw)
    except ClientError as e:
        if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound",
                                                            "NoSuchVersion"):
            return None
        raise store._error(e, up.uri, action="GetObject", head=True) from None
    except BotoCoreError as e:
        raise store._error(e, up.uri, action="GetObject", head=True) from None
    stat = store._stat_of(head)
    if up.etag and not up.version_id and stat.etag != up.etag.strip('"'):
        return None
    return stat


# ------------------------------------------------------------------------------ AWS clients

@functools.lru_cache(maxsize=8)
def _client(service: str, region: str | None):
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(service, region_name=region,
                                          config=Config(retries={"mode": "standard"}))


def _region(arn: str | None = None) -> str | None:
    return arn.split(":")[3] if arn else (os.environ.get("AWS_REGION")
                                          or os.environ.get("AWS_DEFAULT_REGION"))


def execution_arn(state_machine: str, name: str) -> str:
    p = state_machine.split(":")      # arn:aws:states:REGION:ACCOUNT:stateMachine:NAME
    return ":".join(p[:5] + ["execution", p[6], name])


def execution_status(state_machine: str, name: str) -> str | None:
    sfn = _client("stepfunctions", _region(state_machine))
    try:
        return sfn.describe_execution(
            executionArn=execution_arn(state_machine, name))["status"]
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def notify(settings: Settings, detail_type: str, detail: dict) -> bool:
    """Put one event on the bus; False (logged) when EventBridge refused it: a finished job
    stays finished whether or not its notification went out."""
    try:
        resp = _client("events", _region()).put_events(Entries=[{
            "Source": EVENT_SOURCE, "DetailType": detail_type, "EventBusName": settings.bus,
            "Detail": json.dumps(detail, default=str)}])
    except Exception:  # noqa: BLE001 - botocore errors, no credentials, no endpoint
        log.exception("could not send the %r event for %s", detail_type, detail.get("job_id"))
        return False
    if resp.get("FailedEntryCount"):
        log.error("EventBridge refused the %r event: %s", detail_type, resp.get("Entries"))
        return False
    return True


# ------------------------------------------------------------------------------ start

def check_limits(manifest: dict, settings: Settings) -> dict:
    """What a planned job needs against what the stack gives; raises `LimitError` (with
    every limit exceeded and what to do) before any worker runs. Returns the figures."""
    info = manifest["info"]
    w, h = int(info["display_width"]), int(info["display_height"])
    seconds = float(info.get("duration_s") or 0.0)
    fps = float(info.get("avg_rate") or 0.0) or 30.0
    frames = int(info.get("n_packets") or round(seconds * fps))
    source_mb = ((manifest.get("source_version") or {}).get("size") or 0) / 2**20
    output_mb = frames * w * h * OUTPUT_BITS_PER_PIXEL / 8 / 2**20
    # stitch reads the segments from S3 in place; /tmp holds only the final MP4 (video plus
    # the source's audio; faststart moves the index within the same file) and some slack
    tmp_mb = 1.0 * max(output_mb, 0.0) + 0.1 * source_mb + 256
    figures = {"seconds": round(seconds, 3), "frame": [w, h], "chunks": len(manifest["chunks"]),
               "estimated_output_mb": round(output_mb, 1), "stitch_tmp_needed_mb": round(tmp_mb),
               "stitch_tmp_mb": settings.stitch_tmp_mb}
    over = []
    if seconds > settings.max_video_seconds:
        over.append(f"{seconds:.1f} s of video (this deployment takes up to "
                    f"{settings.max_video_seconds:g} s: MaxVideoSeconds); split the video")
    if w * h > settings.max_frame_pixels:
        over.append(f"frames of {w}x{h} (up to {settings.max_frame_pixels} pixels: "
                    "MaxFramePixels); scale the video down")
    if len(manifest["chunks"]) > settings.max_chunks:
        over.append(f"{len(manifest['chunks'])} chunks (the Distributed Map takes "
                    f"{settings.max_chunks}); use longer chunks")
    if tmp_mb > settings.stitch_tmp_mb:
        over.append(f"an estimated {output_mb:.0f} MB output, which needs about "
                    f"{tmp_mb:.0f} MB of stitch's /tmp ({settings.stitch_tmp_mb} MB); "
                    "split the video or lower its frame size")
    if over:
        raise LimitError("the input is beyond what this deployment processes: "
                         + "; ".join(over) + ". Nothing was processed.")
    return figures


#: Plan decodes every frame once (exact frames and times, see video.probe): measured 2.2 ns
#: per pixel on one core of the development machine; the plan function's 1024 MB is 0.58 of
#: a vCPU, hence about 4 ns per pixel. Plan's budget leaves a minute for the rest.
PLAN_DECODE_NS_PER_PIXEL = 4.0
PLAN_BUDGET_S = 900.0 - 60.0

#: A worker's CPU seconds per frame megapixel with the default options on one core
#: (bench/lambda_sizing.py, 2026-12-01: 0.28 at 1080p, 0.18 at 720p; the larger is used). A
#: chunk must end within half the 900 s timeout even 3x slower than that (busier scenes, more
#: faces); its margins (stages.margins: 2.95 s with the defaults) are decoded and detected
#: too. Chunks are cut shorter than the setting when needed: with the balanced default, 1080p
#: at 1 vCPU gets about 5.7 s chunks, where the fast preset of earlier releases ran 20 s.
WORKER_CPU_S_PER_MPIXEL = 0.28
#: Relative cost of other option sets (measured, throughput.py, wall time against the
#: default): quality max 2.7x (crowd720), precision fp32 1.65x, quality fast 0.4x.
WORKER_COST = {("quality", "max"): 2.7, ("precision", "fp32"): 1.65, ("quality", "fast"): 0.4}
WORKER_SLOWDOWN = 3.0
WORKER_BUDGET_S = 450.0
MIN_CAPPED_CHUNK_S = 1.0


def worker_chunk_seconds(w: int, h: int, fps: float, worker_memory_mb: int,
                         options: Options | None = None) -> float:
    """The longest chunk (seconds of video) a worker of that size finishes in time."""
    options = options or Options()
    vcpus = cost.vcpus(worker_memory_mb)
    rate = float(os.environ.get("WORKER_CPU_S_PER_MPIXEL") or WORKER_CPU_S_PER_MPIXEL)
    for (name, value), factor in WORKER_COST.items():
        if getattr(options, name) == value:
            rate *= factor
    per_frame = max(rate, 1e-6) * w * h / 1e6 * WORKER_SLOWDOWN / vcpus
    fps = plausible_fps(fps)          # a VFR file's header may claim 1000 fps ("1k tbr")
    return WORKER_BUDGET_S / per_frame / fps - sum(stages.margins(options))


def cap_chunks(cut: dict, head: dict | None, settings: Settings,
               options: Options | None = None) -> dict:
    """`cut` with chunk_seconds lowered to what a worker finishes in time with `options`
    (see above); LimitError when not even MIN_CAPPED_CHUNK_S fits. An explicit chunk count is left
    alone."""
    if not head or cut.get("chunks") or not cut.get("chunk_seconds") \
            or not head["w"] * head["h"]:
        return cut
    cap = worker_chunk_seconds(head["w"], head["h"], head["fps"], settings.worker_memory_mb,
                               options)
    if cap < MIN_CAPPED_CHUNK_S:
        raise LimitError(f"frames of {head['w']}x{head['h']} at {head['fps']:.0f} fps take "
                         f"longer than a worker of {settings.worker_memory_mb} MB can run "
                         "even for a 1 s chunk; raise WorkerMemorySize (more vCPUs) or scale "
                         "the video down. Nothing was processed.")
    if cut["chunk_seconds"] > cap:
        log.info("chunks of %.1f s instead of %.1f s: %dx%d at %.1f fps, worker %d MB",
                 cap, cut["chunk_seconds"], head["w"], head["h"], head["fps"],
                 settings.worker_memory_mb)
        return {**cut, "chunk_seconds": round(cap, 2)}
    return cut


def precheck(uri: str, pin: dict, settings: Settings) -> dict | None:
    """Before plan decodes anything: a source that plan could not index within its timeout
    (estimated from the container's header: duration, rate and frame size) is refused at
    once (LimitError, with the longest part that fits), never left to time out. The other
    limits are checked on the exact figures after the probe (`check_limits`). Returns the
    header's figures {"w", "h", "fps", "seconds"} (None when it has no video stream)."""
    budget = float(os.environ.get("PLAN_BUDGET_S") or PLAN_BUDGET_S)
    import av
    with _s3(uri).open_read(uri, pin=pin) as f:
        try:
            c = av.open(f)
        except av.FFmpegError:
            return None                         # unreadable: plan's probe says why
        try:
            if not c.streams.video:
                return None
            vs = c.streams.video[0]
            seconds = float(vs.duration * vs.time_base) if vs.duration and vs.time_base \
                else (c.duration or 0) / 1e6
            w, h = vs.codec_context.width or 0, vs.codec_context.height or 0
            fps = float(vs.average_rate or vs.guessed_rate or 30)
        finally:
            c.close()
    decode_s = seconds * fps * w * h * PLAN_DECODE_NS_PER_PIXEL * 1e-9
    if decode_s > budget:
        raise LimitError(f"the input is beyond what this deployment processes: about "
                         f"{decode_s:.0f} s for plan to index every frame of {seconds:.0f} s "
                         f"of {w}x{h} video (its budget is {budget:.0f} s); split the video "
                         f"into parts of at most {seconds * budget / decode_s / 60:.1f} "
                         "minutes. Nothing was processed.")
    return {"w": w, "h": h, "fps": fps, "seconds": seconds}


def start_job(up: Upload, settings: Settings, *, rerun: str | None = None,
              options: dict | None = None, chunk_seconds: float | None = None,
              bind=None) -> dict:
    """Plan one upload and start its execution (name = job id). Returns a small record
    with "status": ignored | done | duplicate | planned | started | failed. `bind(job_id=)`,
    when given, is called with the job id once known (the handler's log keys)."""
    bucket, _ = st.parse_s3(up.uri)
    layout = settings.layout(bucket)
    reason = input_reason(layout, up.uri, up.size) if up.created \
        else "not an object-created event"
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
    if rerun is None and jobs.finished(outputs["summary"], stat):
        return {**rec, "status": "done", "summary": outputs["summary"]}
    if rerun is None and jobs.reported(report_uri, stat):
        return {**rec, "status": "done", "report": report_uri}
    sm = settings.state_machine
    status = execution_status(sm, jid) if sm else None
    if status is not None:
        return {**rec, "status": "duplicate", "execution_status": status}
    job_options(options, chunk_seconds=chunk_seconds)   # a bad event or setting raises
    work, t0 = settings.work(bucket, jid), time.time()
    try:
        opts, cut = job_options(options, jobs.sidecar_options(up.uri), chunk_seconds)
        cut = cap_chunks(cut, precheck(up.uri, stat.to_dict(), settings), settings, opts)
        manifest = stages.plan(up.uri, outputs=outputs, options=opts, work=work, **cut,
                               pin=stat.to_dict(), publish_token=jid, overwrite=True,
                               job={"id": jid, "input": up.uri, "rerun": rerun,
                                    "started": t0, "report": report_uri,
                                    "lambda": _functions(settings)})
        limits = check_limits(manifest, settings)
    except BlurfacesError as e:
        _delete_work(work)
        if version_stat(Upload(up.uri, stat.version_id, stat.etag)) is None:
            return {**rec, "status": "ignored", "reason": "replaced or deleted while planned"}
        report = jobs.failure_report(up.uri, stat, jid, e, stage="plan", started=t0)
        jobs.write_report(report_uri, report)
        notified = notify(settings, FAILED, _failed_detail(report, report_uri, t0))
        return {**rec, "status": "failed", "report": report_uri, "error": str(e),
                "error_type": type(e).__name__, "notified": notified}
    items_uri = st.join(work, ITEMS)
    _s3(work).write_json(items_uri, [{"work": work, "index": c["index"]}
                                     for c in manifest["chunks"]])
    # Deterministic (no times): a duplicate StartExecution must send the same input.
    log.info("planned %s: %s", jid, limits)
    exec_input = {"job_id": jid, "source": up.uri, "work": work, "bucket": bucket,
                  "items_key": st.parse_s3(items_uri)[1], "chunks": len(manifest["chunks"]),
                  "max_concurrency": settings.max_concurrency,
                  "outputs": {"video": outputs["video"], "summary": outputs["summary"]}}
    if not sm:
        return {**rec, "status": "planned", "input": exec_input}
    sfn = _client("stepfunctions", _region(sm))
    try:
        arn = sfn.start_execution(stateMachineArn=sm, name=jid,
                                  input=json.dumps(exec_input, sort_keys=True))["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        status = execution_status(sm, jid)
        if status not in (None, "RUNNING"):
            _delete_work(work)          # that execution already finished and cleaned up
        return {**rec, "status": "duplicate", "execution_status": status}
    return {**rec, "status": "started", "execution_arn": arn, "input": exec_input}


def _functions(settings: Settings) -> dict:
    """The Lambda sizes a job runs with (for its cost estimate)."""
    return {"worker_memory_mb": settings.worker_memory_mb,
            "plan_memory_mb": _number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                      os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                                      or 1024, int, 128, 10240),
            "stitch_memory_mb": settings.stitch_memory_mb,
            "architecture": settings.architecture}


def backfill(prefix: str, settings: Settings, *, limit: int | None = None,
             after: str | None = None, rerun: str | None = None,
             options: dict | None = None, seconds: float | None = None,
             follow: str | None = None) -> dict:
    """Start a job for every input under `prefix` (within ROOT/incoming/) that has no
    result, report or execution for its current version: at most `limit` starts per call
    (and no new object after `seconds`), in key order. "next" is the event for the
    following call (None when done); with `follow` (the plan function's ARN) this call
    invokes the function asynchronously with it, so one event walks the whole prefix."""
    deadline = None if seconds is None else time.monotonic() + seconds
    bucket, _ = st.parse_s3(prefix)
    layout = settings.layout(bucket)
    if not (prefix if prefix.endswith("/") else prefix + "/").startswith(layout.incoming):
        raise OptionError(f"backfill {prefix}: give a prefix under {layout.incoming}, "
                          "where inputs live.")
    limit = settings.backfill_limit if limit is None else _number("limit", limit, int, 1, 1000)
    ready, _ = jobs.discover(prefix)
    counts: dict = {}
    started, last, more = [], after, False
    for found in ready:
        if after and found.uri <= after:
            continue
        if len(started) >= limit or (deadline and counts and time.monotonic() > deadline):
            more = True
            break
        r = start_job(Upload(found.uri, size=found.stat.size), settings, rerun=rerun,
                      options=options)
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r["status"] in ("started", "planned"):
            started.append(r["job_id"])
        last = found.uri
    nxt = {"backfill": prefix, "after": last, "limit": limit} if more else None
    if nxt and (rerun or options):
        nxt.update({k: v for k, v in (("rerun", rerun), ("options", options)) if v})
    if nxt and follow:
        nxt["follow"] = True
        _client("lambda", _region(follow)).invoke(
            FunctionName=follow, InvocationType="Event", Payload=json.dumps(nxt).encode())
    return {"backfill": prefix, "started": started, "counts": counts, "next": nxt,
            "followed": bool(nxt and follow)}


# ------------------------------------------------------------------------------ chunk

def run_chunk(event: dict) -> dict:
    """One item of the Distributed Map: {"work": URI, "index": N} -> URIs and counts."""
    work = event.get("work") if isinstance(event, dict) else None
    index = event.get("index") if isinstance(event, dict) else None
    if not isinstance(work, str) or not work:
        raise OptionError("worker event needs 'work' (the job's work area URI).")
    if isinstance(index, bool) or not isinstance(index, int):
        raise OptionError(f"worker event needs an integer 'index' (got {index!r}).")
    manifest = stages.load_manifest(work)
    if not 0 <= index < len(manifest["chunks"]):
        raise OptionError(f"chunk index {index} is out of range: the job in {work} has "
                          f"{len(manifest['chunks'])} chunks.")
    jid = (manifest.get("job") or {}).get("id")
    fn = (manifest.get("job") or {}).get("lambda") or {}
    store = _s3(work)
    if store.exists(stages.part_uri(work, index)):
        # Done by an earlier attempt (a retried child, the second pass over the Map after
        # throttling): finished chunks are kept, never paid for twice.
        part = store.read_json(stages.part_uri(work, index))
        return {"index": index, "job_id": jid, "frames": part["frames"],
                "detections": part.get("detections"), "segment": part["segment"],
                "part": stages.part_uri(work, index), "reused": True}
    threads = stages.default_workers()
    try:
        part = stages.worker(manifest, index, threads=threads)
    except Exception as e:
        try:        # for the failure report (Step Functions keeps only a generic Map error)
            _s3(work).write_json(_error_uri(work, index), {
                "error_type": type(e).__name__, "message": str(e)})
        except BlurfacesError:
            pass
        raise
    secs = float(part.get("seconds") or 0.0)
    memory = _number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                     os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                     or fn.get("worker_memory_mb") or 3538, int, 128, 10240)
    size = (manifest.get("source_version") or {}).get("size") or 0
    usd = cost.chunk_cost(secs, memory, fn.get("architecture", "x86_64"),
                          int(size / max(1, len(manifest["chunks"]))))
    return {"index": index, "job_id": jid, "frames": part["frames"],
            "detections": part.get("detections"), "seconds": round(secs, 3),
            "fps": round(part["frames"] / secs, 2) if secs > 0 else None,
            "threads": threads, "cost_usd": round(usd, 7), "segment": part["segment"],
            "part": stages.part_uri(work, index)}


# ------------------------------------------------------------------------------ stitch / abort

def _error_uri(work: str, index: int) -> str:
    return st.join(work, f"errors/chunk-{index:05d}.json")


def output_uris(manifest: dict) -> list[str]:
    """Every name a job may publish (the summary last)."""
    outs, opts = manifest["outputs"], manifest["options"]
    return [outs["video"]] + [f"{outs['stem']}.{f}" for f in opts.get("data_format", [])] \
        + [outs["heatmap"], f"{outs['stem']}_review.html", outs["summary"]]


def _published(summary_uri: str, jid: str | None) -> dict | None:
    """Job `jid`'s own published summary (it is written last: the job is complete)."""
    store = _s3(summary_uri)
    try:
        s = store.read_json(summary_uri) if store.exists(summary_uri) else None
    except InputError:
        return None
    return s if isinstance(s, dict) and jid and (s.get("job") or {}).get("id") == jid \
        else None


def _complete(manifest: dict) -> dict | None:
    return _published(manifest["outputs"]["summary"], manifest["job"].get("id"))


def rollback(manifest: dict) -> list[str]:
    """Delete the outputs this job wrote: only objects whose metadata carries its publish
    token; on a versioned bucket that version only (the previous one becomes current)."""
    token, removed = manifest.get("publish_token"), []
    for uri in output_uris(manifest):
        store = _s3(uri)
        bucket, key = st.parse_s3(uri)
        if not store.exists(uri):
            continue
        head = store._head(uri)
        if not token or (head.get("Metadata") or {}).get(TOKEN_METADATA) != token:
            continue
        kw = {"VersionId": head["VersionId"]} \
            if head.get("VersionId") not in (None, "null") else {}
        store._call(uri, "DeleteObject", store.client.delete_object, writing=True,
                    Bucket=bucket, Key=key, **kw)
        removed.append(uri)
    if removed:
        log.warning("rolled back the outputs of failed job %s: %s", token, removed)
    return removed


def _delete_work(work: str, uris=None) -> None:
    """Remove the work area (`uris`: its listing, when the caller has one), the manifest last
    (a retried stitch still finds the job)."""
    store = _s3(work)
    uris = list(store.list(work) if uris is None else uris)
    last = st.join(work, stages.MANIFEST)
    for uri in [u for u in uris if u != last] + [u for u in uris if u == last]:
        store.delete(uri)


def _seconds(manifest_or_job: dict) -> float | None:
    t0 = (manifest_or_job.get("job") or manifest_or_job).get("started")
    return round(time.time() - float(t0), 3) if t0 else None


def _summary_of(settings: Settings, source) -> str | None:
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
    if not _s3(work).exists(st.join(work, stages.MANIFEST)):
        uri = _summary_of(settings, source)
        summary = _published(uri, job_id) if uri else None
        if summary is None:
            stages.load_manifest(work)          # raises: no such job
    else:
        manifest = stages.load_manifest(work)
        summary = _complete(manifest)
        if summary is None:
            try:
                summary = stages.stitch(manifest)
            except BaseException:
                try:
                    rollback(manifest)
                except Exception:  # noqa: BLE001 - keep the original error; abort retries it
                    log.exception("rollback after a failed stitch failed")
                raise
    cleaned = False
    if not settings.keep_work:
        try:
            _delete_work(work)
            cleaned = True
        except BlurfacesError:      # complete anyway; the lifecycle rule removes leftovers
            log.exception("could not clean the work area %s", work)
    c, job = summary["counts"], summary.get("job") or {}
    counts = {k: c[k] for k in ("frames", "detections", "tracks", "masked_boxes", "chunks")}
    seconds = _seconds(job)
    detail = {"job_id": job.get("id"), "status": "succeeded", "input": summary["input"],
              "version": summary["input_version"], "outputs": summary["outputs"],
              "counts": counts, "seconds": seconds, "cost": summary.get("cost")}
    return {"job_id": detail["job_id"], "source": detail["input"],
            "outputs": summary["outputs"], "work_cleaned": cleaned, **counts,
            "seconds": seconds,
            "fps": round(counts["frames"] / seconds, 2) if seconds else None,
            "cost": summary.get("cost"), "notified": notify(settings, SUCCEEDED, detail)}


def _state_error(error: dict | None) -> tuple[str, str]:
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
    store = _s3(work)
    manifest = stages.load_manifest(work) \
        if store.exists(st.join(work, stages.MANIFEST)) else None
    source = manifest["source"] if manifest else event.get("source")
    jid = manifest["job"]["id"] if manifest else event.get("job_id")
    summary_uri = manifest["outputs"]["summary"] if manifest else _summary_of(settings, source)
    if summary_uri and _published(summary_uri, jid):
        _delete_work(work)
        return {"job_id": jid, "aborted": False, "reason": "the job had completed"}
    removed = rollback(manifest) if manifest else []
    name, message = _state_error(event.get("error"))
    stage, chunk = "stitch", None
    present = None
    if manifest:
        present = set(store.list(work))         # one listing, not a HEAD per chunk
        missing = [c["index"] for c in manifest["chunks"]
                   if stages.part_uri(work, c["index"]) not in present]
        stage, chunk = ("worker", missing[0]) if missing else ("stitch", None)
        for index in missing:       # the chunk's own error, when its worker recorded one
            if _error_uri(work, index) in present:
                e = store.read_json(_error_uri(work, index))
                name, message, chunk = e["error_type"], e["message"], index
                break
    _delete_work(work, present)
    out = {"job_id": jid, "aborted": True, "removed_outputs": removed}
    if _summary_of(settings, source) is None:
        return out
    layout = settings.layout(st.parse_s3(source)[0])
    stat = st.Stat.from_dict(manifest["source_version"]) if manifest else None
    t0 = (manifest["job"].get("started") if manifest else None) or time.time()
    report = jobs.failure_report(source, stat, jid, RuntimeError(message), stage=stage,
                                 started=t0, chunk=chunk)
    report.update(error_type=name, what_to_do=jobs.HINTS.get(name, report["what_to_do"]))
    report_uri = layout.report(source)
    jobs.write_report(report_uri, report)
    out.update(report=report_uri,
               notified=notify(settings, FAILED, _failed_detail(report, report_uri, t0)))
    return out


def _failed_detail(report: dict, report_uri: str, t0: float) -> dict:
    return {"job_id": report["job_id"], "status": "failed", "input": report["input"],
            "version": report["version"], "report": report_uri, "stage": report["stage"],
            "chunk": report["chunk"], "error_type": report["error_type"],
            "message": report["message"], "seconds": round(time.time() - t0, 3)}
