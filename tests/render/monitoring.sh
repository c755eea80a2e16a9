#!/usr/bin/env bash
# Install Debian's promtool and amtool for the render tier's checks of the rendered monitoring
# files, when missing (no service of the packages is started).
set -euo pipefail
package=$(dirname "$0")/../support/debian-package.sh
"$package" promtool prometheus
"$package" amtool prometheus-alertmanager
