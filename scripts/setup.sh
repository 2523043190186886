#!/usr/bin/env bash
# Installs everything Bridge needs on a fresh Debian 12 machine with the .NET 10 SDK:
# Debian's Python packages (PyPI is not assumed), the .NET build, the published host
# and the .venv with gilbridge importable (redis-server and openssl serve the cluster
# and TLS tests). Idempotent: a second run only rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3.11 python3.11-venv python3-venv python3-grpcio python3-protobuf python3-msgpack
  python3-cloudpickle python3-pytest python3-pytest-timeout python3-tqdm python3-matplotlib python3-setuptools python3-wheel redis-server
  protobuf-compiler protobuf-compiler-grpc libpython3.11-testsuite openssl)

# The Node.js example client (examples/node): the machine's node and npm, else Debian's.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "setup: building the .NET solution and publishing the host and worker to artifacts/"
dotnet build Bridge.sln -c Release -nologo -v quiet -clp:ErrorsOnly
bash scripts/publish.sh artifacts
# dotnet-counters (.config/dotnet-tools.json): reads the host's Bridge.Host meter; a test uses it.
dotnet tool restore >/dev/null

PYTHON=/usr/bin/python3.11
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv from Debian's $PYTHON (it sees Debian's Python packages)"
  "$PYTHON" -m venv --system-site-packages .venv
fi
bash scripts/install-package.sh
echo "setup: installing the Node.js example's packages (examples/node, from package-lock.json)"
npm ci --prefix examples/node --no-audit --no-fund --loglevel=error >/dev/null
# The C# package and the example built against it (README "Using it from C#", whose two
# commands these are), redone only when their sources changed. NuGet keeps a package it
# extracted by id and version, so the copy of the previous 0.1.0 goes first.
CSHARP_STAMP=artifacts/nuget/.sources
csharp_sources=$(find src/Bridge.Client src/Bridge.Contracts protos examples/csharp Directory.Build.props Directory.Packages.props \
  -type f -not -path '*/bin/*' -not -path '*/obj/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [[ ! -f examples/csharp/bin/Release/net10.0/QueueAndLock.dll || "$(cat "$CSHARP_STAMP" 2>/dev/null)" != "$csharp_sources" ]]; then
  echo "setup: packing Bridge.Client to artifacts/nuget and building examples/csharp against the package"
  rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/bridge.client/0.1.0" examples/csharp/obj
  dotnet pack src/Bridge.Client -o artifacts/nuget
  dotnet build examples/csharp -c Release
  echo "$csharp_sources" > "$CSHARP_STAMP"
fi
.venv/bin/python -c "import gilbridge.multiprocessing" \
  || { echo "setup: gilbridge is not importable from .venv" >&2; exit 1; }
echo "setup: ready (.venv/bin/python has gilbridge; host at artifacts/host/Bridge.Host)"
