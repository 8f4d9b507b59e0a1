"""Tables of the hello plugin (named ``hello_...``, as the host requires)."""

from __future__ import annotations

from datetime import datetime

from powerstrip import Model, UtcDateTime
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class GreetingRecord(Model):
    """A greeting that was asked for and stored."""

    __tablename__ = "hello_greetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    message: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
