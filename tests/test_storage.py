"""Tests of blurfaces.storage: local files, and S3 against a real S3 API (moto's server on
127.0.0.1, spoken to over HTTP by boto3; no mock objects)."""
import io
import json
import os
import random
import subprocess
import sys

import pytest

from blurfaces import storage as st
from blurfaces.errors import BlurfacesError, InputError, OptionError, OutputError
from tests.s3server import s3_server  # noqa: F401  (also imported by conftest.py; they share one server)

MB = 1024 * 1024


def _payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def _no_temp_files(folder) -> bool:
    return not [n for n in os.listdir(folder) if n.startswith(".") or n.endswith(".tmp")]


def _compare_seeks(f, data: bytes, seed: int, ops: int = 300):
    """Random seeks / reads on f must behave exactly like io.BytesIO over the same bytes."""
    ref = io.BytesIO(data)
    rng = random.Random(seed)
    assert f.seekable() and f.tell() == 0
    for _ in range(ops):
        op = rng.random()
        if op < 0.35:
            pos = rng.randrange(0, len(data) + 100)
            assert f.seek(pos) == ref.seek(pos)
        elif op < 0.5:
            off = rng.randrange(-min(ref.tell(), 5000), 5000)
            assert f.seek(off, io.SEEK_CUR) == ref.seek(off, io.SEEK_CUR)
        elif op < 0.6:
            off = -rng.randrange(0, min(len(data), 50000))
            assert f.seek(off, io.SEEK_END) == ref.seek(off, io.SEEK_END)
        elif op < 0.95:
            n = rng.choice([0, 1, 7, 188, 4096, 32768, 100000])
            assert f.read(n) == ref.read(n)
        else:
            buf_f, buf_r = bytearray(1000), bytearray(1000)
            assert f.readinto(buf_f) == ref.readinto(buf_r) and buf_f == buf_r
        assert f.tell() == ref.tell()
    f.seek(len(data) // 3)
    ref.seek(len(data) // 3)
    assert f.read() == ref.read()
    assert f.read(10) == b"" and f.tell() == len(data)


# --------------------------------------------------------------------------- URI helpers

def test_uri_helpers():
    assert st.is_s3("s3://b/k") and not st.is_s3("/tmp/x") and not st.is_s3("S3:/b")
    assert st.parse_s3("s3://bucket/a/b.mp4") == ("bucket", "a/b.mp4")
    assert st.parse_s3("s3://bucket") == ("bucket", "")
    for bad in ("s3://", "s3:///key", "/local/path", "http://b/k"):
        with pytest.raises(OptionError):
            st.parse_s3(bad)
    assert st.join("s3://b/work", "chunk.json") == "s3://b/work/chunk.json"
    assert st.join("s3://b/work/", "chunk.json") == "s3://b/work/chunk.json"
    assert st.join("s3://b", "x") == "s3://b/x"
    assert st.join("/tmp/work", "chunk.json") == os.path.join("/tmp/work", "chunk.json")


def test_get_storage(monkeypatch):
    assert isinstance(st.get_storage("/tmp/x.mp4"), st.LocalStorage)
    monkeypatch.setenv("BLURFACES_S3_ENDPOINT", "http://127.0.0.1:1")
    s = st.get_storage("s3://b/k")
    assert isinstance(s, st.S3Storage) and s.endpoint_url == "http://127.0.0.1:1"
    assert st.get_storage("s3://other/k") is s  # one client per endpoint
    assert st.get_storage("s3://b/k", endpoint_url="http://127.0.0.1:2").endpoint_url == \
        "http://127.0.0.1:2"
    with pytest.raises(OptionError):
        st.get_storage("s3:///k")


def test_boto3_is_imported_lazily():
    code = "import sys, blurfaces.storage; assert 'boto3' not in sys.modules, 'boto3 imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_boto3_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    with pytest.raises(BlurfacesError, match=r'pip install "blurfaces\[aws\]"'):
        st.S3Storage(endpoint_url="http://127.0.0.1:1").size("s3://b/k")


# --------------------------------------------------------------------------- local files

def test_local_roundtrip(tmp_path):
    s = st.get_storage(str(tmp_path))
    path = str(tmp_path / "a" / "b" / "data.bin")  # parent folders are created
    data = _payload(70000)
    s.write_bytes(path, data)
    assert s.read_bytes(path) == data
    assert s.exists(path) and s.size(path) == len(data)
    s.write_json(str(tmp_path / "m.json"), {"frames": [1, 2], "name": "é"})
    assert s.read_json(str(tmp_path / "m.json")) == {"frames": [1, 2], "name": "é"}
    assert s.local_path(path) == path
    s.delete(path)
    assert not s.exists(path)
    s.delete(path)  # already gone: fine


def test_local_writes_are_atomic(tmp_path):
    s = st.LocalStorage()
    path = str(tmp_path / "out.json")
    for i in range(5):
        s.write_json(path, {"i": i})
    assert s.read_json(path) == {"i": 4}
    assert os.listdir(tmp_path) == ["out.json"]
    # A write that fails half way leaves the old content and no temporary file.
    with pytest.raises(TypeError):
        s.write_bytes(path, 12345)
    assert s.read_json(path) == {"i": 4}
    assert os.listdir(tmp_path) == ["out.json"]
    # upload / download copy atomically too.
    src = tmp_path / "src.bin"
    src.write_bytes(_payload(3 * MB))
    s.upload(str(src), str(tmp_path / "sub" / "up.bin"))
    s.download(str(tmp_path / "sub" / "up.bin"), str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()
    assert _no_temp_files(tmp_path) and _no_temp_files(tmp_path / "sub")


def test_local_open_read_seeks_like_a_file(tmp_path):
    data = _payload(300000, seed=1)
    (tmp_path / "v.bin").write_bytes(data)
    with st.LocalStorage().open_read(str(tmp_path / "v.bin")) as f:
        _compare_seeks(f, data, seed=1)


def test_local_list(tmp_path):
    s = st.LocalStorage()
    for name in ("b/2.json", "a.json", "b/1.json", "c/d/e.bin"):
        s.write_bytes(str(tmp_path / "w" / name), b"x")
    (tmp_path / "w" / (st._TMP_PREFIX + "half.tmp")).write_bytes(b"")  # a write in progress
    (tmp_path / "w-old").mkdir()
    (tmp_path / "w-old" / "z.json").write_bytes(b"x")
    base = str(tmp_path / "w")
    assert s.list(base) == [os.path.join(base, n) for n in
                            ("a.json", "b/1.json", "b/2.json", "c/d/e.bin")]
    assert s.list(str(tmp_path / "nothing")) == []


def test_local_missing_is_input_error(tmp_path):
    s = st.LocalStorage()
    missing = str(tmp_path / "nope.mp4")
    assert not s.exists(missing)
    for call in (lambda: s.size(missing), lambda: s.read_bytes(missing),
                 lambda: s.open_read(missing), lambda: s.read_json(missing),
                 lambda: s.download(missing, str(tmp_path / "x")),
                 lambda: s.upload(missing, str(tmp_path / "y"))):
        with pytest.raises(InputError, match="nope.mp4: not found"):
            call()
    (tmp_path / "bad.json").write_bytes(b"{not json")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        s.read_json(str(tmp_path / "bad.json"))


def test_local_unwritable_is_output_error(tmp_path):
    s = st.LocalStorage()
    (tmp_path / "afile").write_bytes(b"I am a file")
    target = str(tmp_path / "afile" / "x.json")  # its "folder" is a regular file
    (tmp_path / "src").write_bytes(b"data")
    for call in (lambda: s.write_bytes(target, b"x"), lambda: s.write_json(target, {}),
                 lambda: s.upload(str(tmp_path / "src"), target),
                 lambda: s.download(str(tmp_path / "src"), target)):
        with pytest.raises(OutputError, match=r"afile/x\.json: cannot be written"):
            call()
    (tmp_path / "adir").mkdir()
    with pytest.raises(OutputError, match="adir"):  # replacing a folder by a file
        s.write_bytes(str(tmp_path / "adir"), b"x")
    assert (tmp_path / "afile").read_bytes() == b"I am a file"


# --------------------------------------------------------------------------- S3

@pytest.fixture
def s3(s3_server):
    """A fresh S3Storage (own client) and a fresh bucket."""
    return s3_server.storage(), s3_server.new_bucket()


class _Recorder:
    """Records the S3 requests a client sends (botocore event hooks, real HTTP underneath)."""

    def __init__(self, client):
        self.ops, self.ranges, self.fetched = [], [], 0
        client.meta.events.register("before-send.s3", self._before)
        client.meta.events.register("after-call.s3.GetObject", self._after)

    def _before(self, request, event_name, **_):
        self.ops.append(event_name.rsplit(".", 1)[-1])  # "before-send.s3.PutObject"
        if "Range" in request.headers:
            value = request.headers["Range"]
            value = value.decode() if isinstance(value, bytes) else value
            start, end = value.split("=")[1].split("-")
            self.ranges.append((int(start), int(end)))

    def _after(self, parsed, **_):
        self.fetched += int(parsed.get("ContentLength", 0))


def test_s3_roundtrip(s3, tmp_path):
    s, bucket = s3
    uri = f"s3://{bucket}/work/data.bin"
    data = _payload(100000)
    rec = _Recorder(s.client)
    s.write_bytes(uri, data)
    assert rec.ops == ["PutObject"]  # one PutObject, nothing else
    assert s.read_bytes(uri) == data
    assert s.exists(uri) and s.size(uri) == len(data)
    s.write_json(f"s3://{bucket}/work/m.json", {"chunks": 3, "name": "é"})
    assert s.read_json(f"s3://{bucket}/work/m.json") == {"chunks": 3, "name": "é"}
    assert s.local_path(uri) is None
    s.write_bytes(uri, b"replaced")
    assert s.read_bytes(uri) == b"replaced"
    s.delete(uri)
    assert not s.exists(uri)
    s.delete(uri)  # already gone: fine


def test_s3_upload_download(s3, tmp_path):
    s, bucket = s3
    src = tmp_path / "big.bin"
    src.write_bytes(_payload(9 * MB, seed=2))  # above boto3's 8 MB multipart threshold
    uri = f"s3://{bucket}/in/big.bin"
    s.upload(str(src), uri)
    assert s.size(uri) == 9 * MB
    dest = tmp_path / "new" / "down.bin"
    s.download(uri, str(dest))
    assert dest.read_bytes() == src.read_bytes()
    assert os.listdir(dest.parent) == ["down.bin"]


def test_s3_list(s3):
    s, bucket = s3
    for key in ("w/b/2.json", "w/a.json", "w/b/1.json", "w-old/z.json", "other.json"):
        s.write_bytes(f"s3://{bucket}/{key}", b"x")
    want = [f"s3://{bucket}/{k}" for k in ("w/a.json", "w/b/1.json", "w/b/2.json")]
    assert s.list(f"s3://{bucket}/w") == want  # a folder: w-old/ is not under it
    assert s.list(f"s3://{bucket}/w/") == want
    assert len(s.list(f"s3://{bucket}")) == 5
    assert s.list(f"s3://{bucket}/nothing") == []


def test_s3_open_read_uses_range_requests(s3, s3_server):
    s, bucket = s3
    uri = f"s3://{bucket}/big.bin"
    data = _payload(5 * MB, seed=3)
    s3_server.client.put_object(Bucket=bucket, Key="big.bin", Body=data)

    rec = _Recorder(s.client)
    with s.open_read(uri, buffer_size=0) as f:  # raw reader: exactly the bytes asked for
        f.seek(1_000_000)
        assert f.read(10) == data[1_000_000:1_000_010]
    assert rec.ranges == [(1_000_000, 1_000_009)] and rec.fetched == 10

    rec = _Recorder(s.client)
    with s.open_read(uri, buffer_size=64 * 1024) as f:
        f.seek(1_000_000)
        assert f.read(10) == data[1_000_000:1_000_010]
        assert f.read(10) == data[1_000_010:1_000_020]  # from the buffer, no new request
    assert rec.ranges == [(1_000_000, 1_000_000 + 64 * 1024 - 1)]
    assert rec.fetched == 64 * 1024

    rec = _Recorder(s.client)
    with s.open_read(uri) as f:  # default buffer: still not the whole object
        f.seek(1_000_000)
        assert f.read(10) == data[1_000_000:1_000_010]
        f.seek(-100, io.SEEK_END)
        assert f.read() == data[-100:]
    assert rec.ranges[0][0] == 1_000_000 and rec.ranges[-1] == (len(data) - 100, len(data) - 1)
    assert rec.fetched < len(data)


@pytest.mark.parametrize("buffer_size", [0, 4096, None])
def test_s3_open_read_seeks_like_bytesio(s3, s3_server, buffer_size):
    s, bucket = s3
    data = _payload(300000, seed=4)
    s3_server.client.put_object(Bucket=bucket, Key="v.bin", Body=data)
    with s.open_read(f"s3://{bucket}/v.bin", buffer_size=buffer_size) as f:
        _compare_seeks(f, data, seed=4)
        with pytest.raises((OSError, ValueError)):
            f.seek(-1)
    assert f.closed
    with pytest.raises(ValueError):
        f.read(1)


def _make_video(path, frames=30):
    import av
    import numpy as np
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "10"}  # several keyframes, so seeking has somewhere to go
        for i in range(frames):
            img = np.full((64, 64, 3), (i * 8) % 256, dtype=np.uint8)
            img[:, i * 2:i * 2 + 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _decode(f):
    import av
    with av.open(f) as container:
        frames = [(fr.pts, fr.to_ndarray(format="gray").mean()) for fr in container.decode(video=0)]
        stream = container.streams.video[0]
        mid = frames[len(frames) // 2][0]
        container.seek(mid, stream=stream)
        after_seek = next(container.decode(video=0)).pts
    return frames, after_seek


def test_pyav_decodes_video_through_open_read(s3, tmp_path):
    s, bucket = s3
    local = tmp_path / "tiny.mp4"
    _make_video(local)
    uri = f"s3://{bucket}/videos/tiny.mp4"
    s.upload(str(local), uri)

    with open(local, "rb") as f:
        want_frames, want_seek = _decode(f)
    assert len(want_frames) == 30
    rec = _Recorder(s.client)
    with s.open_read(uri, buffer_size=4096) as f:
        got_frames, got_seek = _decode(f)
    assert [p for p, _ in got_frames] == [p for p, _ in want_frames]
    assert [m for _, m in got_frames] == pytest.approx([m for _, m in want_frames])
    assert got_seek == want_seek
    assert rec.ranges and "HeadObject" in rec.ops  # read by ranges, not downloaded


def test_s3_missing_key_is_input_error(s3, tmp_path):
    s, bucket = s3
    uri = f"s3://{bucket}/no/such.mp4"
    assert not s.exists(uri)
    for call in (lambda: s.size(uri), lambda: s.read_bytes(uri), lambda: s.open_read(uri),
                 lambda: s.read_json(uri), lambda: s.download(uri, str(tmp_path / "x"))):
        with pytest.raises(InputError, match=f"{uri}: not found"):
            call()
    assert not os.path.exists(tmp_path / "x")
    with pytest.raises(InputError, match="not found"):
        s.upload(str(tmp_path / "missing.bin"), uri)


def test_s3_missing_bucket(s3_server, tmp_path):
    s = s3_server.storage()
    uri = "s3://no-such-bucket-blurfaces/k.json"
    for call in (lambda: s.size(uri), lambda: s.read_bytes(uri), lambda: s.open_read(uri),
                 lambda: s.list("s3://no-such-bucket-blurfaces/w"),
                 lambda: s.download(uri, str(tmp_path / "x"))):
        with pytest.raises(InputError, match="bucket 'no-such-bucket-blurfaces' does not exist"):
            call()
    (tmp_path / "f").write_bytes(b"x")
    for call in (lambda: s.write_bytes(uri, b"x"), lambda: s.write_json(uri, {}),
                 lambda: s.upload(str(tmp_path / "f"), uri)):
        with pytest.raises(OutputError, match="bucket 'no-such-bucket-blurfaces' does not exist"):
            call()


def test_s3_object_replaced_while_reading(s3, s3_server):
    s, bucket = s3
    s3_server.client.put_object(Bucket=bucket, Key="v.bin", Body=b"a" * 10000)
    with s.open_read(f"s3://{bucket}/v.bin", buffer_size=1000) as f:
        assert f.read(10) == b"a" * 10
        s3_server.client.put_object(Bucket=bucket, Key="v.bin", Body=b"b" * 10000)
        f.seek(5000)
        with pytest.raises(InputError, match="changed while it was being read"):
            f.read(10)


class _BreakingBody:
    """Wraps a real response body; raises a streaming error after `limit` bytes."""

    def __init__(self, body, limit):
        self._body, self._left = body, limit

    def readinto(self, b):
        from botocore.exceptions import ResponseStreamingError
        if self._left <= 0:
            raise ResponseStreamingError(error="connection reset (injected)")
        view = memoryview(b)[:self._left]
        n = self._body.readinto(view)
        self._left -= n
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._body.close()


def test_s3_body_broken_mid_stream_is_resumed(s3, s3_server):
    s, bucket = s3
    data = _payload(200000, seed=5)
    s3_server.client.put_object(Bucket=bucket, Key="v.bin", Body=data)
    breaks = {"left": 2}

    def break_body(parsed, **_):
        if breaks["left"] > 0:
            breaks["left"] -= 1
            parsed["Body"] = _BreakingBody(parsed["Body"], 30000)

    rec = _Recorder(s.client)
    s.client.meta.events.register("after-call.s3.GetObject", break_body)
    with s.open_read(f"s3://{bucket}/v.bin", buffer_size=0) as f:
        f.seek(1000)
        assert f.read(100000) == data[1000:101000]
    assert rec.ranges == [(1000, 100999), (31000, 100999), (61000, 100999)]


def test_s3_error_messages_say_what_to_do():
    from botocore.exceptions import ClientError, NoCredentialsError
    s = st.S3Storage()
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}},
                         "GetObject")
    err = s._error(denied, "s3://b/in/v.mp4", action="GetObject")
    assert isinstance(err, InputError)
    assert "s3://b/in/v.mp4: access denied" in str(err) and "s3:GetObject" in str(err)
    err = s._error(denied, "s3://b/out/v.mp4", action="PutObject", writing=True)
    assert isinstance(err, OutputError) and "s3:PutObject" in str(err)
    err = s._error(NoCredentialsError(), "s3://b/k", action="GetObject")
    assert isinstance(err, InputError) and "credentials" in str(err)


def test_json_written_to_s3_is_plain_json(s3, s3_server):
    s, bucket = s3
    s.write_json(f"s3://{bucket}/m.json", {"a": [1, 2]})
    obj = s3_server.client.get_object(Bucket=bucket, Key="m.json")
    assert json.loads(obj["Body"].read()) == {"a": [1, 2]}
    assert obj["ContentType"] == "application/json"


class _Faults:
    """Answers the first `n` requests of `op` with an S3 error response (`status`, `code`)
    before they reach moto's server (botocore's before-send hook returns the response, so
    botocore's own retry logic sees it as it would a real SlowDown/InternalError)."""

    def __init__(self, client, op: str, n: int, status: int = 503, code: str = "SlowDown"):
        self.left, self.sent, self.status, self.code = n, 0, status, code
        client.meta.events.register(f"before-send.s3.{op}", self._send)

    def _send(self, request, **_):
        from botocore.awsrequest import AWSResponse
        self.sent += 1
        if self.left <= 0:
            return None
        self.left -= 1
        body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{self.code}</Code>"
                f"<Message>simulated</Message></Error>").encode()

        class Raw:
            def stream(self, *a, **k):
                yield body
        return AWSResponse(request.url, self.status, {"Content-Type": "application/xml"},
                           Raw())


