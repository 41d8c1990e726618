#!/usr/bin/env bash
# Control-plane half of the capture stage: after the in-guest generalization has
# powered the builder VM off, deallocate it and mark it generalized so a managed
# image can be taken from it. And, for the validation stage, collect what the
# validation Run Commands printed on the test VM made from the image.
#
# Usage:
#   capture.sh capture --resource-group RG --vm NAME [--subscription SUB]
#   capture.sh collect --resource-group RG --vm NAME --run-command NAME [--run-command NAME ...] [--subscription SUB]
#   capture.sh delete  --resource-group RG --vm NAME [--subscription SUB]
#
# capture  gets a working az credential first (see "Azure login" below), then waits
#          (bounded) until the VM reports PowerState/stopped or PowerState/deallocated,
#          then `az vm deallocate`, then `az vm generalize`. A VM that is already
#          deallocated skips the deallocate; a VM that is already generalized is left
#          alone. Re-running after a half-finished run therefore converges.
# collect  gets a working az credential the same way, then reads each named managed Run
#          Command of the test VM, in order, with `az vm run-command show --instance-view`
#          (the only place Azure keeps a run command's output without an output blob,
#          and it may cut long output at its start).
#          Each must have finished with execution state Succeeded and exit code 0, and
#          its output must hold at least one check line. The output's JSON lines (see
#          scripts/linux/validate.sh) become one summary, printed as the only line on
#          stdout; every log line of collect goes to stderr:
#            {"checks":[{"check":..,"detail":..,"ok":..,"runCommand":..},..],
#             "manifest":{..},"result":"passed"|"failed","testVm":VM}
#          compact, keys sorted, on one line. "checks" keeps the run commands' order;
#          "manifest" is the object of the last {"manifest": ...} line, {} when none;
#          a check whose "ok" is neither true nor null (skipped) fails the result. Lines
#          that are not JSON objects (a prefix Azure adds, a first line cut short)
#          are ignored. After a passed result the test VM is deallocated so it stops
#          costing compute (skipped when already deallocated, or with
#          VALIDATION_KEEP_RUNNING=1); after a failed one, or a failed run command, it is
#          left running so an operator can inspect it.
# delete   does nothing to the VM: Azure cannot un-generalize a VM, and the VM
#          resource's own deletion removes it.
#
# Azure login (capture and collect). `pulumi up` runs these after the builder has been
# provisioned, often hours after the job logged in; by then a GitHub OIDC client
# assertion (minutes) and the az access token (about an hour) have expired. So:
#   oidc      request a fresh GitHub Actions OIDC token and `az login` with it as the
#             app registration, into a private AZURE_CONFIG_DIR removed on exit (so
#             parallel captures never rewrite each other's or the job's ~/.azure).
#             A call that later fails with an expired credential (AADSTS700024,
#             ExpiredAuthenticationToken, ...) logs in again once and is repeated.
#   existing  use the current az login; check it with `az account get-access-token`
#             and fail at once, saying what to do, when it does not work. An expired
#             credential later is a permanent error.
# --subscription pins every az call (`pulumi up` passes the provider's); without it
# az uses its default subscription, which after an oidc login is the app's first.
#
# Environment (capture and collect):
#   CAPTURE_LOGIN                 auto (default): oidc when GitHub OIDC is available,
#                                 else existing; oidc: require it (exit 1 naming what
#                                 is missing); existing: never use it
#   ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN
#                                 set by GitHub Actions in jobs with
#                                 `permissions: id-token: write`
#   AZURE_CLIENT_ID, AZURE_TENANT_ID (else ARM_CLIENT_ID, ARM_TENANT_ID)
#                                 the app registration whose federated credential
#                                 trusts this repository's GitHub OIDC tokens
#   Each of these must be a positive integer:
#   CAPTURE_STOP_TIMEOUT_SECONDS  how long to wait for the guest to power off (1800;
#                                 capture only)
#   CAPTURE_POLL_SECONDS          interval between power-state reads (15; capture only)
#   CAPTURE_MAX_TRIES             attempts per az call on transient errors (6)
#   CAPTURE_BACKOFF_SECONDS       first retry delay; doubles per retry, each wait
#                                 capped at 300 seconds (10)
#   VALIDATION_KEEP_RUNNING       collect only: 1 leaves a test VM that passed running
#                                 (to look at it); 0 (default) deallocates it
# collect also needs python3 (it reads the run commands' JSON; it is wherever the
# Pulumi Python program runs).
#
# Exit codes:
#   0  done (or nothing to do); for collect: the validation passed
#   1  az failed: a permanent error (not found, forbidden, ...), an error not known
#      to be transient, or transient errors past CAPTURE_MAX_TRIES; or no usable
#      login: the existing az login does not work, an expired credential cannot be
#      renewed, CAPTURE_LOGIN=oidc without GitHub OIDC, or the OIDC login failed;
#      or (collect) a run command did not finish with Succeeded and exit code 0, its
#      output holds no check line, or a check failed (the summary is still printed)
#   2  usage error: bad action, flag or environment variable
#   3  the guest never powered off within CAPTURE_STOP_TIMEOUT_SECONDS (capture)
set -euo pipefail

