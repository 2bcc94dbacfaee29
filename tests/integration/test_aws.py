"""The AWS layer, end to end on moto (no AWS account, no Docker).

1. Handler level: the plan / worker / stitch handlers on a real clip in moto's S3 (the
   ThreadedMotoServer), driven like the state machine drives them; the loop guard (only
   ROOT/incoming/** starts jobs); a stitch that fails while publishing rolls its outputs
   back.
2. State machine level: moto's interpreter runs statemachine/blurfaces.asl.json (Distributed
   Map with ItemReader, Retry, Catch) with the real handlers behind its Lambda calls
   (see conftest.py). The plan handler starts the execution, as the S3 trigger does in AWS.
   Checked: a successful run (with one transient worker crash retried alone) and its
   "Job Succeeded" event, duplicate events, a chunk that keeps crashing (retried twice, then
   FAILED, nothing published, work area removed, failure report and "Job Failed" event), and
   an expected error (source deleted) that is not retried.
Unattended cases (corrupt upload, re-upload during a job, backfill, watch on S3) are in
test_aws_jobs.py.
"""
from __future__ import annotations

import csv
import io
import json
from fractions import Fraction

import av
import pytest

from tests.integration.helpers import (FUNCTIONS, INPUT_KEY, INPUT_KEY_ENCODED, OUT_PREFIX,
                                       REPORT_KEY, ROOT, WORK, call, keys, load_asl,
                                       load_event, load_template, put_event, upload,
                                       wait_execution)


# ------------------------------------------------------------------------------ helpers

def eventbridge_event(bucket: str, obj: dict, key: str, sequencer: str) -> dict:
    event = load_event("eventbridge-object-created.json")
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(key=key, etag=obj["etag"], size=obj["size"],
                                     sequencer=sequencer)
    event["detail"]["object"].pop("version-id", None)
    return event


def frame_times(path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Fraction(f.pts) * f.time_base for f in c.decode(s)]


