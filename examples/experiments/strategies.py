"""A custom experiment strategy: `cascade`, the cheapest config that answers.

Use it as `strategy: examples.experiments.strategies.cascade` (an import path under
`MAHSM_CODE_MODULES`, default `examples`). For each dataset row (or once, without a dataset)
the configs run one after another in their order; the first that succeeds answers, and the
ones after it are recorded as `skipped`. List cheap configs first: the summary then shows how
often each tier was needed. Workflow code: deterministic, it only creates and runs branches.
"""

from __future__ import annotations

from mahsm.experiments.models import BranchStatus
from mahsm.experiments.strategies import BranchRunner


async def cascade(runner: BranchRunner) -> None:
    """Run configs in order per row until one succeeds; mark the rest skipped."""
    request = runner.request
    rows = request.dataset or []
    for row in range(max(1, len(rows))):
        inputs = dict(rows[row].inputs) if rows else {}
        answered = False
        for index in range(len(request.configs)):
            branch = runner.new_branch(index, row=row if rows else None)
            if answered:
                branch.status = BranchStatus.SKIPPED
                continue
            await runner.run_branch(branch, inputs)
            answered = branch.status == BranchStatus.SUCCESS
