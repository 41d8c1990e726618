#!/usr/bin/env bash
# Writes /etc/image-manifest.json so "what is in this image" is answerable on
# every VM made from it: image name, version, build time, base image, OS and
# every installed package with its version. Runs last so the package list is
# final.
#
# Runs as root on the builder VM (Azure managed Run Command) or in a chroot.
# Environment: IMAGE_NAME, IMAGE_VERSION, BASE_IMAGE (required);
#   BUILD_TIME (optional, RFC 3339 UTC; default: now). Arguments: none.
set -euo pipefail
unset HISTFILE

readonly STEP=90-manifest
readonly MANIFEST=/etc/image-manifest.json

log() { printf '%s: %s\n' "$STEP" "$*"; }
die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 1; }

require_env() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "environment variable $name is required but not set"
  done
}

# JSON string literal for $1 (quotes, backslashes and control characters escaped).
json_str() {
  local s=$1 out='' c i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      $'\n') out+='\n' ;;
      $'\t') out+='\t' ;;
      $'\r') out+='\r' ;;
      [[:cntrl:]]) out+=$(printf '\\u%04x' "'$c") ;;
      *) out+=$c ;;
    esac
  done
  printf '"%s"' "$out"
}

require_env IMAGE_NAME IMAGE_VERSION BASE_IMAGE
[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v dpkg-query >/dev/null || die "dpkg-query not found: only apt-based distributions are supported"

build_time=${BUILD_TIME:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
os_name=unknown
if [[ -r /etc/os-release ]]; then
  # shellcheck source=/dev/null
  os_name=$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-${NAME:-unknown}}")
fi

tmp=$(mktemp "$MANIFEST.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
  printf '{\n'
  printf '  "image_name": %s,\n' "$(json_str "$IMAGE_NAME")"
  printf '  "image_version": %s,\n' "$(json_str "$IMAGE_VERSION")"
  printf '  "build_time": %s,\n' "$(json_str "$build_time")"
  printf '  "base_image": %s,\n' "$(json_str "$BASE_IMAGE")"
  printf '  "os": %s,\n' "$(json_str "$os_name")"
  printf '  "packages": ['
  sep=''
  # Package names and versions use a restricted character set (Debian policy
  # 5.6.1 and 5.6.12), so they need no escaping beyond what json_str does.
  while IFS=$'\t' read -r status name version; do
    [[ $status == "install ok installed" ]] || continue
    printf '%s\n    {"name": "%s", "version": "%s"}' "$sep" "$name" "$version"
    sep=','
  done < <(dpkg-query -W -f='${Status}\t${binary:Package}\t${Version}\n' | LC_ALL=C sort -t $'\t' -k2,2)
  printf '\n  ]\n}\n'
} >"$tmp"
count=$(grep -c '"name": ' "$tmp" || true)
chmod 0644 "$tmp"
mv -f "$tmp" "$MANIFEST"
trap - EXIT
log "manifest written to $MANIFEST ($count packages)"
