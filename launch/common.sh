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

# Reads the script's own options wherever they stand (--dry-run, -h/--help, which
# calls the script's usage) and sets DRY_RUN, COMMAND (the first other
# argument) and the array ARGS (the rest, in order). No command: usage, exit 2.
parse_args() {
  DRY_RUN=${DRY_RUN:-0}
  local rest=() arg
  for arg in "$@"; do
    case $arg in
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      *) rest+=("$arg") ;;
    esac
  done
  [[ ${#rest[@]} -gt 0 ]] || { usage >&2; exit 2; }
  COMMAND=${rest[0]}
  ARGS=("${rest[@]:1}")
}

show() {
  echo "+ $(quote_all "$@")"
}

# With DRY_RUN=1 prints the command; otherwise prints it to stderr and runs it.
run() {
  if [[ ${DRY_RUN:-0} == 1 ]]; then show "$@"; else show "$@" >&2; "$@"; fi
}
