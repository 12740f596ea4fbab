"""Translation upkeep, run as `python -m webui.catalogs`: extract UI strings, merge into each .po, compile .mo.

Strings come from the files listed in `webui/babel.cfg` (`_`, `gettext`, `ngettext`, `_l` and the
engine's `N_` marker). New strings arrive in the .po untranslated; translate them, run again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

HERE = Path(__file__).parent
TRANSLATIONS = HERE / "translations"
BABEL_CONFIG = HERE / "babel.cfg"


def update_catalogs() -> None:
    """Extract the UI strings, merge them into each .po and compile the .mo files."""
    cli = CommandLineInterface()
    with tempfile.TemporaryDirectory() as tmp:
        pot = str(Path(tmp) / "messages.pot")
        cli.run(["pybabel", "-q", "extract", "-F", str(BABEL_CONFIG), "-k", "_l", "-k", "N_",
                 "--no-location", "--sort-output", "-o", pot, str(HERE.parent)])
        cli.run(["pybabel", "-q", "update", "-i", pot, "-d", str(TRANSLATIONS), "--no-fuzzy-matching",
                 "--ignore-obsolete"])
    cli.run(["pybabel", "-q", "compile", "-d", str(TRANSLATIONS)])


if __name__ == "__main__":
    update_catalogs()
