"""A real S3 API for the tests: moto's ThreadedMotoServer on 127.0.0.1, one per test session.

Import the fixture where it is used with ``from tests.s3server import s3_server  # noqa: F401``.

``s3_server`` (session scope) starts the server on a free port, puts dummy credentials
(``testing``) and region ``us-east-1`` in the environment for the session (never real
ones; real profiles and config files are hidden), and yields an `S3Server` with:

* ``endpoint_url``: ``http://127.0.0.1:<port>``, for boto3 / `blurfaces.storage`
  (``get_storage(uri, endpoint_url=...)`` or env ``BLURFACES_S3_ENDPOINT``);
* ``client``: a boto3 S3 client on that server;
* ``new_bucket(prefix="test")``: create a bucket with a fresh unique name, return the name;
* ``storage()``: a fresh `blurfaces.storage.S3Storage` on the server;
* ``env()``: the variables that point code run in the test at the server
  (use with ``monkeypatch.setenv`` in a test, e.g. for Lambda handler tests).

The server serves every service moto has (Step Functions, Lambda, ...), at the same URL.
"""
from __future__ import annotations

import itertools
import os
import tempfile

import pytest

_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Never read the developer's real ~/.aws files.
    "AWS_CONFIG_FILE": os.path.join(tempfile.gettempdir(), "blurfaces-tests-no-aws-config"),
    "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tempfile.gettempdir(),
                                                "blurfaces-tests-no-aws-credentials"),
}
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
          "BLURFACES_S3_ENDPOINT", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


class S3Server:
    """A running moto server and a client on it."""

    def __init__(self, server, endpoint_url: str):
        import boto3
        from botocore.config import Config

        self._server = server
        self.endpoint_url = endpoint_url
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}))
        self._names = itertools.count(1)

    def new_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{os.getpid()}-{next(self._names)}".lower()
        self.client.create_bucket(Bucket=name)
        return name

    def storage(self):
        from blurfaces.storage import S3Storage
        return S3Storage(endpoint_url=self.endpoint_url)

    def env(self) -> dict[str, str]:
        return {"BLURFACES_S3_ENDPOINT": self.endpoint_url,
                "AWS_ENDPOINT_URL": self.endpoint_url}


def start_server():
    """Start moto on 127.0.0.1; return (server, endpoint_url). Call ``server.stop()`` after."""
    from moto.server import ThreadedMotoServer

    # Port 0: the OS picks a free port at bind time (no race; works under pytest-xdist).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


_shared: dict = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def s3_server():
    # conftest.py and a test module may both import this fixture, which registers it twice;
    # the two share one server (reference-counted), stopped when the last one tears down.
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _DUMMY_ENV.items():
            mp.setenv(name, value)
        for name in _UNSET:
            mp.delenv(name, raising=False)
        if _shared["server"] is None:
            server, endpoint_url = start_server()
            _shared["server"] = S3Server(server, endpoint_url)
        _shared["users"] += 1
        try:
            yield _shared["server"]
        finally:
            _shared["users"] -= 1
            if _shared["users"] == 0:
                _shared["server"]._server.stop()
                _shared["server"] = None
