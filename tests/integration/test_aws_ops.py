"""Operating the AWS path (issue 11), on moto's server with the real handlers (conftest.py):

* throttling: 30% of worker invocations answered with TooManyRequestsException, as the
  Lambda service does when the concurrency is exhausted: the job still succeeds, each chunk
  is processed once;
* limits up front: a source beyond the deployment's limits fails in plan with a report
  (stage "plan", LimitError), no execution and no worker;
* metrics: Powertools' EMF output of the worker and stitch handlers (names, units, values
  from the job's own figures, the cost estimate equal to the summary's);
* logs: every line of a handler carries the job id; the event's requester IP never appears;
* the cost model's arithmetic.
"""
from __future__ import annotations

import itertools
import json
import logging
import sys
import threading

import pytest

from blurfaces.aws import sizing
from blurfaces.aws.chunk import worker_threads
from blurfaces.aws.settings import Settings
from tests.integration.helpers import (FUNCTIONS, INPUT_KEY, OUT_PREFIX, REPORT_KEY, call, keys,
                                       load_asl, load_template, put_event, upload,
                                       wait_execution)


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _emf(lines: list[dict]) -> list[dict]:
    """Powertools' Embedded Metric Format documents: {"_aws": {"CloudWatchMetrics": ...}}."""
    return [d for d in lines if "_aws" in d]


def _v(doc: dict, name: str) -> float:
    """A metric's value in an EMF document (Powertools writes [value])."""
    (value,) = doc[name] if isinstance(doc[name], list) else [doc[name]]
    return value


def _metric_units(doc: dict) -> dict:
    (m,) = doc["_aws"]["CloudWatchMetrics"]
    return {x["Name"]: x["Unit"] for x in m["Metrics"]}


@pytest.mark.slow
def test_throttled_workers_job_succeeds(aws, single_face, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn)
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-throttle")
    obj = upload(aws, bucket, single_face)
    counter, lock = itertools.count(), threading.Lock()

    def thirty_percent(event):          # invocations 0, 3, 6 of every 10: 30%, first included
        with lock:
            return next(counter) % 10 in (0, 3, 6)

    aws.dispatcher.throttle[FUNCTIONS["worker"]] = thirty_percent
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "started"
    desc = wait_execution(aws, job["execution_arn"], timeout=180)
    assert desc["status"] == "SUCCEEDED", desc

    d, n = aws.dispatcher, job["input"]["chunks"]
    assert d.throttled >= 1                                  # throttling did happen
    attempts = d.throttled + d.count(FUNCTIONS["worker"])
    assert d.throttled / attempts >= 0.2, (d.throttled, attempts)
    for i in range(n):                                       # each chunk ran once, OK
        assert d.count(FUNCTIONS["worker"], index=i, ok=True) == 1, i
    assert d.count(FUNCTIONS["worker"], ok=False) == 0
    assert d.count(FUNCTIONS["stitch"], action="abort") == 0
    assert f"{OUT_PREFIX}.mp4" in keys(aws, bucket, "anonymized/")
    assert keys(aws, bucket, "failed/") == [] and keys(aws, bucket, ".blurfaces/") == []


def remux(path, fmt: str) -> bytes:
    """The file's packets copied into another container (`fmt`), as bytes."""
    import io

    import av
    buf = io.BytesIO()
    with av.open(str(path)) as src, av.open(buf, "w", format=fmt) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams
                   if s.type in ("video", "audio")}
        for pkt in src.demux(*[s for s in src.streams if s.index in streams]):
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            out.mux(pkt)
    return buf.getvalue()


