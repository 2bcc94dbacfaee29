"""An hour of video end to end on moto with the real handlers (issue 16): plan indexes it
from the MP4's sample tables, 30 workers each process two minutes, stitch joins the 30
segments, checks them and publishes. The published video has every one of the 7,200 frames
at the input's own timestamps, up to the last one an hour in.

The hour is small (160x90 at 2 fps: a still picture's GOP copied with shifted timestamps,
tests/media.long_still_clip) so that it runs here in about a minute; what is long is the
timeline: chunk boundaries an hour apart, 30 segments joined, an hour of timestamps checked
by stitch's self-check and by this test."""
from __future__ import annotations

from fractions import Fraction

import av
import pytest

from tests import media
from tests.integration.helpers import put, read_json, s3_event

KEY = "incoming/long/hour.mp4"


def _times(path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Fraction(p.pts) * s.time_base for p in c.demux(s) if p.size]


@pytest.mark.slow
def test_an_hour_of_video_through_plan_workers_and_stitch(aws, tmp_path, monkeypatch):
    clip = media.long_still_clip(tmp_path / "hour.mp4", 3600, size=(160, 90), fps=2)
    assert clip["frames"] == 7200
    bucket = aws.server.new_bucket("bf-long")
    obj = put(aws, bucket, KEY, clip["path"])
    monkeypatch.setenv("BLURFACES_CHUNK_SECONDS", "120")       # the template's maximum

    (job,) = aws.call("plan", s3_event(aws, bucket, KEY, obj))["jobs"]
    assert job["status"] == "planned", job
    inp = job["input"]
    assert inp["chunks"] == 30
    items = read_json(aws, bucket, inp["items_key"])
    frames = [aws.call("worker", item)["frames"] for item in items]
    assert sum(frames) == 7200 and set(frames) == {240}
    res = aws.call("stitch", {"work": inp["work"], "job_id": job["job_id"],
                              "source": inp["source"]})
    assert res["frames"] == 7200

    out = tmp_path / "out.mp4"
    aws.s3.download_file(bucket, res["outputs"]["video"].split("/", 3)[3], str(out))
    src_t, out_t = _times(clip["path"]), _times(out)
    assert len(out_t) == len(src_t) == 7200
    assert sorted(out_t) == sorted(src_t)                  # to the tick, an hour long
    assert max(out_t) == Fraction(7199, 2)
    summary = read_json(aws, bucket, res["outputs"]["summary"].split("/", 3)[3])
    assert summary["counts"]["frames"] == 7200 and summary["counts"]["chunks"] == 30
    assert summary["video"]["duration_s"] == pytest.approx(3600.0, abs=0.01)
