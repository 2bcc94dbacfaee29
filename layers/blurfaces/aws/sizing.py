"""Sizing and limits: how long a chunk a worker finishes in time, and whether a source is
within what the deployment processes, decided in plan before any worker starts.

* `choose_worker`: which of the deployment's two worker functions (one image at two memory
  sizes) a job runs on: the cheaper per second of video among those that hold its frames
  and finish a chunk in time;
* `worker_chunk_seconds` / `cap_chunks`: the longest chunk (seconds of video) a worker of the
  deployment's size finishes within `WORKER_BUDGET_S` (720 s of the 900 s timeout) even
  `WORKER_SLOWDOWN` times slower than measured (`WORKER_CPU_S_PER_MPIXEL`,
  `WORKER_COST_ABOVE_1080P`, `WORKER_COST`: the per-frame cost constants, kept here
  and nowhere else; re-measure them with bench/lambda_sizing.py when detection changes);
* `precheck`: from the container's header, before plan decodes anything: a source plan
  could not index within its budget is refused at once;
* `check_limits`: the exact figures after the probe against the stack's limits (duration,
  frame size, chunks per Map, stitch's /tmp); over a limit is a `LimitError`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import cost, stages, storage as st
from ..errors import InputError, LimitError
from ..options import Options
from ..video import main_video_stream, plausible_fps

log = logging.getLogger("blurfaces.aws")

#: Estimated output bit rate for the /tmp check: bits per pixel per frame of H.264 at the
#: default crf 23 / veryfast (camera footage measures 0.05-0.12; 0.15 leaves headroom).
OUTPUT_BITS_PER_PIXEL = 0.15
#: Chunks per job: the Distributed Map runs at most 10,000 child executions in parallel and
#: the items list is read from S3 (never part of the 256 KiB state), so 10,000 is the cap.
MAP_ITEMS_MAX = 10_000


#: A worker's peak memory (MB) by frame size, default options: a line on or over the peaks of
#: whole chunks of the length plan cuts (bench/lambda_sizing.py, 2026-12-07: 710 MB at 720p
#: on one thread and 720 MB on two, where the regions run ahead on a second network
#: session; 888-927 MB at 1080p; at 4K on two threads, 5-5.3 s chunks, 2,069-3,632 MB over six
#: runs: the peak of one code varies by a gigabyte from run to run, see docs/aws.md), and what
#: Lambda must have beyond it: 25% and the runtime's 150 MB. Most of what grows with the
#: frame is pictures: the tracker's 1.1 s look-ahead holds about 33 RGB frames and the
#: decode, detection and encode queues about 20 more (25 MB each at 4K). The line of
#: 2026-12-06 (280 + 277 per megapixel, from shorter chunks) was 150-400 MB under these.
WORKER_PEAK_MB_BASE, WORKER_PEAK_MB_PER_MPIXEL = 390.0, 391.0


def worker_memory_needed_mb(w: int, h: int) -> float:
    """The worker memory (MB) a chunk of w x h frames needs, with margins."""
    return (WORKER_PEAK_MB_BASE + WORKER_PEAK_MB_PER_MPIXEL * w * h / 1e6) * 1.25 + 150


@dataclass(frozen=True)
class Worker:
    """One of the deployment's worker functions: its memory, its name or ARN (what the
    state machine invokes for each chunk; None outside a deployment) and the template
    parameter that sets its memory (named in errors)."""
    memory_mb: int
    function: str | None
    setting: str


#: Frames per billed second of a whole chunk on two threads (3538 MB, wall seconds) over one
#: (1769 MB, CPU seconds: the decoder's and x264's threads share its vCPU):
#: bench/lambda_sizing.py, 2026-12-07, 1.56 at 1080p and 1.65 at 720p (docs/aws.md
#: "Sizing"); beyond two vCPUs assumed to grow alike (not measured: this machine has two
#: cores). For `choose_worker` only.
TWO_VCPU_SPEEDUP = 1.6


def _speedup(vcpus: int) -> float:
    return 1.0 + (TWO_VCPU_SPEEDUP - 1.0) * (vcpus - 1)


def choose_worker(cut: dict, head: dict | None, settings,
                  options: Options | None = None) -> Worker:
    """The worker a job runs on. A deployment has two (`settings.workers()`): the
    `WorkerMemorySize` one (1769 MB, one vCPU) and the `LargeWorkerMemorySize` one (5307
    MB, three vCPUs). Of those whose memory holds the frames and which finish a chunk in
    time, the one with the lower estimated cost per second of video: its memory x (chunk +
    margins, which every chunk decodes and detects too) / (chunk x its speed-up). One thread
    keeps its vCPU busy where two keep 1.6 of 2, so at 1080p the one-vCPU worker's shorter
    chunks (28.1 s against 40 s; at 60 fps 10.6 s against 31.6 s) still come out cheaper;
    1440p does not fit it. When neither fits, the larger (whose limits then say
    what to raise); without the header's frame size, the larger (it holds whatever the
    probe then finds). An explicit chunk count whose chunks no worker that holds the frames
    finishes in time is a LimitError."""
    workers = settings.workers()
    largest = sorted(workers, key=lambda wk: wk.memory_mb)[-1]
    if not head or not head["w"] * head["h"]:
        return largest
    options = options or Options()
    margin = sum(stages.margins(options, frame=(head["w"], head["h"])))
    needed = worker_memory_needed_mb(head["w"], head["h"])
    best, held = None, False
    for wk in workers:
        if needed > wk.memory_mb:
            continue
        held = True
        cap = worker_chunk_seconds(head["w"], head["h"], head["fps"], wk.memory_mb, options,
                                   settings.worker_cpu_s_per_mpixel)
        if cap < MIN_CAPPED_CHUNK_S:
            continue
        if cut.get("chunks"):
            chunk = float(head.get("seconds") or 0.0) / int(cut["chunks"]) or cap
            if chunk > cap:
                continue
        else:
            chunk = min(float(cut.get("chunk_seconds") or cap), cap)
        estimate = wk.memory_mb * (chunk + margin) / (chunk * _speedup(cost.vcpus(wk.memory_mb)))
        if best is None or estimate < best[0]:
            best = (estimate, wk)
    if best is None and held and cut.get("chunks"):
        raise LimitError(f"{int(cut['chunks'])} chunks of {head['w']}x{head['h']} at "
                         f"{head['fps']:.0f} fps are each longer than a worker finishes within "
                         "its time budget; ask for more chunks (or chunk_seconds instead). "
                         "Nothing was processed.")
    return best[1] if best else largest


def check_limits(manifest: dict, settings, worker: Worker) -> dict:
    """What a planned job needs against what the stack gives (its `worker`, from
    `choose_worker`); raises `LimitError` (with every limit exceeded and what to do) before
    any worker runs. Returns the figures."""
    info = manifest["info"]
    w, h = int(info["display_width"]), int(info["display_height"])
    seconds = float(info.get("duration_s") or 0.0)
    fps = float(info.get("avg_rate") or 0.0) or 30.0
    frames = int(info.get("n_packets") or round(seconds * fps))
    source_mb = ((manifest.get("source_version") or {}).get("size") or 0) / 2**20
    output_mb = frames * w * h * OUTPUT_BITS_PER_PIXEL / 8 / 2**20
    # stitch reads the segments from S3 in place; /tmp holds only the final MP4 (video plus
    # the source's audio; faststart moves the index within the same file) and some slack
    tmp_mb = 1.0 * max(output_mb, 0.0) + 0.1 * source_mb + 256
    figures = {"seconds": round(seconds, 3), "frame": [w, h], "chunks": len(manifest["chunks"]),
               "estimated_output_mb": round(output_mb, 1), "stitch_tmp_needed_mb": round(tmp_mb),
               "stitch_tmp_mb": settings.stitch_tmp_mb}
    over = []
    if seconds > settings.max_video_seconds:
        over.append(f"{seconds:.1f} s of video (this deployment takes up to "
                    f"{settings.max_video_seconds:g} s: MaxVideoSeconds); split the video")
    if w * h > settings.max_frame_pixels:
        over.append(f"frames of {w}x{h} (up to {settings.max_frame_pixels} pixels: "
                    "MaxFramePixels); scale the video down")
    needed = worker_memory_needed_mb(w, h)
    figures["worker_memory_needed_mb"] = round(needed)
    figures["worker_memory_mb"] = worker.memory_mb
    if needed > worker.memory_mb:
        over.append(f"frames of {w}x{h}, for which a worker needs about {needed:.0f} MB "
                    f"({worker.setting} is {worker.memory_mb} MB); raise "
                    f"{worker.setting} (5307 fits up to 4K) or scale the video down")
    if len(manifest["chunks"]) > settings.max_chunks:
        over.append(f"{len(manifest['chunks'])} chunks (the Distributed Map takes "
                    f"{settings.max_chunks}); use longer chunks")
    if tmp_mb > settings.stitch_tmp_mb:
        over.append(f"an estimated {output_mb:.0f} MB output, which needs about "
                    f"{tmp_mb:.0f} MB of stitch's /tmp ({settings.stitch_tmp_mb} MB); "
                    "split the video or lower its frame size")
    if over:
        raise LimitError("the input is beyond what this deployment processes: "
                         + "; ".join(over) + ". Nothing was processed.")
    return figures



#: Plan decodes every frame once where the container has no index it can trust (MPEG-TS/PS,
#: AVI, raw streams; see frameindex): nanoseconds of one full vCPU per pixel. `video.probe`
#: measured on one core (Intel Xeon, AVX-512 VNNI; bench notes in docs/aws.md): 0.6 ns on
#: 1080p MPEG-TS (H.264 crf 23 and MPEG-2 at 15 Mb/s, smooth pictures), 1.2 ns on a noisy
#: 1080p crowd (0.5 Mb/s), 2.0 ns on 1080p H.264 at 3.7 Mb/s; 2.5 leaves room for busier
#: broadcast streams. The probe decodes on one thread (frame threads can deadlock FFmpeg on
#: corrupt H.264), so it gets no faster beyond one vCPU: the plan function has one (1769 MB);
#: with less memory Lambda gives it a share of one, and the estimate grows accordingly.
PLAN_DECODE_NS_PER_PIXEL = 2.5
PLAN_MEMORY_MB = 1769
PLAN_BUDGET_S = 900.0 - 60.0

#: A worker's CPU seconds per frame megapixel with the default options on one core
#: (bench/lambda_sizing.py, 2026-12-05, RetinaFace small-face pass: 0.105 at 720p, 0.103 at
#: 1080p on the synthetic multi-face pan; the crowd clips in bench/throughput.py about 0.10).
#: Above 1080p each megapixel costs WORKER_COST_ABOVE_1080P times as much (4K measured 0.18:
#: the regions' grid looks at each pixel 2.9 times a sweep where 1080p's does 1.7).
WORKER_CPU_S_PER_MPIXEL = 0.11
WORKER_COST_ABOVE_1080P = 1.65
#: 1080p's frame as encoders store it (H.264 codes 1080 lines as 1088): not "above 1080p"
PIXELS_1080P = 1920 * 1088
#: Relative cost of other option sets (measured, throughput.py, wall time against the
#: default): quality max 2.7x (crowd720), precision fp32 1.65x, quality fast 0.4x.
WORKER_COST = {("quality", "max"): 2.7, ("precision", "fp32"): 1.65, ("quality", "fast"): 0.4}
#: A chunk, its margins included (stages.margins: 7.0 s with the defaults up to 1080p, 5.4 s
#: above, where no faces are followed by their picture; decoded and
#: detected too), must end within WORKER_BUDGET_S even WORKER_SLOWDOWN times slower than the
#: rate above (busier scenes, more faces, a slower host): 720 s leaves 180 s of the 900 s
#: timeout for the start and the transfers. It was 450 s (half the timeout) until
#: 2026-12-07: 1080p chunks of 16.5 s at 1 vCPU, whose margins cost a third of their time;
#: 29.7 s chunks bill about 14% less per video-hour (docs/aws.md "Sizing"); 28.1 s since
#: 2026-12-08 (1.6 s more margin: follow.py).
WORKER_SLOWDOWN = 3.0
WORKER_BUDGET_S = 720.0
MIN_CAPPED_CHUNK_S = 1.0


def worker_chunk_seconds(w: int, h: int, fps: float, worker_memory_mb: int,
                         options: Options | None = None,
                         cpu_s_per_mpixel: float | None = None) -> float:
    """The longest chunk (seconds of video) a worker of that size finishes in time: its
    vCPUs run it `_speedup` times as fast as one (two threads were measured 1.6x one, not
    2x), the same model `choose_worker` costs it by."""
    options = options or Options()
    vcpus = cost.vcpus(worker_memory_mb)
    rate = WORKER_CPU_S_PER_MPIXEL if cpu_s_per_mpixel is None else cpu_s_per_mpixel
    if w * h > PIXELS_1080P:
        rate *= WORKER_COST_ABOVE_1080P
    for (name, value), factor in WORKER_COST.items():
        if getattr(options, name) == value:
            rate *= factor
    per_frame = max(rate, 1e-6) * w * h / 1e6 * WORKER_SLOWDOWN / _speedup(vcpus)
    fps = plausible_fps(fps)          # a VFR file's header may claim 1000 fps ("1k tbr")
    return WORKER_BUDGET_S / per_frame / fps - sum(stages.margins(options, frame=(w, h)))


def cap_chunks(cut: dict, head: dict | None, settings, worker: Worker,
               options: Options | None = None) -> dict:
    """`cut` with chunk_seconds lowered to what `worker` (from `choose_worker`) finishes in
    time with `options` (see above); LimitError when not even MIN_CAPPED_CHUNK_S fits. An
    explicit chunk count is left alone."""
    if not head or cut.get("chunks") or not cut.get("chunk_seconds") \
            or not head["w"] * head["h"]:
        return cut
    cap = worker_chunk_seconds(head["w"], head["h"], head["fps"], worker.memory_mb,
                               options, settings.worker_cpu_s_per_mpixel)
    if cap < MIN_CAPPED_CHUNK_S:
        raise LimitError(f"frames of {head['w']}x{head['h']} at {head['fps']:.0f} fps take "
                         f"longer than a worker of {worker.memory_mb} MB can run "
                         f"even for a 1 s chunk; raise {worker.setting} (more vCPUs) or scale "
                         "the video down. Nothing was processed.")
    if cut["chunk_seconds"] > cap:
        log.info("chunks of %.1f s instead of %.1f s: %dx%d at %.1f fps, worker %d MB",
                 cap, cut["chunk_seconds"], head["w"], head["h"], head["fps"],
                 worker.memory_mb)
        return {**cut, "chunk_seconds": round(cap, 2)}
    return cut


def plan_decode_seconds(seconds: float, fps: float, w: int, h: int,
                        memory_mb: int | None = None) -> float:
    """Estimated seconds for a plan function of `memory_mb` to decode every frame of a
    video (see PLAN_DECODE_NS_PER_PIXEL)."""
    share = min(1.0, (memory_mb or PLAN_MEMORY_MB) / cost.MB_PER_VCPU)
    return seconds * fps * w * h * PLAN_DECODE_NS_PER_PIXEL / share * 1e-9


def precheck(uri: str, pin: dict, settings) -> dict | None:
    """Before plan decodes anything: a source that plan could not index within its timeout
    (estimated from the container's header: duration, rate and frame size) is refused at
    once (LimitError, with the longest part that fits), never left to time out. The other
    limits are checked on the exact figures after the probe (`check_limits`). Returns the
    header's figures {"w", "h", "fps", "seconds"} (None when it has no video stream)."""
    budget = settings.plan_budget_s
    import av
    with st.get_storage(uri).open_read(uri, pin=pin) as f:
        try:
            c = av.open(f)
        except av.FFmpegError:
            return None                         # unreadable: plan's probe says why
        try:
            if not c.streams.video:
                return None
            try:
                vs = main_video_stream(c, uri)
            except InputError:
                return None                     # plan's probe says why
            seconds = float(vs.duration * vs.time_base) if vs.duration and vs.time_base \
                else (c.duration or 0) / 1e6
            w, h = vs.codec_context.width or 0, vs.codec_context.height or 0
            fps = float(vs.average_rate or vs.guessed_rate or 30)
        finally:
            c.close()
    decode_s = plan_decode_seconds(seconds, fps, w, h, settings.function_memory_mb)
    if decode_s > budget:
        raise LimitError(f"the input is beyond what this deployment processes: about "
                         f"{decode_s:.0f} s for plan to index every frame of {seconds:.0f} s "
                         f"of {w}x{h} video (its budget is {budget:.0f} s); split the video "
                         f"into parts of at most {seconds * budget / decode_s / 60:.1f} "
                         "minutes. Nothing was processed.")
    return {"w": w, "h": h, "fps": fps, "seconds": seconds}