def test_source_over_limits_fails_in_plan(aws, single_face, monkeypatch):
    """2.4 s of 640x360 against a deployment that takes 1 s and a 300 MB stitch /tmp."""
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn)
    monkeypatch.setenv("MAX_VIDEO_SECONDS", "1")
    monkeypatch.setenv("STITCH_TMP_MB", "200")
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-limits")
    events = aws.job_events(bucket)
    obj = upload(aws, bucket, single_face)

    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "failed" and job["error_type"] == "LimitError", job
    assert "MaxVideoSeconds" in job["error"] and "/tmp" in job["error"], job["error"]
    report = json.loads(aws.s3.get_object(Bucket=bucket, Key=REPORT_KEY)["Body"].read())
    assert report["stage"] == "plan" and report["error_type"] == "LimitError"
    assert report["job_id"] == job["job_id"] and report["input"].endswith(INPUT_KEY)
    # no execution, no worker, no work area left; one "Job Failed" event
    runs = aws.sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]
    assert job["job_id"] not in [e["name"] for e in runs]
    assert aws.dispatcher.count(FUNCTIONS["worker"]) == 0
    assert keys(aws, bucket) == [REPORT_KEY, INPUT_KEY]
    (ev,) = events()
    assert ev["detail-type"] == "Job Failed" and ev["detail"]["stage"] == "plan"

    # A source whose container has no trustworthy index (MPEG-TS here) is indexed by
    # decoding every frame: one plan could not finish within its timeout is refused from its
    # header, before anything is decoded (here: a budget of 10 ms). An MP4 is indexed from its
    # sample tables (blurfaces.frameindex) and never decoded in plan, whatever the budget.
    monkeypatch.setenv("MAX_VIDEO_SECONDS", "3")
    monkeypatch.setenv("STITCH_TMP_MB", "400")
    monkeypatch.setenv("PLAN_BUDGET_S", "0.01")
    ts_key = INPUT_KEY.replace(".mp4", ".ts")
    aws.s3.put_object(Bucket=bucket, Key=ts_key, Body=remux(single_face, "mpegts"))
    decoded = []
    from blurfaces import stages
    real_probe = stages.probe
    monkeypatch.setattr(stages, "probe", lambda *a, **k: decoded.append(a) or 1 / 0)
    (job,) = call("plan", {"source": f"s3://{bucket}/{ts_key}", "rerun": "2"})["jobs"]
    assert job["status"] == "failed" and "index every frame" in job["error"], job
    assert "split the video into parts" in job["error"] and decoded == []
    monkeypatch.delenv("STATE_MACHINE_ARN")
    (fast,) = call("plan", {"source": f"s3://{bucket}/{INPUT_KEY}", "rerun": "5"})["jobs"]
    assert fast["status"] == "planned" and decoded == [], fast
    monkeypatch.setattr(stages, "probe", real_probe)
    monkeypatch.delenv("PLAN_BUDGET_S")

    # Within the limits, the same source plans (the check is not a blanket refusal).
    (ok,) = call("plan", {"source": f"s3://{bucket}/{INPUT_KEY}", "rerun": "1"})["jobs"]
    assert ok["status"] == "planned", ok
    assert ok["input"]["chunks"] == 2                       # 2.4 s in chunks of 1.2 s

    # A chunk must end within 720 s of a worker's 900 s timeout, 3x slower than measured:
    # with a (pretend) 4.3 CPU s per megapixel, a 1 vCPU worker gets chunks of about 1.1 s of
    # this clip instead of the setting's 1.2 s; at 16 not even a 1 s chunk fits: refused.
    monkeypatch.setenv("WORKER_MEMORY_MB", "1769")
    monkeypatch.setenv("WORKER_CPU_S_PER_MPIXEL", "4.3")
    (short,) = call("plan", {"source": f"s3://{bucket}/{INPUT_KEY}", "rerun": "3"})["jobs"]
    assert short["status"] == "planned" and short["input"]["chunks"] == 3, short
    # At 8, no chunk of 1 s fits one vCPU, but the 5307 MB worker (3 vCPUs) ends a 1.2 s
    # one in time: plan sends the job there. At 16 with both workers at one vCPU nothing
    # fits, and the larger's setting is named.
    monkeypatch.setenv("WORKER_CPU_S_PER_MPIXEL", "8")
    (large,) = call("plan", {"source": f"s3://{bucket}/{INPUT_KEY}", "rerun": "6"})["jobs"]
    assert large["status"] == "planned", large
    items = json.loads(aws.s3.get_object(Bucket=bucket, Key=large["input"]["items_key"])
                       ["Body"].read())
    assert {i["worker"] for i in items} == {aws.function_arns["large_worker"]}
    monkeypatch.setenv("WORKER_CPU_S_PER_MPIXEL", "16")
    monkeypatch.setenv("LARGE_WORKER_MEMORY_MB", "1769")
    (big,) = call("plan", {"source": f"s3://{bucket}/{INPUT_KEY}", "rerun": "4"})["jobs"]
    assert big["status"] == "failed" and big["error_type"] == "LimitError", big
    assert "raise LargeWorkerMemorySize" in big["error"] and "640x360" in big["error"], \
        big["error"]


