"""How the package's HTTP clients trust an https URL: the system's CAs, or one CA file (the
stack's front door, signed by the CA the role made for it)."""

from __future__ import annotations

import ssl


def verify(ca_file: str | bool | None) -> ssl.SSLContext | bool:
    """What httpx takes as ``verify``: a context trusting ``ca_file``, or True/False."""
    if isinstance(ca_file, str) and ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True if ca_file in (None, "") else bool(ca_file)
