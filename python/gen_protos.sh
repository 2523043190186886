#!/usr/bin/env bash
# Regenerates the Python gRPC stubs under python/gilbridge/_proto/bridge/v1 from
# protos/bridge/v1/*.proto with Debian's protoc 3.21 + grpc_python_plugin (the stubs must
# import with protobuf >= 4.21; Grpc.Tools' protoc emits code that needs a newer runtime).
# The absolute `from bridge.v1 import x_pb2` imports are rewritten to relative ones so the
# stubs work inside the gilbridge package.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="$here/gilbridge/_proto"
plugin="$(command -v grpc_python_plugin)" || { echo "grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

rm -f "$out"/bridge/v1/*_pb2.py "$out"/bridge/v1/*_pb2_grpc.py
mkdir -p "$out/bridge/v1"
protoc -I "$root/protos" \
  --python_out="$out" \
  --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  "$root"/protos/bridge/v1/*.proto

for f in "$out"/bridge/v1/*_pb2.py "$out"/bridge/v1/*_pb2_grpc.py; do
  sed -i -E 's/^from bridge\.v1 import ([A-Za-z0-9_]+_pb2)/from . import \1/' "$f"
done
for d in "$out" "$out/bridge" "$out/bridge/v1"; do
  [ -f "$d/__init__.py" ] || echo '"""Generated gRPC stubs (see python/gen_protos.sh)."""' > "$d/__init__.py"
done
echo "stubs written to $out/bridge/v1"
