#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every test: xunit (grains through Orleans'
# in-process test cluster; the gRPC services against a real host process; C# <-> Python)
# and pytest (the Python package against a real host process). Test projects run one
# after another (-m:1): each starts real processes, and 2 cores are easily starved.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export GILBRIDGE_PYTHON="$PWD/.venv/bin/python"
export GILBRIDGE_HOST_PATH="$PWD/artifacts/host/Bridge.Host"

echo "== xunit"
# The console logger at "minimal" prints a failed test's message and stack (MSBuild's
# quiet verbosity alone prints only its name), and nothing for passing ones.
dotnet test Bridge.sln -c Release --no-build -nologo -v quiet -m:1 \
  --logger "console;verbosity=minimal" \
  --blame-hang --blame-hang-timeout 5m -- RunConfiguration.TestSessionTimeout=900000

echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider
