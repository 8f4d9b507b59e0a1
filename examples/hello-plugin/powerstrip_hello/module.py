"""Injector bindings of the hello plugin."""

from __future__ import annotations

import injector

from powerstrip_hello.service import GreetingService


class HelloModule(injector.Module):
    """One GreetingService per app: it holds no request state."""

    def configure(self, binder: injector.Binder) -> None:
        binder.bind(GreetingService, scope=injector.singleton)