def assert_outputs(aws, bucket: str, source_path, tmp_path) -> dict:
    """The published outputs exist, the video has the source's frames, timing and audio."""
    found = keys(aws, bucket, "anonymized/")
    expected = {f"{OUT_PREFIX}.mp4", f"{OUT_PREFIX}.csv", f"{OUT_PREFIX}_summary.json"}
    assert expected <= set(found), found
    assert all(k.startswith("anonymized/clips/") for k in found), found
    video = tmp_path / "out.mp4"
    aws.s3.download_file(bucket, f"{OUT_PREFIX}.mp4", str(video))
    src_t, out_t = frame_times(source_path), frame_times(video)
    assert len(out_t) == len(src_t) == 72
    rel_src = [t - src_t[0] for t in src_t]
    rel_out = [t - out_t[0] for t in out_t]
    assert max(abs(float(a - b)) for a, b in zip(rel_src, rel_out)) < 1e-3
    assert abs(float(out_t[0] - src_t[0])) < 1e-3
    with av.open(str(video)) as c:
        assert len(c.streams.audio) == 1
        audio_s = sum(fr.samples / fr.sample_rate for fr in c.decode(c.streams.audio[0]))
    assert abs(audio_s - float(src_t[-1] - src_t[0])) < 0.25
    body = aws.s3.get_object(Bucket=bucket, Key=f"{OUT_PREFIX}.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) > 0
    summary = json.loads(aws.s3.get_object(Bucket=bucket,
                                           Key=f"{OUT_PREFIX}_summary.json")["Body"].read())
    assert summary["counts"]["frames"] == 72
    assert summary["counts"]["chunks"] >= 2
    assert summary["video"]["audio_mode"]
    return summary


# ------------------------------------------------------------------------------ handlers

@pytest.mark.slow
def test_handlers_end_to_end(aws, single_face, tmp_path, monkeypatch):
    bucket = aws.server.new_bucket("bf-handlers")
    obj = upload(aws, bucket, single_face)
    event = put_event(bucket, obj)

    out = call("plan", event)
    (job,) = out["jobs"]
    assert job["status"] == "planned"          # no STATE_MACHINE_ARN: plan only
    inp = job["input"]
    work_prefix = f"{WORK}{job['job_id']}/"
    assert inp["work"] == f"s3://{bucket}/{work_prefix}"
    assert inp["source"] == f"s3://{bucket}/{INPUT_KEY}"   # the key was URL-decoded
    assert inp["chunks"] >= 2
    assert len(json.dumps(out)) < 2048                      # URIs only, never frames/rows
    items = json.loads(aws.s3.get_object(Bucket=bucket, Key=inp["items_key"])["Body"].read())
    # each item names the worker function its chunk runs on: a small clip, the one-vCPU one
    assert items == [{"work": inp["work"], "index": i, "worker": aws.function_arns["worker"]}
                     for i in range(inp["chunks"])]

    assert inp["outputs"]["video"] == f"s3://{bucket}/{OUT_PREFIX}.mp4"
    manifest = json.loads(aws.s3.get_object(Bucket=bucket,
                                            Key=f"{work_prefix}manifest.json")["Body"].read())
    head = aws.s3.head_object(Bucket=bucket, Key=INPUT_KEY)
    assert manifest["source_version"]["etag"] == head["ETag"].strip('"')   # pinned
    assert manifest["options"]["draw_heatmap"] is True      # the drop-folder layout's default

    # The same upload seen through EventBridge maps to the same job id.
    eb = eventbridge_event(bucket, obj, INPUT_KEY_ENCODED,
                           event["Records"][0]["s3"]["object"]["sequencer"])
    (again,) = call("plan", eb)["jobs"]
    assert again["job_id"] == job["job_id"] and again["input"] == inp

    # events/worker.json and stitch.json have the shapes the state machine sends.
    assert set(load_event("worker.json")) == set(items[0])
    assert set(load_event("stitch.json")) == {"work", "job_id", "source"}
    for item in items:                       # what the Distributed Map does
        res = call("worker", {**load_event("worker.json"), **item})
        assert res["index"] == item["index"] and res["frames"] > 0
        assert res["segment"].startswith(inp["work"]) and res["part"].startswith(inp["work"])
        assert len(json.dumps(res)) < 1024

    # A stitch that dies while publishing removes what it had published, and re-raises.
    from blurfaces import publish, storage as st
    published = []
    real_commit = publish.Publisher._commit_s3

    def publish_then_fail(self, items):
        # Dies after two uploads, without its own clean-up (as a killed Lambda would).
        for path, uri in items[:2]:
            st.get_storage(uri).upload(path, uri,
                                       metadata={publish.TOKEN_METADATA: self.token})
            published.append(uri)
        raise OSError("simulated failure while publishing")

    monkeypatch.setattr(publish.Publisher, "_commit_s3", publish_then_fail)
    with pytest.raises(OSError, match="simulated"):
        call("stitch", {**load_event("stitch.json"), "work": inp["work"]})
    assert len(published) == 2
    assert keys(aws, bucket, "anonymized/") == []
    monkeypatch.setattr(publish.Publisher, "_commit_s3", real_commit)

    stitch_event = {"work": inp["work"], "job_id": job["job_id"], "source": inp["source"]}
    res = call("stitch", stitch_event)              # the retry succeeds
    assert res["outputs"]["video"] == f"s3://{bucket}/{OUT_PREFIX}.mp4"
    assert res["work_cleaned"] is True and res["frames"] == 72
    assert len(json.dumps(res)) < 2048
    summary = assert_outputs(aws, bucket, single_face, tmp_path)
    assert summary["job"]["id"] == job["job_id"]
    assert summary["input_version"]["token"] == manifest["source_version"]["token"]
    assert f"{OUT_PREFIX}_heatmap.png" in keys(aws, bucket, "anonymized/")
    assert keys(aws, bucket, WORK) == []
    assert keys(aws, bucket, "incoming/") == [INPUT_KEY]      # the source is left alone
    # A retry of a stitch that had published and cleaned up (its reply lost) finishes
    # without work, from the published summary; it writes nothing.
    before = {k: aws.s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in keys(aws, bucket)}
    again = call("stitch", stitch_event)
    assert again["outputs"] == res["outputs"] and again["frames"] == 72
    assert {k: aws.s3.head_object(Bucket=bucket, Key=k)["ETag"]
            for k in keys(aws, bucket)} == before
    from blurfaces.errors import InputError
    with pytest.raises(InputError):                 # no such job: the manifest is missing
        call("stitch", {**stitch_event, "job_id": "other-job"})


def test_plan_ignores_keys_it_must_not_process(aws, monkeypatch):
    bucket = aws.server.new_bucket("bf-ignore")
    obj = {"etag": "0" * 32, "size": 1000}
    cases = {
        "elsewhere/video.mp4": "outside",
        "anonymized/clips/single+face_blurred.mp4": "outside",
        "failed/clips/single+face.mp4": "outside",
        ".blurfaces/work/job-1/segments/chunk-00000.mp4": "outside",
        "incoming/.blurfaces/x.mp4": "hidden folder",
        "incoming/notes.txt": "not a video",
        "incoming/clip.mp4.part": "temporary",
        "incoming/.clip.mp4": "hidden",
        "incoming/clip.mp4.blurfaces.json": "sidecar",
        "incoming/folder/": "folder marker",
    }
    for key, reason in cases.items():
        (job,) = call("plan", put_event(bucket, obj, key=key))["jobs"]
        assert job["status"] == "ignored" and reason in job["reason"], (key, job)
    (job,) = call("plan", put_event(bucket, obj, event_name="ObjectRemoved:Delete"))["jobs"]
    assert job["status"] == "ignored"
    (job,) = call("plan", put_event(bucket, {"etag": "x", "size": 0}))["jobs"]
    assert job["status"] == "ignored" and "empty" in job["reason"]
    # An event for an object that is not there (any more): nothing to do, nothing written.
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "ignored" and "replaced or deleted" in job["reason"]

    # Under a root prefix, only ROOT/incoming/ is input.
    monkeypatch.setenv("ROOT_PREFIX", "archive")
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "ignored" and "archive/incoming/" in job["reason"]
    assert keys(aws, bucket) == []          # nothing planned, nothing written

    from blurfaces.errors import OptionError
    monkeypatch.setenv("WORK_PREFIX", "archive/incoming/work/")
    with pytest.raises(OptionError, match="WORK_PREFIX"):
        call("plan", put_event(bucket, obj))


# ------------------------------------------------------------------------------ state machine

@pytest.mark.slow
def test_state_machine_end_to_end(aws, single_face, tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn)
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-sfn")
    obj = upload(aws, bucket, single_face)
    event = put_event(bucket, obj)

    crashed = set()

    def crash_chunk_1_once(ev):              # a transient crash: retried alone, then OK
        if ev.get("index") == 1 and 1 not in crashed:
            crashed.add(1)
            raise RuntimeError("simulated worker crash")

    aws.dispatcher.faults[FUNCTIONS["worker"]] = crash_chunk_1_once
    events = aws.job_events(bucket)

    (job,) = call("plan", event)["jobs"]
    assert job["status"] == "started"
    (dup,) = call("plan", event)["jobs"]     # at-least-once delivery: same event again
    assert dup["status"] == "duplicate" and dup["job_id"] == job["job_id"]

    desc = wait_execution(aws, job["execution_arn"])
    assert desc["status"] == "SUCCEEDED", desc
    result = json.loads(desc["output"])
    assert result["outputs"]["video"] == f"s3://{bucket}/{OUT_PREFIX}.mp4"
    assert result["frames"] == 72 and result["chunks"] == job["input"]["chunks"] >= 2
    assert len(desc["output"]) < 4096
    runs = aws.sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]
    assert [e["name"] for e in runs].count(job["job_id"]) == 1

    d = aws.dispatcher
    n = job["input"]["chunks"]
    assert d.count(FUNCTIONS["worker"], ok=True) == n
    assert d.count(FUNCTIONS["worker"], index=1) == 2          # crashed once, retried
    assert d.count(FUNCTIONS["worker"], index=0) == 1          # the others were not re-run
    assert d.count(FUNCTIONS["stitch"]) == 1
    assert d.count(FUNCTIONS["large_worker"]) == 0              # 640x360: the one-vCPU one
    summary = assert_outputs(aws, bucket, single_face, tmp_path)
    assert keys(aws, bucket, WORK) == []

    # One "Job Succeeded" event, with what a user routes on.
    (ev,) = events()
    assert ev["source"] == "blurfaces" and ev["detail-type"] == "Job Succeeded"
    det = ev["detail"]
    assert det["job_id"] == job["job_id"] and det["input"] == f"s3://{bucket}/{INPUT_KEY}"
    assert det["version"]["token"] == summary["input_version"]["token"]
    assert det["outputs"]["video"] == f"s3://{bucket}/{OUT_PREFIX}.mp4"
    assert det["outputs"]["summary"] == f"s3://{bucket}/{OUT_PREFIX}_summary.json"
    assert det["counts"]["frames"] == 72 and det["counts"]["detections"] > 0
    assert det["seconds"] > 0
    sample = aws.load_event("job-succeeded.json")           # the documented shape
    assert set(sample["detail"]) == set(det) and sample["detail-type"] == ev["detail-type"]

    # A late duplicate after the job finished: its result is there, nothing started or
    # written, no second event.
    (late,) = call("plan", event)["jobs"]
    assert late["status"] == "done" and late["job_id"] == job["job_id"]
    assert keys(aws, bucket, WORK) == [] and events() == []
    runs = aws.sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]
    assert [e["name"] for e in runs].count(job["job_id"]) == 1



