#!/usr/bin/env bash
# End-to-end test of the full-screen app in tmux with a tiny model: start, type and paste ZWJ
# emoji (drawn as their parts, the text around them intact), word moves and Alt-Backspace, F1
# (the draft stays), Home in a long paste (the input pane shows its start), type a question, see
# the answer stream in, attach an image by path and by a bracketed paste of a quoted path (a pasted
# path of a text file is typed), pasted text holding the end-of-paste marker (its line break does not
# send), an invalid UTF-8 byte in a paste (U+FFFD, the rest kept), re-cut one image's tiles, Tab-complete a path, attach during a long answer (queued), stop
# it with Esc (the image then attached), resize (side panel ->
# one line, then too small -> message, then back), quit with Ctrl-D, and check that the terminal
# is sane afterwards (canonical mode and echo restored); --resume reloads it; the terminal is
# also restored after SIGTERM, SIGHUP and SIGSEGV (after SIGTERM and SIGHUP the draft is saved,
# before a first turn too, and --resume brings it back); with COLORTERM=truecolor thumbnails are in 24-bit colour;
# keys typed while the app starts are kept, late replies to the graphics probe are not typed.
set -euo pipefail
BIN=${BIN:-.build/debug/internvl-chat}; MODEL=${MODEL:-testdata/tiny-b}
IMG="$PWD/testdata/images/photo-chelsea.png"
S=tuitest-$$; SOCK=(-L "tuitest-$$")
WORK=$(mktemp -d); LOG=$WORK/app.log
export LANG=C.UTF-8 XDG_STATE_HOME=$WORK/state        # the input history in the scratch folder
source Tests/e2e/lib/scratch.sh
trap 'tmux "${SOCK[@]}" kill-server 2>/dev/null || true; remove_scratch "$WORK"' EXIT
tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
  "env TERM=tmux-256color INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN chat --model $MODEL --max-new-tokens 24; echo EXIT=\$?; stty -a | grep -qE '(^| )icanon( |$)' && stty -a | grep -qE '(^| )echo( |$)' && echo SANE; sleep 30"
