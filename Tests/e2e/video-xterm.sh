#!/usr/bin/env bash
# A video's filmstrip in a real sixel terminal (xterm -ti vt340 under Xvfb, as sixel-xterm.sh):
# /attach of a clip whose sampled frames have four known colours; the screenshot shows them
# left to right where the app logged the strip's sixel placement (check-filmstrip.py).
set -euo pipefail
BIN=${BIN:-$PWD/.build/debug/internvl-chat}; MODEL=${MODEL:-$PWD/testdata/tiny-b}
source Tests/e2e/lib/xterm.sh
xterm_test "video xterm e2e"
CLIP=$WORK/colours.mkv
python3 Tests/e2e/check-filmstrip.py make-video "$CLIP"
start_app videotest
wait_sixel
xdotool type --delay 2 -- "/attach $CLIP"; xdotool key Return
wait_log 'sixel placements .*\[-[0-9]+@' 30
sleep 0.8
import -window root "$WORK/filmstrip.png"
[ -n "${SHOT:-}" ] && cp "$WORK/filmstrip.png" "$SHOT"
python3 Tests/e2e/check-filmstrip.py check "$WORK/filmstrip.png" "$LOG" || fail "the filmstrip's frames should show in order"
xdotool key ctrl+d
for _ in $(seq 50); do kill -0 "$XT" 2>/dev/null || break; sleep 0.1; done
echo "video xterm e2e: 1 passed, 0 failed"
