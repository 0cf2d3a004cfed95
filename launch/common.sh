# Sourced by the launch scripts: errors, shell quoting, and commands that honour DRY_RUN.
# shellcheck shell=bash

die() {
  echo "${0##*/}: $*" >&2
  exit 2
}

# Prints one argument as a shell word that pastes back to the same argument.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  elif [[ $1 =~ ^(--[A-Za-z0-9_.-]+=)(.*)$ ]]; then
    printf '%s%s' "${BASH_REMATCH[1]}" "$(quote "${BASH_REMATCH[2]}")"
  else
    local escaped=${1//\'/\'\\\'\'}
    printf "'%s'" "$escaped"
  fi
}

quote_all() {
  local words=() arg
  for arg in "$@"; do words+=("$(quote "$arg")"); done
  echo "${words[*]}"
}

show() {
  echo "+ $(quote_all "$@")"
}

# With DRY_RUN=1 prints the command; otherwise prints it to stderr and runs it.
run() {
  if [[ ${DRY_RUN:-0} == 1 ]]; then show "$@"; else show "$@" >&2; "$@"; fi
}
