"""The keys that sign access tokens: the configured ones, or the instance's development key.

Outside development and testing ``SIGNING_KEYS`` must be configured (the settings refuse to
start without). In development and testing, without ``SIGNING_KEYS``, tokens are signed with a
random key generated once per instance folder and kept there (``accounts-signing-key``, mode
0600), like a generated ``SECRET_KEY``: it survives restarts, differs between checkouts and
appears nowhere in the source, so nobody can forge a token for someone else's ``make run``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

from plugins.accounts.settings import MIN_KEY_LENGTH, AccountsSettings

DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEY_FILE = "accounts-signing-key"


class SigningKeyError(RuntimeError):
    """The instance's development key file cannot be created or read (the message says why)."""


def development_key(instance_path: Path) -> str:
    """The development signing key of ``instance_path``: read it, or create it once.

    Creation is atomic and exclusive: the key is written to a private temporary file that is
    then hard-linked to its name, which fails if the name exists. Of workers starting at the
    same time exactly one creates the file; the others read the complete key it wrote.
    """
    path = instance_path / DEVELOPMENT_KEY_FILE
    if not path.exists():
        _create(path)
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read the development signing key {path}: {exc}") from exc
    if len(key) < MIN_KEY_LENGTH:
        raise SigningKeyError(
            f"the development signing key {path} is shorter than {MIN_KEY_LENGTH} characters; "
            "delete it to have a new one generated"
        )
    return key


def _create(path: Path) -> None:
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another worker's key won: it is read
            os.link(draft, path)
    except OSError as exc:
        raise SigningKeyError(f"cannot create the development signing key {path}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):  # never created, or the folder is not there
            draft.unlink()


class SigningKeys:
    """Key id -> secret, and which one signs.

    The configured ``SIGNING_KEYS``, or (development and testing) the instance's generated key,
    read from its file the first time a token is signed or checked (never by a provider).
    """

    def __init__(self, settings: AccountsSettings, instance_path: Path) -> None:
        self._settings = settings
        self._instance_path = instance_path
        self._development: dict[str, str] | None = None
        self._lock = threading.Lock()

    @property
    def keys(self) -> Mapping[str, str]:
        """Every key tokens may be signed with, by id."""
        if self._settings.SIGNING_KEYS:
            return self._settings.SIGNING_KEYS
        if self._development is None:
            with self._lock:
                if self._development is None:
                    key = development_key(self._instance_path)
                    self._development = {DEVELOPMENT_KEY_ID: key}
        return self._development

    def current(self) -> tuple[str, str]:
        """(key id, secret) of the key that signs."""
        kid = self._settings.CURRENT_KEY or DEVELOPMENT_KEY_ID
        return kid, self.keys[kid]

    def get(self, kid: str) -> str | None:
        """The secret of key ``kid``, None for an unknown one."""
        return self.keys.get(kid)
