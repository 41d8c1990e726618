#!/usr/bin/env bash
# Secret and identity audit of a Linux image, run right before capture.
#
# Usage: audit.sh [--root DIR] [--pre-generalize]
#   --root DIR        audit the root file system mounted at DIR instead of /
#   --pre-generalize  check secrets only, not machine identity, and skip the
#                     agent state that generalize.sh removes anyway
#                     (/var/lib/waagent, /var/lib/cloud): the build VM still
#                     legitimately has a machine-id, host keys and agent
#                     certificates at that point.
# Environment: none required.
#
# Prints one line per finding ("audit: FINDING <path>: <reason>", the path as
# seen inside the audited root) and exits 1 when there are findings, 0 when
# clean, 2 on usage errors. When auditing the live system it also keeps a
# copy of itself at /run/imagefactory/audit.sh (tmpfs, never captured) so
# that generalize.sh, sent as its own Run Command script, can run the same
# audit at the end.
set -euo pipefail
unset HISTFILE

readonly STEP=audit
readonly STASH=/run/imagefactory/audit.sh
readonly MAX_SCAN_BYTES=4M

# Directories searched for secrets, relative to the root.
readonly SCAN_DIRS=(root home etc var/lib var/tmp tmp opt srv usr/local var/www)

die_usage() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 2; }

root=''
pre_generalize=false
while (($#)); do
  case $1 in
    --root)
      (($# >= 2)) || die_usage "--root needs a directory"
      root=$2
      shift 2
      ;;
    --pre-generalize) pre_generalize=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
done

if [[ -n $root ]]; then
  [[ -d $root ]] || die_usage "--root $root is not a directory"
  R=$(cd "$root" && pwd -P)
  [[ $R != / ]] || R=''
else
  R=''
fi

findings=()
finding() { findings+=("$1: $2"); }

# Path inside the audited root ("/etc/x") for a host path ("$R/etc/x").
rel() { printf '/%s' "${1#"$R"/}"; }

in_skipped_state() {
  $pre_generalize || return 1
  case $1 in
    "$R"/var/lib/waagent/* | "$R"/var/lib/cloud/*) return 0 ;;
  esac
  return 1
}

is_host_key() {
  case $1 in
    "$R"/etc/ssh/ssh_host_*) return 0 ;;
  esac
  return 1
}

scan_roots=()
for d in "${SCAN_DIRS[@]}"; do
  [[ -d "$R/$d" && ! -L "$R/$d" ]] && scan_roots+=("$R/$d")
done

# 1. Private keys (PEM and OpenSSH headers) in any small text file.
readonly KEY_RE='-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----'
if ((${#scan_roots[@]})); then
  while IFS= read -r -d '' f; do
    is_host_key "$f" && continue
    in_skipped_state "$f" && continue
    finding "$(rel "$f")" "private key"
  done < <(find "${scan_roots[@]}" -xdev -type f -size -"$MAX_SCAN_BYTES" -print0 2>/dev/null |
    xargs -0 -r grep -lZIE -e "$KEY_RE" -- 2>/dev/null || true)
fi

# Home directories: root's and every account's from the audited passwd, plus
# anything under /home (accounts may already be gone while files remain).
homes=()
[[ -d "$R/root" ]] && homes+=("$R/root")
if [[ -d "$R/home" ]]; then
  while IFS= read -r -d '' h; do homes+=("$h"); done \
    < <(find "$R/home" -mindepth 1 -maxdepth 1 -type d -print0)
fi
if [[ -r "$R/etc/passwd" ]]; then
  while IFS=: read -r _ _ uid _ _ home _; do
    [[ $uid =~ ^[0-9]+$ ]] && ((uid >= 1000)) && [[ $home == /* && $home != / ]] || continue
    [[ -d "$R$home" && ! -L "$R$home" ]] || continue
    case " ${homes[*]} " in *" $R$home "*) continue ;; esac
    homes+=("$R$home")
  done <"$R/etc/passwd"
fi

# 2. Cloud and tool credentials in home directories.
for h in "${homes[@]}"; do
  if [[ -d "$h/.azure" ]] && [[ -n $(find "$h/.azure" -type f -print -quit) ]]; then
    finding "$(rel "$h/.azure")" "Azure CLI credentials directory"
  fi
  [[ -e "$h/.aws/credentials" ]] && finding "$(rel "$h/.aws/credentials")" "AWS credentials"
  if [[ -d "$h/.config/gcloud" ]] && [[ -n $(find "$h/.config/gcloud" -type f -print -quit) ]]; then
    finding "$(rel "$h/.config/gcloud")" "Google Cloud credentials directory"
  fi
  if [[ -f "$h/.docker/config.json" ]] && grep -qE '"(auth|identitytoken|registrytoken)"' "$h/.docker/config.json"; then
    finding "$(rel "$h/.docker/config.json")" "Docker registry credentials"
  fi
  [[ -s "$h/.kube/config" ]] && finding "$(rel "$h/.kube/config")" "Kubernetes credentials"
  [[ -s "$h/.git-credentials" ]] && finding "$(rel "$h/.git-credentials")" "git credentials"
  [[ -s "$h/.netrc" ]] && finding "$(rel "$h/.netrc")" "netrc credentials"
done

# 3. Token caches, .env files with secret-like assignments, shell histories.
readonly SECRET_ASSIGN_RE='^[[:space:]]*(export[[:space:]]+)?[A-Za-z0-9_]*(PASSWORD|PASSWD|PASS|SECRET|TOKEN|KEY|CREDENTIALS?|CONNECTION_STRING|SAS)[A-Za-z0-9_]*[[:space:]]*=[[:space:]]*[^[:space:]]'
if ((${#scan_roots[@]})); then
  while IFS= read -r -d '' f; do
    in_skipped_state "$f" && continue
    base=${f##*/}
    case $base in
      msal_token_cache* | msal_http_cache* | accessTokens.json | access_tokens.db | credentials.db | legacy_credentials)
        finding "$(rel "$f")" "token cache"
        ;;
      .env | .env.* | *.env)
        if [[ -f $f ]] && grep -qiE "$SECRET_ASSIGN_RE" "$f"; then
          finding "$(rel "$f")" "env file with secret-like assignments"
        fi
        ;;
      *)
        if [[ -f $f && -s $f ]]; then
          finding "$(rel "$f")" "non-empty shell or REPL history"
        fi
        ;;
    esac
  done < <(find "${scan_roots[@]}" -xdev \( -type f -o -type d \) \( \
    -name 'msal_token_cache*' -o -name 'msal_http_cache*' -o -name accessTokens.json \
    -o -name access_tokens.db -o -name credentials.db -o -name legacy_credentials \
    -o -name .env -o -name '.env.*' -o -name '*.env' \
    -o -name .bash_history -o -name .zsh_history -o -name .sh_history -o -name .history \
    -o -name .python_history -o -name .lesshst -o -name .mysql_history -o -name .psql_history \
    -o -name .node_repl_history -o -name .sqlite_history -o -name .rediscli_history \
    \) -print0 2>/dev/null)
