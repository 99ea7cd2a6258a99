#!/usr/bin/env bash
# Refreshes the dashboard's vendored front-end assets (src/agentadapter/server/ui/static/vendor/).
# The dashboard serves every asset from the package, so nothing is fetched at run time; this script is
# the only place they come from. It needs `npm` (to fetch the published packages) and nothing else:
# the files are the libraries' own prebuilt distributions, unchanged. Pin new versions here, run it,
# then look at the diff and the dashboard's browser tests (tests/ui/).
set -euo pipefail

HTMX_VERSION="2.0.11"
UPLOT_VERSION="1.6.32"

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/src/agentadapter/server/ui/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "htmx.org@$HTMX_VERSION" "uplot@$UPLOT_VERSION" >/dev/null
mkdir htmx uplot
tar -xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar -xzf "uplot-$UPLOT_VERSION.tgz" -C uplot

mkdir -p "$vendor"
cp htmx/package/dist/htmx.min.js "$vendor/htmx.min.js"
cp htmx/package/LICENSE "$vendor/htmx.LICENSE"
cp uplot/package/dist/uPlot.iife.min.js "$vendor/uPlot.iife.min.js"
cp uplot/package/dist/uPlot.min.css "$vendor/uPlot.min.css"
cp uplot/package/LICENSE "$vendor/uPlot.LICENSE"
cat > "$vendor/VERSIONS" <<VERSIONS
htmx.org $HTMX_VERSION (BSD Zero Clause License, htmx.LICENSE): dist/htmx.min.js
uplot $UPLOT_VERSION (MIT License, uPlot.LICENSE): dist/uPlot.iife.min.js, dist/uPlot.min.css
Refreshed by scripts/refresh_ui_assets.sh; served at /ui/static/vendor/.
VERSIONS
echo "vendored htmx.org $HTMX_VERSION and uplot $UPLOT_VERSION into $vendor"
