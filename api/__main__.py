"""`python -m mahsm.api`: serve the API with uvicorn on `MAHSM_API_HOST:MAHSM_API_PORT`."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

from mahsm.api.main import create_app
from mahsm.heap import settle_heap
from mahsm.logging import configure_logging
from mahsm.settings import Settings, SettingsError, get_settings


def is_loopback(host: str) -> bool:
    """True for addresses reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(settings: Settings) -> str | None:
    """Why the API must not start on `settings.api_host`, or None when it may."""
    if is_loopback(settings.api_host) or settings.api_keys:
        return None
    return (
        f"Refusing to serve the API on {settings.api_host}: it is reachable from other machines"
        " and MAHSM_API_KEYS is empty, so anyone could run tasks. Set MAHSM_API_KEYS"
        " (e.g. 'k1:alice'), or bind to 127.0.0.1 with MAHSM_API_HOST."
    )


# Both installed with MAHSM (less CPU per request and per streamed event than asyncio's
# selector loop and h11); named, so that a missing one fails loudly instead of running slowly.
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop" if sys.platform != "win32" else "asyncio",
    "http": "httptools",
}


def serving_app(settings: Settings) -> FastAPI:
    """The app to serve, with everything built so far moved out of the garbage collector's way.

    The modules and the app are never garbage; frozen, they are not scanned again by every
    full collection (a ~100 ms pause of the event loop otherwise, in the middle of requests).
    """
    app = create_app(settings)
    settle_heap()
    return app


def main() -> None:
    """Validate the configuration, then run uvicorn until SIGINT/SIGTERM."""
    try:
        settings = get_settings()
    except SettingsError as error:
        sys.stderr.write(f"{error}\n")
        raise SystemExit(2) from None
    refusal = bind_refusal(settings)
    if refusal is not None:
        sys.stderr.write(refusal + "\n")
        raise SystemExit(2)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    uvicorn.run(
        serving_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        **SERVER_OPTIONS,
    )


if __name__ == "__main__":
    main()
