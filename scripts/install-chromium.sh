#!/usr/bin/env bash
# Installs Chromium from Debian's packages when it is missing (the SVG inertness test renders
# accepted SVGs in it). Prints the binary's path.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  echo "installing chromium (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium >&2
fi
command -v chromium
