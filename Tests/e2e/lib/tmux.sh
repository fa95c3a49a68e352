# Sourced by the tmux tests. The caller sets SOCK (tmux's -L arguments, an array), S (the
# session) and defines fail().

wait_for() {  # wait_for REGEX [timeout_s]: the pane shows a line matching REGEX
  local re=$1 t=${2:-30} i
  for ((i = 0; i < t * 10; i++)); do
    tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -qE -- "$re" && return 0; sleep 0.1
  done
  fail "timeout waiting for: $re"
}

keys() { tmux "${SOCK[@]}" send-keys -t "$S" "$@"; }

wait_gone() {  # wait_gone REGEX [timeout_s]: no line of the pane matches REGEX
  local re=$1 t=${2:-30} i
  for ((i = 0; i < t * 10; i++)); do
    tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -qE -- "$re" || return 0; sleep 0.1
  done
  fail "timeout waiting for this to go: $re"
}
