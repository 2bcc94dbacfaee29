"""The local runner: plan, then the chunk workers in a process pool, then stitch.

Workers x onnxruntime threads = the CPUs this process may use. A chunk that fails is retried
alone; one that keeps failing ends the run with an error naming the chunk, and nothing is
published. Expected errors (a corrupt input, say) are not retried: they would fail again.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from . import stages
from .detect import available_cpus
from .errors import BlurfacesError, ChunkError
from .model import check_readable, ensure_model
from .options import QUALITY, Options, validate_execution
from .publish import pid_alive

WORK_PREFIX = "blurfaces-work-"
# Work areas are named by pid and host, so a TMPDIR shared between machines or containers
# (separate pid namespaces) never has another host's live work area taken for a dead one.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]

MIN_CHUNK_S = 10.0      # shorter chunks spend too much of their time on margins
MAX_LOCAL_CHUNK_S = 300.0

_progress_queue = None


def _init_worker(q, parent: int):
    global _progress_queue
    _progress_queue = q
    # The parent decides when workers stop (it terminates them on SIGINT/SIGTERM), and a
    # worker must not outlive a parent that was killed outright.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
        if os.getppid() != parent:          # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):
        pass                                # not Linux: orphans end when their chunk ends


def clean_dead_work_dirs(tmp: str | None = None) -> list[str]:
    """Remove work areas of runs on this machine whose process is gone (killed with SIGKILL:
    nothing else leaves one behind)."""
    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for n in names:
        if not n.startswith(WORK_PREFIX):
            continue
        pid, _, rest = n[len(WORK_PREFIX):].partition("-")
        if rest.startswith(_HOST + "-") and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(os.path.join(tmp, n), ignore_errors=True)
            removed.append(n)
    return removed


def _report(n: int) -> None:
    if _progress_queue is not None:
        _progress_queue.put(n)


def _run_chunk(worker_fn, manifest, index, threads):
    return worker_fn(manifest, index, threads=threads, progress=_report)


def local_chunks(duration: float, workers: int) -> int:
    """Enough chunks to keep every worker busy, none shorter than MIN_CHUNK_S."""
    by_len = max(1, math.floor(duration / MIN_CHUNK_S))
    wanted = max(workers, math.ceil(duration / MAX_LOCAL_CHUNK_S))
    return max(1, min(by_len, wanted))


def run(source: str, *, outputs: dict, options: Options, workers: int | None = None,
        chunk_seconds: float | None = None, chunks: int | None = None, work: str | None = None,
        progress=None, retries: int = 2, worker_fn=None, keep_work: bool = False,
        overwrite: bool = False, publish_token: str | None = None, pin: dict | None = None,
        job: dict | None = None) -> dict:
    """Run the whole pipeline on this machine; returns the stitch summary.

    progress: None, or a callable(frames_done_increment, total_frames) for each update."""
    t0 = time.perf_counter()
    source = os.fspath(source)
    validate_execution(workers, chunk_seconds, chunks)
    cpus = available_cpus()
    workers = max(1, int(workers or cpus))
    worker_fn = worker_fn or stages.worker
    # Fetched (or built) here, once, not by each worker process at the same time.
    if not options.boxes:       # boxes from a file: no detection, no model
        path = ensure_model(precision=options.precision)
        if QUALITY[options.quality].get("fine_network") == "retinaface":
            # a broken CenterFace file says so (one line) before anything else is fetched;
            # parsed with onnx, not loaded by onnxruntime, which would write its telemetry
            # session file into TMPDIR before the work area is made there
            check_readable(path)
            ensure_model(network="retinaface")
    own_work = work is None
    if own_work:
        clean_dead_work_dirs()
        work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-{_HOST}-")
    try:
        pin = pin or stages.pin_source(source)
        info = stages.probe_source(source, pin=pin)
        if chunk_seconds is None and chunks is None:
            chunks = local_chunks(info.duration_s, workers)
        manifest = stages.plan(source, outputs=outputs, options=options, work=work,
                               chunk_seconds=chunk_seconds, chunks=chunks, info=info,
                               overwrite=overwrite, publish_token=publish_token, pin=pin,
                               job=job)
        n = len(manifest["chunks"])
        total = sum(c["frames_expected"] for c in manifest["chunks"])
        if progress is not None:
            progress(0, total)
        pool_size = min(workers, n)
        threads = max(1, cpus // pool_size)
        t_workers = time.perf_counter()
        if pool_size == 1:
            for c in manifest["chunks"]:
                _with_retries(lambda i=c["index"]: worker_fn(
                    manifest, i, threads=threads,
                    progress=(lambda k: progress(k, total)) if progress else None),
                    manifest, c["index"], retries)
        else:
            _pool(manifest, worker_fn, pool_size, threads, retries,
                  (lambda k: progress(k, total)) if progress else None)
        t_stitch = time.perf_counter()
        summary = stages.stitch(manifest, timings={
            "workers": pool_size, "threads_per_worker": threads, "cpus": cpus,
            "workers_wall_s": round(t_stitch - t_workers, 3)})
        summary["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
        return summary
    finally:
        if own_work and not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def _gave_up(manifest, index, attempts, err) -> ChunkError:
    c = manifest["chunks"][index]
    return ChunkError(f"chunk {index} ({c['start_s']:.2f}-{c['stop_s']:.2f} s of "
                      f"{manifest['source']}) failed {attempts} times; last error: "
                      f"{type(err).__name__}: {err}. No output was written.",
                      index=index, start_s=c["start_s"], stop_s=c["stop_s"],
                      input=manifest["source"], stage="worker")


def _with_retries(call, manifest, index, retries):
    for attempt in range(retries + 1):
        try:
            return call()
        except BlurfacesError:
            raise
        except Exception as e:  # noqa: BLE001 - any other failure of a chunk is retried
            if attempt == retries:
                raise _gave_up(manifest, index, retries + 1, e) from e


def _pool(manifest, worker_fn, pool_size, threads, retries, progress):
    ctx = mp.get_context("spawn")
    q = ctx.Queue() if progress else None
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            try:
                progress(q.get(timeout=0.2))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    drainer = threading.Thread(target=drain, daemon=True) if q is not None else None
    if drainer:
        drainer.start()
    attempts = {c["index"]: 0 for c in manifest["chunks"]}
    ex = ProcessPoolExecutor(pool_size, mp_context=ctx, initializer=_init_worker,
                             initargs=(q, os.getpid()))
    clean = False
    try:
        with _signals_deferred():
            running = {ex.submit(_run_chunk, worker_fn, manifest, i, threads): i
                       for i in attempts}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                err = fut.exception()
                if err is None:
                    continue
                if isinstance(err, BlurfacesError):
                    raise err
                attempts[i] += 1
                if attempts[i] > retries:
                    raise _gave_up(manifest, i, attempts[i], err)
                with _signals_deferred():
                    running[ex.submit(_run_chunk, worker_fn, manifest, i, threads)] = i
        clean = True
    finally:
        if not clean:
            _stop_pool(ex)
        ex.shutdown(wait=True, cancel_futures=True)
        stop.set()
        if drainer:
            drainer.join(timeout=2)
        if q is not None:
            while True:
                try:
                    progress(q.get_nowait())
                except (queue.Empty, EOFError, OSError):
                    break


@contextlib.contextmanager
def _signals_deferred():
    """SIGINT/SIGTERM held back while worker processes are being spawned: a signal handled
    half-way through a spawn leaves a child reading its start-up data from a closed pipe,
    which prints a traceback after the run's one error line. The signal is acted on (as it
    would have been) as soon as the spawn is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda n, f: got.append(n)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if got:
            signal.raise_signal(got[0])


def _stop_pool(ex: ProcessPoolExecutor) -> None:
    """Stop a pool's workers now (a failed chunk, SIGINT, SIGTERM): waiting for the running
    chunks to finish would keep them busy long after the run has given up."""
    procs = list((getattr(ex, "_processes", None) or {}).values())   # no public API for this
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
