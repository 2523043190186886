#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job: `python -m gilbridge compare`, the
# same workloads on the stdlib's multiprocessing and on Bridge, interleaved in one run.
# Prints the table of medians, ratios and targets; writes artifacts/compare/compare.json
# and compare.png. Extra arguments go to compare (e.g. --quick, --workloads lock,queue,
# --repeats 9; see --help). About 2½ minutes at the defaults on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/python -m gilbridge compare "$@"
