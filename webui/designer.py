"""The process designer's pages: process list, modeler, drafts, upload, validate, deploy, migrate.

Designers (and admins) edit BPMN in bpmn-js with the Camunda properties panel and DMN in dmn-js
(`webui/assets/designer.js`, bundled by `scripts/build_assets.sh`). Drafts are saved per designer
(`engine.drafts`); validation joins the engine's deploy checks with bpmnlint's recommended rules;
deploying shows what changed against the previous version (`engine.diff`) before it is confirmed;
migration previews every running instance of a version and moves the chosen ones, each in its
own transaction (`engine.migrate`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from engine import deploy, drafts, migrate, model_texts
from engine.diff import diff_models
from engine.errors import EngineError, InvalidInput, InvalidModel, NotAllowed, NotFound, Problem
from engine.models import Draft, ModelFile, ProcessVersion

from . import modeltexts
from .auth import current_user, login_required
from .db import get_session
from .downloads import attachment
from .inputs import whole_number

bp = Blueprint("designer", __name__, url_prefix="/designer")
ROLES = ("designer", "admin")
ROOT = Path(__file__).resolve().parent.parent
LINT_SCRIPT = ROOT / "scripts" / "bpmnlint_json.cjs"
# bpmn-js and dmn-js style their SVG and tables inline; scripts stay same-origin files only.
DESIGNER_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                "font-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'self'")


@bp.after_request
def _designer_csp(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", DESIGNER_CSP)
    return response


def _me() -> str:
    user = current_user()
    assert user is not None  # login_required ran
    return str(user.username)


def _max_bytes() -> int:
    return int(current_app.extensions["polku"].settings.max_upload_bytes)


def _version_file(version: ProcessVersion) -> ModelFile:
    file = get_session().get(ModelFile, version.file_id)
    if file is None:
        raise NotFound(f"no file for version {version.id}")
    return file


def _processes() -> list[dict[str, Any]]:
    counts = migrate.running_counts(get_session())
    grouped: dict[str, dict[str, Any]] = {}
    for v in deploy.list_versions(get_session()):
        entry = grouped.setdefault(v["process_id"], {**v, "versions": []})
        entry["versions"].append({**v, "running": counts.get(v["id"], 0)})
    return list(grouped.values())


@bp.route("/")
@login_required(*ROLES)
def index() -> str:
    """List processes and decisions with their versions, my drafts and the upload form."""
    return render_template("designer/index.html", processes=_processes(),
                           drafts=drafts.list_drafts(get_session(), _me()), max_bytes=_max_bytes())


@bp.route("/versions/<int:version_id>")
@login_required(*ROLES)
def version(version_id: int) -> str:
    """Show one process's versions with running instances and what can be done with each."""
    chosen = deploy.version_by_id(get_session(), version_id)
    entry = next(p for p in _processes() if p["process_id"] == chosen.process_id)
    return render_template("designer/version.html", chosen=chosen, process=entry)


@bp.route("/versions/<int:version_id>/download")
@login_required(*ROLES)
def download(version_id: int) -> Response:
    """Send the model file a version was deployed from, exactly as stored."""
    file = _version_file(deploy.version_by_id(get_session(), version_id))
    response = Response(file.content, mimetype="application/xml")
    response.headers["Content-Disposition"] = attachment(file.filename, "model.bpmn")
    return response


def _modeler(filename: str, content: str, *, draft: Draft | None = None, base: ProcessVersion | None = None) -> str:
    kind = "dmn" if filename.lower().endswith(".dmn") else "bpmn"
    data = {
        "xml": content, "filename": filename, "kind": kind,
        "base_version_id": base.id if base else (draft.base_version_id if draft else None),
        "urls": {"save": url_for("designer.save_draft"), "validate": url_for("designer.validate")},
        "labels": {"loaded": _("The model is open."), "import_failed": _("The model could not be opened:"),
                   "saved": _("Draft saved."), "save_failed": _("The draft could not be saved:"),
                   "clean": _("No problems found (warnings, if any, are listed below)."), "problems": _("Problems found: see the list below."),
                   "validate_failed": _("Validation failed:"), "line": _("line"), "warning": _("warning")},
    }
    return render_template("designer/modeler.html", data=data, filename=filename, kind=kind, draft=draft, base=base)


@bp.route("/versions/<int:version_id>/edit")
@login_required(*ROLES)
def edit_version(version_id: int) -> str:
    """Open a deployed version's file in the modeler."""
    chosen = deploy.version_by_id(get_session(), version_id)
    file = _version_file(chosen)
    return _modeler(file.filename, file.content, base=chosen)


@bp.route("/drafts/<int:draft_id>")
@login_required(*ROLES)
def draft(draft_id: int) -> str:
    """Open one of my drafts in the modeler."""
    found = drafts.get_draft(get_session(), _me(), draft_id)
    return _modeler(found.filename, found.content, draft=found)


