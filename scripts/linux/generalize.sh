#!/usr/bin/env bash
# Generalizes a Linux build VM (or a mounted root file system) so that every
# VM made from the captured image gets its own identity and no build secret.
#
# Usage:
#   generalize.sh [--build-user NAME]... [--delay SECONDS] [--audit-script PATH]
#       Live mode, on the builder through Azure managed Run Command. Checks its
#       inputs, schedules the destructive part as a detached systemd unit
#       (imagefactory-generalize) and returns at once so the Run Command can
#       report back. After --delay seconds (default 60: time for the agent to
#       report the Run Command's result) the detached part generalizes the
#       system, runs `waagent -deprovision+user -force`, runs the full audit
#       and powers the VM off. If the audit finds anything it does NOT power
#       off: the findings go to the console (boot diagnostics) and the
#       journal, and the control plane's wait for "stopped" times out.
#   generalize.sh --root DIR [--build-user NAME]... [--audit-script PATH]
#       Generalizes the root file system at DIR and audits it. Touches nothing
#       outside DIR: never runs waagent, hostname or poweroff.
#   --allowlist FILE (both modes) is handed to the audit, as is the
#   environment variable AUDIT_ALLOWLIST (see audit.sh).
#
# What it removes is what is always build residue: the build users, their
# homes and sudo rules, the build admin's SSH key wherever it was copied,
# root's keys, password and tool credentials, histories and token caches
# anywhere, debconf's password answers, machine identity, agent and
# cloud-init state, logs and caches. What it cannot judge (an application's
# TLS key, a token in a config file, another account's password) it leaves
# for the audit, which fails the build.
#
# Build users (removed with their home, mail, crontab and sudoers entries):
#   every --build-user NAME, every name in the environment variable
#   BUILD_USERS (space-separated; the Azure admin user goes there), and every
#   account whose home directory contains the marker file
#   .imagefactory-build-user. A named user that does not exist is skipped; a
#   build user with a uid below 1000 is an error (system accounts are never
#   removed).
#
# The audit is audit.sh: --audit-script PATH, else audit.sh next to this
# file, else /run/imagefactory/audit.sh (left there by the pre-generalize
# audit Run Command).
#
# Prints one line per step. Exit status: 0 generalized (and, in live mode,
# scheduled), 1 failure or audit findings, 2 usage error.
set -euo pipefail
unset HISTFILE
set +o history
shopt -s extglob

readonly STEP=generalize
readonly MARKER=.imagefactory-build-user
readonly STASH_DIR=/run/imagefactory
readonly UNIT=imagefactory-generalize
readonly KEYGEN_UNIT=imagefactory-regenerate-keys.service

log() { printf '%s: %s\n' "$STEP" "$*"; }
die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 1; }
die_usage() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 2; }

