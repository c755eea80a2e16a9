#!/usr/bin/env bash
# Install Debian's promtool, amtool and blackbox exporter for the render tier's checks of the
# rendered monitoring files, when missing (no service of the packages is started).
set -euo pipefail
package=$(dirname "$0")/../support/debian-package.sh
"$package" promtool prometheus
"$package" amtool prometheus-alertmanager
"$package" prometheus-blackbox-exporter prometheus-blackbox-exporter
