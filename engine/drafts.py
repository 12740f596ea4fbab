"""Drafts: the model files each designer is editing, saved apart from deployed versions.

A draft belongs to one designer and is keyed by file name; saving again replaces it. Drafts
never run: deploying one goes through `engine.deploy.deploy_files`, after which the draft can
be discarded.
"""

from __future__ import annotations

import os
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import utcnow
from .errors import InvalidInput, NotFound
from .models import Draft
from .users import N_

MODEL_SUFFIXES = (".bpmn", ".dmn")


def _clean_name(filename: str) -> str:
    if any(unicodedata.category(c)[0] == "C" for c in filename):  # CR/LF, tabs, bidi overrides, …
        raise InvalidInput(N_("a model file name cannot contain line breaks or other control characters"))
    name = os.path.basename(filename.replace("\\", "/")).strip()
    if not name.lower().endswith(MODEL_SUFFIXES) or len(name) > 200 or name.startswith("."):
        raise InvalidInput(N_("a model file name ends in .bpmn or .dmn"))
    return name


def save_draft(session: Session, owner: str, filename: str, content: str,
               base_version_id: int | None = None) -> Draft:
    """Create or replace the owner's draft of a file.

    Raises:
        InvalidInput: the file name is not a .bpmn or .dmn name.
    """
    name = _clean_name(filename)
    draft = session.scalars(select(Draft).where(Draft.owner == owner, Draft.filename == name)).first()
    if draft is None:
        draft = Draft(owner=owner, filename=name, content=content, base_version_id=base_version_id)
        session.add(draft)
    else:
        draft.content = content
        if base_version_id is not None:
            draft.base_version_id = base_version_id
    draft.updated_at = utcnow()
    session.flush()
    return draft


def list_drafts(session: Session, owner: str) -> list[Draft]:
    """List one designer's drafts, most recently saved first."""
    query = select(Draft).where(Draft.owner == owner).order_by(Draft.updated_at.desc(), Draft.id.desc())
    return list(session.scalars(query))


def get_draft(session: Session, owner: str, draft_id: int) -> Draft:
    """Return one of the owner's drafts.

    Raises:
        NotFound: no such draft, or it is someone else's.
    """
    draft = session.get(Draft, draft_id)
    if draft is None or draft.owner != owner:
        raise NotFound(f"no draft {draft_id}")
    return draft


def delete_draft(session: Session, owner: str, draft_id: int) -> None:
    """Discard one of the owner's drafts.

    Raises:
        NotFound: no such draft, or it is someone else's.
    """
    session.delete(get_draft(session, owner, draft_id))
    session.flush()
