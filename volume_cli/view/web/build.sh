#!/usr/bin/env bash
# Rebuild the vendored web renderer the viewer page imports (volume_cli/view/static/vendor/):
#   bash volume_cli/view/web/build.sh
# Needs Node.js and npm with the npm registry; the versions are pinned in package.json and
# package-lock.json. The output is committed, so neither users nor CI run this.
set -euo pipefail
cd "$(dirname "$0")"
out=../static/vendor
npm ci --no-audit --no-fund
npx esbuild entry.js --bundle --format=esm --minify --legal-comments=none \
  --target=es2020 --outfile="$out/three-spark.js"
{
  echo "three-spark.js bundles these npm packages (built by volume_cli/view/web/build.sh):"
  for pkg in three @sparkjsdev/spark; do
    version=$(node -p "require('./node_modules/$pkg/package.json').version")
    echo "  $pkg $version"
  done
} > "$out/VERSIONS.txt"
{
  for pkg in three @sparkjsdev/spark fflate; do
    version=$(node -p "require('./node_modules/$pkg/package.json').version")
    echo "==== $pkg $version ($(node -p "require('./node_modules/$pkg/package.json').license")) ===="
    cat "node_modules/$pkg/LICENSE"*
    echo
  done
} > "$out/LICENSES.txt"
ls -l "$out"
