#!/usr/bin/env bash
# nginx serving a page that names the image and its version, so a consumer
# (and the boot test) can see which image a VM runs.
#
# Runs as root on the builder VM (Azure managed Run Command) or in a chroot.
# Environment: IMAGE_NAME, IMAGE_VERSION (required). Arguments: none.
set -euo pipefail
unset HISTFILE

readonly STEP=20-webserver
readonly WEB_ROOT=/var/www/imagefactory

log() { printf '%s: %s\n' "$STEP" "$*"; }
die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 1; }

quiet() {
  local out
  out=$(mktemp)
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    die "command failed: $*"
  fi
  rm -f "$out"
}

require_env() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "environment variable $name is required but not set"
  done
}

html_escape() {
  local s=$1
  s=${s//&/&amp;}
  s=${s//</&lt;}
  s=${s//>/&gt;}
  s=${s//\"/&quot;}
  s=${s//\'/&#39;}
  printf '%s' "$s"
}

require_env IMAGE_NAME IMAGE_VERSION
[[ $(id -u) -eq 0 ]] || die "must run as root"

export DEBIAN_FRONTEND=noninteractive
quiet apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  install --no-install-recommends nginx
log "nginx installed"

name_html=$(html_escape "$IMAGE_NAME")
version_html=$(html_escape "$IMAGE_VERSION")
install -d -m 0755 "$WEB_ROOT"
cat >"$WEB_ROOT/index.html" <<HTML
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${name_html} ${version_html}</title></head>
<body>
<h1>${name_html}</h1>
<p>Image: <span id="image-name">${name_html}</span></p>
<p>Version: <span id="image-version">${version_html}</span></p>
</body>
</html>
HTML
chmod 0644 "$WEB_ROOT/index.html"
log "page written to $WEB_ROOT/index.html"

cat >/etc/nginx/sites-available/imagefactory <<'CONF'
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    root /var/www/imagefactory;
    index index.html;
    server_tokens off;
    location / {
        try_files $uri $uri/ =404;
    }
}
CONF
ln -sfn ../sites-available/imagefactory /etc/nginx/sites-enabled/imagefactory
rm -f /etc/nginx/sites-enabled/default
quiet nginx -t
log "nginx site enabled as the default server"

quiet systemctl enable nginx.service
# Only a booted system has a service manager to talk to; in a chroot the
# unit simply starts on the image's first boot.
if [[ -d /run/systemd/system ]]; then
  quiet systemctl reload-or-restart nginx.service
  log "nginx enabled and (re)started"
else
  log "nginx enabled (no running systemd: not started)"
fi
