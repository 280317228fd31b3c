#!/usr/bin/env bash
# Installs pyvips (PyPI) over Debian's libvips (the same libvips 8.14 that imgproxy is built
# against, not the pyvips-binary wheel) into the venv $IG_CACHE/vips-venv, once; prints that
# venv's python. It runs bench/vips_server.py, the plain-libvips baseline of bench/processing.sh.
# With libvips-dev, pkg-config and a C compiler present, pip builds pyvips's cffi API mode.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VERSION=3.2.0
VENV="$CACHE/vips-venv"
bash "$(dirname "$0")/apt-ensure.sh" libvips-dev pkg-config gcc libc6-dev
if [ ! -x "$VENV/bin/python" ] \
  || [ "$("$VENV/bin/python" -c 'import pyvips; print(pyvips.__version__, pyvips.API_mode)' 2>/dev/null)" != "$VERSION True" ]; then
  echo "installing pyvips $VERSION (API mode, Debian's libvips $(pkg-config --modversion vips)) into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "pyvips==$VERSION" >&2
fi
echo "$VENV/bin/python"
