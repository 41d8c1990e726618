#!/usr/bin/env bash
# Validates a VM created from a new image, on that VM, before the image is published to
# anyone: the checks every image must pass. The image's own checks (scripts/linux/validate/)
# run after it, each its own Run Command, and print JSON lines the same way.
#
# Runs as root on the test VM through Azure managed Run Command (or in a qemu clone in
# the tests), once, during the VM's first boot. It reads; it changes nothing.
#
# Every check is one JSON line on stdout, the machine-readable result:
#   {"check": "identity.machine-id", "ok": true, "detail": "..."}
# followed by one line with what the image holds, read from its manifest:
#   {"manifest": {"image_name": ..., "image_version": ..., "packages": N, ...}}
# and a last line {"result": "passed"|"failed", "failed": [names]}. A failed check is also
# printed to stderr as "validate: FAIL <check>: <detail>", and the script exits 1.
#
# Environment:
#   IMAGE_NAME, IMAGE_VERSION  what the image must say it is (required)
#   EXPECTED_HOSTNAME          the test VM's computer name (required)
#   ADMIN_USERNAME             the test VM's admin account (required)
#   ADMIN_KEY                  the test VM's admin public key ("ssh-ed25519 AAAA..."):
#                              authorized_keys must hold it and no other key (optional;
#                              without it: exactly one key, written on this boot)
#   BUILDER_IDENTITY           machine-ids and host key fingerprints of the builder, space
#                              separated, that must not be on this VM (optional)
#   EXPECT_AGENT               1 (default): the Azure Linux agent must run; 0 where there
#                              is no Azure fabric (qemu), reported as a skipped check
#   CLOUD_INIT_WAIT_SECONDS    how long to wait for cloud-init to finish (default 600)
set -euo pipefail
unset HISTFILE

readonly STEP=validate
readonly MANIFEST=/etc/image-manifest.json
# Packages whose versions the result names (when installed): what an operator asks first.
declare -rx KEY_PACKAGES="linux-image-azure linux-image-amd64 openssh-server openssl cloud-init walinuxagent nginx"
# Identity files written on first boot may carry a time a little before the kernel's boot
# time as read from /proc/stat (clock adjustments in early boot).
readonly SLACK_SECONDS=5

failed=()

die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 2; }

# JSON string literal for $1.
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

# record NAME STATUS DETAIL: STATUS is pass, fail or skip.
record() {
  local name=$1 status=$2 detail=$3 ok=true
  case $status in
    fail)
      ok=false
      failed+=("$name")
      printf '%s: FAIL %s: %s\n' "$STEP" "$name" "$detail" >&2
      ;;
    skip) ok=null ;;
  esac
  printf '{"check": %s, "ok": %s, "detail": %s}\n' "$(json_str "$name")" "$ok" "$(json_str "$detail")"
}

for name in IMAGE_NAME IMAGE_VERSION EXPECTED_HOSTNAME ADMIN_USERNAME; do
  [[ -n "${!name:-}" ]] || die "environment variable $name is required but not set"
