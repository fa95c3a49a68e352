# Sourced by the xterm tests (from the repository's root, BIN and MODEL set): xterm_test NAME
# makes WORK (a scratch folder, kept when a check fails) and LOG (the app's log) and sets fail()'s
# report; start_app TITLE runs the app in xterm once xterm answers (one retry if it dies first);
# XT and XVFB are the processes stop_xterm ends.

source Tests/e2e/lib/scratch.sh

xterm_test() {  # xterm_test NAME: WORK, LOG, and the cleanup when the script exits
  TEST_NAME=$1
  WORK=$(mktemp -d); LOG=$WORK/app.log
  trap 'stop_xterm; [ "${KEEP:-}" = 1 ] && echo "kept $WORK" || remove_scratch "$WORK"' EXIT
}

fail() { echo "FAIL: $1"; echo "--- log:"; tail -20 "$LOG" 2>/dev/null || true; echo "$TEST_NAME: 0 passed, 1 failed"; KEEP=1; exit 1; }

start_app() {  # start_app TITLE: the app on MODEL in xterm, logging to LOG, conversations in WORK
  start_xterm "$1" env LANG=C.UTF-8 INTERNVL_CHAT_LOG="$LOG" INTERNVL_CHAT_CONVERSATIONS="$WORK/conversations" XDG_STATE_HOME="$WORK/state" \
    "$BIN" chat --model "$MODEL" --max-new-tokens 6
}

# Run inside xterm before COMMAND: asks the terminal for its attributes (DA1) and waits up to 30 s
# for the reply, then marks READY and runs COMMAND. The app's own probe waits 0.3 s for that
# reply; an xterm still starting on a loaded machine answers later, and the app would fall back
# to half-blocks.
TERMINAL_READY='ready=$1; shift; saved=$(stty -g); stty raw -echo; printf "\033[c"
IFS= read -r -s -d c -t 30 reply; status=$?; stty "$saved"; [ "$status" = 0 ] || exit 3
: > "$ready"; exec "$@"'

start_xvfb() {  # a new Xvfb on a display it picks (-displayfd: a random number could be another test's), DISPLAY set
  Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$WORK/display" >"$WORK/xvfb.log" 2>&1 & XVFB=$!
  local i
  for ((i = 0; i < 300; i++)); do [ -s "$WORK/display" ] && break; kill -0 "$XVFB" 2>/dev/null || break; sleep 0.1; done
  [ -s "$WORK/display" ] || fail "Xvfb did not start: $(tail -3 "$WORK/xvfb.log" | tr '\n' ' ')"
  export DISPLAY=:$(head -1 "$WORK/display")
  for ((i = 0; i < 300; i++)); do xdpyinfo >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "Xvfb's display $DISPLAY did not accept connections: $(tail -3 "$WORK/xvfb.log" | tr '\n' ' ')"
}

start_xterm() {  # start_xterm TITLE COMMAND...: COMMAND in xterm -ti vt340 (sixel) on a new Xvfb, once xterm answers
  local title=$1 attempt status why=; shift
  start_xvfb
  for attempt in 1 2; do
    rm -f "$WORK/ready"
    xterm -ti vt340 -xrm 'XTerm*numColorRegisters: 256' -xrm 'XTerm*sixelScrolling: true' \
      -xrm 'XTerm*allowWindowOps: true' -geometry 100x18+0+0 -fa Monospace -fs 11 -title "$title" \
      -e bash -c "$TERMINAL_READY" bash "$WORK/ready" "$@" 2>"$WORK/xterm.log" & XT=$!
    for _ in $(seq 400); do [ -e "$WORK/ready" ] && break; kill -0 "$XT" 2>/dev/null || break; sleep 0.1; done
    if [ -e "$WORK/ready" ]; then
      xdotool mousemove 300 300                 # no window manager: focus follows the pointer
      return 0
    fi
    if kill -0 "$XT" 2>/dev/null; then
      why="xterm did not answer its attributes within 40 s"; kill "$XT" 2>/dev/null || true; wait "$XT" 2>/dev/null || true
    else
      status=0; wait "$XT" || status=$?
      why="xterm exited early (status $status)"
    fi
    why="$why: $(tail -3 "$WORK/xterm.log" | tr '\n' ' ')"
    [ "$attempt" = 1 ] && echo "$TEST_NAME: $why; starting xterm once more"
  done
  fail "$why"
}

stop_xterm() {
  [ -n "${XT:-}" ] && kill "$XT" 2>/dev/null || true
  [ -n "${XVFB:-}" ] && kill "$XVFB" 2>/dev/null || true
}

wait_log() {  # wait_log REGEX [timeout_s]: a log line matching REGEX appears
  local i
  for ((i = 0; i < ${2:-20} * 10; i++)); do grep -qE -- "$1" "$LOG" 2>/dev/null && return 0; sleep 0.1; done
  fail "timeout waiting for log: $1"
}

wait_sixel() {  # the app has started and found sixel in its terminal (said at once when it did not)
  wait_log 'terminal .* graphics ' 60
  grep -q 'graphics sixel' "$LOG" || fail "the app did not find sixel: $(grep -o 'graphics .*' "$LOG" | head -1)"
}
