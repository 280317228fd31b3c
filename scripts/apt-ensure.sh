#!/usr/bin/env bash
# Installs those of the named Debian packages that are missing (apt-get update only when the
# first attempt fails); the benchmark anchors' installers share it.
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "installing ${missing[*]} (Debian)" >&2
apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
  || { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
