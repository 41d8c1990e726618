#!/usr/bin/env bash
# The web server image's own check, run on the test VM after the common checks
# (scripts/linux/validate.sh) because the image ran provision/20-webserver.sh: nginx is
# active and serves the page that names this image and version.
#
# Prints one JSON line per check, like validate.sh: {"check": ..., "ok": ..., "detail": ...};
# exits 1 when one fails. Environment: IMAGE_NAME, IMAGE_VERSION (required);
# WEB_WAIT_SECONDS (default 60): how long to wait for the page.
set -euo pipefail
unset HISTFILE

record() {
  python3 -c 'import json, sys; print(json.dumps({"check": sys.argv[1], "ok": sys.argv[2] == "pass", "detail": sys.argv[3]}))' "$@"
}

for name in IMAGE_NAME IMAGE_VERSION; do
  [[ -n "${!name:-}" ]] || { echo "20-webserver: error: $name is required" >&2; exit 2; }
done

failed=0
state=$(systemctl is-active nginx.service 2>/dev/null || true)
if [[ $state == active ]]; then
  record webserver.nginx pass "nginx.service active"
else
  record webserver.nginx fail "nginx.service is '${state:-unknown}'"
  failed=1
fi

# python3, not curl: every image has it (cloud-init), not every image has curl.
rc=0
page=$(WEB_WAIT_SECONDS=${WEB_WAIT_SECONDS:-60} python3 - <<'PY'
import os, time, urllib.request
deadline = time.monotonic() + int(os.environ["WEB_WAIT_SECONDS"])
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1/", timeout=10) as r:
            print(r.read().decode())
            break
    except OSError as e:
        if time.monotonic() > deadline:
            print(f"no page: {e}")
            raise SystemExit(1)
        time.sleep(2)
PY
) || rc=$?
want_name="<span id=\"image-name\">$IMAGE_NAME</span>"
want_version="<span id=\"image-version\">$IMAGE_VERSION</span>"
if ((rc != 0)); then
  record webserver.page fail "http://127.0.0.1/: ${page}"
  failed=1
elif [[ $page == *"$want_name"* && $page == *"$want_version"* ]]; then
  record webserver.page pass "http://127.0.0.1/ names $IMAGE_NAME $IMAGE_VERSION"
else
  record webserver.page fail "http://127.0.0.1/ does not name $IMAGE_NAME $IMAGE_VERSION"
  failed=1
fi
exit "$failed"
