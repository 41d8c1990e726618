#!/usr/bin/env bash
# Base layer of the example web-server image: security updates applied
# unattended, SSH password login off.
#
# Runs as root on the builder VM (Azure managed Run Command) or in a chroot.
# Environment: IMAGE_NAME, IMAGE_VERSION (required). Arguments: none.
set -euo pipefail
unset HISTFILE

readonly STEP=10-base

log() { printf '%s: %s\n' "$STEP" "$*"; }
die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 1; }

# Runs a command quietly; its output is shown only when it fails.
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

require_env IMAGE_NAME IMAGE_VERSION
[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v apt-get >/dev/null || die "apt-get not found: only apt-based distributions are supported"

export DEBIAN_FRONTEND=noninteractive
readonly APT_OPTS=(-q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

quiet apt-get "${APT_OPTS[@]}" update
log "package lists updated"

quiet apt-get "${APT_OPTS[@]}" install --no-install-recommends \
  ca-certificates unattended-upgrades openssh-server
log "base packages installed (ca-certificates, unattended-upgrades, openssh-server)"

# Security updates are applied daily by apt's own timers; the distribution's
# 50unattended-upgrades already limits them to the security pocket.
cat >/etc/apt/apt.conf.d/20auto-upgrades <<'CONF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT::Periodic::AutocleanInterval "7";
CONF
log "unattended security updates enabled"

# sshd keeps the first value it reads for each keyword and includes
# sshd_config.d/*.conf in lexical order, so 10-* wins over the
# 50-cloud-init.conf that cloud-init writes when a VM is created with a password.
install -d -m 0755 /etc/ssh/sshd_config.d
cat >/etc/ssh/sshd_config.d/10-imagefactory-hardening.conf <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin no
CONF
chmod 0644 /etc/ssh/sshd_config.d/10-imagefactory-hardening.conf
log "sshd hardened (password and keyboard-interactive login off, root login off)"
