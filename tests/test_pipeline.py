"""The plan -> worker -> stitch path on real and synthetic media: exact frames, timestamps,
sizes, rotation and audio; chunked runs equal to one pass; retries; faces masked."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bench import hardclips
from blurfaces import data as datamod, stages
from blurfaces.errors import ChunkError
from blurfaces.options import Options
from blurfaces.outputs import output_names
from blurfaces.runner import run
from tests import media


def _run(src, out_dir, name, *, chunks=None, chunk_seconds=None, workers=1, worker_fn=None,
         **opts):
    outputs = output_names(os.path.join(out_dir, name + ".mp4"))
    summary = run(str(src), outputs=outputs, options=Options(**opts), workers=workers,
                  chunks=chunks, chunk_seconds=chunk_seconds, worker_fn=worker_fn)
    return outputs, summary


def _assert_same_timing(src, out, *, audio):
    a, b = media.probe(src), media.probe(out)
    assert b["n_frames"] == a["n_frames"]
    assert np.allclose(b["times"], a["times"], atol=1e-6), "presentation times changed"
    assert b["display_size"] == a["display_size"]
    assert b["has_audio"] == a["has_audio"] == audio
    if audio:
        assert abs(b["audio_duration"] - a["audio_duration"]) < 0.05
    return a, b


CLIPS = {
    "cfr_audio": dict(size=(640, 360), fps=30, seconds=3.0, audio=True),
    "vfr_audio": dict(size=(640, 360), fps=30, seconds=3.0, audio=True, vfr=True),
    "rot90": dict(size=(360, 640), fps=25, seconds=2.0, rotate=90),
    "odd_size": dict(size=(641, 361), fps=24, seconds=2.0),
    "ntsc_gop": dict(size=(640, 360), fps=29.97, seconds=3.0, gop=45),
}


@pytest.mark.parametrize("kind", sorted(CLIPS))
@pytest.mark.slow
def test_fidelity_on_synthetic_clips(kind, synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS[kind])
    outputs, summary = _run(clip["path"], tmp_path, "out")
    a, b = _assert_same_timing(clip["path"], outputs["video"], audio=CLIPS[kind].get("audio", False))
    assert b["rotation"] == a["rotation"]
    # faces were found and masked: the multi-face photo has 5 faces in view at the start
    df = datamod.read(outputs["stem"] + ".csv")
    first = df[df["frame"] == 0]
    assert len(first) >= 4
    src_frames, _, _ = media.decode_frames(clip["path"])
    out_frames, _, _ = media.decode_frames(outputs["video"])
    for _, r in first.iterrows():
        x1, y1, x2, y2 = int(r.x1), int(r.y1), int(r.x2), int(r.y2)
        cx, cy, rx, ry = (x1 + x2) // 2, (y1 + y2) // 2, max(1, (x2 - x1) // 4), max(1, (y2 - y1) // 4)
        inner_in = src_frames[0][cy - ry:cy + ry, cx - rx:cx + rx].astype(float)
        inner_out = out_frames[0][cy - ry:cy + ry, cx - rx:cx + rx].astype(float)
        lap_in = np.var(np.diff(inner_in.mean(2), 2, axis=0))
        lap_out = np.var(np.diff(inner_out.mean(2), 2, axis=0))
        assert lap_out < 0.35 * lap_in + 1e-6, "face not masked"
    assert summary["counts"]["frames"] == a["n_frames"]


@pytest.mark.slow
def test_real_vfr_hevc_clip_keeps_every_timestamp(face_noface, tmp_path):
    outputs, summary = _run(face_noface, tmp_path, "out")
    a, b = _assert_same_timing(face_noface, outputs["video"], audio=True)
    assert summary["video"]["vfr"]
    df = datamod.read(outputs["stem"] + ".csv")
    assert df["frame"].nunique() >= 60           # the face is in part of the clip
    assert df["frame"].nunique() < a["n_frames"]  # ... and not everywhere


def _rows(stem):
    df = datamod.read(stem + ".csv")
    return df.sort_values(["frame", "track", "x1", "y1"]).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cfr_audio", "vfr_audio", "ntsc_gop"])
def test_chunked_equals_single_pass(kind, synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS[kind])
    one, s1 = _run(clip["path"], tmp_path, "one", chunks=1)
    many, s2 = _run(clip["path"], tmp_path, "many", chunk_seconds=0.7)
    assert s1["counts"]["chunks"] == 1 and s2["counts"]["chunks"] >= 4
    a, b = media.probe(one["video"]), media.probe(many["video"])
    assert a["n_frames"] == b["n_frames"] == clip["n_frames"]
    assert a["pts"] == b["pts"]
    assert a["has_audio"] == b["has_audio"]
    if a["has_audio"]:
        assert a["audio_samples"] == b["audio_samples"]
    r1, r2 = _rows(one["stem"]), _rows(many["stem"])
    assert len(r1) > 0
    assert r1.drop(columns=["score"]).equals(r2.drop(columns=["score"]))
    assert np.allclose(r1["score"].fillna(-1), r2["score"].fillna(-1), atol=1e-3)
    # tracks continue across chunk boundaries: same number of tracks
    assert s1["counts"]["tracks"] == s2["counts"]["tracks"]


@pytest.mark.slow
def test_chunked_equals_single_pass_on_a_still_camera(tmp_path):
    """With reuse of unchanged regions (still.py): a chunk's lead-in holds a whole reuse
    period, so every chunking gives the single pass's detections."""
    clip = tmp_path / "still.mp4"
    hardclips.make_clip(clip, "static720", size=(640, 360), seconds=3.0)
    one, s1 = _run(clip, tmp_path, "one", chunks=1)
    many, s2 = _run(clip, tmp_path, "many", chunk_seconds=0.7)
    assert s2["counts"]["chunks"] >= 4
    reg = s1["counts"]["regions"]
    assert reg["reused"] + reg["partial"] > reg["run"]          # reuse did take place
    assert s2["counts"]["regions"]["reused"] > 0
    r1, r2 = _rows(one["stem"]), _rows(many["stem"])
    assert len(r1) > 90 * 20
    assert r1.drop(columns=["score"]).equals(r2.drop(columns=["score"]))
    assert np.allclose(r1["score"].fillna(-1), r2["score"].fillna(-1), atol=1e-3)
    _, s3 = _run(clip, tmp_path, "off", chunks=1, reuse=False)       # --no-reuse
    assert s3["counts"]["regions"] == {"run": 0, "partial": 0, "reused": 0}
    assert s3["counts"]["masked_boxes"] > 0


