"""Translation upkeep, run as `python -m webui.catalogs`: extract UI strings, merge into each .po, compile .mo.

Strings come from the files listed in `webui/babel.cfg` (`_`, `gettext`, `ngettext`, `_l` and the
engine's `N_` marker). New strings arrive in the .po untranslated; translate them, run again.

Model texts (the Finnish words of `bpmn/*.bpmn`/`*.dmn`) go the other way round: the `bpmn`
extractor (`engine.model_texts.extract`, listed in `webui/babel-models.cfg`) collects them into the
`models` domain, merged into `engine/translations/<lang>/LC_MESSAGES/models.po` (English: `en`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from babel.messages.frontend import CommandLineInterface

from engine import model_texts

HERE = Path(__file__).parent
TRANSLATIONS = HERE / "translations"
BABEL_CONFIG = HERE / "babel.cfg"
MODELS_CONFIG = HERE / "babel-models.cfg"
MODEL_LOCALES = ("en",)


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
    update_model_catalogs(cli)


def _undated(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith('"POT-Creation-Date:'))


def update_model_catalogs(cli: CommandLineInterface | None = None) -> None:
    """Extract the model texts of `bpmn/`, merge them into each `models.po` and compile them."""
    cli = cli or CommandLineInterface()
    directory = str(model_texts.TRANSLATIONS)
    with tempfile.TemporaryDirectory() as tmp:
        pot = str(Path(tmp) / "models.pot")
        cli.run(["pybabel", "-q", "extract", "-F", str(MODELS_CONFIG), "--no-location", "--project", "Polku",
                 "-o", pot, str(HERE.parent)])
        for locale in MODEL_LOCALES:
            po = model_texts.TRANSLATIONS / locale / "LC_MESSAGES" / f"{model_texts.DOMAIN}.po"
            before = po.read_text(encoding="utf-8") if po.exists() else None
            command = "update" if po.exists() else "init"
            extra = ["--no-fuzzy-matching", "--ignore-obsolete"] if command == "update" else []
            cli.run(["pybabel", "-q", command, "-i", pot, "-d", directory, "-D", model_texts.DOMAIN,
                     "-l", locale, *extra])
            if before is not None and _undated(po.read_text(encoding="utf-8")) == _undated(before):
                po.write_text(before, encoding="utf-8")  # only the extraction date moved: keep the file as it was
    cli.run(["pybabel", "-q", "compile", "-d", directory, "-D", model_texts.DOMAIN])


if __name__ == "__main__":
    update_catalogs()
