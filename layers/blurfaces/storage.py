"""Where the pipeline's files live: local paths or S3 objects, behind one interface.

The pipeline stages (plan / worker / stitch) never touch `open()` or boto3 directly; they
call `get_storage(uri)` and use the returned `Storage` for every read and write, so the same
code runs on a laptop (plain paths) and on AWS Lambda (``s3://bucket/key`` URIs).

This module owns:

* URI helpers: `is_s3`, `parse_s3`, `join`.
* `LocalStorage`: plain files. Every write is atomic (temporary file in the destination
  folder, then `os.replace`), so a reader never sees half a file; missing parent folders
  are created, like S3 keys that need no folders.
* `S3Storage`: S3 or any S3-compatible server (``endpoint_url``). `open_read` returns a
  seekable file object that fetches byte ranges on demand (HTTP Range requests) instead of
  downloading the object, so PyAV can open a video on S3 and seek in it. Retries of
  transient S3 errors are botocore's own (``retries={"mode": "standard"}``).
* The mapping of storage failures onto `InputError` (reading: missing object, no such
  bucket, access denied) and `OutputError` (writing), each naming the URI and what to do.

boto3 is an optional extra (``pip install "blurfaces[aws]"``); it is imported only when an
``s3://`` URI is used.
"""
from __future__ import annotations

import errno
import io
import json
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import BinaryIO

from .errors import (BlurfacesError, InputChanged, InputError, OptionError, OutputError,
                     TransientError)

__all__ = ["is_s3", "parse_s3", "join", "get_storage", "Storage", "LocalStorage",
           "S3Storage", "Stat", "Head", "DEFAULT_READ_BUFFER"]

S3_SCHEME = "s3://"
#: Buffer of the file objects `S3Storage.open_read` returns: each HTTP Range request
#: fetches up to this many bytes (fewer near the end of the object).
DEFAULT_READ_BUFFER = 8 * 1024 * 1024
#: Files up to this size are one PutObject; larger ones are uploaded in parts of this size.
MULTIPART_BYTES = 64 * 1024 * 1024
#: Temporary files of atomic local writes start with this; `LocalStorage.list` skips them.
_TMP_PREFIX = ".blurfaces-tmp-"
#: How often `S3Storage.open_read` re-requests a range whose response body broke off
#: mid-stream (botocore retries requests, but not a body that stops after the headers).
_STREAM_RETRIES = 3


# --------------------------------------------------------------------------- URI helpers

def is_s3(uri) -> bool:
    """True for ``s3://...`` URIs, False for local paths."""
    return isinstance(uri, str) and uri.startswith(S3_SCHEME)


