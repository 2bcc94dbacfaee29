"""blurfaces' tests, a package so that tests and benchmarks share one set of media helpers.

Import helpers by their package name from the repository root (pytest puts it on sys.path,
see `pythonpath` in pyproject.toml): `from tests import media` (real and synthetic clips),
`from tests import corpus` (container corpus), `from tests.s3server import s3_server`,
`from tests.integration import helpers` (moto/AWS helpers). Nothing edits sys.path.
"""
