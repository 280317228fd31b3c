#!/usr/bin/env bash
# Puts NGINX's own S3 gateway (github.com/nginxinc/nginx-s3-gateway: nginx + njs signing SigV4
# requests to S3) into $IG_CACHE/nginx-s3-gateway/<commit>, once, and makes sure the Debian
# packages it runs on are installed; prints the tree's path. bench/s3_gateway.py renders the
# tree's templates and starts it (no docker) as a benchmark anchor.
#
# Commit: ea82f3b1b09e103fe5e9db647303efb3d1e6ecbb (main, May 2025). The project has no releases
# and no tags; its images pin nginx 1.27 + njs 0.8.7. Here it runs on Debian 12's nginx 1.22.1
# with libnginx-mod-http-js (njs 0.7.9) and libnginx-mod-http-xslt-filter (default.conf uses
# xslt_stylesheet, so nginx refuses the config without it); envsubst is from gettext-base.
#
# Source: the project is on no package registry. The script takes $NGINX_S3_GATEWAY_SRC (a
# tarball or a directory of the tree), else $IG_CACHE/nginx-s3-gateway/nginx-s3-gateway-ea82f3b-src.tar.gz,
# made once with
#   git -C <a clone of github.com/nginxinc/nginx-s3-gateway> archive --format=tar.gz \
#     --prefix=nginx-s3-gateway/ -o "$IG_CACHE/nginx-s3-gateway/nginx-s3-gateway-ea82f3b-src.tar.gz" \
#     ea82f3b1b09e103fe5e9db647303efb3d1e6ecbb
# (`git get-tar-commit-id` reads the commit back out of such a tarball; this script checks it
# when git is installed). Without either source it fails, naming that step.
set -euo pipefail
CACHE="${IG_CACHE:-$HOME/.cache/image-gateway}"
COMMIT=ea82f3b1b09e103fe5e9db647303efb3d1e6ecbb
SHORT="${COMMIT:0:7}"
OUT="$CACHE/nginx-s3-gateway/$SHORT"
# The files bench/s3_gateway.py uses; a tree without them is not the gateway.
NEEDED=(
  common/etc/nginx/nginx.conf
  common/etc/nginx/templates/default.conf.template
  common/etc/nginx/templates/cache.conf.template
  common/etc/nginx/templates/gateway/s3_location_common.conf.template
  common/etc/nginx/include/s3gateway.js
  common/etc/nginx/include/awssig4.js
  common/docker-entrypoint.sh
  oss/etc/nginx/templates/upstreams.conf.template
  oss/etc/nginx/conf.d/gateway/server_variables.conf
)

bash "$(dirname "$0")/apt-ensure.sh" nginx libnginx-mod-http-js libnginx-mod-http-xslt-filter gettext-base
for module in ngx_http_js_module.so ngx_http_xslt_filter_module.so; do
  [ -f "/usr/lib/nginx/modules/$module" ] \
    || { echo "install-nginx-s3-gateway: /usr/lib/nginx/modules/$module is missing" >&2; exit 1; }
done

if [ "$(cat "$OUT/COMMIT" 2>/dev/null)" = "$COMMIT" ]; then
  echo "$OUT"
  exit 0
fi

src="${NGINX_S3_GATEWAY_SRC:-$CACHE/nginx-s3-gateway/nginx-s3-gateway-$SHORT-src.tar.gz}"
mkdir -p "$CACHE/nginx-s3-gateway"
work="$(mktemp -d "$CACHE/nginx-s3-gateway/unpack.XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ -d "$src" ]; then
  cp -r "$src" "$work/tree"
elif [ -f "$src" ]; then
  if command -v git >/dev/null; then
    found="$(gzip -dc "$src" | git get-tar-commit-id 2>/dev/null || true)"
    [ -z "$found" ] || [ "$found" = "$COMMIT" ] \
      || { echo "install-nginx-s3-gateway: $src is commit $found, not $COMMIT" >&2; exit 1; }
  fi
  mkdir "$work/tree" && tar -xzf "$src" -C "$work/tree" --strip-components=1
else
  cat >&2 <<EOF
install-nginx-s3-gateway: no nginx-s3-gateway source. The project is on no package registry, so
the tree comes from a tarball made once from a git clone of github.com/nginxinc/nginx-s3-gateway:
  git -C <clone> archive --format=tar.gz --prefix=nginx-s3-gateway/ \\
    -o $CACHE/nginx-s3-gateway/nginx-s3-gateway-$SHORT-src.tar.gz $COMMIT
(see the header of this script). Make it, or point NGINX_S3_GATEWAY_SRC at such a tarball or at
an unpacked tree, and run again.
EOF
  exit 1
fi
for f in "${NEEDED[@]}"; do
  [ -f "$work/tree/$f" ] || { echo "install-nginx-s3-gateway: $src has no $f; not nginx-s3-gateway" >&2; exit 1; }
done
echo "$COMMIT" > "$work/tree/COMMIT"
rm -rf "$OUT" && mv "$work/tree" "$OUT"
echo "unpacked nginx-s3-gateway $SHORT into $OUT" >&2
echo "$OUT"
