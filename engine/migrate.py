"""Instance migration: move running instances of one process version onto another.

`preview` tells, for every running instance of the source version, whether it migrates cleanly
or is blocked and why: an active task whose element the target lacks, a completed step the
target lacks (SpiffWorkflow cannot save such a history), a removed called process, a form field
an active task uses that the target removed, an open incident. `migrate_instance` moves one
instance in the caller's transaction (call it once per instance, each in its own transaction):
the state is rebuilt on the target's specs with SpiffWorkflow's migration, task rows follow the
target's names, lanes and roles, and `instance_migrated` goes into the instance's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import deploy, runtime, spiff
from .db import utcnow
from .errors import InvalidInput, NotAllowed
from .models import Instance, InstanceStatus, ProcessVersion, Task, TaskStatus


@dataclass
class Candidate:
    """One running instance as the migration preview shows it."""

    instance_id: int
    business_key: str | None
    started_at: datetime
    active: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether the instance migrates cleanly."""
        return not self.blocked


def _versions(session: Session, source_id: int, target_id: int) -> tuple[ProcessVersion, ProcessVersion]:
    source = deploy.version_by_id(session, source_id)
    target = deploy.version_by_id(session, target_id)
    if source.process_id != target.process_id or source.kind != "process":
        raise InvalidInput("source and target must be versions of the same process")
    if source.id == target.id:
        raise InvalidInput("choose a target version other than the source")
    return source, target


def _reasons(session: Session, instance: Instance, workflow: spiff.Workflow, source: ProcessVersion,
             target: ProcessVersion) -> list[str]:
    reasons = []
    if instance.open_incidents:
        reasons.append("it has an open incident; resolve it first")
    check = spiff.check_migration(workflow, deploy.bundle_for(session, target))
    for element in check.removed_live:
        name = deploy.catalogue_entry(source, element).get("name") or element
        reasons.append(f"its active task '{name}' ({element}) no longer exists in v{target.version}")
    for element in sorted(set(check.removed_done)):
        name = deploy.catalogue_entry(source, element).get("name") or element
        reasons.append(f"its completed step '{name}' ({element}) no longer exists in v{target.version}")
    for name in check.removed_subprocesses:
        reasons.append(f"the process '{name}' it runs no longer exists in v{target.version}")
    for element in sorted(set(check.changed_waits)):
        was, becomes = deploy.catalogue_entry(source, element), deploy.catalogue_entry(target, element)
        reasons.append(f"it waits at '{was.get('name') or element}' ({element}), a {was.get('type', '?')} "
                       f"that v{target.version} makes a {becomes.get('type', '?')}: a step a case waits at "
                       "cannot change its kind")
    for ready in spiff.ready_user_tasks(workflow):
        target_entry = deploy.catalogue_entry(target, ready.element_id, ready.process_id)
        if not target_entry:
            continue  # the task itself is gone: said above
        source_entry = deploy.catalogue_entry(source, ready.element_id, ready.process_id)
        before = {f["id"] for f in source_entry.get("form", [])}
        for gone in sorted(before - {f["id"] for f in target_entry.get("form", [])}):
            reasons.append(f"the form field '{gone}' of its task '{ready.name}' was removed")
    return reasons


def _active(session: Session, instance_id: int) -> list[str]:
    rows = session.scalars(select(Task).where(Task.instance_id == instance_id, Task.state == TaskStatus.READY))
    return [r.name for r in rows]


def running_instances(session: Session, version_id: int) -> list[Instance]:
    """List the running instances of a version, oldest first."""
    query = select(Instance).where(Instance.version_id == version_id, Instance.status == InstanceStatus.RUNNING) \
        .order_by(Instance.id)
    return list(session.scalars(query))


def preview(session: Session, source_id: int, target_id: int) -> list[Candidate]:
    """Tell, for every running instance of the source version, whether it can move to the target.

    Raises:
        InvalidInput: the versions are not two versions of one process.
    """
    source, target = _versions(session, source_id, target_id)
    bundle = deploy.bundle_for(session, source)
    found = []
    for instance in running_instances(session, source.id):
        candidate = Candidate(instance.id, instance.business_key, instance.started_at, _active(session, instance.id))
        try:
            workflow = spiff.load_state(instance.state, bundle)
            candidate.blocked = _reasons(session, instance, workflow, source, target)
        except Exception as err:  # noqa: BLE001 - one unreadable instance must not hide the others
            candidate.blocked = [f"its state cannot be read: {err}"]
        found.append(candidate)
    return found


def migrate_instance(session: Session, instance_id: int, target_id: int, *, by: str,
                     source_id: int | None = None, now: datetime | None = None) -> Instance:
    """Move one running instance onto the target version in the caller's transaction.

    Raises:
        NotAllowed: the instance is blocked (the reasons are in the message), not running, or not
            on `source_id`.
        InvalidInput: the versions are not two versions of one process.
    """
    now = now or utcnow()
    target_row = session.get(ProcessVersion, target_id)
    if target_row is None:
        raise InvalidInput(f"no process version {target_id}")
    chosen: dict[str, ProcessVersion] = {}

    def check(instance: Instance, workflow: spiff.Workflow) -> None:
        if instance.status != InstanceStatus.RUNNING:
            raise NotAllowed(f"instance {instance_id} is not running")
        if source_id is not None and instance.version_id != source_id:
            raise NotAllowed(f"instance {instance_id} is no longer on the chosen source version")
        source, target = _versions(session, instance.version_id, target_id)
        reasons = _reasons(session, instance, workflow, source, target)
        if reasons:
            raise NotAllowed(f"instance {instance_id} cannot migrate: " + "; ".join(reasons))
        chosen["target"] = target

    instance = runtime.change_version(session, instance_id, target_row, check, by=by, now=now)
    _retitle_tasks(session, instance.id, chosen["target"])
    return instance


def _retitle_tasks(session: Session, instance_id: int, target: ProcessVersion) -> None:
    """Give open task rows the target's names, lanes and roles."""
    for row in session.scalars(select(Task).where(Task.instance_id == instance_id, Task.state == TaskStatus.READY)):
        entry = deploy.catalogue_entry(target, row.element_id, row.process_id)
        if entry:
            row.name = entry.get("name") or row.name
            row.lane = entry.get("lane") or row.lane
            row.candidate_role = entry.get("role") or row.candidate_role
    session.flush()


def running_counts(session: Session) -> dict[int, int]:
    """Count running instances per process version id."""
    from sqlalchemy import func

    query = select(Instance.version_id, func.count(Instance.id)) \
        .where(Instance.status == InstanceStatus.RUNNING).group_by(Instance.version_id)
    return {vid: n for vid, n in session.execute(query).all()}
