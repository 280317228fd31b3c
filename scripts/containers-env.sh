# shellcheck shell=bash
# Sourced by the scripts that run buildah, podman or read their images: one containers-storage of
# the project's own under $IG_CACHE/containers (overlay), its run state under /run, so nothing of
# the machine's own storage is used or changed.
_ig_cache="${IG_CACHE:-$HOME/.cache/image-gateway}"
mkdir -p "$_ig_cache/containers"
if [ ! -f "$_ig_cache/containers/storage.conf" ]; then
  # One run-state folder per cache: two caches (a cold run beside a warm one) never share it.
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "/run/image-gateway/%s"\n' \
    "$_ig_cache/containers/storage" "$(printf '%s' "$_ig_cache" | sha256sum | cut -c1-12)" \
    > "$_ig_cache/containers/storage.conf"
fi
export CONTAINERS_STORAGE_CONF="$_ig_cache/containers/storage.conf"
unset _ig_cache
