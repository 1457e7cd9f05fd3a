#!/bin/sh
# npm-install.sh - installs the npm packages pinned in package-lock.json into
# tests/serve/node_modules, once: `npm ci` (no install scripts) under a lock, so that
# run.sh and page.sh started side by side (ctest -j) never see a half-written folder.
# A marker written after a complete install says the folder is whole.
#
#   sh tests/serve/npm-install.sh
# Exit 0 the packages are there, 1 npm failed, 77 npm is missing (callers skip).
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 1
marker=node_modules/.bitnet-complete
[ -f "$marker" ] && [ ! "package-lock.json" -nt "$marker" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found to install the pinned packages (Debian: apt-get install npm)"
    exit 77
fi
if command -v flock >/dev/null 2>&1; then
    exec 9>"$here/.npm-install.lock"
    flock 9
fi
# another run may have finished the install while this one waited for the lock
[ -f "$marker" ] && [ ! "package-lock.json" -nt "$marker" ] && exit 0
echo "installing the pinned npm packages into $here/node_modules"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error || {
    echo "npm could not install the packages"
    exit 1
}
: >"$marker"
