"""Fixtures of the `mahsm up` tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.devstack.up_harness import Stack, make_stack


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A `mahsm up` environment on free ports with a throwaway data dir."""
    yield from make_stack()


@pytest.fixture
def stack_with_mlflow() -> Iterator[Stack]:
    """Like `stack`, with the MLflow tracking server `mahsm up` starts by default."""
    yield from make_stack(mlflow_server=True)
