"""blurfaces' benchmarks, a package: run each from the repository root as a module,
`python -m bench.throughput ...` (see bench/README.md). Media come from `tests.media`; the
clip makers here (`bench.hardclips`, `bench.placed`) are imported by the tests too."""