fail() { echo "FAIL: $1"; tmux "${SOCK[@]}" capture-pane -p -t "$S"; echo "tui e2e: 0 passed, 1 failed"; exit 1; }
source Tests/e2e/lib/tmux.sh
wait_for 'context 0/8192'
for k in 'I am a ' '👩' $'\u200d' '💻' ' dev'; do keys -l "$k"; done    # a joiner typed key by key
tmux "${SOCK[@]}" set-buffer -- ' 👨‍👩‍👧 ok'; tmux "${SOCK[@]}" paste-buffer -p -t "$S"   # and pasted
wait_for '^> I am a 👩💻 dev 👨👩👧 ok'
keys Up; keys Down                                     # no history yet: the draft stays
keys C-u
wait_for '^> Ask about an image'        # empty again: the first screen's hint
before=$(tmux "${SOCK[@]}" capture-pane -p -e -t "$S" | tail -1)
keys -l '/theme light'; keys Enter                     # themes switch while running: the status bar's colours change
wait_for 'Theme light\.'
[ "$(tmux "${SOCK[@]}" capture-pane -p -e -t "$S" | tail -1)" != "$before" ] || fail "the status bar kept its colours after /theme light"
keys -l '/theme nosuch'; keys Enter
wait_for 'No theme nosuch: built in are dark'
keys -l 'one two three'; keys C-Left; keys M-BSpace; keys M-f; keys -l '!'   # word moves and Alt-Backspace as tmux sends them
wait_for '^> one three!'
keys F1                                                 # the help, the draft left in the input (not sent with /help)
wait_for 'Enter sends, Alt-Enter or Ctrl-J adds a line'
wait_for '^> one three!'
keys C-u
tmux "${SOCK[@]}" set-buffer -- "$(seq -f 'pasted line %g' 1 40)"; tmux "${SOCK[@]}" paste-buffer -p -t "$S"
wait_for '^  pasted line 40'
keys Home                                               # the input pane follows the cursor to the first line
wait_for '^> pasted line 1$'
keys C-e; keys C-u
wait_gone 'pasted line'
keys C-y                                                # what Ctrl-U cut comes back
wait_for '^  pasted line 40'
keys C-u
keys -l "$(seq -f 'w%04g' 0 449 | tr '\n' ' ')END"      # 2,700 keys in one burst (no bracketed paste): all, in order
wait_for '^  w0448 w0449 END'
keys C-u
printf 'notes\n' > "$WORK/notes.txt"
tmux "${SOCK[@]}" set-buffer -- "$WORK/notes.txt"; tmux "${SOCK[@]}" paste-buffer -p -t "$S"   # a pasted path of no image: typed
wait_for '^> /.*/notes\.txt$'
keys C-u
# Pasted text holding the end-of-paste marker: tmux passes it on, so the paste seems to end there;
# the line break after it must not send "onetwo" (the keys right after a paste are more of it).
tmux "${SOCK[@]}" set-buffer -- $'one\e[201~two\nthree'; tmux "${SOCK[@]}" paste-buffer -p -t "$S"
wait_for '^  three$'
wait_for '^> onetwo$'
sleep 0.3
tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -q '^You' && fail "a line break pasted after an end-of-paste marker sent the text"
grep -q 'the paste went on past an end-of-paste marker' "$LOG" || fail "the log should say the paste went on past its marker"
keys C-e; keys C-u
wait_gone 'onetwo'
# An invalid UTF-8 byte inside a paste (a Latin-1 file's byte): one U+FFFD, and the text after it
# and the end-of-paste marker still read (curses' get_wch took them with the invalid byte).
keys -H 1b 5b 32 30 30 7e 61 62 63 ff 64 65 66 0d 67 68 69 1b 5b 32 30 31 7e
wait_for '^> abc�def$'
wait_for '^  ghi$'
sleep 0.3
keys C-u                                               # a key of its own again: the input emptied
wait_gone 'abc�def'
keys -l $'Hello there\r'                                # typed with Enter in one burst: sent
wait_for '^InternVL'
wait_for 'tok/s'
keys -l "/attach $IMG"; keys Enter
wait_for '1\. photo-chelsea\.png'
keys -l "/attach $IMG"; keys Enter                     # the same image again: not attached twice
wait_for 'photo-chelsea\.png is already attached'
cp testdata/images/photo-coffee.png "$WORK/my coffee.png"
tmux "${SOCK[@]}" set-buffer -- "'$WORK/my coffee.png'"   # a pasted, quoted path (bracketed paste): attached
tmux "${SOCK[@]}" paste-buffer -p -t "$S"
wait_for '2\. my coffee\.png'
keys -l '/tiles 2 1'; keys Enter                       # image 2 re-cut to one tile: preview, then the new grid
wait_for 'Re-cutting my coffee\.png: 1x1 = 1'
wait_for '^2\. my coffee\.png|1x1 = 1 tile *$'
keys -l '/tiles 2'; keys Enter
wait_for 'at most 2 tiles'
keys -l "/attach $PWD/testdata/images/photo-chel"; keys Tab   # Tab completes the path (two matches: a hint line)
wait_for '> /attach .*photo-chelsea\.'
keys C-u
keys -l '/set max_tokens 100000'; keys Enter
wait_for 'max_tokens = 100000'
keys -l '/set min_tokens 100000'; keys Enter            # the stop tokens are never drawn: it runs until Esc
wait_for 'min_tokens = 100000'
keys -l '/set temperature 1'; keys Enter                # sampled: seconds of answer to stop
wait_for 'temperature = 1'
keys -l 'Tell me a long story'; keys Enter             # a long answer, stopped with Esc
wait_for 'answering'
keys -l "/attach $IMG"; keys Enter                     # (the others went with the story): attached after the answer
wait_for 'Attaching photo-chelsea\.png when the answer ends\.'
wait_for '1 file queued to attach'
keys Escape
wait_for '\(interrupted\)'
grep -q 'turn finished: .*interrupted' "$LOG" || fail "the log should record the interrupted turn"
wait_for '1\. photo-chelsea\.png'
tmux "${SOCK[@]}" resize-window -t "$S" -x 70 -y 20    # narrower: the image list becomes one line
wait_for '1: photo-chelsea\.png 451x300, 3 tiles'
tmux "${SOCK[@]}" resize-window -t "$S" -x 30 -y 8
wait_for 'Terminal too small \(30x8\)'
tmux "${SOCK[@]}" resize-window -t "$S" -x 100 -y 30
wait_for 'Next message'
keys C-d                                                # an image is attached: it asks first
wait_for '1 attached image saved with the conversation\)\? Press y'
keys -l 'y'
wait_for 'EXIT=0'
wait_for 'SANE' 5

