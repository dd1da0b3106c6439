"""The deployment contract between the inference service and the infrastructure code.

The Kubernetes Deployment (built in `components/`) and the monitoring rules import these
constants, so this module must stay import-light: no onnxruntime, numpy or server imports.
"""

from __future__ import annotations

from typing import Final

IMAGE: Final = "docker.io/jeefy/cat-watcher:0.1.0"
# onnxruntime-gpu 1.27+ is built for CUDA 13, which no longer supports GPUs below compute
# capability 7.5 (Pascal, Volta): those get the image built on onnxruntime-gpu 1.26 (CUDA 12).
IMAGE_CUDA12: Final = "docker.io/jeefy/cat-watcher:0.1.0-cuda12"
CUDA13_MIN_COMPUTE_CAPABILITY: Final = (7, 5)
ONNXRUNTIME_CUDA13: Final = "onnxruntime-gpu[cuda,cudnn]==1.31.1"
ONNXRUNTIME_CUDA12: Final = "onnxruntime-gpu[cuda,cudnn]==1.26.0"
COMMAND: Final = ("catwatcher-inference", "serve")
DEFAULT_PORT: Final = 8000
PORT_NAME: Final = "http"
RUN_AS_USER: Final = 10001
# The only writable path the service may use under a read-only root filesystem.
WRITABLE_TMP_PATH: Final = "/tmp"
MODELS_DIR: Final = "/models"

HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"
DETECT_PATH: Final = "/v1/detect"

ENV_PREFIX: Final = "CAT_WATCHER__"
ENV_NESTED_DELIMITER: Final = "__"
GPU_MEMORY_LIMIT_ENV: Final = "CAT_WATCHER__INFERENCE__GPU_MEMORY_LIMIT"
GPU_MEMORY_OVERHEAD_ENV: Final = "CAT_WATCHER__INFERENCE__GPU_MEMORY_OVERHEAD"
DEVICE_ENV: Final = "CAT_WATCHER__INFERENCE__DEVICE"
# The detector's part of the pod's arena when an identifier model runs beside it (the rest is
# the identifier's): the detector runs on a 640x640 frame, the identifier on small crops. The
# planner (`catwatcher-infra plan`) sizes the arena from it.
DETECTOR_ARENA_SHARE: Final = 0.75

# Prometheus metric names, exactly as exposed on METRICS_PATH (alerts are written against them).
METRIC_REQUESTS_TOTAL: Final = "catwatcher_requests_total"  # counter, label outcome
METRIC_REQUEST_DURATION: Final = "catwatcher_request_duration_seconds"  # histogram, label outcome
METRIC_INFERENCE_DURATION: Final = "catwatcher_inference_duration_seconds"  # histogram, label stage
METRIC_DEVICE_INFO: Final = "catwatcher_inference_device_info"  # gauge, label device
METRIC_DEGRADED: Final = "catwatcher_degraded"  # gauge 0/1
METRIC_GPU_MEMORY_LIMIT: Final = "catwatcher_gpu_memory_limit_bytes"  # gauge, 0 when unset
METRIC_RUNS_IN_FLIGHT: Final = "catwatcher_model_runs_in_flight"  # gauge
METRIC_REFUSED_TOTAL: Final = "catwatcher_refused_total"  # counter, label reason
METRIC_PENDING_REQUESTS: Final = "catwatcher_pending_requests"  # gauge

OUTCOMES: Final = ("ok", "client_error", "server_error")
STAGES: Final = ("detect", "identify")
DEVICES: Final = ("cuda", "cpu")
# Why the server refused or dropped a request before the app handled it (REFUSED_TOTAL's label).
REFUSAL_REASONS: Final = ("overloaded", "header_timeout", "body_timeout", "header_too_large")
