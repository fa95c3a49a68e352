#!/usr/bin/env bash
# End-to-end test of a video in the full-screen app in tmux with a tiny model: a pasted
# audio-only file is one error and the typed text stays; /attach of a clip shows its filmstrip
# and frame cost, /frames 4 samples again, the question is asked as Frame1: <image> ..., the sent
# turn shows the clip as one filmstrip (again after --resume), the conversation is saved with the frames as images in its folder and --resume reloads it (frames
# from the stored vision tokens) and answers a follow-up.
set -euo pipefail
BIN=${BIN:-.build/debug/internvl-chat}; MODEL=${MODEL:-testdata/tiny-b}
WORK=$(mktemp -d); LOG=$WORK/app.log
CLIP="$WORK/my clip.mp4"; cp testdata/videos/mpeg4-25fps.mp4 "$CLIP"     # written by Tests/reference/make_videos.py
AUDIO="$WORK/bad-audio-only.wav"; cp testdata/videos/bad-audio-only.wav "$AUDIO"   # a short path: the error line must not wrap
S=; N=0; SOCK=(-L "videotest-$$")
export LANG=C.UTF-8 XDG_STATE_HOME=$WORK/state
source Tests/e2e/lib/scratch.sh
trap 'tmux "${SOCK[@]}" kill-server 2>/dev/null || true; remove_scratch "$WORK"' EXIT
app() {  # app ARGS...: the app in a new session (the old one killed after it)
  local old=$S; N=$((N + 1)); S=run$N           # not a prefix of the old name (tmux matches prefixes)
  tmux "${SOCK[@]}" -u -f /dev/null new-session -d -s "$S" -x 110 -y 34 \
    "env TERM=tmux-256color INTERNVL_CHAT_LOG=$LOG INTERNVL_CHAT_CONVERSATIONS=$WORK/conversations $BIN chat --model $MODEL --max-new-tokens 8 $*; echo EXIT=\$?; sleep 30"
  [ -z "$old" ] || tmux "${SOCK[@]}" kill-session -t "$old" 2>/dev/null || true
}
fail() { echo "FAIL: $1"; tmux "${SOCK[@]}" capture-pane -p -t "$S"; echo "video e2e: 0 passed, 1 failed"; exit 1; }
source Tests/e2e/lib/tmux.sh
app
wait_for 'context 0/8192'
keys -l 'what is said? '
tmux "${SOCK[@]}" set-buffer -- "$AUDIO"; tmux "${SOCK[@]}" paste-buffer -p -t "$S"
wait_for 'bad-audio-only\.wav has no video stream'
wait_for '^> what is said\? *$'
keys C-u
keys -l "/attach '$CLIP'"; keys Enter
wait_for '1\. my clip\.mp4'
wait_for 'my clip\.mp4: 8 frames \(1, 5, 8, 12, 15, 19, 23, 26\), 8 x 1 tile x 4 ='   # tiny-b: 4 tokens a tile
wait_for '8 frames x 1 tile x 4'
wait_for '= 48 tokens *$'
tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -A2 '1\. my clip\.mp4' | grep -q '▀' || fail "the filmstrip should be drawn under the name"
keys -l '/frames 4'; keys Enter
wait_for 'my clip\.mp4: 4 frames \(3, 10, 17, 25\), 4 x 1 tile x 4 ='
wait_for '= 24 tokens *$'
keys -l 'What happens in the clip?'; keys Enter
wait_for 'tok/s'
wait_for '\[my clip\.mp4\]'                      # the turn shows the clip as one filmstrip
wait_for '4 frames, 4 tiles, 24 tokens'
! tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -q 'clip-frame' || fail "the sent frames should be the clip's one entry, not a thumbnail each"
keys -l '/save clip chat'; keys Enter
wait_for 'Saved as clip chat'
dir=$(dirname "$(grep -l '"clip chat"' "$WORK"/conversations/*/conversation.json | head -1)")
[ "$(ls "$dir/images" | wc -l)" = 4 ] || fail "the four sampled frames should be stored in the conversation folder ($(ls "$dir/images" | tr '\n' ' '))"
grep -q 'Frame1: <image>\\nFrame2: <image>\\nFrame3: <image>\\nFrame4: <image>\\nWhat happens in the clip?' "$dir/conversation.json" \
  || fail "the question should be saved as Frame1: <image>\\n... as the model card asks it"
python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["turns"][0]; sys.exit(t["typed"] != "What happens in the clip?")' "$dir/conversation.json" \
  || fail "the turn should keep the question as typed, without the frames' markers"
rm "$CLIP"                                     # the conversation keeps the video's frames, not the file
keys C-d
wait_for 'EXIT=0'
app --resume
wait_for 'Loaded clip chat: 1 turn'
for _ in $(seq 100); do grep -qE 'loaded .*: 1 turns?, 4/4 images from stored vision tokens' "$LOG" && break; sleep 0.1; done
grep -qE 'loaded .*: 1 turns?, 4/4 images from stored vision tokens' "$LOG" || fail "the frames should come back from the stored vision tokens (log)"
wait_for 'What happens in the clip\?'
wait_for '\[my clip\]'                           # found again from the saved question's Frame markers
wait_for '4 frames, 4 tiles, 24 tokens'
! tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -q 'clip-frame' || fail "the reloaded frames should be the clip's one entry"
! tmux "${SOCK[@]}" capture-pane -p -t "$S" | grep -q 'Frame1: <image>' || fail "the reloaded turn should show the question as typed"
keys -l 'And then?'; keys Enter
for _ in $(seq 200); do grep -q 'saved .*(2 turns)' "$LOG" && break; sleep 0.1; done
grep -q 'saved .*(2 turns)' "$LOG" || fail "the follow-up after --resume should be answered and saved (log)"
keys C-d
wait_for 'EXIT=0'
echo "video e2e: 1 passed, 0 failed"
