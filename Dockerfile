# gatehouse: build a release binary (with the `saml` feature), then run it in a small non-root
# image holding only the shared libraries it links (libxml2, xmlsec1) and the CA certificates.
#
#   docker build -t gatehouse .
#   docker run -p 8055:8055 -v gatehouse-data:/app/data gatehouse
#
# The runtime stage is checked without Docker by scripts/rootfs-check.sh (run by scripts/e2e.sh):
# it reads the base image, the apt-get install list, RUN, USER, ENV, WORKDIR, COPY and
# HEALTHCHECK from here, so keep them in this simple form (one apt-get install, exec-form CMD).

# ---- build ----
FROM rust:1-bookworm AS builder
WORKDIR /src

# SAML (the `saml` feature): libxml2 and xmlsec1 to link against, libclang for bindgen.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libxml2-dev libxmlsec1-dev libclang-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, against stub sources, so this layer is reused until Cargo.toml or
# Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --features saml \
    && rm -rf src

# The real sources (the migrations are compiled in with include_str!). COPY keeps the files'
# modification times, which can be older than the stub build: touch the crate roots so cargo
# rebuilds gatehouse itself.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --features saml \
    && cp target/release/gatehouse /usr/local/bin/gatehouse

# ---- run ----
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libxml2 libxmlsec1 libxmlsec1-openssl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 gatehouse \
    && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin gatehouse \
    && mkdir -p /app/data \
    && chown -R 10001:10001 /app

COPY --from=builder /usr/local/bin/gatehouse /usr/local/bin/gatehouse

WORKDIR /app
USER 10001:10001

ENV HOST=0.0.0.0 PORT=8055 DB_FILENAME=/app/data/gatehouse.db
EXPOSE 8055
VOLUME /app/data

# Readiness: /server/health/ready answers 200 only while the database takes a write (503 when
# it does not; one probe a second at most, shared with /server/health). No curl in the image: bash's
# /dev/tcp sends the request, and the status line must say 200. scripts/rootfs-check.sh runs
# this very command inside a root filesystem built from this stage.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8055} && printf 'GET /server/health/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# Serves by default; arguments are gatehouse commands (`docker run … gatehouse users list`).
ENTRYPOINT ["/usr/local/bin/gatehouse"]
