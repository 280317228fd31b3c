#!/usr/bin/env bash
# Installs the Python-packaged test tools into one venv in the cache, once; prints the venv's
# path: schemathesis; rotel, a real OTLP collector; and the processing tests' independent
# references: Pillow (LittleCMS inside), pyvips with the pyvips-binary wheel (its own libvips,
# no Debian packages), numpy (scripts/image_quality.py's SSIM and PSNR) and scikit-image, whose
# wheel carries the sample photographs (installed without its dependencies: only its files are
# read, it is never imported); and ruff, the lint of the Python in bench/, scripts/ and
# tests/chart/ (ruff.toml).
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
VENV="$CACHE/venv"
PINS="schemathesis==4.32.5 rotel==0.0.1a15 pillow==12.0.0 numpy==2.4.6 pyvips==3.2.0 pyvips-binary==8.18.7 ruff==0.17.6"
SAMPLES="scikit-image==0.26.0"
# pyvips must run on the wheel's libvips. On a machine with Debian's libvips-dev (installed by
# bench/processing.sh for imgproxy), pip builds pyvips's own `_libvips` against the system's
# 8.14 and it replaces the wheel's: the references change (a CMYK JPEG then scores 28.6 dB
# instead of 50). So the wheel is put back last, and the check below asks libvips itself.
if ! "$VENV/bin/python" - $PINS $SAMPLES 2>/dev/null <<'PY'; then
import importlib.metadata as m, sys
pins = all(m.version(pin.split("==")[0]) == pin.split("==")[1] for pin in sys.argv[1:])
import pyvips
wheel = ".".join(str(pyvips.version(n)) for n in range(3)) == m.version("pyvips-binary")
sys.exit(0 if pins and wheel else 1)
PY
  echo "installing $PINS and $SAMPLES (files only) into $VENV" >&2
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $PINS >&2
  "$VENV/bin/pip" install -q --force-reinstall --no-deps "$(tr ' ' '\n' <<<"$PINS" | grep '^pyvips-binary==')" >&2
  "$VENV/bin/pip" install -q --no-deps "$SAMPLES" >&2
fi
echo "$VENV"
