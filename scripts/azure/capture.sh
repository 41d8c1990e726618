#!/usr/bin/env bash
# Control-plane half of the capture stage: after the in-guest generalization has
# powered the builder VM off, deallocate it and mark it generalized so a managed
# image can be taken from it.
#
# Usage:
#   capture.sh capture --resource-group RG --vm NAME [--subscription SUB]
#   capture.sh delete  --resource-group RG --vm NAME [--subscription SUB]
#
# capture  waits (bounded) until the VM reports PowerState/stopped or
#          PowerState/deallocated, then `az vm deallocate`, then `az vm generalize`.
#          A VM that is already deallocated skips the deallocate; a VM that is
#          already generalized is left alone. Re-running after a half-finished run
#          therefore converges.
# delete   does nothing to the VM: Azure cannot un-generalize a VM, and the VM
#          resource's own deletion removes it.
#
# Environment (capture only; each must be a positive integer):
#   CAPTURE_STOP_TIMEOUT_SECONDS  how long to wait for the guest to power off (1800)
#   CAPTURE_POLL_SECONDS          interval between power-state reads (15)
#   CAPTURE_MAX_TRIES             attempts per az call on transient errors (6)
#   CAPTURE_BACKOFF_SECONDS       first retry delay; doubles per retry, each wait
#                                 capped at 300 seconds (10)
#
# Exit codes:
#   0  done (or nothing to do)
#   1  az failed: a permanent error (not found, forbidden, not logged in, ...),
#      an error not known to be transient, or transient errors past CAPTURE_MAX_TRIES
#   2  usage error: bad action, flag or environment variable
#   3  the guest never powered off within CAPTURE_STOP_TIMEOUT_SECONDS
set -euo pipefail

readonly PROG="capture.sh"
readonly BACKOFF_CAP_SECONDS=300

# ARM error codes and texts after which a retry can succeed. 409 covers both
# `Conflict` and the compute RP's "another operation is in progress" refusals.
readonly TRANSIENT_PATTERN='TooManyRequests|RequestsThrottled|throttl|\b429\b|Conflict|another operation|OperationPreempted|\b409\b|InternalServerError|InternalExecutionError|ServiceUnavailable|GatewayTimeout|BadGateway|RetryableError|Internal Server Error|Service Unavailable|Bad Gateway|Gateway Time-?out|\b50[0-9]\b|Connection aborted|Connection reset|timed out'
# Errors no retry can fix; checked first so that, say, a 403 mentioning a
# conflicting scope is never retried.
readonly PERMANENT_PATTERN="ResourceNotFound|ResourceGroupNotFound|SubscriptionNotFound|NotFound|\\b404\\b|AuthorizationFailed|Forbidden|\\b403\\b|az login|AADSTS|InvalidAuthenticationToken|ExpiredAuthenticationToken|InvalidSubscriptionId"

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
       $PROG delete  --resource-group RG --vm NAME [--subscription SUB]
EOF
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

parse_args() {
  if [[ $# -eq 0 ]]; then
    usage_error "missing action: expected 'capture' or 'delete'"
  fi
  case $1 in
    capture | delete) ACTION=$1 ;;
    -h | --help)
      usage_text
      exit 0
      ;;
    *) usage_error "unknown action '$1': expected 'capture' or 'delete'" ;;
  esac
  shift

  local seen_rg=0 seen_vm=0 seen_sub=0 flag value
  while [[ $# -gt 0 ]]; do
    flag=$1
    if [[ $flag == --*=* ]]; then
      value=${flag#*=}
      flag=${flag%%=*}
      shift
    else
      case $flag in
        --resource-group | --vm | --subscription)
          if [[ $# -lt 2 || $2 == --* ]]; then
            usage_error "$flag needs a value"
          fi
          value=$2
          shift 2
          ;;
        -h | --help)
          usage_text
          exit 0
          ;;
        *) usage_error "unknown argument '$flag'" ;;
      esac
    fi
    case $flag in
      --resource-group) RESOURCE_GROUP=$value seen_rg=1 ;;
      --vm) VM=$value seen_vm=1 ;;
      --subscription) SUBSCRIPTION=$value seen_sub=1 ;;
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
}

# Prints "transient" or "permanent" for an az error text. Anything not known to
# be transient is permanent: retrying an unknown failure only hides it.
classify_error() {
  local text=$1
  if grep -qiE -- "$PERMANENT_PATTERN" <<<"$text"; then
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

# Runs `az "$@"` for this VM with retries on transient errors. On success the
# command's stdout is in AZ_OUT; on a permanent error or when the tries run out
# the script exits 1 with az's own error text.
AZ_OUT=""
az_retry() {
  local what=$1
  shift
  local -a cmd=("$@" --only-show-errors)
  if [[ -n $SUBSCRIPTION ]]; then
    cmd+=(--subscription "$SUBSCRIPTION")
  fi

  local attempt=1 delay=$BACKOFF_SECONDS rc err kind err_file
  err_file=$(mktemp)
  while true; do
    if AZ_OUT=$(az "${cmd[@]}" 2>"$err_file"); then
      rm -f "$err_file"
      return 0
    else
      rc=$?
    fi
    err=$(<"$err_file")
    [[ -n $err ]] || err="az exited with status $rc and printed no error"
    kind=$(classify_error "$err")
    if [[ $kind == permanent ]]; then
      rm -f "$err_file"
      fail 1 "$what failed (permanent error, not retried):"$'\n'"$err"
    fi
    if [[ $attempt -ge $MAX_TRIES ]]; then
      rm -f "$err_file"
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

capture() {
  STOP_TIMEOUT=$(read_positive_int CAPTURE_STOP_TIMEOUT_SECONDS 1800)
  POLL_SECONDS=$(read_positive_int CAPTURE_POLL_SECONDS 15)
  MAX_TRIES=$(read_positive_int CAPTURE_MAX_TRIES 6)
  BACKOFF_SECONDS=$(read_positive_int CAPTURE_BACKOFF_SECONDS 10)
  if [[ $BACKOFF_SECONDS -gt $BACKOFF_CAP_SECONDS ]]; then
    BACKOFF_SECONDS=$BACKOFF_CAP_SECONDS
  fi

  if ! command -v az >/dev/null 2>&1; then
    fail 1 "the Azure CLI 'az' is not on PATH"
  fi

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

delete() {
  log "delete: leaving VM '$VM' in resource group '$RESOURCE_GROUP' untouched;" \
    "a generalized VM cannot be un-generalized, and deleting the VM resource removes it"
}

main() {
  parse_args "$@"
  case $ACTION in
    capture) capture ;;
    delete) delete ;;
  esac
}

main "$@"
