"""A step's errors retried, and never its cancel.

A step with a Dagster ``RetryPolicy`` is retried also when its run is cancelled during it:
the in-process executor's error boundary turns the interrupt into a retry, and the cancelled
run goes on to the end (dagster-io/dagster#15026). So the steps that retry (Bronze's sources,
the quality report) carry no policy: they raise ``RetryRequested`` themselves, for an
``Exception`` only. A cancel (``DagsterExecutionInterruptedError`` or ``KeyboardInterrupt``,
both ``BaseException``) ends the step, and the run is cancelled. Dagster shows these retries
as it shows a policy's: the step's attempts, the wait and the error of each.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import AssetExecutionContext, DagsterError, Failure, RetryPolicy, RetryRequested


@contextmanager
def retried_on_error(context: AssetExecutionContext, policy: RetryPolicy) -> Iterator[None]:
    """Retry the step on an error raised in the block, after ``policy``'s delay; a
    ``Failure(allow_retries=False)`` fails it at once, as it would under the policy."""
    try:
        yield
    except DagsterError:  # Dagster's own (a misused API): never retried by a policy either
        raise
    except Failure as failure:
        if not failure.allow_retries:
            raise
        raise _retry(context, policy) from failure
    except RetryRequested:
        raise
    except Exception as exc:
        raise _retry(context, policy) from exc


def _retry(context: AssetExecutionContext, policy: RetryPolicy) -> RetryRequested:
    attempt = context.retry_number + 1  # the policy's count: 1 for the first retry
    return RetryRequested(
        max_retries=policy.max_retries, seconds_to_wait=policy.calculate_delay(attempt)
    )
