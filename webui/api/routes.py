"""The API's resources. Each view checks the token's roles, calls `engine/` and returns a typed body.

Roles: reading definitions needs any role; deploying designer/admin; starting and working cases
expert/supervisor/admin (reads cut to what the owner may see, `engine.access`); cancelling,
assigning, signals, incidents and external tasks supervisor/admin; KPIs auditor/supervisor/admin;
exports auditor/admin. Writes on an instance honour `If-Match: "<revision>"` (412 when stale).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from flask import Response, current_app, request, stream_with_context
from spectree import Response as Resp
from werkzeug.wrappers import Response as StreamedResponse

from engine import (
    access,
    apiquery,
    audit,
    contacts,
    customers,
    deploy,
    exports,
    external,
    history,
    inbox,
    kpi,
    runtime,
)
from engine.errors import InvalidInput, TaskNotFound
from engine.models import Customer, Instance, TaskStatus

from ..auth import current_time
from ..db import get_session
from ..downloads import attachment
from ..inputs import whole_number
from . import schemas as s
from .base import api, bp, caller, need, reader

WORKERS = ("expert", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
ANY = ("expert", "supervisor", "designer", "auditor", "admin")
ERRORS = ("HTTP_400", "HTTP_401", "HTTP_403", "HTTP_404", "HTTP_405", "HTTP_409", "HTTP_412", "HTTP_422",
          "HTTP_429")
MEDIA: dict[tuple[str, str], dict[str, str]] = {}  # (path, method) -> {status: media type} other than JSON


def resp(ok: str = "HTTP_200", model: Any = None, *errors: str) -> Resp:
    """Return a SpecTree response spec: the success model and every error as a Problem."""
    codes = {code: s.Problem for code in (errors or ERRORS)}
    if model is None:
        return Resp(ok, **codes)
    return Resp(**{ok: model}, **codes)


def _etag(instance: Instance) -> dict[str, str]:
    return {"ETag": f'"{instance.revision}"'}


def _if_match() -> int | None:
    """Return the revision named by If-Match (None when absent or `*`)."""
    value = request.headers.get("If-Match", "").strip()
    if not value or value == "*":
        return None
    text = value.removeprefix("W/").strip('"')
    revision = whole_number(text)
    if revision is None:
        raise InvalidInput('If-Match must be an instance revision as an ETag: "3"')
    return revision


# --- me -----------------------------------------------------------------------------------------

@bp.get("/me")
@api(resp=resp("HTTP_200", s.Me, "HTTP_401", "HTTP_429"), tags=["tokens"])
def me() -> s.Me:
    """Who the token belongs to and the roles it may use."""
    who = caller()
    return s.Me(username=who.username, roles=sorted(who.roles), token_id=who.token_id)


# --- definitions --------------------------------------------------------------------------------

@bp.get("/definitions")
@api(resp=resp("HTTP_200", s.DefinitionList), tags=["definitions"])
def definitions() -> s.DefinitionList:
    """List deployed processes and decisions with every version, newest version first."""
    need(*ANY)
    return s.DefinitionList(items=[s.Definition(**d) for d in deploy.list_versions(get_session())])


@bp.get("/definitions/<process_id>/versions")
@api(resp=resp("HTTP_200", s.DefinitionList), tags=["definitions"])
def definition_versions(process_id: str) -> s.DefinitionList:
    """List the versions of one process, newest first."""
    need(*ANY)
    found = [s.Definition(**d) for d in deploy.list_versions(get_session()) if d["process_id"] == process_id]
    if not found:
        deploy.get_version(get_session(), process_id)  # raises VersionNotFound
    return s.DefinitionList(items=found)


@bp.get("/definitions/<process_id>/versions/<int(max=2147483647):version>/xml")
@api(resp=resp("HTTP_200", None), tags=["definitions"])
def definition_xml(process_id: str, version: int) -> Response:
    """Download the model file of a version (BPMN or DMN XML, byte for byte as deployed)."""
    need(*ANY)
    name, text = apiquery.model_xml(get_session(), process_id, version)
    response = Response(text, mimetype="application/xml")
    response.headers["Content-Disposition"] = attachment(name)
    return response


MEDIA[("/api/v1/definitions/{process_id}/versions/{version}/xml", "get")] = {"200": "application/xml"}


@bp.get("/definitions/<process_id>/start-form")
@api(resp=resp("HTTP_200", s.FormSchema), tags=["definitions"])
def start_form(process_id: str) -> s.FormSchema:
    """The start form of the latest version as a JSON Schema."""
    need(*ANY)
    fields = runtime.start_form(get_session(), process_id)
    return s.FormSchema(**apiquery.form_schema(fields, process_id))


@bp.post("/deployments")
@api(form=s.DeployForm, resp=resp("HTTP_201", s.DeployResult), tags=["definitions"],
     skip_validation=True)  # the view reads the files itself: a multipart body can carry parts no model can
def deploy_models() -> tuple[s.DeployResult, int]:
    """Validate and deploy .bpmn/.dmn files (multipart, field `files`); problems come back with file, line, element."""
    who = need("designer", "admin")
    session = get_session()
    files: dict[str, bytes] = {}
    for upload in request.files.getlist("files"):
        name = (upload.filename or "").rsplit("/", 1)[-1]
        if not name.lower().endswith((".bpmn", ".dmn")):
            raise InvalidInput(f"only .bpmn and .dmn files can be deployed, not {name!r}")
        files[name] = upload.read()
    if not files:
        raise InvalidInput("send at least one .bpmn or .dmn file in the field 'files'")
    max_bytes = current_app.extensions["polku"].settings.max_upload_bytes
    result = deploy.deploy_files(session, files, by=who.username, max_bytes=max_bytes)

    def brief(pv: Any) -> s.Definition:
        return s.Definition(id=pv.id, process_id=pv.process_id, kind=str(pv.kind), name=pv.name,
                            version=pv.version, deployed_by=pv.created_by, deployed_at=pv.created_at.isoformat())
    return s.DeployResult(deployment_id=result.deployment_id, created=[brief(v) for v in result.created],
                          unchanged=[brief(v) for v in result.unchanged]), 201


MEDIA[("/api/v1/deployments", "post")] = {"request": "multipart/form-data"}


# --- instances ----------------------------------------------------------------------------------

def _instance_out(instance_id: int) -> s.InstanceOut:
    return s.InstanceOut(**runtime.instance_summary(get_session(), instance_id))


@bp.post("/instances")
@api(json=s.StartInstance, resp=resp("HTTP_201", s.InstanceOut), tags=["instances"])
def start_instance(json: s.StartInstance) -> tuple[s.InstanceOut, int, dict[str, str]]:
    """Start an instance with a business key and start-form data (422 with field errors)."""
    who = need(*WORKERS)
    instance = runtime.start_instance(get_session(), json.process_id, by=who.username, data=json.data,
                                      business_key=json.business_key, version=json.version, now=current_time())
    return _instance_out(instance.id), 201, _etag(instance)


@bp.get("/instances")
@api(query=s.InstanceQuery, resp=resp("HTTP_200", s.InstancePage), tags=["instances"])
def search_instances(query: s.InstanceQuery) -> s.InstancePage:
    """Search instances like the auditor's search (only those the token's owner may see); cursor-paged."""
    need(*ANY)
    f = history.InstanceFilter(process_id=query.process_id, version=query.version, status=query.status,
                               customer=query.business_key, expert=query.expert,
                               started_from=query.started_from, started_to=query.started_to,
                               ended_from=query.ended_from, ended_to=query.ended_to)
    page = apiquery.instances(get_session(), reader(), f, cursor=query.cursor, limit=query.limit)
    items = [s.InstanceBrief(id=i.id, process_id=i.process_id, business_key=i.business_key, status=str(i.status),
                             revision=i.revision, started_at=i.started_at.isoformat(),
                             ended_at=i.ended_at.isoformat() if i.ended_at else None) for (i,) in page.rows]
    return s.InstancePage(items=items, next_cursor=page.next_cursor)


@bp.get("/instances/<int(max=2147483647):instance_id>")
@api(resp=resp("HTTP_200", s.InstanceOut), tags=["instances"])
def get_instance(instance_id: int) -> tuple[s.InstanceOut, int, dict[str, str]]:
    """One instance with variables, tasks, timers and incidents; `ETag` is its revision."""
    need(*ANY)
    instance = apiquery.readable_instance(get_session(), reader(), instance_id)
    return _instance_out(instance_id), 200, _etag(instance)


@bp.post("/instances/<int(max=2147483647):instance_id>/cancel")
@api(json=s.CancelInstance, resp=resp("HTTP_200", s.InstanceOut), tags=["instances"])
def cancel_instance(instance_id: int, json: s.CancelInstance) -> tuple[s.InstanceOut, int, dict[str, str]]:
    """Cancel a running instance with a reason (honours If-Match)."""
    who = need(*SUPERVISORS)
    session = get_session()
    apiquery.readable_instance(session, reader(), instance_id)
    apiquery.check_revision(session, instance_id, _if_match())
    instance = runtime.cancel_instance(session, instance_id, by=who.username, reason=json.reason, now=current_time())
    return _instance_out(instance_id), 200, _etag(instance)


@bp.get("/instances/<int(max=2147483647):instance_id>/variables")
@api(resp=resp("HTTP_200", s.Variables), tags=["instances"])
def instance_variables(instance_id: int) -> s.Variables:
    """The instance's current variables."""
    need(*ANY)
    apiquery.readable_instance(get_session(), reader(), instance_id)
    return s.Variables(variables=runtime.instance_variables(get_session(), instance_id))


