#!/usr/bin/env bash
# The installed tree works on its own: `meson install` into a DESTDIR, then the installed
# gorgone-host, with no GORGONE_MODULE_PATH, reports its version, validates the example
# configuration (Gorgone's package names, modules found next to the installed host), and
# drives a poller from a central (the integration suite's Installed.* tests, run against the
# installed host).
# Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
dest=$(mktemp -d /tmp/gorgone-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet
host=$(find "$dest" -path '*/bin/gorgone-host' -type f)
unit=$(find "$dest" -name gorgone-host.service -type f)
[[ -x $host ]] || { echo "no gorgone-host installed under $dest"; exit 1; }
[[ -f $unit ]] || { echo "no systemd unit installed under $dest"; exit 1; }
grep -q "^ExecReload=/bin/kill -HUP \$MAINPID" "$unit"
# The unit names the installed host by its final path (without the DESTDIR).
grep -q "^ExecStart=${host#"$dest"} --config=/etc/centreon-gorgone/config.yaml" "$unit"
unset GORGONE_MODULE_PATH
"$host" --version | grep -q '^gorgone-host '
# The example paths are relative to the source root.
(cd "$GORGONE_SOURCE_ROOT" && "$host" --check-config --config examples/config/central.yaml)
(cd "$GORGONE_SOURCE_ROOT" && "$host" --check-config --config examples/config/poller.yaml)
GORGONE_HOST_BIN=$host GORGONE_INSTALLED=1 "$build/tests/integration/test_integration" --gtest_filter='Installed.*'
echo "installed tree under $dest: OK"
