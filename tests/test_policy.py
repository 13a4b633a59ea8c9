"""Poll schedule, retry decisions and the shared poll budget: pure arithmetic, no sleeping."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable

import pytest

from maxapi_async._protocol.errors import ConfigurationError
from maxapi_async._protocol.policy import (
    DEFAULT_RETRY_STATUSES,
    FailedAfterSend,
    FailedBeforeSend,
    PollPolicy,
    RetryPolicy,
    StatusOutcome,
    TokenBucket,
)

# -- the benchmark: tasks finishing uniformly in 1-10 s -----------------------------------

TASKS = 5_000


def simulate(next_delay: Callable[[float], float], finish_at: list[float]) -> tuple[list[int], list[float]]:
    """Polls per task and lag (detection time minus completion time) for a poll schedule."""
    polls: list[int] = []
    lags: list[float] = []
    for done_at in finish_at:
        now, count = 0.0, 0
        while True:
            now += next_delay(now)
            count += 1
            if now >= done_at:
                break
        polls.append(count)
        lags.append(now - done_at)
    return polls, lags


@pytest.fixture(scope="module")
def finish_at() -> list[float]:
    rng = random.Random(2024)
    return [rng.uniform(1.0, 10.0) for _ in range(TASKS)]


@pytest.fixture(scope="module")
def fixed_1s(finish_at: list[float]) -> tuple[list[int], list[float]]:
    return simulate(lambda _: 1.0, finish_at)


@pytest.fixture(scope="module")
def default_policy(finish_at: list[float]) -> tuple[list[int], list[float]]:
    policy, rng = PollPolicy(), random.Random(7)
    return simulate(lambda now: policy.next_delay(now, rng=rng), finish_at)


def test_the_fixed_1s_poller_baseline_is_six_polls_and_half_a_second(
    fixed_1s: tuple[list[int], list[float]],
) -> None:
    polls, lags = fixed_1s
    assert statistics.fmean(polls) == pytest.approx(6.0, abs=0.1)
    assert statistics.fmean(lags) == pytest.approx(0.5, abs=0.02)


def test_default_poll_policy_has_mean_lag_under_one_second(
    default_policy: tuple[list[int], list[float]],
) -> None:
    _, lags = default_policy
    assert statistics.fmean(lags) <= 1.0


def test_default_poll_policy_uses_at_most_half_the_polls_of_a_fixed_1s_poller(
    default_policy: tuple[list[int], list[float]], fixed_1s: tuple[list[int], list[float]]
) -> None:
    assert statistics.fmean(default_policy[0]) <= 0.5 * statistics.fmean(fixed_1s[0])


def test_default_poll_policy_p99_lag_stays_under_three_seconds(
    default_policy: tuple[list[int], list[float]],
) -> None:
    _, lags = default_policy
    assert sorted(lags)[int(0.99 * len(lags))] < 3.0


def test_a_late_task_is_still_seen_within_max_delay() -> None:
    policy, rng = PollPolicy(), random.Random(1)
    _, lags = simulate(lambda now: policy.next_delay(now, rng=rng), [30.0, 95.5, 600.0])
    assert max(lags) <= policy.max_delay * (1 + policy.jitter)


# -- the poll schedule ------------------------------------------------------------------


def test_the_first_poll_waits_for_the_window_to_open_plus_one_step() -> None:
    policy = PollPolicy()
    assert policy.nominal_delay(0.0) == pytest.approx(1.0 + 0.8 * 3.0)


def test_steps_shrink_inside_the_window() -> None:
    policy = PollPolicy()
    steps = [policy.nominal_delay(t) for t in (3.4, 5.0, 7.0, 9.0)]
    assert steps == sorted(steps, reverse=True)


def test_steps_never_go_below_the_floor() -> None:
    assert PollPolicy().nominal_delay(9.99) == 0.5


def test_overdue_steps_grow_geometrically_up_to_the_cap() -> None:
    policy = PollPolicy(jitter=0.0)
    now, steps = 10.0, []
    for _ in range(8):
        step = policy.next_delay(now)
        steps.append(step)
        now += step
    assert steps[:4] == pytest.approx([0.5, 0.75, 1.125, 1.6875])
    assert steps[-1] == 5.0


def test_jitter_stays_within_its_fraction() -> None:
    policy, rng = PollPolicy(), random.Random(3)
    nominal = policy.nominal_delay(5.0)
    delays = [policy.next_delay(5.0, rng=rng) for _ in range(1000)]
    assert nominal * 0.75 <= min(delays) < max(delays) <= nominal * 1.25


def test_jitter_is_deterministic_given_a_seeded_rng() -> None:
    policy = PollPolicy()
    first = [policy.next_delay(t, rng=random.Random(5)) for t in (0.0, 4.0, 12.0)]
    again = [policy.next_delay(t, rng=random.Random(5)) for t in (0.0, 4.0, 12.0)]
    assert first == again


def test_retry_after_replaces_the_step() -> None:
    assert PollPolicy(jitter=0.0).next_delay(0.0, retry_after=2.0) == 2.0


def test_retry_after_is_only_jittered_upward() -> None:
    policy, rng = PollPolicy(), random.Random(9)
    delays = [policy.next_delay(5.0, retry_after=2.0, rng=rng) for _ in range(200)]
    assert 2.0 <= min(delays) <= max(delays) <= 2.5


def test_retry_after_is_capped() -> None:
    assert PollPolicy(jitter=0.0).next_delay(0.0, retry_after=3600.0) == 60.0


def test_retry_after_never_goes_below_the_floor() -> None:
    assert PollPolicy(jitter=0.0).next_delay(0.0, retry_after=0.0) == 0.5


@pytest.mark.parametrize("hint", [-1.0, math.nan, math.inf])
def test_unusable_retry_after_is_ignored(hint: float) -> None:
    policy = PollPolicy(jitter=0.0)
    assert policy.next_delay(4.0, retry_after=hint) == policy.nominal_delay(4.0)


@pytest.mark.parametrize("elapsed", [-5.0, math.nan])
def test_a_skewed_clock_restarts_the_schedule(elapsed: float) -> None:
    policy = PollPolicy()
    assert policy.nominal_delay(elapsed) == policy.nominal_delay(0.0)


@pytest.mark.parametrize("elapsed", [0.0, 5.0, 50.0])
def test_an_instant_poll_policy_never_waits(elapsed: float) -> None:
    policy = PollPolicy.instant()
    assert policy.next_delay(elapsed) == 0.0
    assert policy.next_delay(elapsed, retry_after=30.0) == 0.0


@pytest.mark.parametrize(
    "options",
    [{"initial": -1.0}, {"jitter": 1.0}, {"multiplier": 0.5}, {"latest": 0.5}, {"max_delay": math.inf}],
)
def test_bad_poll_options_are_configuration_errors(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PollPolicy(**options)


# -- retry decisions --------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(DEFAULT_RETRY_STATUSES))
@pytest.mark.parametrize("safe", [True, False], ids=["GET", "POST"])
def test_transient_statuses_are_retried_for_every_method(status: int, safe: bool) -> None:
    decision = RetryPolicy().decide(attempt=1, method_is_safe=safe, outcome=StatusOutcome(status))
    assert decision.retry


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    decision = RetryPolicy().decide(attempt=1, method_is_safe=True, outcome=StatusOutcome(status))
    assert not decision.retry
    assert str(status) in decision.reason


@pytest.mark.parametrize("safe", [True, False], ids=["GET", "POST"])
def test_a_failure_before_sending_is_retried_for_every_method(safe: bool) -> None:
    decision = RetryPolicy().decide(attempt=1, method_is_safe=safe, outcome=FailedBeforeSend("refused"))
    assert decision.retry


def test_a_failure_after_sending_is_retried_for_a_get() -> None:
    decision = RetryPolicy().decide(attempt=1, method_is_safe=True, outcome=FailedAfterSend("reset"))
    assert decision.retry


def test_a_failure_after_sending_is_never_retried_for_a_post() -> None:
    decision = RetryPolicy().decide(attempt=1, method_is_safe=False, outcome=FailedAfterSend("reset"))
    assert not decision.retry
    assert "charged" in decision.reason


def test_retries_stop_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    decisions = [policy.decide(attempt=n, method_is_safe=True, outcome=StatusOutcome(503)) for n in (1, 2, 3)]
    assert [d.retry for d in decisions] == [True, True, False]


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 30, 5000])
def test_backoff_is_full_jitter_under_the_exponential_ceiling(attempt: int) -> None:
    policy, rng = RetryPolicy(), random.Random(attempt)
    ceiling = min(20.0, 0.5 * 2.0 ** (attempt - 1)) if attempt < 100 else 20.0
    delays = [policy.backoff(attempt, rng=rng) for _ in range(300)]
    assert 0.0 <= min(delays) < ceiling * 0.1
    assert ceiling * 0.9 < max(delays) <= ceiling


def test_retry_after_is_used_as_the_retry_delay() -> None:
    outcome = StatusOutcome(429, retry_after=7.0)
    assert RetryPolicy().decide(attempt=1, method_is_safe=False, outcome=outcome).delay == 7.0


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("safe", [True, False], ids=["GET", "POST"])
def test_a_retry_after_longer_than_the_cap_is_not_waited_for(status: int, safe: bool) -> None:
    # Retrying before the hour the service asked for is refused anyway: fail now, not after 120 s.
    outcome = StatusOutcome(status, retry_after=3600.0)
    decision = RetryPolicy().decide(attempt=1, method_is_safe=safe, outcome=outcome)
    assert (decision.retry, decision.delay) == (False, 0.0)
    assert "Retry-After 3600 s" in decision.reason
    assert "60 s" in decision.reason


def test_a_retry_after_at_the_cap_is_still_waited_for() -> None:
    outcome = StatusOutcome(429, retry_after=60.0)
    decision = RetryPolicy().decide(attempt=1, method_is_safe=True, outcome=outcome)
    assert (decision.retry, decision.delay) == (True, 60.0)


def test_a_retry_after_past_the_deadline_is_not_waited_for() -> None:
    # Within the cap, but the call has 10 s left.
    outcome = StatusOutcome(429, retry_after=30.0)
    decision = RetryPolicy().decide(attempt=1, method_is_safe=False, outcome=outcome, remaining=10.0)
    assert (decision.retry, decision.delay) == (False, 0.0)
    assert "deadline" in decision.reason


def test_an_instant_policy_refuses_a_long_retry_after_like_the_default() -> None:
    long, short = StatusOutcome(429, retry_after=3600.0), StatusOutcome(429, retry_after=30.0)
    assert not RetryPolicy.instant().decide(attempt=1, method_is_safe=True, outcome=long).retry
    decision = RetryPolicy.instant().decide(attempt=1, method_is_safe=True, outcome=short)
    assert (decision.retry, decision.delay) == (True, 0.0)


def test_wait_scale_scales_the_wait_not_the_decision() -> None:
    policy = RetryPolicy(wait_scale=0.01)
    assert policy.decide(
        attempt=1, method_is_safe=True, outcome=StatusOutcome(429, retry_after=50.0)
    ).delay == (pytest.approx(0.5))
    assert not policy.decide(
        attempt=1, method_is_safe=True, outcome=StatusOutcome(429, retry_after=61.0)
    ).retry


def test_no_retry_when_the_wait_would_pass_the_deadline() -> None:
    outcome = StatusOutcome(429, retry_after=7.0)
    decision = RetryPolicy().decide(attempt=1, method_is_safe=True, outcome=outcome, remaining=5.0)
    assert not decision.retry
    assert "deadline" in decision.reason


def test_a_no_retry_policy_never_retries() -> None:
    decision = RetryPolicy.none().decide(attempt=1, method_is_safe=True, outcome=FailedBeforeSend())
    assert not decision.retry


def test_an_instant_retry_policy_retries_without_waiting() -> None:
    outcome = StatusOutcome(429, retry_after=30.0)
    decision = RetryPolicy.instant().decide(attempt=2, method_is_safe=True, outcome=outcome)
    assert (decision.retry, decision.delay) == (True, 0.0)


def test_retry_statuses_can_be_given_as_any_iterable() -> None:
    policy = RetryPolicy(retry_statuses={409})  # type: ignore[arg-type]
    assert policy.decide(attempt=1, method_is_safe=True, outcome=StatusOutcome(409)).retry


@pytest.mark.parametrize(
    "options", [{"max_attempts": 0}, {"initial": -1.0}, {"multiplier": 0.0}, {"wait_scale": -1.0}]
)
def test_bad_retry_options_are_configuration_errors(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)  # type: ignore[arg-type]


# -- the shared poll budget -------------------------------------------------------------


def test_the_burst_is_served_at_once() -> None:
    bucket = TokenBucket(rate=10.0, burst=5)
    assert [bucket.reserve(0.0) for _ in range(5)] == [0.0] * 5


def test_callers_past_the_burst_are_spaced_one_interval_apart() -> None:
    bucket = TokenBucket(rate=4.0, burst=1)
    assert [bucket.reserve(0.0) for _ in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 1), (10.0, 20), (3.0, 5), (7.5, 1)])
def test_simultaneous_reservations_never_exceed_the_rate_in_any_second(rate: float, burst: int) -> None:
    bucket = TokenBucket(rate=rate, burst=burst)
    starts = sorted(bucket.reserve(0.0) for _ in range(1_000))
    after_burst = starts[burst:]
    for i, start in enumerate(after_burst):
        # Slots in the window [start, start + 1): `rate` of them (rounded up for 7.5/s).
        in_window = sum(1 for s in after_burst[i : i + int(rate) + 2] if s < start + 1.0 - 1e-9)
        assert in_window <= math.ceil(rate)
    assert starts[-1] == pytest.approx((1_000 - burst) / rate)


def test_an_idle_bucket_refills_up_to_its_burst_only() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    for _ in range(3):
        bucket.reserve(0.0)
    waits = [bucket.reserve(100.0) for _ in range(4)]
    assert waits == [0.0, 0.0, 0.0, 0.5]


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.nan, 1), (1.0, 0)])
def test_bad_bucket_options_are_configuration_errors(rate: float, burst: int) -> None:
    with pytest.raises(ConfigurationError):
        TokenBucket(rate=rate, burst=burst)
