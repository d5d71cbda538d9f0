"""A failed version is applied again once per new retry token: the transaction's next step and
the inbox's view of a desired state that differs only in its retry token. Pure."""

from datetime import UTC, datetime

import pytest

from flotta.agent.rollout_journal import RolloutRecord, Transaction, next_step
from flotta.schemas.codec import content_version, decode, encode, with_version
from flotta.schemas.wire import DesiredState, VersionFailure

FAILED = VersionFailure(version="v2", reason="crash-loop", time=datetime(2026, 1, 1, tzinfo=UTC))
FAILED_ON_RETRY_2 = VersionFailure(
    version="v2", reason="crash-loop", time=datetime(2026, 1, 1, tzinfo=UTC), retry=2
)


@pytest.mark.parametrize(
    ("desired", "retry", "record", "step"),
    [
        ("v2", 0, RolloutRecord(failed=FAILED), "keep"),  # no retry asked
        ("v2", 1, RolloutRecord(failed=FAILED), "apply"),  # a new token: once more
        ("v2", 2, RolloutRecord(failed=FAILED_ON_RETRY_2), "keep"),  # failed under it already
        ("v2", 1, RolloutRecord(failed=FAILED_ON_RETRY_2), "keep"),  # an older token
        ("v2", 3, RolloutRecord(failed=FAILED_ON_RETRY_2), "apply"),
        ("v3", 0, RolloutRecord(failed=FAILED_ON_RETRY_2), "apply"),  # another version
        ("v1", 5, RolloutRecord(failed=FAILED), "keep"),  # the good version runs
        # A retry under way is finished even if the token went away meanwhile.
        (
            "v2",
            0,
            RolloutRecord(transaction=Transaction(version="v2", retry=1), failed=FAILED),
            "apply",
        ),
    ],
)
def test_a_failed_version_is_applied_again_once_per_new_token(
    desired: str, retry: int, record: RolloutRecord, step: str
) -> None:
    assert next_step(desired, "v1", record, window_open=True, retry=retry) == step


def test_the_retry_token_is_not_part_of_the_version_and_is_left_out_when_0() -> None:
    state = with_version(DesiredState(device_id="d1", namespace="default"))
    retried = DesiredState(device_id="d1", namespace="default", version=state.version, retry=3)
    assert content_version(retried) == state.version
    assert b'"retry"' not in encode(state)
    assert decode(DesiredState, encode(retried)).retry == 3
