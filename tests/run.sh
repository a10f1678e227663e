#!/usr/bin/env bash
# Installs what is needed, builds with address and undefined-behaviour sanitizers, and runs
# every test suite (unit and integration; each starts the servers it needs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/support/install-deps.sh
build=${GORGONE_TEST_BUILD:-build-test}
if [[ ! -d $build ]]; then
  meson setup "$build" --wrap-mode=nodownload -Dbuildtype=debug \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$build"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
# Protocol fuzzing with libFuzzer (clang, separate build folder), about 2.5 minutes; only on
# a full run, not when one suite is asked for.
if (($# == 0)); then bash tests/fuzz/run.sh; fi
