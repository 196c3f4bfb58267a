"""deploy/: the YAML parses, has the expected topology, and only names real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mahsm.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
SETTING_VARS = {f"MAHSM_{name.upper()}" for name in Settings.model_fields}


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    (compose,) = _load_all(DEPLOY / "docker-compose.yml")
    return compose


def _k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in K8S_FILES for doc in _load_all(path)]


def _mahsm_vars(text: str) -> set[str]:
    return set(re.findall(r"\bMAHSM_[A-Z0-9_]+\b", text))


def test_compose_has_the_expected_services_and_roles() -> None:
    services = _compose()["services"]
    assert {"postgres", "temporal", "temporal-ui", "mahsm-api", "mahsm-worker"} <= set(services)
    assert services["mahsm-api"]["command"] == ["api"]
    assert services["mahsm-worker"]["command"] == ["worker"]
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    for role in ("mahsm-api", "mahsm-worker", "mahsm-migrate"):
        env = services[role]["environment"]
        assert env["MAHSM_TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["MAHSM_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["MAHSM_DATABASE_URL"]
    # A public bind needs API keys; compose refuses to start without them.
    assert services["mahsm-api"]["environment"]["MAHSM_API_HOST"] == "0.0.0.0"
    assert "MAHSM_API_KEYS:?" in services["mahsm-api"]["environment"]["MAHSM_API_KEYS"]
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_every_k8s_document_is_a_named_object(path: Path) -> None:
    docs = _load_all(path)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], path


def test_k8s_has_api_and_worker_pools_wired_to_config_and_secret() -> None:
    docs = _k8s_docs()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config_maps = {d["metadata"]["name"] for d in by_kind["ConfigMap"]}
    secrets = {d["metadata"]["name"] for d in by_kind["Secret"]}
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert "mahsm-api" in deployments
    pools = [d for name, d in deployments.items() if name.startswith("mahsm-worker-")]
    assert len(pools) >= 2

    (service,) = [s for s in by_kind["Service"] if s["metadata"]["name"] == "mahsm-api"]
    api_labels = deployments["mahsm-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()

    for name, deployment in deployments.items():
        spec = deployment["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        ), name
        (container,) = spec["template"]["spec"]["containers"]
        assert container["args"] == (["api"] if name == "mahsm-api" else ["worker"])
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in config_maps
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in secrets, f"{name}: unknown secret {ref['name']}"
    capabilities = {
        var["value"]
        for pool in pools
        for var in pool["spec"]["template"]["spec"]["containers"][0]["env"]
        if var["name"] == "MAHSM_WORKER_CAPABILITIES"
    }
    assert len(capabilities) == len(pools), "each pool declares its own capabilities"


def test_kustomization_lists_existing_files() -> None:
    (kustomization,) = _load_all(DEPLOY / "k8s" / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).is_file(), resource


def test_deploy_files_only_use_real_settings() -> None:
    texts = [
        p.read_text() for p in [*K8S_FILES, DEPLOY / "docker-compose.yml", DEPLOY / "Dockerfile"]
    ]
    used = set().union(*(_mahsm_vars(t) for t in texts))
    assert used, "expected MAHSM_* variables"
    assert used <= SETTING_VARS, f"unknown settings: {sorted(used - SETTING_VARS)}"


def test_dockerfile_builds_one_image_for_both_roles() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install ." in text
    assert 'ENTRYPOINT ["mahsm"]' in text
    assert 'CMD ["api"]' in text
    for folder in ("mahsm", "workflows", "activities", "workers", "api"):
        assert f"COPY {folder} ./{folder}" in text


def test_readme_documents_every_setting() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    missing = sorted(var for var in SETTING_VARS if f"| `{var}` |" not in readme)
    assert not missing, f"add these settings to the README's configuration table: {missing}"


def _seconds(duration: str | int) -> float:
    text = str(duration)
    return float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1] in "sm" else float(text)


def test_worker_shutdown_grace_ends_before_the_orchestrator_kills_the_worker() -> None:
    # In-flight activities may finish during the grace; a kill before its end loses that.
    worker = _compose()["services"]["mahsm-worker"]
    grace = float(worker["environment"]["MAHSM_WORKER_SHUTDOWN_GRACE_S"])
    assert grace + 10 <= _seconds(worker["stop_grace_period"])
    docs = _k8s_docs()
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    grace = float(config["data"]["MAHSM_WORKER_SHUTDOWN_GRACE_S"])
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"].startswith("mahsm-worker-"):
            pod = doc["spec"]["template"]["spec"]
            assert grace + 10 <= pod["terminationGracePeriodSeconds"], doc["metadata"]["name"]


def test_temporal_ui_is_loopback_read_only_and_its_protection_documented() -> None:
    # The UI shows every user's tasks without a login of its own.
    ui = _compose()["services"]["temporal-ui"]
    assert all(port.startswith("127.0.0.1:") for port in ui["ports"])
    assert ui["environment"]["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    assert not [
        d
        for d in _k8s_docs()
        if d["kind"] in ("Service", "Ingress") and "ui" in d["metadata"]["name"]
    ], "deploy/ must not expose the Temporal UI"
    operations = (DEPLOY.parent / "docs" / "operations.md").read_text().lower()
    for needed in ("temporal_auth_enabled", "temporal_auth_provider_url", "per-user views"):
        assert needed in operations, needed