@pytest.mark.slow
def test_metrics_and_log_keys(aws, single_face, monkeypatch, capsys):
    """Plan (S3 event with a requester IP), each worker and stitch, called as Lambda would:
    EMF metrics with the expected names and values; job_id (and chunk) on every log line;
    no IP address anywhere in the output."""
    monkeypatch.setenv("WORKER_MEMORY_MB", "1769")
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-metrics")
    obj = upload(aws, bucket, single_face)
    event = put_event(bucket, obj)
    ip = event["Records"][0]["requestParameters"]["sourceIPAddress"]
    capsys.readouterr()
    # Powertools' log handlers hold the stdout of when they were made: point them (the
    # service logger and the core's blurfaces.* loggers it configured) at the captured one.
    for name in ["blurfaces", *(n for n in logging.root.manager.loggerDict
                                if n.startswith("blurfaces."))]:
        for h in logging.getLogger(name).handlers:
            if isinstance(h, logging.StreamHandler):
                monkeypatch.setattr(h, "stream", sys.stdout)

    (job,) = call("plan", event)["jobs"]                     # plan only: no state machine
    assert job["status"] == "planned"
    jid = job["job_id"]
    items = json.loads(aws.s3.get_object(Bucket=bucket, Key=job["input"]["items_key"])
                       ["Body"].read())
    chunks = [call("worker", item) for item in items]
    result = call("stitch", {"work": job["input"]["work"], "job_id": jid,
                             "source": f"s3://{bucket}/{INPUT_KEY}"})
    out = capsys.readouterr().out
    assert ip not in out and "sourceIPAddress" not in out and "principalId" not in out
    lines = _json_lines(out)

    logs = [d for d in lines if "level" in d and "_aws" not in d]
    assert logs, out[-2000:]
    for d in logs:
        assert d.get("job_id") == jid, d
    worker_logs = [d for d in logs if d.get("function") == "worker"]
    assert {d["chunk"] for d in worker_logs} == {c["index"] for c in chunks}

    emf = _emf(lines)
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "blurfaces" for d in emf)
    per_chunk = [d for d in emf if d.get("function") == "worker"]
    assert len(per_chunk) == len(chunks) == len(items) >= 2
    for doc, c in zip(sorted(per_chunk, key=lambda d: d["chunk"]), chunks):
        assert _metric_units(doc) == {"ChunkFrames": "Count", "ChunkFaces": "Count",
                                      "ChunkSeconds": "Seconds",
                                      "ChunkFramesPerSecond": "Count/Second",
                                      "ChunkCostUSD": "None"}
        assert _v(doc, "ChunkFrames") == c["frames"] > 0 and doc["job_id"] == jid
        # which worker ran it: metadata, not a dimension (both report as function=worker)
        assert doc["memory_mb"] == c["memory_mb"] == 1769
        assert doc["threads"] == c["threads"] == worker_threads(Settings.from_env())
        assert set(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) <= {"function",
                                                                             "service"}
        assert _v(doc, "ChunkFaces") == c["detections"]
        assert _v(doc, "ChunkFramesPerSecond") == pytest.approx(c["frames"] / c["seconds"],
                                                            rel=0.02)
        # 1769 MB x86: seconds x 1.7275 GB x $0.0000166667 + request + transitions + S3
        assert _v(doc, "ChunkCostUSD") == pytest.approx(
            c["seconds"] * 1769 / 1024 * 0.0000166667 + 0.2e-6 + 3 * 25e-6
            + 2 * 0.0004e-3 + 2 * 0.005e-3, rel=0.05)
    assert sum(_v(d, "ChunkFrames") for d in per_chunk) == 72

    (job_doc,) = [d for d in emf if d.get("function") == "stitch"]
    assert {"JobsSucceeded", "JobFrames", "JobFaces", "JobSeconds", "JobFramesPerSecond",
            "JobCostUSD"} <= set(_metric_units(job_doc))
    assert _v(job_doc, "JobFrames") == 72 == result["frames"] and job_doc["job_id"] == jid
    assert _v(job_doc, "JobFaces") == result["detections"] == sum(c["detections"] for c in chunks)
    summary = json.loads(aws.s3.get_object(Bucket=bucket, Key=f"{OUT_PREFIX}_summary.json")
                         ["Body"].read())
    assert summary["cost"]["usd"] == _v(job_doc, "JobCostUSD") > 0
    assert summary["cost"]["worker_memory_mb"] == 1769
    assert summary["cost"]["workers_usd"] == pytest.approx(
        sum(_v(d, "ChunkCostUSD") for d in per_chunk), rel=0.05)
    (plan_doc,) = [d for d in emf if d.get("function") == "plan"]
    assert _v(plan_doc, "JobsStarted") == 1 and _v(plan_doc, "JobsFailedInPlan") == 0


