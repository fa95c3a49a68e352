#!/usr/bin/env bash
# End-to-end test of the full-screen app in tmux with a tiny model: start, type a question, see
# the answer stream in, attach an image by path and by pasted quoted path, resize (side panel ->
# one line, then too small -> message, then back), quit with Ctrl-D, and check that the terminal
# is sane afterwards (canonical mode and echo restored).
set -euo pipefail
BIN=${BIN:-.build/debug/internvl-chat}; MODEL=${MODEL:-testdata/tiny-b}
IMG="$PWD/testdata/images/photo-chelsea.png"
S=tuitest-$$; SOCK=(-L "tuitest-$$")
export LANG=C.UTF-8
trap 'tmux "${SOCK[@]}" kill-server 2>/dev/null || true' EXIT
tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
  "env TERM=tmux-256color $BIN chat --model $MODEL --max-new-tokens 24; echo EXIT=\$?; stty -a | grep -qE '(^| )icanon( |$)' && stty -a | grep -qE '(^| )echo( |$)' && echo SANE; sleep 30"
fail() { echo "FAIL: $1"; tmux "${SOCK[@]}" capture-pane -p -t "$S"; echo "tui e2e: 0 passed, 1 failed"; exit 1; }
wait_for() {  # wait_for REGEX [timeout_s]
  local re=$1 t=${2:-20} i
  for ((i = 0; i < t * 10; i++)); do
    tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -qE -- "$re" && return 0; sleep 0.1
  done
  fail "timeout waiting for: $re"
}
keys() { tmux "${SOCK[@]}" send-keys -t "$S" "$@"; }
wait_for 'context 0/8192'
keys -l 'Hello there'; keys Enter
wait_for '^InternVL'
wait_for 'tok/s'
keys -l "/attach $IMG"; keys Enter
wait_for '1\. photo-chelsea\.png'
keys -l "/attach '$IMG'"; keys Enter                   # a pasted, quoted path: same content, found again
wait_for '2\. photo-chelsea\.png'
keys -l '/tiles 2'; keys Enter
wait_for 'at most 2 tiles'
tmux "${SOCK[@]}" resize-window -t "$S" -x 70 -y 20    # narrower: the image list becomes one line
wait_for '1: photo-chelsea\.png 451x300'
tmux "${SOCK[@]}" resize-window -t "$S" -x 30 -y 8
wait_for 'Terminal too small \(30x8\)'
tmux "${SOCK[@]}" resize-window -t "$S" -x 100 -y 30
wait_for 'Images'
keys C-d
wait_for 'EXIT=0'
wait_for 'SANE' 5
echo "tui e2e: 1 passed, 0 failed"
