"""What a job costs on AWS: the price model behind the summary's ``cost`` field, the
per-chunk/per-job metrics and the US$ per video-hour table in docs/aws.md.

This module owns the arithmetic only; it imports nothing from AWS and reads no account data.
Prices are public list prices (us-east-1; see /work/shared/FIELD_NOTES.md and the sources
named in `PRICES`), so every figure is an *estimate*: it leaves out free tiers, savings plans,
data transfer, S3 storage, CloudWatch/X-Ray and the ECR image.

Billed items:

* Lambda compute: GB-seconds (memory MB / 1024 x billed seconds) at the x86_64 or arm64 rate,
  plus the per-request charge;
* Step Functions Standard: state transitions (the parent execution's states plus, per chunk,
  one Distributed Map child execution with its Worker task; each retry is one more);
* S3 requests: PUT/LIST class and GET class (the worker's reads of the source are ranged GETs
  of `S3_READ_PART` bytes each).
"""
from __future__ import annotations

import math

#: US$ list prices (us-east-1). Lambda and Step Functions: FIELD_NOTES.md (AWS pricing
#: pages); S3 Standard requests: aws.amazon.com/s3/pricing (PUT/COPY/POST/LIST
#: $0.005 per 1,000, GET $0.0004 per 1,000); Lambda requests $0.20 per million.
PRICES = {
    "lambda_gb_s": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "lambda_request": 0.20 / 1e6,
    "sfn_transition": 25.0 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
}

#: Lambda gives one vCPU of time per 1,769 MB (5.8 at 10,240 MB, where it shows 6 CPUs; a
#: worker runs 5 threads there).
MB_PER_VCPU = 1769
#: The worker Lambdas' memory by default (template.yaml WorkerMemorySize and
#: LargeWorkerMemorySize): one vCPU for frames up to 1080p (cheaper per video-hour), three
#: for larger ones, up to 4K, whose peak needs more than 3538 MB with the margins
#: (aws.sizing.choose_worker; docs/aws.md "Sizing").
DEFAULT_WORKER_MEMORY_MB = 1769
DEFAULT_LARGE_WORKER_MEMORY_MB = 5307
#: Step Functions transitions: the parent's fixed states (Chunks, Stitch, Done and the Map's
#: own start/end bookkeeping), and per chunk the child execution (start, Worker task, end).
PARENT_TRANSITIONS = 6
CHILD_TRANSITIONS = 3
#: Bytes per ranged GET when a worker streams the source from S3.
S3_READ_PART = 8 * 1024 * 1024


