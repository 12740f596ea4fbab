"""The engine's exceptions; callers map them (the web UI in `webui/errors.py`, the CLI to exit codes).

EngineError
  + NotFound
  |   + VersionNotFound, InstanceNotFound, TaskNotFound, UserNotFound, CustomerNotFound
  |   + ProviderNotFound
  |   + ExternalTaskNotFound
  + InvalidModel        (deploy/validate: carries a list of Problem(file, line, element, message))
  + TaskNotAvailable    (completed, cancelled, not ready, or not yours)
  |   + ExternalTaskNotAvailable (locked by another worker, lock expired, already completed)
  + FormInvalid         (carries {field: message} and the submitted values)
  + Conflict            (someone else changed the instance first)
  |   + RevisionMismatch (a write named an older instance revision: If-Match)
  + InvalidInput        (bad argument from a caller: JSON, date, unknown option)
  |   + DataInvalid     (process data not JSON-plain, too large or deep; names the variable)
  + NotAllowed          (the action is refused in this environment or for this user)
  + ScriptError         (an expression or script failed or broke the sandbox; becomes an incident)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class NotFound(EngineError):
    """Something named by id does not exist."""


class VersionNotFound(NotFound):
    """No such process or process version."""


class InstanceNotFound(NotFound):
    """No such instance."""


class TaskNotFound(NotFound):
    """No such task."""


class UserNotFound(NotFound):
    """No such user."""


class CustomerNotFound(NotFound):
    """No such customer."""


class ProviderNotFound(NotFound):
    """No such service provider (engine.providers)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a model file, said so that a process designer understands it."""

    file: str
    line: int | None
    element: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
        if self.element:
            where += f" [{self.element}]"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """Return the problem as plain JSON-able data."""
        return {"file": self.file, "line": self.line, "element": self.element,
                "message": self.message, "severity": self.severity}


class InvalidModel(EngineError):
    """A model cannot be deployed; `problems` says every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        first = str(problems[0]) if problems else "invalid model"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(first + more)


class TaskNotAvailable(EngineError):
    """The task cannot be worked on by this user now."""


class ExternalTaskNotFound(NotFound):
    """No such external task."""


class ExternalTaskNotAvailable(TaskNotAvailable):
    """This worker cannot act on the external task now: not its lock, lock expired, or already done."""


class FormInvalid(EngineError):
    """Submitted form data breaks the field constraints; `errors` maps field id to message."""

    def __init__(self, errors: dict[str, str], values: dict[str, Any] | None = None):
        self.errors = errors
        self.values = values or {}
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class Conflict(EngineError):
    """Another writer changed the same instance first; reload and try again."""


class RevisionMismatch(Conflict):
    """The caller wrote against an older revision of the instance (the REST API's If-Match): 412 there."""


class InvalidInput(EngineError):
    """A caller passed something malformed."""


class DataInvalid(InvalidInput):
    """Process data is not JSON-plain, too large or too deep; names the variable path and the rule."""

    def __init__(self, what: str, variable: str, rule: str):
        self.what = what
        self.variable = variable
        self.rule = rule
        super().__init__(f"{what}: {self.variable} {rule}")


class NotAllowed(EngineError):
    """The action is refused here."""


class ScriptError(EngineError):
    """A BPMN expression or script failed, or tried something the sandbox forbids."""

    def __init__(self, message: str, element: str | None = None, line: int | None = None):
        self.element = element
        self.line = line
        super().__init__(message)
