"""Generated gRPC stubs (see python/gen_protos.sh)."""