def test_cost_model():
    from blurfaces import cost
    assert [cost.vcpus(m) for m in (1769, 3538, 5307, 10240, 1024)] == [1, 2, 3, 5, 1]
    # one GB for 1000 s on x86 = 1000 GB-s
    assert cost.lambda_cost(1000, 1024, requests=0) == pytest.approx(0.0166667)
    assert cost.lambda_cost(1000, 1024, "arm64", 0) == pytest.approx(0.0133334)
    with pytest.raises(ValueError):
        cost.lambda_cost(1, 1024, "sparc")
    h = cost.per_video_hour(fps_processed=30.0, worker_memory_mb=1769, chunk_seconds=30,
                            margin_seconds=0, startup_seconds=0, stitch_seconds_per_hour=0,
                            plan_seconds_per_hour=0, bitrate_mbps=0)
    # 3600 s of 30 fps at 30 fps processed: 3600 worker-seconds at 1769 MB
    assert h["chunks"] == 120 and h["chunk_s"] == 30.0
    # figures worked out by hand from AWS's published prices (us-east-1, 2026):
    # workers 3600 s x 1769/1024 GB = 6219.14 GB-s x $0.0000166667 = $0.103653
    # 122 Lambda requests (120 workers, plan, stitch) x $0.20 per million  = $0.0000244
    # 366 state transitions (6 + 120 x 3) x $25 per million                 = $0.00915
    # 362 S3 GETs (120 chunks, 2 plan, 240 stitch) x $0.0004 per 1000       = $0.0001448
    # 247 S3 PUTs (240 chunks, 2 plan, 5 stitch) x $0.005 per 1000          = $0.001235
    assert h["worker_gb_s"] == pytest.approx(6219.1, abs=0.05)     # rounded to 0.1
    assert h["usd"] == pytest.approx(0.114207, abs=2e-6)
    assert cost.of_job({"job": {}}, {}) is None                 # not a Lambda job
    with pytest.raises(TypeError):          # the margins are the caller's to state
        cost.per_video_hour(fps_processed=30.0, worker_memory_mb=1769)



# ------------------------------------------------------------------------------ configuration

def test_map_results_are_bounded():
    """Each child execution of either Map pass returns {} (OutputPath null on its only
    state), and the Map drops the collection (ResultPath null): at the 10,000-item maximum
    the collected results are about 30 KB, under the 256 KiB state limit."""
    from blurfaces import aws as core
    asl = load_asl()
    for name in ("Chunks", "ChunksSecondPass"):
        m = asl["States"][name]
        assert m["ResultPath"] is None
        states = m["ItemProcessor"]["States"]
        ends = [s for s in states.values() if s.get("End")]
        assert ends and all("OutputPath" in s and s["OutputPath"] is None for s in ends), name
        assert m["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    collected = json.dumps([{}] * core.MAP_ITEMS_MAX, separators=(",", ":"))
    assert len(collected) < 256 * 1024 / 8


def test_retries_outlast_a_wave_and_second_pass():
    """Throttling retries: backoff with jitter, enough attempts that their expected total
    exceeds four times the 720 s a worst-case chunk may take (sizing.WORKER_BUDGET_S: several
    waves); the second Map pass
    follows any Map failure except expected input errors."""
    asl = load_asl()
    worker = asl["States"]["Chunks"]["ItemProcessor"]["States"]["Worker"]
    (throttle,) = [r for r in worker["Retry"]
                   if "Lambda.TooManyRequestsException" in r["ErrorEquals"]]
    assert throttle["JitterStrategy"] == "FULL" and throttle["BackoffRate"] >= 2
    delays = [min(throttle["IntervalSeconds"] * throttle["BackoffRate"] ** k,
                  throttle["MaxDelaySeconds"]) for k in range(throttle["MaxAttempts"])]
    # full jitter: half the ceiling on average
    assert sum(delays) / 2 > 4 * sizing.WORKER_BUDGET_S == 4 * 720
    catches = asl["States"]["Chunks"]["Catch"]
    assert catches[0]["Next"] == "Abort" and "InputError" in catches[0]["ErrorEquals"]
    assert catches[-1] == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                           "Next": "PauseBeforeSecondPass"}
    assert asl["States"]["PauseBeforeSecondPass"]["Next"] == "ChunksSecondPass"
    assert asl["States"]["ChunksSecondPass"]["Catch"][0]["Next"] == "Abort"
    assert asl["States"]["ChunksSecondPass"]["Next"] == "Stitch"


