"""Open WebUI admin API: sign in as the bootstrapped admin and reconcile its config."""

from r1deploy.webui.client import WebUIClient, WebUIError
from r1deploy.webui.reconcile import Desired, ItemResult, desired_from_stack, reconcile

__all__ = [
    "Desired",
    "ItemResult",
    "WebUIClient",
    "WebUIError",
    "desired_from_stack",
    "reconcile",
]