readonly PROG="capture.sh"
readonly BACKOFF_CAP_SECONDS=300
# The audience Entra ID expects in a federated credential's token (public cloud).
readonly OIDC_AUDIENCE="api://AzureADTokenExchange"
readonly LOGIN_HINT="Run 'az login' before 'pulumi up'; in GitHub Actions, give the job 'permissions: id-token: write' and set AZURE_CLIENT_ID and AZURE_TENANT_ID, so that capture.sh logs in again with a fresh OIDC token when it runs."

# ARM error codes and texts after which a retry can succeed. 409 covers both
# `Conflict` and the compute RP's "another operation is in progress" refusals.
readonly TRANSIENT_PATTERN='TooManyRequests|RequestsThrottled|throttl|\b429\b|Conflict|another operation|OperationPreempted|\b409\b|InternalServerError|InternalExecutionError|ServiceUnavailable|GatewayTimeout|BadGateway|RetryableError|Internal Server Error|Service Unavailable|Bad Gateway|Gateway Time-?out|\b50[0-9]\b|Connection aborted|Connection reset|timed out'
# The az credential ran out (or is gone): a fresh login fixes these, a retry does not.
# AADSTS700024: the stored client assertion (a GitHub OIDC token) is past its validity;
# AADSTS70043/700082/70008/50173: refresh token expired or revoked;
# ExpiredAuthenticationToken: ARM got an expired access token; "az login": az's own
# advice when it holds no usable credential. Checked before the permanent pattern,
# which also matches every AADSTS code.
readonly CREDENTIAL_PATTERN='AADSTS700024|AADSTS70043|AADSTS700082|AADSTS70008\b|AADSTS50173|ExpiredAuthenticationToken|token is expired|token has expired|not within its valid time range|az login'
# Errors no retry can fix; checked before the transient pattern so that, say, a 403
# mentioning a conflicting scope is never retried.
readonly PERMANENT_PATTERN="ResourceNotFound|ResourceGroupNotFound|SubscriptionNotFound|NotFound|\\b404\\b|AuthorizationFailed|Forbidden|\\b403\\b|AADSTS|InvalidAuthenticationToken|InvalidSubscriptionId"

log() { printf '%s: %s\n' "$PROG" "$*"; }
fail() {
  local code=$1
  shift
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit "$code"
}

usage_text() {
  cat <<EOF
usage: $PROG capture --resource-group RG --vm NAME [--subscription SUB]
       $PROG collect --resource-group RG --vm NAME --run-command NAME [--run-command NAME ...] [--subscription SUB]
       $PROG delete  --resource-group RG --vm NAME [--subscription SUB]
EOF
}

# --help: the usage, then this file's header comment (what each action does, its output,
# environment and exit codes).
help_text() {
  usage_text
  echo
  sed -n '2,/^set -euo pipefail$/{/^#/{s/^# \{0,1\}//;p;};}' "${BASH_SOURCE[0]}"
}

usage_error() {
  printf '%s: usage error: %s\n' "$PROG" "$*" >&2
  usage_text >&2
  exit 2
}

