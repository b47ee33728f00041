"""The thread governor picks the faster thread count for each kind of step, and keeps checking."""

from modules.engines.llamacpp.threads import EXPLORE_BUSY, EXPLORE_QUIET, WINDOW, ThreadGovernor


def simulate(governor: ThreadGovernor, cost_per_token: dict[int, float], steps: int, n_tokens: int = 4):
    used = []
    for _ in range(steps):
        threads = governor.choose(n_tokens)
        governor.record(n_tokens, threads, cost_per_token[threads] * n_tokens)
        used.append(threads)
    return used


def test_single_tokens_start_on_the_generation_threads():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    assert governor.choose(1) == 1


def test_single_tokens_move_to_more_threads_when_they_measure_faster():
    """On a quiet machine one-token steps ran ~9.5 ms on 2 threads against ~14 on 1."""
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = simulate(governor, {2: 0.0095, 1: 0.014}, steps=200, n_tokens=1)
    # The configured count for a full window, then a try of two steps (one measured).
    assert used[: WINDOW + 2] == [1] * WINDOW + [2, 2]
    assert used[WINDOW + 2 :].count(1) == 200 // EXPLORE_QUIET  # then one thread is tried rarely
    assert governor.choose(4) == 2  # batched steps keep their own judgement


def test_single_tokens_go_back_to_the_generation_threads_when_the_machine_gets_busy():
    """With another program on one of the 2 cores, one-token steps on 2 threads took twice as
    long as on 1 (a slowdown that never reaches SLOWER: the window's median must see it)."""
    governor = ThreadGovernor(threads=1, threads_batch=2)
    simulate(governor, {2: 0.0095, 1: 0.014}, steps=100, n_tokens=1)
    used = simulate(governor, {2: 0.030, 1: 0.014}, steps=200, n_tokens=1)
    assert used[:10].count(2) <= 4  # three slow steps move the window's median
    # Then tries of two threads, two steps each, after 24, 48 and 96 steps on one.
    assert used[10:].count(2) <= 2 * 3


def test_it_prefers_the_faster_count_and_still_explores():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = simulate(governor, {2: 0.005, 1: 0.010}, steps=200)  # idle machine: 2 threads win
    assert used[: WINDOW + 1] == [2] * WINDOW + [1]  # the configured count, then an early try
    assert used.count(1) == 1 + 200 // EXPLORE_QUIET  # then tried rarely


def test_a_prompt_step_never_tries_the_slower_count_without_a_reason():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = simulate(governor, {2: 0.004, 1: 0.010}, steps=EXPLORE_QUIET - 1, n_tokens=200)
    assert used == [2] * (EXPLORE_QUIET - 1)


def test_a_step_much_slower_than_usual_tries_the_other_count_at_once():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    simulate(governor, {2: 0.005, 1: 0.010}, steps=10)
    governor.record(4, 2, 0.050 * 4)  # the machine got busy during this step
    assert governor.choose(4) == 1


def test_it_switches_when_the_machine_gets_busy():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    simulate(governor, {2: 0.005, 1: 0.010}, steps=100)
    used = simulate(governor, {2: 0.150, 1: 0.012}, steps=100)  # two threads collapse
    assert used[-50:].count(1) >= 47


def test_small_and_large_steps_are_judged_separately():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    simulate(governor, {2: 0.004, 1: 0.010}, steps=50, n_tokens=200)
    simulate(governor, {2: 0.050, 1: 0.010}, steps=50, n_tokens=4)
    assert [governor.choose(200) for _ in range(10)].count(2) >= 9  # big steps: 2 threads
    assert [governor.choose(4) for _ in range(10)].count(1) >= 9  # small steps: 1 thread


def test_single_slow_steps_do_not_move_it_to_one_thread():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = []
    for step in range(1, 301):
        threads = governor.choose(4)
        slow = threads == 2 and step % 7 == 0  # a step that waited for a core, now and then
        governor.record(4, threads, (0.007 * (2.2 if slow else 1.0) if threads == 2 else 0.012) * 4)
        used.append(threads)
    assert used.count(1) <= 1 + 300 // EXPLORE_QUIET  # the early try and the periodic ones only


def test_a_slow_first_step_does_not_move_the_first_requests_to_one_thread():
    """A server's first step of four streams took 80 ms on 2 threads (building the graph,
    touching memory), the next ones ~33; one thread took ~45. Judged by that first step
    alone, one thread won, and the first concurrent requests ran on it for 24 steps."""
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = []
    for step in range(100):
        threads = governor.choose(4)
        governor.record(4, threads, (0.020 if step == 0 else {2: 0.0083, 1: 0.0113}[threads]) * 4)
        used.append(threads)
    assert used[: WINDOW + 2] == [2] * WINDOW + [1, 2]  # the early try, after a full window
    assert used.count(1) == 1  # and no other in 100 steps


def test_the_step_that_wakes_sleeping_threads_is_not_held_against_them():
    """After a while on one thread, the first step on two waited for its second thread to wake
    (up to 240 ms instead of 30 here); the next ones run at the usual speed."""
    governor = ThreadGovernor(threads=1, threads_batch=2)
    simulate(governor, {2: 0.007, 1: 0.012}, steps=30)
    simulate(governor, {2: 0.150, 1: 0.013}, steps=30)  # busy: two threads collapse
    assert governor.choose(4) == 1
    used, previous = [], 1
    for _ in range(EXPLORE_QUIET):  # quiet again
        threads = governor.choose(4)
        cost = 0.060 if threads > previous else {2: 0.007, 1: 0.012}[threads]
        governor.record(4, threads, cost * 4)
        used.append(threads)
        previous = threads
    back = used.index(2)  # the next try of two threads
    assert back <= 2 * EXPLORE_BUSY and used[back:] == [2] * (len(used) - back)  # and they stay


def test_a_single_streams_drafted_steps_are_measured_between_its_one_token_steps():
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = []
    for _ in range(40):  # a busy machine; a drafted step now and then
        for _ in range(3):
            governor.record(1, governor.choose(1), 0.012)
        threads = governor.choose(4)
        governor.record(4, threads, {2: 0.150, 1: 0.012}[threads] * 4)
        used.append(threads)
    assert used[-20:].count(1) >= 18


def test_single_tokens_try_more_threads_seldom_on_a_busy_machine():
    """Beside a busy loop, a try of two threads for one token took 100-180 ms against ~17 ms
    on one thread: after 48, 96, 192 and 384 steps, then every 384, not every 96."""
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = simulate(governor, {2: 0.120, 1: 0.017}, steps=1000, n_tokens=1)
    assert used[: WINDOW + 2] == [1] * WINDOW + [2, 2]
    assert used.count(2) <= 2 * (1 + 4)  # the early try, then four in 1,000 steps


def test_more_threads_that_are_barely_faster_are_not_taken():
    """On a busy machine a step on two threads is now and then as fast as on one; taking
    them on that evidence cost several slow steps before the window's median turned."""
    governor = ThreadGovernor(threads=1, threads_batch=2)
    used = simulate(governor, {2: 0.0165, 1: 0.017}, steps=100, n_tokens=1)
    assert used[WINDOW + 2 :].count(2) <= 2  # after the early try, one more in 100 steps


def test_equal_counts_need_no_governing():
    governor = ThreadGovernor(threads=2, threads_batch=2)
    assert governor.choose(1) == 2 and governor.choose(300) == 2