@pytest.mark.slow
def test_a_job_does_not_depend_on_the_job_before_it_in_the_process(single_face, tmp_path):
    """The detector is cached per process (a warm Lambda, `batch`, in-process chunks); its
    camera-motion estimate must start afresh: the first frame of a job used to be compared
    with the last frame of the previous job's video, which moved that job's boxes."""
    other = media.make_noface_clip(tmp_path / "other_src.mp4", size=(640, 360), seconds=0.5)
    first, _ = _run(single_face, tmp_path, "first", chunks=1)
    _run(other["path"], tmp_path, "other", chunks=1)
    again, _ = _run(single_face, tmp_path, "again", chunks=1)
    a, b = _rows(first["stem"]), _rows(again["stem"])
    assert len(a) >= 60
    assert a.equals(b)


@pytest.mark.slow
def test_process_pool_gives_the_same_result(synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS["cfr_audio"])
    one, _ = _run(clip["path"], tmp_path, "one", chunks=1)
    pool, s = _run(clip["path"], tmp_path, "pool", chunks=3, workers=2)
    assert s["timings"]["workers"] == 2
    assert media.probe(pool["video"])["pts"] == media.probe(one["video"])["pts"]
    assert _rows(one["stem"]).drop(columns="score").equals(_rows(pool["stem"]).drop(columns="score"))


class FlakyWorker:
    """Fails the first `fails` attempts of chunk `index` (counted in a file, so the count
    survives process boundaries), then runs the real worker."""

    def __init__(self, marker, index, fails):
        self.marker, self.index, self.fails = str(marker), index, fails

    def __call__(self, manifest, index, **kw):
        if index == self.index:
            with open(self.marker, "a") as f:
                f.write("x")
            if os.path.getsize(self.marker) <= self.fails:
                raise RuntimeError("simulated worker crash")
        return stages.worker(manifest, index, **kw)


@pytest.mark.slow
def test_failed_chunk_is_retried_alone(synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS["cfr_audio"])
    marker = tmp_path / "attempts"
    outputs, s = _run(clip["path"], tmp_path, "out", chunks=3,
                      worker_fn=FlakyWorker(marker, 1, fails=1))
    assert marker.read_text() == "xx"            # chunk 1 ran twice ...
    assert s["counts"]["frames"] == clip["n_frames"]  # ... and the output is complete


