"""The plugin SDK's public surface is deliberate: this test pins it."""

from __future__ import annotations

import app


def test_exported_names() -> None:
    assert sorted(app.__all__) == [
        "Clock",
        "ConfigError",
        "ENTRY_POINT_GROUP",
        "EventBus",
        "HealthCheck",
        "HostConfig",
        "Model",
        "Plugin",
        "PluginContext",
        "PluginError",
        "PluginRecord",
        "Principal",
        "Problem",
        "RateLimits",
        "StartupError",
        "UnitOfWork",
        "UtcDateTime",
        "create_app",
        "injected",
        "requires",
        "settings_environment",
    ]
    for name in app.__all__:
        assert getattr(app, name) is not None
