# syntax=docker/dockerfile:1
#
# Page server image.
#
#   docker build -t pageserver .
#   docker run --rm -p 9898:9898 -p 64000:64000 -v pageserver-data:/data pageserver
#
# The workdir is the volume /data: pageserver.toml, identity.toml, the pid file,
# tenants/ and the default local "remote" storage all live there. The default
# command makes the server listen on all interfaces; arguments given to
# `docker run` replace it (they are passed after `pageserver -D /data`), e.g.
#   docker run ... pageserver -c 'listen_http_addr="0.0.0.0:9898"' -c log_format='"json"'
# `-c` values override the same keys in /data/pageserver.toml.

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cargo registry and the target directory are cache mounts, so the binary
# is copied out of target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --bin pageserver --locked \
    && install -D -m 0755 target/release/pageserver /out/pageserver

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# PostgreSQL 15 provides initdb/postgres for timeline bootstrap, under
# /usr/lib/postgresql/15/bin (the default pg_distrib_dir). No cluster is created.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-15 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system pageserver \
    && useradd --system --gid pageserver --home-dir /data --shell /usr/sbin/nologin pageserver \
    && mkdir -p /data \
    && chown pageserver:pageserver /data

COPY --from=builder /out/pageserver /usr/local/bin/pageserver

USER pageserver
WORKDIR /data
VOLUME /data

# 64000: libpq page service, 9898: HTTP management API.
EXPOSE 64000 9898

# SIGTERM (docker stop) triggers a graceful shutdown.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pageserver", "-D", "/data"]
CMD ["-c", "listen_http_addr=\"0.0.0.0:9898\"", "-c", "listen_pg_addr=\"0.0.0.0:64000\""]
