#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build, run and test (as root; with sudo otherwise).
set -euo pipefail
packages=(meson ninja-build pkg-config g++ clang libclang-rt-14-dev
  libzmq3-dev cppzmq-dev libssh-dev rapidjson-dev libyaml-cpp-dev libpq-dev libboost-dev
  libgtest-dev libgmock-dev libssl-dev libarchive-dev libcpp-httplib-dev libsqlite3-dev
  postgresql openssh-server openssl curl python3 procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
