#!/usr/bin/env bash
# Makes, from Debian's packages, the two base images the Dockerfile's FROM lines name, and tags
# them with those names, so the Dockerfile builds unchanged on a machine that reaches Debian's
# mirrors but no image registry:
#   docker.io/library/rust:1.96-bookworm     a builder: Debian bookworm with rustc/cargo 1.96
#                                            (rustc-web, cargo-web from bookworm-security), gcc
#   gcr.io/distroless/cc-debian12:nonroot    a runtime like distroless/cc: glibc, libgcc, libssl,
#                                            CA certificates, tzdata, a `nonroot` user (65532);
#                                            no shell, no package manager
# Idempotent: an image is made again only when its recipe (this file) has changed; --force
# remakes both. Needs root, podman and mmdebstrap (deploy/container/test.sh installs them).
# They are kept in their own podman storage (storage.conf), never in the machine's: they carry the
# names of the real images.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
export CONTAINERS_STORAGE_CONF="${CONTAINERS_STORAGE_CONF:-$here/storage.conf}"
sources="${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
force=false
[ "${1:-}" = "--force" ] && force=true

rust_version=1.96
builder=docker.io/library/rust:$rust_version-bookworm
runtime=gcr.io/distroless/cc-debian12:nonroot
recipe="$(sha256sum "$0" | cut -c1-16)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Is NAME there, made from this recipe?
current() {
  podman image exists "$1" &&
    [ "$(podman image inspect --format '{{index .Labels "partner-gateway.recipe"}}' "$1")" = "$recipe" ]
}

if $force || ! current "$builder"; then
  echo "making $builder from Debian's rustc-web and cargo-web"
  started=$SECONDS
  mmdebstrap --quiet --variant=minbase \
    --include=rustc-web,cargo-web,gcc,libc6-dev,ca-certificates \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm "$work/builder.tar" "$sources"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change "LABEL partner-gateway.recipe=$recipe" \
    --change 'CMD ["bash"]' \
    "$work/builder.tar" "$builder" >/dev/null
  # The name promises a version: Debian's security updates move rustc-web on, so check it.
  version="$(podman run --rm "$builder" rustc --version)"
  case "$version" in
    "rustc $rust_version."*) ;;
    *)
      podman rmi "$builder" >/dev/null
      echo "FAIL: Debian's rustc-web is now $version, not $rust_version: update rust_version here and the Dockerfile's FROM" >&2
      exit 1
      ;;
  esac
  echo "  $version ($((SECONDS - started)) s)"
else
  echo "$builder: up to date"
fi

if $force || ! current "$runtime"; then
  echo "making $runtime (distroless/cc-like)"
  started=$SECONDS
  root="$work/runtime"
  # `extract` unpacks the packages (and what they depend on) without running any maintainer
  # script: nothing of Debian's tooling is configured, and what it brought is removed below.
  mmdebstrap --quiet --variant=extract \
    --include=base-files,netbase,tzdata,libc6,libgcc-s1,libssl3,ca-certificates \
    bookworm "$root" "$sources"
  # The CA bundle update-ca-certificates would have written.
  mkdir -p "$root/etc/ssl/certs"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
  # No shell, no package manager, no interpreters, no documentation.
  rm -rf "$root"/bin/* "$root"/sbin/* "$root"/usr/bin/* "$root"/usr/sbin/* \
    "$root"/usr/share/{man,doc,perl5,debconf,lintian,bash-completion,pixmaps,info} \
    "$root"/var/lib/dpkg "$root"/var/lib/apt "$root"/var/cache/* "$root"/var/log/* \
    "$root"/etc/apt "$root"/etc/dpkg "$root"/usr/lib/x86_64-linux-gnu/perl* "$root"/usr/lib/dpkg
  # distroless's users: root, nobody and nonroot (65532), with a home for nonroot.
  cat >"$root/etc/passwd" <<'USERS'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
USERS
  cat >"$root/etc/group" <<'GROUPS'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUPS
  mkdir -p "$root/home/nonroot" "$root/root" "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  chmod 700 "$root/root"
  chmod 1777 "$root/tmp"
  tar -C "$root" --numeric-owner -cf "$work/runtime.tar" .
  podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /home/nonroot' \
    --change "LABEL partner-gateway.recipe=$recipe" \
    "$work/runtime.tar" "$runtime" >/dev/null
  echo "  $(podman image inspect --format '{{.Size}}' "$runtime" | awk '{printf "%.1f MB", $1/1e6}') ($((SECONDS - started)) s)"
else
  echo "$runtime: up to date"
fi