def parse_s3(uri) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty (``s3://bucket``).

    Raises OptionError for anything that is not an s3:// URI with a bucket name.
    """
    if not is_s3(uri):
        raise OptionError(f"{uri!r}: not an S3 URI; write it as s3://bucket/key")
    rest = uri[len(S3_SCHEME):]
    bucket, _, key = rest.partition("/")
    if not bucket or any(c.isspace() for c in bucket) or bucket in (".", ".."):
        raise OptionError(f"{uri!r}: no bucket name in the S3 URI; write it as s3://bucket/key")
    return bucket, key


def join(base: str, name: str) -> str:
    """``base`` + ``/`` + ``name`` for an s3:// prefix, `os.path.join` for a local folder."""
    base = os.fspath(base)
    if is_s3(base):
        name = name.lstrip("/")
        return base + name if base.endswith("/") else f"{base}/{name}"
    return os.path.join(base, name)


def _object_key(uri) -> tuple[str, str]:
    bucket, key = parse_s3(uri)
    if not key or key.endswith("/"):
        raise OptionError(f"{uri!r}: the S3 URI names no object; write it as s3://bucket/key")
    return bucket, key


# --------------------------------------------------------------------------- identity

@dataclass(frozen=True)
class Stat:
    """What identifies one version of an input: a job is pinned to it.

    Local files: size, mtime (ns) and inode; S3 objects: size, ETag and VersionId (None on
    an unversioned bucket)."""
    size: int
    mtime: float
    etag: str | None = None
    version_id: str | None = None
    inode: int | None = None
    mtime_ns: int | None = None

    @property
    def token(self) -> str:
        """One string that changes whenever the content may have changed."""
        if self.version_id:
            return f"v:{self.version_id}"
        if self.etag:
            return f"e:{self.etag}:{self.size}"
        return f"f:{self.size}:{self.mtime_ns}:{self.inode}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["token"] = self.token
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Stat":
        return cls(**{k: v for k, v in d.items() if k != "token"})

    @classmethod
    def from_s3(cls, meta: dict) -> "Stat":
        """The identity in an S3 HEAD/GET response or a listing entry."""
        lm = meta.get("LastModified")
        return cls(size=int(meta.get("ContentLength", meta.get("Size", 0))),
                   mtime=lm.timestamp() if hasattr(lm, "timestamp") else 0.0,
                   etag=str(meta.get("ETag", "")).strip('"') or None,
                   version_id=meta.get("VersionId") if meta.get("VersionId") != "null"
                   else None)


@dataclass(frozen=True)
class Head:
    """What S3 says about one object version: its identity and its user metadata."""
    stat: Stat
    metadata: dict


# --------------------------------------------------------------------------- interface

class Storage:
    """The operations the pipeline needs, for one kind of location (local or S3)."""

    def exists(self, uri) -> bool:
        """True when a file / object is at ``uri``."""
        raise NotImplementedError

    def size(self, uri) -> int:
        """Size in bytes; InputError when missing."""
        raise NotImplementedError

    def stat(self, uri) -> Stat:
        """The identity of what is at ``uri`` now; InputError when missing."""
        raise NotImplementedError

    def list_stats(self, prefix_uri) -> list[tuple[str, Stat]]:
        """`list` with each entry's `Stat` (one listing call, no request per file on S3)."""
        return [(u, self.stat(u)) for u in self.list(prefix_uri)]

    def check_pin(self, uri, pin: dict | None) -> None:
        """InputError when ``uri`` is no longer the version a job was planned on."""
        if not pin:
            return
        now = self.stat(uri)
        if now.token != Stat.from_dict(pin).token:
            raise InputChanged(f"{uri}: the input changed while it was being processed (it was "
                             "replaced or is still being written); nothing was published. It "
                             "will be processed again as a new version.")

    def create_exclusive(self, uri, data: bytes) -> bool:
        """Create ``uri`` with ``data`` only if nothing is there; False when something is."""
        raise NotImplementedError

    def open_read(self, uri, *, buffer_size: int | None = None,
                  pin: dict | None = None) -> BinaryIO:
        """A seekable binary file object over ``uri`` (use it as a context manager); with
        ``pin`` (a `Stat.to_dict()`), exactly that version or InputError."""
        raise NotImplementedError

    def read_bytes(self, uri) -> bytes:
        raise NotImplementedError

    def write_bytes(self, uri, data: bytes) -> None:
        """Write ``data`` at ``uri`` atomically: readers see the old content or the new."""
        raise NotImplementedError

    def read_json(self, uri):
        data = self.read_bytes(uri)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InputError(f"{uri}: not valid JSON ({exc or 'nested too deeply'})") from None

    def write_json(self, uri, obj) -> None:
        text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        self.write_bytes(uri, text.encode("utf-8"))

    def download(self, uri, local_path) -> None:
        """Copy ``uri`` to the local file ``local_path`` (created atomically)."""
        raise NotImplementedError

    def upload(self, local_path, uri, *, metadata: dict | None = None) -> None:
        """Copy the local file ``local_path`` to ``uri`` (atomically). ``metadata``: S3 user
        metadata of the new object (ignored for local files)."""
        raise NotImplementedError

    def delete(self, uri) -> None:
        """Remove ``uri``; nothing happens when it is already gone."""
        raise NotImplementedError

    def list(self, prefix_uri) -> list[str]:
        """Every file / object under the folder ``prefix_uri`` (recursively): full URIs, sorted."""
        raise NotImplementedError

    def local_path(self, uri) -> str | None:
        """The local path of ``uri`` if it is a local file, else None."""
        return None


# --------------------------------------------------------------------------- local files

def _os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


class LocalStorage(Storage):
    """Plain local files. Writes go to a temporary file beside the target, then `os.replace`."""

    def exists(self, uri) -> bool:
        return os.path.isfile(os.fspath(uri))

    def size(self, uri) -> int:
        path = os.fspath(uri)
        size = self.stat(path).size
        if not os.path.isfile(path):
            raise InputError(f"{path}: not a file")
        return size

    def stat(self, uri) -> Stat:
        path = os.fspath(uri)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError(f"{path}: not found; check the path") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({_os_reason(exc)})") from None
        return Stat(size=st.st_size, mtime=st.st_mtime, inode=st.st_ino, mtime_ns=st.st_mtime_ns)

    def create_exclusive(self, uri, data: bytes) -> bool:
        path = os.fspath(uri)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise OutputError(f"{path}: cannot be written ({_os_reason(exc)})") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def open_read(self, uri, *, buffer_size: int | None = None,
                  pin: dict | None = None) -> BinaryIO:
        path = os.fspath(uri)
        self.check_pin(path, pin)
        try:
            return open(path, "rb", buffering=buffer_size if buffer_size else -1)
        except FileNotFoundError:
            raise InputError(f"{path}: not found; check the path") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a folder, not a file") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({_os_reason(exc)}); "
                             "check its permissions") from None

    def read_bytes(self, uri) -> bytes:
        with self.open_read(uri) as f:
            try:
                return f.read()
            except OSError as exc:
                raise InputError(f"{os.fspath(uri)}: cannot be read ({_os_reason(exc)})") from None

    def _atomic_write(self, path: str, fill) -> None:
        """Create a temp file beside ``path``, let ``fill(fileobj)`` write it, then replace."""
        folder = os.path.dirname(os.path.abspath(path))
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except InputError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputError(f"{path}: cannot be written (no space left on the disk). "
                                  "Free space there (for temporary files: or set TMPDIR to a "
                                  "folder with room); nothing was published.") from None
            raise OutputError(f"{path}: cannot be written ({_os_reason(exc)}); check that its "
                              "folder can be created and is writable") from None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def write_bytes(self, uri, data: bytes) -> None:
        self._atomic_write(os.fspath(uri), lambda f: f.write(data))

    def _copy_in(self, src: str, dest: str) -> None:
        try:
            fsrc = open(src, "rb")
        except FileNotFoundError:
            raise InputError(f"{src}: not found; check the path") from None
        except OSError as exc:
            raise InputError(f"{src}: cannot be read ({_os_reason(exc)})") from None
        with fsrc:
            self._atomic_write(dest, lambda f: shutil.copyfileobj(fsrc, f, 1024 * 1024))

    def download(self, uri, local_path) -> None:
        self._copy_in(os.fspath(uri), os.fspath(local_path))

    def upload(self, local_path, uri, *, metadata: dict | None = None) -> None:
        self._copy_in(os.fspath(local_path), os.fspath(uri))

    def delete(self, uri) -> None:
        path = os.fspath(uri)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"{path}: cannot be deleted ({_os_reason(exc)})") from None

    def list(self, prefix_uri) -> list[str]:
        base = os.fspath(prefix_uri)
        found = []
        for folder, dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(_TMP_PREFIX):
                    found.append(os.path.join(folder, name))
        return sorted(found)

    def local_path(self, uri) -> str | None:
        return os.fspath(uri)


