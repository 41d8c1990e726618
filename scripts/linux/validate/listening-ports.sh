#!/usr/bin/env bash
# An extra check for hardened images (a stack lists it under images[].validation.scripts),
# run on the test VM after the common checks: no TCP or UDP socket listens beyond loopback
# except on the ports the image is meant to serve. What a fresh VM listens on is what the
# image exposes, whatever a network security group lets through today. It reads; it
# changes nothing.
#
# Prints one JSON line, like validate.sh: {"check": "ports.listening", "ok": ..., "detail": ...},
# whose detail lists what listens and, on failure, the unexpected sockets with the processes
# that own them. Exits 1 when it fails, 2 on a usage error. Runs as root (only root's
# `ss -p` names other users' processes). Environment:
#   ALLOWED_PORTS  what may listen beyond loopback: space-separated N/tcp or N/udp (default
#                  "22/tcp"; set but empty: nothing). 68/udp, the DHCP client, always may.
#   IMAGE_NAME, IMAGE_VERSION  set by the program; not needed here.
set -euo pipefail
unset HISTFILE

readonly STEP=listening-ports
readonly CHECK=ports.listening
# Azure hands out addresses by DHCP: the client's socket is part of every VM.
readonly DHCP_CLIENT=68/udp

die() { printf '%s: error: %s\n' "$STEP" "$*" >&2; exit 2; }

record() {
  python3 -c 'import json, sys; print(json.dumps({"check": sys.argv[1], "ok": sys.argv[2] == "pass", "detail": sys.argv[3]}))' "$@"
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

read -r -a requested <<<"${ALLOWED_PORTS-22/tcp}"
allowed=()
for entry in "${requested[@]}"; do
  # 10#: a leading zero is decimal here, not octal.
  if [[ ! $entry =~ ^([0-9]{1,5})/(tcp|udp)$ ]] \
    || ((10#${BASH_REMATCH[1]} < 1 || 10#${BASH_REMATCH[1]} > 65535)); then
    die "ALLOWED_PORTS: '$entry' is not N/tcp or N/udp with N from 1 to 65535"
  fi
  allowed+=("$((10#${BASH_REMATCH[1]}))/${BASH_REMATCH[2]}")
done
allowed+=("$DHCP_CLIENT")

if ! command -v ss >/dev/null; then
  record "$CHECK" fail "ss not found: iproute2 is not installed, nothing was checked"
  exit 1
fi
rc=0
sockets=$(ss -H -lntup 2>&1) || rc=$?
if ((rc != 0)); then
  record "$CHECK" fail "ss -H -lntup failed (exit $rc): $(printf '%s' "$sockets" | tr -s '\n' ' ')"
  exit 1
fi

# ss lines: Netid State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=N),...)]
# Local is 0.0.0.0:22, [::]:22, *:22, 127.0.0.53%lo:53, 10.0.0.4%eth0:68 or [fe80::1%eth0]:546.
python3 - "$CHECK" "${allowed[*]}" "$sockets" <<'PY'
import ipaddress, json, re, sys

check, allowed, sockets = sys.argv[1], sys.argv[2].split(), sys.argv[3]


def loopback(addr: str, scope: str) -> bool:
    if scope == "lo":
        return True
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:  # "*": every address
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


seen = []
for line in sockets.splitlines():
    fields = line.split(None, 6)
    if len(fields) < 6:
        continue
    netid, local = fields[0], fields[4]
    process = fields[6] if len(fields) > 6 else ""
    addr, _, port = local.rpartition(":")
    addr, _, scope = addr.replace("[", "").replace("]", "").partition("%")
    where = f"[{addr}]" if ":" in addr else addr
    where += f"%{scope}" if scope else ""
    owners = re.findall(r'"([^"]*)",pid=(\d+)', process)
    names = list(dict.fromkeys(name for name, _ in owners))
    pids = list(dict.fromkeys(f"{name} pid {pid}" for name, pid in owners))
    seen.append(
        {
            "socket": f"{port}/{netid}",
            "key": (netid, int(port) if port.isdigit() else 0, where),
            "where": where,
            "loopback": loopback(addr, scope),
            "names": ", ".join(names),
            "pids": ", ".join(pids),
        }
    )
seen.sort(key=lambda s: s["key"])


def label(s: dict, owner: str) -> str:
    return f"{s['socket']} on {s['where']}" + (f" ({s[owner]})" if s[owner] else "")


outside = [label(s, "names") for s in seen if not s["loopback"]]
inside = [label(s, "names") for s in seen if s["loopback"]]
unexpected = [label(s, "pids") for s in seen if not s["loopback"] and s["socket"] not in allowed]
listing = (
    f"listening: {', '.join(outside) or 'nothing'}; "
    f"on loopback only: {', '.join(inside) or 'nothing'}; allowed: {' '.join(allowed)}"
)
if unexpected:
    detail = f"unexpected: {', '.join(unexpected)}; {listing}"
else:
    detail = listing
print(json.dumps({"check": check, "ok": not unexpected, "detail": detail}))
sys.exit(1 if unexpected else 0)
PY
