"""The local runner: plan, then the chunk workers in a process pool, then stitch.

Workers x onnxruntime threads = the CPUs this process may use. A chunk that fails is retried
alone; one that keeps failing ends the run with an error naming the chunk, and nothing is
published. Expected errors (a corrupt input, say) are not retried: they would fail again.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from . import stages, storage as st
from .detect import available_cpus
from .errors import BlurfacesError, ChunkError
from .options import Options

MIN_CHUNK_S = 10.0      # shorter chunks spend too much of their time on margins
MAX_LOCAL_CHUNK_S = 300.0

_progress_queue = None


def _init_worker(q):
    global _progress_queue
    _progress_queue = q


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
        progress=None, retries: int = 2, worker_fn=None, keep_work: bool = False) -> dict:
    """Run the whole pipeline on this machine; returns the stitch summary.

    progress: None, or a callable(frames_done_increment, total_frames) for each update."""
    t0 = time.perf_counter()
    source = os.fspath(source)
    cpus = available_cpus()
    workers = max(1, int(workers or cpus))
    worker_fn = worker_fn or stages.worker
    own_work = work is None
    if own_work:
        work = tempfile.mkdtemp(prefix="blurfaces-work-")
    try:
        info = stages.probe_source(source)
        if chunk_seconds is None and chunks is None:
            chunks = local_chunks(info.duration_s, workers)
        manifest = stages.plan(source, outputs=outputs, options=options, work=work,
                               chunk_seconds=chunk_seconds, chunks=chunks, info=info)
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
                      f"{type(err).__name__}: {err}. No output was written.")


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
    try:
        with ProcessPoolExecutor(pool_size, mp_context=ctx, initializer=_init_worker,
                                 initargs=(q,)) as ex:
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
                        for f in running:
                            f.cancel()
                        raise err
                    attempts[i] += 1
                    if attempts[i] > retries:
                        for f in running:
                            f.cancel()
                        raise _gave_up(manifest, i, attempts[i], err)
                    running[ex.submit(_run_chunk, worker_fn, manifest, i, threads)] = i
    finally:
        stop.set()
        if drainer:
            drainer.join(timeout=2)
        if q is not None:
            while True:
                try:
                    progress(q.get_nowait())
                except (queue.Empty, EOFError, OSError):
                    break


def ensure_writable(uri: str) -> None:
    """Fail before any work when the output folder cannot take files."""
    store = st.get_storage(uri)
    local = store.local_path(uri)
    if local is None:
        return
    from .errors import OutputError
    folder = os.path.dirname(os.path.abspath(local))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"{folder}: is a file, not a folder; the output cannot go under it. "
                          "Choose another output path.")
    if not os.path.isdir(folder):
        raise OutputError(f"{folder}: output folder does not exist. Create it or choose "
                          "another output path.")
    try:
        fd, probe_path = tempfile.mkstemp(dir=folder, prefix=".blurfaces-write-test-")
        os.close(fd)
        os.unlink(probe_path)
    except OSError as e:
        raise OutputError(f"{folder}: cannot write here ({e.strerror}). Choose a writable "
                          "output folder (-o PATH).") from None
