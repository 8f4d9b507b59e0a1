"""Injector bindings of the tasks plugin."""

from __future__ import annotations

import injector

from plugins.tasks.access import Membership
from plugins.tasks.contracts import ProjectMembership
from powerstrip import request_scope


class TasksModule(injector.Module):
    """Publishes the membership query other plugins may ask for."""

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(ProjectMembership, to=Membership, scope=request_scope)  # type: ignore[type-abstract]