root=''
detached=false
delay=60
audit_script=''
allowlist=''
build_users=()
while (($#)); do
  case $1 in
    --root)
      (($# >= 2)) || die_usage "--root needs a directory"
      root=$2; shift 2 ;;
    --build-user)
      (($# >= 2)) || die_usage "--build-user needs a user name"
      build_users+=("$2"); shift 2 ;;
    --delay)
      (($# >= 2)) && [[ $2 =~ ^[0-9]+$ ]] || die_usage "--delay needs a number of seconds"
      delay=$2; shift 2 ;;
    --audit-script)
      (($# >= 2)) || die_usage "--audit-script needs a path"
      audit_script=$2; shift 2 ;;
    --allowlist)
      (($# >= 2)) || die_usage "--allowlist needs a file"
      allowlist=$2; shift 2 ;;
    --detached) detached=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done
read -r -a env_users <<<"${BUILD_USERS:-}"
build_users+=("${env_users[@]}")

for u in "${build_users[@]}"; do
  [[ $u =~ ^[a-z_][a-z0-9_.-]*[$]?$ ]] || die_usage "invalid build user name: '$u'"
  [[ $u != root ]] || die_usage "root cannot be a build user"
done

if [[ -n $root ]]; then
  $detached && die_usage "--detached is not valid with --root"
  [[ -d $root ]] || die_usage "--root $root is not a directory"
  R=$(cd "$root" && pwd -P)
  [[ $R != / ]] || die_usage "--root / would generalize the host: run without --root on the builder instead"
  live=false
else
  R=''
  live=true
fi
[[ $(id -u) -eq 0 ]] || die "must run as root"

shopt -s nullglob

# ---------------------------------------------------------------------------
# File helpers. Every path is "$R/…"; in --root mode each one is checked to
# resolve inside the root, so a symlink in the image can never make this
# script touch the host.
# ---------------------------------------------------------------------------
inside_root() {
  [[ -z $R ]] && return 0
  local real
  real=$(realpath -m -- "$1")
  [[ $real == "$R" || $real == "$R"/* ]] || die "refusing $1: it resolves outside the root ($real)"
}

removed=0
# Removes each path (file, symlink or tree) that exists; counts removals.
remove() {
  local p
  for p in "$@"; do
    [[ -e $p || -L $p ]] || continue
    inside_root "$(dirname -- "$p")"
    rm -rf -- "$p"
    removed=$((removed + 1))
  done
}

# Removes everything inside directory $1 but keeps the directory.
empty_dir() {
  local d=$1
  [[ -d $d && ! -L $d ]] || return 0
  inside_root "$d"
  while IFS= read -r -d '' p; do
    rm -rf -- "$p"
    removed=$((removed + 1))
  done < <(find "$d" -xdev -mindepth 1 -maxdepth 1 -print0)
}

# Replaces $1's content with stdin, keeping owner and mode; a symlink is
# replaced by a regular file.
write_file() {
  local f=$1
  inside_root "$(dirname -- "$f")"
  [[ -L $f ]] && rm -f -- "$f"
  cat >"$f"
}

# Filters passwd-style file $1 through awk program $2 (with -v name=$3).
filter_db() {
  local f=$1 prog=$2 name=$3 tmp
  [[ -f $f ]] || return 0
  inside_root "$f"
  tmp=$(mktemp "$f.imagefactory.XXXXXX")
  awk -F: -v OFS=: -v name="$name" "$prog" "$f" >"$tmp"
  cat "$tmp" >"$f"
  rm -f -- "$tmp"
}

# ---------------------------------------------------------------------------
# Build users.
# ---------------------------------------------------------------------------
passwd_field() { # name field-number
  awk -F: -v name="$1" -v n="$2" '$1 == name { print $n; exit }' "$R/etc/passwd"
}

discover_marked_users() {
  local name uid home
  [[ -r "$R/etc/passwd" ]] || return 0
  while IFS=: read -r name _ uid _ _ home _; do
    [[ $uid =~ ^[0-9]+$ && $home == /?* && $home != / ]] || continue
    [[ -f "$R$home/$MARKER" && ! -L "$R$home/$MARKER" ]] && printf '%s\n' "$name"
  done <"$R/etc/passwd"
}

resolve_build_users() {
  local u seen=' '
  resolved_users=()
  for u in "${build_users[@]}" $(discover_marked_users); do
    case $seen in *" $u "*) continue ;; esac
    seen+="$u "
    resolved_users+=("$u")
  done
}

# The awk programs below are single-quoted on purpose.
# shellcheck disable=SC2016
remove_build_user() {
  local name=$1 uid gid home pgroup_members
  uid=$(passwd_field "$name" 3)
  if [[ -z $uid ]]; then
    log "build user $name: not present"
    return 0
  fi
  ((uid >= 1000)) || die "build user $name has uid $uid (< 1000): refusing to remove a system account"
  gid=$(passwd_field "$name" 4)
  home=$(passwd_field "$name" 6)

  if $live; then
    command -v loginctl >/dev/null && loginctl terminate-user "$name" >/dev/null 2>&1 || true
    pkill -KILL -u "$uid" >/dev/null 2>&1 || true
  fi

  filter_db "$R/etc/passwd" '$1 != name' "$name"
  filter_db "$R/etc/shadow" '$1 != name' "$name"
  filter_db "$R/etc/subuid" '$1 != name' "$name"
  filter_db "$R/etc/subgid" '$1 != name' "$name"
  # The user's personal group goes too, unless someone else is in it.
  pgroup_members=$(awk -F: -v name="$name" -v gid="$gid" '$1 == name && $3 == gid { print $4 ":yes" }' "$R/etc/group")
  local drop_group=false
  [[ $pgroup_members == ":yes" || $pgroup_members == "$name:yes" ]] && drop_group=true
  local member_prog='
    function strip(list,   n, i, m, out) {
      n = split(list, m, ","); out = ""
      for (i = 1; i <= n; i++) if (m[i] != name && m[i] != "") out = out (out == "" ? "" : ",") m[i]
      return out
    }'
  if $drop_group; then
    filter_db "$R/etc/group" "$member_prog"' $1 == name { next } { $4 = strip($4); print }' "$name"
    filter_db "$R/etc/gshadow" "$member_prog"' $1 == name { next } { $3 = strip($3); $4 = strip($4); print }' "$name"
  else
    filter_db "$R/etc/group" "$member_prog"' { $4 = strip($4); print }' "$name"
    filter_db "$R/etc/gshadow" "$member_prog"' { $3 = strip($3); $4 = strip($4); print }' "$name"
  fi

  # A home is removed only when it is at least two levels deep (/home/x),
  # never / or a top-level directory.
  if [[ $home =~ ^/[^/]+/.+ ]]; then
    remove "$R$home"
  fi
  remove "$R/var/mail/$name" "$R/var/spool/mail/$name" "$R/var/spool/cron/crontabs/$name"
  log "build user $name (uid $uid): removed with home $home, group entries, mail and crontab"
}

# ---------------------------------------------------------------------------
# Generalization steps, shared by live and --root mode.
# ---------------------------------------------------------------------------
readonly CREDENTIAL_PATHS=(
  .azure .aws .config/gcloud .docker/config.json .kube/config .git-credentials .netrc
  .env .cache .gnupg .local/share/keyrings
)
# Root's tool credentials as well: whatever root used them for was the build.
readonly ROOT_CREDENTIAL_PATHS=(
  .npmrc .pypirc .config/gh .vault-token .pgpass .my.cnf .terraform.d/credentials.tfrc.json
  .cargo/credentials .cargo/credentials.toml .gem/credentials
)
readonly HISTORY_NAMES=(
  .bash_history .zsh_history .sh_history .history .python_history .lesshst .viminfo
  .mysql_history .psql_history .node_repl_history .sqlite_history .rediscli_history
  .wget-hsts .sudo_as_admin_successful
)

# The key blobs (base64 field) of every key line in authorized_keys file $1.
key_blobs() {
  [[ -f $1 ]] || return 0
  grep -o -E '(ssh-(rsa|dss|ed25519)|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9-]+@openssh\.com) AAAA[A-Za-z0-9+/=]+' -- "$1" |
    cut -d' ' -f2 || true
}

build_keys=()
step_users() {
  local u home
  resolve_build_users
  # The build admin's public keys, before their files go: in the build users'
  # authorized_keys and in root's (cloud-init and waagent put it there).
  for u in "${resolved_users[@]}"; do
    home=$(passwd_field "$u" 6)
    [[ $home == /?* ]] || continue
    mapfile -t -O "${#build_keys[@]}" build_keys < <(key_blobs "$R$home/.ssh/authorized_keys")
  done
  mapfile -t -O "${#build_keys[@]}" build_keys < <(key_blobs "$R/root/.ssh/authorized_keys")
  if ((${#resolved_users[@]} == 0)); then
    log "build users: none named or marked"
    return 0
  fi
  for u in "${resolved_users[@]}"; do
    remove_build_user "$u"
  done
  # Per-VM sudo rules that name the admin user, written by cloud-init and
  # waagent, and any sudoers.d file whose rules name only build users.
  removed=0
  remove "$R/etc/sudoers.d/90-cloud-init-users" "$R/etc/sudoers.d/waagent"
  local f names only_build n
  for f in "$R"/etc/sudoers.d/*; do
    [[ -f $f ]] || continue
    mapfile -t names < <(sudoers_users "$f")
    ((${#names[@]})) || continue
    only_build=true
    for n in "${names[@]}"; do
      case " ${resolved_users[*]} " in *" $n "*) ;; *) only_build=false ;; esac
    done
    $only_build && remove "$f"
  done
  log "sudoers.d files for build users removed ($removed)"
}

# The user names of the user specifications in sudoers file $1 (comments,
# Defaults and aliases other than User_Alias left out).
# shellcheck disable=SC2016 # awk program
sudoers_users() {
  awk '
    { line = $0 }
    sub(/\\$/, "", line) { buf = buf line " "; next }
    { line = buf line; buf = "" }
    line ~ /^[ \t]*[#@]include/ { next }
    { sub(/#[^0-9].*$/, "", line) }
    line ~ /^[ \t]*$/ || line ~ /^[ \t]*(Defaults|Host_Alias|Runas_Alias|Cmnd_Alias|Cmd_Alias|User_Alias)/ { next }
    {
      sub(/^[ \t]+/, "", line); split(line, f, /[ \t]+/); m = split(f[1], names, ",")
      for (i = 1; i <= m; i++) { x = names[i]; gsub(/[ \t!]/, "", x); if (x != "") print x }
    }
  ' "$1"
}

# Removes the build admin's keys from every authorized_keys file left, and
# the file when no key remains in it.
step_authorized_keys() {
  local f tmp b dropped=0 files=0
  if ((${#build_keys[@]} == 0)); then
    log "build admin's SSH keys: none found"
    return 0
  fi
  while IFS= read -r -d '' f; do
    inside_root "$f"
    tmp=$(mktemp "$f.imagefactory.XXXXXX")
    cp -p -- "$f" "$tmp"
    for b in "${build_keys[@]}"; do
      grep -v -F -e " $b" -- "$tmp" >"$tmp.next" || true
      cat "$tmp.next" >"$tmp"
    done
    rm -f -- "$tmp.next"
    if ! cmp -s -- "$f" "$tmp"; then
      files=$((files + 1))
      dropped=$((dropped + $(wc -l <"$f") - $(wc -l <"$tmp")))
      if grep -q -E ' AAAA' -- "$tmp"; then
        cat "$tmp" >"$f"
      else
        rm -f -- "$f"
      fi
    fi
    rm -f -- "$tmp"
  done < <(find "$R/" -xdev \( -path "$R/proc" -o -path "$R/sys" -o -path "$R/dev" -o -path "$R/run" \) -prune \
    -o -type f \( -name authorized_keys -o -name authorized_keys2 \) -print0)
  log "build admin's SSH keys (${#build_keys[@]}) removed from $files other authorized_keys files ($dropped lines)"
}

step_credentials() {
  local homes=("$R/root") name uid home h p n
  removed=0
  while IFS=: read -r name _ uid _ _ home _; do
    [[ $uid =~ ^[0-9]+$ ]] && ((uid >= 1000)) && [[ $home =~ ^/[^/]+ ]] || continue
    [[ -d "$R$home" && ! -L "$R$home" ]] && homes+=("$R$home")
  done <"$R/etc/passwd"
  for h in "${homes[@]}"; do
    [[ -d $h && ! -L $h ]] || continue
    for p in "${CREDENTIAL_PATHS[@]}" "${HISTORY_NAMES[@]}"; do
      remove "$h/$p"
    done
    remove "$h"/.ssh/id_* "$h"/.ssh/*.pem "$h"/.ssh/*.key
  done
  for p in "${ROOT_CREDENTIAL_PATHS[@]}"; do
    remove "$R/root/$p"
  done
  # Root never keeps authorized keys: cloud-init and waagent put the build
  # admin's key there (with a "login as <user>" command prefix).
  remove "$R/root/.ssh/authorized_keys" "$R/root/.ssh/known_hosts"
  # Histories and token caches wherever else they were left.
  local find_names=()
  for n in "${HISTORY_NAMES[@]}" 'msal_token_cache*' 'msal_http_cache*' accessTokens.json; do
    find_names+=(-o -name "$n")
  done
  while IFS= read -r -d '' p; do
    remove "$p"
  done < <(find "$R/" -xdev \( -path "$R/proc" -o -path "$R/sys" -o -path "$R/dev" -o -path "$R/run" \) -prune \
    -o -type f \( -false "${find_names[@]}" \) -print0)
  log "credentials and histories of root and remaining users removed ($removed paths)"
}

step_identity() {
  removed=0
  printf '' | write_file "$R/etc/machine-id"
  chmod 0444 "$R/etc/machine-id"
  remove "$R/var/lib/dbus/machine-id" "$R/var/lib/systemd/random-seed" "$R/var/lib/systemd/credential.secret"
  # udev's rule naming the builder's NIC by its MAC: a clone's NIC would get
  # another name and no network (Azure's generalization guidance removes it).
  remove "$R/etc/udev/rules.d/70-persistent-net.rules"
  log "machine-id emptied; D-Bus machine-id, random seed, credential secret and persistent net rules removed"
}

# Root's password: waagent's deprovision deletes it too, and every clone
# would share it. Other accounts' passwords are the image's business: the
# audit names them.
# shellcheck disable=SC2016 # awk program
step_root_password() {
  local pw
  [[ -f "$R/etc/shadow" ]] || return 0
  pw=$(awk -F: '$1 == "root" { print $2; exit }' "$R/etc/shadow")
  pw=${pw##+(!)}
  if [[ -z $pw || $pw == '*'* ]]; then
    log "root password: none set"
    return 0
  fi
  filter_db "$R/etc/shadow" '$1 == name { $2 = "*" } { print }' root
  log "root password removed (shadow entry set to '*')"
}

# debconf keeps the answers to password questions (a database root password
# given with debconf-set-selections) in passwords.dat: always build input.
# shellcheck disable=SC2016 # awk program
step_debconf_passwords() {
  local f="$R/var/cache/debconf/passwords.dat" before
  [[ -f $f ]] || return 0
  before=$(grep -c -E '^Value: .' -- "$f" || true)
  filter_db "$f" '!/^Value: / { print }' ''
  log "debconf password answers removed ($before)"
}

step_cloud_init() {
  removed=0
  empty_dir "$R/var/lib/cloud"
  remove "$R"/var/log/cloud-init*.log "$R"/var/log/cloud-init*.log.* \
    "$R/etc/netplan/50-cloud-init.yaml" "$R"/etc/network/interfaces.d/50-cloud-init* \
    "$R"/etc/systemd/network/*cloud-init* "$R"/etc/NetworkManager/system-connections/cloud-init-* \
    "$R/etc/ssh/sshd_config.d/50-cloud-init.conf" "$R/etc/cloud/cloud-init.disabled"
  log "cloud-init state, seed, logs and generated network and sshd config removed ($removed paths)"
}

step_account_backups() {
  removed=0
  remove "$R/etc/shadow-" "$R/etc/gshadow-" "$R/etc/passwd-" "$R/etc/group-" \
    "$R/etc/subuid-" "$R/etc/subgid-" "$R"/var/backups/*.bak "$R"/etc/*.imagefactory.*
  log "account database backups removed ($removed paths)"
}

step_host_keys() {
  removed=0
  remove "$R"/etc/ssh/ssh_host_* \
    "$R/etc/ssl/private/ssl-cert-snakeoil.key" "$R/etc/ssl/certs/ssl-cert-snakeoil.pem"
  # cloud-init regenerates host keys on a new instance; this unit also covers
  # a VM booted without cloud-init (or with its ssh module off). It runs after
  # cloud-init so that cloud-init's keys win, and before sshd, whose
  # ExecStartPre `sshd -t` fails without host keys.
  write_file "$R/etc/systemd/system/$KEYGEN_UNIT" <<'UNIT'
[Unit]
Description=Generate host keys missing from a generalized image
After=cloud-init.service
Before=ssh.service sshd.service nginx.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/ssh-keygen -A
ExecStart=/bin/sh -c 'if [ -x /usr/sbin/make-ssl-cert ] && [ ! -e /etc/ssl/private/ssl-cert-snakeoil.key ]; then /usr/sbin/make-ssl-cert generate-default-snakeoil; fi'

[Install]
WantedBy=multi-user.target
UNIT
  chmod 0644 "$R/etc/systemd/system/$KEYGEN_UNIT"
  install -d -m 0755 "$R/etc/systemd/system/multi-user.target.wants"
  inside_root "$R/etc/systemd/system/multi-user.target.wants"
  ln -sfn "/etc/systemd/system/$KEYGEN_UNIT" "$R/etc/systemd/system/multi-user.target.wants/$KEYGEN_UNIT"
  log "SSH host keys removed ($removed paths); $KEYGEN_UNIT regenerates them at first boot"
}

step_leases() {
  removed=0
  remove "$R"/var/lib/dhcp/*.lease* "$R"/var/lib/dhclient/* "$R"/var/lib/dhcpcd/* \
    "$R"/var/lib/NetworkManager/*.lease "$R"/var/lib/NetworkManager/*.lease* \
    "$R"/var/lib/NetworkManager/NetworkManager.state "$R"/var/lib/wicked/*
  log "DHCP leases removed ($removed paths)"
}

step_waagent() {
  removed=0
  empty_dir "$R/var/lib/waagent"
  remove "$R"/var/log/waagent.log.* "$R"/var/log/azure
  log "waagent state removed ($removed paths)"
}

step_logs() {
  local f rotated=0 truncated=0
  [[ -d "$R/var/log" && ! -L "$R/var/log" ]] || { log "logs: no /var/log"; return 0; }
  inside_root "$R/var/log"
  if $live && command -v journalctl >/dev/null; then
    # journald keeps logging to /run (not captured) until power-off.
    journalctl --relinquish-var >/dev/null 2>&1 || true
  fi
  # Journal directories are named after the builder's machine-id.
  if [[ -d "$R/var/log/journal" && ! -L "$R/var/log/journal" ]]; then
    removed=0
    empty_dir "$R/var/log/journal"
    rotated=$((rotated + removed))
  fi
  while IFS= read -r -d '' f; do
    case ${f##*/} in
      *.gz | *.xz | *.bz2 | *.zst | *.[0-9] | *.[0-9].log | *.old | *-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9])
        rm -f -- "$f"; rotated=$((rotated + 1)) ;;
      *)
        truncate -s 0 -- "$f"; truncated=$((truncated + 1)) ;;
    esac
  done < <(find "$R/var/log" -xdev -type f -print0)
  log "logs truncated ($truncated files) and rotated logs deleted ($rotated)"
}

step_hosts() {
  write_file "$R/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
HOSTS
  chmod 0644 "$R/etc/hosts"
  printf 'localhost\n' | write_file "$R/etc/hostname"
  chmod 0644 "$R/etc/hostname"
  log "/etc/hosts reset to localhost only; /etc/hostname set to localhost"
}

step_caches() {
  removed=0
  if [[ -d "$R/var/lib/apt/lists" ]]; then
    while IFS= read -r -d '' f; do remove "$f"; done \
      < <(find "$R/var/lib/apt/lists" -xdev -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -print0)
    empty_dir "$R/var/lib/apt/lists/partial"
  fi
  remove "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/debconf/*-old
  empty_dir "$R/var/cache/apt/archives/partial"
  empty_dir "$R/tmp"
  empty_dir "$R/var/tmp"
  log "apt lists and caches, /tmp and /var/tmp emptied ($removed paths)"
}

find_audit() {
  local candidates=() c
  [[ -n $audit_script ]] && candidates+=("$audit_script")
  [[ -n ${BASH_SOURCE[0]:-} ]] && candidates+=("$(dirname -- "${BASH_SOURCE[0]}")/audit.sh")
  candidates+=("$STASH_DIR/audit.sh")
  for c in "${candidates[@]}"; do
    if [[ -f $c ]]; then
      readlink -f -- "$c"
      return 0
    fi
  done
  die "audit.sh not found (looked at: ${candidates[*]}); pass --audit-script PATH or run audit.sh --pre-generalize first"
}

generalize_files() {
  step_users
  step_authorized_keys
  step_credentials
  step_root_password
  step_debconf_passwords
  step_identity
  step_cloud_init
  step_account_backups
  step_host_keys
  step_leases
  step_waagent
  step_caches
  step_hosts
  step_logs
}

# ---------------------------------------------------------------------------
# --root mode: generalize and audit DIR in the foreground.
# ---------------------------------------------------------------------------
audit_args=()
[[ -n $allowlist ]] && audit_args+=(--allowlist "$allowlist")

if ! $live; then
  audit=$(find_audit)
  log "generalizing root file system $R"
  generalize_files
  exec bash "$audit" --root "$R" "${audit_args[@]}"
fi

# ---------------------------------------------------------------------------
# Live mode, foreground: validate, stash, schedule, return.
# ---------------------------------------------------------------------------
if ! $detached; then
  audit=$(find_audit)
  self=$(readlink -f -- "${BASH_SOURCE[0]}")
  [[ -f $self ]] || die "cannot locate this script's file to run it detached"
  install -d -m 0700 "$STASH_DIR"
  [[ $self == "$STASH_DIR/generalize.sh" ]] || install -m 0700 "$self" "$STASH_DIR/generalize.sh"
  [[ $audit == "$STASH_DIR/audit.sh" ]] || install -m 0700 "$audit" "$STASH_DIR/audit.sh"
  args=(--detached --delay "$delay" --audit-script "$STASH_DIR/audit.sh")
  for u in "${build_users[@]}"; do args+=(--build-user "$u"); done
  # The detached unit does not inherit this environment: the allowlist goes
  # to a file in /run (tmpfs, never captured).
  if [[ -n $allowlist || -n ${AUDIT_ALLOWLIST:-} ]]; then
    {
      [[ -n $allowlist ]] && cat -- "$allowlist"
      printf '%s\n' "${AUDIT_ALLOWLIST:-}"
    } >"$STASH_DIR/audit-allowlist"
    chmod 0600 "$STASH_DIR/audit-allowlist"
    args+=(--allowlist "$STASH_DIR/audit-allowlist")
  fi
  if command -v systemd-run >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl reset-failed "$UNIT.service" >/dev/null 2>&1 || true
    systemd-run --no-block --collect --unit="$UNIT" --description="Generalize this VM for capture" \
      -p StandardOutput=journal+console -p StandardError=journal+console \
      /bin/bash "$STASH_DIR/generalize.sh" "${args[@]}" >/dev/null
    log "scheduled as unit $UNIT: starts in ${delay}s, powers off when the audit is clean"
  else
    # The allowlist travels in its file, as for the unit: not twice.
    env -u AUDIT_ALLOWLIST setsid nohup /bin/bash "$STASH_DIR/generalize.sh" "${args[@]}" </dev/null >/dev/console 2>&1 &
    log "scheduled as detached process $!: starts in ${delay}s, powers off when the audit is clean"
  fi
  exit 0
fi

# ---------------------------------------------------------------------------
# Live mode, detached part.
# ---------------------------------------------------------------------------
sleep "$delay"
log "generalizing the running system"
for svc in walinuxagent.service waagent.service; do
  systemctl stop "$svc" >/dev/null 2>&1 || true
done
log "Azure agent stopped"
step_users
if command -v waagent >/dev/null; then
  # Also resets the hostname (the builder's own) and removes the user from
  # the agent's ovf-env; the steps after it clean what it leaves behind.
  if waagent -deprovision+user -force >/dev/null 2>&1; then
    log "waagent -deprovision+user -force done"
  else
    log "waagent -deprovision+user -force failed (continuing; the audit decides)"
  fi
else
  log "waagent not installed: skipped its deprovision"
fi
generalize_files
sync
if report=$(bash "$audit_script" "${audit_args[@]}" 2>&1); then
  printf '%s\n' "$report"
  log "audit clean: powering off"
  sync
  systemctl --no-block poweroff
  exit 0
fi
printf '%s\n' "$report"
# Findings also go to the console (Azure boot diagnostics) and the journal
# explicitly, so they are visible whichever output this process has.
{ printf '%s\n' "$report"; log "audit found secrets or identity left behind: NOT powering off; the build must fail"; } >/dev/console 2>/dev/null || true
command -v logger >/dev/null && printf '%s\n' "$report" | logger -t "$STEP" -p user.err || true
log "audit found secrets or identity left behind: NOT powering off; the build must fail"
exit 1
