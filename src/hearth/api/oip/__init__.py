"""The Open Inference Protocol v2 family (KServe / Triton REST): health, metadata and inference."""
