"""The teardown phase: the run torn down from its state file; what is left fails the phase (exit 14)."""

from __future__ import annotations

from testbed.run.outcome import TeardownResult
from testbed.teardown.teardown import teardown_run_id


def teardown_phase(run_id: str, grace: float = 5.0) -> TeardownResult:

    result = teardown_run_id(run_id, grace=grace)
    if not result.ok:
        error = result.error()
        error.details |= result.as_dict()
        raise error
    return result