@bp.get("/instances/<int(max=2147483647):instance_id>/history")
@api(resp=resp("HTTP_200", s.EventList), tags=["instances"])
def instance_history(instance_id: int) -> s.EventList:
    """The instance's audit events, oldest first."""
    need(*ANY)
    apiquery.readable_instance(get_session(), reader(), instance_id)
    events = audit.history(get_session(), instance_id)
    return s.EventList(items=[s.Event(**audit.event_dict(e)) for e in events])


# --- tasks --------------------------------------------------------------------------------------

def _task_out(task: Any) -> s.TaskOut:
    return s.TaskOut(**runtime.task_dict(task))


@bp.get("/tasks")
@api(query=s.TaskQuery, resp=resp("HTTP_200", s.TaskPage), tags=["tasks"])
def list_tasks(query: s.TaskQuery) -> s.TaskPage:
    """Query tasks like the inbox (`mine`: assigned to me or open to my roles); cursor-paged."""
    who = need(*WORKERS)
    flt = inbox.TaskFilter(assignee=who.username if query.mine else query.assignee,
                           roles=frozenset(who.roles) if query.mine else None, instance_id=query.instance_id,
                           business_key=query.business_key, process_id=query.process_id,
                           state=TaskStatus(query.state) if query.state else None,
                           overdue_at=current_time() if query.overdue else None)
    page = apiquery.tasks(get_session(), reader(), flt, cursor=query.cursor, limit=query.limit)
    return s.TaskPage(items=[_task_out(t) for t, _i in page.rows], next_cursor=page.next_cursor)


