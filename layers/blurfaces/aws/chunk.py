"""One item of the Distributed Map: run chunk N of a job (`run_chunk`), or return at once
when an earlier attempt finished it."""
from __future__ import annotations

from .. import cost, stages, storage as st
from ..errors import BlurfacesError, OptionError
from .settings import Settings
from .work import error_uri


def worker_threads(settings: Settings) -> int:
    """Threads for a chunk (onnxruntime, the decoder, x264). Lambda shows a function more
    CPUs than it gives it time for: 2 from 128 to 3008 MB, 3 up to 5307 MB, while its share
    is one vCPU per 1769 MB (a 1769 MB worker sees 2 CPUs with one vCPU's time, a 3538 MB
    one sees 3 with two). Threads beyond the share wait on one another (measured here: 2
    threads on one busy core fell behind 1), so on Lambda the memory decides."""
    cpus = stages.default_workers()
    if settings.function_memory_mb:
        return min(cpus, cost.vcpus(settings.function_memory_mb))
    return cpus


def run_chunk(event: dict, settings: Settings) -> dict:
    """{"work": URI, "index": N} -> URIs and counts (never frames or rows: Step Functions
    payloads are capped at 256 KiB)."""
    work = event.get("work") if isinstance(event, dict) else None
    index = event.get("index") if isinstance(event, dict) else None
    if not isinstance(work, str) or not work:
        raise OptionError("worker event needs 'work' (the job's work area URI).")
    if isinstance(index, bool) or not isinstance(index, int):
        raise OptionError(f"worker event needs an integer 'index' (got {index!r}).")
    manifest = stages.load_manifest(work)
    if not 0 <= index < len(manifest["chunks"]):
        raise OptionError(f"chunk index {index} is out of range: the job in {work} has "
                          f"{len(manifest['chunks'])} chunks.")
    jid = (manifest.get("job") or {}).get("id")
    fn = (manifest.get("job") or {}).get("lambda") or {}
    store = st.get_storage(work)
    part_uri = stages.part_uri(work, index)
    if store.exists(part_uri):
        # Done by an earlier attempt (a retried child, the second pass over the Map after
        # throttling): finished chunks are kept, never paid for twice.
        part = store.read_json(part_uri)
        return {"index": index, "job_id": jid, "frames": part["frames"],
                "detections": part.get("detections"), "segment": part["segment"],
                "part": part_uri, "reused": True}
    threads = worker_threads(settings)
    try:
        part = stages.worker(manifest, index, threads=threads)
    except Exception as e:
        try:        # for the failure report (Step Functions keeps only a generic Map error)
            store.write_json(error_uri(work, index), {
                "error_type": type(e).__name__, "message": str(e)})
        except BlurfacesError:
            pass
        raise
    secs = float(part.get("seconds") or 0.0)
    memory = settings.function_memory_mb or fn.get("worker_memory_mb") \
        or cost.DEFAULT_WORKER_MEMORY_MB
    size = (manifest.get("source_version") or {}).get("size") or 0
    usd = cost.chunk_cost(secs, memory, fn.get("architecture", "x86_64"),
                          int(size / max(1, len(manifest["chunks"]))))
    return {"index": index, "job_id": jid, "frames": part["frames"],
            "detections": part.get("detections"), "seconds": round(secs, 3),
            "fps": round(part["frames"] / secs, 2) if secs > 0 else None,
            "threads": threads, "memory_mb": memory, "cost_usd": round(usd, 7),
            "segment": part["segment"], "part": part_uri}
