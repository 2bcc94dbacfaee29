"""AWS harness for the integration tests: moto's server runs S3, Step Functions and Lambda.

* `aws` (module scope): on the session's ThreadedMotoServer (`s3_server` from
  tests/s3server.py) it turns on moto's real state-machine interpreter (POST to
  /moto-api/config), points the interpreter's Lambda calls at the server (MOTO_PORT),
  replaces `LambdaSimpleBackend.invoke` (moto internal API, moto pinned to 5.2.5) with a
  dispatcher that runs this repo's REAL handlers in-process by function name, creates the
  three functions (dummy zip) and the state machine from statemachine/blurfaces.asl.json
  with the function ARNs substituted, and sets the handlers' environment.
  Retry intervals and Wait states are shortened to 1 s (`fast_waits`, test only).
* `LambdaContext`, `call`, `load_event` (in helpers.py, shared with the tests): the Lambda
  context object's attributes the handlers use, a handler called in-process, a sample event.
* `aws.job_events(bucket)`: an EventBridge rule on the default bus (moto) for blurfaces'
  events about inputs in `bucket`, targeting a fresh SQS queue; returns a function that
  drains the queue and returns the events received since its last call.

The dispatcher answers like the Lambda service: a raised exception becomes a payload
{"errorType": <class name>, "errorMessage": ...} with the X-Amz-Function-Error header, which
Step Functions turns into the error name its Retry/Catch match.
"""
from __future__ import annotations

import io
import json
import threading
import traceback
import urllib.request
import uuid
import zipfile
from types import SimpleNamespace

import pytest

from tests.integration.helpers import (ASL, FUNCTIONS, REGION, LambdaContext, call, handlers,
                                       load_event)
from tests.s3server import s3_server  # noqa: F401

HANDLER_ENV = {"ROOT_PREFIX": "", "BLURFACES_CHUNK_SECONDS": "1.2", "MAX_CONCURRENCY": "4",
               "EVENT_BUS": "default",
               # as template.yaml sets them for plan: the ARNs of the functions created below
               **{env: f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTIONS[stage]}"
                  for env, stage in (("WORKER_FUNCTION", "worker"),
                                     ("LARGE_WORKER_FUNCTION", "large_worker"))}}


def _throttled_class():
    from moto.core.exceptions import JsonRESTError

    class Throttled(JsonRESTError):
        code = 429

        def __init__(self):
            super().__init__("TooManyRequestsException", "Rate Exceeded.")
            self.code = 429
    return Throttled


def Throttled():  # noqa: N802 - builds the exception moto turns into an HTTP 429
    return _throttled_class()()


class Dispatcher:
    """Stands in for `LambdaSimpleBackend.invoke`: runs the real handler, records the call."""

    def __init__(self):
        self.handlers = handlers()
        self.calls: list[dict] = []
        self.faults: dict = {}          # function name -> callable(event), may raise
        # function name -> callable(event) -> bool: True answers this Invoke like the Lambda
        # service does when the account or function concurrency is exhausted (HTTP 429
        # TooManyRequestsException; Step Functions sees Lambda.TooManyRequestsException)
        self.throttle: dict = {}
        self.throttled = 0
        self._lock = threading.Lock()

    def reset(self):
        with self._lock:
            self.calls.clear()
            self.faults.clear()
            self.throttle.clear()
            self.throttled = 0

    def invoke(self, backend, function_name, qualifier, body, headers, response_headers):
        name = function_name.rsplit(":function:", 1)[-1].split(":")[0]
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        event = json.loads(body) if body else {}
        record = {"function": name, "event": event}
        throttle = self.throttle.get(name)
        if throttle is not None and throttle(event):
            with self._lock:
                self.throttled += 1
            raise Throttled()
        try:
            fault = self.faults.get(name)
            if fault is not None:
                fault(event)
            result = self.handlers[name](event, LambdaContext(name))
            record["ok"] = True
            payload = json.dumps(result)
        except Exception as e:  # noqa: BLE001 - reported like the Lambda runtime does
            record["ok"] = False
            record["error"] = type(e).__name__
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e),
                                  "stackTrace": traceback.format_tb(e.__traceback__)})
        with self._lock:
            self.calls.append(record)
        return payload.encode("utf-8")

    def count(self, function: str, ok=None, **match) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c["function"] == function
                       and (ok is None or c["ok"] == ok)
                       and all(c["event"].get(k) == v for k, v in match.items()))


def job_events(sqs, events, bucket: str):
    """Route blurfaces' EventBridge events about inputs in `bucket` to a new SQS queue;
    return a function that drains it: the events received since its last call,
    [{"source": "blurfaces", "detail-type": ..., "detail": {...}}, ...]."""
    name = f"bf-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName="default", State="ENABLED", EventPattern=json.dumps(
        {"source": ["blurfaces"], "detail": {"input": [{"prefix": f"s3://{bucket}/"}]}}))
    events.put_targets(Rule=name, EventBusName="default", Targets=[{"Id": "q", "Arn": arn}])

    def drain() -> list:
        got: list = []
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return got
            for m in msgs:
                got.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    return drain