def _posted_model() -> tuple[str, str, int | None]:
    body = request.get_json(silent=True) if request.is_json else None
    values = body if isinstance(body, dict) else request.form
    filename, content = str(values.get("filename") or ""), str(values.get("content") or "")
    if len(content.encode()) > _max_bytes():
        raise InvalidInput(_("The model is larger than the upload limit."))
    base = str(values.get("base_version_id") or "")
    return filename, content, whole_number(base)


@bp.route("/drafts", methods=["POST"])
@login_required(*ROLES)
def save_draft() -> Any:
    """Save the modeler's content as my draft (JSON from the modeler, or a plain form)."""
    filename, content, base = _posted_model()
    if not content.strip():
        raise InvalidInput(_("The model is empty."))
    saved = drafts.save_draft(get_session(), _me(), filename, content, base)
    url = url_for("designer.draft", draft_id=saved.id)
    if request.is_json:
        return jsonify({"id": saved.id, "url": url, "deploy_url": url_for("designer.review", draft_id=saved.id)})
    flash(_("Draft saved."), "success")
    return redirect(url)


@bp.route("/drafts/<int:draft_id>/delete", methods=["POST"])
@login_required(*ROLES)
def delete_draft(draft_id: int) -> Response:
    """Discard one of my drafts."""
    drafts.delete_draft(get_session(), _me(), draft_id)
    flash(_("Draft discarded."), "success")
    return redirect(url_for("designer.index"))


@bp.route("/upload", methods=["POST"])
@login_required(*ROLES)
def upload() -> Any:
    """Take a .bpmn or .dmn file made in another tool as a new draft (checked when validated)."""
    file = request.files.get("model")
    if file is None or not file.filename:
        flash(_("Choose a .bpmn or .dmn file to upload."), "error")
        return redirect(url_for("designer.index"))
    content = file.stream.read(_max_bytes() + 1)
    if len(content) > _max_bytes():
        flash(_("The file is larger than the upload limit."), "error")
        return redirect(url_for("designer.index")), 413
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        flash(_("The file is not UTF-8 text; save it as UTF-8 and upload it again."), "error")
        return redirect(url_for("designer.index")), 400
    saved = drafts.save_draft(get_session(), _me(), file.filename, text)
    flash(_("The file was uploaded as a draft. Validate it before deploying."), "success")
    return redirect(url_for("designer.draft", draft_id=saved.id))


def lint_problems(filename: str, content: bytes) -> list[Problem]:
    """Run bpmnlint's recommended rules on a BPMN file; return its reports as problems."""
    if not filename.lower().endswith(".bpmn") or not LINT_SCRIPT.exists():
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.bpmn")
        Path(path).write_bytes(content)
        try:
            done = subprocess.run(["node", str(LINT_SCRIPT), path], cwd=ROOT, capture_output=True,
                                  timeout=60, check=False)
            reports = json.loads(done.stdout or b"[]")
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return [Problem(filename, None, None, _("bpmnlint could not be run."))]
    return [Problem(filename, None, r.get("id"), f"{r.get('message')} ({r.get('rule')})",
                    "warning" if r.get("category") == "warn" else "error") for r in reports]


def check_model(filename: str, content: bytes) -> list[dict[str, Any]]:
    """Validate a model with the engine's deploy checks and bpmnlint; return problems with their source."""
    files = {filename: content}
    checked = deploy.check_files(get_session(), files, max_bytes=_max_bytes())
    found = [{**p.as_dict(), "source": "engine"} for p in checked.problems]
    if any(name == filename for name, _kind, _tree in checked.documents):  # only XML the engine found safe
        found += [{**p.as_dict(), "source": "bpmnlint"} for p in lint_problems(filename, content)]
    return found


@bp.route("/validate", methods=["POST"])
@login_required(*ROLES)
def validate() -> Response:
    """Validate the modeler's content; answer the problems as JSON."""
    filename, content, _base = _posted_model()
    name = os.path.basename(filename) or "model.bpmn"
    return jsonify({"problems": check_model(name, content.encode()),
                    "untranslated": model_texts.untranslated(name, content.encode())})


def _changes(name: str, content: bytes) -> list[dict[str, Any]]:
    """List, per process or decision in the file, what changed against its latest version."""
    session = get_session()
    previous = {}
    for key in _defined_ids(content):
        latest = deploy.latest_version(session, key, required=False)
        if latest is not None:
            previous[key] = latest
    old_files = {v.file_id: v for v in previous.values()}
    sections = []
    for file_id, latest in old_files.items():
        old = session.get(ModelFile, file_id)
        old_content = old.content.encode() if old is not None else None
        sections.append({"version": latest, "changes": diff_models(old_content, content, name)})
    if not sections:
        sections.append({"version": None, "changes": diff_models(None, content, name)})
    return sections


