#!/usr/bin/env bash
# Install what the `volume view` browser tests need: Debian's chromium (the tests run it headless,
# WebGL2 in software through SwiftShader) and playwright (PyPI) to drive it. playwright's own
# browser downloads are not used (they come from a CDN). Idempotent. Run as root for the apt part
# (CI does), e.g.
#   sudo scripts/install_browser_deps.sh       # uses .venv/bin/python if present, else python3
set -euo pipefail

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if command -v chromium >/dev/null 2>&1; then
  echo "= chromium already installed: $(chromium --version 2>/dev/null | head -1)"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "+ apt-get update"; $SUDO apt-get update
  echo "+ apt-get install -y --no-install-recommends chromium"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
else
  echo "! apt-get not found: install Chromium yourself (the browser tests look for 'chromium' on PATH)" >&2
  exit 1
fi

echo "+ $PYTHON -m pip install playwright"
"$PYTHON" -m pip install --quiet "playwright>=1.40"

echo "+ checking that playwright drives chromium with software WebGL2"
"$PYTHON" - <<'PY'
import shutil
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                args=["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
    page = browser.new_page()
    page.set_content("<canvas id=c></canvas>")
    renderer = page.evaluate("""() => { const gl = document.getElementById('c').getContext('webgl2');
        return gl ? gl.getParameter(gl.RENDERER) : null; }""")
    browser.close()
assert renderer, "chromium has no WebGL2 here"
print("WebGL2 ok:", renderer)
PY
