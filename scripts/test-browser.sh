#!/usr/bin/env bash
# The labeling page's test drives a real Chromium through Selenium: install Debian's chromium and chromium-driver
# where they are missing and this machine allows it (root with apt-get). Elsewhere that test skips and says why.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-browser: installing chromium and chromium-driver for the labeling page's test" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver; } >/dev/null 2>&1 \
        || echo "test-browser: could not install chromium; the labeling page's browser test will skip" >&2
fi
exit 0
