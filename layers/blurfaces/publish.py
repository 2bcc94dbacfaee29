"""Publishing a run's outputs: claim the final names, stage, then commit all or nothing.

This module is the only place that gives outputs their final names. It owns:

* `claim(names, overwrite)`: an exclusive claim on one output set (video, data files, heatmap,
  summary) for the lifetime of a run, so that concurrent runs on the same names never clobber
  each other: the claim is a lock file created with O_EXCL beside the video
  (`.<video name>.blurfaces-lock`, holding the owner's pid, host and token). A claim whose
  owner is dead (killed with SIGKILL, machine rebooted) is stale: the next run removes it and
  whatever staged files the dead run left, and finishes the dead run's commit one way or the
  other (`clean_stale`, below).
* `Publisher`: `stage(final_uri, suffix)` hands out a temporary path for each output (for a
  local output: a hidden `.blurfaces-<token>-<n>.part` file in the destination folder, so the
  final rename never crosses file systems); `commit()` gives them their final names in the
  order staged (the summary last: it marks a complete result), and on any error restores
  every name it had touched (replaced files come back from their backups) and raises one
  `OutputError`; `discard()` removes whatever is still staged.
* S3 outputs (`Publisher._commit_s3`): under the output set's S3 lock (`S3Lock`: one
  publisher at a time), only while the pinned source is still its current version
  (`ensure_current`, else `Superseded` and nothing written), uploaded in order with the
  summary last and conditional (If-Match / If-None-Match on the summary seen under the lock);
  on failure the exact object versions this commit wrote are deleted again. Each S3 output
  carries the publisher's token as user metadata (`TOKEN_METADATA`), so a later rollback
  (`rollback_s3`, the AWS abort path) deletes only what this run wrote (by version id),
  never another run's outputs of the same names.

Without `overwrite`, a final name is created with `os.link` (atomic, fails if the name exists),
so a file that appeared after the claim is never replaced.

Before the first rename a commit writes a journal beside the outputs (`.blurfaces-<token>-
journal`: each final name with the inode of the file that is to take it). A run killed in the
middle of its commit leaves some final names given and some not; whoever cleans its stale
claim reads the journal: if the summary (the last name) was given, the commit is complete and
only its backups go (rolled forward); otherwise every final name that holds one of the dead
run's files is removed and the backups of what it replaced come back (rolled back). Nothing
half-published stays under a final name, and no later run moves on to `_1` because of it.
"""
from __future__ import annotations

import errno
import glob
import json
import os
import random
import secrets
import socket
import tempfile
import time

from . import storage as st
from .errors import InputError, OutputError, Superseded, TransientError

LOCK_SUFFIX = ".blurfaces-lock"
STAGE_PREFIX = ".blurfaces-"
TOKEN_METADATA = "blurfaces-token"      # S3 user metadata: the token of the run that wrote it
S3_LOCK_TTL_S = 1200.0      # an S3 publish lock older than this belongs to a dead publisher
S3_LOCK_WAIT_S = 300.0      # how long a publisher waits for a live one


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(video: str) -> str:
    folder, name = os.path.split(os.path.abspath(video))
    return os.path.join(folder, f".{name}{LOCK_SUFFIX}")


class Claim:
    """A held claim on one local output set; `release()` (or leaving `with`) gives it up."""

    def __init__(self, path: str, token: str):
        self.path, self.token = path, token

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError:
            pass        # a lock we cannot remove is stale once we are gone

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Taken(Exception):
    """The names are claimed by a live run (internal: `reserve_output` moves on)."""

    def __init__(self, owner: dict):
        super().__init__(owner)
        self.owner = owner


def _read_lock(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}           # half-written by a run that died at once: treat as stale below


def _stale(owner: dict, path: str) -> bool:
    if not owner:
        # Unreadable: stale only once it is old enough that a writer cannot be mid-write.
        try:
            return time.time() - os.stat(path).st_mtime > 60
        except OSError:
            return False
    if owner.get("host") != socket.gethostname():
        return False        # cannot tell from here: never take another machine's claim
    return not pid_alive(int(owner.get("pid", -1)))


def _journal_path(folder: str, token: str) -> str:
    return os.path.join(folder, f"{STAGE_PREFIX}{token}-journal")


