"""What `seedplan bench` runs: each module exposes run_benchmarks(quick) -> list[dict]."""