done
[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v python3 >/dev/null || die "python3 not found (cloud-init needs it on every image we build)"

boot_time=$(awk '$1 == "btime" {print $2}' /proc/stat)
[[ -n $boot_time ]] || die "no btime in /proc/stat"

# new_this_boot PATH: the file was written during this boot, not carried in the image.
new_this_boot() {
  local mtime
  mtime=$(stat -c %Y "$1" 2>/dev/null) || return 1
  ((mtime + SLACK_SECONDS >= boot_time))
}

# -- provisioning: Azure's (cloud-init and the agent) finished ------------------------------
if command -v cloud-init >/dev/null; then
  # Exit 0: done; 1: error; 2: done with recoverable errors (cloud-init 23.4+).
  rc=0
  status_out=$(timeout "${CLOUD_INIT_WAIT_SECONDS:-600}" cloud-init status --wait 2>&1) || rc=$?
  detail=$(printf '%s' "$status_out" | tr -s '.\n' ' ' | sed 's/^ *//; s/ *$//')
  if ((rc == 0)); then
    record provisioning.cloud-init pass "$detail"
  else
    record provisioning.cloud-init fail "cloud-init status exit $rc: $detail"
  fi
else
  record provisioning.cloud-init fail "cloud-init is not installed: Azure cannot provision this image"
fi
if [[ ${EXPECT_AGENT:-1} == 1 ]]; then
  agent=
  for unit in walinuxagent.service waagent.service; do
    if [[ $(systemctl is-active "$unit" 2>/dev/null) == active ]]; then
      agent=$unit
      break
    fi
  done
  if [[ -n $agent ]]; then
    record provisioning.agent pass "$agent active"
  else
    record provisioning.agent fail "neither walinuxagent nor waagent is active"
  fi
else
  record provisioning.agent skip "EXPECT_AGENT=0: no Azure fabric here"
fi

# -- identity: this VM's own, made on its first boot --------------------------------------
actual_host=$(hostname)
if [[ ${actual_host,,} == "${EXPECTED_HOSTNAME,,}" ]]; then
  record identity.hostname pass "$actual_host"
else
  record identity.hostname fail "host name is '$actual_host', expected '$EXPECTED_HOSTNAME' (the image kept a host name)"
fi

read -r -a builder_ids <<<"${BUILDER_IDENTITY:-}"
is_builders() {
  local id
  for id in "${builder_ids[@]}"; do
    [[ $1 == "$id" ]] && return 0
  done
  return 1
}

machine_id=$(cat /etc/machine-id 2>/dev/null || true)
if [[ ! $machine_id =~ ^[0-9a-f]{32}$ ]]; then
  record identity.machine-id fail "/etc/machine-id is '${machine_id}', not 32 hex digits"
elif is_builders "$machine_id"; then
  record identity.machine-id fail "/etc/machine-id $machine_id is the builder's: generalization left it in the image"
elif ! new_this_boot /etc/machine-id; then
  record identity.machine-id fail "/etc/machine-id $machine_id was written before this boot: it came with the image"
else
  record identity.machine-id pass "$machine_id, written on first boot"
fi
dbus_id=$(cat /var/lib/dbus/machine-id 2>/dev/null || true)
if [[ -z $dbus_id || $dbus_id == "$machine_id" ]]; then
  record identity.dbus-machine-id pass "${dbus_id:-absent, systemd has it}"
else
  record identity.dbus-machine-id fail "/var/lib/dbus/machine-id $dbus_id differs from /etc/machine-id: it came with the image"
fi

host_keys=(/etc/ssh/ssh_host_*_key.pub)
if [[ ! -e ${host_keys[0]} ]]; then
  record identity.ssh-host-keys fail "no SSH host key in /etc/ssh"
else
  bad=()
  prints=()
  for pub in "${host_keys[@]}"; do
    print=$(ssh-keygen -lf "$pub" 2>/dev/null | awk '{print $2}' || true)
    prints+=("$print")
    if is_builders "$print"; then
      bad+=("$pub is the builder's key ($print)")
    elif ! new_this_boot "${pub%.pub}"; then
      bad+=("$pub was made before this boot ($print)")
    fi
  done
  if ((${#bad[@]})); then
    record identity.ssh-host-keys fail "$(IFS=';'; printf '%s' "${bad[*]}"): it came with the image"
  else
    record identity.ssh-host-keys pass "${#host_keys[@]} keys made on first boot: ${prints[*]}"
  fi
fi

# -- accounts: the admin is the one Azure made for this VM, with its key only --------------
# (Other accounts may be intended: the audit judges them when the image is built.)
if ! entry=$(getent passwd "$ADMIN_USERNAME"); then
  record accounts.admin fail "the admin account '$ADMIN_USERNAME' was not created"
else
  home=$(printf '%s' "$entry" | cut -d: -f6)
  problems=()
  hash=$(getent shadow "$ADMIN_USERNAME" | cut -d: -f2 || true)
  [[ -n $hash ]] || problems+=("it has an empty password")
  # Azure writes the key from the VM's osProfile; without ADMIN_KEY the one key there must
  # be new (the builder's admin key, with its own key, was removed by generalization).
  keys_file=$home/.ssh/authorized_keys
  want=$(printf '%s' "${ADMIN_KEY:-}" | awk '{print $2}')
  mapfile -t have < <(grep -Eo '(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+ +[A-Za-z0-9+/=]+' "$keys_file" 2>/dev/null | awk '{print $2}')
  if ((${#have[@]} == 0)); then
    problems+=("$keys_file holds no key")
  elif [[ -n $want && " ${have[*]} " != *" $want "* ]]; then
    problems+=("$keys_file does not hold the test VM's key")
  fi
  others=0
  for key in "${have[@]}"; do
    [[ $key == "${want:-${have[0]}}" ]] || others=$((others + 1))
  done
  ((others == 0)) || problems+=("$keys_file holds $others key(s) the test VM was not given")
  new_this_boot "$keys_file" || problems+=("$keys_file was written before this boot")
  if ((${#problems[@]})); then
    record accounts.admin fail "$ADMIN_USERNAME: $(IFS=';'; printf '%s' "${problems[*]}")"
  else
    record accounts.admin pass "$ADMIN_USERNAME created for this VM, with its key only"
  fi
fi

# -- the manifest names this image ----------------------------------------------------------
rc=0
summary=$(python3 - "$MANIFEST" 2>&1 <<'PY'
import hashlib, json, os, sys
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        m = json.load(f)
except (OSError, ValueError) as e:
    print(f"unreadable: {e}")
    sys.exit(1)
packages = m.get("packages") or m.get("programs") or []
listing = "\n".join(f"{p.get('name')}={p.get('version')}" for p in packages)
wanted = os.environ["KEY_PACKAGES"].split()
key = {p["name"]: p["version"] for p in packages if p.get("name") in wanted}
out = {k: m.get(k) for k in ("image_name", "image_version", "build_time", "base_image", "os")}
out |= {"packages": len(packages), "packagesSha256": hashlib.sha256(listing.encode()).hexdigest(),
        "keyPackages": key}
print(json.dumps(out, sort_keys=True, separators=(",", ":")))
PY
) || rc=$?
if ((rc != 0)); then
  record manifest.present fail "$MANIFEST: ${summary}"
  summary='{}'
else
  record manifest.present pass "$MANIFEST"
  names=$(printf '%s' "$summary" | python3 -c \
    'import json,sys; m=json.load(sys.stdin); print(m["image_name"], m["image_version"], sep="\t")')
  IFS=$'\t' read -r m_name m_version <<<"$names"
  if [[ $m_name == "$IMAGE_NAME" && $m_version == "$IMAGE_VERSION" ]]; then
    record manifest.names-image pass "$m_name $m_version"
  else
    record manifest.names-image fail "the manifest names '$m_name $m_version', expected '$IMAGE_NAME $IMAGE_VERSION'"
  fi
fi

printf '{"manifest": %s}\n' "$summary"
if ((${#failed[@]})); then
  list=$(for f in "${failed[@]}"; do json_str "$f"; printf ','; done)
  printf '{"result": "failed", "failed": [%s]}\n' "${list%,}"
  printf '%s: %d check(s) failed: %s\n' "$STEP" "${#failed[@]}" "${failed[*]}" >&2
  exit 1
fi
printf '{"result": "passed", "failed": []}\n'
printf '%s: all checks passed on %s (%s %s)\n' "$STEP" "$actual_host" "$IMAGE_NAME" "$IMAGE_VERSION" >&2