# Saved after every answer: --resume brings the conversation back, images included, and goes on.
OLD=$S; S=$S-resume                 # the new session first: killing the last one stops the server
tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
  "env TERM=tmux-256color INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN chat --resume --model $MODEL --max-new-tokens 8; sleep 30"
tmux "${SOCK[@]}" kill-session -t "$OLD"
wait_for 'Loaded 2026|Loaded [0-9]{8}-'
wait_for '\(interrupted\)'                          # the tail: the stopped story
wait_for 'Next message'
tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -A1 'Next message' | grep -q '1\. photo-chelsea\.png' \
  || fail "the image attached and not sent should come back for the next message"
for _ in $(seq 100); do grep -q 'loaded .*: 2 turns, 2/2 images from stored vision tokens' "$LOG" && break; sleep 0.1; done
grep -q 'loaded .*: 2 turns, 2/2 images from stored vision tokens' "$LOG" || fail "the images should come back from the stored vision tokens (log)"
keys Up                                                # the input history outlives the process: the last input sent
wait_for '^> /attach /'
keys C-u
for _ in 1 2 3 4 5 6; do keys PPage; done              # the top: the first question and both images
wait_for 'Hello there'
wait_for '\[my coffee\.png\]'
for _ in 1 2 3 4 5 6; do keys NPage; done
keys -l '/save coffee chat'; keys Enter
wait_for 'Saved as coffee chat'
keys -l 'And then?'; keys Enter
for _ in $(seq 100); do grep -q 'saved .*(3 turns)' "$LOG" && break; sleep 0.1; done
grep -q 'saved .*(3 turns)' "$LOG" || fail "the answer after --resume should be saved (log)"
keys -l '/list'; keys Enter
wait_for 'coffee chat .* 3 turns, 2 images'
# /load of another conversation saves this one first, with the image attached and not yet sent:
# loading this one back brings that image back for the next message.
keys -l '/new'; keys Enter; keys -l 'Other'; keys Enter
wait_gone 'answering'
keys -l '/save other'; keys Enter
wait_for 'Saved as other'
keys -l "/attach $IMG"; keys Enter
wait_for '1\. photo-chelsea\.png'
keys -l '/load coffee chat'; keys Enter
wait_for 'coffee chat │'
keys -l '/load other'; keys Enter
wait_for 'other │'
wait_for 'Next message'
tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -A1 'Next message' | grep -q '1\. photo-chelsea\.png' \
  || fail "the image attached before /load should come back with its conversation"
keys -l '/load coffee chat'; keys Enter
wait_for 'coffee chat │'
mkdir -p "$WORK/conversations/20260101-000000-abcd"            # a damaged conversation: refused, the app goes on
printf '{"format": "internvl-chat conversation", "version": 1, "turns": [' > "$WORK/conversations/20260101-000000-abcd/conversation.json"
keys -l '/load 20260101-000000-abcd'; keys Enter
wait_for 'not complete JSON'
wait_for 'coffee chat │'
keys C-d

# Killed by SIGTERM, or crashing (SIGSEGV), after a turn (or before any): the terminal is restored too.
killed() {  # killed SIGNAL EXIT_STATUS [first]: with "first", before a first turn; the draft is "unsent draft SIGNAL[ first]"
  local old=$S; S=$S-$1${3:-}         # the new session first: killing the last one stops the server
  tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
    "env TERM=tmux-256color INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN chat --model $MODEL --max-new-tokens 24; echo EXIT=\$?; stty -a | grep -qE '(^| )icanon( |$)' && stty -a | grep -qE '(^| )echo( |$)' && echo SANE; sleep 30"
  tmux "${SOCK[@]}" kill-session -t "$old" 2>/dev/null || true
  wait_for 'context 0/8192'
  if [ -z "${3:-}" ]; then
    keys -l 'Hello'; keys Enter
    wait_for 'tok/s'
  fi
  keys -l "unsent draft $1${3:+ $3}"
  wait_for "^> unsent draft $1${3:+ $3}"
  local app; app=$(pgrep -P "$(tmux "${SOCK[@]}" display-message -p -t "$S" '#{pane_pid}')" -f internvl-chat)
  kill "-$1" "$app"
  wait_for "EXIT=$2"
  wait_for 'SANE' 5
}
saved_draft() {  # saved_draft TEXT: some saved conversation holds TEXT as its draft; prints its id
  python3 - "$WORK/conversations" "$1" <<'PY'
import glob, json, os, sys
def draft(f):
    try: return json.load(open(f)).get("draft")
    except ValueError: return None            # the broken file an earlier step made
found = [f for f in glob.glob(sys.argv[1] + "/*/conversation.json") if draft(f) == sys.argv[2]]
print(*(os.path.basename(os.path.dirname(f)) for f in found[:1]))
sys.exit(0 if found else 1)
PY
}
killed TERM 143
saved_draft 'unsent draft TERM' >/dev/null || fail "SIGTERM: the draft was not saved"
killed HUP 129                        # the terminal closed
saved_draft 'unsent draft HUP' >/dev/null || fail "SIGHUP: the draft was not saved"
# Before a first turn the draft is all there is: it is saved too, and --resume brings it back.
for sig in TERM:143 HUP:129; do
  killed "${sig%:*}" "${sig#*:}" first
  id=$(saved_draft "unsent draft ${sig%:*} first") || fail "SIG${sig%:*} before a first turn: the draft was not saved"
  OLD=$S; S=$S-resume
  tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
    "env TERM=tmux-256color INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN chat --resume $id --model $MODEL; sleep 30"
  tmux "${SOCK[@]}" kill-session -t "$OLD" 2>/dev/null || true
  wait_for "^> unsent draft ${sig%:*} first"