def _defined_ids(content: bytes) -> list[str]:
    from engine import xmlcheck

    tree, problems = xmlcheck.parse_untrusted("model", content)
    if tree is None or problems:
        return []
    return [el.get("id") for el in tree.getroot().iter()
            if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] in ("process", "decision") and el.get("id")]


@bp.route("/drafts/<int:draft_id>/deploy", methods=["GET"])
@login_required(*ROLES)
def review(draft_id: int) -> str:
    """Show what deploying a draft would change, and its problems, before confirming."""
    found = drafts.get_draft(get_session(), _me(), draft_id)
    content = found.content.encode()
    problems = check_model(found.filename, content)
    blocking = [p for p in problems if p["source"] == "engine"]
    return render_template("designer/review.html", draft=found, problems=problems, blocking=blocking,
                           sections=_changes(found.filename, content) if not blocking else [],
                           untranslated=model_texts.untranslated(found.filename, content))


@bp.route("/drafts/<int:draft_id>/deploy", methods=["POST"])
@login_required(*ROLES)
def deploy_draft(draft_id: int) -> Any:
    """Deploy a draft under my name; the draft is discarded once deployed."""
    session = get_session()
    found = drafts.get_draft(session, _me(), draft_id)
    try:
        files = {found.filename: found.content.encode()}
        result = deploy.deploy_files(session, files, by=_me(), max_bytes=_max_bytes())
    except InvalidModel as err:
        problems = [{**p.as_dict(), "source": "engine"} for p in err.problems]
        return render_template("designer/review.html", draft=found, problems=problems, blocking=problems,
                               sections=[]), 422
    if not result.created:
        flash(_("Nothing changed: no new version was deployed."), "info")
        return redirect(url_for("designer.draft", draft_id=found.id))
    drafts.delete_draft(session, _me(), found.id)
    names = ", ".join(f"{modeltexts.text(v.name, v.id)} v{v.version}" for v in result.created)
    flash(_("Deployed: %(names)s.", names=names), "success")
    return redirect(url_for("designer.version", version_id=result.created[0].id))


def _migration_versions(process_id: str) -> tuple[list[ProcessVersion], ProcessVersion | None, ProcessVersion | None]:
    session = get_session()
    versions = list(session.scalars(select(ProcessVersion).where(ProcessVersion.process_id == process_id)
                                    .order_by(ProcessVersion.version.desc())))
    if not versions:
        raise NotFound(f"no process '{process_id}'")
    by_id = {v.id: v for v in versions}
    counts = migrate.running_counts(session)
    target = by_id.get(request.values.get("target", type=int) or 0) or versions[0]
    default_source = next((v for v in versions if v.id != target.id and counts.get(v.id)), None)
    source = by_id.get(request.values.get("source", type=int) or 0) or default_source
    return versions, source, target


@bp.route("/processes/<process_id>/migrate", methods=["GET"])
@login_required(*ROLES)
def migration(process_id: str) -> str:
    """Preview migrating the running instances of a source version to a target version."""
    versions, source, target = _migration_versions(process_id)
    candidates = []
    error = None
    if source is not None and target is not None and source.id != target.id:
        candidates = migrate.preview(get_session(), source.id, target.id)
    elif source is not None:
        error = _("Choose a target version other than the source.")
    return render_template("designer/migrate.html", process_id=process_id, versions=versions, source=source,
                           target=target, candidates=candidates, error=error,
                           counts=migrate.running_counts(get_session()))


@bp.route("/processes/<process_id>/migrate", methods=["POST"])
@login_required(*ROLES)
def migrate_instances(process_id: str) -> Response:
    """Migrate the chosen instances, each in its own transaction; blocked ones stay as they are."""
    _versions, source, target = _migration_versions(process_id)
    chosen = [n for i in request.form.getlist("instance") if (n := whole_number(i)) is not None]
    if source is None or target is None or not chosen:
        flash(_("Choose the instances to migrate."), "error")
        return redirect(url_for("designer.migration", process_id=process_id))
    source_id, target_id, by = source.id, target.id, _me()
    get_session().commit()  # end the request's transaction: SQLite has one writer, each instance gets its own
    sessions = current_app.extensions["polku"].sessions
    moved, refused = 0, []
    for instance_id in chosen:
        try:
            with sessions.begin() as s:
                migrate.migrate_instance(s, instance_id, target_id, by=by, source_id=source_id)
            moved += 1
        except (NotAllowed, NotFound, InvalidInput) as err:
            refused.append(f"#{instance_id}: {err}")
        except EngineError as err:
            refused.append(f"#{instance_id}: {err}")
    if moved:
        flash(_("%(n)s instances migrated.", n=moved), "success")
    for text in refused:
        flash(_("Not migrated: %(reason)s", reason=text), "error")
    return redirect(url_for("designer.migration", process_id=process_id, source=source_id, target=target_id))
