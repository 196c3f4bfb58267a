"""`/datasets`: register experiment datasets by name, list and read them.

An experiment names one with `dataset_ref` instead of carrying its rows; the API copies the
rows into the experiment at submit (`resolve_dataset`), so re-registering a name changes only
experiments submitted later.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from mahsm.api.auth import CallerDep, authenticate
from mahsm.api.deps import ApiError, DbPoolDep
from mahsm.api.json_body import Utf8JsonRoute
from mahsm.api.routes.tasks import error_responses
from mahsm.api.text_guard import reject_unstorable_params
from mahsm.contracts.common import INPUT
from mahsm.experiments.models import DATASET_NAME_PATTERN, MAX_ROWS, DatasetRow

router = APIRouter(
    prefix="/datasets",
    tags=["datasets"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate), Depends(reject_unstorable_params)],
    responses=error_responses(401, 422, 503),
)

DatasetName = Annotated[str, Path(pattern=DATASET_NAME_PATTERN)]


class DatasetBody(BaseModel):
    """`POST /datasets`: a name and its rows (as in a JSONL dataset file)."""

    model_config = INPUT

    name: str = Field(pattern=DATASET_NAME_PATTERN)
    rows: list[DatasetRow] = Field(min_length=1, max_length=MAX_ROWS)
    description: str | None = Field(default=None, max_length=2000)


class DatasetSummary(BaseModel):
    """A registered dataset without its rows."""

    name: str
    rows: int
    digest: str = Field(description="SHA-256 of the rows' canonical JSON")
    description: str | None = None
    created_by: str | None = None
    updated_at: datetime


class DatasetView(DatasetSummary):
    """A registered dataset with its rows."""

    data: list[DatasetRow]


class DatasetPage(BaseModel):
    """Registered datasets, by name."""

    datasets: list[DatasetSummary]


_COLUMNS = "name, row_count AS rows, digest, description, created_by, updated_at"


@router.post("", status_code=201, responses=error_responses(400, 401, 413, 422, 503))
async def register_dataset(body: DatasetBody, caller: CallerDep, pool: DbPoolDep) -> DatasetSummary:
    """Register rows under a name; registering the name again replaces them."""
    rows = [row.model_dump(mode="json") for row in body.rows]
    digest = hashlib.sha256(
        json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    stored = await pool.fetchrow(
        "INSERT INTO datasets (name, rows, row_count, digest, description, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET"
        " rows = EXCLUDED.rows, row_count = EXCLUDED.row_count, digest = EXCLUDED.digest,"
        " description = EXCLUDED.description, created_by = EXCLUDED.created_by,"
        f" updated_at = now() RETURNING {_COLUMNS}",
        body.name,
        rows,  # the pool's JSONB codec encodes it
        len(rows),
        digest,
        body.description,
        caller.user,
    )
    assert stored is not None  # INSERT ... RETURNING always returns the row
    return DatasetSummary(**dict(stored))


@router.get("")
async def list_datasets(pool: DbPoolDep) -> DatasetPage:
    """Every registered dataset (without rows), by name."""
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM datasets ORDER BY name")  # noqa: S608
    return DatasetPage(datasets=[DatasetSummary(**dict(row)) for row in rows])


@router.get("/{name}", responses=error_responses(401, 404, 422, 503))
async def get_dataset(name: DatasetName, pool: DbPoolDep) -> DatasetView:
    """One dataset with its rows."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS}, rows AS data FROM datasets WHERE name = $1",  # noqa: S608
        name,
    )
    if row is None:
        raise ApiError(
            404,
            code="dataset_not_found",
            message=f"no dataset named '{name}'; register it with POST /datasets"
            " or `mahsm dataset register NAME FILE.jsonl`",
        )
    return DatasetView(**dict(row))


async def resolve_dataset(pool: DbPoolDep, name: str) -> list[DatasetRow]:
    """The rows of dataset `name`; 422 naming `dataset_ref` (and the known names) if none."""
    value = await pool.fetchval("SELECT rows FROM datasets WHERE name = $1", name)
    if value is None:
        known = [r["name"] for r in await pool.fetch("SELECT name FROM datasets ORDER BY name")]
        raise ApiError(
            422,
            code="validation_error",
            message=f"Invalid request: body.dataset_ref: no dataset named '{name}'"
            f" (registered: {', '.join(known) or 'none'}); register it first with"
            " `mahsm dataset register NAME FILE.jsonl`",
            details=[{"loc": ["body", "dataset_ref"], "msg": "unknown dataset"}],
        )
    return [DatasetRow.model_validate(row) for row in value]
