"""A fixed window read from the order of a gateway's answers, when it names no quota.

`WindowWatch` alone, fed answers as a client receives them: each test is a
gateway's pattern and what must (or must not) be read from it.
"""

from __future__ import annotations

import pytest

from vbs_async._windows import WindowWatch

LATENCY = 0.04


def window_answers(limit: int, period: float, windows: int, *, sent: float = 0.01):
    """A client sending every `sent` seconds at a window of `limit` per `period`:
    (started, ok) in the order the requests left."""
    answers = []
    for k in range(windows):
        begin = k * period
        answers += [(begin + i * sent, True) for i in range(limit)]
        # Refused from then until the window rolls over, a trickle a quarter second apart.
        at = begin + limit * sent
        while at < begin + period:
            answers.append((at, False))
            at += 0.25
    return answers


def feed(watch: WindowWatch, answers, *, answered_after: float = 0.3):
    """Each answer `answered_after` its start; the windows read, in order."""
    read = []
    for started, ok in answers:
        window = watch.answered(started, ok, started + answered_after, lambda: LATENCY)
        if window is not None:
            read.append(window)
    return read


def test_100_per_5_second_window_is_read_at_its_second_edge():
    read = feed(WindowWatch(), window_answers(100, 5.0, 4))
    assert read, "not read"
    window = read[0]
    assert (window.limit, window.period) == (100, 5.0)
    assert window.rate == 20.0
    # The crawl's first window and the one after it agree: read at the edge at 10 s.
    assert window.read_at == pytest.approx(10.0)


def test_a_calendar_second_is_read():
    read = feed(WindowWatch(), window_answers(50, 1.0, 4, sent=0.01))
    assert [(w.limit, w.period) for w in read][:1] == [(50, 1.0)]


def test_answers_that_overtake_each_other_are_read_in_the_order_the_requests_left():
    # A refusal comes back at once, a success after the backend's latency: by the time
    # they are answered a refused start may come in before the successes sent before it.
    answers = window_answers(100, 5.0, 4)
    watch = WindowWatch()
    read = []
    for started, ok in answers:
        answered = started + (0.04 if ok else 0.002)
        window = watch.answered(started, ok, answered, lambda: LATENCY)
        read += [window] if window is not None else []
    assert [(w.limit, w.period) for w in read][:1] == [(100, 5.0)]


def test_a_bucket_drawn_a_little_over_its_rate_is_not_read():
    # 51 a second at a 50/s bucket: one refusal a second, a success right after it.
    answers = []
    for i in range(51 * 6):
        at = i / 51
        answers.append((at, i % 51 != 50))
    assert feed(WindowWatch(), answers) == []


def test_edges_under_a_second_apart_are_a_buckets_interval_not_a_window():
    # Two refused, then ten through, every half second: no policy counts half seconds.
    answers = []
    for k in range(20):
        begin = k * 0.5
        answers += [(begin + i * 0.03, True) for i in range(10)]
        answers += [(begin + 0.35, False), (begin + 0.42, False)]
    assert feed(WindowWatch(), answers) == []


def test_windows_that_let_through_different_counts_are_not_read():
    answers = window_answers(100, 5.0, 1)
    answers += [(5 + at, ok) for at, ok in window_answers(60, 5.0, 1)]
    answers += [(10 + at, ok) for at, ok in window_answers(100, 5.0, 1)]
    assert feed(WindowWatch(), answers) == []


def test_edges_off_one_period_of_whole_seconds_are_not_read():
    # Windows of 5 s, then 6.5 s, then 5 s: a penalty box's, as long as the client took.
    answers = window_answers(100, 5.0, 1)
    answers += [(5 + at, ok) for at, ok in window_answers(100, 6.5, 1)]
    answers += [(11.5 + at, ok) for at, ok in window_answers(100, 5.0, 1)]
    assert feed(WindowWatch(), answers) == []


def test_what_is_kept_stays_bounded_however_long_the_answers_run():
    watch = WindowWatch()
    feed(watch, window_answers(100, 1.0, 300))
    assert len(watch._pending) < 100  # the memory bound is the behaviour
    assert len(watch._edges) <= 3


