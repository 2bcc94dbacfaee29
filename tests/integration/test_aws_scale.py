"""The cloud path at archive scale (issue 16), on moto's server with the real handlers:

* an hour of 1080p30 (MP4) is planned from its sample tables, never decoded in plan (it
  was refused: decoding every frame did not fit plan's budget), into chunks a worker
  finishes; the manifest says the index came from the demuxer;
* a worker refuses a chunk whose decoded frames differ from that index (InputError naming
  the chunk), rather than publishing a video that lost or gained frames.
"""
from __future__ import annotations

import json
import os

import pytest

from tests import media
from tests.integration.helpers import ROOT, call, put_event, read_json, upload


@pytest.mark.slow
def test_an_hour_of_1080p30_is_planned_without_decoding(aws, tmp_path, monkeypatch):
    from blurfaces import stages
    monkeypatch.setattr(stages, "probe", lambda *a, **k: 1 / 0)     # plan must not decode
    clip = media.long_still_clip(tmp_path / "shift.mp4", 3600)
    bucket = aws.server.new_bucket("bf-hour")
    obj = upload(aws, bucket, clip["path"])
    monkeypatch.setenv("BLURFACES_CHUNK_SECONDS", "20")
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    assert job["status"] == "planned", job
    manifest = read_json(aws, bucket, job["input"]["work"].split("/", 3)[3] + "manifest.json")
    assert manifest["job"]["index"] == "demuxer"
    assert manifest["info"]["n_packets"] == 108_000
    assert manifest["info"]["duration_s"] == pytest.approx(3600.0)
    chunks = manifest["chunks"]
    assert sum(c["frames_expected"] for c in chunks) == 108_000
    # chunks as long as the one-vCPU worker (plan's choice for 1080p30) finishes a
    # worst-case 1080p chunk in (sizing)
    from blurfaces.aws import Settings, worker_chunk_seconds
    cap = worker_chunk_seconds(1920, 1080, 30, Settings.from_env().worker_memory_mb)
    assert max(c["stop_s"] - c["start_s"] for c in chunks) <= cap + 1 / 30
    assert len(chunks) == job["input"]["chunks"] >= 3600 / cap


@pytest.mark.slow
def test_worker_refuses_a_chunk_that_differs_from_the_index(aws, single_face):
    from blurfaces.errors import InputError
    bucket = aws.server.new_bucket("bf-index-lies")
    obj = upload(aws, bucket, single_face)
    (job,) = call("plan", put_event(bucket, obj))["jobs"]
    work_key = job["input"]["work"].split("/", 3)[3]
    manifest = read_json(aws, bucket, work_key + "manifest.json")
    assert manifest["job"]["index"] == "demuxer"
    manifest["chunks"][0]["frames_expected"] += 1         # the index lists one frame more
    aws.s3.put_object(Bucket=bucket, Key=work_key + "manifest.json",
                      Body=json.dumps(manifest).encode())
    with pytest.raises(InputError, match="chunk 0 .*container's index lists"):
        call("worker", {"work": job["input"]["work"], "index": 0})


@pytest.mark.slow
def test_idle_watch_of_s3_makes_only_listing_requests(aws, single_face):
    """Defect 8: `watch s3://` with finished inputs: a poll with nothing new lists the
    prefix and sends nothing else (it claimed, PUT and DELETE, every finished input again);
    a fresh watcher recognises the finished inputs (reads their summaries) before any claim:
    no PutObject or DeleteObject at all."""
    import os
    import subprocess
    import sys

    from blurfaces import storage as st, unattended
    from blurfaces.options import Options
    bucket = aws.server.new_bucket("bf-idle")
    root = f"s3://{bucket}/drop/"
    for k in range(3):
        upload(aws, bucket, single_face, key=f"drop/incoming/v{k}.mp4")
    env = {**os.environ, **aws.server.env()}
    p = subprocess.run([sys.executable, "-m", "blurfaces", "watch", root, "--once", "--json",
                        "--workers", "1", "--detect-size", "320"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 3, p.stderr

    calls = []
    client = st.get_storage(root).client
    client.meta.events.register("before-call.s3", lambda model, **kw: calls.append(model.name))
    try:
        n = unattended.watch(root, Options(), poll=0.01, max_idle_polls=4)
    finally:
        client.meta.events.unregister("before-call.s3")
    assert n == 0
    polls, cur = [], None
    for name in calls:
        if name == "ListObjectsV2":
            cur = [name]
            polls.append(cur)
        else:
            cur.append(name)
    assert len(polls) == 4, calls
    assert not {"PutObject", "DeleteObject"} & set(calls), calls
    assert all(p == ["ListObjectsV2"] for p in polls[1:]), polls   # idle polls: listing only


def test_plan_reads_uploads_from_the_queue(aws, single_face):
    """The upload queue (SQS) in front of plan: a message carries an S3 notification, an
    EventBridge event or a backfill's {"source", "rerun"}; S3's test event carries none."""
    bucket = aws.server.new_bucket("bf-queue")
    obj = upload(aws, bucket, single_face)

    def sqs(*bodies):
        return {"Records": [{"eventSource": "aws:sqs", "messageId": str(k),
                             "body": json.dumps(b)} for k, b in enumerate(bodies)]}
    (job,) = call("plan", sqs(put_event(bucket, obj)))["jobs"]
    assert job["status"] == "planned", job
    source = job["input"]["source"]
    (again,) = call("plan", sqs({"source": source, "rerun": "2"}))["jobs"]
    assert again["status"] == "planned" and again["job_id"] != job["job_id"]
    assert call("plan", sqs({"Service": "Amazon S3", "Event": "s3:TestEvent"}))["jobs"] == []



def _route(catches: list, error: str) -> str | None:
    """Where a state's Catch list sends `error` (the first matching catcher, as Step
    Functions evaluates them; States.ALL matches any error)."""
    for c in catches:
        if error in c["ErrorEquals"] or "States.ALL" in c["ErrorEquals"]:
            return c["Next"]
    return None


def test_distributed_map_failures_route_as_aws_raises_them():
    """On AWS a failed child makes the Map fail with States.ExceedToleratedFailureThreshold
    (never the child's own error name); moto 5.2.5 instead lets the Map succeed with the
    child failed (MapRunSucceeded: it does not enforce the tolerated-failure threshold), so
    stitch refuses the missing chunk (ChunkError) and aborts. Both shapes must end right:
    AWS's goes to the pause and the second pass (where an input error fails again, and then
    aborts with the chunk's own error from errors/chunk-N.json), moto's to Abort; an expected
    error surfacing by name goes straight to Abort."""
    with open(os.path.join(ROOT, "statemachine", "blurfaces.asl.json"), encoding="utf-8") as f:
        states = json.load(f)["States"]
    first, second = states["Chunks"]["Catch"], states["ChunksSecondPass"]["Catch"]
    assert _route(first, "States.ExceedToleratedFailureThreshold") == "PauseBeforeSecondPass"
    assert states["PauseBeforeSecondPass"]["Next"] == "ChunksSecondPass"
    assert _route(second, "States.ExceedToleratedFailureThreshold") == "Abort"
    assert _route(first, "InputError") == "Abort"           # the name itself (moto's shape)
    assert _route(first, "TransientError") == "PauseBeforeSecondPass"
    assert _route(states["Stitch"]["Catch"], "ChunkError") == "Abort"
    assert states["Abort"]["Next"] == "AfterAbort"
    choices = states["AfterAbort"]["Choices"]
    assert choices == [{"Variable": "$.abort.status", "StringEquals": "superseded",
                        "Next": "Superseded"}] and states["AfterAbort"]["Default"] == "Failed"
