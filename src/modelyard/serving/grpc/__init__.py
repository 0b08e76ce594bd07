"""The gRPC adapter: Open Inference Protocol v2 (``inference.GRPCInferenceService``).

Imports grpc, so nothing outside the serving entry points imports this package.
"""

from __future__ import annotations

from modelyard.serving.grpc.server import GrpcServer, InferenceServicer, start_grpc_server

__all__ = ["GrpcServer", "InferenceServicer", "start_grpc_server"]
