"""The shipped DSPy examples run: the pipeline file on the engine, the notebook script."""

from __future__ import annotations

from pathlib import Path

import yaml

from mahsm.contracts.pipeline import Pipeline
from mahsm.contracts.task import TaskStatus
from mahsm.pipelines import validate_pipeline
from tests.dspy.helpers import activity_ids, run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dspy"


async def test_the_triage_example_runs_on_its_scenario(engine_factory) -> None:
    pipeline = Pipeline.model_validate(yaml.safe_load((EXAMPLES / "triage.yaml").read_text()))
    assert validate_pipeline(pipeline) == []
    scenario = yaml.safe_load((EXAMPLES / "scenario.yaml").read_text())
    async with engine_factory(scenario) as engine:
        handle = await engine.start(run(pipeline, ticket="I was charged twice, 19.90 each"))
        state = await handle.result()
        history = await handle.fetch_history()
    assert state.status == TaskStatus.COMPLETED, state.error
    assert state.outputs == {
        "category": "billing",
        "urgent": True,
        "team": "billing",
        "refund_eur": 19.9,
        "reply": "Sorry for the double charge; we refunded 19.90 EUR.",
        "polite": True,
    }
    ids = activity_ids(history.events)
    assert [i for i in ids if i.startswith("refund/")] == [
        "refund/dspy-0",
        "refund/tool-0",
        "refund/dspy-1",
        "refund/dspy-2",
    ]
    assert [i for i in ids if i.startswith("reply/")] == ["reply/dspy-0", "reply/dspy-1"]


def test_the_notebook_example_runs_outside_a_workflow(monkeypatch, data_dir: Path) -> None:
    monkeypatch.setenv("MAHSM_SCRIPTED_SCENARIO", str(EXAMPLES / "scenario.yaml"))
    monkeypatch.setenv("MAHSM_DATA_DIR", str(data_dir))
    from examples.dspy.notebook import classify
    from mahsm.activities import dspy_lm

    dspy_lm._default_settings.cache_clear()
    result = classify("I was charged twice")
    assert (result.category, result.urgent, result.confidence) == ("billing", True, 0.9)