def _readable_task(task_id: str) -> dict[str, Any]:
    session = get_session()
    if len(task_id) > 100:
        raise TaskNotFound(f"no task {task_id[:100]}")
    task, instance, _case_readable = access.readable_task(session, reader(), task_id)  # the check and both rows
    return runtime.task_details(session, task_id, (task, instance), variables=False)  # no route shows case data


@bp.get("/tasks/<task_id>")
@api(resp=resp("HTTP_200", s.TaskDetail), tags=["tasks"])
def get_task(task_id: str) -> tuple[s.TaskDetail, int, dict[str, str]]:
    """One task with its form as a JSON Schema (from camunda:formData); `ETag` is the instance revision."""
    need(*WORKERS)
    details = _readable_task(task_id)
    schema = apiquery.form_schema(details["form"], details["task"].name)
    body = s.TaskDetail(task=_task_out(details["task"]), instance_revision=details["instance"].revision,
                        documentation=details["documentation"], form=s.FormSchema(**schema))
    return body, 200, _etag(details["instance"])


@bp.post("/tasks/<task_id>/claim")
@api(resp=resp("HTTP_200", s.TaskOut), tags=["tasks"])
def claim_task(task_id: str) -> s.TaskOut:
    """Take a task of one of your roles (409 if someone else has it)."""
    who = need(*WORKERS)
    _readable_task(task_id)
    return _task_out(inbox.claim(get_session(), task_id, by=who.username, roles=set(who.roles)))


@bp.post("/tasks/<task_id>/release")
@api(resp=resp("HTTP_200", s.TaskOut), tags=["tasks"])
def release_task(task_id: str) -> s.TaskOut:
    """Give a task you hold back to its role."""
    who = need(*WORKERS)
    _readable_task(task_id)
    return _task_out(inbox.release(get_session(), task_id, by=who.username))


