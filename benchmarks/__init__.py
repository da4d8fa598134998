"""Side-by-side measurements (run from the repo root: ``python -m benchmarks.<name>``)."""
