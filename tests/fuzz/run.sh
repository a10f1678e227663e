#!/usr/bin/env bash
# Builds the protocol and REST request fuzz targets with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, outside the Meson build so the main build keeps its own
# compiler), then runs each one for a bounded time from the seeds in
# tests/fuzz/corpus/<target>/. Exits non-zero on any crash, leak, timeout or broken invariant,
# and prints the input that caused it.
#
#   GORGONE_FUZZ_SECONDS  seconds per protocol target (default 40: about 3 minutes in all on 2 cores)
#   GORGONE_FUZZ_REST_SECONDS  seconds for the REST request target (default 20)
#   GORGONE_FUZZ_BUILD    build folder (default build-fuzz)
#   GORGONE_FUZZ_JOBS     targets run at the same time (default: number of cores, at most 4)
#   GORGONE_FUZZ_SEED     libFuzzer seed (default 1, so that a run can be repeated; 0 = a new
#                         random seed each run, for longer local hunts)
#   CXX_FUZZ              compiler (default clang++)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

seconds=${GORGONE_FUZZ_SECONDS:-40}
rest_seconds=${GORGONE_FUZZ_REST_SECONDS:-20}
out=${GORGONE_FUZZ_BUILD:-build-fuzz}
cxx=${CXX_FUZZ:-clang++}
jobs=${GORGONE_FUZZ_JOBS:-$(nproc)}
seed=${GORGONE_FUZZ_SEED:-1}
(( jobs > 4 )) && jobs=4
targets=(frame server_handshake client_handshake key_message base64 aes json rest entities)

# pointer-overflow and shift-exponent stay recoverable only so that ubsan.supp can silence rapidjson; with
# halt_on_error=1 any report that is not suppressed still stops the run.
# The builtin check is off: rapidjson 1.1.0's full-precision strtod calls __builtin_clzll(0) on a
# zero significand ("0e300"); the value stays zero, and it is not our code.
common=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all -fsanitize-recover=pointer-overflow,shift-exponent -fno-sanitize=builtin -Wall -Wextra
        -I host_api/include -I host_api/core -I tests/fuzz)
mkdir -p "$out/obj" "$out/bin" "$out/logs" "$out/artifacts"

# The library is compiled once with coverage instrumentation; each target links against it.
start=$(date +%s)
pids=()
for src in host_api/protocol/*.cpp; do
  obj="$out/obj/$(basename "$src" .cpp).o"
  "$cxx" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj" &
  pids+=($!)
done
# The REST target also needs the host's request checks, which need no running core.
mkdir -p "$out/obj-rest"
"$cxx" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c host_api/core/rest_request.cpp \
  -o "$out/obj-rest/rest_request.o" &
pids+=($!)
# The entities target needs the proxy's decoder.
"$cxx" "${common[@]}" -I plugin/proxy -fsanitize=fuzzer-no-link,address,undefined -c plugin/proxy/html_entities.cpp \
  -o "$out/obj-rest/html_entities.o" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done
pids=()
for t in "${targets[@]}"; do
  extra=()
  [[ $t == rest ]] && extra=("$out/obj-rest/rest_request.o" -pthread)
  [[ $t == entities ]] && extra=("$out/obj-rest/html_entities.o" -I plugin/proxy)
  "$cxx" "${common[@]}" -fsanitize=fuzzer,address,undefined "tests/fuzz/fuzz_$t.cpp" "$out"/obj/*.o "${extra[@]}" \
    -lcrypto -o "$out/bin/fuzz_$t" &
  pids+=($!)
  if (( ${#pids[@]} >= jobs )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start )) s"

# Leaks count as failures; a finding stops the target and keeps the input in $out/artifacts.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/fuzz/ubsan.supp

run_one() {
  local t=$1 corpus="$out/corpus/$1"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  # The committed seeds stay untouched: the fuzzer writes what it learns into a copy.
  if [[ -d tests/fuzz/corpus/$t ]]; then cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true; fi
  local time=$seconds
  [[ $t == rest ]] && time=$rest_seconds
  "$out/bin/fuzz_$t" -max_total_time="$time" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -seed="$seed" \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" "$corpus" >"$out/logs/$t.log" 2>&1
}

start=$(date +%s)
declare -A pid_of=()
failed=()
running=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pid_of[$t]=$!
  running+=("$t")
  if (( ${#running[@]} >= jobs )); then
    first=${running[0]}
    wait "${pid_of[$first]}" || failed+=("$first")
    running=("${running[@]:1}")
  fi
done
for t in "${running[@]}"; do wait "${pid_of[$t]}" || failed+=("$t"); done

for t in "${targets[@]}"; do
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz: $t: $runs inputs"
done
echo "fuzz: ran ${#targets[@]} targets in $(( $(date +%s) - start )) s"
if (( ${#failed[@]} > 0 )); then
  for t in "${failed[@]}"; do
    echo "==== fuzz target $t failed; log $out/logs/$t.log"
    tail -n 60 "$out/logs/$t.log"
  done
  ls -l "$out/artifacts" || true
  exit 1
fi
