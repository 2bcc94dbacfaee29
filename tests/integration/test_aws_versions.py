"""Only the current version of an input is ever published (issue 16, defects 1-4), on moto's
S3 server with the real handlers and the real S3 commit path (publish.Publisher._commit_s3),
on versioned and unversioned buckets:

1. an older job finishing last publishes nothing ("Job Superseded"), the newer result stays;
2. a late event for a replaced version starts nothing;
3. two stitches of one key at once publish one whole set (the S3 publish lock), never a mix;
4. a failed publish leaves the previous result whole (its exact versions deleted, no delete
   marker) on a versioned bucket, and no stale "complete" marker on an unversioned one.
"""
from __future__ import annotations

import json
import threading
import time

import pytest

from blurfaces import publish, storage as st
from tests.integration.helpers import (keys, put, read_json, s3_event, video_of,
                                       wait_execution)

OUT = "anonymized/cam/clip_blurred"
KEY = "incoming/cam/clip.mp4"


@pytest.fixture(scope="module")
def clips(synth_clip_factory):
    a = synth_clip_factory(size=(320, 180), seconds=0.8, audio=True)
    b = synth_clip_factory(size=(384, 216), seconds=0.5, audio=True, seed=1)
    return a, b


def bucket_of(aws, versioned: bool) -> str:
    b = aws.server.new_bucket("bf-ver" if versioned else "bf-unver")
    if versioned:
        aws.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    return b


def plan(aws, bucket, key, obj, **extra) -> dict:
    event = s3_event(aws, bucket, key, obj) if obj else {"source": f"s3://{bucket}/{key}",
                                                         **extra}
    (job,) = aws.call("plan", event)["jobs"]
    assert job["status"] == "planned", job
    return job


def work(aws, job) -> None:
    for item in read_json(aws, job["input"]["bucket"], job["input"]["items_key"]):
        aws.call("worker", item)


def stitch(aws, job) -> dict:
    return aws.call("stitch", {"work": job["input"]["work"], "job_id": job["job_id"],
                               "source": job["input"]["source"]})


def token_of(aws, bucket, key) -> str:
    return aws.s3.head_object(Bucket=bucket, Key=key)["Metadata"].get(publish.TOKEN_METADATA)


def delete_markers(aws, bucket, prefix) -> list:
    return [m["Key"] for m in aws.s3.list_object_versions(
        Bucket=bucket, Prefix=prefix).get("DeleteMarkers", [])]


@pytest.mark.slow
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_older_job_finishing_last_publishes_nothing(aws, clips, tmp_path, versioned):
    """Defect 1: v1 planned and processed, v2 uploaded, planned, published; job A (v1)
    stitches last: nothing published, "Job Superseded", v2's result stays; v2's event
    redelivered is "done"."""
    a, b = clips
    bucket = bucket_of(aws, versioned)
    events = aws.job_events(bucket)
    v1 = put(aws, bucket, KEY, a["path"])
    job_a = plan(aws, bucket, KEY, v1)
    work(aws, job_a)
    v2 = put(aws, bucket, KEY, b["path"])
    job_b = plan(aws, bucket, KEY, v2)
    work(aws, job_b)
    assert stitch(aws, job_b)["status"] == "succeeded"
    res = stitch(aws, job_a)
    assert res["status"] == "superseded" and res["outputs"] is None, res
    assert video_of(aws, bucket, f"{OUT}.mp4", tmp_path) == (len(b["pts"]), 384, 216)
    summary = read_json(aws, bucket, f"{OUT}_summary.json")
    assert summary["job"]["id"] == job_b["job_id"]
    assert {token_of(aws, bucket, k) for k in keys(aws, bucket, "anonymized/")} == \
        {job_b["job_id"]}
    assert keys(aws, bucket, "failed/") == [] and keys(aws, bucket, ".blurfaces/") == []
    assert [e["detail-type"] for e in events()] == ["Job Succeeded", "Job Superseded"]
    (again,) = aws.call("plan", s3_event(aws, bucket, KEY, v2))["jobs"]
    assert again["status"] == "done"
    if versioned:
        assert delete_markers(aws, bucket, "anonymized/") == []


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_late_event_for_a_replaced_version_starts_nothing(aws, clips, versioned):
    """Defect 2: the event of v1, delivered after v2 was uploaded, is ignored (its version
    id, or its ETag, is no longer the current object's)."""
    a, b = clips
    bucket = bucket_of(aws, versioned)
    v1 = put(aws, bucket, KEY, a["path"])
    put(aws, bucket, KEY, b["path"])
    (late,) = aws.call("plan", s3_event(aws, bucket, KEY, v1))["jobs"]
    assert late["status"] == "ignored" and "replaced" in late["reason"], late
    assert keys(aws, bucket, ".blurfaces/") == []