done
killed SEGV 139

# 24-bit colour (COLORTERM=truecolor): half-block thumbnails reach tmux in the image's exact
# colours (the orange quadrant, 250,140,20, is in no palette); without it, in 256 colours.
truecolour() {  # truecolour COLORTERM: prints the panel's cells with their colours
  local old=$S; S=$S-c$1
  tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
    "env TERM=tmux-256color COLORTERM=$1 INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN chat --model $MODEL; sleep 30"
  tmux "${SOCK[@]}" kill-session -t "$old" 2>/dev/null || true
  wait_for 'context 0/8192'
  keys -l "/attach $WORK/quadrants.png"; keys Enter
  wait_for '1\. quadrants\.png'
  local i out                             # the thumbnail's orange, in either colour depth, drawn
  for ((i = 0; i < 100; i++)); do
    out=$(tmux "${SOCK[@]}" capture-pane -p -e -t "$S")
    echo "$out" | grep -qE '38;(2;250;140;20|5;208)' && break; sleep 0.1
  done
  echo "$out"
}
python3 Tests/e2e/check-sixel.py make-image "$WORK/quadrants.png"
truecolour truecolor | grep -q '38;2;250;140;20' || fail "COLORTERM=truecolor: the thumbnail's exact orange should reach tmux"
grep -q 'pixels: direct' "$LOG" || fail "COLORTERM=truecolor should be logged as direct colour"
out=$(truecolour none)
echo "$out" | grep -q '38;2;' && fail "without COLORTERM the thumbnail should use the 256-colour palette"
echo "$out" | grep -q '38;5;208' || fail "without COLORTERM the orange should be palette colour 208"
# Keys typed while the app starts, before its graphics probe asks the terminal (outside tmux's
# name, so that it asks): the draft's first keys, a cursor key in the terminal's other mode
# included; tmux answers the probe (no sixel).
old=$S; S=$S-ahead
tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 100 -y 30 \
  "env -u TMUX TERM=xterm-256color INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations sh -c 'sleep 1; exec $BIN chat --model $MODEL'; sleep 30"
tmux "${SOCK[@]}" kill-session -t "$old" 2>/dev/null || true
keys -l 'hello wörld c'; keys Left Left; keys -l 'AB'
wait_for '^> hello wörldAB c$'
grep -q 'graphics blocks: DA1 without sixel' "$LOG" || fail "the graphics probe should have asked the terminal"
# Replies to the probe that come after its timeout (a slow link) are no typing; a cursor key in
# the other mode is still one.
keys -l $'\e[?62;4c'; keys -l 'Z'; keys -l $'\e[6;22;11t'; keys -l $'\e[D'; keys -l 'Y'
wait_for '^> hello wörldABYZ c$'
# Home and End as tmux sends them for TERM=xterm-256color (its terminfo names other sequences).
keys Home; keys -l '<'; keys End; keys -l '>'; keys -l $'\e[7~'; keys -l '['; keys -l $'\e[8~'; keys -l ']'
wait_for '^> \[<hello wörldABYZ c>\]$'
echo "tui e2e: 1 passed, 0 failed"