fi

# 4. Machine identity: must be gone so every clone gets its own.
if ! $pre_generalize; then
  if [[ -L "$R/etc/machine-id" ]]; then
    finding /etc/machine-id "is a symlink, must be an empty regular file"
  elif [[ -s "$R/etc/machine-id" ]]; then
    finding /etc/machine-id "machine-id is not empty"
  fi
  if [[ -e "$R/var/lib/dbus/machine-id" && ! -L "$R/var/lib/dbus/machine-id" ]]; then
    finding /var/lib/dbus/machine-id "D-Bus machine-id present"
  fi
  for f in "$R"/etc/ssh/ssh_host_*key "$R"/etc/ssh/ssh_host_*key.pub; do
    [[ -e $f ]] && finding "$(rel "$f")" "SSH host key present"
  done
  [[ -e "$R/var/lib/systemd/random-seed" ]] && finding /var/lib/systemd/random-seed "systemd random seed present"
  [[ -e "$R/var/lib/systemd/credential.secret" ]] && finding /var/lib/systemd/credential.secret "systemd credential secret present"
fi

mode=full
$pre_generalize && mode=pre-generalize
target=${R:-/}

if [[ -z $R && $(id -u) -eq 0 && -f ${BASH_SOURCE[0]} ]]; then
  src=$(readlink -f "${BASH_SOURCE[0]}")
  if [[ $src != "$STASH" ]]; then
    install -d -m 0700 "${STASH%/*}"
    install -m 0700 "$src" "$STASH"
  fi
fi

if ((${#findings[@]})); then
  for f in "${findings[@]}"; do
    printf '%s: FINDING %s\n' "$STEP" "$f"
  done
  printf '%s: %d finding(s) in %s (%s audit)\n' "$STEP" "${#findings[@]}" "$target" "$mode"
  exit 1
fi
printf '%s: clean: %s (%s audit)\n' "$STEP" "$target" "$mode"
