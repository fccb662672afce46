"""The frame budget: a sustained flood reaches the close rule even though the bucket keeps refilling."""

from __future__ import annotations

from apps.devices.rate_limit import FrameBudget, Verdict, frame_cost


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sustained_flood_above_the_rate_is_closed_although_tokens_trickle_back():
    # given 50 frames/s, burst 10, close after 100 drops; a client sending 680 frames/s
    clock = FakeClock()
    budget = FrameBudget(rate=50, burst=10, close_after=100, clock=clock)
    verdicts = []
    # when it keeps flooding for two seconds (a token comes back every 20 ms)
    for _ in range(1360):
        clock.now += 1 / 680
        verdicts.append(budget.take())
    # then it was warned once and then closed
    assert verdicts.count(Verdict.DROP_AND_WARN) == 1
    assert Verdict.CLOSE in verdicts
    assert Verdict.ACCEPT in verdicts[verdicts.index(Verdict.DROP_AND_WARN) :]  # refills did happen


def test_a_quiet_client_starts_over_after_the_bucket_refills():
    # given a client that was dropped a few times
    clock = FakeClock()
    budget = FrameBudget(rate=10, burst=2, close_after=5, clock=clock)
    for _ in range(5):
        budget.take()
    assert budget.dropped == 3
    # when it stays quiet until the bucket is full again
    clock.now += 1.0
    # then its drop count is forgotten
    assert budget.take() is Verdict.ACCEPT
    assert budget.dropped == 0


def test_big_frames_cost_more():
    assert frame_cost(100) == 1
    assert frame_cost(4 * 1024 * 1024) == 65


def test_a_refund_gives_back_what_was_spent_but_never_more_than_the_bucket():
    # given a bucket of two, both spent
    budget = FrameBudget(rate=1, burst=2, close_after=10, clock=FakeClock())
    assert budget.take() is Verdict.ACCEPT
    assert budget.take() is Verdict.ACCEPT
    # when one frame is refunded, and then three more
    budget.refund()
    # then one more frame fits, and no more
    assert budget.take() is Verdict.ACCEPT
    assert budget.take() is Verdict.DROP_AND_WARN
    for _ in range(3):
        budget.refund()
    verdicts = [budget.take(), budget.take(), budget.take()]
    assert verdicts[:2] == [Verdict.ACCEPT, Verdict.ACCEPT]
    assert verdicts[2] is not Verdict.ACCEPT
