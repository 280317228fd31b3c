#!/usr/bin/env bash
# Installs the Python-packaged test tools (schemathesis; rotel, a real OTLP collector; Pillow, the
# processing tests' independent pixel reference) into one
# venv in the cache, once; prints the venv's path.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VENV="$CACHE/venv"
SCHEMATHESIS=4.32.5
ROTEL=0.0.1a15
PILLOW=12.0.0
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; \
    sys.exit(0 if m.version('schemathesis') == '$SCHEMATHESIS' and m.version('rotel') == '$ROTEL' and m.version('pillow') == '$PILLOW' else 1)" 2>/dev/null; then
  echo "installing schemathesis $SCHEMATHESIS, rotel $ROTEL and Pillow $PILLOW into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS" "rotel==$ROTEL" "pillow==$PILLOW" >&2
fi
echo "$VENV"
