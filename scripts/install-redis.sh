#!/usr/bin/env bash
# Redis for the shared rate-limit tests: Debian's redis-tools (7.0), which holds the server
# binary, without the redis-server package's system service. Debian's redis-server is only a
# symlink to redis-check-rdb (the binary picks its role by its name); we make the same link in
# $IG_CACHE/redis. Prints the path of redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${IG_CACHE:-$HOME/.cache/image-gateway}/redis"
bash scripts/apt-ensure.sh redis-tools
mkdir -p "$cache"
ln -sfn "$(command -v redis-check-rdb)" "$cache/redis-server"
"$cache/redis-server" --version >/dev/null
echo "$cache/redis-server"
