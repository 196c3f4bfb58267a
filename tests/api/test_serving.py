"""How `python -m mahsm.api` serves: uvloop and httptools, and a frozen start-up heap."""

from __future__ import annotations

import gc
import importlib

import uvicorn

from mahsm.api.__main__ import SERVER_OPTIONS, serving_app
from mahsm.settings import load_settings


def test_the_server_runs_on_uvloop_and_httptools_installed_with_mahsm() -> None:
    assert SERVER_OPTIONS == {"loop": "uvloop", "http": "httptools"}
    for module in ("uvloop", "httptools"):
        importlib.import_module(module)  # a dependency of MAHSM, not an optional extra
    config = uvicorn.Config("mahsm.api.main:create_app", factory=True, **SERVER_OPTIONS)
    config.load()  # resolves the protocol class, as uvicorn.run does
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"


def test_the_served_app_leaves_its_start_up_objects_out_of_garbage_collection() -> None:
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        serving_app(load_settings(_env_file=None))
        assert gc.get_freeze_count() > 10_000  # modules, routes, models: not scanned again
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
