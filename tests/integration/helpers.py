"""What the integration tests share (not a test module): the handlers called as Lambda calls
them, the sample events, and small S3 / Step Functions helpers on the `aws` harness
(conftest.py) that every test_aws*.py module uses.

* `call(stage, event)`: a stage's REAL handler (functions/<stage>/app.py), in-process, with a
  `LambdaContext`; `load_event(name)`: a sample event from events/.
* The single-face job of test_aws*.py: `INPUT_KEY` (as uploaded), `INPUT_KEY_ENCODED` (as S3
  notifications spell it), `OUT_PREFIX`, `REPORT_KEY`; `upload` puts a file there and
  `put_event` is its S3 notification (a fresh sequencer each call unless given).
* General helpers: `keys`, `put` (any key, any bucket, versions kept), `s3_event` (the
  notification of such a put), `read_json`, `video_of`, `wait_execution`.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import av

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASL = os.path.join(ROOT, "statemachine", "blurfaces.asl.json")
EVENTS = os.path.join(ROOT, "events")
REGION = "us-east-1"
FUNCTIONS = {"plan": "blurfaces-plan", "worker": "blurfaces-worker",
             "large_worker": "blurfaces-worker-large", "stitch": "blurfaces-stitch"}
WORK = ".blurfaces/work/"       # the work prefix under the root (Settings default)

INPUT_KEY = "incoming/clips/single face.mp4"
INPUT_KEY_ENCODED = "incoming/clips/single+face.mp4"    # as S3 notifications spell it
OUT_PREFIX = "anonymized/clips/single face_blurred"
REPORT_KEY = "failed/clips/single face.mp4.json"
_SEQ = iter(range(1, 10_000))


class LambdaContext:
    def __init__(self, function_name: str, memory_mb: int = 3008):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = \
            f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


def load_event(name: str) -> dict:
    with open(os.path.join(EVENTS, name), encoding="utf-8") as f:
        return json.load(f)


def handlers() -> dict:
    from functions.plan import app as plan_app
    from functions.stitch import app as stitch_app
    from functions.worker import app as worker_app
    # the two worker functions are one image (one handler) at two memory sizes
    return {FUNCTIONS["plan"]: plan_app.handler, FUNCTIONS["worker"]: worker_app.handler,
            FUNCTIONS["large_worker"]: worker_app.handler,
            FUNCTIONS["stitch"]: stitch_app.handler}


def call(stage: str, event: dict):
    """Invoke a stage's handler directly, as Lambda would (stage: plan, worker, stitch); the
    handlers' environment is the `aws` fixture's."""
    name = FUNCTIONS[stage]
    return handlers()[name](event, LambdaContext(name))


# ------------------------------------------------------------------------------ S3

def keys(aws, bucket: str, prefix: str = "") -> list[str]:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", ()))


def upload(aws, bucket: str, path, key: str = INPUT_KEY) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    resp = aws.s3.put_object(Bucket=bucket, Key=key, Body=data)
    return {"etag": resp["ETag"].strip('"'), "size": len(data)}


def put_event(bucket: str, obj: dict, key: str = INPUT_KEY_ENCODED,
              event_name: str = "ObjectCreated:Put", sequencer: str | None = None) -> dict:
    """The S3 notification of `upload` (key as notifications spell it; unversioned bucket)."""
    event = load_event("s3-put.json")
    rec = event["Records"][0]
    rec["eventName"] = event_name
    rec["s3"]["bucket"]["name"] = bucket
    rec["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    rec["s3"]["object"].update(key=key, eTag=obj.get("etag", "d41d8cd98f00b204e9800998ecf8427e"),
                               size=obj.get("size", 1000),
                               sequencer=sequencer or f"{next(_SEQ):018X}")
    rec["s3"]["object"].pop("versionId", None)        # the test buckets are unversioned
    return event


def put(aws, bucket: str, key: str, path=None, data: bytes | None = None) -> dict:
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    resp = aws.s3.put_object(Bucket=bucket, Key=key, Body=data)
    return {"etag": resp["ETag"].strip('"'), "size": len(data),
            "version": resp.get("VersionId")}


def s3_event(aws, bucket: str, key: str, obj: dict) -> dict:
    """The S3 notification of `put` (key as uploaded; its version when the bucket keeps them)."""
    event = aws.load_event("s3-put.json")
    rec = event["Records"][0]
    rec["s3"]["bucket"]["name"] = bucket
    rec["s3"]["object"] = {"key": key.replace(" ", "+"), "eTag": obj["etag"],
                           "size": obj["size"], "sequencer": f"{time.time_ns():018X}"}
    if obj.get("version"):
        rec["s3"]["object"]["versionId"] = obj["version"]
    return event


def read_json(aws, bucket: str, key: str):
    return json.loads(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def video_of(aws, bucket: str, key: str, tmp_path) -> tuple[int, int, int]:
    """(frames, width, height) of the video at key, decoded."""
    local = tmp_path / f"v-{time.time_ns()}.mp4"
    aws.s3.download_file(bucket, key, str(local))
    with av.open(str(local)) as c:
        s = c.streams.video[0]
        return sum(1 for _ in c.decode(s)), s.codec_context.width, s.codec_context.height


# ------------------------------------------------------------------------------ Step Functions

def wait_execution(aws, arn: str, timeout: float = 120.0) -> dict:
    t0 = time.monotonic()
    while True:
        desc = aws.sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        assert time.monotonic() - t0 < timeout, f"execution still RUNNING after {timeout} s"
        time.sleep(0.2)


def load_template() -> dict:
    """template.yaml, decoded as CloudFormation reads it (short-form intrinsics included)."""
    from cfnlint.decode import decode_str
    with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as f:
        decoded, errors = decode_str(f.read())
    assert not errors, errors
    return decoded


def load_asl() -> dict:
    """The state machine's definition (statemachine/blurfaces.asl.json)."""
    with open(os.path.join(ROOT, "statemachine", "blurfaces.asl.json"), encoding="utf-8") as f:
        return json.load(f)