@pytest.mark.slow
def test_frames_the_first_worker_cannot_hold_run_on_the_large_one(aws, single_face, tmp_path,
                                                                  monkeypatch):
    """Plan sends a job whose frames the first worker's memory cannot hold to the large
    worker: its items name that function, the state machine (this repo's definition, which
    invokes each item's "worker") runs every chunk there, and the summary's cost is that of
    its memory. The single-face clip is 640x360: by sizing's line a worker needs about 743 MB
    for it, so one of 512 MB is too small."""
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn)
    monkeypatch.setenv("WORKER_MEMORY_MB", "512")
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-large")
    obj = upload(aws, bucket, single_face)
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "started", job
    desc = wait_execution(aws, job["execution_arn"])
    assert desc["status"] == "SUCCEEDED", desc
    d, n = aws.dispatcher, job["input"]["chunks"]
    assert d.count(FUNCTIONS["large_worker"], ok=True) == n >= 2
    assert d.count(FUNCTIONS["worker"]) == 0
    with d._lock:
        named = {c["event"].get("worker") for c in d.calls
                 if c["function"] == FUNCTIONS["large_worker"]}
    assert named == {aws.function_arns["large_worker"]}
    summary = assert_outputs(aws, bucket, single_face, tmp_path)
    assert summary["cost"]["worker_memory_mb"] == 5307
    assert keys(aws, bucket, WORK) == []

