"""Serve a few prebuilt front-end files from node_modules (bpmn-js's viewer and its CSS and font).

Only the files in `ALLOWED` are served; any other name is a 404. They change only with an npm
upgrade, so browsers may keep them for a day.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, abort
from werkzeug.wrappers import Response

from .auth import login_required

bp = Blueprint("vendor", __name__, url_prefix="/vendor")
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
ALLOWED = frozenset({
    "bpmn-js/dist/bpmn-navigated-viewer.production.min.js",
    "bpmn-js/dist/assets/bpmn-js.css",
    "bpmn-js/dist/assets/diagram-js.css",
    "bpmn-js/dist/assets/bpmn-font/css/bpmn.css",
    "bpmn-js/dist/assets/bpmn-font/font/bpmn.woff2",
    "bpmn-js/dist/assets/bpmn-font/font/bpmn.woff",
})
MAX_AGE = 86400


@bp.route("/<path:name>")
@login_required()
def asset(name: str) -> Response:
    """Send one allow-listed file from node_modules with cache headers."""
    if name not in ALLOWED:
        abort(404)
    path = NODE_MODULES / name
    if not path.is_file():
        abort(404)
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = Response(path.read_bytes(), mimetype=mimetype)  # small files, read whole: no handle left open
    response.headers["Cache-Control"] = f"private, max-age={MAX_AGE}"
    return response
