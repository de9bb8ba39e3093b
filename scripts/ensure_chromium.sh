#!/bin/sh
# Make sure a Chromium is there for tests/test_storyboard_browser.py (the storyboard page in a real
# browser). Only under CI=true (.ci/run, the CI machine) does it install Debian's `chromium`, and
# only as root with apt-get: `make test` on a user's machine never installs a system package. Anywhere
# else it says why not and the browser test skips. It never fails the build.
# WANCLIP_NO_CHROMIUM_INSTALL=1 skips the install in CI too.

for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
say() { echo "ensure_chromium: $*; tests/test_storyboard_browser.py will skip"; }
if [ "${CI:-}" != true ]; then
    say "no chromium found, and outside CI (CI=true) nothing is installed (Debian: sudo apt-get install chromium)"
elif [ -n "${WANCLIP_NO_CHROMIUM_INSTALL:-}" ]; then
    say "no chromium found and WANCLIP_NO_CHROMIUM_INSTALL is set"
elif [ "$(id -u)" != 0 ]; then
    say "no chromium found and not root (install it: sudo apt-get install chromium)"
elif ! command -v apt-get >/dev/null 2>&1; then
    say "no chromium found and no apt-get here (install Chromium or Chrome and put it on PATH)"
else
    echo "ensure_chromium: CI=true: installing Debian's chromium for the browser test (apt-get)"
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        echo "ensure_chromium: installed $(command -v chromium)"
    else
        say "apt-get could not install chromium"
    fi
fi
exit 0
