# syntax=docker/dockerfile:1
# The product's image: every process of zongzhi.processes runs it (`zongzhi <command>`);
# target `vision` adds the native libraries the camera pipeline needs.
#   docker build -f infra/images/zongzhi.Dockerfile -t zongzhi .
#   docker build -f infra/images/zongzhi.Dockerfile --target vision -t zongzhi-vision .
# The base is pinned by digest (python:3.11-slim-bookworm); refresh it with
#   docker buildx imagetools inspect python:3.11-slim-bookworm

# -- build: a virtual environment from the locked runtime dependencies --------------------
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/zongzhi
COPY infra/images/requirements-runtime.lock /src/requirements-runtime.lock
RUN /opt/zongzhi/bin/pip install --require-hashes --no-deps -r /src/requirements-runtime.lock
COPY pyproject.toml README.md /src/
COPY domain /src/domain
COPY tenants /src/tenants
COPY projections /src/projections
COPY flows /src/flows
COPY api /src/api
COPY audit /src/audit
COPY vision /src/vision
COPY zongzhi /src/zongzhi
COPY data/divisions /src/data/divisions
RUN /opt/zongzhi/bin/pip install --no-deps /src

# -- runtime: the venv, no compiler, no pip cache, an unprivileged user ---------------------
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS runtime
RUN groupadd --system --gid 10001 zongzhi \
    && useradd --system --uid 10001 --gid zongzhi --home-dir /nonexistent --shell /usr/sbin/nologin zongzhi
COPY --from=build /opt/zongzhi /opt/zongzhi
COPY --from=build /src/data/divisions /opt/zongzhi/data/divisions
ENV PATH=/opt/zongzhi/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ZONGZHI_DATA_DIR=/tmp/zongzhi
WORKDIR /tmp
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=10s --retries=3 CMD ["python", "-m", "zongzhi.probe", "postgres"]
ENTRYPOINT ["zongzhi"]
CMD ["processes"]

# -- vision: the same, with the runtime libraries of OpenCV and ONNX Runtime -----------------
FROM runtime AS vision
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14* \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=10s --retries=3 CMD ["python", "-m", "zongzhi.probe", "nats", "triton"]
