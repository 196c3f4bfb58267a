"""One way to connect to Temporal, shared by the worker, the API, the client SDK and the CLI."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from mahsm import tracing
from mahsm.settings import Settings


async def connect(
    settings: Settings, *, address: str | None = None, runtime: Runtime | None = None
) -> Client:
    """A client using MAHSM's pydantic data converter, TLS and API key from `settings`.

    `runtime` carries Temporal's own metrics (`mahsm.temporal_metrics`); the default one
    when None.
    """
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    elif settings.temporal_tls:
        tls = True
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        address or settings.temporal_target,
        namespace=settings.temporal_namespace,
        tls=tls,
        api_key=api_key,
        data_converter=pydantic_data_converter,
        plugins=tracing.current().plugins(),  # none unless this process traces
        runtime=runtime,
    )
