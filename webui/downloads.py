"""Downloads: a Content-Disposition header that is safe for any file name.

Names come from uploads and drafts (designers), so they may hold quotes, non-ASCII letters or
control characters. `attachment` drops the control characters (a CR/LF would split the header),
sends a quoted ASCII fallback and the full name percent-encoded as RFC 6266 `filename*`.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from werkzeug.http import dump_options_header

__all__ = ["attachment"]


def attachment(filename: str, default: str = "download") -> str:
    """Return the Content-Disposition value that downloads as `filename`."""
    name = "".join(c for c in filename if unicodedata.category(c)[0] != "C").strip() or default
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").strip() or default
    return dump_options_header("attachment", {"filename": fallback, "filename*": "UTF-8''" + quote(name, safe="")})