# Reads a positive integer setting from the environment into the named variable.
read_positive_int() {
  local var=$1 default=$2 value
  value=${!var:-$default}
  if [[ ! $value =~ ^[1-9][0-9]{0,8}$ ]]; then
    usage_error "$var must be a positive integer (at most 999999999), got '$value'"
  fi
  printf '%s' "$value"
}

ACTION=""
RESOURCE_GROUP=""
VM=""
SUBSCRIPTION=""
RUN_COMMANDS=()

parse_args() {
  if [[ $# -eq 0 ]]; then
    usage_error "missing action: expected 'capture', 'collect' or 'delete'"
  fi
  case $1 in
    capture | collect | delete) ACTION=$1 ;;
    -h | --help)
      help_text
      exit 0
      ;;
    *) usage_error "unknown action '$1': expected 'capture', 'collect' or 'delete'" ;;
  esac
  shift

  local seen_rg=0 seen_vm=0 seen_sub=0 seen_rc=0 flag value name
  while [[ $# -gt 0 ]]; do
    flag=$1
    if [[ $flag == --*=* ]]; then
      value=${flag#*=}
      flag=${flag%%=*}
      shift
    else
      case $flag in
        --resource-group | --vm | --subscription | --run-command)
          if [[ $# -lt 2 || $2 == --* ]]; then
            usage_error "$flag needs a value"
          fi
          value=$2
          shift 2
          ;;
        -h | --help)
          help_text
          exit 0
          ;;
        *) usage_error "unknown argument '$flag'" ;;
      esac
    fi
    case $flag in
      --resource-group) RESOURCE_GROUP=$value seen_rg=1 ;;
      --vm) VM=$value seen_vm=1 ;;
      --subscription) SUBSCRIPTION=$value seen_sub=1 ;;
      --run-command)
        [[ -n $value ]] || usage_error "--run-command must not be empty"
        for name in "${RUN_COMMANDS[@]}"; do
          [[ $name != "$value" ]] || usage_error "--run-command '$value' is given twice"
        done
        RUN_COMMANDS+=("$value")
        seen_rc=1
        ;;
      *) usage_error "unknown argument '$flag'" ;;
    esac
  done

  [[ $seen_rg -eq 1 ]] || usage_error "missing required flag --resource-group"
  [[ $seen_vm -eq 1 ]] || usage_error "missing required flag --vm"
  [[ -n $RESOURCE_GROUP ]] || usage_error "--resource-group must not be empty"
  [[ -n $VM ]] || usage_error "--vm must not be empty"
  if [[ $seen_sub -eq 1 && -z $SUBSCRIPTION ]]; then
    usage_error "--subscription must not be empty when given"
  fi
  if [[ $ACTION == collect && $seen_rc -eq 0 ]]; then
    usage_error "missing required flag --run-command (at least one)"
  fi
  if [[ $ACTION != collect && $seen_rc -eq 1 ]]; then
    usage_error "--run-command is only for 'collect'"
  fi
}

# Prints "credential", "permanent" or "transient" for an az error text. Anything not
# known to be transient is permanent: retrying an unknown failure only hides it.
classify_error() {
  local text=$1
  if grep -qiE -- "$CREDENTIAL_PATTERN" <<<"$text"; then
    echo credential
  elif grep -qiE -- "$PERMANENT_PATTERN" <<<"$text"; then
    echo permanent
  elif grep -qiE -- "$TRANSIENT_PATTERN" <<<"$text"; then
    echo transient
  else
    echo permanent
  fi
}

