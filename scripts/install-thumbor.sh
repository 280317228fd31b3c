#!/usr/bin/env bash
# Installs thumbor (PyPI) into the venv $IG_CACHE/thumbor-venv, once; prints the `thumbor`
# executable's path. An anchor of bench/processing.sh (its own Tornado HTTP server, Pillow).
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VERSION=7.8.0
VENV="$CACHE/thumbor-venv"
if [ ! -x "$VENV/bin/thumbor" ] || [ "$("$VENV/bin/python" -c 'import thumbor; print(thumbor.__version__)' 2>/dev/null)" != "$VERSION" ]; then
  echo "installing thumbor $VERSION into $VENV (once; about a minute)" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "thumbor==$VERSION" >&2
fi
echo "$VENV/bin/thumbor"
