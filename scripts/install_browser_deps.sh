#!/usr/bin/env bash
# Install what the `volume view` browser tests need: Debian's chromium (run headless, WebGL2 in
# software through SwiftShader) and playwright (PyPI) to drive it, Debian's firefox-esr on Xvfb and
# marionette_driver (PyPI, Firefox's own remote protocol). playwright's browser downloads are not
# used (they come from a CDN, and its Firefox is a patched build). Idempotent. Run as root for the apt part
# (CI does), e.g.
#   sudo scripts/install_browser_deps.sh       # uses .venv/bin/python if present, else python3
set -euo pipefail
# shellcheck source=apt_packages.sh
source "$(dirname "$0")/apt_packages.sh"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# chromium: the main browser tests; firefox-esr on a virtual screen (xvfb, xauth for xvfb-run):
# the same page in Firefox, whose WebGL is Mesa's llvmpipe there.
APT_PACKAGES="chromium firefox-esr xvfb xauth"
ensure_apt_packages "$APT_PACKAGES" "install Chromium, Firefox and Xvfb yourself (the tests look for chromium, firefox-esr or firefox, xvfb-run)" required

echo "+ $PYTHON -m pip install playwright marionette_driver"
"$PYTHON" -m pip install --quiet "playwright>=1.40" "marionette_driver>=3.4"

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
