"""Unattended jobs on AWS, on moto's server (S3, Step Functions interpreter, EventBridge,
SQS) with the real handlers (see conftest.py):

* a corrupt upload and a bad sidecar become failed/<name>.json and a "Job Failed" event,
  with no exception into Lambda's retries and no execution;
* (re-uploads while a job runs, only the current version published: test_aws_versions.py);
* backfill of 50 objects, a bounded number of starts per call, nothing new on re-run;
* `blurfaces watch s3://bucket/root/ --once` (the CLI in a subprocess).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from blurfaces import jobs, storage as st
from blurfaces.outputs import output_names
from tests.integration.helpers import WORK, keys, put, read_json, s3_event


@pytest.fixture(scope="module")
def clips(synth_clip_factory):
    """Two small clips that differ in frame count and size."""
    a = synth_clip_factory(size=(320, 180), seconds=0.8, audio=True)
    b = synth_clip_factory(size=(384, 216), seconds=0.5, audio=True, seed=1)
    return a, b


# ------------------------------------------------------------------------------ samples

def test_sample_events_parse(aws):
    from blurfaces import aws as core
    uri = "s3://blurfaces-example-bucket/incoming/clips/single face.mp4"
    (n,) = core.uploads(aws.load_event("s3-put.json"))
    (e,) = core.uploads(aws.load_event("eventbridge-object-created.json"))
    (d,) = core.uploads(aws.load_event("direct.json"))
    assert n == e and n.uri == d.uri == uri and n.version_id and n.created
    assert set(aws.load_event("backfill.json")) <= {"backfill", "limit", "after", "rerun",
                                                   "options", "follow"}
    abort = aws.load_event("abort.json")
    assert abort["source"] == uri and core.state_error(abort["error"])[0] == "InputError"
    assert "changed" in core.state_error(abort["error"])[1]


@pytest.mark.slow
def test_core_loads_no_aws_library():
    code = ("import sys, blurfaces.aws, blurfaces.jobs; "
            "print([m for m in ('boto3', 'botocore', 'aws_lambda_powertools') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"


def test_option_layers(monkeypatch):
    """defaults < drop-folder layout < environment < event < sidecar, one definition each."""
    from blurfaces import aws as core
    from blurfaces.errors import OptionError
    for k in ("BLURFACES_OPTIONS", "BLURFACES_MASK", "BLURFACES_CHUNK_SECONDS",
              "BLURFACES_DRAW_HEATMAP", "BLURFACES_THRESHOLD"):
        monkeypatch.delenv(k, raising=False)
    opts, cut = core.job_options()
    assert opts.draw_heatmap is True and opts.mask == "blur"            # layout default
    assert cut == {"chunk_seconds": 30.0, "chunks": None}
    assert core.job_options(None, {"chunks": 3})[1] == {"chunk_seconds": None, "chunks": 3}
    monkeypatch.setenv("BLURFACES_OPTIONS", '{"mask": "rectangle", "threshold": 0.5}')
    monkeypatch.setenv("BLURFACES_MASK", "mosaic")
    monkeypatch.setenv("BLURFACES_DRAW_HEATMAP", "false")
    monkeypatch.setenv("BLURFACES_CHUNK_SECONDS", "12")
    opts, cut = core.job_options()
    assert (opts.mask, opts.score_threshold, opts.draw_heatmap) == ("mosaic", 0.5, False)
    assert cut["chunk_seconds"] == 12.0
    opts, cut = core.job_options({"mask": "none", "crf": 30}, {"mask": "blur"}, 4)
    assert (opts.mask, opts.crf, cut["chunk_seconds"]) == ("blur", 30, 4.0)
    with pytest.raises(OptionError, match="sparkles"):
        core.job_options({"mask": "sparkles"})
    monkeypatch.setenv("BLURFACES_THRESHOLD", "lots")
    with pytest.raises(OptionError, match="BLURFACES_THRESHOLD"):
        core.job_options()


# ------------------------------------------------------------------------------ failures

def test_corrupt_upload_gets_report_and_event(aws, clips, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", aws.state_machine_arn)
    bucket = aws.server.new_bucket("bf-corrupt")
    events = aws.job_events(bucket)
    key = "incoming/day 1/bad clip.mp4"
    obj = put(aws, bucket, key, data=b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))

    (job,) = aws.call("plan", s3_event(aws, bucket, key, obj))["jobs"]   # does not raise
    assert job["status"] == "failed" and job["error_type"] == "InputError", job
    report_key = "failed/day 1/bad clip.mp4.json"
    assert job["report"] == f"s3://{bucket}/{report_key}"
    report = read_json(aws, bucket, report_key)
    assert report["input"] == f"s3://{bucket}/{key}" and report["stage"] == "plan"
    assert report["job_id"] == job["job_id"] and report["error_type"] == "InputError"
    assert report["version"]["etag"] == obj["etag"] and report["message"]
    assert report["what_to_do"].startswith("Check or replace the input")
    (ev,) = events()
    assert ev["source"] == "blurfaces" and ev["detail-type"] == "Job Failed"
    assert ev["detail"]["job_id"] == job["job_id"] and ev["detail"]["stage"] == "plan"
    assert ev["detail"]["report"] == job["report"] and ev["detail"]["input"] == report["input"]
    sample = aws.load_event("job-failed.json")              # the documented shape
    assert (sample["source"], sample["detail-type"]) == (ev["source"], ev["detail-type"])
    assert set(sample["detail"]) == set(ev["detail"])
    names = [e["name"] for e in
             aws.sfn.list_executions(stateMachineArn=aws.state_machine_arn)["executions"]]
    assert job["job_id"] not in names                   # no execution for it
    assert keys(aws, bucket) == [report_key, key]       # no work area, no outputs

    # Redelivery of the event: the report for this version is there, nothing new.
    (again,) = aws.call("plan", s3_event(aws, bucket, key, obj))["jobs"]
    assert again["status"] == "done" and events() == []

    # A bad sidecar is the video's failure too (an OptionError naming the file).
    good = "incoming/day 1/good.mp4"
    put(aws, bucket, good + ".blurfaces.json", data=b'{"mask": "sparkles"}')
    gobj = put(aws, bucket, good, clips[0]["path"])
    (job2,) = aws.call("plan", s3_event(aws, bucket, good, gobj))["jobs"]
    assert job2["status"] == "failed" and job2["error_type"] == "OptionError"
    assert "sparkles" in read_json(aws, bucket, "failed/day 1/good.mp4.json")["message"]
    assert [e["detail"]["job_id"] for e in events()] == [job2["job_id"]]
    assert keys(aws, bucket, WORK) == [] and keys(aws, bucket, "anonymized/") == []


# ------------------------------------------------------------------------------ backfill

@pytest.mark.slow
def test_backfill_50_objects_paged_parallel_and_idempotent(aws, clips, monkeypatch):
    # A state machine that only records its executions: this test is about which jobs
    # start (the full pipeline runs in the other tests).
    recorder = aws.sfn.create_state_machine(
        name=f"recorder-{time.time_ns()}", roleArn=aws.role_arn, type="STANDARD",
        definition=json.dumps({"StartAt": "Done", "States": {
            "Done": {"Type": "Pass", "End": True}}}))["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", recorder)
    monkeypatch.setenv("BACKFILL_CONCURRENCY", "4")
    bucket = aws.server.new_bucket("bf-backfill")
    events = aws.job_events(bucket)
    with open(clips[1]["path"], "rb") as f:
        data = f.read()
    inputs = [f"incoming/archive/{k // 10}/clip {k:02d}.mp4" for k in range(50)]
    for k in inputs:
        put(aws, bucket, k, data=data)
    put(aws, bucket, "incoming/archive/broken.mp4", data=b"not a video at all" * 50)
    for other in ("incoming/archive/notes.txt", "incoming/.hidden/x.mp4",
                  "anonymized/archive/old_blurred.mp4", "failed/archive/y.mp4"):
        put(aws, bucket, other, data=data)

    # One page of 20 keys per call (StartAfter the last one: the prefix is never listed
    # again from the start), each page's inputs planned 4 at a time.
    calls, started, event = [], [], {"backfill": f"s3://{bucket}/incoming/", "limit": 20}
    while event is not None:
        res = aws.call("plan", event)
        calls.append(res)
        started += res["started"]
        event = res["next"]
    assert [r["counts"]["listed"] for r in calls] == [20, 20, 13]     # 53 keys in incoming/
    assert sum(r["counts"].get("failed", 0) for r in calls) == 1     # broken.mp4: a report
    assert keys(aws, bucket, "failed/") == ["failed/archive/broken.mp4.json",
                                            "failed/archive/y.mp4"]
    expected = set()
    for k in inputs:
        uri = f"s3://{bucket}/{k}"
        expected.add(jobs.job_id(uri, st.get_storage(uri).stat(uri)))
    assert set(started) == expected and len(started) == 50
    runs = aws.sfn.list_executions(stateMachineArn=recorder, maxResults=1000)["executions"]
    assert sorted(e["name"] for e in runs) == sorted(expected)
    one = read_json(aws, bucket, f"{WORK}{started[0]}/manifest.json")
    assert one["source_version"]["etag"] and one["job"]["id"] == started[0]
    assert [e["detail"]["input"] for e in events()] == \
        [f"s3://{bucket}/incoming/archive/broken.mp4"]

    # Re-run: nothing new starts; all 50 are known executions, the broken one is reported.
    again = aws.call("plan", {"backfill": f"s3://{bucket}/incoming/archive/"})
    assert again["started"] == [] and again["next"] is None
    assert again["counts"] == {"listed": 52, "duplicate": 50, "done": 1}
    assert len(aws.sfn.list_executions(stateMachineArn=recorder,
                                       maxResults=1000)["executions"]) == 50
    from blurfaces.errors import OptionError
    with pytest.raises(OptionError, match="incoming/"):
        aws.call("plan", {"backfill": f"s3://{bucket}/anonymized/"})

    # "follow": one event walks the whole prefix, the function invoking itself
    # asynchronously (through moto's Lambda) with each next event.
    later = [f"incoming/later/clip {k}.mp4" for k in range(5)]
    for k in later:
        put(aws, bucket, k, data=data)
    aws.dispatcher.reset()
    res = aws.call("plan", {"backfill": f"s3://{bucket}/incoming/later/", "limit": 2,
                            "follow": True})
    assert len(res["started"]) == 2 and res["followed"] is True
    plan_calls = [c for c in aws.dispatcher.calls if c["function"] == aws.functions["plan"]]
    assert [c["event"].get("follow") for c in plan_calls] == [True, True]   # 2 more calls
    assert all(c["ok"] for c in plan_calls)
    runs = aws.sfn.list_executions(stateMachineArn=recorder, maxResults=1000)["executions"]
    assert len(runs) == 55


@pytest.mark.slow
def test_backfill_of_thousands_of_objects_fans_out_through_the_queue(aws, monkeypatch):
    """1,200 objects in pages of 500 (CI's share of the 10,000-object case): each
    call lists one page (StartAfter) and sends one upload-queue message per input (plan
    consumes the queue PlanConcurrency at a time); a message is what a queue consumer plans
    (see test_plan_reads_uploads_from_the_queue)."""
    from concurrent.futures import ThreadPoolExecutor
    bucket = aws.server.new_bucket("bf-backfill-10k")
    url = aws.sqs.create_queue(QueueName=f"bf-uploads-{time.time_ns()}")["QueueUrl"]
    monkeypatch.setenv("UPLOAD_QUEUE_URL", url)
    monkeypatch.setenv("BACKFILL_LIMIT", "500")
    names = [f"incoming/a/{k:05d}.mp4" for k in range(1_200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: aws.s3.put_object(Bucket=bucket, Key=k, Body=b"x"), names))
    calls, event = 0, {"backfill": f"s3://{bucket}/incoming/"}
    t0 = time.perf_counter()
    while event is not None:
        res = aws.call("plan", event)
        calls += 1
        n = 500 if calls < 3 else 200
        assert res["counts"] == {"listed": n, "queued": n} and res["started"] == []
        event = res["next"]
    seconds = time.perf_counter() - t0
    assert calls == 3
    attrs = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) == 1_200
    got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    assert json.loads(got[0]["Body"])["source"].startswith(f"s3://{bucket}/incoming/a/")
    print(f"backfill of 1,200 keys: {seconds:.1f} s to list and queue on moto")


# ------------------------------------------------------------------------------ watch

@pytest.mark.slow
def test_watch_s3_once_cli(aws, clips):
    bucket = aws.server.new_bucket("bf-watch")
    root = f"s3://{bucket}/drop/"
    a, b = clips
    put(aws, bucket, "drop/incoming/a.mp4", a["path"])
    put(aws, bucket, "drop/incoming/sub/b.mp4", b["path"])
    put(aws, bucket, "drop/incoming/bad.mp4", data=b"\x00" * 3000)
    put(aws, bucket, "drop/incoming/notes.txt", data=b"hello")
    before = keys(aws, bucket, "drop/incoming/")
    env = {**os.environ, **aws.server.env()}
    cmd = [sys.executable, "-m", "blurfaces", "watch", root, "--once", "--json",
           "--workers", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr                  # --once with a failure
    assert "Traceback" not in p.stderr
    rows = {json.loads(line)["input"]: json.loads(line) for line in p.stdout.splitlines()}
    assert {k: r["status"] for k, r in rows.items()} == {
        f"{root}incoming/a.mp4": "done", f"{root}incoming/sub/b.mp4": "done",
        f"{root}incoming/bad.mp4": "failed"}
    out = keys(aws, bucket, "drop/anonymized/")
    for stem, clip in (("drop/anonymized/a", a), ("drop/anonymized/sub/b", b)):
        assert {f"{stem}_blurred.mp4", f"{stem}_blurred.csv", f"{stem}_blurred_summary.json",
                f"{stem}_blurred_heatmap.png", f"{stem}_blurred_review.html"} <= set(out)
        s = read_json(aws, bucket, f"{stem}_blurred_summary.json")
        assert s["counts"]["frames"] == len(clip["pts"])
    report = read_json(aws, bucket, "drop/failed/bad.mp4.json")
    assert report["error_type"] == "InputError"
    assert keys(aws, bucket, "drop/incoming/") == before          # S3 inputs stay
    assert keys(aws, bucket, "drop/.blurfaces/") == []            # claims released

    # Once more: everything is done for these versions, nothing is redone or rewritten.
    stamps = {k: aws.s3.head_object(Bucket=bucket, Key=k)["LastModified"] for k in out}
    p2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p2.returncode == 0, p2.stderr
    assert p2.stdout.strip() == ""
    assert {k: aws.s3.head_object(Bucket=bucket, Key=k)["LastModified"] for k in out} == stamps


@pytest.mark.slow
def test_watch_s3_two_watchers_and_kill_9(aws, clips):
    """Two watchers on one S3 drop folder process each object once; a watcher killed with
    SIGKILL mid-job leaves a claim that the next watcher on this machine takes over at once
    (its owner is dead), and the job is done exactly once."""
    import signal
    import time
    bucket = aws.server.new_bucket("bf-watch2")
    root = f"s3://{bucket}/drop/"
    a, _ = clips
    for i in range(4):
        put(aws, bucket, f"drop/incoming/v{i}.mp4", a["path"])
    env = {**os.environ, **aws.server.env()}
    cmd = [sys.executable, "-m", "blurfaces", "watch", root, "--once", "--json",
           "--workers", "1", "--detect-size", "320"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    rows = [json.loads(ln) for out, _ in outs for ln in out.splitlines() if ln.strip()]
    assert sorted(r["input"] for r in rows) == [f"{root}incoming/v{i}.mp4" for i in range(4)]
    assert all(r["status"] == "done" for r in rows)

    put(aws, bucket, "drop/incoming/late.mp4", a["path"])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    deadline = time.monotonic() + 120
    while not keys(aws, bucket, "drop/.blurfaces/") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keys(aws, bucket, "drop/.blurfaces/"), "the watcher never claimed the object"
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    p2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p2.returncode == 0, p2.stderr
    (row,) = [json.loads(ln) for ln in p2.stdout.splitlines() if ln.strip()]
    assert row["input"] == f"{root}incoming/late.mp4" and row["status"] == "done"
    assert row["frames"] == len(a["pts"])
    assert keys(aws, bucket, "drop/.blurfaces/") == []
    assert not any("_blurred_1" in k for k in keys(aws, bucket, "drop/anonymized/"))


@pytest.mark.slow
def test_stitch_reads_segments_from_s3_in_place(aws, clips, monkeypatch):
    """Stitch never copies the segments to local disk (its /tmp holds only the output):
    with downloads made impossible it still produces the complete, self-checked video."""
    from blurfaces import stages, storage as st
    from blurfaces.options import Options
    bucket = aws.server.new_bucket("bf-inplace")
    a, _ = clips
    put(aws, bucket, "in/a.mp4", a["path"])
    work = f"s3://{bucket}/work/job/"
    outputs = output_names(f"s3://{bucket}/out/a_blurred.mp4")
    m = stages.plan(f"s3://{bucket}/in/a.mp4", outputs=outputs,
                    options=Options(detect_size=320), work=work, chunks=3)
    for c in m["chunks"]:
        stages.worker(m, c["index"], threads=1)

    def no_download(self, uri, local_path):
        raise AssertionError(f"stitch downloaded {uri}")

    monkeypatch.setattr(st.S3Storage, "download", no_download)
    summary = stages.stitch(m)
    assert summary["counts"]["frames"] == len(a["pts"]) and summary["counts"]["chunks"] == 3
    assert summary["verified"]["frames"] == len(a["pts"])
    assert "out/a_blurred.mp4" in keys(aws, bucket, "out/")


def test_chunk_length_a_worker_finishes_follows_frame_size_and_vcpus():
    """720 s of the 900 s timeout, 3x the measured 0.11 CPU s per megapixel (1.65x that above
    1080p), less the chunk's margins (tracking, a small face's hold and the reuse period:
    stages.margins)."""
    from blurfaces import aws as core, stages
    from blurfaces.options import Options
    margin = sum(stages.margins(Options(), frame=(1920, 1080)))
    # 5.8 s before the chunk (small_lead 1.0 s; eight looks of the regions, 64 frames at 30
    # fps: two for their evidence, six for the faces followed by their picture), 1.15 after
    assert 6.9 < margin < 7.1
    # above 1080p no faces are followed (follow.MOST_PIXELS): 1.6 s less before the chunk
    large = sum(stages.margins(Options(), frame=(2560, 1440)))
    assert abs(margin - large - 6 * 8 / 30) < 1e-6
    s1080 = core.worker_chunk_seconds(1920, 1080, 30, 1769)
    assert abs(s1080 - (720 / (0.11 * 1920 * 1080 / 1e6 * 3) / 30 - margin)) < 0.1
    assert abs(core.worker_chunk_seconds(1280, 720, 30, 1769)
               - (720 / (0.11 * 1280 * 720 / 1e6 * 3) / 30 - margin)) < 0.1
    # above 1080p a megapixel costs 1.65x (4K: 2.9 looks of the regions a pixel, not 1.7)
    assert abs(core.worker_chunk_seconds(3840, 2160, 30, 5307)
               - (720 / (0.11 * 1.65 * 3840 * 2160 / 1e6 * 3 / 2.2) / 30 - large)) < 0.1
    # 2 vCPUs run a chunk 1.6x as fast as one (sizing.TWO_VCPU_SPEEDUP), not 2x
    s2 = core.worker_chunk_seconds(1920, 1080, 30, 3538)
    assert abs(s2 + margin - 1.6 * (s1080 + margin)) < 0.1
    assert core.worker_chunk_seconds(1920, 1080, 60, 1769) < s1080 / 2     # 60 fps
    # slower option sets get shorter chunks; a header's bogus 1000 fps counts as 120
    from blurfaces.options import Options
    assert core.worker_chunk_seconds(1280, 720, 30, 3538, Options(precision="fp32")) < \
        core.worker_chunk_seconds(1280, 720, 30, 3538, Options()) < \
        core.worker_chunk_seconds(1280, 720, 30, 3538, Options(quality="fast"))
    assert core.worker_chunk_seconds(1280, 720, 1000, 3538) == \
        core.worker_chunk_seconds(1280, 720, 120, 3538) > 1.0
