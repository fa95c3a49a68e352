# Sourced by the xterm tests. The caller sets WORK (a scratch folder) and LOG (the app's log) and
# defines fail(); XT and XVFB are the processes stop_xterm ends.

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
