#!/usr/bin/env bash
# Vendor front-end assets from the npm registry into static/vendor at pinned versions.
# Run `make vendor` (or this script) to refresh them after changing a version below.
set -euo pipefail
HTMX_VERSION="${HTMX_VERSION:-4.0.1}"
AXE_VERSION="${AXE_VERSION:-4.11.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
npm pack --silent "htmx.org@${HTMX_VERSION}" "axe-core@${AXE_VERSION}" >/dev/null
mkdir htmx axe
tar -xzf "htmx.org-${HTMX_VERSION}.tgz" -C htmx
tar -xzf "axe-core-${AXE_VERSION}.tgz" -C axe
rm -rf "$ROOT/static/vendor/htmx" "$ROOT/tests/browser/vendor"
mkdir -p "$ROOT/static/vendor/htmx/${HTMX_VERSION}" "$ROOT/tests/browser/vendor"
cp htmx/package/dist/htmx.min.js htmx/package/dist/htmx.js htmx/package/LICENSE \
   "$ROOT/static/vendor/htmx/${HTMX_VERSION}/"
echo "${HTMX_VERSION}" > "$ROOT/static/vendor/htmx/VERSION"
# axe-core is only for the browser tests: it is never served to members.
cp axe/package/axe.min.js axe/package/LICENSE.txt "$ROOT/tests/browser/vendor/" 2>/dev/null \
  || cp axe/package/axe.min.js "$ROOT/tests/browser/vendor/"
echo "${AXE_VERSION}" > "$ROOT/tests/browser/vendor/AXE_VERSION"
echo "vendored htmx ${HTMX_VERSION} and axe-core ${AXE_VERSION}"
