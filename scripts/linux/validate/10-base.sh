#!/usr/bin/env bash
# The base layer's own check, run on the test VM after the common checks
# (scripts/linux/validate.sh) because the image ran provision/10-base.sh: what 10-base
# set up holds on a fresh VM. sshd's effective configuration (`sshd -T`, after every
# drop-in, cloud-init's included) has each setting 10-base writes; apt's periodic
# settings run unattended-upgrades daily and the apt timers that run them are on; the
# packages 10-base installs are installed. It reads; it changes nothing.
#
# Prints one JSON line per check, like validate.sh: {"check": ..., "ok": ..., "detail": ...};
# exits 1 when one fails, 2 on a usage error (not root). Runs as root. Environment:
# IMAGE_NAME, IMAGE_VERSION are set by the program but not needed here.
set -euo pipefail
unset HISTFILE

readonly STEP=10-base
readonly DROP_IN=/etc/ssh/sshd_config.d/10-imagefactory-hardening.conf
# Debian's and Ubuntu's compiled-in privilege separation directory: `sshd -T` refuses to
# run without it, and with ssh.socket (Ubuntu 24.04) only the first connection makes it.
readonly PRIVSEP_DIR=/run/sshd

# What provision/10-base.sh writes; keep in step with it.
# check name, sshd -T keyword (lower case, as sshd -T prints it), value
readonly SSHD_EXPECTED=(
  "base.sshd-password-login passwordauthentication no"
  "base.sshd-kbd-interactive-login kbdinteractiveauthentication no"
  "base.sshd-empty-passwords permitemptypasswords no"
  "base.sshd-root-login permitrootlogin no"
)
readonly APT_PERIODIC=(
  "APT::Periodic::Update-Package-Lists 1"
  "APT::Periodic::Unattended-Upgrade 1"
  "APT::Periodic::AutocleanInterval 7"
)
# apt's own timers run apt.systemd.daily, which reads APT::Periodic.
readonly APT_TIMERS=(apt-daily.timer apt-daily-upgrade.timer)
readonly PACKAGES=(ca-certificates unattended-upgrades openssh-server)

die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 2; }

record() {
  python3 -c 'import json, sys; print(json.dumps({"check": sys.argv[1], "ok": sys.argv[2] == "pass", "detail": sys.argv[3]}))' "$@"
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

failed=0
fail() {
  record "$1" fail "$2"
  failed=1
}

# dpkg's status of package $1 ("install ok installed" when installed), empty when unknown.
dpkg_status() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true; }

# -- sshd: the effective configuration ----------------------------------------------------
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
rc=0
if [[ -d $PRIVSEP_DIR ]]; then
  effective=$("$sshd_bin" -T 2>&1) || rc=$?
else
  # A private mount namespace with an empty /run of its own: the directory sshd wants
  # exists there, and nothing outside it changes.
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
  effective=$(unshare --mount --propagation private -- sh -c \
    'mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 "$1" && exec "$2" -T' \
    sh "$PRIVSEP_DIR" "$sshd_bin" 2>&1) || rc=$?
fi
for line in "${SSHD_EXPECTED[@]}"; do
  read -r check keyword want <<<"$line"
  if ((rc != 0)); then
    fail "$check" "sshd -T failed (exit $rc): $(printf '%s' "$effective" | tr -s '\n' ' ')"
    continue
  fi
  have=$(printf '%s\n' "$effective" | awk -v k="$keyword" '$1 == k {print $2; exit}')
  if [[ $have == "$want" ]]; then
    record "$check" pass "sshd -T: $keyword $have"
    continue
  fi
  # sshd keeps the first value it reads: name the files that set the keyword.
  mapfile -t setters < <(grep -liE "^[[:space:]]*$keyword([[:space:]]|=)" \
    /etc/ssh/sshd_config /etc/ssh/sshd_config.d/*.conf 2>/dev/null || true)
  detail="sshd -T: $keyword ${have:-(not printed)}, 10-base sets $want"
  [[ -e $DROP_IN ]] || detail+="; $DROP_IN is missing"
  ((${#setters[@]} == 0)) || detail+="; set in: ${setters[*]}"
  fail "$check" "$detail"
done

# -- unattended-upgrades: apt's periodic settings in effect, its timers on ------------------
problems=()
status=$(dpkg_status unattended-upgrades)
[[ $status == "install ok installed" ]] || problems+=("unattended-upgrades is not installed")
settings=()
if dump=$(apt-config dump 2>&1); then
  for line in "${APT_PERIODIC[@]}"; do
    read -r key want <<<"$line"
    # apt-config dump prints each option once, with its final value: KEY "VALUE";
    have=$(printf '%s\n' "$dump" | awk -v k="$key" '$1 == k {v = $2; gsub(/^"|";$/, "", v); print v; exit}')
    if [[ $have == "$want" ]]; then
      settings+=("${key##*::}=$have")
    else
      problems+=("$key is '${have:-unset}', 10-base sets '$want'")
    fi
  done
else
  problems+=("apt-config dump failed: $(printf '%s' "$dump" | tr -s '\n' ' ')")
fi
for timer in "${APT_TIMERS[@]}"; do
  enabled=$(systemctl is-enabled "$timer" 2>/dev/null || true)
  active=$(systemctl is-active "$timer" 2>/dev/null || true)
  [[ $enabled == enabled && $active == active ]] \
    || problems+=("$timer is '${enabled:-unknown}' and '${active:-unknown}', not enabled and active")
done
if ((${#problems[@]})); then
  fail base.unattended-upgrades "$(IFS=';'; printf '%s' "${problems[*]}")"
else
  record base.unattended-upgrades pass \
    "apt-config: APT::Periodic ${settings[*]}; ${APT_TIMERS[*]} enabled and active"
fi

# -- the packages 10-base installs -----------------------------------------------------------
installed=()
missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg_status "$package")
  if [[ $status == "install ok installed" ]]; then
    installed+=("$package=$(dpkg-query -W -f='${Version}' "$package")")
  else
    missing+=("$package (${status:-unknown to dpkg})")
  fi
done
if ((${#missing[@]})); then
  fail base.packages "not installed: $(IFS=';'; printf '%s' "${missing[*]}")"
else
  record base.packages pass "${installed[*]}"
fi
exit "$failed"
