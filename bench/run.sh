#!/bin/sh
# Build kiln in release and run the benchmarks; see bench/run.py --help for options.
exec python3 "$(dirname "$0")/run.py" "$@"