def test_template_hardening():
    """Tracing, state-machine ERROR logs, TLS-only policy, versioning and expiry, KMS grants
    conditioned, ListBucket only with a prefix, log retention, no reserved concurrency by
    default, the job budget, the upload queue in front of plan, alarms."""
    template = load_template()
    res, params = template["Resources"], template["Parameters"]
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    sm = res["JobStateMachine"]["Properties"]
    assert sm["Tracing"] == {"Enabled": True}
    assert sm["Logging"]["Level"] == "ERROR" and sm["Logging"]["IncludeExecutionData"] is False
    assert res["StateMachineLogs"]["Type"] == "AWS::Logs::LogGroup"

    (deny,) = res["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket = res["Bucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert "NoncurrentDays" in rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]
    assert rules["expire-work-area"]["ExpirationInDays"] == {"Ref": "WorkRetentionDays"}

    for fn in ("PlanFunction", "WorkerFunction", "LargeWorkerFunction", "StitchFunction"):
        statements = res[fn]["Properties"]["Policies"][0]["Statement"]
        (lb,) = [s for s in statements if isinstance(s, dict) and s.get("Sid") == "ListBucket"]
        # a listing without a Prefix (the whole bucket) is not granted: StringLike, not
        # StringLikeIfExists (storage.S3Storage tells a missing key from a forbidden one by
        # listing the key's own prefix, so HEAD answering 403 for a missing key is handled)
        assert set(lb["Condition"]) == {"StringLike"}, fn
        assert all(p["Fn::Sub"].endswith("/*") for p in lb["Condition"]["StringLike"][
            "s3:prefix"]), fn
        (kms,) = [s["Fn::If"] for s in statements if "Fn::If" in s]
        assert kms[0] == "HasKmsKey" and kms[2] == {"Ref": "AWS::NoValue"}
        assert set(kms[1]["Action"]) <= {"kms:Decrypt", "kms:GenerateDataKey"}
        assert kms[1]["Resource"] == {"Ref": "KmsKeyArn"}
        assert "kms:ViaService" in kms[1]["Condition"]["StringEquals"]
        assert "kms:EncryptionContext:aws:s3:arn" in kms[1]["Condition"]["StringLike"]
        # logs kept LogRetentionDays (default 30), not forever
        group = res[res[fn]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert res[fn]["Properties"]["FunctionName"]["Fn::Sub"] in group["LogGroupName"][
            "Fn::Sub"]
    assert params["LogRetentionDays"]["Default"] == 30
    # deployable on a fresh account: nothing reserved unless asked (a reservation must leave
    # 100 of the quota unreserved; a new account's quota is 1000 or less)
    assert params["WorkerReservedConcurrency"]["Default"] == 0
    worker = res["WorkerFunction"]["Properties"]
    assert worker["ReservedConcurrentExecutions"]["Fn::If"] == [
        "ReserveWorkers", {"Ref": "WorkerReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    assert params["WorkerMemorySize"]["MinValue"] == 1769
    # an hour of 1080p30 at the default worker size runs in one wave of the Map
    from blurfaces.aws import worker_chunk_seconds
    per_hour = 3600 / worker_chunk_seconds(1920, 1080, 30, params["WorkerMemorySize"]["Default"])
    assert params["MaxConcurrency"]["Default"] >= per_hour
    # uploads queue in SQS before plan, planned PlanConcurrency at a time; 3 failed tries
    # move a message to the dead-letter queue
    queue = res["UploadQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [
        "PlanFailures", "Arn"]}, "maxReceiveCount": 3}
    assert queue["VisibilityTimeout"] >= 6 * res["PlanFunction"]["Properties"]["Timeout"]
    sqs = res["PlanFunction"]["Properties"]["Events"]["Uploads"]
    assert sqs["Type"] == "SQS" and sqs["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "PlanConcurrency"}}
    notif = res["Bucket"]["Properties"]["NotificationConfiguration"]
    assert [q["Queue"] for q in notif["QueueConfigurations"]] == [
        {"Fn::GetAtt": ["UploadQueue", "Arn"]}]
    assert res["UploadRule"]["Properties"]["Targets"][0]["Arn"] == {
        "Fn::GetAtt": ["UploadQueue", "Arn"]}
    # alarms: failed executions, the dead-letter queue's depth, throttles
    alarms = {k: v["Properties"] for k, v in res.items()
              if v["Type"] == "AWS::CloudWatch::Alarm"}
    metrics = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert {("AWS/States", "ExecutionsFailed"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
            ("AWS/Lambda", "Throttles")} <= metrics
    assert alarms["PlanFailuresAlarm"]["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["PlanFailures", "QueueName"]}


def test_handlers_do_not_log_events():
    import os
    import re
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for stage in ("plan", "worker", "stitch"):
        with open(os.path.join(root, "functions", stage, "app.py"), encoding="utf-8") as f:
            code = re.sub(r'""".*?"""', "", f.read(), flags=re.S)
        assert "log_event" not in code and "inject_lambda_context(clear_state=True)" in code
        assert "metrics.log_metrics" in code and "tracer.capture_lambda_handler" in code
