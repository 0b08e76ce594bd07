"""Generated Open Inference Protocol gRPC modules; regenerate with scripts/gen_grpc.sh."""
