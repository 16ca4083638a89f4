#!/usr/bin/env bash
# The bundled example end to end (what `make demo` runs): convert examples/hopper.mp4 into a folder
# of per-frame splats, describe it, render an orbit video with the source frame beside it, and
# export the browser viewer.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/hopper
volume convert examples/hopper.mp4 -o "$out/splats" --overwrite
volume info "$out/splats"
volume render "$out/splats" --orbit 30 --side-by-side -o "$out/orbit.mp4" --overwrite
volume render "$out/splats" --views=-40,-20,0,20,40 --size 256 -o "$out/views.mp4" --overwrite
# The same in the browser, as a folder any web server serves (volume view serves it itself).
volume view "$out/splats" --export "$out/viewer" --side-by-side --quiet
echo "splats: $out/splats/   videos: $out/orbit.mp4 $out/views.mp4   3D in the browser: volume view $out/splats"