# --------------------------------------------------------------------------- S3

def _import_boto3():
    try:
        import boto3  # noqa: F401
        import botocore  # noqa: F401
    except ImportError:
        raise BlurfacesError('s3:// URIs need boto3, which is not installed; '
                             'run: pip install "blurfaces[aws]"') from None
    return boto3


_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
#: Error codes of a briefly unavailable service: retried by botocore (standard mode), and
#: if they last through the retries, a TransientError (never an input's failure).
_TRANSIENT = {"SlowDown", "503", "ServiceUnavailable", "InternalError", "500", "502", "504",
              "RequestTimeout", "RequestTimeoutException", "Throttling", "ThrottlingException",
              "RequestLimitExceeded", "TooManyRequests", "429", "BadGateway",
              "GatewayTimeout", "OperationAborted"}
#: A conditional write (If-Match / If-None-Match) that lost to another writer.
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class PreconditionFailed(Exception):
    """A conditional S3 write found another version than it was conditioned on."""
_NO_BUCKET = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem",
           "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
           "TokenRefreshRequired", "KMS.AccessDeniedException"}


class S3Storage(Storage):
    """Objects in S3 or an S3-compatible server.

    ``endpoint_url`` points at an S3-compatible server (MinIO, moto, LocalStack); None means
    AWS S3. The boto3 client is created on first use and shared by all threads.
    """

    def __init__(self, *, endpoint_url: str | None = None, client=None,
                 max_attempts: int = 5):
        self.endpoint_url = endpoint_url
        self._client = client
        self._max_attempts = max_attempts
        self._lock = threading.Lock()

    # -- client and errors

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    boto3 = _import_boto3()
                    from botocore.config import Config
                    config = Config(
                        retries={"mode": "standard", "max_attempts": self._max_attempts},
                        connect_timeout=10, read_timeout=60, max_pool_connections=32,
                        s3={"addressing_style": "path"} if self.endpoint_url else None,
                    )
                    self._client = boto3.session.Session().client(
                        "s3", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _bucket_missing(self, bucket: str) -> bool:
        """After a bare 404 (HEAD has no error body): is it the bucket that is missing?"""
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            return _code(exc) in _NOT_FOUND | _NO_BUCKET
        except BotoCoreError:
            return False
        return False

    def _error(self, exc: Exception, uri: str, *, action: str, writing: bool = False,
               head: bool = False) -> BlurfacesError:
        """Turn a boto3/botocore exception into an InputError (reading) / OutputError (writing)."""
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError,
                                         ConnectTimeoutError, EndpointConnectionError,
                                         IncompleteReadError, NoCredentialsError,
                                         PartialCredentialsError, ReadTimeoutError,
                                         ResponseStreamingError)
        cls = OutputError if writing else InputError
        bucket, _, key = uri[len(S3_SCHEME):].partition("/")
        cause = exc
        if not isinstance(cause, (ClientError, BotoCoreError)):
            ctx = exc.__cause__ or exc.__context__
            if isinstance(ctx, (ClientError, BotoCoreError)):
                cause = ctx
        if isinstance(cause, ClientError):
            code = _code(cause)
            if code in _TRANSIENT or cause.response.get("ResponseMetadata", {}).get(
                    "HTTPStatusCode", 0) >= 500:
                return TransientError(f"{uri}: S3 {action} kept failing with {code} after "
                                      f"{self._max_attempts} attempts (S3 throttling or a "
                                      "service error); the input is fine: run again.")
            if code in _NOT_FOUND and head and self._bucket_missing(bucket):
                code = "NoSuchBucket"
            if code in _NO_BUCKET:
                return cls(f"{uri}: bucket {bucket!r} does not exist; create it or fix the "
                           "bucket name in the URI")
            if code in _NOT_FOUND:
                return InputError(f"{uri}: not found (no object with that key in bucket "
                                  f"{bucket!r}); check the URI")
            if code in _DENIED:
                return cls(f"{uri}: access denied ({code}); check the AWS credentials and "
                           f"that they allow s3:{action} on arn:aws:s3:::{bucket}/{key}"
                           + (" (and s3:ListBucket on the bucket, without which a missing "
                              "object reads as access denied)" if not writing else ""))
            msg = cause.response.get("Error", {}).get("Message", "")
            return cls(f"{uri}: S3 {action} failed ({code}{': ' + msg if msg else ''})")
        if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
            return cls(f"{uri}: no usable AWS credentials found; set AWS_PROFILE or "
                       "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an IAM role")
        if isinstance(cause, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError,
                              ConnectTimeoutError, IncompleteReadError,
                              ResponseStreamingError)):
            return TransientError(f"{uri}: cannot reach S3 at {self.endpoint_url or 'AWS'} "
                                  f"after retries ({cause}); check the network or "
                                  "BLURFACES_S3_ENDPOINT, then run again")
        if isinstance(cause, BotoCoreError):
            return cls(f"{uri}: S3 {action} failed ({cause})")
        return cls(f"{uri}: S3 {action} failed ({exc})")

    def _call(self, uri, action, fn, *, writing=False, head=False, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri, action=action, writing=writing, head=head) from None

    # -- operations

    def _head(self, uri) -> dict:
        bucket, key = _object_key(uri)
        return self._call(uri, "GetObject", self.client.head_object, head=True,
                          Bucket=bucket, Key=key)

    def _listed(self, bucket: str, key: str) -> bool:
        """Whether a listing by the key's own prefix shows the key (raises when listing is
        denied too): tells a missing object from a forbidden one, as the template grants
        s3:ListBucket only with a prefix."""
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            resp = self.client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"{S3_SCHEME}{bucket}/{key}", action="ListBucket") from None
        return any(o.get("Key") == key for o in resp.get("Contents", ()))

    def exists(self, uri) -> bool:
        return self.head(uri) is not None

    def size(self, uri) -> int:
        return int(self._head(uri)["ContentLength"])

    def stat(self, uri) -> Stat:
        return Stat.from_s3(self._head(uri))

    def head(self, uri, version_id: str | None = None) -> Head | None:
        """The current object at ``uri`` (or that version of it): its identity and user
        metadata; None when there is none (missing, deleted, or a delete marker)."""
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, key = _object_key(uri)
        kw = {"VersionId": version_id} if version_id else {}
        try:
            meta = self.client.head_object(Bucket=bucket, Key=key, **kw)
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND | {"NoSuchVersion", "405", "MethodNotAllowed"}:
                return None
            if code in ("403", "AccessDenied", "Forbidden") and not version_id \
                    and not self._listed(bucket, key):
                return None     # S3 answers 403 for a missing key unless ListBucket applies
            raise self._error(exc, uri, action="GetObject", head=True) from None
        except BotoCoreError as exc:
            raise self._error(exc, uri, action="GetObject", head=True) from None
        return Head(Stat.from_s3(meta), dict(meta.get("Metadata") or {}))

    def list_stats(self, prefix_uri) -> list[tuple[str, Stat]]:
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, prefix = parse_s3(prefix_uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    # The listing has no version ids: a job pins the version by its HEAD.
                    out.append((f"{S3_SCHEME}{bucket}/{obj['Key']}", Stat.from_s3(obj)))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix_uri, action="ListBucket") from None
        return sorted(out, key=lambda x: x[0])

    def list_page(self, prefix_uri, *, start_after: str | None = None,
                  max_keys: int = 1000) -> tuple[list[tuple[str, Stat]], bool]:
        """One page of the listing under ``prefix_uri`` in key order, after the URI
        ``start_after`` (S3's StartAfter: a long listing is walked page by page, by any
        number of callers, without a continuation token): (entries, more pages left)."""
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, prefix = parse_s3(prefix_uri)
        kw = {"StartAfter": parse_s3(start_after)[1]} if start_after else {}
        try:
            resp = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix,
                                               MaxKeys=max_keys, **kw)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix_uri, action="ListBucket") from None
        return ([(f"{S3_SCHEME}{bucket}/{o['Key']}", Stat.from_s3(o))
                 for o in resp.get("Contents", ())], bool(resp.get("IsTruncated")))

    def create_exclusive(self, uri, data: bytes) -> bool:
        try:
            self.put(uri, data, if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    def put(self, uri, body, *, metadata: dict | None = None, if_match: str | None = None,
            if_none_match: bool = False) -> Stat:
        """One PutObject of ``body`` (bytes or a binary file); returns the new object's
        identity (its VersionId on a versioned bucket: what a rollback deletes exactly).
        ``if_match`` (an ETag) / ``if_none_match``: a conditional write that raises
        `PreconditionFailed` when the object is not (or is) there as expected."""
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, key = _object_key(uri)
        kw = {"Metadata": metadata} if metadata else {}
        if key.endswith(".json"):
            kw["ContentType"] = "application/json"
        if if_match:
            kw["IfMatch"] = '"' + if_match.strip('"') + '"'
        if if_none_match:
            kw["IfNoneMatch"] = "*"
        if isinstance(body, (bytes, bytearray, memoryview)):
            body = bytes(body)
            size = len(body)
        else:
            size = os.fstat(body.fileno()).st_size
        try:
            resp = self.client.put_object(Bucket=bucket, Key=key, Body=body, **kw)
        except ClientError as exc:
            if _code(exc) in _CONFLICT:
                raise PreconditionFailed(uri) from None
            raise self._error(exc, uri, action="PutObject", writing=True) from None
        except BotoCoreError as exc:
            raise self._error(exc, uri, action="PutObject", writing=True) from None
        return _written(resp, size)

    def put_file(self, local_path, uri, *, metadata: dict | None = None) -> Stat:
        """Upload the local file (multipart above `MULTIPART_BYTES`, parts in parallel);
        returns the new object's identity, as `put`."""
        local_path = os.fspath(local_path)
        size = os.path.getsize(local_path)
        if size <= MULTIPART_BYTES:
            with open(local_path, "rb") as f:
                return self.put(uri, f, metadata=metadata)
        from concurrent.futures import ThreadPoolExecutor
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, key = _object_key(uri)
        part = max(MULTIPART_BYTES, -(-size // 9000))       # at most 10,000 parts
        c = self.client
        try:
            up = c.create_multipart_upload(Bucket=bucket, Key=key,
                                           Metadata=metadata or {})["UploadId"]

            def one(k):
                with open(local_path, "rb") as f:
                    f.seek(k * part)
                    data = f.read(part)
                return {"PartNumber": k + 1, "ETag": c.upload_part(
                    Bucket=bucket, Key=key, UploadId=up, PartNumber=k + 1, Body=data)["ETag"]}
            try:
                with ThreadPoolExecutor(4) as pool:
                    parts = list(pool.map(one, range(-(-size // part))))
                resp = c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                                   MultipartUpload={"Parts": parts})
            except BaseException:
                try:
                    c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up)
                except (ClientError, BotoCoreError):
                    pass
                raise
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, uri, action="PutObject", writing=True) from None
        return _written(resp, size)

    def open_read(self, uri, *, buffer_size: int | None = None,
                  pin: dict | None = None) -> BinaryIO:
        """Seekable reader over the object; fetches ``buffer_size`` bytes per Range request.

        ``buffer_size=0`` gives the unbuffered raw reader (one request per `readinto`).
        ``pin``: read exactly that version (its VersionId, else If-Match on its ETag).
        """
        version = None
        if pin:
            p = Stat.from_dict(pin)
            version = p.version_id
            if version:
                bucket, key = _object_key(uri)
                try:
                    head = self._call(uri, "GetObject", self.client.head_object, head=True,
                                      Bucket=bucket, Key=key, VersionId=version)
                except InputError:
                    raise InputError(f"{uri}: the version this job was planned on "
                                     f"({version}) is gone; nothing was published.") from None
            else:
                head = self._head(uri)
                if p.etag and str(head.get("ETag", "")).strip('"') != p.etag:
                    self.check_pin(uri, pin)        # raises: it changed
        else:
            head = self._head(uri)
        raw = _S3RangeReader(self, uri, int(head["ContentLength"]), head.get("ETag"),
                             version_id=version)
        if buffer_size == 0:
            return raw
        return io.BufferedReader(raw, buffer_size or DEFAULT_READ_BUFFER)

    def read_bytes(self, uri) -> bytes:
        from botocore.exceptions import BotoCoreError
        bucket, key = _object_key(uri)
        resp = self._call(uri, "GetObject", self.client.get_object, Bucket=bucket, Key=key)
        try:
            with resp["Body"] as body:
                return body.read()
        except BotoCoreError as exc:
            raise self._error(exc, uri, action="GetObject") from None

    def write_bytes(self, uri, data: bytes) -> None:
        bucket, key = _object_key(uri)
        extra = {"ContentType": "application/json"} if key.endswith(".json") else {}
        self._call(uri, "PutObject", self.client.put_object, writing=True,
                   Bucket=bucket, Key=key, Body=bytes(data), **extra)

    def download(self, uri, local_path) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, key = _object_key(uri)
        local_path = os.fspath(local_path)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{local_path}: cannot be written ({_os_reason(exc)})") from None
        try:
            # s3transfer writes a temporary file beside local_path and renames it at the end.
            self.client.download_file(bucket, key, local_path)
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise self._error(exc, uri, action="GetObject", head=True) from None
        except OSError as exc:
            raise OutputError(f"{local_path}: cannot be written ({_os_reason(exc)})") from None

    def upload(self, local_path, uri, *, metadata: dict | None = None) -> None:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, key = _object_key(uri)
        local_path = os.fspath(local_path)
        if not os.path.isfile(local_path):
            raise InputError(f"{local_path}: not found; nothing to upload to {uri}")
        try:
            self.client.upload_file(local_path, bucket, key,
                                    ExtraArgs={"Metadata": metadata} if metadata else None)
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise self._error(exc, uri, action="PutObject", writing=True) from None
        except OSError as exc:
            raise InputError(f"{local_path}: cannot be read ({_os_reason(exc)})") from None

    def delete(self, uri, version_id: str | None = None) -> None:
        """Remove ``uri``; with ``version_id``, exactly that version (on a versioned bucket
        a plain delete only hides the object behind a delete marker)."""
        bucket, key = _object_key(uri)
        kw = {"VersionId": version_id} if version_id else {}
        self._call(uri, "DeleteObject", self.client.delete_object, writing=True,
                   Bucket=bucket, Key=key, **kw)

    def list(self, prefix_uri) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError
        bucket, prefix = parse_s3(prefix_uri)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        out = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix)
            for page in pages:
                out.extend(f"{S3_SCHEME}{bucket}/{obj['Key']}" for obj in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix_uri, action="ListBucket") from None
        return sorted(out)

    def local_path(self, uri) -> str | None:
        return None


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _S3RangeReader(io.RawIOBase):
    """Raw, seekable reader over one S3 object: each `readinto` is one ranged GetObject.

    Every request carries ``If-Match: <ETag at open>``, so an object replaced while being
    read raises InputError instead of mixing two versions.
    """

    def __init__(self, storage: S3Storage, uri: str, size: int, etag: str | None,
                 version_id: str | None = None):
        super().__init__()
        self._version_id = version_id
        self._storage = storage
        self._uri = uri
        self._bucket, self._key = _object_key(uri)
        self._size = size
        self._etag = etag
        self._pos = 0

    @property
    def name(self) -> str:
        return self._uri

    @property
    def mode(self) -> str:
        return "rb"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise OSError(errno.EINVAL, f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        self._checkClosed()
        view = memoryview(b).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        self._fetch(self._pos, view[:n])
        self._pos += n
        return n

    def readall(self) -> bytes:
        self._checkClosed()
        n = self._size - self._pos
        if n <= 0:
            return b""
        buf = bytearray(n)
        self._fetch(self._pos, memoryview(buf))
        self._pos += n
        return bytes(buf)

    def _fetch(self, start: int, view: memoryview) -> None:
        """Fill ``view`` with the object's bytes from ``start`` on (Range requests)."""
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError,
                                         IncompleteReadError, ReadTimeoutError,
                                         ResponseStreamingError)
        client = self._storage.client
        got, broken = 0, 0
        while got < len(view):
            kwargs = {"Bucket": self._bucket, "Key": self._key,
                      "Range": f"bytes={start + got}-{start + len(view) - 1}"}
            if self._version_id:
                kwargs["VersionId"] = self._version_id
            elif self._etag:
                kwargs["IfMatch"] = self._etag
            try:
                body = client.get_object(**kwargs)["Body"]
            except ClientError as exc:
                if _code(exc) in ("PreconditionFailed", "412"):
                    raise InputError(f"{self._uri}: the object changed while it was being "
                                     "read; run again once it is no longer being written"
                                     ) from None
                raise self._storage._error(exc, self._uri, action="GetObject") from None
            except BotoCoreError as exc:
                raise self._storage._error(exc, self._uri, action="GetObject") from None
            try:
                with body:
                    while got < len(view):
                        k = body.readinto(view[got:]) if hasattr(body, "readinto") else \
                            _read_into(body, view[got:])
                        if not k:
                            raise IncompleteReadError(actual_bytes=got,
                                                      expected_bytes=len(view))
                        got += k
            except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError,
                    ConnectionClosedError, ConnectionError) as exc:
                # The request succeeded but its body broke off: ask again for the rest.
                broken += 1
                if broken > _STREAM_RETRIES:
                    raise self._storage._error(exc, self._uri, action="GetObject") from None
                time.sleep(random.uniform(0, min(5.0, 0.2 * 2 ** broken)))  # backoff, jitter


def _read_into(body, view: memoryview) -> int:
    chunk = body.read(min(len(view), 1024 * 1024))
    view[:len(chunk)] = chunk
    return len(chunk)


# --------------------------------------------------------------------------- factory

_LOCAL = LocalStorage()
_S3_CACHE: dict[str | None, S3Storage] = {}
_S3_CACHE_LOCK = threading.Lock()


def s3_endpoint_from_env() -> str | None:
    """The S3-compatible endpoint named by BLURFACES_S3_ENDPOINT, else AWS_ENDPOINT_URL_S3 /
    AWS_ENDPOINT_URL; None (AWS S3) when none is set."""
    for name in ("BLURFACES_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def get_storage(uri, *, endpoint_url: str | None = None) -> Storage:
    """`LocalStorage` for a path, `S3Storage` for an ``s3://`` URI.

    The S3 endpoint is ``endpoint_url``, else the environment (`s3_endpoint_from_env`).
    One `S3Storage` (and boto3 client) is kept per endpoint and reused.
    """
    if not is_s3(uri):
        return _LOCAL
    parse_s3(uri)
    endpoint = endpoint_url or s3_endpoint_from_env()
    with _S3_CACHE_LOCK:
        storage = _S3_CACHE.get(endpoint)
        if storage is None:
            _import_boto3()
            storage = _S3_CACHE[endpoint] = S3Storage(endpoint_url=endpoint)
        return storage


def _written(resp: dict, size: int) -> Stat:
    """The identity of an object just written, from the PutObject/CompleteMultipartUpload
    response."""
    version = resp.get("VersionId")
    return Stat(size=size, mtime=time.time(), etag=str(resp.get("ETag", "")).strip('"') or None,
                version_id=version if version not in (None, "null") else None)
