#!/usr/bin/env bash
# Pipeline use: convert every video in a folder and render an orbit of each, from a script.
#
#   examples/batch.sh INPUT_DIR OUTPUT_DIR
#
# - Results are machine-read from --json (one object on stdout); progress is off under --json.
# - Exit status 1 means this input cannot be converted (no face, not a video...): log it, go on.
# - Exit status 130 means Ctrl-C: stop the batch. Run the script again to continue: --resume
#   finishes a half-converted folder and skips one that is complete.
set -uo pipefail
in_dir=${1:?usage: batch.sh INPUT_DIR OUTPUT_DIR}
out_dir=${2:?usage: batch.sh INPUT_DIR OUTPUT_DIR}
mkdir -p "$out_dir"
failed=0
for video in "$in_dir"/*.mp4 "$in_dir"/*.mov "$in_dir"/*.mkv; do
  [ -e "$video" ] || continue
  name=$(basename "${video%.*}")
  result=$(volume convert "$video" -o "$out_dir/$name" --resume --json 2>"$out_dir/$name.log")
  status=$?
  if [ $status -eq 130 ]; then echo "interrupted at $name" >&2; exit 130; fi
  if [ $status -ne 0 ]; then
    echo "skipped $name: $(tail -n 1 "$out_dir/$name.log")" >&2
    failed=$((failed + 1))
    continue
  fi
  frames=$(printf '%s' "$result" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["frames_written"] + r["frames_resumed"])')
  volume render "$out_dir/$name" --orbit 30 -o "$out_dir/$name.mp4" --overwrite --quiet || { failed=$((failed + 1)); continue; }
  echo "$name: $frames frames -> $out_dir/$name.mp4"
done
exit $(( failed > 0 ))
