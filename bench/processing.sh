#!/usr/bin/env bash
# The processing benchmark (bench/processing.py): JPEG photographs shrunk to fit 512x512 at
# quality 80 by imgproxy, thumbor, plain libvips (pyvips) and the gateway, all loaded by wrk.
# Installs wrk and mate-backgrounds (Debian, through scripts/apt-ensure.sh like the other
# benchmarks: only what is missing, apt-get update only when needed), the anchors
# (scripts/install-imgproxy.sh, for imgproxy4 with IMGPROXY_VERSION=v4.0.12, install-thumbor.sh,
# install-pyvips.sh, cached in $IG_CACHE) and builds the gateway in release, only for the servers
# selected; arguments go to processing.py, e.g. --duration 5 --servers imgproxy,thumbor.
# Every answer is also scored (SSIM, PSNR) against a full decode resampled by Lanczos3.
# Writes bench/results/processing.json and processing.md. About 12 minutes for the four servers
# at the default 3 + 20 s per row (warm caches).
set -euo pipefail
cd "$(dirname "$0")/.."
export IG_CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IG_CACHE/target}"
servers=imgproxy,thumbor,vips,gateway
prev=
for arg in "$@"; do
  case "$arg" in --servers=*) servers="${arg#--servers=}" ;; esac
  [ "$prev" = --servers ] && servers="$arg"
  prev="$arg"
done
bash scripts/apt-ensure.sh wrk mate-backgrounds
args=()
case ",$servers," in *,imgproxy,*) args+=(--imgproxy "$(bash scripts/install-imgproxy.sh)") ;; esac
case ",$servers," in *,imgproxy4,*) args+=(--imgproxy4 "$(IMGPROXY_VERSION=v4.0.12 bash scripts/install-imgproxy.sh)") ;; esac
case ",$servers," in *,thumbor,*) args+=(--thumbor "$(bash scripts/install-thumbor.sh)") ;; esac
case ",$servers," in *,vips,*) args+=(--vips-python "$(bash scripts/install-pyvips.sh)") ;; esac
case ",$servers," in
  *,gateway,*)
    # libjpeg-turbo and libaom are built from source: cmake and NASM, as in the Dockerfile.
    bash scripts/apt-ensure.sh nasm cmake g++
    cargo build --release --locked --features native-codecs --bin image-gateway
    args+=(--gateway "$CARGO_TARGET_DIR/release/image-gateway")
    ;;
esac
# The test tools' Python: Pillow and numpy score every answer (scripts/image_quality.py).
python="$(bash scripts/install-python-tools.sh)/bin/python"
"$python" bench/processing.py "${args[@]}" "$@"
