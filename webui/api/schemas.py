"""The REST API's typed bodies (pydantic v2): SpecTree builds the OpenAPI 3.1 document from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Json = dict[str, Any]


class Strict(BaseModel):
    """A request body: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


# --- problems (RFC 9457) ------------------------------------------------------------------------

class ModelProblem(BaseModel):
    file: str
    line: int | None = None
    element: str | None = None
    message: str
    severity: str = "error"


class Problem(BaseModel):
    """An error as `application/problem+json` (RFC 9457); `type` is stable per error class."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: dict[str, str] | None = Field(default=None, description="field id -> message (422 form errors)")
    problems: list[ModelProblem] | None = Field(default=None, description="model problems (422 on deploy)")


# --- definitions --------------------------------------------------------------------------------

class Definition(BaseModel):
    id: int
    process_id: str
    kind: str
    name: str | None = None
    version: int
    deployed_by: str
    deployed_at: str


class DefinitionList(BaseModel):
    items: list[Definition]


class DeployResult(BaseModel):
    deployment_id: int | None = None
    created: list[Definition]
    unchanged: list[Definition]


class DeployForm(BaseModel):
    """Multipart upload: one or more `.bpmn`/`.dmn` files under the field name `files`."""

    files: list[Any] = Field(json_schema_extra={"items": {"type": "string", "format": "binary"}})


class FormSchema(BaseModel):
    """A form as a JSON Schema (2020-12) object."""

    model_config = ConfigDict(extra="allow")


# --- instances ----------------------------------------------------------------------------------

class StartInstance(Strict):
    process_id: str = Field(min_length=1, max_length=200)
    business_key: str | None = Field(default=None, max_length=200)
    version: int | None = Field(default=None, ge=1)
    data: Json = Field(default_factory=dict, description="start-form values (or plain variables without a form)")


class TaskOut(BaseModel):
    id: str
    instance_id: int
    element_id: str
    name: str | None = None
    lane: str | None = None
    role: str | None = None
    state: str
    assignee: str | None = None
    due_at: str | None = None
    created_at: str
    completed_at: str | None = None
    completed_by: str | None = None


class TimerOut(BaseModel):
    element_id: str
    kind: str
    due_at: str


class IncidentBrief(BaseModel):
    id: int
    element_id: str | None = None
    message: str
    created_at: str


class InstanceOut(BaseModel):
    id: int
    process_id: str
    version: int
    business_key: str | None = None
    status: str
    revision: int
    started_at: str
    started_by: str | None = None
    ended_at: str | None = None
    parent_instance_id: int | None = None
    variables: Json
    tasks: list[TaskOut]
    timers: list[TimerOut]
    incidents: list[IncidentBrief]


class InstanceBrief(BaseModel):
    id: int
    process_id: str
    business_key: str | None = None
    status: str
    revision: int
    started_at: str
    ended_at: str | None = None


class InstancePage(BaseModel):
    items: list[InstanceBrief]
    next_cursor: str | None = None


class InstanceQuery(Strict):
    process_id: str | None = None
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    status: Literal["running", "completed", "cancelled", "incident"] | None = None
    business_key: str | None = Field(default=None, max_length=200)
    expert: str | None = Field(default=None, max_length=80)
    started_from: AwareDatetime | None = None
    started_to: AwareDatetime | None = None
    ended_from: AwareDatetime | None = None
    ended_to: AwareDatetime | None = None
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class CancelInstance(Strict):
    reason: str = Field(default="", max_length=2000)


class Variables(BaseModel):
    variables: Json


class Event(BaseModel):
    id: int | None = None
    seq: int
    kind: str
    at: str
    actor: str
    instance_id: int | None = None
    version_id: int | None = None
    element_id: str | None = None
    task_id: str | None = None
    data: Any = None
    hash: str


class EventList(BaseModel):
    items: list[Event]


# --- tasks --------------------------------------------------------------------------------------

class TaskQuery(Strict):
    assignee: str | None = Field(default=None, max_length=80)
    mine: bool = Field(default=False, description="tasks assigned to the caller or open to their roles")
    instance_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    business_key: str | None = Field(default=None, max_length=200)
    process_id: str | None = Field(default=None, max_length=200)
    state: Literal["ready", "completed", "cancelled"] | None = "ready"
    overdue: bool = Field(default=False, description="only tasks past their due time")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = None


class TaskDetail(BaseModel):
    task: TaskOut
    instance_revision: int
    documentation: str | None = None
    form: FormSchema


class CompleteTask(Strict):
    data: Json = Field(default_factory=dict)


class AssignTask(Strict):
    assignee: str | None = Field(default=None, max_length=80, description="username; null unassigns")


# --- messages, signals --------------------------------------------------------------------------

class Correlate(Strict):
    name: str = Field(min_length=1, max_length=200)
    business_key: str | None = Field(default=None, max_length=200)
    instance_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    data: Json = Field(default_factory=dict)


class Correlated(BaseModel):
    delivered_to: list[int]


class Signal(Strict):
    name: str = Field(min_length=1, max_length=200)
    data: Json = Field(default_factory=dict)


class SignalResult(BaseModel):
    delivered_to: list[int]
    started: list[int]


# --- incidents ----------------------------------------------------------------------------------

class IncidentOut(BaseModel):
    id: int
    instance_id: int
    element_id: str | None = None
    message: str
    status: str
    created_at: str


class IncidentQuery(Strict):
    status: Literal["open", "resolved"] | None = "open"
    instance_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None = None


class RetryIncident(Strict):
    data: Json = Field(default_factory=dict)


# --- external tasks -----------------------------------------------------------------------------

class FetchTopic(Strict):
    name: str = Field(min_length=1, max_length=200)
    lock_seconds: float = Field(gt=0, le=7 * 24 * 3600)
    variables: list[str] | None = None


class FetchAndLock(Strict):
    worker_id: str = Field(min_length=1, max_length=200)
    topics: list[FetchTopic] = Field(min_length=1, max_length=50)
    max_tasks: int = Field(default=10, ge=1, le=100)


class LockedTaskOut(BaseModel):
    id: int
    topic: str
    instance_id: int
    process_id: str
    element_id: str
    business_key: str | None = None
    variables: Json
    priority: int | None = None
    retries: int | None = None
    worker_id: str
    lock_expires_at: str


class LockedTaskList(BaseModel):
    items: list[LockedTaskOut]


class CompleteExternal(Strict):
    worker_id: str = Field(min_length=1, max_length=200)
    variables: Json = Field(default_factory=dict)


class FailExternal(Strict):
    worker_id: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=2000)
    details: str | None = Field(default=None, max_length=64000)
    retries: int | None = Field(default=None, ge=0, le=1000)
    retry_timeout_seconds: float = Field(default=0, ge=0, le=7 * 24 * 3600)


class ExtendLock(Strict):
    worker_id: str = Field(min_length=1, max_length=200)
    lock_seconds: float = Field(gt=0, le=7 * 24 * 3600)


class ExternalTaskOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    topic: str
    instance_id: int
    state: str


# --- customers ----------------------------------------------------------------------------------

class CustomerIn(Strict):
    business_id: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=200)
    industry: str | None = Field(default=None, max_length=200)
    founded_year: int | None = Field(default=None, ge=1800, le=2100)
    headcount: int | None = Field(default=None, ge=0, le=1_000_000)
    turnover_band: str | None = Field(default=None, max_length=40)
    situation: str | None = Field(default=None, max_length=40)
    segment: str | None = Field(default=None, max_length=60)
    responsible_expert: str | None = Field(default=None, max_length=80)
    contact_person: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)


class CustomerOut(BaseModel):
    id: int
    business_id: str
    name: str
    industry: str | None = None
    founded_year: int | None = None
    headcount: int | None = None
    turnover_band: str | None = None
    situation: str | None = None
    segment: str | None = None
    responsible_expert: str | None = None
    contact_person: str | None = None
    phone: str | None = None
    created_at: str
    updated_at: str


class CustomerQuery(Strict):
    q: str = Field(default="", max_length=200)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    next_cursor: str | None = None


class ContactIn(Strict):
    contacted_on: str = Field(description="date, YYYY-MM-DD", max_length=10)
    channel: Literal["visit", "phone", "email", "event", "web"]
    topic: str = Field(min_length=1, max_length=200)
    participants: str | None = Field(default=None, max_length=2000)
    notes: str | None = Field(default=None, max_length=10000)
    next_contact_on: str | None = Field(default=None, description="date, YYYY-MM-DD", max_length=10)
    prospecting: bool = False
    start_process: bool = Field(default=False, description="a prospecting visit: start a service process too")


class ContactOut(BaseModel):
    id: int
    customer_id: int
    contacted_on: str
    channel: str
    topic: str
    participants: str | None = None
    notes: str | None = None
    next_contact_on: str | None = None
    prospecting: bool
    instance_id: int | None = None
    created_by: str
    created_at: str


class ContactList(BaseModel):
    items: list[ContactOut]


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="allow")


class Timeline(BaseModel):
    items: list[TimelineEntry]
    next_cursor: str | None = None


class TimelineQuery(Strict):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=100, ge=1, le=200)


# --- KPIs, exports, tokens ----------------------------------------------------------------------

class Kpi(BaseModel):
    model_config = ConfigDict(extra="allow")


class ExportQuery(Strict):
    format: Literal["csv", "json", "xes"] = "json"
    process_id: str | None = Field(default=None, max_length=200)
    status: Literal["running", "completed", "cancelled", "incident"] | None = None
    business_key: str | None = Field(default=None, max_length=200)


class Me(BaseModel):
    username: str
    roles: list[str]
    token_id: int
