#!/usr/bin/env bash
# Build the web client into web/dist (served by the API process at /) when its
# sources changed since the last build: npm ci (when the lock changed), then
# npm run build (vue-tsc type check + vite). Without node/npm it says so and
# leaves the API without a client (exit 0); BUILD_WEB_REQUIRED=1 makes that an error.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "web: node/npm not found: the web client is not built (install Node 20+)" >&2
  [ "${BUILD_WEB_REQUIRED:-0}" = 1 ] && exit 3
  exit 0
fi
want=$({ cat package.json package-lock.json index.html vite.config.ts tsconfig.json
         { find src -type f; [ ! -d public ] || find public -type f; } | LC_ALL=C sort \
           | xargs cat; } | sha256sum | cut -d' ' -f1)
stamp=dist/.built-from
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  locked=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ "$(cat node_modules/.zongzhi-lock 2>/dev/null)" != "$locked" ]; then
    # npm ci, unless the registry (a mirror without other platforms' optional
    # packages, e.g. @rollup/rollup-android-*) left the lock "out of sync" for it:
    # then npm install, which installs the same locked versions.
    npm ci --no-audit --no-fund --loglevel=error 2>/dev/null \
      || npm install --no-audit --no-fund --loglevel=error
    echo "$locked" > node_modules/.zongzhi-lock
  fi
  npm run --silent build
  echo "$want" > "$stamp"
fi