@pytest.mark.slow
def test_state_machine_chunk_keeps_failing(aws, single_face, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn)
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-fail")
    obj = upload(aws, bucket, single_face)

    def crash_chunk_1(ev):
        if ev.get("index") == 1:
            raise RuntimeError("simulated worker crash")

    aws.dispatcher.faults[FUNCTIONS["worker"]] = crash_chunk_1
    events = aws.job_events(bucket)
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "started"
    desc = wait_execution(aws, job["execution_arn"])
    assert desc["status"] == "FAILED", desc

    # In AWS the Map itself fails (a failed child exceeds the default tolerated failure of
    # 0 %: States.ExceedToleratedFailureThreshold). moto 5.2.5's Distributed Map does not
    # enforce that and reports success, so the run reaches Stitch, which refuses to publish
    # with a chunk missing (ChunkError). Either way: Catch -> Abort -> FAILED, nothing left.
    assert desc["error"] in ("States.ExceedToleratedFailureThreshold", "ChunkError"), desc
    d = aws.dispatcher
    assert d.count(FUNCTIONS["worker"], index=1) == 3      # 1 try + 2 retries
    assert d.count(FUNCTIONS["worker"], index=0) == 1      # the good chunk ran once
    assert d.count(FUNCTIONS["stitch"], action="abort") == 1
    assert d.count(FUNCTIONS["stitch"], action=None, ok=True) == 0
    assert keys(aws, bucket, "anonymized/") == []
    assert keys(aws, bucket, WORK) == []
    assert keys(aws, bucket) == [REPORT_KEY, INPUT_KEY]
    report = json.loads(aws.s3.get_object(Bucket=bucket, Key=REPORT_KEY)["Body"].read())
    assert report["job_id"] == job["job_id"] and report["input"] == f"s3://{bucket}/{INPUT_KEY}"
    assert report["stage"] == "worker" and report["chunk"] == 1    # the chunk with no result
    # The crash happened outside the handler (as an out-of-memory kill would): the report
    # carries the state machine's error.
    assert report["error_type"] == desc["error"] and report["what_to_do"]
    assert report["version"]["etag"] == obj["etag"]
    (ev,) = events()
    assert ev["detail-type"] == "Job Failed"
    assert ev["detail"]["report"] == f"s3://{bucket}/{REPORT_KEY}"
    assert ev["detail"]["job_id"] == job["job_id"] and ev["detail"]["chunk"] == 1
    # The failed version is not started again by a redelivered event: its report is there.
    (again,) = call("plan", put_event(bucket, obj))["jobs"]
    assert again["status"] == "done" and again["report"] == f"s3://{bucket}/{REPORT_KEY}"