@bp.post("/tasks/<task_id>/assign")
@api(json=s.AssignTask, resp=resp("HTTP_200", s.TaskOut), tags=["tasks"])
def assign_task(task_id: str, json: s.AssignTask) -> s.TaskOut:
    """Assign a task to a user, or unassign it (supervisors)."""
    who = need(*SUPERVISORS)
    _readable_task(task_id)
    return _task_out(inbox.assign(get_session(), task_id, json.assignee, by=who.username))


@bp.post("/tasks/<task_id>/complete")
@api(json=s.CompleteTask, resp=resp("HTTP_200", s.InstanceOut), tags=["tasks"])
def complete_task(task_id: str, json: s.CompleteTask) -> tuple[s.InstanceOut, int, dict[str, str]]:
    """Complete a task with form data: 422 with field errors, 409 if taken or done, 412 on a stale If-Match."""
    who = need(*WORKERS)
    details = _readable_task(task_id)
    session = get_session()
    apiquery.check_revision(session, details["instance"].id, _if_match())
    instance = runtime.complete_task(session, task_id, json.data, by=who.username, roles=set(who.roles),
                                     now=current_time())
    return _instance_out(instance.id), 200, _etag(instance)


# --- messages and signals -----------------------------------------------------------------------

@bp.post("/messages")
@api(json=s.Correlate, resp=resp("HTTP_200", s.Correlated), tags=["messages"])
def correlate(json: s.Correlate) -> s.Correlated:
    """Deliver a message to the instances waiting for it, narrowed by business key or instance."""
    who = need(*WORKERS)
    if json.instance_id is not None:
        apiquery.readable_instance(get_session(), reader(), json.instance_id)
    ids = runtime.deliver_message(get_session(), json.name, by=who.username, data=json.data,
                                  business_key=json.business_key, instance_id=json.instance_id, now=current_time())
    return s.Correlated(delivered_to=ids)


@bp.post("/signals")
@api(json=s.Signal, resp=resp("HTTP_200", s.SignalResult), tags=["signals"])
def signal(json: s.Signal) -> s.SignalResult:
    """Broadcast a signal: waiting instances catch it, signal start events start."""
    who = need(*SUPERVISORS)
    reached = runtime.broadcast_signal(get_session(), json.name, by=who.username, data=json.data, now=current_time())
    return s.SignalResult(delivered_to=reached.get("delivered_to", []), started=reached.get("started", []))


# --- incidents ----------------------------------------------------------------------------------

@bp.get("/incidents")
@api(query=s.IncidentQuery, resp=resp("HTTP_200", s.IncidentPage), tags=["incidents"])
def incidents(query: s.IncidentQuery) -> s.IncidentPage:
    """List incidents (open by default); cursor-paged."""
    need(*SUPERVISORS)
    page = apiquery.incidents(get_session(), status=query.status, instance_id=query.instance_id,
                              cursor=query.cursor, limit=query.limit)
    return s.IncidentPage(items=[s.IncidentOut(**apiquery.incident_dict(i)) for (i,) in page.rows],
                          next_cursor=page.next_cursor)


@bp.post("/incidents/<int(max=2147483647):incident_id>/retry")
@api(json=s.RetryIncident, resp=resp("HTTP_200", s.IncidentOut), tags=["incidents"])
def retry_incident(incident_id: int, json: s.RetryIncident) -> s.IncidentOut:
    """Run the failed step again after merging `data` (the incident comes back resolved or still open)."""
    who = need(*SUPERVISORS)
    row = runtime.retry_incident(get_session(), incident_id, by=who.username, data=json.data, now=current_time())
    return s.IncidentOut(**apiquery.incident_dict(row))


# --- external tasks -----------------------------------------------------------------------------

@bp.post("/external-tasks/fetch-and-lock")
@api(json=s.FetchAndLock, resp=resp("HTTP_200", s.LockedTaskList), tags=["external tasks"])
def fetch_and_lock(json: s.FetchAndLock) -> s.LockedTaskList:
    """Lock free tasks of the topics for a worker and return them with their variables."""
    need(*SUPERVISORS)
    topics = [external.Topic(t.name, t.lock_seconds, tuple(t.variables) if t.variables is not None else None)
              for t in json.topics]
    locked = external.fetch_and_lock(get_session(), json.worker_id, topics, max_tasks=json.max_tasks,
                                     now=current_time())
    return s.LockedTaskList(items=[s.LockedTaskOut(**_locked(t)) for t in locked])


def _locked(task: Any) -> dict[str, Any]:
    data = task.as_dict() if hasattr(task, "as_dict") else asdict(task)
    data["lock_expires_at"] = str(data.get("lock_expires_at"))
    return data


