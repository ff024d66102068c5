#!/usr/bin/env bash
# Builds the project's Python environment once per set of pins, caches it outside the clone, and
# links it as .venv. A second run only re-links and re-installs the project itself (seconds).
# Horovod compiles against the TensorFlow already installed, so it goes in last, with Gloo.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SGAN_ENV_CACHE:-$HOME/.cache/sgan-env}
python=${SGAN_PYTHON:-python3.11}
key=$(cat "$root/requirements.lock" "$root/scripts/make-env.sh" | sha256sum | cut -c1-16)
venv="$cache/$key"

mkdir -p "$cache"
exec 9>"$cache/$key.lock"
flock 9

if [ ! -f "$venv/.complete" ]; then
    echo "make-env: building $venv (Horovod compiles: about 5-10 minutes on 2 cores)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip==26.3 setuptools==84.2.1 wheel==0.48.0
    "$venv/bin/pip" install -q -r "$root/requirements.lock"
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
        "$venv/bin/pip" install -q --no-build-isolation --no-cache-dir horovod==0.28.1
    "$venv/bin/pip" check
    if ! "$venv/bin/horovodrun" --check-build | grep -q '\[X\] TensorFlow'; then
        "$venv/bin/horovodrun" --check-build >&2
        echo "make-env: Horovod was built without TensorFlow support" >&2
        exit 1
    fi
    touch "$venv/.complete"
fi

"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root"
ln -sfn "$venv" "$root/.venv"