# First non-empty line of an az error, for one-line progress messages.
first_line() {
  local line
  while IFS= read -r line; do
    if [[ -n ${line//[[:space:]]/} ]]; then
      printf '%s' "$line"
      return
    fi
  done <<<"$1"
}

# Runs `az "$@"` once: stdout in AZ_OUT, stderr in AZ_ERR (never empty on failure),
# exit status in AZ_RC and as the return value.
AZ_OUT=""
AZ_ERR=""
AZ_RC=0
az_once() {
  local err_file
  err_file=$(mktemp)
  AZ_RC=0
  AZ_OUT=$(az "$@" 2>"$err_file") || AZ_RC=$?
  AZ_ERR=$(<"$err_file")
  rm -f "$err_file"
  if [[ $AZ_RC -ne 0 && -z $AZ_ERR ]]; then
    AZ_ERR="az exited with status $AZ_RC and printed no error"
  fi
  return "$AZ_RC"
}

# Calls "$@" (one attempt that sets AZ_ERR on failure, like az_once) until it
# succeeds, retrying transient errors with backoff. On an expired or missing
# credential it logs in again once with a fresh GitHub OIDC token when MAY_RELOGIN is
# 1 and the login mode is oidc. Every other failure exits 1 with az's own text.
with_retries() {
  local what=$1 may_relogin=$2
  shift 2
  local attempt=1 delay=$BACKOFF_SECONDS relogged=0 err
  while true; do
    if "$@"; then
      return 0
    fi
    err=$AZ_ERR
    case $(classify_error "$err") in
      credential)
        if [[ $LOGIN_MODE == existing ]]; then
          fail 1 "$what failed: the Azure CLI login has expired or is missing. $LOGIN_HINT az said:"$'\n'"$err"
        fi
        if [[ $may_relogin -eq 1 && $relogged -eq 0 ]]; then
          log "$what: the Azure CLI credential has expired or is missing; logging in again: $(first_line "$err")"
          oidc_login
          relogged=1
          continue
        fi
        if [[ $relogged -eq 1 ]]; then
          fail 1 "$what failed with an expired credential again right after a fresh GitHub OIDC login;" \
            "check the runner's clock and the app registration's federated credential. az said:"$'\n'"$err"
        fi
        fail 1 "$what failed (permanent error, not retried):"$'\n'"$err"
        ;;
      permanent)
        fail 1 "$what failed (permanent error, not retried):"$'\n'"$err"
        ;;
    esac
    if [[ $attempt -ge $MAX_TRIES ]]; then
      fail 1 "$what failed after $attempt tries (CAPTURE_MAX_TRIES=$MAX_TRIES); last error:"$'\n'"$err"
    fi
    log "$what: transient error on try $attempt/$MAX_TRIES, retrying in ${delay}s: $(first_line "$err")"
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2))
    if [[ $delay -gt $BACKOFF_CAP_SECONDS ]]; then
      delay=$BACKOFF_CAP_SECONDS
    fi
  done
}

# Runs `az "$@"` for this VM with retries (see with_retries). On success the
# command's stdout is in AZ_OUT.
az_retry() {
  local what=$1
  shift
  local -a cmd=("$@" --only-show-errors)
  if [[ -n $SUBSCRIPTION ]]; then
    cmd+=(--subscription "$SUBSCRIPTION")
  fi
  with_retries "$what" 1 az_once "${cmd[@]}"
}

# --- Azure login ---------------------------------------------------------------

LOGIN_MODE=""
LOGIN_REASON=""
OIDC_CLIENT_ID=""
OIDC_TENANT_ID=""

# Sets LOGIN_MODE to oidc or existing from CAPTURE_LOGIN and the environment.
resolve_login_mode() {
  local requested=${CAPTURE_LOGIN:-auto}
  case $requested in
    auto | oidc | existing) ;;
    *) usage_error "CAPTURE_LOGIN must be 'auto', 'oidc' or 'existing', got '$requested'" ;;
  esac
  OIDC_CLIENT_ID=${AZURE_CLIENT_ID:-${ARM_CLIENT_ID:-}}
  OIDC_TENANT_ID=${AZURE_TENANT_ID:-${ARM_TENANT_ID:-}}
  local missing=""
  if [[ -z ${ACTIONS_ID_TOKEN_REQUEST_URL:-} ]]; then
    missing+=", ACTIONS_ID_TOKEN_REQUEST_URL"
  fi
  if [[ -z ${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-} ]]; then
    missing+=", ACTIONS_ID_TOKEN_REQUEST_TOKEN"
  fi
  if [[ -z $OIDC_CLIENT_ID ]]; then
    missing+=", AZURE_CLIENT_ID (or ARM_CLIENT_ID)"
  fi
  if [[ -z $OIDC_TENANT_ID ]]; then
    missing+=", AZURE_TENANT_ID (or ARM_TENANT_ID)"
  fi
  missing=${missing#, }

  case $requested in
    existing)
      LOGIN_MODE=existing
      LOGIN_REASON="CAPTURE_LOGIN=existing"
      ;;
    auto)
      if [[ -z $missing ]]; then
        LOGIN_MODE=oidc
      else
        LOGIN_MODE=existing
        LOGIN_REASON="no GitHub OIDC login: not set: $missing"
      fi
      ;;
    oidc)
      if [[ -n $missing ]]; then
        fail 1 "CAPTURE_LOGIN=oidc, but GitHub OIDC is not available; not set: $missing." \
          "Run capture in a GitHub Actions job with 'permissions: id-token: write' (GitHub then sets" \
          "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN) and set AZURE_CLIENT_ID and" \
          "AZURE_TENANT_ID to the app registration's IDs, or use CAPTURE_LOGIN=existing with a working 'az login'."
      fi
      LOGIN_MODE=oidc
      ;;
  esac
}

