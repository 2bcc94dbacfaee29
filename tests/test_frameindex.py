"""The frame index from the container without decoding (blurfaces.frameindex) against the
decode-every-frame probe (video.probe): the same frames, timestamps, keyframes, size,
rotation, colour, pixel aspect (anamorphic) and audio on MP4/MOV (B-frames, edit lists, HEVC VFR, rotation) and MKV;
None (the caller decodes) for containers without a trustworthy index; an hour of 1080p30
indexed from a few MB of reads."""
from __future__ import annotations

import os

import pytest

from tests import media
from blurfaces import frameindex, video


def fast(path):
    path = str(path)
    return frameindex.index(lambda: open(path, "rb"), path, os.path.getsize(path))


@pytest.mark.parametrize("name", ["WolfgangLanger_Pexels.mp4", "single_face.mp4",
                                  "face_noface.mov", "noface_face.mov", "no_face.mp4"])
def test_index_equals_the_decoded_probe(name):
    path = media.pyfeat_file(name)
    info = fast(path)
    assert info is not None
    assert info.to_dict() == video.probe(str(path)).to_dict()


@pytest.mark.slow
def test_index_on_the_container_corpus(tmp_path):
    from tests import corpus
    checked = []
    for name in ("mp4_editlist", "mkv_no_durations", "vfr_rotated", "hevc_10bit", "yuv422",
                 "full_range", "pal_43_mkv", "hdv_mp4", "ts_wrap", "avi_bframes",
                 "raw_h264", "ntsc_ts"):
        case = corpus.CASES[name](tmp_path)
        info, probe = fast(case.path), video.probe(str(case.path))
        if case.path.suffix in (".mp4", ".mov", ".mkv"):
            assert info is not None, name
            assert info.to_dict() == probe.to_dict(), name
            checked.append(name)
        else:
            assert info is None, name              # decoded instead
    assert len(checked) == 8


def test_an_hour_of_1080p30_is_indexed_from_its_sample_tables(tmp_path):
    clip = media.long_still_clip(tmp_path / "hour.mp4", 3600)
    opened = []

    def open_source():
        opened.append(media.CountingFile(clip["path"]))
        return opened[-1]

    size = os.path.getsize(clip["path"])
    info = frameindex.index(open_source, str(clip["path"]), size)
    assert info.n_packets == clip["frames"] == 108_000
    assert info.pts == list(range(0, 108_000 * 512, 512))        # 1/15360 time base
    assert len(info.keyframes) == 1800 and info.duration_s == pytest.approx(3600.0)
    assert (info.width, info.height) == (1920, 1080)
    assert sum(f.read_bytes for f in opened) < size / 4        # the sample data is never read (the moov box is)
