"""The conformance case table: per model, the steps to drive it and what must come out.

A case deploys its model files into an empty database, runs its steps in order, and then checks
the instance it started first (the *main* instance) and, by process id, any other instance the
steps created (a process started by a thrown message). Steps:

- `start(process, data, key)`: start an instance (business key `key`).
- `complete(element, data)`: complete the oldest ready user task of that element id, with data.
- `message(name, data, key)`: deliver a message by name (to the instances of business key `key`).
- `signal(name, data)`: broadcast a signal.
- `fire(after=…)` / `fire(at=…)`: fire the timers due at an instant: `after` a duration from
  now (the case's waits started "now", in every mode), or `at` an absolute ISO 8601 instant.
- `external(topic, complete=data)` / `external(topic, fail=message, retries=N)`: a worker fetches
  and locks one task of the topic, then completes or fails it.
- `check(status=…, ready=[…], path=[…])`: the main instance, at this point, has this status, these
  ready user tasks (element ids) and this path so far (not an action: nothing runs).

Expectations (`Expect`): the final status; the path (element ids in the order the audit trail
records them: `path_taken` events plus completed user tasks; a loop or
multi-instance activity appears once per child and once more when the activity itself completes;
a subprocess or call activity appears when it ends, also when an error, cancel or escalation end
event ended it; a step that ended in an incident records nothing, the case being kept as it was
before it); variables that must hold these
values, and names that must be absent; the user tasks created (element ids, sorted); open
incidents (element id, fragment of the message). A `refused` case instead expects deploy to
refuse the files with a sentence naming the element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class Step:
    """One action of a case."""

    kind: str
    args: dict[str, Any]

    def label(self) -> str:
        """Return a short human label of the step."""
        main = self.args.get("process") or self.args.get("element") or self.args.get("name") \
            or self.args.get("topic") or self.args.get("at") or self.args.get("after") or ""
        return f"{self.kind} {main}".strip()


def start(process: str, data: dict[str, Any] | None = None, key: str | None = None) -> Step:
    """Start an instance of a process."""
    return Step("start", {"process": process, "data": data or {}, "key": key})


def complete(element: str, data: dict[str, Any] | None = None) -> Step:
    """Complete the oldest ready user task of an element."""
    return Step("complete", {"element": element, "data": data or {}})


def message(name: str, data: dict[str, Any] | None = None, key: str | None = None) -> Step:
    """Deliver a message by name."""
    return Step("message", {"name": name, "data": data or {}, "key": key})


def signal(name: str, data: dict[str, Any] | None = None) -> Step:
    """Broadcast a signal."""
    return Step("signal", {"name": name, "data": data or {}})


def fire(*, after: timedelta | None = None, at: str | None = None) -> Step:
    """Fire the timers due at an instant (`after` from now, or `at` an ISO instant)."""
    return Step("fire", {"after": after, "at": at})


def check(*, status: str | None = None, ready: list[str] | None = None, path: list[str] | None = None) -> Step:
    """Check the main instance between steps: its status, ready user tasks (element ids), path so far."""
    return Step("check", {"status": status, "ready": ready, "path": path})


def external(topic: str, *, complete: dict[str, Any] | None = None, fail: str | None = None,
             retries: int | None = None) -> Step:
    """Fetch and lock one external task of a topic, then complete or fail it."""
    return Step("external", {"topic": topic, "complete": complete, "fail": fail, "retries": retries})


@dataclass(frozen=True)
class Expect:
    """What one instance must look like after the last step."""

    status: str
    path: list[str] | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    incidents: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """A model, the steps that drive it and the expected outcome."""

    name: str
    construct: str
    files: list[str]
    steps: list[Step] = field(default_factory=list)
    expect: Expect | None = None
    others: dict[str, Expect] = field(default_factory=dict)
    refused: tuple[str, str] | None = None  # (element id, fragment of the refusal sentence)


H = timedelta(hours=1)

CASES: list[Case] = [
    # ---- gateways
    Case("gateway_exclusive_condition", "Exclusive gateway: condition true", ["gateway_exclusive.bpmn"],
         [start("gateway_exclusive", {"amount": 500})],
         Expect("completed", ["start", "size", "big", "merge", "end"], {"route": "big"})),
    Case("gateway_exclusive_default", "Exclusive gateway: default flow", ["gateway_exclusive.bpmn"],
         [start("gateway_exclusive", {"amount": 5})],
         Expect("completed", ["start", "size", "small", "merge", "end"], {"route": "small"})),
    Case("gateway_inclusive", "Inclusive gateway: two of three conditions", ["gateway_inclusive.bpmn"],
         [start("gateway_inclusive", {"a": True, "b": True, "c": False})],
         Expect("completed", ["start", "which", "check_a", "check_b", "joined", "end"],
                {"done_a": True, "done_b": True}, absent=["done_c"])),
    Case("gateway_inclusive_none_true", "Inclusive gateway: no condition true (incident)",
         ["gateway_inclusive.bpmn"],
         [start("gateway_inclusive", {"a": False, "b": False, "c": False})],
         Expect("running", [], incidents=[("which", "condition")])),
    Case("gateway_parallel", "Parallel gateway: fork and join", ["gateway_parallel.bpmn"],
         [start("gateway_parallel"), complete("task_b"), complete("task_a")],
         Expect("completed", ["start", "fork", "task_b", "task_a", "join", "after", "end"], {"both": True},
                tasks=["task_a", "task_b"])),
    Case("gateway_juel_true", "Exclusive gateway, Camunda condition ${amount > 1000 && !rejected}: true",
         ["gateway_juel.bpmn"],
         [start("gateway_juel", {"amount": 5000, "rejected": False})],
         Expect("completed", ["start", "decide", "approve", "end_yes"], {"decision": "approved"})),
    Case("gateway_juel_false", "Exclusive gateway, Camunda condition ${amount > 1000 && !rejected}: false",
         ["gateway_juel.bpmn"],
         [start("gateway_juel", {"amount": 5000, "rejected": True})],
         Expect("completed", ["start", "decide", "reject", "end_no"], {"decision": "rejected"})),
    Case("gateway_event_based_message", "Event-based gateway: message first", ["gateway_event_based.bpmn"],
         [start("gateway_event_based", key="EB1"), message("Reply", {"answer": "yes"}, key="EB1"), fire(after=2 * H)],
         Expect("completed", ["start", "wait", "reply", "got_reply", "end_reply"],
                {"outcome": "reply", "answer": "yes"})),
    Case("gateway_event_based_timer", "Event-based gateway: timer first", ["gateway_event_based.bpmn"],
         [start("gateway_event_based", key="EB2"), check(status="running", path=["start"]), fire(after=2 * H)],
         Expect("completed", ["start", "wait", "deadline", "timed_out", "end_timeout"], {"outcome": "timeout"})),
    Case("gateway_event_two_timers", "Event-based gateway, two timers (1 hour first in the file, 30 minutes): the earlier fires",
         ["gateway_event_two_timers.bpmn"],
         [start("gateway_event_two_timers", key="EB3"), fire(after=timedelta(minutes=20)), check(status="running", path=["start"]),
          fire(after=timedelta(minutes=40))],
         Expect("completed", ["start", "wait", "reminder", "reminded", "end_reminder"], {"outcome": "reminder"})),
    Case("gateway_event_two_timers_overdue", "Event-based gateway, two timers both overdue at one look: only the earlier's way",
         ["gateway_event_two_timers.bpmn"],
         [start("gateway_event_two_timers", key="EB4"), fire(after=3 * H)],
         Expect("completed", ["start", "wait", "reminder", "reminded", "end_reminder"], {"outcome": "reminder"})),

    # ---- loops and multi-instance
    Case("loop_maximum", "Standard loop: loopMaximum (user task, 3 rounds)", ["loop_maximum.bpmn"],
         [start("loop_maximum"), check(ready=["review"]), complete("review"), check(ready=["review"]), complete("review"),
          complete("review")],
         Expect("completed", ["start", *["review"] * 4, "after", "end"], {"looped": True},
                tasks=["review", "review", "review"])),
    Case("loop_condition", "Standard loop: loopCondition (while not ok)", ["loop_condition.bpmn"],
         [start("loop_condition"), complete("attempt", {"ok": False}), complete("attempt", {"ok": True})],
         Expect("completed", ["start", *["attempt"] * 3, "end"], {"ok": True}, tasks=["attempt", "attempt"])),
    Case("loop_test_before", "Standard loop: testBefore (script, runs twice)", ["loop_test_before.bpmn"],
         [start("loop_test_before", {"n": 0, "limit": 2})],
         Expect("completed", ["start", *["count"] * 3, "end"], {"n": 2})),
    Case("loop_test_before_skip", "Standard loop: testBefore, condition already true (runs zero times)",
         ["loop_test_before.bpmn"],
         [start("loop_test_before", {"n": 5, "limit": 2})],
         Expect("completed", ["start", "count", "end"], {"n": 5})),
    Case("mi_parallel_cardinality", "Parallel multi-instance: cardinality", ["mi_parallel_cardinality.bpmn"],
         [start("mi_parallel_cardinality"), check(ready=["sign"] * 3), complete("sign"), complete("sign"),
          complete("sign")],
         Expect("completed", ["start", *["sign"] * 4, "after", "end"], {"signed": True},
                tasks=["sign", "sign", "sign"])),
    Case("mi_sequential_cardinality", "Sequential multi-instance: cardinality from a variable",
         ["mi_sequential_cardinality.bpmn"],
         [start("mi_sequential_cardinality", {"copies": 2}), check(ready=["sign"]), complete("sign"),
          check(ready=["sign"]), complete("sign")],
         Expect("completed", ["start", *["sign"] * 3, "after", "end"], {"signed": True}, tasks=["sign", "sign"])),
    Case("mi_parallel_collection", "Parallel multi-instance: collection and element variable (user task)",
         ["mi_parallel_collection.bpmn"],
         [start("mi_parallel_collection", {"items": ["a", "b"]}),
          complete("grade", {"item": "graded"}), complete("grade", {"item": "graded"})],
         Expect("completed", ["start", *["grade"] * 3, "end"], {"items": ["graded", "graded"]},
                tasks=["grade", "grade"])),
    Case("mi_sequential_collection", "Sequential multi-instance: input/output data items (script), then a "
         "collection (user task)", ["mi_sequential_collection.bpmn"],
         [start("mi_sequential_collection", {"numbers": [1, 2, 3]}),
          complete("check"), complete("check"), complete("check")],
         Expect("completed", ["start", *["double"] * 4, *["check"] * 4, "end"],
                {"doubled": [2, 4, 6]}, tasks=["check", "check", "check"])),
    Case("mi_business_rule", "Parallel multi-instance business rule task (DMN per item)",
         ["mi_business_rule.bpmn", "age_band.dmn"],
         [start("mi_business_rule", {"people": [15, 30, 70]})],
         Expect("completed", ["start", *["classify"] * 4, "end"],
                {"people": ["minor", "adult", "adult"]})),

    # ---- call activities and subprocesses
    Case("call_data", "Call activity: data in and out, a variable deleted by the callee",
         ["call_data.bpmn", "call_data_callee.bpmn"],
         [start("call_data", {"x": 21, "scratch": "temporary"}), complete("callee_review")],
         Expect("completed", ["start", "callee_start", "callee_review", "callee_work", "callee_end", "call",
                              "after", "end"], {"x": 21, "doubled": 42, "total": 43}, absent=["scratch"],
                tasks=["callee_review"])),
    Case("call_nested", "Nested call activities (two levels), data up and down",
         ["call_nested.bpmn", "call_nested_middle.bpmn", "call_nested_leaf.bpmn"],
         [start("call_nested", {"levels": ["top"]}), complete("leaf_task", {"answer": "42"})],
         Expect("completed", ["start", "middle_start", "middle_mark", "leaf_start", "leaf_task", "leaf_mark",
                              "leaf_end", "call_leaf", "middle_end", "call_middle", "end"],
                {"levels": ["top", "middle", "leaf"], "answer": "42"}, tasks=["leaf_task"])),
    Case("call_error", "Call activity: error thrown two levels down, caught by the caller's boundary event",
         ["call_error.bpmn", "call_error_middle.bpmn", "call_error_leaf.bpmn"],
         [start("call_error"), complete("leaf_decide")],
         Expect("completed", ["start", "middle_start", "leaf_start", "leaf_decide", "leaf_refuse", "call_leaf",
                              "call_middle", "refused",
                              "handle", "end_refused"], {"handled": True}, tasks=["leaf_decide"])),
    Case("subprocess_embedded", "Embedded subprocess", ["subprocess_embedded.bpmn"],
         [start("subprocess_embedded"), complete("sub_task", {"note": "hello"})],
         Expect("completed", ["start", "sub_start", "sub_task", "sub_end", "sub", "after", "end"],
                {"seen": "hello"}, tasks=["sub_task"])),
    Case("transaction_done", "Transaction: normal end", ["transaction.bpmn"],
         [start("transaction"), complete("book", {"outcome": "ok"})],
         Expect("completed", ["start", "tx_start", "book", "tx_outcome", "tx_done", "booking", "end_ok"],
                {"outcome": "ok"}, absent=["result"], tasks=["book"])),
    Case("transaction_cancel", "Transaction: cancel end event caught by the cancel boundary",
         ["transaction.bpmn"],
         [start("transaction"), complete("book", {"outcome": "cancel"})],
         Expect("completed", ["start", "tx_start", "book", "tx_outcome", "tx_cancel", "booking", "cancelled", "on_cancel",
                              "end_cancel"], {"result": "cancelled"}, tasks=["book"])),
    Case("transaction_error", "Transaction: error end event caught by the error boundary", ["transaction.bpmn"],
         [start("transaction"), complete("book", {"outcome": "error"})],
         Expect("completed", ["start", "tx_start", "book", "tx_outcome", "tx_error", "booking", "failed", "on_error",
                              "end_error"], {"result": "failed"}, tasks=["book"])),

    # ---- boundary events
    Case("boundary_timer_non_interrupting", "Boundary timer, non-interrupting (task goes on)",
         ["boundary_timer.bpmn"],
         [start("boundary_timer"), fire(after=2 * H), check(status="running", ready=["work"]), complete("work")],
         Expect("completed", ["start", "remind", "reminded", "end_remind", "work", "end"], {"reminders": 1},
                tasks=["work"])),
    Case("boundary_timer_interrupting", "Boundary timer, interrupting (task cancelled)", ["boundary_timer.bpmn"],
         [start("boundary_timer"), fire(after=2 * H), fire(after=25 * H)],
         Expect("completed", ["start", "remind", "reminded", "end_remind", "give_up", "gave_up", "end_expired"],
                {"outcome": "expired"}, tasks=["work"])),
    Case("boundary_message_non_interrupting", "Boundary message, non-interrupting", ["boundary_message.bpmn"],
         [start("boundary_message", key="BM1"), message("Note", {"text": "call me"}, key="BM1"),
          check(status="running", ready=["work"]), complete("work")],
         Expect("completed", ["start", "note", "noted", "end_note", "work", "end"], {"noted": True},
                tasks=["work"])),
    Case("boundary_message_interrupting", "Boundary message, interrupting", ["boundary_message.bpmn"],
         [start("boundary_message", key="BM2"), message("Withdraw", key="BM2")],
         Expect("completed", ["start", "withdraw", "withdrawn", "end_withdrawn"], {"outcome": "withdrawn"},
                tasks=["work"])),
    Case("boundary_signal_non_interrupting", "Boundary signal, non-interrupting", ["boundary_signal.bpmn"],
         [start("boundary_signal"), signal("Note"), check(status="running", ready=["work"]), complete("work")],
         Expect("completed", ["start", "note", "noted", "end_note", "work", "end"], {"noted": True},
                tasks=["work"])),
    Case("boundary_signal_interrupting", "Boundary signal, interrupting", ["boundary_signal.bpmn"],
         [start("boundary_signal"), signal("Withdraw")],
         Expect("completed", ["start", "withdraw", "withdrawn", "end_withdrawn"], {"outcome": "withdrawn"},
                tasks=["work"])),
    Case("boundary_error", "Boundary error on a subprocess (error end event inside)", ["boundary_error.bpmn"],
         [start("boundary_error", {"amount": -5}), complete("fix")],
         Expect("completed", ["start", "check_start", "valid", "check_invalid", "check", "invalid", "fix", "end_fixed"],
                tasks=["fix"])),
    Case("boundary_error_not_thrown", "Boundary error on a subprocess: no error, normal flow",
         ["boundary_error.bpmn"],
         [start("boundary_error", {"amount": 5}), complete("proceed")],
         Expect("completed", ["start", "check_start", "valid", "check_ok", "check", "proceed", "end"],
                tasks=["proceed"])),
    Case("boundary_escalation", "Boundary escalation: non-interrupting (throw event) and interrupting (end "
         "event)", ["boundary_escalation.bpmn"],
         [start("boundary_escalation"), complete("first_task")],
         Expect("completed", ["start", "first_start", "first_late", "late", "warn", "end_warn", "first_task",
                              "first_end", "first", "second_start", "second_over", "second", "over", "stop", "end_over"],
                {"warned": True, "stopped": True}, tasks=["first_task"])),
    Case("boundary_conditional_non_interrupting", "Boundary conditional, non-interrupting",
         ["boundary_conditional.bpmn"],
         [start("boundary_conditional", {"score": 0}), complete("assess_task", {"level": 10}),
          complete("assess_more")],
         Expect("completed", ["start", "assess_start", "assess_task", "assess_score", "watch", "flag", "end_flag",
                              "assess_more", "assess_end", "assess", "end"], {"flagged": True, "score": 10},
                absent=["outcome"], tasks=["assess_more", "assess_task"])),
    Case("boundary_conditional_interrupting", "Boundary conditional, interrupting", ["boundary_conditional.bpmn"],
         [start("boundary_conditional", {"score": 0}), complete("assess_task", {"level": 100})],
         # the condition is checked as soon as the score is set inside the subprocess (as Camunda does on a
         # variable change): the subprocess is interrupted before its next user task is created
         Expect("completed", None, {"outcome": "aborted"}, tasks=["assess_task"])),

    # ---- event subprocesses
    Case("event_subprocess_message_non_interrupting", "Event subprocess, message start, non-interrupting",
         ["event_subprocess_message.bpmn"],
         [start("event_subprocess_message", key="ES1"), message("Note", key="ES1"),
          check(ready=["note_task", "work"]), complete("note_task"),
          complete("work")],
         Expect("completed", ["start", "note_start", "note_task", "note_record", "note_end", "on_note", "work",
                              "end"], {"noted": True}, tasks=["note_task", "work"])),
    Case("event_subprocess_message_interrupting", "Event subprocess, message start, interrupting",
         ["event_subprocess_message.bpmn"],
         [start("event_subprocess_message", key="ES2"), message("Stop", key="ES2")],
         Expect("completed", ["start", "stop_start", "stop_record", "stop_end", "on_stop"], {"outcome": "stopped"},
                tasks=["work"])),
    Case("event_subprocess_signal_non_interrupting", "Event subprocess, signal start, non-interrupting (user "
         "task inside)", ["event_subprocess_signal.bpmn"],
         [start("event_subprocess_signal"), signal("Note"), check(ready=["note_task", "work"]), complete("note_task"),
          complete("work")],
         Expect("completed", ["start", "note_start", "note_task", "note_record", "note_end", "on_note", "work",
                              "end"], {"noted": True}, tasks=["note_task", "work"])),
    Case("event_subprocess_signal_interrupting", "Event subprocess, signal start, interrupting",
         ["event_subprocess_signal.bpmn"],
         [start("event_subprocess_signal"), signal("Stop")],
         Expect("completed", ["start", "stop_start", "stop_record", "stop_end", "on_stop"], {"outcome": "stopped"},
                tasks=["work"])),
    Case("event_subprocess_timer", "Event subprocesses, timer start: non-interrupting, then interrupting",
         ["event_subprocess_timer.bpmn"],
         [start("event_subprocess_timer"), fire(after=2 * H), complete("note_task"), fire(after=25 * H)],
         Expect("completed", ["start", "note_start", "note_task", "note_record", "note_end", "on_note",
                              "stop_start", "stop_record", "stop_end", "on_stop"], {"noted": True,
                                                                                    "outcome": "stopped"},
                tasks=["note_task", "work"])),
    Case("event_subprocess_error", "Event subprocess, error start (error end event in the process)",
         ["event_subprocess_error.bpmn"],
         [start("event_subprocess_error"), complete("work")],
         Expect("completed", ["start", "work", "broken", "error_start", "error_record", "error_end", "on_error"],
                {"recovered": True}, tasks=["work"])),
    Case("event_subprocess_escalation", "Event subprocesses, escalation start: non-interrupting (throw), "
         "interrupting (end event)", ["event_subprocess_escalation.bpmn"],
         [start("event_subprocess_escalation"), complete("work")],
         Expect("completed", ["start", "raise_note", "note_start", "note_record", "note_end", "on_note", "work",
                              "raise_stop", "stop_start", "stop_record", "stop_end", "on_stop"],
                {"noted": True, "outcome": "stopped"}, tasks=["work"])),

    # ---- intermediate events
    Case("catch_message", "Intermediate message catch, payload merged", ["catch_message.bpmn"],
         [start("catch_message", key="CM1"), message("Documents", {"pages": 4}, key="CM1")],
         Expect("completed", ["start", "docs", "count_pages", "end"], {"pages": 4, "total": 5})),
    Case("throw_catch_signal", "Intermediate signal throw caught in the same process",
         ["throw_catch_signal.bpmn"],
         [start("throw_catch_signal"), complete("prepare")],
         Expect("completed", ["start", "fork", "prepare", "send_go", "wait_go", "went", "join", "end"],
                {"went": True}, tasks=["prepare"])),
    Case("catch_signal", "Intermediate signal catch (broadcast to every waiting instance)",
         ["catch_signal.bpmn"],
         [start("catch_signal"), signal("Office open", {"desk": 3}), complete("serve")],
         Expect("completed", ["start", "wait_open", "serve", "end"], {"desk": 3}, tasks=["serve"])),
    Case("throw_escalation", "Intermediate escalation throw, uncaught", ["throw_escalation.bpmn"],
         [start("throw_escalation"), complete("go_on")],
         Expect("completed", ["start", "flag", "go_on", "end"], tasks=["go_on"])),
    Case("timer_date", "Intermediate timer: date literal (2030-01-01T09:00:00Z)", ["timer_date.bpmn"],
         [start("timer_date"), fire(at="2029-12-31T09:00:00+00:00"), check(status="running", path=["start"]),
          fire(at="2030-01-01T09:00:00+00:00")],
         Expect("completed", ["start", "wait", "woke", "end"], {"woke": True})),
    Case("timer_duration", "Intermediate timer: duration literal (PT5M)", ["timer_duration.bpmn"],
         [start("timer_duration"), fire(after=timedelta(minutes=6))],
         Expect("completed", ["start", "wait", "woke", "end"], {"woke": True})),
    Case("timer_duration_quoted", "Intermediate timer: quoted duration expression (\"PT5M\")",
         ["timer_duration_quoted.bpmn"],
         [start("timer_duration_quoted"), fire(after=timedelta(minutes=1)), check(status="running", path=["start"]),
          fire(after=timedelta(minutes=6))],
         Expect("completed", ["start", "wait", "woke", "end"], {"woke": True})),
    Case("timer_cycle", "Timer cycle R2/PT1H (non-interrupting boundary, fires twice)", ["timer_cycle.bpmn"],
         [start("timer_cycle"), fire(after=timedelta(minutes=65)), fire(after=timedelta(minutes=130)),
          fire(after=timedelta(minutes=400)), complete("work")],
         Expect("completed", ["start", "remind", "end_remind", "remind", "end_remind", "hourly", "work", "end"],
                {"reminded": True}, tasks=["work"])),
    Case("catch_conditional", "Intermediate conditional catch", ["catch_conditional.bpmn"],
         [start("catch_conditional", {"ready": False}), complete("make_ready", {"ready": True})],
         Expect("completed", ["start", "fork", "make_ready", "wait_ready", "proceed", "join", "end"],
                {"proceeded": True}, tasks=["make_ready"])),

    # ---- messages between processes
    Case("send_receive", "Send task delivers to a waiting receive task (same business key)",
         ["send_receive.bpmn"],
         [start("send_receive_receiver", key="SR1"), start("send_receive_sender", {"item": "chair"}, key="SR1")],
         Expect("completed", ["receiver_start", "receive_order", "confirm", "receiver_end"], {"confirmed": "chair"}),
         others={"send_receive_sender": Expect("completed", ["sender_start", "send_order", "sender_end"])}),
    Case("message_start", "Message start event started by a throw in another process "
         "(camunda:resultVariable)", ["message_start.bpmn"],
         [start("message_start_applicant", {"name": "Aino", "amount": 300}, key="MS1"),
          complete("office_handle")],
         Expect("completed", ["applicant_start", "apply", "applicant_end"]),
         others={"message_start_office": Expect("completed", ["office_start", "office_handle", "office_end"],
                                                {"application": {"name": "Aino", "amount": 300}},
                                                tasks=["office_handle"])}),
    Case("collaboration", "Collaboration of two executable pools with a correlation key",
         ["collaboration.bpmn"],
         [start("collab_customer", {"case_id": "C-7", "question": "When?"}, key="CO1"),
          complete("office_answer", {"answer": "Monday"})],
         Expect("completed", ["customer_start", "send_request", "wait_answer", "customer_end"],
                {"case_id": "C-7", "answer": "Monday"}),
         others={"collab_office": Expect("completed", ["office_start", "office_answer", "send_answer",
                                                       "office_end"], {"case_id": "C-7", "question": "When?"},
                                         tasks=["office_answer"])}),

    Case("send_task_unreceived", "Send task with nobody waiting: the message is recorded, the case goes on",
         ["send_receive.bpmn"],
         [start("send_receive_sender", {"item": "table"}, key="SR2")],
         Expect("completed", ["sender_start", "send_order", "sender_end"])),

    # ---- ends and task kinds
    Case("terminate_end", "Terminate end event ends the other branch", ["terminate_end.bpmn"],
         [start("terminate_end"), check(ready=["decide", "slow"]), complete("decide")],
         Expect("completed", ["start", "fork", "decide", "terminate"], tasks=["decide", "slow"])),
    Case("user_task_data_without_form", "User task without a form completed with variables",
         ["gateway_parallel.bpmn"],
         [start("gateway_parallel"), complete("task_a", {"note": "from a"}), complete("task_b", {"count": 2})],
         Expect("completed", ["start", "fork", "task_a", "task_b", "join", "after", "end"],
                {"note": "from a", "count": 2, "both": True}, tasks=["task_a", "task_b"])),
    Case("script_print_del", "Script task: print() allowed, del removes a variable", ["script_print.bpmn"],
         [start("script_print", {"amount": 4, "scratch": "x"})],
         Expect("completed", ["start", "work", "end"], {"total": 8}, absent=["scratch"])),
    Case("task_kinds", "Plain, manual, script and business rule tasks", ["task_kinds.bpmn", "age_band.dmn"],
         [start("task_kinds", {"age": 40}), complete("plain"), complete("manual")],
         Expect("completed", ["start", "plain", "manual", "script", "rule", "end"], {"person": "adult"},
                tasks=["manual", "plain"])),
    Case("external_task", "External service task: fetch and complete with variables", ["external_task.bpmn"],
         [start("external_task"), external("scoring", complete={"points": 8})],
         Expect("completed", ["start", "score", "after", "end"], {"points": 8, "high": True})),
    Case("external_task_retried", "External service task: failure with a retry left, fetched again, completed",
         ["external_task.bpmn"],
         [start("external_task"), external("scoring", fail="timeout", retries=1),
          external("scoring", complete={"points": 2})],
         Expect("completed", ["start", "score", "after", "end"], {"points": 2, "high": False})),
    Case("external_task_failed", "External service task: failure without retries (incident)",
         ["external_task.bpmn"],
         [start("external_task"), external("scoring", fail="scoring service down", retries=0)],
         Expect("running", ["start"], incidents=[("score", "scoring service down")])),

    # ---- refused at deploy
    Case("refused_java_service", "Service task with camunda:class (Java)", ["refused_java_service.bpmn"],
         refused=("java_call", "java")),
    Case("refused_no_implementation", "Service task without implementation", ["refused_no_implementation.bpmn"],
         refused=("nothing", "implementation")),
]

BY_NAME = {c.name: c for c in CASES}
assert len(BY_NAME) == len(CASES), "case names must be unique"
