#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the main job: for now the seed examples (a Lock
# and a FIFO Queue filled by one process and drained by another) through
# gilbridge.multiprocessing, with timings. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/python -m gilbridge.examples.seed_demo "$@"
