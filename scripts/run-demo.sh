#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job: for now the seed examples (a Lock
# and a FIFO Queue filled by one process and drained by another) through
# gilbridge.multiprocessing, then the same code on the stdlib, with timings side by side.
# Extra arguments go to both runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
.venv/bin/python -m gilbridge.examples.seed_demo "$@"
.venv/bin/python -m gilbridge.examples.seed_demo --stdlib "$@"
