#!/usr/bin/env bash
# The app in tmux against a hostile OpenAI server (Tests/RemoteBackendTests/openai_test_server.py on
# loopback, killed by trap): an error carrying escape sequences is one message with them made
# visible (no OSC reaches the terminal, the title is not set); a stream cut mid-answer keeps the
# text that came, marked interrupted, with one message.
set -euo pipefail
BIN=${BIN:-.build/debug/internvl-chat}
S=hostiletest-$$; SOCK=(-L "hostiletest-$$"); WORK=$(mktemp -d); export LANG=C.UTF-8 XDG_STATE_HOME=$WORK/state
SERVER=
source Tests/e2e/lib/scratch.sh
trap 'tmux "${SOCK[@]}" kill-server 2>/dev/null || true; [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; remove_scratch "$WORK"' EXIT
python3 Tests/RemoteBackendTests/openai_test_server.py --lifetime 60 > "$WORK/port" & SERVER=$!
for _ in $(seq 300); do [ -s "$WORK/port" ] && break; kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
PORT=$(cat "$WORK/port")
[ -n "$PORT" ] || { echo "FAIL: the test server did not start"; echo "hostile server tui e2e: 0 passed, 1 failed"; exit 1; }
tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
  "env TERM=tmux-256color INTERNVL_CHAT_CONVERSATIONS=$WORK/c $BIN --endpoint http://127.0.0.1:$PORT --remote-model test-model 2>$WORK/err; echo EXIT=\$?; sleep 30"
fail() { echo "FAIL: $1"; tmux "${SOCK[@]}" capture-pane -p -t "$S"; echo "hostile server tui e2e: 0 passed, 1 failed"; exit 1; }
source Tests/e2e/lib/tmux.sh
wait_for 'context 0/'
keys -l 'hello #status500'; keys Enter
wait_for 'engine exploded'
wait_for '␛\[31mred␛\[0m ␛\]0;title␇ here'
tmux "${SOCK[@]}" capture-pane -p -e -t "$S" | grep -q $'\x1b\\]0;title' && fail "an OSC from the server reached the terminal"
tmux "${SOCK[@]}" display-message -p -t "$S" '#{pane_title}' | grep -q title && fail "the server set the window title"
wait_for '^> hello #status500'                          # failed before its first token: the question is back in the input
keys C-u
keys -l 'cut #drop'; keys Enter
wait_for 'closed before the'
wait_for '^  echo: cut'
wait_for '\(interrupted\)'
keys C-d
wait_for 'EXIT=0'
echo "hostile server tui e2e: 1 passed, 0 failed"