def _external_out(row: Any) -> s.ExternalTaskOut:
    return s.ExternalTaskOut(**external.task_dict(row, now=current_time()))


@bp.post("/external-tasks/<int(max=2147483647):task_id>/complete")
@api(json=s.CompleteExternal, resp=resp("HTTP_200", s.ExternalTaskOut), tags=["external tasks"])
def complete_external(task_id: int, json: s.CompleteExternal) -> s.ExternalTaskOut:
    """Complete a task this worker holds, with result variables; the case runs on."""
    need(*SUPERVISORS)
    row = external.complete(get_session(), task_id, json.worker_id, json.variables, now=current_time())
    return _external_out(row)


@bp.post("/external-tasks/<int(max=2147483647):task_id>/failure")
@api(json=s.FailExternal, resp=resp("HTTP_200", s.ExternalTaskOut), tags=["external tasks"])
def fail_external(task_id: int, json: s.FailExternal) -> s.ExternalTaskOut:
    """Report a failure; with retries left the task comes back after the timeout, at 0 an incident opens."""
    need(*SUPERVISORS)
    row = external.fail(get_session(), task_id, json.worker_id, json.message, json.details, json.retries,
                        json.retry_timeout_seconds, now=current_time())
    return _external_out(row)


@bp.post("/external-tasks/<int(max=2147483647):task_id>/extend-lock")
@api(json=s.ExtendLock, resp=resp("HTTP_200", s.ExternalTaskOut), tags=["external tasks"])
def extend_external(task_id: int, json: s.ExtendLock) -> s.ExternalTaskOut:
    """Keep a task this worker holds for `lock_seconds` more from now."""
    need(*SUPERVISORS)
    row = external.extend_lock(get_session(), task_id, json.worker_id, json.lock_seconds, now=current_time())
    return _external_out(row)


# --- customers ----------------------------------------------------------------------------------

CUSTOMER_FIELDS = tuple(s.CustomerIn.model_fields)


def _customer_out(c: Customer) -> s.CustomerOut:
    values = {f: getattr(c, f) for f in CUSTOMER_FIELDS}
    return s.CustomerOut(id=c.id, created_at=c.created_at.isoformat(), updated_at=c.updated_at.isoformat(), **values)


@bp.get("/customers")
@api(query=s.CustomerQuery, resp=resp("HTTP_200", s.CustomerPage), tags=["customers"])
def search_customers(query: s.CustomerQuery) -> s.CustomerPage:
    """Search customers by name or business ID prefix (those the owner may see); cursor-paged."""
    need(*WORKERS)
    page = apiquery.customers(get_session(), reader(), query.q, cursor=query.cursor, limit=query.limit)
    return s.CustomerPage(items=[_customer_out(c) for (c,) in page.rows], next_cursor=page.next_cursor)


def _customer_data(body: s.CustomerIn) -> dict[str, Any]:
    return {k: ("" if v is None else v) for k, v in body.model_dump().items()}


@bp.post("/customers")
@api(json=s.CustomerIn, resp=resp("HTTP_201", s.CustomerOut), tags=["customers"])
def create_customer(json: s.CustomerIn) -> tuple[s.CustomerOut, int]:
    """Register a customer (422 with field errors)."""
    who = need(*WORKERS)
    return _customer_out(customers.create_customer(get_session(), _customer_data(json), by=who.username)), 201


@bp.get("/customers/<int(max=2147483647):customer_id>")
@api(resp=resp("HTTP_200", s.CustomerOut), tags=["customers"])
def get_customer(customer_id: int) -> s.CustomerOut:
    """One customer."""
    need(*WORKERS)
    access.require_customer(get_session(), reader(), customer_id)
    return _customer_out(customers.get_customer(get_session(), customer_id))


@bp.put("/customers/<int(max=2147483647):customer_id>")
@api(json=s.CustomerIn, resp=resp("HTTP_200", s.CustomerOut), tags=["customers"])
def update_customer(customer_id: int, json: s.CustomerIn) -> s.CustomerOut:
    """Replace a customer's details (422 with field errors)."""
    who = need(*WORKERS)
    access.require_customer(get_session(), reader(), customer_id)
    return _customer_out(customers.update_customer(get_session(), customer_id, _customer_data(json), by=who.username))


