"""Camera alerts: frames → Triton → detections on NATS JetStream → ``CameraAlert``.

``vision.messages`` is the contract between the inference workers (which
publish detections) and the alert service (which consumes them).
"""
