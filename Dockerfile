# syntax=docker/dockerfile:1
# partner-gateway: multi-stage build of a static-config, non-root runtime image.

FROM rust:1.96-bookworm AS build
WORKDIR /src
# Build the dependencies first, against stub sources, so code changes reuse that layer.
COPY Cargo.toml Cargo.lock ./
# Cargo.toml names the benches, so they must exist (as stubs) for the manifest to load.
RUN mkdir src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/limiter.rs \
 && echo 'fn main() {}' > benches/signing.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# Make the real sources newer than the stub's build artefacts.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

# distroless/cc: glibc + libgcc + CA certificates, no shell, a `nonroot` user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/partner-gateway /usr/local/bin/partner-gateway
COPY config ./config
USER nonroot:nonroot
EXPOSE 8080
# The image has no curl: the binary probes its own /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/partner-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/partner-gateway"]
CMD ["serve"]
