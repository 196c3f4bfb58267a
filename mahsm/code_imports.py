"""Importing code that a client names: only from the packages the operator allowed.

A pipeline names Python code by import path (a transform's `function`, a DSPy step's
`signature_class` or `program`, an optimization's `program`). Importing a module runs it, so
a client must not choose any module of the process: only modules under `MAHSM_CODE_MODULES`
(default `examples`) are imported for it, checked by the API at submit and again where the
code runs. Entry points are installed by the operator and need no allowing.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from mahsm.settings import get_settings


class CodeNotAllowed(ImportError):
    """The module is outside `MAHSM_CODE_MODULES`."""


def allowed(module_name: str, packages: list[str] | None = None) -> bool:
    """True when `module_name` is one of `packages` (the setting by default) or inside one."""
    packages = get_settings().code_modules if packages is None else packages
    return any(module_name == p or module_name.startswith(p + ".") for p in packages)


def import_allowed(module_name: str) -> ModuleType:
    """Import `module_name` if allowed; the working directory counts as on the path.

    Raises:
        CodeNotAllowed: It is outside `MAHSM_CODE_MODULES` (nothing was imported).
        ImportError: It cannot be imported.
    """
    packages = get_settings().code_modules
    if not allowed(module_name, packages):
        raise CodeNotAllowed(
            f"module '{module_name}' is not in MAHSM_CODE_MODULES"
            f" ({', '.join(packages) or 'empty'}); add its package there on the workers and"
            " the API, or register the code as an entry point"
        )
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError:
        cwd = os.getcwd()
        if cwd in sys.path:
            raise
        sys.path.append(cwd)  # console scripts do not have the working directory on the path
        return importlib.import_module(module_name)
