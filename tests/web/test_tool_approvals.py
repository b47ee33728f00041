"""The chat UI's approvals (modules/web/tool_turns.py): an answer reaches only a call that
waits for one, Stop ends every wait, and an answer that comes before the wait is kept."""

from __future__ import annotations

import threading

from modules.web.tool_turns import Approvals


def test_an_answer_for_a_call_that_does_not_wait_is_dropped():
    approvals = Approvals()
    approvals.answer("call_x", True)  # nobody asked
    approvals.expect("call_x")
    approvals.stop()
    assert approvals.wait("call_x") is None


def test_an_answer_right_after_the_question_is_not_lost():
    approvals = Approvals()
    approvals.expect("call_1")
    approvals.answer("call_1", False)  # the page answered before the loop began to wait
    assert approvals.wait("call_1") is False
    approvals.answer("call_1", True)  # answered twice: the second is dropped
    approvals.expect("call_2")
    threading.Timer(0.05, approvals.answer, ("call_2", True)).start()
    assert approvals.wait("call_2") is True


def test_stop_ends_a_wait():
    approvals = Approvals()
    approvals.expect("call_1")
    threading.Timer(0.05, approvals.stop).start()
    assert approvals.wait("call_1") is None
    assert approvals.stopped
