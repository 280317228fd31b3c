#!/usr/bin/env bash
# Builds the container image from the Dockerfile with buildah (Debian), as the test command and
# the node tests need it; prints the image's reference.
#
# No registry with the Dockerfile's default bases (rust:*-bookworm, distroless cc) is reachable
# here, so the bases are made once, locally, from what is: the runtime base from the Debian
# packages distroless is made of (glibc, libgcc, CA certificates, tzdata, netbase; a `nonroot`
# 65532 user; no shell), the builder base from Debian bookworm (mmdebstrap) with this machine's
# Rust toolchain and CA certificates, a C compiler, cmake and NASM. They are passed as the Dockerfile's BUILDER_IMAGE
# and RUNTIME_IMAGE build arguments; the Dockerfile itself is what Docker users build.
#
# Images live in a containers-storage of their own under $IG_CACHE/containers (overlay), so the
# bases and the dependency layer (`--layers`) are made once and a warm run rebuilds only the crate.
# Builds use the host's network namespace: no container address is ever allocated.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${IG_IMAGE:-localhost/image-gateway:dev}"
bash scripts/apt-ensure.sh buildah podman mmdebstrap uidmap
# shellcheck source=scripts/containers-env.sh
source scripts/containers-env.sh

rust_version="$(rustc --version | cut -d' ' -f2)"
builder="localhost/image-gateway-builder:rust-$rust_version-bookworm"
runtime="localhost/image-gateway-runtime:bookworm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A folder holding the contents of the named Debian packages (their files only: no maintainer
# script runs, as distroless does it).
extract_debs() {
  local root="$1"; shift
  mkdir -p "$work/debs" && (cd "$work/debs" && apt-get download "$@" >&2)
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  rm -rf "$work/debs"
}

if ! buildah inspect --type image "$runtime" >/dev/null 2>&1; then
  echo "making the runtime base $runtime (Debian packages; once)" >&2
  root="$work/runtime"
  extract_debs "$root" libc6 libgcc-s1 ca-certificates tzdata netbase base-files
  # What maintainer scripts would have made: the CA bundle (ca-certificates' postinst) ...
  mkdir -p "$root/etc/ssl/certs"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt > "$root/etc/ssl/certs/ca-certificates.crt"
  # ... and distroless's users; then nothing that needs a shell or a package manager.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$root/etc/group"
  mkdir -p "$root/home/nonroot" "$root/tmp" "$root/root"
  chown 65532:65532 "$root/home/nonroot" && chmod 1777 "$root/tmp" && chmod 700 "$root/root"
  rm -rf "$root/usr/sbin" "$root/sbin" "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian"
  if find "$root" -name sh -o -name bash -o -name dash | grep -q .; then
    echo "build-image: a shell ended up in the runtime base" >&2; exit 1
  fi
  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$root" / >/dev/null
  buildah config --user 65532:65532 --workingdir /home/nonroot \
    --env PATH=/usr/local/bin:/usr/bin:/bin --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$ctr"
  buildah commit --quiet --rm "$ctr" "$runtime" >/dev/null
fi

if ! buildah inspect --type image "$builder" >/dev/null 2>&1; then
  echo "making the builder base $builder (Debian bookworm and this machine's Rust; once)" >&2
  root="$work/builder"
  mmdebstrap --variant=minbase --include=gcc,libc6-dev,make,cmake,nasm,ca-certificates,pkgconf \
    bookworm "$root" http://deb.debian.org/debian >&2
  sysroot="$(rustc --print sysroot)"
  mkdir -p "$root/usr/local/rust" "$root/usr/local/cargo"
  cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/libexec" "$root/usr/local/rust/"
  # This machine's trust store: its egress to crates.io may go through a proxy with its own CA.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$root" / >/dev/null
  buildah config --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --quiet --rm "$ctr" "$builder" >/dev/null
fi

sha="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
echo "building $IMAGE from the Dockerfile (buildah bud; the dependency layer is cached)" >&2
buildah bud --quiet --layers --pull=never --network host --format docker \
  --build-arg BUILDER_IMAGE="$builder" --build-arg RUNTIME_IMAGE="$runtime" \
  --build-arg IG_GIT_SHA="$sha" -t "$IMAGE" . >&2
echo "$IMAGE"
