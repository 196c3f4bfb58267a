"""`ExperimentsClient`: experiments through the REST API (docs/experiments.md).

```python
async with ExperimentsClient("http://127.0.0.1:8000") as experiments:
    state = await experiments.run("examples/experiments/experiment.yaml")
    print(state.winner)
```
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mahsm.client.rest import RestBackend
from mahsm.errors import InvalidRequest
from mahsm.experiments.files import ExperimentFileError, load_experiment
from mahsm.experiments.models import ExperimentRequest, ExperimentState, ServeResult


class ExperimentsClient:
    """Start, follow, serve and list experiments.

    Args:
        base_url: The API, e.g. "http://127.0.0.1:8000".
        api_key: Sent as a bearer token when set.
        transport: An httpx transport (tests); the default opens TCP connections.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._rest = RestBackend(base_url, api_key=api_key, transport=transport)

    async def __aenter__(self) -> ExperimentsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._rest.close()

    async def start(self, experiment: ExperimentRequest | str | Path) -> str:
        """POST /experiments with a request or an experiment file; returns the id.

        Raises:
            InvalidRequest: The file or a config is invalid (the message names which).
        """
        if not isinstance(experiment, ExperimentRequest):
            try:
                experiment = load_experiment(experiment)
            except ExperimentFileError as error:
                raise InvalidRequest(str(error), code="invalid_experiment_file") from None
        body = experiment.model_dump(mode="json")
        accepted: dict[str, Any] = await self._rest._call("POST", "/experiments", json=body)
        return str(accepted["id"])

    async def get(self, experiment_id: str) -> ExperimentState:
        """GET /experiments/{id}: branches, summary, winner, MLflow status."""
        raw = await self._rest._call("GET", f"/experiments/{experiment_id}")
        return ExperimentState.model_validate(raw)

    async def wait(self, experiment_id: str, *, poll_s: float = 0.5) -> ExperimentState:
        """Poll until the experiment has ended (MLflow logging included)."""
        while True:
            state = await self.get(experiment_id)
            if state.status != "running":
                return state
            await asyncio.sleep(poll_s)

    async def run(self, experiment: ExperimentRequest | str | Path) -> ExperimentState:
        """Start an experiment and wait for its end."""
        return await self.wait(await self.start(experiment))

    async def serve(self, experiment_id: str, inputs: dict[str, Any] | None = None) -> ServeResult:
        """Round robin: one request, served by the next config; its branch."""
        raw = await self._rest._call(
            "POST", f"/experiments/{experiment_id}/requests", json={"inputs": inputs or {}}
        )
        return ServeResult.model_validate(raw)

    async def close_experiment(self, experiment_id: str) -> None:
        """Round robin: stop serving; the summary and MLflow logging follow."""
        await self._rest._call("POST", f"/experiments/{experiment_id}/close")

    async def list(self) -> list[dict[str, Any]]:
        """Experiments of the deployment, newest first."""
        page: dict[str, Any] = await self._rest._call("GET", "/experiments")
        return list(page["experiments"])
