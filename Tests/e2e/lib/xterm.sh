# Sourced by the xterm tests (from the repository's root, BIN and MODEL set): xterm_test NAME
# makes WORK (a scratch folder, kept when a check fails) and LOG (the app's log) and sets fail()'s
# report; start_app TITLE runs the app in xterm; XT and XVFB are the processes stop_xterm ends.

xterm_test() {  # xterm_test NAME: WORK, LOG, and the cleanup when the script exits
  TEST_NAME=$1
  WORK=$(mktemp -d); LOG=$WORK/app.log
  trap 'stop_xterm; [ "${KEEP:-}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"' EXIT
}

fail() { echo "FAIL: $1"; echo "--- log:"; tail -20 "$LOG" 2>/dev/null || true; echo "$TEST_NAME: 0 passed, 1 failed"; KEEP=1; exit 1; }

start_app() {  # start_app TITLE: the app on MODEL in xterm, logging to LOG, conversations in WORK
  start_xterm "$1" env LANG=C.UTF-8 INTERNVL_CHAT_LOG="$LOG" INTERNVL_CHAT_CONVERSATIONS="$WORK/conversations" XDG_STATE_HOME="$WORK/state" \
    "$BIN" chat --model "$MODEL" --max-new-tokens 6
}

start_xterm() {  # start_xterm TITLE COMMAND...: COMMAND in xterm -ti vt340 (sixel) on a new Xvfb
  local title=$1; shift
  # Xvfb picks a free display itself (-displayfd): a random number could be another test's.
  Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$WORK/display" >/dev/null 2>&1 & XVFB=$!
  for _ in $(seq 100); do [ -s "$WORK/display" ] && break; sleep 0.1; done
  export DISPLAY=:$(head -1 "$WORK/display" 2>/dev/null)
  for _ in $(seq 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
  xdpyinfo >/dev/null 2>&1 || fail "Xvfb did not start"
  xterm -ti vt340 -xrm 'XTerm*numColorRegisters: 256' -xrm 'XTerm*sixelScrolling: true' \
    -xrm 'XTerm*allowWindowOps: true' -geometry 100x18+0+0 -fa Monospace -fs 11 -title "$title" -e "$@" & XT=$!
  for _ in $(seq 100); do xdotool search --name "$title" >/dev/null 2>&1 && break; sleep 0.1; done
  xdotool mousemove 300 300                     # no window manager: focus follows the pointer
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
