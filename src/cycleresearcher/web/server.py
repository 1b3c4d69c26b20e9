"""Running the app: the host/token rule and uvicorn."""

from __future__ import annotations

import ipaddress
import logging

from ..errors import ConfigError
from .pipeline import WebConfig

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str) -> None:
    """Anything beyond this machine needs a token: the page runs models and reads files under --runs."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"--host {host} would open the reviewer to other machines without a password",
                          hint="add --token SECRET (then open the printed URL), or keep --host 127.0.0.1")


def url(host: str, port: int, token: str = "") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(config: WebConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from .app import create_app
    from .pipeline import Services

    check_host(host, config.token)
    services = Services(config)
    services.reward_judge()  # a bad --reward folder fails here, as one line, not in every job
    app = create_app(config, services=services)
    # Short graceful shutdown: an open progress stream should not keep Ctrl-C waiting.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
