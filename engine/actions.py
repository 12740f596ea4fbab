"""Task actions: what a person may do on an open user task besides completing it.

A task action is a message boundary event on a user task that the model marks with the
property `taskAction` = `true` (`<camunda:properties><camunda:property name="taskAction"
value="true"/>` in its extension elements). Its name is the button on the task page, its
documentation the help beside it and its `camunda:formData` (optional) a small form of its own.
Running the action delivers the boundary event's message to this case only, with the form's
values as the payload (merged into the case's data), exactly as `polku message` would: an
interrupting action ends the task and the model decides what follows (the aftercare contact's
"customer not reached" records the attempt and opens the contact again); a non-interrupting one
leaves the task open. Who may run it is who may complete the task. Each run is one `task_action`
event in the case history (action, task, submitted values).

Called by the task page, `polku action TASK ACTION` and the tests; never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from . import audit, deploy, forms, runtime, spiff
from .db import utcnow
from .errors import NotFound, TaskNotAvailable
from .models import Instance, ProcessVersion

TASK_ACTION = "task_action"  # the audit event kind of one run


@dataclass(frozen=True)
class TaskAction:
    """One action a user task offers: the boundary event's id, name, message and form."""

    element_id: str
    name: str
    message: str
    interrupting: bool
    documentation: str | None
    form: list[forms.Field]


def task_actions(version: ProcessVersion, element_id: str, process_id: str | None = None) -> list[TaskAction]:
    """Return the actions the model puts on a user task (in model order).

    `process_id` is the task's own process (its row's): a called process may use the same element
    ids as the process calling it. Without one (rows written before rows named it) every process counts.
    """
    found = []
    for elements in deploy.catalogue_processes(version, process_id).values():
        for action_id, entry in elements.items():
            if entry.get("task_action") and entry.get("attached_to") == element_id:
                found.append(TaskAction(action_id, entry.get("name") or action_id, entry["message"],
                                        bool(entry.get("interrupting", True)), entry.get("documentation"),
                                        forms.fields_from_catalogue(entry)))
    return found


def actions_of_task(session: Session, task_id: str) -> list[TaskAction]:
    """Return the actions of an open task (none for a task that is no longer open)."""
    details = runtime.task_details(session, task_id)
    if details["task"].state != "ready":
        return []
    task = details["task"]
    return task_actions(details["version"], task.element_id, task.process_id)


def run_task_action(session: Session, task_id: str, action_id: str, data: dict[str, Any] | None = None, *,
                    by: str, roles: set[str] | None = None, now: datetime | None = None) -> Instance:
    """Run a task action on behalf of `by`: deliver its message to the task's case with the form values.

    Raises:
        TaskNotFound, TaskNotAvailable (not open, or not `by`'s to do: as for completing it),
        NotFound (the task has no such action), FormInvalid (the action's form refused the data),
        Conflict (a concurrent change won).
    """
    now = now or utcnow()
    row = runtime._task_row(session, task_id)
    runtime._check_available(row, by, roles)
    loaded = runtime._load(session, row.instance_id)
    action = next((a for a in task_actions(loaded.version, row.element_id, row.process_id)
                   if a.element_id == action_id), None)
    if action is None:
        raise NotFound(f"the task has no action '{action_id}'")
    if spiff.task_state(loaded.held.workflow, task_id) != "READY":
        raise TaskNotAvailable("this task is no longer waiting to be done")
    clean = forms.validate(action.form, dict(data or {}), loaded.held.variables,
                           users_of_role=runtime.users_of_role(session), now=now)
    audit.append(session, TASK_ACTION, actor=by, instance_id=row.instance_id, version_id=loaded.instance.version_id,
                 element_id=action.element_id, task_id=task_id,
                 data={"name": action.name, "task": row.name, "message": action.message, "submitted": clean}, at=now)

    def deliver(workflow: spiff.Workflow) -> None:
        if not spiff.deliver_message(workflow, action.message, clean):
            raise TaskNotAvailable("the case is not waiting for this action now")
        spiff.update_live_data(workflow, clean)

    return runtime._act(session, loaded, deliver, actor=by, now=now).instance


def action_runs(session: Session, instance_id: int, action_id: str | None = None) -> list[dict[str, Any]]:
    """Return the task actions run in a case (or of one action), oldest first: when, who, what was submitted."""
    runs = []
    for event in audit.history(session, instance_id):
        if event.kind != TASK_ACTION or (action_id is not None and event.element_id != action_id):
            continue
        data = audit.event_dict(event)["data"]
        runs.append({"action": event.element_id, "at": event.at, "by": event.actor, "task_id": event.task_id,
                     "name": data.get("name"), "submitted": data.get("submitted", {})})
    return runs