def loose_window_answers(limit: int, period: float, windows: int, *, wide: float):
    """As `window_answers`, but each edge seen `wide` seconds wide (the trickle through a
    long blackout slows as it lasts): its last refusal half of that before the window
    rolls over, its first success half of it after."""
    answers = []
    for k in range(windows):
        begin = k * period
        admitted = begin + wide / 2 if k else begin
        answers += [(admitted + i * 0.01, True) for i in range(limit)]
        last = begin + period - wide / 2
        at = admitted + limit * 0.01
        while at < last:
            answers.append((at, False))
            at += wide
        answers.append((last, False))  # the last refused, `wide` before the next admitted
    return answers


@pytest.mark.parametrize("wide", [2.0, 4.0, 6.0])
def test_a_minute_s_window_seen_a_few_seconds_loosely_is_read_as_a_minute(wide):
    # Edges seen seconds wide fit many whole seconds: the one whole minute among them is
    # a policy's unit. A trickle a quarter second apart read them closely, at 4 refusals a
    # second for the whole minute (1.40x a crawl's requests behind 300 a minute); slowed
    # as the blackout lasts, the window went unread.
    read = feed(WindowWatch(), loose_window_answers(300, 60.0, 4, wide=wide))
    assert read, "not read"
    assert (read[0].limit, read[0].period) == (300, 60.0)


@pytest.mark.parametrize("period", [50.0, 70.0, 120.0])
def test_a_window_other_than_a_minute_seen_loosely_is_not_read(period):
    # Many whole seconds fit and no minute among them (or more than a minute): not read.
    assert feed(WindowWatch(), loose_window_answers(300, period, 4, wide=6.0)) == []


def test_a_window_of_whole_seconds_seen_closely_is_read_as_such_near_a_minute():
    # Edges a fraction of a second wide: 59 s is read as 59, not taken for a minute.
    read = feed(WindowWatch(), loose_window_answers(300, 59.0, 4, wide=0.5))
    assert [(w.limit, w.period) for w in read][:1] == [(300, 59.0)]


def test_edges_seen_over_half_a_minute_wide_are_not_read_as_a_minute():
    # Edges 40 s wide: periods from 40 s to 80 s fit; a minute no more than the others.
    assert feed(WindowWatch(), loose_window_answers(300, 60.0, 5, wide=40.0)) == []


def probed_second_answers(limit: int, probes: int, *, every: float = 3.0):
    """A client paced just under `limit` a calendar second, probing above it every
    `every` seconds: each probe spends its second's count and is refused to the end of
    it (a run of refusals a tenth of a second long), every other second goes through."""
    pace = 0.97 * limit
    answers = []
    for second in range(round(every * probes) + 1):
        if second % round(every) == 0 and second:
            # The probe: the whole count in 0.9 s, then refused until the rollover.
            answers += [(second + i * 0.9 / limit, True) for i in range(limit)]
            answers += [(second + 0.9 + i * 0.02, False) for i in range(5)]
        else:
            answers += [(second + i / pace, True) for i in range(round(pace))]
    return answers


def test_a_second_s_window_probed_every_few_seconds_is_not_read_as_a_longer_one():
    # Edges 3 s apart, as many let through between each: 50 per 1 s fits them as well as
    # 145 per 3 s, and the longer read lets the whole count go in a burst, which a
    # second's window refuses most of (28 refused in one second, fake clock).
    read = feed(WindowWatch(), probed_second_answers(50, 6))
    assert all(window.period == 1.0 for window in read), read


@pytest.mark.parametrize(("limit", "period"), [(150, 3.0), (100, 2.0), (200, 4.0)])
def test_a_window_refused_longer_than_any_shorter_window_is_read_at_its_length(limit, period):
    # The count spent in a burst, then refused for the rest of the window: a shorter
    # window dividing it would have reopened during the refusals.
    read = feed(WindowWatch(), window_answers(limit, period, 4, sent=0.005))
    assert [(w.limit, w.period) for w in read][:1] == [(limit, period)]