# A value for a double-quoted string in a curl config file.
curl_config_value() {
  local value=${1//\\/\\\\}
  printf '%s' "${value//\"/\\\"}"
}

# Requests a fresh GitHub Actions OIDC token for Entra ID's token exchange into
# OIDC_TOKEN (https://docs.github.com/en/actions/reference/security/oidc, "Methods
# for requesting the OIDC token"). curl is on GitHub's runners and wherever az was
# installed by Microsoft's script; it gets the URL and the bearer request token as a
# config file on stdin (printf is a builtin), so neither shows in the process list,
# and the answer stays in memory. No jq or python: the answer is flat JSON, and a
# JWT is base64url segments joined by dots, characters JSON never escapes, so
# matching exactly that alphabet reads the field exactly.
OIDC_TOKEN=""
fetch_github_oidc_token() {
  local url="$ACTIONS_ID_TOKEN_REQUEST_URL&audience=$OIDC_AUDIENCE"
  local header="Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN"
  local body err_file rc=0 re='"value"[[:space:]]*:[[:space:]]*"([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+)"'
  err_file=$(mktemp)
  body=$(printf 'url = "%s"\nheader = "%s"\n' "$(curl_config_value "$url")" "$(curl_config_value "$header")" |
    curl --config - --silent --show-error --fail --max-time 60 --retry 3 2>"$err_file") || rc=$?
  if [[ $rc -ne 0 ]]; then
    local err
    err=$(<"$err_file")
    rm -f "$err_file"
    fail 1 "requesting a GitHub OIDC token from ACTIONS_ID_TOKEN_REQUEST_URL failed (curl exit $rc):"$'\n'"$err"
  fi
  rm -f "$err_file"
  if [[ ! $body =~ $re ]]; then
    fail 1 "the answer from ACTIONS_ID_TOKEN_REQUEST_URL has no \"value\" field holding a JWT;" \
      "is it the job's GitHub OIDC token endpoint?"
  fi
  OIDC_TOKEN=${BASH_REMATCH[1]}
}

# One OIDC login attempt (for with_retries). The flags are az's own
# (https://learn.microsoft.com/cli/azure/reference-index#az-login): --federated-token
# is the client assertion Entra ID exchanges for tokens; --allow-no-subscriptions lets
# the login succeed however the app's subscriptions list, since every call names
# --subscription anyway. az takes the token only as an argument (no file or stdin
# form), so for the second the login runs it is readable in the process list by this
# user (and by others where /proc is not mounted hidepid); it is short-lived,
# audience-bound and never printed.
oidc_login_once() {
  fetch_github_oidc_token
  local rc=0
  az_once login --service-principal --username "$OIDC_CLIENT_ID" --tenant "$OIDC_TENANT_ID" \
    --federated-token "$OIDC_TOKEN" --allow-no-subscriptions --only-show-errors --output none || rc=$?
  OIDC_TOKEN=""
  return "$rc"
}

oidc_login() {
  local who="client '$OIDC_CLIENT_ID' in tenant '$OIDC_TENANT_ID'"
  log "logging in to Azure as $who with a fresh GitHub OIDC token"
  with_retries "logging in to Azure as $who" 0 oidc_login_once
}

AZ_CONFIG_TMP=""
remove_private_az_config() {
  if [[ -n $AZ_CONFIG_TMP ]]; then
    rm -rf -- "$AZ_CONFIG_TMP"
  fi
}

# Gets a working az credential before the first VM call (see "Azure login" above).
prepare_login() {
  if [[ $LOGIN_MODE == oidc ]]; then
    if ! command -v curl >/dev/null 2>&1; then
      fail 1 "curl is not on PATH; capture.sh needs it to request a GitHub OIDC token" \
        "(or set CAPTURE_LOGIN=existing to use the current az login)"
    fi
    # AZURE_CONFIG_DIR: https://learn.microsoft.com/cli/azure/azure-cli-configuration
    AZ_CONFIG_TMP=$(mktemp -d)
    trap remove_private_az_config EXIT
    export AZURE_CONFIG_DIR=$AZ_CONFIG_TMP
    oidc_login
    return 0
  fi

  log "using the existing Azure CLI login ($LOGIN_REASON)"
  # Refreshes the ARM token if it can, prints nothing with --output none
  # (https://learn.microsoft.com/cli/azure/account#az-account-get-access-token).
  local -a cmd=(account get-access-token --output none --only-show-errors)
  if [[ -n $SUBSCRIPTION ]]; then
    cmd+=(--subscription "$SUBSCRIPTION")
  fi
  if ! az_once "${cmd[@]}"; then
    fail 1 "the Azure CLI login is not usable ('az account get-access-token' failed). $LOGIN_HINT az said:"$'\n'"$AZ_ERR"
  fi
}

POWER_STATE=""
GENERALIZED=0
read_instance_view() {
  az_retry "reading the instance view of VM '$VM'" \
    vm get-instance-view --resource-group "$RESOURCE_GROUP" --name "$VM" \
    --query "instanceView.statuses[].code" -o tsv
  POWER_STATE="unknown"
  GENERALIZED=0
  local code
  while IFS= read -r code; do
    code=${code%$'\r'}
    case $code in
      PowerState/*) POWER_STATE=${code#PowerState/} ;;
      OSState/generalized) GENERALIZED=1 ;;
    esac
  done <<<"$AZ_OUT"
}

# Waits until the guest has powered itself off. Time spent is the larger of the
# wall clock and the sum of the sleeps, so the bound holds even when az calls
# are slow and stays exact when sleep returns early.
wait_until_stopped() {
  local started=$SECONDS slept=0 elapsed remaining nap
  log "waiting up to ${STOP_TIMEOUT}s for VM '$VM' in resource group '$RESOURCE_GROUP' to power off (poll every ${POLL_SECONDS}s)"
  while true; do
    read_instance_view
    if [[ $GENERALIZED -eq 1 ]]; then
      return 0
    fi
    case $POWER_STATE in
      stopped | deallocated)
        log "VM '$VM' is $POWER_STATE"
        return 0
        ;;
    esac
    elapsed=$((SECONDS - started))
    if [[ $slept -gt $elapsed ]]; then
      elapsed=$slept
    fi
    if [[ $elapsed -ge $STOP_TIMEOUT ]]; then
      fail 3 "VM '$VM' never stopped: power state is still '$POWER_STATE' after ${elapsed}s (CAPTURE_STOP_TIMEOUT_SECONDS=$STOP_TIMEOUT)." \
        "The in-guest generalization or audit probably failed; check the run command output and the serial log (boot diagnostics) of VM '$VM'."
    fi
    remaining=$((STOP_TIMEOUT - elapsed))
    nap=$POLL_SECONDS
    if [[ $nap -gt $remaining ]]; then
      nap=$remaining
    fi
    log "VM '$VM' is $POWER_STATE; checking again in ${nap}s (${elapsed}s of ${STOP_TIMEOUT}s waited)"
    sleep "$nap"
    slept=$((slept + nap))
  done
}

read_retry_settings() {
  MAX_TRIES=$(read_positive_int CAPTURE_MAX_TRIES 6)
  BACKOFF_SECONDS=$(read_positive_int CAPTURE_BACKOFF_SECONDS 10)
  if [[ $BACKOFF_SECONDS -gt $BACKOFF_CAP_SECONDS ]]; then
    BACKOFF_SECONDS=$BACKOFF_CAP_SECONDS
  fi
}

require_az() {
  if ! command -v az >/dev/null 2>&1; then
    fail 1 "the Azure CLI 'az' is not on PATH"
  fi
}

capture() {
  STOP_TIMEOUT=$(read_positive_int CAPTURE_STOP_TIMEOUT_SECONDS 1800)
  POLL_SECONDS=$(read_positive_int CAPTURE_POLL_SECONDS 15)
  read_retry_settings
  resolve_login_mode
  require_az
  prepare_login
  wait_until_stopped
  if [[ $GENERALIZED -eq 1 ]]; then
    log "VM '$VM' is already generalized (power state '$POWER_STATE'); nothing to do"
    return 0
  fi

  if [[ $POWER_STATE == deallocated ]]; then
    log "VM '$VM' is already deallocated; skipping deallocate"
  else
    log "deallocating VM '$VM'"
    az_retry "deallocating VM '$VM'" \
      vm deallocate --resource-group "$RESOURCE_GROUP" --name "$VM"
    log "VM '$VM' is deallocated"
  fi

  log "marking VM '$VM' as generalized"
  az_retry "generalizing VM '$VM'" \
    vm generalize --resource-group "$RESOURCE_GROUP" --name "$VM"
  log "VM '$VM' is deallocated and generalized; ready for image capture"
}

# --- collect -------------------------------------------------------------------

# The Python half of collect, run with `python3 -c`; the az JSON or the records come on
# stdin. Exit 0: the answer on stdout, one item a line; exit 1: the error message on
# stdout (a crash prints nothing there, its traceback on stderr).
#   read NAME VM   az's run command with its instance view -> the run command's record
#                  {"checks": [...], "manifest": {...} or null}, then its counts for the log
#   summarize VM   the records, one a line -> the summary line, "passed" or "failed",
#                  then the counts (passed) or the failed checks' names (failed)
collect_program() {
  cat <<'PY'
import json
import sys


def json_objects(text):
    """The JSON objects among the lines of text. Anything else is skipped: text Azure
    puts before the output, or a first line cut short when Azure keeps only the end of
    a long output."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def is_failed(check):
    # ok is true (passed) or null (skipped); anything else is not a pass.
    return check["ok"] is not True and check["ok"] is not None


def tail(text, count=10):
    lines = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
    return "\n".join(lines[-count:]) if lines else "(empty)"


def counts(checks):
    failed = sum(1 for c in checks if is_failed(c))
    skipped = sum(1 for c in checks if c["ok"] is None)
    passed = len(checks) - failed - skipped
    noun = "check" if len(checks) == 1 else "checks"
    return f"{len(checks)} {noun}: {passed} passed, {failed} failed, {skipped} skipped"


def compact(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def read(name, vm):
    where = f"run command '{name}' on VM '{vm}'"
    try:
        view = json.load(sys.stdin).get("instanceView")
    except (ValueError, AttributeError):
        view = None
    if not isinstance(view, dict):
        print(f"az printed no instance view for {where}")
        return 1
    state, code = view.get("executionState"), view.get("exitCode")
    if state != "Succeeded" or code != 0 or isinstance(code, bool):
        said = f"; Azure says: {view['executionMessage']}" if view.get("executionMessage") else ""
        shown = "none" if code is None else code
        print(
            f"{where} did not succeed (execution state '{state}', exit code {shown}{said});"
            f" VM '{vm}' is left running for inspection. The end of its error output:\n"
            + tail(view.get("error"))
        )
        return 1
    checks, manifest = [], None
    for obj in json_objects(view.get("output") or ""):
        if isinstance(obj.get("check"), str):
            checks.append(
                {
                    "check": obj["check"],
                    "detail": obj.get("detail", ""),
                    "ok": obj.get("ok", False),
                    "runCommand": name,
                }
            )
        elif isinstance(obj.get("manifest"), dict):
            manifest = obj["manifest"]
    if not checks:
        print(
            f"{where} printed no check line (no {{\"check\": ...}} JSON line in the output"
            f" Azure kept); VM '{vm}' is left as it is. A deallocated VM's run commands"
            f" report no output: if it is off, start it (az vm start) and run pulumi up"
            f" again. The end of its output:\n"
            + tail(view.get("output"))
        )
        return 1
    print(compact({"checks": checks, "manifest": manifest}))
    print(counts(checks))
    return 0


def summarize(vm):
    checks, manifest = [], {}
    for line in sys.stdin.read().splitlines():
        record = json.loads(line)
        checks += record["checks"]
        if record["manifest"] is not None:
            manifest = record["manifest"]
    failed = [c["check"] for c in checks if is_failed(c)]
    result = "failed" if failed else "passed"
    print(compact({"checks": checks, "manifest": manifest, "result": result, "testVm": vm}))
    print(result)
    print(", ".join(failed) if failed else counts(checks))
    return 0


action, *args = sys.argv[1:]
sys.exit(read(*args) if action == "read" else summarize(*args))
PY
}

# Deallocates the test VM after a passed validation, so it stops costing compute.
stop_test_vm() {
  if [[ $KEEP_RUNNING == 1 ]]; then
    log "VALIDATION_KEEP_RUNNING=1: leaving test VM '$VM' running"
    return 0
  fi
  read_instance_view
  if [[ $POWER_STATE == deallocated ]]; then
    log "VM '$VM' is already deallocated; skipping deallocate"
    return 0
  fi
  log "deallocating test VM '$VM' (power state '$POWER_STATE') so it stops costing compute"
  az_retry "deallocating VM '$VM'" \
    vm deallocate --resource-group "$RESOURCE_GROUP" --name "$VM"
  log "VM '$VM' is deallocated"
}

KEEP_RUNNING=0
collect() {
  # `pulumi up` reads the summary from stdout: from here on stdout is stderr, and the
  # summary alone goes to the real stdout, kept as fd 3.
  exec 3>&1 1>&2

  read_retry_settings
  KEEP_RUNNING=${VALIDATION_KEEP_RUNNING:-0}
  if [[ $KEEP_RUNNING != 0 && $KEEP_RUNNING != 1 ]]; then
    usage_error "VALIDATION_KEEP_RUNNING must be '0' or '1', got '$KEEP_RUNNING'"
  fi
  resolve_login_mode
  require_az
  if ! command -v python3 >/dev/null 2>&1; then
    fail 1 "python3 is not on PATH; capture.sh collect needs it to read the run commands' JSON output"
  fi
  prepare_login

  local program name out rc summary result detail
  local -a records=()
  program=$(collect_program)
  for name in "${RUN_COMMANDS[@]}"; do
    az_retry "reading run command '$name' on VM '$VM'" \
      vm run-command show --resource-group "$RESOURCE_GROUP" --vm-name "$VM" --name "$name" \
      --instance-view --output json
    rc=0
    out=$(python3 -c "$program" read "$name" "$VM" <<<"$AZ_OUT") || rc=$?
    if [[ $rc -ne 0 && -n $out ]]; then
      fail 1 "$out"
    elif [[ $rc -ne 0 ]]; then
      fail 1 "python3 could not read run command '$name' on VM '$VM' (exit $rc); its error is above"
    fi
    records+=("${out%%$'\n'*}")
    log "run command '$name' on VM '$VM' exited 0: ${out#*$'\n'}"
  done

  rc=0
  out=$(printf '%s\n' "${records[@]}" | python3 -c "$program" summarize "$VM") || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail 1 "python3 could not summarize the run commands of VM '$VM' (exit $rc); its error is above"
  fi
  {
    IFS= read -r summary
    IFS= read -r result
    IFS= read -r detail
  } <<<"$out"
  printf '%s\n' "$summary" >&3

  if [[ $result != passed ]]; then
    log "leaving test VM '$VM' running so that an operator can inspect it"
    fail 1 "validation failed on VM '$VM': $detail"
  fi
  log "validation passed on VM '$VM': $detail"
  stop_test_vm
}

delete() {
  log "delete: leaving VM '$VM' in resource group '$RESOURCE_GROUP' untouched;" \
    "a generalized VM cannot be un-generalized, and deleting the VM resource removes it"
}

main() {
  parse_args "$@"
  case $ACTION in
    capture) capture ;;
    collect) collect ;;
    delete) delete ;;
  esac
}

main "$@"