def test_state_machine_expected_error_is_not_retried(aws, single_face, monkeypatch):
    """Every chunk's data is corrupt (an InputError inside the worker): no retries, FAILED,
    clean, and the report carries the chunk's own error."""
    from blurfaces import stages
    from blurfaces.errors import InputError
    aws.dispatcher.reset()
    bucket = aws.server.new_bucket("bf-corrupt-chunk")
    obj = upload(aws, bucket, single_face)
    (job,) = call("plan", put_event(bucket, obj))["jobs"]    # plan only (no STATE_MACHINE_ARN)
    assert job["status"] == "planned"

    def corrupt(manifest, index, **kw):
        raise InputError(f"{manifest['source']}: video data is corrupt or truncated after "
                         "12 frames (Invalid data found when processing input).")
    monkeypatch.setattr(stages, "worker", corrupt)
    arn = aws.sfn.start_execution(stateMachineArn=aws.state_machine_arn, name=job["job_id"],
                                  input=json.dumps(job["input"]))["executionArn"]
    desc = wait_execution(aws, arn)
    assert desc["status"] == "FAILED", desc

    assert desc["error"] in ("States.ExceedToleratedFailureThreshold", "ChunkError"), desc
    d = aws.dispatcher
    n = job["input"]["chunks"]
    assert d.count(FUNCTIONS["worker"]) == n                 # each chunk tried once
    assert all(c["error"] == "InputError" for c in d.calls
               if c["function"] == FUNCTIONS["worker"])
    assert d.count(FUNCTIONS["stitch"], action="abort") == 1
    assert keys(aws, bucket) == [REPORT_KEY, INPUT_KEY]
    report = json.loads(aws.s3.get_object(Bucket=bucket, Key=REPORT_KEY)["Body"].read())
    # The report names the chunk's own error (not the Map's or stitch's follow-up error).
    assert report["stage"] == "worker" and report["chunk"] == 0, report
    assert report["error_type"] == "InputError" and "corrupt" in report["message"], report
    assert report["what_to_do"].startswith("Check or replace the input")


# ------------------------------------------------------------------------------ deployment files

@pytest.mark.slow
def test_template_passes_cfn_lint():
    import os
    from pathlib import Path

    import cfnlint.api
    matches = cfnlint.api.lint_file(Path(os.path.join(ROOT, "template.yaml")))
    assert [str(m) for m in matches] == []


@pytest.mark.slow
def test_state_machine_definition_passes_cfn_lint():
    """cfn-lint does not read DefinitionUri files: lint the ASL inline (rule E3601)."""
    import cfnlint.api
    subs = load_template()["Resources"]["JobStateMachine"]["Properties"]["DefinitionSubstitutions"]
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"SM": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/sfn", "Definition": load_asl(),
                       "DefinitionSubstitutions": {k: f"arn:aws:lambda:us-east-1:123456789012:"
                                                   f"function:{k}" for k in subs}}}}}
    assert [str(m) for m in cfnlint.api.lint(json.dumps(template))] == []


