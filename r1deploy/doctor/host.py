"""disk.free and frontdoor.certificate: the host's file systems and the front door's
certificate."""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

from r1deploy.doctor.core import GIB, DoctorContext, Verdict, failed, passed, skipped, warned

CERT_WARN_DAYS, CERT_FAIL_DAYS = 14, 3


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def disk_paths(ctx: DoctorContext) -> dict[str, Path]:
    """What to measure: the stack directory, and the model directory when settings.json names
    a local path this machine has outside the stack directory."""
    paths = {"stack directory": ctx.stack.path}
    model_path = str((ctx.settings.get("model") or {}).get("path") or "")
    if model_path.startswith("/"):
        model = Path(model_path)
        inside = model == ctx.stack.path or ctx.stack.path in model.parents
        if model.exists() and not inside:
            paths["model directory"] = model
    return paths


def disk_free(ctx: DoctorContext) -> Verdict:
    threshold = ctx.min_free_bytes
    fail_below = threshold / 5
    seen, low, data, worst = [], [], {}, None
    for what, path in disk_paths(ctx).items():
        total, _used, free = ctx.disk_usage(str(path))[:3]
        data[what] = {"path": str(path), "free_bytes": free, "total_bytes": total}
        line = f"{what} {path}: {_gib(free)} free of {_gib(total)}"
        seen.append(line)
        if free < threshold:
            low.append(line)
            worst = free if worst is None else min(worst, free)
    data["threshold_bytes"] = threshold
    if not low:
        return passed("; ".join(seen), **data)
    cause = (
        f"less than {_gib(threshold)} free: model downloads, vLLM's compile cache, Open "
        "WebUI's database and the logs stop with 'No space left on device'"
    )
    fix = (
        "free space there (old logs under native/logs/, unused models in data/hf-cache or "
        "r1_stack_hf_cache_dir; docker: docker system prune), or grow the file system; "
        "--min-free-gib sets this threshold"
    )
    verdict = failed if worst < fail_below else warned
    return verdict("; ".join(low), cause, fix, **data)


def _not_after(certificate: bytes, pem: bool) -> datetime.datetime:
    from cryptography import x509

    loaded = (
        x509.load_pem_x509_certificate(certificate)
        if pem
        else x509.load_der_x509_certificate(certificate)
    )
    return loaded.not_valid_after_utc


def _renew_fix(door: dict) -> str:
    mode = door.get("tls_mode")
    if mode == "provided":
        return (
            "put a newer certificate and key in r1_stack_tls_cert_file and "
            "r1_stack_tls_key_file, then make deploy"
        )
    if mode == "acme":
        return "make deploy (certbot renews it; check that the HTTP port reaches this host)"
    return (
        "deploy again (make deploy): the role issues the certificate again within 30 days "
        "of its end"
    )


def frontdoor_certificate(ctx: DoctorContext) -> Verdict:
    door = ctx.settings.get("front_door") or {}
    if not door.get("enabled"):
        return skipped("no front door (settings.json front_door.enabled is false)")
    url = door.get("local_url") or door.get("url")
    stack_file = ctx.stack.path / "front-door" / "tls" / "server.crt"
    now = ctx.now()
    where, end, served_error = None, None, None
    try:
        end = _not_after(ctx.served_certificate(url, ctx.timeout_s), pem=False)
        where = f"the certificate {url} serves"
    except Exception as exc:  # noqa: BLE001 - down, not TLS, unreadable: the file is next
        served_error = f"{type(exc).__name__}: {exc}"
    file_end = None
    with contextlib.suppress(OSError, ValueError):
        file_end = _not_after(stack_file.read_bytes(), pem=True)
    if end is None:
        end, where = file_end, f"{stack_file}"
    if end is None:
        return warned(
            f"no certificate to read: {url} ({served_error}), nor {stack_file}",
            "the front door does not answer TLS and the stack has no certificate "
            "file (provided and acme certificates may live elsewhere)",
            "services.reachable says whether the front door is up; make deploy "
            "writes the certificate",
        )
    days = (end - now).total_seconds() / 86400
    data = {"source": where, "not_after": end.isoformat(), "days_left": round(days, 1)}
    seen = f"{where} ends {end:%Y-%m-%d} ({days:.0f} days left)"
    if days >= CERT_WARN_DAYS:
        return passed(seen, **data)
    fix = _renew_fix(door)
    if (
        file_end is not None
        and (file_end - now).total_seconds() / 86400 >= CERT_WARN_DAYS
        and file_end > end
    ):
        fix = (
            f"{stack_file} is already renewed (ends {file_end:%Y-%m-%d}) but the front door "
            "still serves the old one: restart it (docker compose restart front-door; "
            "native: native/r1ctl restart front-door)"
        )
    cause = (
        "browsers and API clients refuse the front door once the certificate ends"
        if days > 0
        else "the certificate has ended: browsers and clients refuse the front door"
    )
    verdict = failed if days < CERT_FAIL_DAYS else warned
    return verdict(seen, cause, fix, **data)
