#!/usr/bin/env bash
# The app in a real sixel terminal: xterm -ti vt340 under Xvfb, driven with xdotool, screenshots
# taken with ImageMagick's import. The app logs where it placed each sixel image (cell rectangle
# and pixel size); Tests/e2e/check-sixel.py checks every screenshot against that log: the image's
# four colour quadrants are where the panel says, and none of their colours appear anywhere else
# (no stray pixels after the image is detached, after it moves when sent, after the conversation
# scrolls it out of view, and after /new).
set -euo pipefail
BIN=${BIN:-$PWD/.build/debug/internvl-chat}; MODEL=${MODEL:-$PWD/testdata/tiny-b}
source Tests/e2e/lib/xterm.sh
xterm_test "sixel e2e"
IMG=$WORK/quadrants.png
python3 Tests/e2e/check-sixel.py make-image "$IMG"
start_app sixeltest
wait_count() {  # wait_count REGEX N: at least N log lines match
  local i
  for ((i = 0; i < 200; i++)); do [ "$(count "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  fail "timeout waiting for $2 x log: $1"
}
count() { grep -cE -- "$1" "$LOG" 2>/dev/null || true; }
wait_placements() {  # wait_placements REGEX [absent]: the app's last placements line matches REGEX (or no longer does)
  local i last
  for ((i = 0; i < 200; i++)); do
    last=$(grep 'sixel placements' "$LOG" 2>/dev/null | tail -1 || true)
    if [ -z "${2:-}" ]; then echo "$last" | grep -qE -- "$1" && return 0; else echo "$last" | grep -qE -- "$1" || return 0; fi
    sleep 0.1
  done
  fail "timeout waiting for the placements${2:+ without}: $1 (last: $last)"
}
type_line() { xdotool type --delay 2 -- "$1"; xdotool key Return; }
shot() {  # shot NAME: screenshot after the last frame settled, checked against the last placements line
  sleep 0.8
  import -window root "$WORK/$1.png"
  python3 Tests/e2e/check-sixel.py check "$WORK/$1.png" "$LOG" "$1" || fail "screenshot $1"
}

wait_sixel
grep -q 'cell 11x22 px from TIOCGWINSZ' "$LOG" || fail "cell size not found from TIOCGWINSZ"

n=$(count 'sixel placements'); type_line "/attach $IMG"
wait_log "attached .*quadrants"; shot attached
grep 'sixel placements' "$LOG" | tail -1 | grep -qE '\[1@[0-9]+,[0-9]+,[0-9]+x[0-9]+=[0-9]+x[0-9]+\]' || fail "one placement expected"

type_line "/detach 1"; wait_placements '\[\]'; shot detached
grep 'sixel placements' "$LOG" | tail -1 | grep -q '\[\]' || fail "no placement expected after /detach"

type_line "/attach $IMG"; wait_count "attached .*quadrants" 2; wait_log "placements .*\[[0-9]+@"
type_line "Describe the picture."; wait_log 'turn finished'; shot sent
# a detached image is released, so the one attached again has a new id: both placements show it
last=$(grep 'sixel placements' "$LOG" | tail -1 | grep -oE '[0-9]+@')
[ "$(echo "$last" | wc -l)" = 2 ] && [ "$(echo "$last" | sort -u | wc -l)" = 1 ] || fail "panel and inline placements expected"
type_line "And the colours?"; wait_count 'turn finished' 2
type_line "And the shapes?"; wait_count 'turn finished' 3

# PgUp: the inline image comes back into view at the top; PgDn: it leaves again.
wait_placements '[0-9]+@2,' absent          # the inline image scrolled out of view (the last answer's frame drawn)
for _ in 1 2 3; do xdotool key Prior; done
wait_placements '[0-9]+@2,'; shot scrolled
grep 'sixel placements' "$LOG" | tail -1 | grep -qE '[0-9]+@2,' || fail "PgUp should bring the inline image back"
for _ in 1 2 3; do xdotool key Next; done
wait_placements '[0-9]+@2,' absent; shot back

type_line "/new"; wait_placements '\[\]'; shot new
grep 'sixel placements' "$LOG" | tail -1 | grep -q '\[\]' || fail "no placement expected after /new"
xdotool key ctrl+d
for _ in $(seq 50); do kill -0 "$XT" 2>/dev/null || break; sleep 0.1; done
echo "sixel e2e: 1 passed, 0 failed"
