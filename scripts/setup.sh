#!/usr/bin/env bash
# Set up everything the service and its tests need, from a fresh clone:
# a virtualenv with the pinned Python packages, the pinned npm tools (solc,
# anvil) and, with --system and when root, the Debian packages for browser
# tests and CJK fonts (WenQuanYi Zen Hei, embedded in PDFs; Noto CJK, Debian's
# default). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
[ "${1:-}" = "--system" ] && want_system=1

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11 or newer is needed (found $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

if command -v npm >/dev/null 2>&1; then
  nstamp=node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)
  if [ ! -f "$nstamp" ]; then
    echo "==> installing npm tools (solc, anvil)"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$nstamp"
  fi
else
  echo "warning: npm not found; anvil tests will be skipped (contract artifacts are committed)" >&2
fi

if [ "$want_system" = 1 ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  [ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)
  # Debian's default CJK font (PostScript outlines): the sign tests check that the PDF
  # passes it over (tests/pledges/test_signs.py).
  [ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "==> installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "warning: not root or no apt-get; missing ${missing[*]} (browser tests will skip)" >&2
    fi
  fi
fi
