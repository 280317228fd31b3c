# syntax=docker/dockerfile:1
# Build: docker build --build-arg IG_GIT_SHA=$(git rev-parse --short=12 HEAD) -t image-gateway .
# The two bases are build arguments, so a machine without access to their registries can build
# from local stand-ins (the same Debian bookworm toolchain; a runtime with glibc, libgcc, CA
# certificates and the 65532 `nonroot` user, no shell); the defaults are what Docker users get.
# checkov:skip=CKV_DOCKER_7:the bases are build arguments; their defaults are tagged (1.95-bookworm, cc-debian12:nonroot)
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
# cmake and NASM build libjpeg-turbo and libaom (the native-codecs feature: 22 % faster JPEG
# decoding, AVIF encoding about twice as fast as rav1e); libaom's cmake project wants a C++
# compiler too (the rust image has one; a minimal builder base may not).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake nasm g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The binary is stripped: the release profile's line tables would only cost build time here.
ENV CARGO_PROFILE_RELEASE_DEBUG=false
# Dependencies first, in their own layer: source changes do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src tests/it \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/it/main.rs \
    && cargo build --release --locked --features native-codecs \
    && rm -rf src
COPY src ./src
COPY docs/openapi.yaml ./docs/openapi.yaml
ARG IG_GIT_SHA=unknown
ENV IG_GIT_SHA=${IG_GIT_SHA}
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --features native-codecs \
    && strip target/release/image-gateway

# A minimal runtime: glibc and CA certificates, no shell, non-root.
FROM ${RUNTIME_IMAGE}
COPY --from=build /src/target/release/image-gateway /usr/local/bin/image-gateway
USER 65532:65532
# GLIBC_TUNABLES: two malloc arenas for all threads. By default glibc gives each processing worker
# an arena of its own, which keeps the largest image that worker ever freed: memory admission
# (processing.memory_budget) would bound the jobs but not the process (docs/processing.md).
ENV IMAGE_GATEWAY_LISTEN=0.0.0.0:8080 \
    IMAGE_GATEWAY_ADMIN_LISTEN=0.0.0.0:9090 \
    IMAGE_GATEWAY_STORAGE__FS__ROOT=/data \
    GLIBC_TUNABLES=glibc.malloc.arena_max=2
EXPOSE 8080 9090
# For Docker and podman (Kubernetes ignores it and probes /livez, /readyz itself): the binary's own
# `probe` command (the image has no shell or curl), on the admin port set above.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s \
    CMD ["/usr/local/bin/image-gateway", "probe", "http://127.0.0.1:9090/livez", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/image-gateway"]
CMD ["serve"]
