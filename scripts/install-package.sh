#!/usr/bin/env bash
# Makes gilbridge importable from .venv as an editable install (offline: no build
# isolation, dependencies come from Debian through --system-site-packages).
set -euo pipefail
cd "$(dirname "$0")/.."
# Bytecode, as pip writes at install: a script's first import of gilbridge (and every
# worker's) then skips compiling it (~50 ms), even where PYTHONDONTWRITEBYTECODE is set.
.venv/bin/python -m compileall -q python/gilbridge >/dev/null
if .venv/bin/python -c "import gilbridge, sys; sys.exit(0 if gilbridge.__file__.startswith('$PWD/python/') else 1)" 2>/dev/null; then
  exit 0
fi
if ! .venv/bin/python -m pip install -q --no-build-isolation --no-deps --no-index -e . >/dev/null 2>&1; then
  echo "setup: pip editable install unavailable offline; linking python/ into .venv with a .pth file"
  site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$PWD/python" > "$site/gilbridge-dev.pth"
fi