def _roll_back_commit(folder: str, token: str) -> None:
    """Undo the final names a dead run's half-done commit gave (see the module docstring);
    nothing when its commit had not begun or was complete."""
    try:
        with open(_journal_path(folder, token), encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return          # no commit begun (or the journal was cut short: none renamed yet)

    def ours(final, ino):
        try:
            return os.lstat(final).st_ino == ino
        except OSError:
            return False
    if entries and ours(*entries[-1]):
        return          # the summary has its name: the commit was complete
    for final, ino in entries:
        if ours(final, ino):
            try:
                os.unlink(final)
            except OSError:
                pass


def clean_if_stale(video: str) -> bool:
    """Clean the claim on `video`'s output set if its owner is dead (see `clean_stale`).
    Returns whether a live run holds it."""
    path = lock_path(video)
    owner = _read_lock(path)
    if owner is None:
        return False
    if _stale(owner, path):
        clean_stale(path, owner)
        return False
    return True


def clean_stale(path: str, owner: dict) -> None:
    """Remove a dead run's lock and the files it staged; a commit it was in the middle of is
    rolled back (its final names removed, what it had moved aside restored) or, if complete,
    forward."""
    folder = os.path.dirname(path)
    token = owner.get("token")
    if token:
        _roll_back_commit(folder, token)
        found = glob.glob(os.path.join(glob.escape(folder), f"{STAGE_PREFIX}{token}-*"))
        for p in sorted(found, key=lambda p: not p.endswith(".bak")):   # restore first
            if p.endswith(".bak"):
                final = _backup_target(p)
                if final and not os.path.lexists(final):
                    try:
                        os.replace(p, final)        # the dead run was mid-commit
                        continue
                    except OSError:
                        pass
            try:
                os.unlink(p)
            except OSError:
                pass
    try:
        os.unlink(path)
    except OSError:
        pass


def _backup_target(bak: str) -> str | None:
    try:
        with open(bak + ".name", encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def claim(names: list[str], video: str) -> Claim | None:
    """Claim the local output set whose video is `video` (None for S3 outputs).

    Raises `Taken` when a live run holds it; OutputError when the folder cannot take the
    lock or a name is longer than the file system allows."""
    if st.is_s3(video):
        return None
    path = lock_path(video)
    folder = os.path.dirname(path)
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for n in names + [path]:
        base = os.path.basename(n)
        if len(base.encode("utf-8", "surrogateescape")) > limit:
            raise OutputError(f"{n}: file name too long for this file system (over {limit} "
                              "bytes). Choose a shorter output name (-o PATH).")
    return lock(path)


def lock(path: str) -> Claim:
    """Create the lock file `path` exclusively (pid, host, token inside); a lock whose owner
    is dead is cleaned (with what it staged) and taken. Raises `Taken` when a live process
    holds it, OutputError when the folder cannot take it."""
    folder = os.path.dirname(path)
    token = secrets.token_hex(6)
    body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": token,
                       "started": time.time()}).encode()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read_lock(path)
            if owner is None:
                continue                    # released meanwhile: try again
            if _stale(owner, path):
                clean_stale(path, owner)
                continue
            raise Taken(owner) from None
        except OSError as e:
            raise OutputError(f"{folder}: cannot write the outputs here ({_reason(e)}). "
                              "Choose a writable output folder (-o PATH).") from None
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        return Claim(path, token)
    owner = _read_lock(path) or {}
    raise Taken(owner)


class Publisher:
    """Stage a run's outputs under temporary names, then commit all of them or none."""

    def __init__(self, tmp_dir: str, *, overwrite: bool = False, token: str | None = None,
                 source: str | None = None, pin: dict | None = None):
        self.tmp_dir = tmp_dir
        self.source, self.pin = source, pin     # S3 outputs: published only while current
        self.overwrite = overwrite
        self.token = token or secrets.token_hex(6)
        self.staged: list[tuple[str, str]] = []

    def stage(self, final_uri: str, suffix: str = "") -> str:
        """A temporary path to write the output `final_uri` to."""
        if st.is_s3(final_uri):
            path = os.path.join(self.tmp_dir, f"out-{len(self.staged)}{suffix}")
        else:
            folder = os.path.dirname(os.path.abspath(final_uri))
            path = os.path.join(folder, f"{STAGE_PREFIX}{self.token}-{len(self.staged)}"
                                        f"{suffix}.part")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
            except OSError as e:
                raise OutputError(f"{folder}: cannot write the outputs here ({_reason(e)}). "
                                  "Choose a writable output folder (-o PATH).") from None
        self.staged.append((path, final_uri))
        return path

    def discard(self) -> None:
        for path, _ in self.staged:
            try:
                os.unlink(path)
            except OSError:
                pass
        self.staged = []

    def commit(self) -> None:
        """Give every staged file its final name, in order; all or nothing. The outputs of a
        run share one stem, so they are all local or all on S3."""
        items = self.staged
        if items and st.is_s3(items[0][1]):
            self.staged = []                # _commit_s3 removes its temporary files itself
            self._commit_s3(items)
            return
        for _, final in items:
            if os.path.isdir(final):
                self.discard()
                raise OutputError(f"{final}: a folder has the output's name. Remove or rename "
                                  "it, or choose another output name (-o PATH); nothing was "
                                  "published.")
        self._commit_local(items)           # on failure: everything put back, staged removed
        self.staged = []

    # -- local

    def _commit_local(self, items) -> None:
        done: list[str] = []
        backups: list[tuple[str, str]] = []
        current = None
        journal = None
        try:
            if items:
                folder = os.path.dirname(os.path.abspath(items[0][1]))
                journal = _journal_path(folder, self.token)
                entries = [(os.path.abspath(final), os.lstat(path).st_ino)
                           for path, final in items]
                with open(journal + ".part", "w", encoding="utf-8") as f:
                    json.dump(entries, f)
                os.replace(journal + ".part", journal)
            for i, (path, final) in enumerate(items):
                current = final
                os.chmod(path, 0o644)
                if self.overwrite:
                    if os.path.lexists(final):
                        bak = os.path.join(os.path.dirname(os.path.abspath(final)),
                                           f"{STAGE_PREFIX}{self.token}-{i}.bak")
                        with open(bak + ".name", "w", encoding="utf-8") as f:
                            f.write(os.path.abspath(final))
                        os.replace(final, bak)
                        backups.append((final, bak))
                    os.replace(path, final)
                else:
                    try:
                        os.link(path, final)
                    except OSError as e:
                        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV,
                                           errno.EMLINK):
                            raise
                        # File systems without hard links: check, then rename.
                        if os.path.lexists(final):
                            raise FileExistsError(errno.EEXIST, "File exists", final) from None
                        os.replace(path, final)
                    else:
                        os.unlink(path)
                done.append(final)
        except OSError as e:
            for final in reversed(done):
                try:
                    os.unlink(final)
                except OSError:
                    pass
            for final, bak in reversed(backups):
                try:
                    os.replace(bak, final)
                    os.unlink(bak + ".name")
                except OSError:
                    pass
            self.discard()
            _unlink(journal)
            what = "another program created a file with this name meanwhile" \
                if isinstance(e, FileExistsError) else _reason(e)
            raise OutputError(f"{current}: cannot publish the output ({what}); nothing was "
                              "published. Fix the output folder or choose another output "
                              "name (-o PATH).") from None
        for _, bak in backups:
            for p in (bak, bak + ".name"):
                _unlink(p)
        _unlink(journal)

    # -- S3

    def _commit_s3(self, items) -> None:
        """Upload in order, the summary last, under the output set's S3 lock (one publisher
        at a time: two jobs of one key never interleave). Before the first upload, the
        pinned source must still be the current version (else `Superseded`, nothing
        written); on an unversioned bucket the previous summary (the "complete" marker) is
        removed first, as its outputs are about to be replaced. The summary is written
        with a conditional write against the one seen under the lock. On any failure the
        exact versions this commit wrote are deleted (never a delete marker: the previous
        result becomes current again on a versioned bucket)."""
        written: list[tuple[str, str | None]] = []
        try:
            with S3Lock(lock_uri(items[0][1]), self.token):
                if self.source is not None:
                    ensure_current(self.source, self.pin)
                summary_uri = items[-1][1]
                store = st.get_storage(summary_uri)
                old = store.head(summary_uri)
                if old is not None and old.stat.version_id is None:
                    store.delete(summary_uri)
                    old = None
                meta = {TOKEN_METADATA: self.token}
                for path, uri in items[:-1]:
                    new = st.get_storage(uri).put_file(path, uri, metadata=meta)
                    written.append((uri, new.version_id))
                with open(items[-1][0], "rb") as f:
                    try:
                        new = store.put(summary_uri, f, metadata=meta,
                                        if_match=old.stat.etag if old else None,
                                        if_none_match=old is None)
                    except st.PreconditionFailed:
                        raise TransientError(
                            f"{summary_uri}: another run published these outputs while this "
                            "one held their lock (it was taken over as stale); nothing of "
                            "this run was kept. Run again.") from None
                written.append((summary_uri, new.version_id))
        except BaseException:
            for uri, version in reversed(written):
                try:
                    st.get_storage(uri).delete(uri, version_id=version)
                except Exception:  # noqa: BLE001 - best effort; the original error matters
                    pass
            raise
        finally:
            for path, _ in items:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def lock_uri(video_uri: str) -> str:
    """The S3 lock of an output set: a hidden object beside its video (as `lock_path`)."""
    folder, _, name = video_uri.rpartition("/")
    return f"{folder}/.{name}{LOCK_SUFFIX}"


