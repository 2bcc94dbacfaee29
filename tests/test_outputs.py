"""outputs.py: one set of names, and one answer to "is this our own output?" and "is this input
already done?" for local folders and S3 prefixes alike."""
from __future__ import annotations

import json

import pytest
from tests.s3server import s3_server  # noqa: F401  (one server per test process, see conftest.py)

from blurfaces import jobs, storage as st
from blurfaces.outputs import (data_uri, done, final_uris, is_own_output, output_names,
                               video_name)


def _summary(video: str, token: str = "v1") -> bytes:
    return json.dumps({"outputs": {"video": video}, "versions": {"blurfaces": "0.1.0"},
                       "input_version": {"token": token}}).encode()


def _tree(root: str) -> dict:
    """A folder (or prefix) with a user's files and one of blurfaces' outputs:
    a.mp4 beside a user's own a_summary.json (not a blurfaces summary), b_blurred.mp4 with
    the summary blurfaces wrote for it, c_blurred.mp4 whose summary names another video."""
    return {f"{root}/a.mp4": b"video", f"{root}/a_summary.json": b'{"note": "mine"}',
            f"{root}/b_blurred.mp4": b"video",
            f"{root}/b_blurred_summary.json": _summary(f"{root}/b_blurred.mp4"),
            f"{root}/c_blurred.mp4": b"video",
            f"{root}/c_blurred_summary.json": _summary(f"{root}/other.mp4")}


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, monkeypatch):
    if request.param == "local":
        return str(tmp_path / "in")
    server = request.getfixturevalue("s3_server")
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    return f"s3://{server.new_bucket()}/in"


def test_own_outputs_are_recognised_the_same_locally_and_on_s3(root):
    """Issue 17's defect: on S3 any `<stem>_summary.json` beside a video made it "ours" (a.mp4
    here was skipped); locally the summary had to name the file. Both now read the summary."""
    for uri, data in _tree(root).items():
        st.get_storage(uri).write_bytes(uri, data)
    ready, _ = jobs.discover(root, settle=0)
    assert sorted(f.uri.rsplit("/", 1)[1] for f in ready) == ["a.mp4", "c_blurred.mp4"]
    assert is_own_output(f"{root}/b_blurred.mp4")
    assert not is_own_output(f"{root}/a.mp4") and not is_own_output(f"{root}/c_blurred.mp4")


def test_an_input_is_done_by_its_summary_or_report_of_the_same_version(root):
    stat_v1 = st.Stat(size=5, mtime=1.0, etag="v1")
    stat_v2 = st.Stat(size=5, mtime=1.0, etag="v2")
    names = output_names(video_name(f"{root}/x.mp4"))
    report = f"{root}/failed/x.mp4.json"
    assert done(names["summary"], report, stat_v1) is None
    st.get_storage(report).write_json(report, {"version": stat_v2.to_dict()})
    assert done(names["summary"], report, stat_v2) == ("report", report)
    assert done(names["summary"], report, stat_v1) is None
    summary = {"input_version": stat_v1.to_dict(), "outputs": {"video": names["video"]}}
    st.get_storage(names["summary"]).write_json(names["summary"], summary)
    assert done(names["summary"], report, stat_v1) == ("summary", names["summary"])


def test_names_derive_from_the_video_name():
    n = output_names("s3://b/anonymized/clip_blurred.mp4")
    assert n == {"video": "s3://b/anonymized/clip_blurred.mp4",
                 "stem": "s3://b/anonymized/clip_blurred",
                 "heatmap": "s3://b/anonymized/clip_blurred_heatmap.png",
                 "review": "s3://b/anonymized/clip_blurred_review.html",
                 "summary": "s3://b/anonymized/clip_blurred_summary.json"}
    assert data_uri(n, "tsv") == "s3://b/anonymized/clip_blurred.tsv"
    assert final_uris(n, ["csv"], heatmap=False, review=False) == [
        n["video"], "s3://b/anonymized/clip_blurred.csv", n["summary"]]
    assert final_uris(n, [])[-2:] == [n["review"], n["summary"]]
    assert video_name("/in/a.b/take.2.MOV") == "/in/a.b/take.2_blurred.mp4"
    assert video_name("/in/take.mov", "/out") == "/out/take_blurred.mp4"
    layout = jobs.Layout("s3://b/root")
    assert layout.outputs("s3://b/root/incoming/x/y.mkv")["summary"] == \
        "s3://b/root/anonymized/x/y_blurred_summary.json"