def test_template_wiring():
    """Substitutions match the ASL's placeholders, every Next/Catch target exists, each
    function's image command names a real handler, the Map reads items and drops results."""
    import importlib
    import re

    template, asl = load_template(), load_asl()
    res = template["Resources"]
    subs = res["JobStateMachine"]["Properties"]["DefinitionSubstitutions"]
    with open(f"{ROOT}/statemachine/blurfaces.asl.json", encoding="utf-8") as f:
        placeholders = set(re.findall(r"\$\{(\w+)\}", f.read()))
    assert placeholders == set(subs)
    assert res["JobStateMachine"]["Properties"]["DefinitionUri"] == "statemachine/blurfaces.asl.json"

    def check(states: dict):
        for name, state in states.items():
            targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
            for t in filter(None, targets):
                assert t in states, f"{name} -> {t}: no such state"
            if "ItemProcessor" in state:
                check(state["ItemProcessor"]["States"])
    check(asl["States"])
    chunks = asl["States"]["Chunks"]
    assert chunks["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert chunks["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert chunks["ResultPath"] is None
    # both passes over the chunks invoke the worker function each item names (plan's
    # choice: sizing.choose_worker), with the item as its event; no ItemSelector reshapes the
    # item on the way (moto never runs the second pass: its Map does not fail)
    for name in ("Chunks", "ChunksSecondPass"):
        state = asl["States"][name]
        assert "ItemSelector" not in state and "ItemReader" in state
        worker = state["ItemProcessor"]["States"]["Worker"]
        assert worker["Resource"] == "arn:aws:states:::lambda:invoke"
        assert worker["Parameters"] == {"FunctionName.$": "$.worker", "Payload.$": "$"}
    invokable = {p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
                 for p in res["JobStateMachine"]["Properties"]["Policies"]
                 if "LambdaInvokePolicy" in p}
    assert invokable == {"WorkerFunction", "LargeWorkerFunction", "StitchFunction"}
    plan_env = res["PlanFunction"]["Properties"]["Environment"]["Variables"]
    assert plan_env["WORKER_FUNCTION"] == {"Fn::GetAtt": ["WorkerFunction", "Arn"]}
    assert plan_env["LARGE_WORKER_FUNCTION"] == {"Fn::GetAtt": ["LargeWorkerFunction", "Arn"]}

    for logical, stage in (("PlanFunction", "plan"), ("WorkerFunction", "worker"),
                           ("LargeWorkerFunction", "worker"), ("StitchFunction", "stitch")):
        props = res[logical]["Properties"]
        assert props["PackageType"] == "Image"
        (command,) = props["ImageConfig"]["Command"]
        module, func = command.rsplit(".", 1)
        assert module == f"functions.{stage}.app"
        assert callable(getattr(importlib.import_module(module), func))
        assert res[logical]["Metadata"]["Dockerfile"] == "Dockerfile"
        assert props["Timeout"] <= 900
    assert res["WorkerFunction"]["Properties"]["Timeout"] == 900
    # the two workers are one image at two sizes: everything but the memory, the name and
    # the log group (and the first's optional reserved concurrency) is the same
    small, large = (dict(res[n]["Properties"]) for n in ("WorkerFunction", "LargeWorkerFunction"))
    for props in (small, large):
        for key in ("MemorySize", "FunctionName", "LoggingConfig", "Description",
                    "ReservedConcurrentExecutions"):
            props.pop(key, None)
    assert small == large
    assert res["WorkerFunction"]["Metadata"] == res["LargeWorkerFunction"]["Metadata"]


def test_handlers_are_thin():
    """Issue 9: each handler is event parsing plus calls into the core, under 60 lines, and
    holds no job rule of its own (no extension lists, job ids, output names or prefixes)."""
    import os
    import re
    for stage in ("plan", "worker", "stitch"):
        with open(os.path.join(ROOT, "functions", stage, "app.py"), encoding="utf-8") as f:
            text = f.read()
        assert len(text.splitlines()) < 60, stage
        code = re.sub(r'""".*?"""', "", text, flags=re.S)
        for rule in ("VIDEO_EXTS", ".mp4", "sha256", "_blurred", "incoming/", "anonymized/",
                     "failed/", "boto3", "start_execution", "put_events", "os.environ"):
            assert rule not in code, (stage, rule)
