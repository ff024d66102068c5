#!/usr/bin/env bash
# The two-node tests simulate nodes with network namespaces, each running sshd: install openssh-server where it is
# missing and this machine allows it (root with apt-get). Elsewhere those tests skip and say why.
set -u
if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-hosts: installing openssh-server for the two-node tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openssh-server openssh-client iproute2; } >/dev/null 2>&1 \
        || echo "test-hosts: could not install openssh-server; the two-node tests will skip" >&2
fi
exit 0
