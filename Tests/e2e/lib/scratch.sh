# Sourced by the e2e tests. Every app they start is given INTERNVL_CHAT_CONVERSATIONS inside the
# test's scratch folder, and an app signalled as its terminal goes saves there as it ends, so the
# folder is removed only once no process with that setting is left (at most 10 s).

remove_scratch() {  # remove_scratch DIR
  local dir=$1 i
  for ((i = 0; i < 100; i++)); do
    grep -qzF "INTERNVL_CHAT_CONVERSATIONS=$dir/" /proc/[0-9]*/environ 2>/dev/null || break   # -q: 0 on a match despite unreadable entries
    sleep 0.1
  done
  rm -rf "$dir"
}
