"""Stitch Lambda: join the chunks and publish the outputs; or abort a failed job.

Event from the state machine:
    {"work": "s3://bucket/blurfaces-work/<job-id>/"}                      -> stitch
    {"work": "...", "action": "abort", "error": {"Error": .., "Cause": ..}} -> abort

stitch: `blurfaces.stages.stitch` (segments joined without re-encoding, the source's audio
muxed once, data rows merged, heatmap, summary JSON written last), then
`blurfaces.stages.cleanup` of the work area (skipped when KEEP_WORK is true; a failure to
clean up is logged, not raised: the outputs are complete and a lifecycle rule on the work
prefix removes leftovers). Returns the output URIs and a few counts.

abort (the state machine's Catch path): removes whatever this job published and the work
area, so a failed job leaves no outputs behind.

How "whatever this job published" is known: before stitching, the handler records in
`<work>/publish.json` the ETag and LastModified of every output name as they are *before*
this job writes anything (only once: a Step Functions retry of stitch keeps the first
record). An output whose ETag/LastModified differ from that record was written by this job.
A stitch that raises rolls its own outputs back before re-raising; a stitch killed by the
Lambda timeout leaves the record, and the abort path rolls back from it. After a successful
stitch the record is deleted first, so nothing can roll back a complete job. An older
output of the same name that this job had replaced is gone with the rollback (with bucket
versioning on, its previous version is still there).
"""
from __future__ import annotations

import os

from aws_lambda_powertools import Logger

from blurfaces import stages, storage as st
from blurfaces.errors import OptionError

logger = Logger(service="blurfaces", child=False)

PUBLISH_RECORD = "publish.json"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def output_uris(manifest: dict) -> list[str]:
    """Every name this job may publish (the summary, written last, comes last)."""
    outs, opts = manifest["outputs"], manifest["options"]
    uris = [outs["video"]]
    uris += [f"{outs['stem']}.{fmt}" for fmt in opts.get("data_format", [])]
    uris += [outs["heatmap"], outs["summary"]]
    return uris


def _stamp(uri: str):
    """(ETag, LastModified) of an S3 object, None when there is none (local paths too)."""
    if not st.is_s3(uri):
        return None
    store = st.get_storage(uri)
    if not store.exists(uri):
        return None
    head = store._head(uri)
    return [str(head.get("ETag", "")), str(head.get("LastModified", ""))]


def record_before(manifest: dict) -> None:
    work = manifest["work"]
    store = st.get_storage(work)
    uri = st.join(work, PUBLISH_RECORD)
    if store.exists(uri):
        return                      # a retry: keep the state from before the first attempt
    store.write_json(uri, {u: _stamp(u) for u in output_uris(manifest)})


def rollback(manifest: dict) -> list[str]:
    """Delete the outputs this job wrote (per the publish record); returns them."""
    work = manifest["work"]
    store = st.get_storage(work)
    uri = st.join(work, PUBLISH_RECORD)
    if not store.exists(uri):
        return []
    before = store.read_json(uri)
    removed = []
    for out in output_uris(manifest):
        now = _stamp(out)
        if now is not None and now != before.get(out):
            st.get_storage(out).delete(out)
            removed.append(out)
    if removed:
        logger.warning("rolled back outputs of a failed job", extra={"removed": removed})
    return removed


def _load(event) -> tuple[str, dict]:
    work = event.get("work") if isinstance(event, dict) else None
    if not isinstance(work, str) or not work:
        raise OptionError("stitch event needs 'work' (the job's work area URI).")
    return work, stages.load_manifest(work)


def abort(event: dict) -> dict:
    work = event.get("work") if isinstance(event, dict) else None
    if not isinstance(work, str) or not work:
        raise OptionError("abort event needs 'work' (the job's work area URI).")
    store = st.get_storage(work)
    removed = []
    if store.exists(st.join(work, stages.MANIFEST)):
        manifest = stages.load_manifest(work)
        removed = rollback(manifest)
    # Remove the whole work area, with or without a manifest.
    for uri in store.list(work):
        store.delete(uri)
    logger.info("job aborted", extra={"work": work, "error": event.get("error"),
                                      "removed_outputs": removed})
    return {"work": work, "aborted": True, "removed_outputs": removed}


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event, context):
    if isinstance(event, dict) and event.get("action") == "abort":
        return abort(event)
    work, manifest = _load(event)
    logger.append_keys(work=work)
    record_before(manifest)
    try:
        summary = stages.stitch(manifest)
    except BaseException:
        try:
            rollback(manifest)
        except Exception:  # noqa: BLE001 - keep the original error; abort retries this
            logger.exception("rollback after a failed stitch failed")
        raise
    store = st.get_storage(work)
    store.delete(st.join(work, PUBLISH_RECORD))      # complete: nothing may roll it back now
    cleaned = False
    if not _truthy("KEEP_WORK"):
        try:
            stages.cleanup(manifest)
            cleaned = True
        except Exception:  # noqa: BLE001 - outputs are complete; lifecycle rule cleans up
            logger.exception("could not clean the work area", extra={"work": work})
    counts = summary["counts"]
    logger.info("job done", extra={"outputs": summary["outputs"], "counts": counts})
    return {"source": summary["input"], "outputs": summary["outputs"], "work_cleaned": cleaned,
            "frames": counts["frames"], "masked_boxes": counts["masked_boxes"],
            "tracks": counts["tracks"], "chunks": counts["chunks"]}
