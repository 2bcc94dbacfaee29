"""Unattended operation over the job layer: `batch` (an archive, once, resumable) and `watch`
(a drop folder, continuously). Both are short loops over `jobs.discover` and `jobs.run_job`;
one bad file never stops them.
"""
from __future__ import annotations

import csv
import io
import os
import time

from . import jobs, storage as st
from .options import Execution, Options

TABLE_COLUMNS = ["input", "status", "job_id", "video", "frames", "faces", "tracks", "seconds",
                 "error", "report"]


def table_csv(results: list[jobs.JobResult]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, TABLE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow({k: "" if v is None else v for k, v in r.row().items()})
    return buf.getvalue().encode("utf-8")


def batch(root: str, options: Options, *, execution: Execution | None = None,
          drop_folder: bool = False, table: str | None = None, resume: bool = True,
          settle: float = jobs.DEFAULT_SETTLE_S, on_result=None, on_start=None,
          progress=None, overwrite: bool = False,
          unmasked_sidecars: bool = False) -> tuple[list[jobs.JobResult], str]:
    """Every input under `root` (recursively), once. Returns the results and where the
    CSV table went. Inputs with a complete result for the same version are skipped."""
    jobs.check_root(root)
    layout = jobs.Layout(root, unmasked_sidecars=unmasked_sidecars) if drop_folder else None
    scan = layout.incoming if layout else root
    ready, pending = jobs.discover(scan, settle=settle,
                                   skip_dirs=() if layout else (jobs.STATE_DIR,))
    results = []
    total = len(ready)
    for k, found in enumerate(ready, 1):
        if on_start:
            on_start(k, total, found.uri)
        r = jobs.run_job(found.uri, options, layout=layout, execution=execution,
                         resume=resume, progress=progress, overwrite=overwrite)
        results.append(r)
        if on_result:
            on_result(k, total, r)
    for found in pending:
        results.append(jobs.JobResult(found.uri, "pending",
                                      error="still being written; run again later"))
    table = table or st.join(root, "blurfaces_batch.csv")
    st.get_storage(table).write_bytes(table, table_csv(results))
    return results, table


def watch(root: str, options: Options, *, execution: Execution | None = None,
          once: bool = False, poll: float = 5.0, settle: float = jobs.DEFAULT_SETTLE_S,
          keep_inputs: bool = False, on_result=None, progress=None,
          max_idle_polls: int | None = None, unmasked_sidecars: bool = False) -> int:
    """Process what is in ROOT/incoming, then new arrivals, until stopped (or, with `once`,
    until nothing is left or being written). Returns the number of jobs finished."""
    jobs.check_root(root)
    local = not st.is_s3(root)
    layout = jobs.Layout(root, moves_inputs=local and not keep_inputs,
                         unmasked_sidecars=unmasked_sidecars)
    layout.ensure()
    finished = 0
    idle = 0
    stuck: set = set()          # inputs that cannot be moved out of incoming/, said once
    stays = not layout.moves_inputs
    known_done: set = set()     # (uri, listing token) of inputs that stay and are done
    while True:
        if local:
            jobs.requeue_edited(layout, settle)     # edited coordinates for a done video
        refused: list = []
        ready, pending = jobs.discover(layout.incoming, settle=settle,
                                       refused=refused if layout.moves_inputs else None)
        worked = False
        for found, why in [(f, None) for f in ready] + refused:
            seen = (found.uri, found.stat.token)
            if seen in known_done:
                continue                      # an idle poll: the listing, nothing else
            if stays and not why and layout.result_for(found.uri, found.stat):
                known_done.add(seen)          # recognised before any claim
                continue
            claim = jobs.claim_input(layout, found.uri)
            if claim is None:
                continue                      # another watcher has it
            try:
                store = st.get_storage(found.uri)
                if not os.path.lexists(found.uri) if local else not store.exists(found.uri):
                    continue                  # moved away by a watcher that just finished
                r = jobs.refuse(layout, found, why) if why else jobs.run_job(
                    found.uri, options, layout=layout, execution=execution,
                    progress=progress)
                if stays and (r.status in ("done", "skipped") or r.report):
                    known_done.add(seen)
                if r.status == "pending" or (r.status == "skipped"
                                             and (not local or keep_inputs)):
                    continue                  # still being written / inputs that stay
                if layout.moves_inputs:
                    dest = r.dest or (layout.failed_input(found.uri) if r.status == "failed"
                                      else layout.done(found.uri))
                    try:
                        if r.status == "skipped":
                            jobs.move_input(found.uri, dest)
                        elif jobs.move_finished(found.uri, dest, r) is None:
                            continue          # it was still being written: taken again
                    except OSError as e:
                        if (found.uri, found.stat.token) in stuck:
                            continue
                        stuck.add((found.uri, found.stat.token))
                        r = jobs.unmovable(r, dest, e)
                worked = True
                finished += 1
                if on_result:
                    on_result(r)
            finally:
                claim.release()
        if once and not pending and not worked:
            return finished
        idle = 0 if (worked or pending) else idle + 1
        if max_idle_polls is not None and idle >= max_idle_polls:
            return finished
        if not worked:
            time.sleep(poll if not pending else min(poll, max(0.2, settle / 2)))