def vcpus(memory_mb: int) -> int:
    """The vCPUs (threads the worker uses) Lambda gives at `memory_mb`."""
    return max(1, min(6, int(memory_mb // MB_PER_VCPU)))


def lambda_cost(seconds: float, memory_mb: float, arch: str = "x86_64",
                requests: int = 1) -> float:
    """US$ of `requests` invocations billed `seconds` in total at `memory_mb`."""
    if arch not in PRICES["lambda_gb_s"]:
        raise ValueError(f"architecture {arch!r}: use x86_64 or arm64")
    return (max(0.0, seconds) * memory_mb / 1024.0 * PRICES["lambda_gb_s"][arch]
            + requests * PRICES["lambda_request"])


def chunk_cost(seconds: float, memory_mb: float, arch: str = "x86_64",
               source_bytes: int = 0, retries: int = 0) -> float:
    """One worker chunk: its Lambda time, its child execution and its S3 requests (the
    manifest, the ranged source reads, the segment and part PUTs)."""
    gets = 1 + math.ceil(max(0, source_bytes) / S3_READ_PART)
    puts = 2
    return (lambda_cost(seconds, memory_mb, arch, requests=1 + retries)
            + (CHILD_TRANSITIONS + retries) * PRICES["sfn_transition"]
            + gets * PRICES["s3_get"] + puts * PRICES["s3_put"])


def job_cost(*, worker_seconds: list[float], worker_memory_mb: float,
             plan_seconds: float = 0.0, plan_memory_mb: float = 1024,
             stitch_seconds: float = 0.0, stitch_memory_mb: float = 3008,
             arch: str = "x86_64", source_bytes: int = 0, outputs: int = 4) -> dict:
    """The estimate of one job from its measured stage seconds: a breakdown in US$ and the
    total (the summary's ``cost`` field)."""
    n = len(worker_seconds)
    per_chunk_bytes = source_bytes / n if n else 0
    workers = sum(chunk_cost(s, worker_memory_mb, arch, int(per_chunk_bytes))
                  for s in worker_seconds)
    lam_other = (lambda_cost(plan_seconds, plan_memory_mb, arch)
                 + lambda_cost(stitch_seconds, stitch_memory_mb, arch))
    sfn = PARENT_TRANSITIONS * PRICES["sfn_transition"]
    # plan: HEAD + probe reads + manifest/items PUTs; stitch: every segment and part GET,
    # the outputs' PUTs (multipart counted as one), the work area's LIST and DELETEs (free).
    s3 = ((2 + math.ceil(source_bytes / S3_READ_PART)) * PRICES["s3_get"]
          + 2 * PRICES["s3_put"]
          + (2 * n + math.ceil(source_bytes / S3_READ_PART)) * PRICES["s3_get"]
          + (outputs + 1) * PRICES["s3_put"])
    total = workers + lam_other + sfn + s3
    gb_s = (sum(worker_seconds) * worker_memory_mb + plan_seconds * plan_memory_mb
            + stitch_seconds * stitch_memory_mb) / 1024.0
    return {"usd": round(total, 6), "workers_usd": round(workers, 6),
            "plan_stitch_usd": round(lam_other, 6), "step_functions_usd": round(sfn, 6),
            "s3_requests_usd": round(s3, 6), "lambda_gb_s": round(gb_s, 3),
            "architecture": arch, "worker_memory_mb": worker_memory_mb,
            "basis": "list prices us-east-1 (blurfaces.cost.PRICES); measured stage seconds; "
                     "no free tier, storage, transfer or logs"}


def per_video_hour(*, fps_processed: float, worker_memory_mb: int, video_fps: float = 30.0,
                   chunk_seconds: float = 30.0, margin_seconds: float,
                   startup_seconds: float = 3.0, stitch_seconds_per_hour: float = 120.0,
                   plan_seconds_per_hour: float = 30.0, arch: str = "x86_64",
                   bitrate_mbps: float = 8.0, max_concurrency: int = 100) -> dict:
    """US$ and wall clock for one hour of video, from a measured worker throughput
    (`fps_processed`: frames per second one worker Lambda of `worker_memory_mb` achieves).

    Each chunk also decodes and tracks its margins (`margin_seconds` of extra video: the sum of
    stages.margins, about 7.0 s with the defaults up to 1080p; 0 when `fps_processed` was
    measured on a whole chunk with its margins, as bench/lambda_sizing.py does) and pays a start-up
    (`startup_seconds`: image cold start, model load). Wall clock assumes `max_concurrency`
    workers at once and no throttling: waves x the longest chunk, plus plan and stitch.
    """
    chunks = math.ceil(3600.0 / chunk_seconds)
    frames_per_chunk = (chunk_seconds + margin_seconds) * video_fps
    chunk_s = frames_per_chunk / fps_processed + startup_seconds
    source_bytes = int(bitrate_mbps * 1e6 / 8 * 3600)
    est = job_cost(worker_seconds=[chunk_s] * chunks, worker_memory_mb=worker_memory_mb,
                   plan_seconds=plan_seconds_per_hour, stitch_seconds=stitch_seconds_per_hour,
                   arch=arch, source_bytes=source_bytes)
    waves = math.ceil(chunks / max_concurrency)
    return {"usd": est["usd"], "chunks": chunks, "chunk_s": round(chunk_s, 1),
            "worker_gb_s": round(chunk_s * chunks * worker_memory_mb / 1024, 1),
            "wall_s": round(plan_seconds_per_hour + waves * chunk_s + stitch_seconds_per_hour, 1),
            "breakdown": est}


def of_job(manifest: dict, timings: dict) -> dict | None:
    """The summary's ``cost`` field: the estimate for a job run on Lambda (the job layer
    records the functions' memory and architecture as ``manifest["job"]["lambda"]``), from
    the stage seconds stitch measured; None for a job run elsewhere (CLI, local)."""
    fn = (manifest.get("job") or {}).get("lambda")
    if not isinstance(fn, dict):
        return None
    size = (manifest.get("source_version") or {}).get("size") or 0
    return job_cost(worker_seconds=[float(s) for s in timings.get("workers_s") or []],
                    worker_memory_mb=float(fn.get("worker_memory_mb", DEFAULT_WORKER_MEMORY_MB)),
                    plan_seconds=float(timings.get("plan_s") or 0.0),
                    plan_memory_mb=float(fn.get("plan_memory_mb", 1024)),
                    stitch_seconds=float(timings.get("stitch_s") or 0.0),
                    stitch_memory_mb=float(fn.get("stitch_memory_mb", 3008)),
                    arch=str(fn.get("architecture", "x86_64")), source_bytes=int(size))
