"""`/docs` works offline: every file the page loads is served by the API; `/` leads there."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mahsm.api.main import create_app
from mahsm.devstack.process import free_port
from mahsm.settings import load_settings


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    # Neither backend is needed to serve the docs; keys are on: the docs need none.
    settings = load_settings(
        _env_file=None,
        temporal_address=f"127.0.0.1:{free_port()}",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/mahsm",
        api_keys={"docs-key": "ann"},
    )
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def loaded_urls(html: str) -> list[str]:
    """The URLs the page makes the browser fetch: scripts, styles, icons, the OpenAPI file."""
    attributes = re.findall(r'(?:src|href)="([^"]+)"', html)
    spec = re.findall(r"url: '([^']+)'", html)
    return attributes + spec


def test_the_docs_page_loads_only_files_the_api_serves(http: TestClient) -> None:
    page = http.get("/docs")

    assert page.status_code == 200
    urls = loaded_urls(page.text)
    assert len(urls) >= 4 and "/openapi.json" in urls  # script, style, icon, the API schema
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        fetched = http.get(url)
        assert fetched.status_code == 200, url
        assert len(fetched.content) > 100, url
    assert "http://" not in page.text and "https://" not in page.text


def test_the_swagger_bundle_is_a_version_that_reads_openapi_3_1(http: TestClient) -> None:
    schema = http.get("/openapi.json").json()
    bundle = http.get("/docs/static/swagger-ui-bundle.js")

    assert schema["openapi"].startswith("3.1")
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # Swagger UI reads OpenAPI 3.1 (FastAPI's format) from version 5 on.
    [major] = re.findall(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', bundle.text)
    assert int(major) >= 5


def test_the_oauth2_redirect_page_is_served(http: TestClient) -> None:
    assert http.get("/docs/oauth2-redirect").status_code == 200


def test_the_root_redirects_to_the_docs(http: TestClient) -> None:
    response = http.get("/")

    assert response.status_code == 307
    assert response.headers["location"] == "/docs"
    assert http.get("/", follow_redirects=True).url.path == "/docs"


def test_the_docs_routes_are_not_in_the_api_schema(http: TestClient) -> None:
    paths = set(http.get("/openapi.json").json()["paths"])

    assert not {"/", "/docs", "/docs/oauth2-redirect"} & paths
    assert "/redoc" not in paths and http.get("/redoc").status_code == 404
