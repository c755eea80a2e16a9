"""monitoring.targets and monitoring.alerts: what the stack's own Prometheus sees."""

from __future__ import annotations

from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.monitoring.prometheus import PrometheusAPIError, api_get

# Prometheus's scrape job -> the stack's service (make logs SERVICE=...).
# Job front-door is the blackbox exporter's probe of it: down means the exporter is.
JOB_SERVICE = {"node": "node-exporter", "front-door": "blackbox-exporter", "dcgm": "dcgm-exporter"}


def _prometheus_api(ctx: DoctorContext, path: str) -> dict | Verdict:
    """GET the stack's Prometheus API at ``path``: its data, or the SKIP that says why not."""
    monitoring = ctx.settings.get("monitoring") or {}
    if not monitoring.get("enabled"):
        return skipped("monitoring is off (r1_stack_monitoring_enabled: false)")
    try:
        return api_get(ctx.http, monitoring["prometheus_url"], path, timeout_s=ctx.timeout_s)
    except PrometheusAPIError as exc:
        return skipped(
            f"Prometheus did not answer {exc.url} ({exc.reason}; services.reachable says why)"
        )


def monitoring_targets(ctx: DoctorContext) -> Verdict:
    data = _prometheus_api(ctx, "/api/v1/targets")
    if isinstance(data, Verdict):
        return data
    targets = data.get("activeTargets") or []
    if not targets:
        return failed(
            "Prometheus scrapes nothing",
            "its configuration has no targets: monitoring/prometheus.yml is not the one "
            "the role renders",
            "make deploy (renders monitoring/ again and restarts Prometheus)",
        )
    down = [t for t in targets if t.get("health") != "up"]
    jobs = sorted({t["labels"]["job"] for t in targets})
    if not down:
        return passed(f"every target is up: {', '.join(jobs)}", jobs=jobs)
    seen = "; ".join(
        f"{t['labels']['job']} {t.get('scrapeUrl', '')}: {t.get('health')}"
        + (f" ({t['lastError']})" if t.get("lastError") else "")
        for t in down
    )
    services = sorted({JOB_SERVICE.get(t["labels"]["job"], t["labels"]["job"]) for t in down})
    return failed(
        f"Prometheus cannot scrape {seen}",
        "the service is down, or answers its metrics no more (a target 'unknown' has not "
        "been scraped yet: a Prometheus that just started)",
        "see services.reachable and "
        + ", ".join(f"make logs SERVICE={service}" for service in services)
        + "; make deploy starts what is stopped",
        down=[t["labels"]["job"] for t in down],
    )


def monitoring_alerts(ctx: DoctorContext) -> Verdict:
    data = _prometheus_api(ctx, "/api/v1/alerts")
    if isinstance(data, Verdict):
        return data
    firing = [a for a in data.get("alerts") or [] if a.get("state") == "firing"]
    if not firing:
        return passed("no alert is firing")
    pages = [a for a in firing if (a.get("labels") or {}).get("severity") == "page"]
    summary = "; ".join(
        f"{a['labels'].get('alertname')}: {(a.get('annotations') or {}).get('summary', '')}"
        for a in firing
    )
    verdict = failed if pages else warned
    return verdict(
        f"{len(firing)} alert(s) firing: {summary}",
        "Prometheus's alert rules (monitoring/rules/) see the stack in trouble",
        "each alert's description says what to do: Prometheus's alerts page "
        "(https://<name>/prometheus/alerts) or curl "
        f"{(ctx.settings.get('monitoring') or {}).get('prometheus_url', '')}/api/v1/alerts",
        alerts=[a["labels"].get("alertname") for a in firing],
    )
