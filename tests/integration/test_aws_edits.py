"""On moto's S3 with the real handlers: an edited `<video name>.boxes.csv` uploaded beside an
input in incoming/ re-renders that video from the file (a new job per version of the file);
the previous result stays published until the new one is."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.integration.helpers import put, read_json, s3_event


@pytest.mark.slow
def test_edited_boxes_uploaded_beside_rerender(aws, synth_clip_factory):
    clip = synth_clip_factory(size=(320, 180), seconds=0.8, audio=True)
    bucket = aws.server.new_bucket("bf-edits")
    key, out = "incoming/cam/clip.mp4", "anonymized/cam/clip_blurred"
    v = put(aws, bucket, key, clip["path"])
    (first,) = aws.call("plan", s3_event(aws, bucket, key, v))["jobs"]
    assert first["status"] == "planned"
    items = read_json(aws, bucket, first["input"]["items_key"])
    for item in items:
        aws.call("worker", item)
    aws.call("stitch", {"work": first["input"]["work"]})
    body = aws.s3.get_object(Bucket=bucket, Key=f"{out}.csv")["Body"].read().decode()
    rows = pd.read_csv(io.StringIO(body))
    assert rows["track"].nunique() >= 2
    edited = rows[rows["track"] != 0]
    edit_key = f"{key}.boxes.csv"
    e = put(aws, bucket, edit_key, data=edited.to_csv(index=False).encode())

    (job,) = aws.call("plan", s3_event(aws, bucket, edit_key, e))["jobs"]
    assert job["status"] == "planned" and job["input"]["source"] == f"s3://{bucket}/{key}"
    assert job["job_id"] != first["job_id"]
    for item in read_json(aws, bucket, job["input"]["items_key"]):
        aws.call("worker", item)
    # the workers are done, nothing is published yet: the previous result is whole
    assert read_json(aws, bucket, f"{out}_summary.json")["job"]["id"] == first["job_id"]
    aws.call("stitch", {"work": job["input"]["work"]})
    summary = read_json(aws, bucket, f"{out}_summary.json")
    assert summary["job"]["id"] == job["job_id"]
    assert summary["options"]["boxes"] == f"s3://{bucket}/{edit_key}"
    body = aws.s3.get_object(Bucket=bucket, Key=f"{out}.csv")["Body"].read().decode()
    again = pd.read_csv(io.StringIO(body))
    assert len(again) == len(edited) and 0 not in set(again["track"])
    # the same edit again (a duplicate event) is the same job, already published
    (dup,) = aws.call("plan", s3_event(aws, bucket, edit_key, e))["jobs"]
    assert dup["job_id"] == job["job_id"] and dup["status"] == "done"
