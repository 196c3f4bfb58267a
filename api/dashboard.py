"""The dashboard at `/ui`: hand-written HTML, CSS and JavaScript served from the package.

Nothing is fetched from the internet; the two small endpoints here are the page's own.

The page calls the same REST API as every client, with the same API key (docs/dashboard.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from mahsm.api.auth import authenticate
from mahsm.api.dashboard_schemas import DashboardConfig
from mahsm.api.deps import ApiError, SettingsDep, invalid
from mahsm.api.json_body import TOO_DEEP, Utf8JsonRoute, too_deep
from mahsm.api.routes.tasks import error_responses
from mahsm.api.text_guard import unstorable

UI_URL = "/ui"
_FILES = Path(__file__).parent / "ui"

router = APIRouter(
    prefix=UI_URL,
    tags=["dashboard"],
    route_class=Utf8JsonRoute,
    dependencies=[Depends(authenticate)],
    responses=error_responses(401),
)


@router.get("/config", response_model=DashboardConfig)
async def dashboard_config(settings: SettingsDep) -> DashboardConfig:
    """What the page shows in its choices and links; no secrets."""
    models = sorted({settings.default_model, *settings.prices})
    return DashboardConfig(
        auth_required=bool(settings.api_keys),
        default_model=settings.default_model,
        models=models,
        temporal_ui_url=settings.temporal_ui_url,
        temporal_namespace=settings.temporal_namespace,
    )


class YamlText(BaseModel):
    """A YAML (or JSON) document typed into the page's plan or pipeline editor."""

    text: str = Field(max_length=200_000)


class YamlValue(BaseModel):
    """The document as JSON."""

    value: Any


def _unreadable(problem: str) -> ApiError:
    return invalid([{"loc": ["body", "text"], "msg": f"{problem}; fix the YAML and resend"}])


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, naming the line of a value its tag does not fit.

    Its constructors raise plain KeyError, IndexError, AttributeError or ValueError for a
    value such as `!!bool x`, `!!timestamp 2001-02-30` or a 5000-digit `!!int`.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (KeyError, IndexError, AttributeError, ValueError, OverflowError) as error:
            kind = node.tag.rsplit(":", 1)[-1]
            shown = node.value[:40] if isinstance(node.value, str) else ""
            raise yaml.constructor.ConstructorError(
                problem=f"{shown!r} cannot be read as {kind}", problem_mark=node.start_mark
            ) from error


def _read_yaml(text: str) -> Any:
    """The document as JSON values; aliases, NaN, infinities and what JSON cannot hold: 422."""
    try:
        # An alias can make a short text expand to gigabytes of JSON ("billion laughs"), and a
        # plan or pipeline never needs one.
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text)):
            raise _unreadable("aliases (*name) are not supported; write the value out")
        value = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
        # Dates become ISO text, as they would in a JSON body; !!pairs and !!omap lists.
        value = json.loads(json.dumps(value, allow_nan=False, default=str))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise _unreadable(
            f"{where}{getattr(error, 'problem', None) or 'not valid YAML'}"
        ) from error
    except RecursionError as error:
        raise _unreadable(TOO_DEEP) from error
    except ValueError as error:
        raise _unreadable(
            "numbers must be finite (no .nan or .inf), of 4300 digits at most"
        ) from error
    except TypeError as error:  # a key JSON cannot have: a date, binary, a list
        raise _unreadable(f"mapping keys must be text or numbers ({error})") from error
    if too_deep(value, at=()) is not None:
        raise _unreadable(TOO_DEEP)
    found = unstorable(value, at=())
    if found:
        loc, problem = found[0]
        raise _unreadable(f"{'.'.join(map(str, loc)) or 'the document'} {problem}")
    return value


@router.post("/yaml", response_model=YamlValue, responses=error_responses(400, 413, 422))
async def parse_yaml(body: Annotated[YamlText, Body()]) -> YamlValue:
    """Read YAML for the editor (browsers have no YAML parser); 422 names the line."""
    return YamlValue(value=_read_yaml(body.text))


# The browser itself refuses anything not from this server: no CDN, no inline script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


async def _index() -> FileResponse:
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP}
    return FileResponse(_FILES / "index.html", headers=headers)


async def _to_ui(request: Request) -> RedirectResponse:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{root}{UI_URL}/", status_code=307)


def add_dashboard(app: FastAPI) -> None:
    """Serve the page at `/ui/`, its files at `/ui/static`, and its two endpoints."""
    app.include_router(router)
    app.mount(f"{UI_URL}/static", StaticFiles(directory=str(_FILES)), name="dashboard")
    app.add_api_route(f"{UI_URL}/", _index, include_in_schema=False)
    app.add_api_route(UI_URL, _to_ui, include_in_schema=False)
