"""The AWS clients besides S3 (Step Functions, EventBridge, Lambda): made on first use, one
per service and region, with botocore's standard retries. boto3 is imported only here, and
only when a client is first needed."""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=8)
def client(service: str, region: str | None):
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(service, region_name=region,
                                          config=Config(retries={"mode": "standard"}))


def region(arn: str | None = None) -> str | None:
    """The region of `arn`, else this process's (AWS_REGION / AWS_DEFAULT_REGION)."""
    return arn.split(":")[3] if arn else (os.environ.get("AWS_REGION")
                                          or os.environ.get("AWS_DEFAULT_REGION"))


def execution_arn(state_machine: str, name: str) -> str:
    p = state_machine.split(":")      # arn:aws:states:REGION:ACCOUNT:stateMachine:NAME
    return ":".join(p[:5] + ["execution", p[6], name])


def execution_status(state_machine: str, name: str) -> str | None:
    """RUNNING / SUCCEEDED / FAILED / ... of the execution `name`; None when there is none."""
    sfn = client("stepfunctions", region(state_machine))
    try:
        return sfn.describe_execution(
            executionArn=execution_arn(state_machine, name))["status"]
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def invoke_async(function_arn: str, payload: bytes) -> None:
    """Invoke a Lambda function asynchronously (InvocationType Event)."""
    client("lambda", region(function_arn)).invoke(
        FunctionName=function_arn, InvocationType="Event", Payload=payload)
