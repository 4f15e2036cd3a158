"""Steps that retry their errors, never their cancel (``lakehouse_assets.retries``).

The cancel itself, through a real daemon and run worker, is tested in
``test_faults.py::test_a_run_cancelled_mid_step_ends_cancelled_with_its_jvm_and_its_day_is_scored``
(its Bronze case failed before: the cancelled step was retried and the run ended SUCCESS).
"""

# No `from __future__ import annotations`: Dagster reads the context annotation at runtime.
import pytest
from dagster import (
    AssetExecutionContext,
    Backoff,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    Failure,
    RetryPolicy,
    asset,
    materialize,
)

from lakehouse_assets.bronze import bronze_assets
from lakehouse_assets.gold.quality import data_quality_daily
from lakehouse_assets.retries import retried_on_error

pytestmark = pytest.mark.fast

POLICY = RetryPolicy(max_retries=2, delay=0.01, backoff=Backoff.EXPONENTIAL)


def flaky(failures: list[BaseException]):
    """An asset that raises the next of ``failures`` on each attempt, then succeeds."""

    @asset
    def source(context: AssetExecutionContext) -> int:
        with retried_on_error(context, POLICY):
            if context.retry_number < len(failures):
                raise failures[context.retry_number]
            return context.retry_number

    return source


def events(result, kind: DagsterEventType) -> list:
    return [e for e in result.all_events if e.event_type == kind]


def test_an_error_is_retried_with_the_policys_backoff_until_it_passes():
    result = materialize([flaky([OSError("bucket slow"), Failure("source restarting")])])
    assert result.success
    assert result.output_for_node("source") == 2  # the third attempt
    retries = events(result, DagsterEventType.STEP_UP_FOR_RETRY)
    assert len(retries) == 2
    waits = [r.event_specific_data.seconds_to_wait for r in retries]
    assert waits == pytest.approx([0.01, 0.03])  # (2^n - 1) x the delay: n counts from 1
    assert "bucket slow" in retries[0].event_specific_data.error.to_string()


def test_retries_end_after_the_policys_maximum_with_the_last_error():
    result = materialize([flaky([OSError(f"down {n}") for n in range(3)])], raise_on_error=False)
    assert not result.success
    assert len(events(result, DagsterEventType.STEP_UP_FOR_RETRY)) == 2
    [failure] = events(result, DagsterEventType.STEP_FAILURE)
    assert "down 2" in failure.event_specific_data.error.to_string()


def test_a_failure_that_allows_no_retry_fails_at_once():
    result = materialize(
        [flaky([Failure("misconfigured", allow_retries=False)])], raise_on_error=False
    )
    assert not result.success
    assert events(result, DagsterEventType.STEP_UP_FOR_RETRY) == []


@pytest.mark.parametrize("interrupt", [DagsterExecutionInterruptedError, KeyboardInterrupt])
def test_an_interrupt_is_not_retried(interrupt):
    # (Under a retry policy, Dagster's in-process executor retries it: dagster-io/dagster#15026.)
    result = materialize([flaky([interrupt()])], raise_on_error=False)
    assert not result.success  # a run worker cancelled from the UI marks it CANCELED
    assert events(result, DagsterEventType.STEP_UP_FOR_RETRY) == []
    [failure] = events(result, DagsterEventType.STEP_FAILURE)
    assert failure.event_specific_data.error_source.value == "INTERRUPT"


def test_the_steps_that_retry_carry_no_retry_policy_dagster_would_apply_to_a_cancel():
    retrying = [*bronze_assets, data_quality_daily]
    assert [a.op.name for a in retrying if a.op.retry_policy is not None] == []