def _post_config(endpoint: str, config: dict) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                 data=json.dumps(config).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201), resp.status


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def fast_waits(asl: dict) -> dict:
    """TEST-ONLY substitution: moto's interpreter really sleeps each Retry interval (with
    BackoffRate, MaxDelaySeconds and JitterStrategy honoured) and each Wait state. The
    deployed definition waits minutes to outlast a throttling wave; here every Retry keeps
    its ErrorEquals, MaxAttempts, BackoffRate and JitterStrategy but waits at most 1 s
    (IntervalSeconds 1, MaxDelaySeconds 1), and Wait states 1 s. Nothing else changes."""
    def walk(node):
        if isinstance(node, dict):
            for r in node.get("Retry", ()):
                if r.get("MaxAttempts", 3) > 0:
                    r["IntervalSeconds"], r["MaxDelaySeconds"] = 1, 1
            if node.get("Type") == "Wait" and "Seconds" in node:
                node["Seconds"] = 1
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(asl)
    return asl


def definition(stitch_arn: str) -> str:
    with open(ASL, encoding="utf-8") as f:
        text = f.read()
    text = text.replace("${StitchFunctionArn}", stitch_arn)
    assert "${" not in text, "unsubstituted placeholder left in the ASL definition"
    return json.dumps(fast_waits(json.loads(text)))


@pytest.fixture(scope="module")
def aws(s3_server):
    import boto3
    from moto.awslambda_simple.models import LambdaSimpleBackend

    endpoint = s3_server.endpoint_url
    port = endpoint.rsplit(":", 1)[1]
    dispatcher = Dispatcher()
    original_invoke = LambdaSimpleBackend.invoke

    def fake_invoke(self, function_name, qualifier, body, headers, response_headers):
        return dispatcher.invoke(self, function_name, qualifier, body, headers,
                                 response_headers)

    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**s3_server.env(), **HANDLER_ENV, "MOTO_PORT": port}.items():
            mp.setenv(k, v)
        from blurfaces.options import ENV_PREFIX, SPECS
        for name in ("STATE_MACHINE_ARN", "KEEP_WORK", "WORK_PREFIX", "BACKFILL_LIMIT",
                     f"{ENV_PREFIX}OPTIONS", *(s.env for s in SPECS)):
            if name not in HANDLER_ENV:
                mp.delenv(name, raising=False)
        mp.setattr(LambdaSimpleBackend, "invoke", fake_invoke)
        _post_config(endpoint, {"stepfunctions": {"execute_state_machine": True},
                                "lambda": {"use_docker": False}})
        try:
            session = boto3.session.Session()
            iam = session.client("iam", endpoint_url=endpoint, region_name=REGION)
            lam = session.client("lambda", endpoint_url=endpoint, region_name=REGION)
            sfn = session.client("stepfunctions", endpoint_url=endpoint, region_name=REGION)
            role_name = f"blurfaces-test-{uuid.uuid4().hex[:8]}"
            role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"Service": ["lambda.amazonaws.com",
                                              "states.amazonaws.com"]}}]}))["Role"]["Arn"]
            arns = {}
            code = _dummy_zip()
            for stage, name in FUNCTIONS.items():
                try:
                    lam.delete_function(FunctionName=name)
                except lam.exceptions.ResourceNotFoundException:
                    pass
                arns[stage] = lam.create_function(
                    FunctionName=name, Runtime="python3.12", Role=role,
                    Handler=f"functions.{stage}.app.handler", Code={"ZipFile": code},
                    Timeout=900, MemorySize=3008)["FunctionArn"]
            assert (arns["worker"], arns["large_worker"]) == (
                HANDLER_ENV["WORKER_FUNCTION"], HANDLER_ENV["LARGE_WORKER_FUNCTION"])
            sm_arn = sfn.create_state_machine(
                name=f"blurfaces-{uuid.uuid4().hex[:8]}",
                definition=definition(arns["stitch"]),
                roleArn=role, type="STANDARD")["stateMachineArn"]
            sqs = session.client("sqs", endpoint_url=endpoint, region_name=REGION)
            events = session.client("events", endpoint_url=endpoint, region_name=REGION)
            yield SimpleNamespace(endpoint=endpoint, s3=s3_server.client, sfn=sfn, lam=lam,
                                  sqs=sqs, events=events, role_arn=role,
                                  server=s3_server, dispatcher=dispatcher,
                                  function_arns=arns, state_machine_arn=sm_arn,
                                  functions=FUNCTIONS, call=call, load_event=load_event,
                                  job_events=lambda bucket: job_events(sqs, events, bucket))
        finally:
            _post_config(endpoint, {"stepfunctions": {"execute_state_machine": False},
                                    "lambda": {"use_docker": True}})
    assert LambdaSimpleBackend.invoke is original_invoke
