"""`/artifacts` over HTTP: upload an export, list, read a version, errors."""

from __future__ import annotations

import asyncio
import json

import dspy
from temporalio.testing import WorkflowEnvironment

from mahsm import prompt
from mahsm.activities.tools.registry import default_registry
from mahsm.api.main import create_app
from tests.api.conftest import api_settings, asgi_client

CALCULATOR = default_registry().get("calculator")


async def test_upload_list_and_read_artifacts(
    temporal_env: WorkflowEnvironment, database_url: str, db_pool, tmp_path
) -> None:
    program = dspy.Predict(dspy.Signature("q -> a").with_instructions("Be exact."))
    await prompt.save(program, "exact", tools=[CALCULATOR], pool=db_pool)
    exported = await prompt.export("exact", 1, tmp_path, pool=db_pool)
    upload = json.loads(exported.read_text())
    app = create_app(api_settings(temporal_env, database_url))
    async with asgi_client(app) as http:
        copied = await http.post("/artifacts", json={**upload, "name": "exact-copy"})
        again = await http.post("/artifacts", json={**upload, "name": "exact-copy"})
        edited = await http.post(
            "/artifacts", json={**upload, "name": "exact-copy", "model": "openai/other"}
        )
        listed = await http.get("/artifacts")
        one = await http.get("/artifacts/exact-copy/1")
        latest = await http.get("/artifacts/exact-copy")
        missing = await http.get("/artifacts/exact-copy/9")
        unknown = await http.get("/artifacts/nope/1")
        bad_name = await http.get("/artifacts/Bad Name/1")

    assert copied.status_code == 201, copied.text
    assert copied.json()["version"] == 1
    assert again.json()["version"] == 1  # the same content: the same version
    assert edited.status_code == 422 and edited.json()["code"] == "invalid_artifact"
    names = {a["name"]: a["latest"] for a in listed.json()}
    assert names["exact"] == 1 and names["exact-copy"] == 1
    body = one.json()
    assert body["program"]["state"]["signature"]["instructions"] == "Be exact."
    assert set(body["tools"]) == {"calculator"}
    assert latest.json()["version"] == 1
    assert missing.status_code == 404 and "versions: 1" in missing.json()["message"]
    assert unknown.status_code == 404 and unknown.json()["code"] == "artifact_not_found"
    assert bad_name.status_code == 422


async def test_cli_lists_shows_exports_and_imports(
    temporal_env: WorkflowEnvironment, database_url: str, db_pool, tmp_path
) -> None:
    from typer.testing import CliRunner

    from mahsm.cli.main import app as cli
    from tests.api.conftest import served

    await prompt.save(dspy.Predict("q -> a"), "cli-art", pool=db_pool)
    runner = CliRunner()

    def mahsm(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["artifacts", *args, "--api", url])
        return result.exit_code, result.output

    async with served(create_app(api_settings(temporal_env, database_url))) as url:
        listed = await asyncio.to_thread(mahsm, "list", "--json")
        shown = await asyncio.to_thread(mahsm, "show", "cli-art@1")
        exported = await asyncio.to_thread(mahsm, "export", "cli-art", "--out", str(tmp_path))
        file = tmp_path / "cli-art_v1.json"
        imported = await asyncio.to_thread(mahsm, "import", str(file), "--name", "cli-art2")
        missing = await asyncio.to_thread(mahsm, "show", "cli-art@5")

    assert listed[0] == 0 and '"cli-art"' in listed[1]
    assert shown[0] == 0 and '"content_hash"' in shown[1]
    assert exported[0] == 0 and file.exists()
    assert imported == (0, "cli-art2@1\n")
    assert missing[0] == 3 and "no version 5" in missing[1]
