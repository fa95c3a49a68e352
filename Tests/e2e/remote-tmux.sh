#!/usr/bin/env bash
# The full-screen app in tmux on a model served by our own `serve` in another process (loopback,
# a free port, stopped at the end): an answer streams in, an image is attached and asked about,
# a long answer is stopped with Esc, /save stores the conversation, Ctrl-D leaves a sane terminal.
set -euo pipefail
BIN=${BIN:-.build/debug/internvl-chat}; MODEL=${MODEL:-testdata/tiny-b}
IMG="$PWD/testdata/images/photo-chelsea.png"
S=remotetest-$$; SOCK=(-L "remotetest-$$")
WORK=$(mktemp -d); KEY=remote-tmux-key; export XDG_STATE_HOME=$WORK/state
export LANG=C.UTF-8
SERVER=
source Tests/e2e/lib/scratch.sh
trap 'tmux "${SOCK[@]}" kill-server 2>/dev/null || true; [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; remove_scratch "$WORK"' EXIT
"$BIN" serve --model "$MODEL" --port 0 --api-key "$KEY" 2>"$WORK/serve.log" >/dev/null &
SERVER=$!
for _ in $(seq 600); do grep -qE 'on http://127\.0\.0\.1:[0-9]+/v1' "$WORK/serve.log" && break; sleep 0.1; done
PORT=$(grep -oE 'on http://127\.0\.0\.1:[0-9]+/v1' "$WORK/serve.log" | grep -oE '[0-9]+/v1' | cut -d/ -f1)
[ -n "$PORT" ] || { echo "FAIL: serve did not start"; cat "$WORK/serve.log"; exit 1; }
tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
  "env TERM=tmux-256color INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN --endpoint http://127.0.0.1:$PORT --api-key $KEY --model $MODEL --max-new-tokens 24; echo EXIT=\$?; stty -a | grep -qE '(^| )icanon( |$)' && stty -a | grep -qE '(^| )echo( |$)' && echo SANE; sleep 30"
fail() { echo "FAIL: $1"; tmux "${SOCK[@]}" capture-pane -p -t "$S"; echo "remote tui e2e: 0 passed, 1 failed"; exit 1; }
source Tests/e2e/lib/tmux.sh
LOG=$WORK/state/internvl-chat/internvl-chat.log
finished() {  # finished N: the log has N answers ended (the status bar's tok/s stays from the last one)
  for _ in $(seq 300); do [ "$(grep -c 'turn finished' "$LOG" 2>/dev/null)" -ge "$1" ] && return 0; sleep 0.1; done
  fail "timeout waiting for answer $1 to end"
}
wait_for 'context 0/'
keys -l 'Hello there'; keys Enter
wait_for '^InternVL'
finished 1
keys -l "/attach $IMG"; keys Enter
wait_for '1\. photo-chelsea\.png'
keys -l 'What is in the picture?'; keys Enter
wait_for '\[photo-chelsea\.png\]'
finished 2
keys -l '/set max_tokens 4000'; keys Enter
wait_for 'max_tokens = 4000'
keys -l '/set min_tokens 4000'; keys Enter      # through serve's min_tokens: no early stop before Esc
wait_for 'min_tokens = 4000'
keys -l '/set temperature 1'; keys Enter
wait_for 'temperature = 1'
keys -l 'Tell me a long story'; keys Enter
wait_for 'answering'
keys Escape
wait_for '\(interrupted\)'
keys -l '/save remote chat'; keys Enter
wait_for 'Saved as remote chat'
keys -l '/list'; keys Enter
wait_for 'remote chat .* 3 turns, 1 image'
keys C-d
wait_for 'EXIT=0'
wait_for 'SANE' 5
echo "remote tui e2e: 1 passed, 0 failed"
