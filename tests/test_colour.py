"""Colours outside the masks survive the RGB round trip: the encoder converts back with the
source's matrix and range and tags the output alike (BT.709 sources used to come back
converted with BT.601 and untagged: a 2-3 level shift in every pixel)."""
from __future__ import annotations

import av
import numpy as np
import pytest

from tests import media
from blurfaces import blur_faces


def _tagged_copy(src, dst, colorspace, color_range):
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        cc = s.codec_context
        cc.colorspace, cc.color_range = colorspace, color_range
        cc.color_primaries = cc.color_trc = colorspace
        for fr in inp.decode(video=0):
            y = fr.reformat(format="yuv420p", dst_colorspace=colorspace,
                            dst_color_range=color_range)
            y.pts, y.colorspace, y.color_range = None, colorspace, color_range
            for pkt in s.encode(y):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)


@pytest.mark.parametrize("colorspace,color_range", [(1, 1), (1, 2), (5, 1)],
                         ids=["bt709", "bt709-full", "bt470bg"])
@pytest.mark.slow
def test_colours_and_tags_kept(tmp_path, colorspace, color_range, private_tmp):
    media.make_noface_clip(tmp_path / "raw.mp4", size=(640, 360), seconds=0.4)
    src = tmp_path / "tagged.mp4"
    _tagged_copy(tmp_path / "raw.mp4", src, colorspace, color_range)
    r = blur_faces(src, mask="none", workers=1, detect_size=320, crf=20)   # tolerance set at 20
    with av.open(str(src)) as a, av.open(r.video) as b:
        fa = list(a.decode(video=0))
        fb = list(b.decode(video=0))
    assert len(fa) == len(fb) == 12
    assert (fb[0].colorspace, fb[0].color_range) == (colorspace, color_range)
    diff = np.mean([np.abs(x.to_ndarray().astype(int) - y.to_ndarray().astype(int)).mean()
                    for x, y in zip(fa, fb)])
    assert diff < 1.6, diff        # the re-encode alone; a matrix mix-up gives ~3


@pytest.mark.parametrize("width", [640, 639, 638, 500])
def test_frames_converted_in_place_give_the_copys_yuv(width):
    """The encoder hands swscale the RGB array's own memory instead of a copy: the YUV is the
    same for packed rows of any width, rows with padding and a rotated (copied) frame."""
    from blurfaces.video import rgb_frame, stored
    rng = np.random.default_rng(width)
    rgb = rng.integers(0, 256, (360, width, 3), dtype=np.uint8)
    padded = np.zeros((360, width + 5, 3), np.uint8)[:, 2:width + 2]
    padded[:] = rgb
    fmt = "yuv444p" if width % 2 else "yuv420p"
    for img in (rgb, padded, stored(rgb, 90)):
        want = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        for kw in ({}, {"dst_colorspace": 1, "dst_color_range": 2}):
            a = want.reformat(format=fmt, **kw).to_ndarray()
            b = rgb_frame(img).reformat(format=fmt, **kw).to_ndarray()
            assert a.tobytes() == b.tobytes()
