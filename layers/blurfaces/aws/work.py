"""A job's work area on S3 (``WORK_PREFIX/<job id>/``): besides what `stages` writes there
(manifest, index, segments, parts), the Map's item list and each failed chunk's own error
record; and its removal, the manifest last."""
from __future__ import annotations

from .. import stages, storage as st

ITEMS = "items.json"


def items_uri(work: str) -> str:
    return st.join(work, ITEMS)


def error_uri(work: str, index: int) -> str:
    """Where a worker records the error of chunk `index` (Step Functions keeps only a
    generic Map error)."""
    return st.join(work, f"errors/chunk-{index:05d}.json")


def delete_work(work: str, uris=None) -> None:
    """Remove the work area (`uris`: its listing, when the caller has one), the manifest last
    (a retried stitch still finds the job)."""
    store = st.get_storage(work)
    uris = list(store.list(work) if uris is None else uris)
    last = st.join(work, stages.MANIFEST)
    for uri in [u for u in uris if u != last] + [u for u in uris if u == last]:
        store.delete(uri)