@pytest.mark.slow
def test_chunk_that_keeps_failing_publishes_nothing(synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS["cfr_audio"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ChunkError, match=r"chunk 2 \("):
        _run(clip["path"], out_dir, "out", chunks=3,
             worker_fn=FlakyWorker(tmp_path / "attempts", 2, fails=99))
    assert (tmp_path / "attempts").read_text() == "xxx"   # first try + 2 retries
    assert list(out_dir.iterdir()) == []


@pytest.mark.slow
def test_summary_json_describes_the_run(synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS["cfr_audio"])
    outputs, s = _run(clip["path"], tmp_path, "out", data_format=["csv", "tsv"],
                      draw_heatmap=True)
    with open(outputs["summary"]) as f:
        js = json.load(f)
    assert js["counts"]["frames"] == clip["n_frames"]
    assert js["outputs"]["video"] == outputs["video"]
    assert sorted(js["outputs"]["data"]) == sorted([outputs["stem"] + ".csv", outputs["stem"] + ".tsv"])
    assert os.path.exists(js["outputs"]["heatmap"])
    assert js["versions"]["blurfaces"]
    df = datamod.read(outputs["stem"] + ".csv")
    assert js["counts"]["masked_boxes"] == len(df)
    assert js["counts"]["detections"] == int((df["source"] == "detected").sum())


def test_plan_cuts_at_exact_frames_and_stays_small(synth_clip_factory, tmp_path):
    clip = synth_clip_factory(**CLIPS["vfr_audio"])
    m = stages.plan(clip["path"], outputs=output_names(str(tmp_path / "o.mp4")),
                    options=Options(), work=str(tmp_path / "work"), chunk_seconds=0.5)
    assert sum(c["frames_expected"] for c in m["chunks"]) == clip["n_frames"]
    starts = [c["start_pts"] for c in m["chunks"]]
    assert all(p in clip["pts"] for p in starts)
    assert [c["stop_pts"] for c in m["chunks"][:-1]] == starts[1:]
    assert all(c["seek_pts"] <= c["lead_pts"] <= c["start_pts"] for c in m["chunks"])
    assert len(json.dumps(m)) < 8000


def test_the_first_and_last_detection_frames_of_the_video_sweep_the_whole_fine_grid():
    """A face seen by neither an earlier nor a later sweep cannot be masked back (ahead) to
    the video's ends by the tracker: the first and the last detection frames of the video run
    every region, wherever a chunk starts (`first`) and at any detection step."""
    from blurfaces.detect import Detections

    class Frame:
        rgb = None

    class Frames:
        def __init__(self, n):
            self.it = iter([Frame() for _ in range(n)])

        def __iter__(self):
            return self.it

        def close(self):
            pass

    class Recorder:
        def __init__(self):
            self.calls = []
            self.early = []         # (index asked ahead, detect calls made by then)

        def detect(self, rgb, index, sweep=False):
            self.calls.append((index, sweep))
            return Detections.empty()

        def ahead(self, rgb, index):
            self.early.append((index, len(self.calls)))

        def drop_pending(self):
            self.dropped = True

    for count, first, every, swept in ((10, 0, 1, [0, 9]), (10, 4, 1, [9]), (11, 0, 2, [0, 5]),
                                       (10, 0, 2, [0, 4]), (10, 2, 3, [3])):
        rec = Recorder()
        list(stages._detections(Frames(count - first), rec, first, every, count))
        assert [i for i, s in rec.calls if s] == swept, (count, first, every, rec.calls)
        detected = [g // every for g in range(first, count) if g % every == 0]
        assert [i for i, _ in rec.calls] == detected
        # every detection frame but the sweeps is asked ahead, once, up to AHEAD_FRAMES
        # frames before `detect` gets it
        assert rec.dropped          # nothing left queued after the last frame
        assert [i for i, _ in rec.early] == [i for i, s in rec.calls if not s]
        for index, done in rec.early:
            before = detected.index(index)
            assert before - stages.AHEAD_FRAMES // every - 1 <= done <= before


def test_stitch_joins_a_held_track_out_of_view_at_the_boundary():
    """A mask held after one detection drifts out of the picture with the camera, crosses a
    chunk boundary unseen and comes back: the third chunk's track is the first chunk's (they
    began with the same detection), as in a single pass; a track with another first
    detection is a new one. (Part records as `_write_part` writes them.)"""
    def parts(births: bool):
        def row(pts, box, track):
            return [pts, pts / 10, *box, track, 0, None, "held"]
        first = [2048, 22, 261, 39, 280]        # the held track's one detection
        out = [
            {"rows": [row(0, (45, 262, 62, 281), 0), row(5632, (0, 259, 1, 278), 0)],
             "tail": [], "births": [[0, *first]]},
            {"rows": [row(11000, (300, 100, 340, 150), 3)],
             "tail": [[25088, 0, 275, 3, 294, 5]],
             "births": [[5, *first], [3, 11000, 300, 100, 340, 150]]},
            {"rows": [row(25088, (0, 275, 3, 294), 7), row(26000, (500, 10, 520, 30), 8)],
             "tail": [], "births": [[7, *first], [8, 26000, 500, 10, 520, 30]]},
        ]
        if not births:              # a worker of an older version
            for p in out:
                del p["births"]
        return out

    ids = [[r[6] for r in p["rows"]] for p in stages._global_tracks(parts(True))]
    assert ids == [[0, 0], [1], [0, 2]]
    ids = [[r[6] for r in p["rows"]] for p in stages._global_tracks(parts(False))]
    assert ids == [[0, 0], [1], [2, 3]]