@pytest.mark.parametrize("status,code", [(503, "SlowDown"), (500, "InternalError")])
def test_s3_transient_errors_are_retried_then_transient_not_input(s3_server, status, code):
    """Defect 5: throttling and 5xx are retried (botocore standard mode: backoff with
    jitter); when they outlast the retries the error is a TransientError (the input is
    fine), never the InputError/OutputError that marked a good video failed for good."""
    from blurfaces.errors import InputError, OutputError, TransientError
    from blurfaces.storage import S3Storage
    bucket = s3_server.new_bucket()
    uri = f"s3://{bucket}/in/clip.mp4"
    store = S3Storage(endpoint_url=s3_server.endpoint_url, max_attempts=3)
    store.write_bytes(uri, b"video bytes")
    faults = _Faults(store.client, "GetObject", 2, status, code)
    assert store.read_bytes(uri) == b"video bytes"          # 2 faults, 3 attempts: retried
    assert faults.sent == 3
    _Faults(store.client, "GetObject", 10, status, code)
    with pytest.raises(TransientError, match="run again") as err:
        store.read_bytes(uri)
    assert not isinstance(err.value, (InputError, OutputError))
    _Faults(store.client, "PutObject", 10, status, code)
    with pytest.raises(TransientError):
        store.write_bytes(f"s3://{bucket}/out/x.json", b"{}")
