#!/usr/bin/env bash
# Regenerate the Open Inference Protocol gRPC modules checked in under
# src/modelyard/serving/grpc/_generated/ from open_inference_grpc.proto there.
#
#   scripts/gen_grpc.sh               # uses .venv/bin/python (needs grpcio-tools)
#   PYTHON=python3 scripts/gen_grpc.sh
#
# Two things beyond plain protoc, both explained in _generated/README.md:
# 1. "-I src" with the proto's path inside the package, so that the generated
#    *_pb2_grpc.py imports "from modelyard.serving.grpc._generated import ..." and works
#    from inside the package.
# 2. The descriptors go into a private DescriptorPool instead of protobuf's process-wide
#    default pool. The messages live in package "inference" (the gRPC method paths
#    /inference.GRPCInferenceService/... come from it), and so do tritonclient's, KServe's and
#    MLServer's generated stubs: in the default pool, importing both in one process fails with
#    "duplicate symbol 'inference.ServerLiveRequest'". The wire format does not depend on the pool.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT=src/modelyard/serving/grpc/_generated
PROTO="$OUT/open_inference_grpc.proto"

"$PYTHON" -m grpc_tools.protoc -I src \
    --python_out=src --pyi_out=src --grpc_python_out=src \
    "$PROTO"

"$PYTHON" - "$OUT/open_inference_grpc_pb2.py" <<'PY'
import sys
from pathlib import Path

path = Path(sys.argv[1])
text = path.read_text()
default = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
private = (
    "# modelyard (scripts/gen_grpc.sh): a private pool, so that other stubs of package\n"
    "# 'inference' (tritonclient, KServe, MLServer) can be imported in the same process.\n"
    "POOL = _descriptor_pool.DescriptorPool()\n"
    "DESCRIPTOR = POOL.AddSerializedFile("
)
if text.count(default) != 1:
    sys.exit(f"{path}: expected one default-pool registration to rewrite")
path.write_text(text.replace(default, private))
PY

"$PYTHON" -m grpc_tools.protoc --version
"$PYTHON" -c "import grpc_tools, importlib.metadata as m; print('grpcio-tools', m.version('grpcio-tools'))"
