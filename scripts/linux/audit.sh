#!/usr/bin/env bash
# Secret and identity audit of a Linux image, run right before capture.
#
# Usage: audit.sh [--root DIR] [--pre-generalize] [--allowlist FILE]
#   --root DIR        audit the root file system mounted at DIR instead of /
#   --pre-generalize  the audit before generalize.sh: skip what generalize.sh
#                     removes or resets anyway (machine identity, agent and
#                     cloud-init state, logs, temporary files, histories,
#                     build users' homes, root's keys and password, ...), so
#                     that the build fails early, with a readable Run Command
#                     result, on what generalization will not fix.
#   --allowlist FILE  intentional files: one "PATH<TAB>REASON" a line; PATH
#                     is a file, or a directory ending in "/" for everything
#                     below it. Entries from the environment variable
#                     AUDIT_ALLOWLIST (same format) are added.
#
# What it looks at: every regular file of the root file system except the
# files the package manager installed and that are unchanged (dpkg's md5sums
# and conffile checksums) and dpkg's and apt's own databases. It looks for:
#   - private keys by content: PEM and OpenSSH armour, PuTTY and GnuPG key
#     files; PKCS#12/PFX, Java key stores, DER private keys, KeePass
#     databases and Kerberos keytabs by their first bytes, whatever the name;
#   - known token formats and secret-like assignments in any file (the
#     catalogue below);
#   - credential files known by name (cloud CLIs, netrc, apt auth.conf,
#     debconf's passwords.dat, histories and token caches);
#   - password hashes of any account (shadow, gshadow, passwd);
#   - authorized_keys files anywhere (and where sshd_config points);
#   - sudoers rules naming users or groups that do not exist;
#   - machine identity (machine-id, host keys, seeds, MAC-pinned network
#     configuration, agent and cloud-init instance state).
#
# Prints the allowlist, one line per finding ("audit: FINDING <path>:
# <reason> [<rule>]", the path as seen inside the audited root, never the
# secret itself), one line per allowlisted finding ("audit: ALLOWED ..."),
# then a summary. Exit status: 0 clean, 1 findings, 2 usage error, 3 the
# audit could not run. When auditing the live system it also keeps a copy of
# itself at /run/imagefactory/audit.sh (tmpfs, never captured) so that
# generalize.sh, sent as its own Run Command script, can run the same audit
# at the end. It writes nothing else outside /run.
set -euo pipefail
unset HISTFILE
export LC_ALL=C

readonly STEP=audit
readonly STASH=/run/imagefactory/audit.sh
readonly MARKER=.imagefactory-build-user

die_usage() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 2; }
die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 3; }
log() { printf '%s: %s\n' "$STEP" "$*"; }

