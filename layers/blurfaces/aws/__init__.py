"""The job layer on AWS: what the Lambda adapters in functions/*/app.py call.

The adapters only parse their event and call one function here; every job rule comes from
`jobs` (inputs, job id, layout, sidecar options, results, failure reports), the data path
from `stages`. This package owns what is AWS-specific around them, one concern per module:

* `settings`: the deployment's settings, parsed once from the environment into a typed
  record (`Settings.from_env`), and the layered options of one job (`job_options`);
* `events`: S3 notifications, EventBridge "Object Created" and direct events into `Upload`
  records; the loop guard; the version an event names;
* `sizing`: which of the two worker functions a job runs on (`choose_worker`), the chunk
  length it finishes in time, the limits checked in plan before any worker runs
  (`LimitError`), the per-frame cost constants;
* `start`: planning one upload and starting its execution (`start_job`), and the backfill
  of a whole prefix (`backfill`);
* `chunk`: one item of the Distributed Map (`run_chunk`);
* `finish`: stitch and publish (`stitch_job`), the failure path (`abort_job`), rollback by
  ownership;
* `notify`: the "Job Succeeded" / "Job Failed" EventBridge events;
* `work`: the job's work area (items, chunk errors, removal); `clients`: Step Functions,
  EventBridge and Lambda clients.

No AWS library is imported when this package loads: boto3 only when a client is first
needed.
"""
from ..errors import LimitError
from .chunk import run_chunk
from .events import Upload, input_reason, uploads, version_stat
from .finish import abort_job, output_uris, rollback, state_error, stitch_job
from .notify import EVENT_SOURCE, FAILED, SUCCEEDED, notify
from .settings import Settings, job_options
from .sizing import (MAP_ITEMS_MAX, cap_chunks, check_limits, precheck,
                     worker_chunk_seconds)
from .start import backfill, start_job

__all__ = ["LimitError", "run_chunk", "Upload", "input_reason", "uploads", "version_stat",
           "abort_job", "output_uris", "rollback", "state_error", "stitch_job",
           "EVENT_SOURCE", "FAILED", "SUCCEEDED", "notify", "Settings", "job_options",
           "MAP_ITEMS_MAX", "cap_chunks", "check_limits", "precheck", "worker_chunk_seconds",
           "backfill", "start_job"]