def ensure_current(source: str, pin: dict | None) -> None:
    """`Superseded` unless the pinned version of `source` is still its current version."""
    if not pin or not st.is_s3(source):
        return                  # a local source: stitch's own pin check covers it
    head = st.get_storage(source).head(source)
    if head is None or head.stat.token != st.Stat.from_dict(pin).token:
        raise Superseded(f"{source}: replaced by a newer version (or deleted) while this job "
                         "ran; nothing was published for the old version (the newer one is "
                         "its own job).")


class S3Lock:
    """An exclusive lock on an S3 output set while it is published: an object created with
    If-None-Match. A lock older than `S3_LOCK_TTL_S` (longer than a Lambda can run) belongs
    to a dead publisher and is taken over with If-Match on its ETag; a live one is waited
    for up to `S3_LOCK_WAIT_S`, then TransientError (the state machine retries)."""

    def __init__(self, uri: str, token: str):
        self.uri, self.token, self.held = uri, token, None

    def __enter__(self):
        store = st.get_storage(self.uri)
        deadline, delay = time.monotonic() + S3_LOCK_WAIT_S, 0.2
        while True:
            body = json.dumps({"token": self.token, "host": socket.gethostname(),
                               "expires": time.time() + S3_LOCK_TTL_S}).encode()
            try:
                self.held = store.put(self.uri, body, if_none_match=True)
                return self
            except st.PreconditionFailed:
                pass
            head = store.head(self.uri)
            if head is not None:
                try:
                    expires = float(json.loads(store.read_bytes(self.uri)).get("expires", 0))
                except (ValueError, AttributeError, InputError):
                    expires = 0.0
                if expires < time.time():
                    try:
                        self.held = store.put(self.uri, body, if_match=head.stat.etag)
                        return self
                    except st.PreconditionFailed:
                        pass
            if time.monotonic() > deadline:
                raise TransientError(f"{self.uri}: another run is publishing the same outputs "
                                     "(it holds their lock); run again later.")
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 10.0)

    def __exit__(self, *exc):
        store = st.get_storage(self.uri)
        try:
            head = store.head(self.uri)
            if head is not None and head.stat.etag == self.held.etag:
                store.delete(self.uri, version_id=self.held.version_id)
        except Exception:  # noqa: BLE001 - an unreleased lock expires
            pass


def rollback_s3(uris, token: str | None) -> list[str]:
    """Delete the S3 outputs among `uris` that the run with publish `token` wrote: only an
    object whose metadata carries that token, and on a versioned bucket only that version
    (the previous one becomes current again). Returns what was removed."""
    removed = []
    if not token:
        return removed
    for uri in uris:
        store = st.get_storage(uri)
        head = store.head(uri)
        if head is None or head.metadata.get(TOKEN_METADATA) != token:
            continue
        store.delete(uri, version_id=head.stat.version_id)
        removed.append(uri)
    return removed


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def ensure_writable(uri: str) -> None:
    """Fail before any work when the output folder cannot take files."""
    store = st.get_storage(uri)
    local = store.local_path(uri)
    if local is None:
        return
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