root=''
pre_generalize=false
allowlist_files=()
while (($#)); do
  case $1 in
    --root)
      (($# >= 2)) || die_usage "--root needs a directory"
      root=$2
      shift 2
      ;;
    --pre-generalize) pre_generalize=true; shift ;;
    --allowlist)
      (($# >= 2)) || die_usage "--allowlist needs a file"
      [[ -f $2 ]] || die_usage "--allowlist $2 is not a file"
      allowlist_files+=("$2")
      shift 2
      ;;
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

# ---------------------------------------------------------------------------
# The allowlist.
# ---------------------------------------------------------------------------
allow_paths=()
allow_reasons=()
allow_used=()
add_allow_entries() { # text
  local line path reason
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z ${line//[[:space:]]/} ]] && continue
    [[ $line == *$'\t'* ]] || die_usage "allowlist entry '$line' has no TAB between path and reason"
    path=${line%%$'\t'*}
    reason=${line#*$'\t'}
    [[ $path == /* ]] || die_usage "allowlist path '$path' is not absolute"
    [[ -n ${reason//[[:space:]]/} ]] || die_usage "allowlist entry $path has no reason"
    allow_paths+=("$path")
    allow_reasons+=("$reason")
    allow_used+=(0)
  done <<<"$1"
}
for f in "${allowlist_files[@]}"; do add_allow_entries "$(cat -- "$f")"; done
[[ -n ${AUDIT_ALLOWLIST:-} ]] && add_allow_entries "$AUDIT_ALLOWLIST"

# Index of the allowlist entry covering a path, or nothing.
allowed_by() {
  local i p
  for i in "${!allow_paths[@]}"; do
    p=${allow_paths[i]}
    if [[ $1 == "$p" ]] || { [[ $p == */ ]] && [[ $1 == "$p"* ]]; }; then
      printf '%s' "$i"
      return 0
    fi
  done
  return 1
}

# ---------------------------------------------------------------------------
# Findings: path -> reasons, reported once per path in sorted order.
# ---------------------------------------------------------------------------
declare -A findings=()
finding() { # path-inside-root reason
  local have=${findings[$1]:-}
  case $'\n'"$have"$'\n' in *$'\n'"$2"$'\n'*) return 0 ;; esac
  findings[$1]=${have:+$have$'\n'}$2
}

# Path inside the audited root ("/etc/x") for a host path ("$R/etc/x").
rel() { printf '/%s' "${1#"$R"/}"; }

# ---------------------------------------------------------------------------
# Accounts of the audited root, and the build users generalize.sh removes.
# ---------------------------------------------------------------------------
declare -A users=() groups=() uids=() gids=()
if [[ -r "$R/etc/passwd" ]]; then
  while IFS=: read -r name _ uid _; do
    [[ -n $name ]] || continue
    users[$name]=1
    uids[$uid]=1
  done <"$R/etc/passwd"
fi
if [[ -r "$R/etc/group" ]]; then
  while IFS=: read -r name _ gid _; do
    [[ -n $name ]] || continue
    groups[$name]=1
    gids[$gid]=1
  done <"$R/etc/group"
fi

# Homes of build users (removed whole) and of the other accounts generalize.sh
# cleans (root and uid >= 1000: their credential paths go).
build_homes=()
user_homes=()
if $pre_generalize && [[ -r "$R/etc/passwd" ]]; then
  read -r -a named_build_users <<<"${BUILD_USERS:-}"
  while IFS=: read -r name _ uid _ _ home _; do
    [[ $uid =~ ^[0-9]+$ ]] && ((uid >= 1000)) && [[ $home =~ ^/[^/]+ ]] || continue
    user_homes+=("$home")
    [[ $home =~ ^/[^/]+/.+ ]] || continue
    is_build=false
    for u in "${named_build_users[@]}"; do [[ $u == "$name" ]] && is_build=true; done
    [[ -f "$R$home/$MARKER" && ! -L "$R$home/$MARKER" ]] && is_build=true
    $is_build && build_homes+=("$home")
  done <"$R/etc/passwd"
fi

# True when generalize.sh removes or resets the path (relative to the root)
# anyway: the pre-generalize audit leaves those to it. Keep in step with
# generalize.sh's steps.
HISTORY_RE='^(\.bash_history|\.zsh_history|\.sh_history|\.history|\.python_history|\.lesshst|\.viminfo|\.mysql_history|\.psql_history|\.node_repl_history|\.sqlite_history|\.rediscli_history|\.wget-hsts)$'
TOKEN_CACHE_RE='^(msal_token_cache.*|msal_http_cache.*|accessTokens\.json|access_tokens\.db|credentials\.db|legacy_credentials)$'
HOME_CREDENTIALS_RE='^(\.azure|\.aws|\.config/gcloud|\.docker/config\.json|\.kube/config|\.git-credentials|\.netrc|\.env|\.cache|\.gnupg|\.local/share/keyrings|\.ssh/(id_[^/]*|[^/]*\.pem|[^/]*\.key))(/|$)'
ROOT_CREDENTIALS_RE='^(\.npmrc|\.pypirc|\.config/gh|\.vault-token|\.pgpass|\.my\.cnf|\.terraform\.d/credentials\.tfrc\.json|\.cargo/credentials(\.toml)?|\.gem/credentials|\.ssh/(authorized_keys|known_hosts))(/|$)'
is_residue() {
  local p=$1 h base=${1##*/}
  $pre_generalize || return 1
  case $p in
    /var/lib/waagent/* | /var/lib/cloud/* | /var/log/* | /tmp/* | /var/tmp/* | /var/lib/dhcp/* \
      | /var/lib/dhclient/* | /var/lib/NetworkManager/*.lease* | /etc/ssh/ssh_host_* \
      | /etc/ssl/private/ssl-cert-snakeoil.key | /etc/machine-id | /var/lib/dbus/machine-id \
      | /var/lib/systemd/random-seed | /var/lib/systemd/credential.secret \
      | /etc/udev/rules.d/70-persistent-net.rules | /etc/sudoers.d/90-cloud-init-users \
      | /etc/sudoers.d/waagent | /var/cache/debconf/passwords.dat | /var/backups/*.bak \
      | /etc/shadow- | /etc/gshadow- | /etc/passwd- | /etc/group- | /etc/netplan/50-cloud-init.yaml \
      | /etc/network/interfaces.d/50-cloud-init* | /etc/systemd/network/*cloud-init* \
      | /etc/NetworkManager/system-connections/cloud-init-* | /etc/ssh/sshd_config.d/50-cloud-init.conf)
      return 0 ;;
  esac
  [[ $base =~ $HISTORY_RE || $base =~ $TOKEN_CACHE_RE ]] && return 0
  [[ $p == /root/* && ${p#/root/} =~ $ROOT_CREDENTIALS_RE ]] && return 0
  for h in /root "${user_homes[@]}"; do
    [[ $p == "$h"/* && ${p#"$h"/} =~ $HOME_CREDENTIALS_RE ]] && return 0
  done
  for h in "${build_homes[@]}"; do
    [[ $p == "$h"/* ]] && return 0
  done
  return 1
}

# The build admin's public keys (in build users' and root's authorized_keys):
# generalize.sh removes them from every authorized_keys file.
build_keys=()
if $pre_generalize; then
  for h in "${build_homes[@]}" /root; do
    [[ -f "$R$h/.ssh/authorized_keys" ]] || continue
    mapfile -t -O "${#build_keys[@]}" build_keys < <(
      grep -o -E ' AAAA[A-Za-z0-9+/=]+' -- "$R$h/.ssh/authorized_keys" | cut -c2- || true
    )
  done
fi

report() { # path-inside-root reason
  is_residue "$1" && return 0
  finding "$1" "$2"
}

# ---------------------------------------------------------------------------
# 1. Scope: every regular file, less what dpkg installed unchanged.
# ---------------------------------------------------------------------------
if [[ -z $R ]]; then
  work_parent=/run
else
  work_parent=${TMPDIR:-/tmp}
fi
work=$(mktemp -d "$work_parent/imagefactory-audit.XXXXXX") || die "cannot create a work directory in $work_parent"
trap 'rm -rf -- "$work"' EXIT

scan_roots=("${R:-/}")
if [[ -z $R && -r /proc/self/mounts ]]; then
  # Other file systems of the OS disk (/boot, /boot/efi) are captured too;
  # /mnt (Azure's temporary disk) and memory file systems are not.
  while read -r _ mp fstype _; do
    case $fstype in ext2 | ext3 | ext4 | xfs | btrfs | vfat) ;; *) continue ;; esac
    case $mp in / | /mnt | /mnt/* | /media/* | /run/* | /tmp | /tmp/*) continue ;; esac
    scan_roots+=("$(printf '%b' "$mp")")
  done </proc/self/mounts
fi

find "${scan_roots[@]}" -xdev \( -path "$R/proc" -o -path "$R/sys" -o -path "$R/dev" -o -path "$R/run" \
  -o -path "$R/var/lib/dpkg" -o -path "$R/var/lib/apt/lists" -o -path "$R/var/cache/apt" -o -path "$work" \) \
  -prune -o -type f -print0 2>/dev/null | sort -z -u >"$work/all"

# Top-level symlinks (/bin -> usr/bin on merged-/usr systems): dpkg lists
# files by the path in the package, find by the real one.
aliases=''
for d in "$R"/*; do
  [[ -L $d ]] || continue
  target=$(readlink -- "$d")
  [[ $target != /* && $target != *..* && -d "$R/$target" ]] || continue
  aliases+="${d##*/}=$target "
done

if compgen -G "$R/var/lib/dpkg/info/*.md5sums" >/dev/null; then
  # shellcheck disable=SC2016 # awk program
  awk -v R="$R" -v aliases="$aliases" '
    BEGIN { n = split(aliases, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, "="); from[i] = kv[1]; to[i] = kv[2] } }
    function canon(p,   i, f) {
      for (i = 1; i <= n; i++) {
        f = from[i]
        if (p == f || substr(p, 1, length(f) + 1) == f "/") return to[i] substr(p, length(f) + 1)
      }
      return p
    }
    FILENAME ~ /\.md5sums$/ { if (length($1) == 32) print $1 "  " R "/" canon(substr($0, 35)); next }
    /^Conffiles:/ { inconf = 1; next }
    /^[^ ]/ { inconf = 0 }
    inconf && $1 ~ /^\// && length($2) == 32 { print $2 "  " R "/" canon(substr($1, 2)) }
  ' "$R"/var/lib/dpkg/info/*.md5sums "$R/var/lib/dpkg/status" >"$work/dpkg.md5"
  # Each "<path>: OK" is a package file as the package shipped it.
  { md5sum -c "$work/dpkg.md5" 2>/dev/null || true; } |
    sed -n 's/: OK$//p' | tr '\n' '\0' | sort -z -u >"$work/unchanged"
else
  : >"$work/unchanged"
fi
comm -z -23 "$work/all" "$work/unchanged" >"$work/changed"
# Python byte code compiled at install time from an unchanged package source
# (D/__pycache__/M.cpython-311.pyc from D/M.py) is the package's code too.
declare -A unchanged=()
while IFS= read -r -d '' f; do unchanged[$f]=1; done <"$work/unchanged"
compiled=0
: >"$work/scan"
while IFS= read -r -d '' f; do
  if [[ $f == */__pycache__/*.pyc ]]; then
    base=${f##*/}
    if [[ -n ${unchanged[${f%/__pycache__/*}/${base%%.*}.py]:-} ]]; then
      compiled=$((compiled + 1))
      continue
    fi
  fi
  printf '%s\0' "$f" >>"$work/scan"
done <"$work/changed"
unset unchanged
total=$(tr -cd '\0' <"$work/all" | wc -c)
skipped=$(comm -z -12 "$work/all" "$work/unchanged" | tr -cd '\0' | wc -c)
count=$(tr -cd '\0' <"$work/scan" | wc -c)
log "scope: ${R:-/}: $total files; skipped: $skipped installed by dpkg unchanged," \
  "$compiled compiled from those; $count to scan"

for i in "${!allow_paths[@]}"; do
  log "allowlist: ${allow_paths[i]} (${allow_reasons[i]})"
done

# Compressed files are searched by the key-store and name rules below, not as text: their
# bytes are not the text they hold, and over megabytes of them the patterns match by
# chance (an initramfs matched keyword-assignment). An initramfs (update-initramfs: an
# uncompressed early cpio, then the compressed main one) is built from files of the root
# file system, which are scanned themselves. First bytes: gzip, xz, zstd, bzip2, lz4 (NUL
# bytes are dropped by read).
: >"$work/text"
packed=()
while IFS= read -r -d '' f; do
  head=''
  IFS= read -r -d '' -N 6 head 2>/dev/null <"$f" || true
  case $f in
    */boot/initrd.img-* | */boot/initramfs-*) packed+=("$(rel "$f")") ;;
    *)
      case $head in
        $'\x1f\x8b'* | $'\xfd7zXZ'* | $'\x28\xb5\x2f\xfd'* | BZh* | $'\x04\x22\x4d\x18'*)
          packed+=("$(rel "$f")")
          ;;
        *) printf '%s\0' "$f" >>"$work/text" ;;
      esac
      ;;
  esac
done <"$work/scan"
if ((${#packed[@]})); then
  more=''
  ((${#packed[@]} > 5)) && more=' ...'
  log "not searched as text: ${#packed[@]} compressed file(s): ${packed[*]:0:5}$more"
fi

# ---------------------------------------------------------------------------
# 2. Content rules: the catalogue. One rule a line, TAB-separated:
#      id  flags  reason  regex  unless
#    flags "i": case-insensitive; regex: POSIX extended, in the subset that
#    GNU grep -E, .NET and Python read alike (scripts/windows/audit.ps1
#    holds the same table); unless: a match (of the regex, not the line)
#    that also matches this is not a finding ("-": none).
#    Token formats are the rules of gitleaks v8.30.0 (config/gitleaks.toml,
#    rule ids kept), rewritten without PCRE; azure-storage-key and
#    url-credentials follow detect-secrets 1.5.0's AzureStorageKeyDetector
#    and BasicAuthDetector, keyword-assignment its KeywordDetector.
# ---------------------------------------------------------------------------
# BEGIN CATALOGUE
CATALOGUE=$(cat <<'RULES'
private-key	i	private key (PEM or OpenSSH)	-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY( BLOCK)?-----	-
putty-private-key	-	private key (PuTTY)	^PuTTY-User-Key-File-[0-9]+:	-
gnupg-private-key	-	private key (GnuPG key file)	\((protected-|shadowed-)?private-key ?\(	-
aws-access-token	-	AWS access key ID	\b(A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b	-
azure-ad-client-secret	-	Azure AD client secret	(^|[^a-zA-Z0-9_~.-])[a-zA-Z0-9_~.]{3}[0-9]Q~[a-zA-Z0-9_~.-]{31,34}($|[^a-zA-Z0-9_~.-])	-
azure-storage-key	-	Azure storage or Service Bus key	(AccountKey|SharedAccessKey)=[a-zA-Z0-9+/]{40,}	-
azure-sas-token	-	Azure shared access signature	sv=[0-9]{4}-[0-9]{2}-[0-9]{2}&.*sig=[a-zA-Z0-9%+/]{30,}	-
github-token	-	GitHub token	\b(ghp|gho|ghu|ghs|ghr)_[0-9a-zA-Z]{36}\b	-
github-fine-grained-pat	-	GitHub fine-grained token	\bgithub_pat_[0-9a-zA-Z_]{82}\b	-
gitlab-pat	-	GitLab token	\bglpat-[0-9a-zA-Z_-]{20}	-
npm-access-token	i	npm access token	\bnpm_[a-z0-9]{36}\b	-
pypi-upload-token	-	PyPI upload token	pypi-AgEIcHlwaS5vcmc[0-9a-zA-Z_-]{50,}	-
slack-token	-	Slack token	\bxox[abeoprs]-[0-9]{6,13}-[0-9a-zA-Z-]{6,}	-
slack-app-token	i	Slack app token	\bxapp-[0-9]-[a-z0-9]+-[0-9]+-[a-z0-9]+	-
slack-webhook-url	-	Slack webhook URL	hooks\.slack\.com/(services|workflows|triggers)/[a-zA-Z0-9+/]{43,56}	-
jwt	-	JSON Web Token	\bey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9/_-]{17,}\.	-
gcp-api-key	-	Google API key	\bAIza[0-9a-zA-Z_-]{35}	-
stripe-access-token	-	Stripe key	\b(sk|rk)_(test|live|prod)_[a-zA-Z0-9]{10,99}	-
sendgrid-api-token	-	SendGrid API key	\bSG\.[a-zA-Z0-9=_.-]{66}	-
twilio-api-key	-	Twilio API key	\bSK[0-9a-fA-F]{32}\b	-
vault-service-token	-	HashiCorp Vault token	\bhvs\.[a-zA-Z0-9_-]{90,120}	-
hashicorp-tf-api-token	i	Terraform Cloud token	[a-z0-9]{14}\.atlasv1\.[a-z0-9_=-]{60,70}	-
digitalocean-pat	-	DigitalOcean token	\bdop_v1_[a-f0-9]{64}	-
openai-api-key	-	OpenAI API key	\bsk-[a-zA-Z0-9_-]{20,}T3BlbkFJ	-
anthropic-api-key	-	Anthropic API key	\bsk-ant-(api03|admin01)-[a-zA-Z0-9_-]{93}AA	-
huggingface-access-token	-	Hugging Face token	\bhf_[a-zA-Z]{34}\b	-
age-secret-key	-	age secret key	AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}	-
databricks-api-token	-	Databricks token	\bdapi[a-f0-9]{32}	-
grafana-service-account-token	-	Grafana service account token	\bglsa_[a-zA-Z0-9]{32}_[a-fA-F0-9]{8}	-
shopify-access-token	-	Shopify token	\bshp(at|ca|pa|ss)_[a-fA-F0-9]{32}	-
url-credentials	-	credentials in a URL (user:secret@host)	[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@:'" <>]+:[^/?#@'" <>]+@[^/?#@'" <>]	://[^/?#@:'" <>]*:(\$|\{|%s@|%\(|\*+@|<)
connection-string-password	i	connection string with a password	(server|data source|host|address|addr)\s*=[^;]*;.*(password|pwd)\s*=\s*[^;"' $]	-
xml-password	i	password in an XML element or NuGet setting	(<(password|passwd|secret|token|cleartextpassword)>[^<$ ]{3,}<|key="[^"]*(password|secret|token)[^"]*"\s+value="[^"$]{3,}")	-
npmrc-auth	i	npm registry credentials (.npmrc)	(^|:)_(auth|authtoken|password)\s*=\s*[^ "'$]	-
keyword-assignment	i	secret-like assignment	(passw(or)?d|passphrase|secret|token|api[_.-]?key|access[_.-]?key|private[_.-]?key|client[_.-]?secret|credentials?|auth[_.-]?key|account[_.-]?key|sas[_.-]?key|psk|pwd)[a-z0-9_-]*(["']?\s*(=|:=|=>)\s*["']?|["']\s*:\s*["']?|\s*:\s+["']?)[^ "'$<{%*(#;,&|/\\`][^ "';,]{2,}	(=|:)\s*["']?((true|false|yes|no|none|null|nil|undefined|required|optional|disabled|enabled|on|off|[0-9]{1,5})["']?\s*$|[a-z][a-z0-9+.-]*://)|^(passwd|shadow|gshadow)\s*:\s*(files|compat|systemd|sss|ldap|nis|winbind|db|all)
RULES
)
# END CATALOGUE

rule_ids=() rule_flags=() rule_reasons=() rule_res=() rule_unless=()
while IFS=$'\t' read -r id flags reason re unless; do
  [[ -n $id ]] || continue
  rule_ids+=("$id")
  rule_flags+=("$flags")
  rule_reasons+=("$reason")
  rule_res+=("$re")
  rule_unless+=("$unless")
done <<<"$CATALOGUE"
: >"$work/cs"
: >"$work/ci"
for i in "${!rule_ids[@]}"; do
  if [[ ${rule_flags[i]} == i ]]; then
    printf '%s\n' "${rule_res[i]}" >>"$work/ci"
  else
    printf '%s\n' "${rule_res[i]}" >>"$work/cs"
  fi
done

# A quick pass with every rule at once, then each rule over the files that
# matched any. grep -a: binary files are searched as text; exit 2 (an
# unreadable file) is an error of the audit, not a clean result.
grep_hits() { # flags-file ... ; prints NUL-separated file names
  xargs -0 -r grep -a -l -Z -E "$@" <"$work/text" 2>"$work/grep.err" || true
  # On a running system a file may go between find and grep; any other
  # error means a file was not read.
  if grep -q -v -e 'No such file or directory$' "$work/grep.err"; then
    die "grep could not read every file: $(grep -v -e 'No such file or directory$' "$work/grep.err" | head -n 3)"
  fi
}
{
  grep_hits -f "$work/cs"
  grep_hits -i -f "$work/ci"
} | sort -z -u >"$work/hits"
hits=()
while IFS= read -r -d '' f; do hits+=("$f"); done <"$work/hits"

for f in "${hits[@]}"; do
  p=$(rel "$f")
  for i in "${!rule_ids[@]}"; do
    opts=(-a -o -E)
    [[ ${rule_flags[i]} == i ]] && opts+=(-i)
    if [[ ${rule_unless[i]} == - ]]; then
      grep -q "${opts[@]}" -e "${rule_res[i]}" -- "$f" || continue
    else
      # grep -c reads all its input: no SIGPIPE for the first grep under pipefail.
      kept=$(grep "${opts[@]}" -e "${rule_res[i]}" -- "$f" | grep -c -v -E -i -e "${rule_unless[i]}" || true)
      ((kept > 0)) || continue
    fi
    report "$p" "${rule_reasons[i]} [${rule_ids[i]}]"
  done
done

# ---------------------------------------------------------------------------
# 3. Binary key stores and key files by their first bytes (NUL bytes are
#    dropped by read, so the signatures below are written without them).
# ---------------------------------------------------------------------------
readonly PKCS8_RE=$'^\x30[\x01-\xff]{1,3}\x02\x01\x01?\x30.{1,3}\x06'
readonly PKCS1_RE=$'^\x30[\x81\x82][\x01-\xff]{1,2}\x02\x01\x02[\x81\x82]'
readonly SEC1_RE=$'^\x30[\x01-\xff]{1,2}\x02\x01\x01\x04[\x20\x30\x42]'
magic_files=0
while IFS= read -r -d '' f; do
  head=''
  IFS= read -r -d '' -N 40 head 2>/dev/null <"$f" || true
  [[ -n $head ]] || continue
  magic_files=$((magic_files + 1))
  reason=''
  case $head in
    $'\xfe\xed\xfe\xed'*) reason='Java key store (JKS)' ;;
    $'\xce\xce\xce\xce'*) reason='Java key store (JCEKS)' ;;
    $'\x03\xd9\xa2\x9a\x67\xfb\x4b\xb5'* | $'\x03\xd9\xa2\x9a\x65\xfb\x4b\xb5'*) reason='KeePass password database' ;;
    *)
      if [[ $head == $'\x30'*$'\x02\x01\x03\x30'*$'\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07'* ]]; then
        reason='PKCS#12/PFX key store'
      elif [[ $head == $'\x30'?*$'\x30'?*$'\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x05\x0d'* ]] \
        || [[ $head =~ $PKCS8_RE || $head =~ $PKCS1_RE || $head =~ $SEC1_RE ]]; then
        reason='private key (DER)'
      elif [[ $head == $'\x05\x02'* && ($f == *.keytab || $f == */krb5.keytab) ]]; then
        reason='Kerberos keytab'
      fi
      ;;
  esac
  [[ -n $reason ]] && report "$(rel "$f")" "$reason [binary-key-store]"
done <"$work/scan"

# ---------------------------------------------------------------------------
# 4. Credential files known by name, wherever they are.
# ---------------------------------------------------------------------------
nonblank() { grep -q -v -E '^[[:space:]]*(#|$)' -- "$1" 2>/dev/null; }
while IFS= read -r -d '' f; do
  p=$(rel "$f")
  base=${f##*/}
  reason=''
  if [[ $base =~ $TOKEN_CACHE_RE ]]; then
    reason='token cache'
  elif [[ $base =~ $HISTORY_RE ]]; then
    [[ -s $f ]] && reason='non-empty shell or REPL history'
  else
    case $p in
      */.aws/credentials) reason='AWS credentials' ;;
      */.git-credentials) [[ -s $f ]] && reason='git credentials' ;;
      */.netrc | */_netrc | /etc/apt/auth.conf | /etc/apt/auth.conf.d/*)
        grep -q -E '(^|[[:space:]])password[[:space:]]+[^[:space:]]' -- "$f" && reason='netrc-style credentials (machine/login/password)' ;;
      */.pgpass) nonblank "$f" && reason='PostgreSQL password file' ;;
      */.vault-token) [[ -s $f ]] && reason='HashiCorp Vault token' ;;
      */.kube/config) [[ -s $f ]] && reason='Kubernetes credentials' ;;
      */.docker/config.json)
        grep -q -E '"(auth|identitytoken|registrytoken)"' -- "$f" && reason='Docker registry credentials' ;;
      /etc/ppp/chap-secrets | /etc/ppp/pap-secrets | /etc/ipsec.secrets | /etc/rsyncd.secrets)
        nonblank "$f" && reason='secrets file' ;;
      */secrets.tdb | */secrets.ldb) reason='Samba machine secrets' ;;
      */secring.gpg) [[ -s $f ]] && reason='GnuPG secret keyring' ;;
      /var/cache/debconf/passwords.dat)
        grep -q -E '^Value: .' -- "$f" && reason='debconf password answers' ;;
      */.terraform.d/credentials.tfrc.json | */.cargo/credentials | */.cargo/credentials.toml | */.gem/credentials | */.config/gh/hosts.yml)
        [[ -s $f ]] && reason='tool credentials' ;;
    esac
  fi
  [[ -n $reason ]] && report "$p" "$reason [credential-file]"
done <"$work/scan"

# Directories whose mere content is a credential (any file in them).
while IFS= read -r -d '' d; do
  [[ -n $(find "$d" -type f -print -quit 2>/dev/null) ]] || continue
  case ${d##*/} in
    .azure) report "$(rel "$d")" 'Azure CLI credentials directory [credential-file]' ;;
    gcloud) report "$(rel "$d")" 'Google Cloud credentials directory [credential-file]' ;;
  esac
done < <(find "${scan_roots[@]}" -xdev \( -path "$R/proc" -o -path "$R/sys" -o -path "$R/dev" -o -path "$R/run" \) -prune \
  -o -type d \( -name .azure -o -path '*/.config/gcloud' \) -print0 2>/dev/null)

# ---------------------------------------------------------------------------
# 5. Accounts: password hashes, authorized_keys, sudoers rules.
# ---------------------------------------------------------------------------
# shadow: "!" or "*" (any number, with nothing else) means no password; a
# leading "!" only locks a hash, which stays crackable.
check_hashes() { # file field-meaning
  local f=$R$1 name pw rest
  [[ -r $f ]] || return 0
  while IFS=: read -r name pw _; do
    [[ -n $name ]] || continue
    if [[ -z $pw ]]; then
      [[ $1 == /etc/shadow ]] && report "$1" "account $name has an empty password (login without one) [password-hash]"
      continue
    fi
    rest=$pw
    while [[ $rest == '!'* ]]; do rest=${rest#!}; done
    [[ -z $rest || $rest == '*'* || $rest == x ]] && continue
    if [[ $pw == '!'* ]]; then
      report "$1" "password hash for $2 $name (locked, still crackable) [password-hash]"
    else
      report "$1" "password hash for $2 $name [password-hash]"
    fi
  done <"$f"
}
check_hashes /etc/shadow account
check_hashes /etc/gshadow group
check_hashes /etc/passwd account
if $pre_generalize; then
  # generalize.sh removes root's password; only other accounts count here.
  r=${findings[/etc/shadow]:-}
  r=$(printf '%s\n' "$r" | grep -v -E '^password hash for account root( |$)' || true)
  if [[ -n $r ]]; then findings[/etc/shadow]=$r; else unset 'findings[/etc/shadow]'; fi
fi

# authorized_keys anywhere, and wherever sshd_config's AuthorizedKeysFile
# points outside home directories.
# True when file $1 has a key line other than the build admin's.
has_keys() {
  local b lines
  lines=$(grep -E '(^|[[:space:]])(ssh-(rsa|dss|ed25519)|ecdsa-sha2-[a-z0-9]+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) AAAA' -- "$1" 2>/dev/null || true)
  for b in "${build_keys[@]}"; do
    lines=$(grep -v -F -e " $b" <<<"$lines" || true)
  done
  [[ -n $lines ]]
}
while IFS= read -r -d '' f; do
  case ${f##*/} in
    authorized_keys | authorized_keys2)
      has_keys "$f" && report "$(rel "$f")" 'authorized_keys: SSH login into every VM made from the image [authorized-keys]' ;;
  esac
done <"$work/all"
sshd_files=("$R/etc/ssh/sshd_config")
for f in "$R"/etc/ssh/sshd_config.d/*.conf; do [[ -f $f ]] && sshd_files+=("$f"); done
while read -r pattern; do
  [[ $pattern == /* ]] || continue
  glob=${pattern//%u/*}
  glob=${glob//%U/*}
  glob=${glob//%%/%}
  for f in "$R"$glob; do
    [[ -f $f ]] && has_keys "$f" && report "$(rel "$f")" 'AuthorizedKeysFile: SSH login into every VM made from the image [authorized-keys]'
  done
done < <(awk 'tolower($1) == "authorizedkeysfile" { for (i = 2; i <= NF; i++) print $i }' "${sshd_files[@]}" 2>/dev/null)

# sudoers: user specifications and User_Alias members that name accounts
# or groups that do not exist (a later account of that name gets the rule).
sudoers_files=()
[[ -f "$R/etc/sudoers" ]] && sudoers_files+=("$R/etc/sudoers")
for f in "$R"/etc/sudoers.d/*; do
  # sudo skips names ending in "~" or containing "."
  [[ -f $f && ${f##*/} != *'~' && ${f##*/} != *.* ]] && sudoers_files+=("$f")
done
for f in "${sudoers_files[@]}"; do
  # Joins continued lines, drops comments (not #include or #<uid>) and
  # prints each name of each user list: "user", "%group", "#uid", ...
  # shellcheck disable=SC2016 # awk program
  while read -r who; do
    case $who in
      ALL | '' | +*) ;;
      %#*) [[ -n ${gids[${who#%#}]:-} ]] || report "$(rel "$f")" "sudo rule for group id ${who#%#}, which does not exist [sudoers]" ;;
      %:*) ;;
      %*) [[ -n ${groups[${who#%}]:-} ]] || report "$(rel "$f")" "sudo rule for group ${who#%}, which does not exist [sudoers]" ;;
      '#'*) [[ -n ${uids[${who#\#}]:-} ]] || report "$(rel "$f")" "sudo rule for user id ${who#\#}, which does not exist [sudoers]" ;;
      *) [[ -n ${users[$who]:-} ]] || report "$(rel "$f")" "sudo rule for user $who, who does not exist [sudoers]" ;;
    esac
  done < <(awk '
    { line = $0 }
    sub(/\\$/, "", line) { buf = buf line " "; next }
    { line = buf line; buf = "" }
    line ~ /^[ \t]*[#@]include/ { next }
    { sub(/#[^0-9].*$/, "", line); sub(/^#$/, "", line) }
    line ~ /^[ \t]*$/ { next }
    line ~ /^[ \t]*(Defaults|Host_Alias|Runas_Alias|Cmnd_Alias|Cmd_Alias)/ { next }
    line ~ /^[ \t]*User_Alias/ {
      sub(/^[ \t]*User_Alias[ \t]+/, "", line)
      n = split(line, defs, ":")
      for (d = 1; d <= n; d++) {
        sub(/^[^=]*=/, "", defs[d]); m = split(defs[d], names, ",")
        for (i = 1; i <= m; i++) { x = names[i]; gsub(/[ \t!]/, "", x); if (x != "") print x }
      }
      next
    }
    {
      sub(/^[ \t]+/, "", line); split(line, f, /[ \t]+/); m = split(f[1], names, ",")
      for (i = 1; i <= m; i++) { x = names[i]; gsub(/[ \t!]/, "", x); if (x != "" && x !~ /^[A-Z][A-Z0-9_]*$/) print x }
    }
  ' "$f")
done

# ---------------------------------------------------------------------------
# 6. Machine identity: must be gone so every clone gets its own.
# ---------------------------------------------------------------------------
if ! $pre_generalize; then
  if [[ -L "$R/etc/machine-id" ]]; then
    finding /etc/machine-id "is a symlink, must be an empty regular file [identity]"
  elif [[ -s "$R/etc/machine-id" ]]; then
    finding /etc/machine-id "machine-id is not empty [identity]"
  fi
  if [[ -e "$R/var/lib/dbus/machine-id" && ! -L "$R/var/lib/dbus/machine-id" ]]; then
    finding /var/lib/dbus/machine-id "D-Bus machine-id present [identity]"
  fi
  for f in "$R"/etc/ssh/ssh_host_*key "$R"/etc/ssh/ssh_host_*key.pub; do
    [[ -e $f ]] && finding "$(rel "$f")" "SSH host key present [identity]"
  done
  [[ -e "$R/var/lib/systemd/random-seed" ]] && finding /var/lib/systemd/random-seed "systemd random seed present [identity]"
  [[ -e "$R/var/lib/systemd/credential.secret" ]] && finding /var/lib/systemd/credential.secret "systemd credential secret present [identity]"
  for f in "$R"/var/lib/cloud/instance "$R"/var/lib/cloud/instances/* "$R"/var/lib/waagent/ovf-env.xml; do
    [[ -e $f || -L $f ]] && finding "$(rel "$f")" "cloud provisioning state of the builder [identity]"
  done
fi
# Network configuration pinned to the builder's MAC address.
readonly MAC_RE='([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}'
for d in etc/udev/rules.d etc/systemd/network etc/netplan etc/network etc/NetworkManager/system-connections; do
  [[ -d "$R/$d" ]] || continue
  while IFS= read -r -d '' f; do
    report "$(rel "$f")" "network configuration pinned to a MAC address [identity]"
  done < <(find "$R/$d" -xdev -type f -print0 | xargs -0 -r grep -l -Z -E -e "$MAC_RE" -- 2>/dev/null || true)
done

# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------
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

count=0
allowed=0
if ((${#findings[@]})); then
  while IFS= read -r -d '' p; do
    while IFS= read -r reason; do
      if i=$(allowed_by "$p"); then
        allow_used[i]=1
        allowed=$((allowed + 1))
        printf '%s: ALLOWED %s: %s -- allowlisted: %s\n' "$STEP" "$p" "$reason" "${allow_reasons[i]}"
      else
        count=$((count + 1))
        printf '%s: FINDING %s: %s\n' "$STEP" "$p" "$reason"
      fi
    done <<<"${findings[$p]}"
  done < <(printf '%s\0' "${!findings[@]}" | sort -z)
fi
for i in "${!allow_paths[@]}"; do
  ((allow_used[i])) || log "allowlist entry matched nothing: ${allow_paths[i]}"
done
if ((count)); then
  printf '%s: %d finding(s) in %s (%s audit)\n' "$STEP" "$count" "$target" "$mode"
  exit 1
fi
if ((allowed)); then
  printf '%s: clean: %s (%s audit, %d allowlisted)\n' "$STEP" "$target" "$mode" "$allowed"
else
  printf '%s: clean: %s (%s audit)\n' "$STEP" "$target" "$mode"
fi