@pytest.mark.slow
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_two_stitches_of_one_key_publish_one_whole_set(aws, clips, monkeypatch, versioned):
    """Defect 3: two jobs of the current version (a rerun beside the first) stitch at once,
    each upload slowed so that unlocked commits interleave: the published set is one job's,
    whole (video, CSV, heatmap and summary carry the same publish token)."""
    a, _ = clips
    bucket = bucket_of(aws, versioned)
    put(aws, bucket, KEY, a["path"])
    jobs = [plan(aws, bucket, KEY, None, rerun=str(k)) for k in (1, 2)]
    for job in jobs:
        work(aws, job)
    real = st.S3Storage.put_file

    def slow_put_file(self, local_path, uri, **kw):
        time.sleep(0.4)
        return real(self, local_path, uri, **kw)
    monkeypatch.setattr(st.S3Storage, "put_file", slow_put_file)
    results, errors = [], []

    def run(job):
        try:
            results.append(stitch(aws, job))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and sorted(r["status"] for r in results) == ["succeeded"] * 2
    summary = read_json(aws, bucket, f"{OUT}_summary.json")
    outputs = [k for k in keys(aws, bucket, "anonymized/")]
    assert {f"{OUT}{x}" for x in (".mp4", ".csv", "_heatmap.png", "_summary.json")} <= \
        set(outputs)
    assert {token_of(aws, bucket, k) for k in outputs} == {summary["job"]["id"]}
    assert not [k for k in keys(aws, bucket) if k.endswith(publish.LOCK_SUFFIX)]


@pytest.mark.slow
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
def test_failed_publish_keeps_the_previous_result(aws, clips, tmp_path, monkeypatch,
                                                  versioned):
    """Defect 4: job B's summary write fails after its video, CSV and heatmap went up (the
    real commit path; only the summary's PutObject fails). Versioned: exactly B's versions
    are deleted, no delete marker, A's result is current and whole. Unversioned: no summary
    claims completeness for outputs that are gone (the old one was removed first)."""
    a, b = clips
    bucket = bucket_of(aws, versioned)
    v1 = put(aws, bucket, KEY, a["path"])
    job_a = plan(aws, bucket, KEY, v1)
    work(aws, job_a)
    assert stitch(aws, job_a)["status"] == "succeeded"
    v2 = put(aws, bucket, KEY, b["path"])
    job_b = plan(aws, bucket, KEY, v2)
    work(aws, job_b)
    real = st.S3Storage.put
    from blurfaces.errors import OutputError

    def failing_summary(self, uri, body, **kw):
        if uri.endswith("_summary.json") and (kw.get("metadata") or {}).get(
                publish.TOKEN_METADATA) == job_b["job_id"]:
            raise OutputError(f"{uri}: S3 PutObject failed (simulated)")
        return real(self, uri, body, **kw)
    with monkeypatch.context() as m:
        m.setattr(st.S3Storage, "put", failing_summary)
        with pytest.raises(OutputError, match="simulated"):
            stitch(aws, job_b)
    if versioned:
        assert delete_markers(aws, bucket, "anonymized/") == []
        assert video_of(aws, bucket, f"{OUT}.mp4", tmp_path) == (len(a["pts"]), 320, 180)
        assert read_json(aws, bucket, f"{OUT}_summary.json")["job"]["id"] == job_a["job_id"]
        assert {token_of(aws, bucket, k) for k in keys(aws, bucket, "anonymized/")} == \
            {job_a["job_id"]}
    else:
        assert f"{OUT}_summary.json" not in keys(aws, bucket, "anonymized/")
    # the retry publishes B whole
    assert stitch(aws, job_b)["status"] == "succeeded"
    assert video_of(aws, bucket, f"{OUT}.mp4", tmp_path) == (len(b["pts"]), 384, 216)
    assert {token_of(aws, bucket, k) for k in keys(aws, bucket, "anonymized/")} == \
        {job_b["job_id"]}


@pytest.mark.slow
def test_state_machine_superseded_job_ends_without_failing(aws, clips, monkeypatch):
    """Unversioned bucket, re-upload while the execution runs: the workers' reads are
    refused (If-Match), the abort finds the input replaced: no report, "Job Superseded",
    the execution SUCCEEDED through the Superseded state; the new upload's job publishes."""
    a, b = clips
    aws.dispatcher.reset()
    bucket = bucket_of(aws, False)
    events = aws.job_events(bucket)
    v1 = put(aws, bucket, KEY, a["path"])
    job_a = plan(aws, bucket, KEY, v1)
    put(aws, bucket, KEY, b["path"])
    arn = aws.sfn.start_execution(stateMachineArn=aws.state_machine_arn,
                                  name=job_a["job_id"],
                                  input=json.dumps(job_a["input"]))["executionArn"]
    desc = wait_execution(aws, arn)
    assert desc["status"] == "SUCCEEDED", desc
    assert aws.dispatcher.count(aws.functions["stitch"], action="abort") == 1
    assert keys(aws, bucket, "failed/") == [] and keys(aws, bucket, "anonymized/") == []
    assert keys(aws, bucket, ".blurfaces/") == []
    (ev,) = events()
    assert ev["detail-type"] == "Job Superseded" and ev["detail"]["job_id"] == job_a["job_id"]
    assert set(ev["detail"]) == set(aws.load_event("job-superseded.json")["detail"])
