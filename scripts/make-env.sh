#!/usr/bin/env bash
# Builds the dependency environment once per set of pins and caches it outside the clone (Horovod compiles:
# minutes), then gives this clone its own small venv, .venv, layered on it: the cached site-packages are added
# by a .pth file, and the project is installed (editable) into .venv alone. So clones share the slow part and
# each runs its own code. Horovod compiles against the TensorFlow already installed, so it goes in last, with Gloo.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SGAN_ENV_CACHE:-$HOME/.cache/sgan-env}
python=${SGAN_PYTHON:-python3.11}
key=$(cat "$root/requirements.lock" "$root/scripts/make-env.sh" | sha256sum | cut -c1-16)
deps="$cache/$key"

mkdir -p "$cache"
exec 9>"$cache/$key.lock"
flock 9

if [ ! -f "$deps/.complete" ]; then
    echo "make-env: building $deps (Horovod compiles: about 5-10 minutes on 2 cores)" >&2
    rm -rf "$deps"
    "$python" -m venv "$deps"
    "$deps/bin/pip" install -q --upgrade pip==26.3 setuptools==84.2.1 wheel==0.48.0
    "$deps/bin/pip" install -q -r "$root/requirements.lock"
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
        "$deps/bin/pip" install -q --no-build-isolation --no-cache-dir horovod==0.28.1
    "$deps/bin/pip" check
    # Read whole, then searched: `grep -q` leaving early would end horovodrun with SIGPIPE and fail the pipeline.
    build=$("$deps/bin/horovodrun" --check-build)
    if ! grep -q '\[X\] TensorFlow' <<< "$build"; then
        echo "$build" >&2
        echo "make-env: Horovod was built without TensorFlow support" >&2
        exit 1
    fi
    touch "$deps/.complete"
fi
exec 9>&-

# This clone's layer. A .venv from before this layout was a link to the shared environment: replace it.
venv="$root/.venv"
[ -L "$venv" ] && rm "$venv"
site=lib/python3.11/site-packages
if [ ! -x "$venv/bin/python" ] || ! grep -qs "$deps/$site" "$venv/$site/sgan-deps.pth"; then
    rm -rf "$venv"
    "$deps/bin/python" -m venv --without-pip "$venv"
    echo "import site; site.addsitedir('$deps/$site')" > "$venv/$site/sgan-deps.pth"
    for tool in "$deps"/bin/*; do  # horovodrun, hadolint, prefect...: found beside this clone's interpreter
        name=$(basename "$tool")
        case "$name" in python* | pip* | activate* | Activate*) ;; *) ln -sfn "$tool" "$venv/bin/$name" ;; esac
    done
fi
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root"