@bp.get("/customers/<int(max=2147483647):customer_id>/timeline")
@api(query=s.TimelineQuery, resp=resp("HTTP_200", s.Timeline), tags=["customers"])
def customer_timeline(customer_id: int, query: s.TimelineQuery) -> s.Timeline:
    """The steps of the customer's cases the owner may see, newest first; cursor-paged."""
    need(*WORKERS)
    session, me = get_session(), reader()
    access.require_customer(session, me, customer_id)
    page = apiquery.timeline(session, me, customers.get_customer(session, customer_id), cursor=query.cursor,
                             limit=query.limit)
    return s.Timeline(items=[s.TimelineEntry(**audit.event_dict(e)) for e in page.rows], next_cursor=page.next_cursor)


def _contact_out(c: Any) -> s.ContactOut:
    return s.ContactOut(id=c.id, customer_id=c.customer_id, contacted_on=c.contacted_on.isoformat(),
                        channel=c.channel, topic=c.topic, participants=c.participants, notes=c.notes,
                        next_contact_on=c.next_contact_on.isoformat() if c.next_contact_on else None,
                        prospecting=c.prospecting, instance_id=c.instance_id, created_by=c.created_by,
                        created_at=c.created_at.isoformat())


@bp.get("/customers/<int(max=2147483647):customer_id>/contacts")
@api(resp=resp("HTTP_200", s.ContactList), tags=["customers"])
def customer_contacts(customer_id: int) -> s.ContactList:
    """The customer's contact log (contacts outside or beside service processes), newest first."""
    need(*WORKERS)
    access.require_customer(get_session(), reader(), customer_id)
    return s.ContactList(items=[_contact_out(c) for c in contacts.customer_contacts(get_session(), customer_id)])


@bp.post("/customers/<int(max=2147483647):customer_id>/contacts")
@api(json=s.ContactIn, resp=resp("HTTP_201", s.ContactOut), tags=["customers"])
def log_contact(customer_id: int, json: s.ContactIn) -> tuple[s.ContactOut, int]:
    """Record a contact with the customer (422 with field errors); `start_process` starts a service process."""
    who = need(*WORKERS)
    access.require_customer(get_session(), reader(), customer_id)
    data = json.model_dump(exclude={"start_process"})
    row = contacts.log_contact(get_session(), customer_id, data, by=who.username, start_process=json.start_process,
                               now=current_time())
    return _contact_out(row), 201


# --- KPIs and exports ---------------------------------------------------------------------------

@bp.get("/kpis")
@api(resp=resp("HTTP_200", s.Kpi), tags=["kpis"])
def kpis() -> s.Kpi:
    """The supervisor's headline figures: expert loads, unassigned work, this month's on-time share."""
    need("auditor", "supervisor", "admin")
    figures = kpi.summary(get_session(), current_time())
    unassigned = figures["unassigned"]
    on_time = figures["on_time"]
    return s.Kpi(loads=[asdict(x) for x in figures["loads"]],
                 unassigned={"open": unassigned[0], "overdue": unassigned[1]},
                 on_time={"done": on_time.done, "on_time": on_time.on_time, "share": on_time.share})


def _export(fmt: str, ids: Any) -> Iterator[str]:
    # the request's session is done once the view returns: the stream reads through its own
    session = current_app.extensions["polku"].sessions()
    make = {"csv": exports.events_csv, "json": exports.events_json, "xes": exports.events_xes}[fmt]
    try:
        yield from make(session, ids)
    finally:
        session.close()


EXPORT_TYPES = {"csv": "text/csv", "json": "application/json", "xes": "application/xml"}


@bp.get("/exports/events")
@api(query=s.ExportQuery, resp=resp("HTTP_200", None), tags=["exports"])
def export_events(query: s.ExportQuery) -> StreamedResponse:
    """The audit events (CSV, JSON) or event log (XES) of the instances the filter finds, streamed."""
    need("auditor", "admin")
    f = history.InstanceFilter(process_id=query.process_id, status=query.status, customer=query.business_key)
    body = stream_with_context(_export(query.format, history.matching_query(f)))
    # a plain werkzeug Response: SpecTree passes it through unread, so the body is streamed
    response = StreamedResponse(body, mimetype=EXPORT_TYPES[query.format])
    response.headers["Content-Disposition"] = f"attachment; filename=events.{query.format}"
    return response


MEDIA[("/api/v1/exports/events", "get")] = {"200": "text/csv|application/json|application/xml"}


def register() -> None:
    """Nothing to do: importing this module adds the routes to the blueprint."""
