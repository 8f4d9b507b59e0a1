"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@cache
def common_passwords() -> frozenset[str]:
    """The common passwords shipped with the plugin (read once per process)."""
    text = (resources.files("plugins.accounts") / "common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


class Passwords:
    """Hash, verify and judge passwords.

    ``verify`` does the same Argon2 work for an unknown user (against a dummy hash) as for a
    wrong password, so timing does not tell whether an account exists.
    """

    def __init__(self, hasher: PasswordHasher | None = None, min_length: int = 10) -> None:
        self._hasher = hasher or PasswordHasher()
        self._min_length = min_length
        self._dummy: str | None = None  # made on first use: no Argon2 work at startup

    def hash(self, password: str) -> str:
        """An Argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored`` (None: an unknown user, always False)."""
        if self._dummy is None:
            self._dummy = self._hasher.hash("powerstrip-dummy-password-for-unknown-users")
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored)

    def problems(self, password: str, email: str) -> list[str]:
        """Why ``password`` is not acceptable (empty when it is)."""
        found = []
        if len(password) < self._min_length:
            found.append(f"Use at least {self._min_length} characters.")
        if password.lower() in common_passwords():
            found.append("This password is too common.")
        local = email.split("@", maxsplit=1)[0].lower()
        if len(local) >= 3 and local in password.lower():  # "al" would refuse "totally"
            found.append("Do not use your email address in your password.")
        return found
