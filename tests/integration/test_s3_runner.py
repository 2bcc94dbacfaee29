"""The local runner on s3:// inputs and outputs, against a real S3 API server on 127.0.0.1
(moto's ThreadedMotoServer): workers read the source through range requests, stitch
publishes the outputs to S3, and the result equals a run on local files."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import media
from blurfaces import data as datamod, storage as st
from blurfaces.api import blur_faces


@pytest.fixture
def s3env(s3_server, monkeypatch):
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BLURFACES_S3_ENDPOINT", s3_server.endpoint_url)
    return s3_server


@pytest.mark.slow
def test_s3_in_s3_out_equals_local(s3env, single_face, tmp_path):
    bucket = s3env.new_bucket("runner")
    s3env.client.upload_file(str(single_face), bucket, "in/clip.mp4")
    src = f"s3://{bucket}/in/clip.mp4"
    r = blur_faces(src, target_name=f"s3://{bucket}/out/clip_blurred.mp4", workers=2,
                   chunks=2, data_format=["csv", "tsv"], draw_heatmap=True)
    keys = sorted(o["Key"] for o in s3env.client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["in/clip.mp4", "out/clip_blurred.csv", "out/clip_blurred.mp4",
                    "out/clip_blurred.tsv", "out/clip_blurred_heatmap.png",
                    "out/clip_blurred_summary.json"]
    assert r.summary["counts"]["chunks"] == 2
    local_out = tmp_path / "s3.mp4"
    s3env.client.download_file(bucket, "out/clip_blurred.mp4", str(local_out))
    s3env.client.download_file(bucket, "out/clip_blurred.csv", str(tmp_path / "s3.csv"))
    # the same video, run on the local file in one chunk
    local = blur_faces(str(single_face), target_name=str(tmp_path / "local.mp4"), workers=1,
                       chunks=1)
    a, b = media.probe(local.video), media.probe(local_out)
    assert a["pts"] == b["pts"] == media.probe(single_face)["pts"]
    assert b["has_audio"] and abs(a["audio_duration"] - b["audio_duration"]) < 1e-6
    ra = datamod.read(str(tmp_path / "local.csv")).drop(columns="score")
    rb = datamod.read(str(tmp_path / "s3.csv")).drop(columns="score")
    assert ra.equals(rb)
    # the source in S3 is untouched
    head = s3env.client.head_object(Bucket=bucket, Key="in/clip.mp4")
    assert head["ContentLength"] == os.path.getsize(single_face)


def test_missing_s3_object_is_a_clear_cli_error(s3env):
    bucket = s3env.new_bucket("missing")
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "blurfaces", "anonymize",
                        f"s3://{bucket}/nope.mp4", "-q"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert f"s3://{bucket}/nope.mp4" in p.stderr
    assert st.get_storage(f"s3://{bucket}/x").list(f"s3://{bucket}/") == []
