#!/usr/bin/env bash
# Install Debian's Prometheus, Alertmanager, node and blackbox exporters for the monitoring
# tests (the packages roles/r1_native runs), when missing; none of their own services starts.
set -euo pipefail
package=$(dirname "$0")/../support/debian-package.sh
"$package" prometheus prometheus
"$package" prometheus-alertmanager prometheus-alertmanager
"$package" prometheus-node-exporter prometheus-node-exporter
"$package" prometheus-blackbox-exporter prometheus-blackbox-exporter
