"""Run the benchmarks: `python -m bench` runs all, `python -m bench shell bus` some."""

import importlib
import sys

# Each module has main() -> int, prints its figures and their ratio to a baseline of the same run.
BENCHES = ["shell", "tracking", "spatial", "realtime", "notify", "telemetry", "media", "bus"]


def run(names: list[str]) -> int:
    """Run the named benchmarks in order; return non-zero if any failed."""
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
        return 2
    failed = 0
    for name in names:
        failed |= importlib.import_module(f"bench.{name}").main()
    return failed


sys.exit(run(sys.argv[1:] or BENCHES))
