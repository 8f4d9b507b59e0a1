"""The README's configuration table lists every key with its environment variable."""

from __future__ import annotations

from pathlib import Path

from app.config import describe

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_documents_every_configuration_key() -> None:
    text = README.read_text()
    for key, _default, env_name, _description in describe():
        assert f"| `{key}` |" in text, key
        assert f"`{env_name}`" in text, env_name
