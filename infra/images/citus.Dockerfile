# syntax=docker/dockerfile:1
# PostgreSQL with Citus, plus pgBackRest for WAL archiving and base backups (runbook).
# The base has no default on purpose: give the Citus image by digest, e.g.
#   docker buildx imagetools inspect citusdata/citus:13.0.3-pg17
#   docker build -f infra/images/citus.Dockerfile \
#     --build-arg CITUS_BASE=citusdata/citus:13.0.3-pg17@sha256:<digest> -t zongzhi-citus .
ARG CITUS_BASE
#checkov:skip=CKV_DOCKER_7:the base is a required build argument given as repository@sha256:digest (no tag to check); the build fails without it

# -- fetch: pgBackRest from Debian, in its own stage ------------------------------------
FROM ${CITUS_BASE} AS fetch
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends --download-only pgbackrest \
    && mkdir -p /debs && cp /var/cache/apt/archives/*.deb /debs/

# -- runtime: Citus + pgBackRest, running as postgres ------------------------------------
FROM ${CITUS_BASE} AS runtime
USER root
COPY --from=fetch /debs /tmp/debs
RUN apt-get install -y --no-install-recommends /tmp/debs/*.deb \
    && rm -rf /tmp/debs /var/lib/apt/lists/* \
    && mkdir -p /var/log/pgbackrest /var/lib/pgbackrest \
    && chown postgres:postgres /var/log/pgbackrest /var/lib/pgbackrest
USER postgres
HEALTHCHECK --interval=20s --timeout=5s --retries=6 CMD ["pg_isready", "-q", "-h", "127.0.0.1"]
