"""services.reachable and clock.skew: what the services' health URLs answer."""

from __future__ import annotations

import datetime
import email.utils
from dataclasses import dataclass

from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.doctor.logs import last_lines, recognise

CLOCK_SKEW_WARN_S = 60.0


@dataclass(frozen=True)
class Service:
    name: str  # the compose service (settings.json)
    url: str  # what the check GETs
    log: str  # its log: native/logs/<log>.log, or the compose service <log>


def services(settings: dict) -> list[Service]:
    """The stack's services and the URL each must answer, from settings.json."""
    found = []
    vllm = settings.get("vllm") or {}
    if vllm.get("url"):
        # The native runtime runs the model server as its service `vllm` in either profile.
        log = "vllm" if settings.get("runtime") == "native" else vllm.get("service", "vllm")
        found.append(Service(log, f"{vllm['url'].rstrip('/')}/health", log))
    webui = settings.get("webui") or {}
    if webui.get("url"):
        name = webui.get("service", "open-webui")
        found.append(Service(name, f"{webui['url'].rstrip('/')}/health", name))
    gateway = settings.get("gateway") or {}
    if gateway.get("enabled") and gateway.get("url"):
        name = gateway.get("service", "tools-gateway")
        found.append(Service(name, f"{gateway['url'].rstrip('/')}/health", name))
    monitoring = settings.get("monitoring") or {}
    if monitoring.get("enabled"):
        # Prometheus, Alertmanager and node exporter (docs/observability.md).
        for name, key, path in (
            ("node-exporter", "node_exporter_url", "/"),
            ("blackbox-exporter", "blackbox_exporter_url", "/-/healthy"),
            ("alertmanager", "alertmanager_url", "/-/ready"),
            ("prometheus", "prometheus_url", "/-/ready"),
        ):
            if monitoring.get(key):
                found.append(Service(name, f"{monitoring[key].rstrip('/')}{path}", name))
    door = settings.get("front_door") or {}
    if door.get("enabled") and (door.get("local_url") or door.get("url")):
        # The front door passes no /health on: its root answers (Open WebUI's page).
        url = (door.get("local_url") or door["url"]).rstrip("/")
        found.append(Service("front-door", f"{url}/", "front-door"))
    return found


def _start_fix(ctx: DoctorContext, service: Service) -> str:
    if ctx.native:
        return (
            f"start it: make deploy (or, on the host, {ctx.stack.path}/native/r1ctl start "
            f"{service.log}); its log: make logs SERVICE={service.log}"
        )
    return (
        f"start it: make deploy (or docker compose up -d {service.name} in the stack "
        f"directory); its log: make logs SERVICE={service.name}"
    )


def _last_written(ctx: DoctorContext, service: Service) -> str:
    """Since when a native service has been quiet: its log's last write (a server that died
    writes no more), as ' (its log last written 12 min ago, 09:41:07 UTC)', or ''."""
    if not ctx.native:
        return ""
    try:
        mtime = ctx.log_path(service.log).stat().st_mtime
    except OSError:
        return ""
    when = datetime.datetime.fromtimestamp(mtime, datetime.UTC)
    ago = max(0.0, (ctx.now() - when).total_seconds())
    span = f"{ago / 60:.0f} min" if ago >= 120 else f"{ago:.0f} s"
    return f" (its log last written {span} ago, {when:%Y-%m-%d %H:%M:%S} UTC)"


def _diagnose_down(ctx: DoctorContext, service: Service, answer: str) -> tuple[str, str, dict]:
    """Why ``service`` is down, from its log where the runtime keeps one: cause, fix, data."""
    text = ctx.service_log(service.log)
    causes = recognise(text, service.log, ctx.settings)
    tail = last_lines(text)
    data = {
        "url": service.url,
        "answer": answer,
        "causes": [c.id for c in causes],
        "log_tail": tail,
    }
    if causes:
        cause = "; ".join(f"{c.cause} (log: {c.line})" for c in causes)
        fix = "; ".join(c.fix for c in causes)
        return f"{service.name}: {cause}", f"{service.name}: {fix}", data
    if text is None:
        cause = (
            f"{service.name} does not answer and its log ({ctx.log_name(service.log)}) cannot "
            "be read (missing, or this user may not read it: run the doctor as root)"
        )
    else:
        shown = "\n".join(tail) or "(empty)"
        cause = (
            f"{service.name} does not answer; no cause recognised in its log "
            f"({ctx.log_name(service.log)}), whose last lines are:\n{shown}"
        )
    return cause, f"{service.name}: {_start_fix(ctx, service)}", data


def services_reachable(ctx: DoctorContext) -> Verdict:
    listed = services(ctx.settings)
    if not listed:
        return skipped("settings.json names no service URL")
    seen, causes, fixes, data = [], [], [], {}
    for service in listed:
        probe = ctx.probe(service.url)
        front_door = service.name == "front-door"
        up = probe.status is not None if front_door else probe.up
        answer = f"HTTP {probe.status}" if probe.status is not None else probe.error
        if up:
            seen.append(f"{service.name} {probe.status}")
            data[service.name] = {"url": service.url, "answer": answer}
            continue
        seen.append(f"{service.name} DOWN ({service.url}: {answer}){_last_written(ctx, service)}")
        cause, fix, data[service.name] = _diagnose_down(ctx, service, answer)
        causes.append(cause)
        fixes.append(fix)
    if causes:
        return failed("; ".join(seen), "\n".join(causes), "\n".join(fixes), services=data)
    return passed(f"{len(listed)} services answer: " + ", ".join(seen), services=data)


def clock_skew(ctx: DoctorContext, *, limit_s: float = CLOCK_SKEW_WARN_S) -> Verdict:
    """The Date header of the model server's or Open WebUI's answer against local time."""
    for service in services(ctx.settings):
        if service.name == "front-door":
            continue
        probe = ctx.probe(service.url)
        if not probe.date:
            continue
        try:
            theirs = email.utils.parsedate_to_datetime(probe.date)
        except (TypeError, ValueError):
            continue
        if theirs.tzinfo is None:
            theirs = theirs.replace(tzinfo=datetime.UTC)
        skew = (theirs - ctx.now()).total_seconds()
        data = {"service": service.name, "date": probe.date, "skew_s": round(skew, 1)}
        seen = (
            f"{service.name}'s clock is {abs(skew):.0f} s "
            f"{'ahead of' if skew > 0 else 'behind'} this machine's (Date: {probe.date})"
        )
        if abs(skew) > limit_s:
            return warned(
                seen,
                f"the clocks differ by more than {limit_s:.0f} s: certificates, "
                "sign-in tokens and log times go wrong",
                "keep both clocks in time: timedatectl set-ntp true (systemd-timesyncd "
                "or chrony) on the host that is off; timedatectl status shows "
                "'System clock synchronized: yes' when it is",
                **data,
            )
        return passed(seen, **data)
    return skipped(
        "no answer with a Date header (the model server and Open WebUI do not "
        "answer; services.reachable says why)"
    )
