"""A plugin's own Prometheus metrics: ``context.metrics`` in its ``setup`` hook.

The host gives each plugin a :class:`PluginMetrics` whose families are named
``<plugin>_<name>`` (a counter also gets prometheus' ``_total``), registered with the app's
metrics and, under gunicorn, summed across workers like the host's own. Count from the domain
events the plugin already publishes::

    def setup(context: PluginContext) -> None:
        stored = context.metrics.counter("greetings_stored", "Greetings stored")
        context.events.subscribe(Greeted, lambda _event: stored.inc())

Labels must take few values (a status, a kind), never ids, names or free text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # prometheus-client is loaded by the host, not by importing the SDK
    from prometheus_client import Counter, Gauge, Histogram

GaugeMode = Literal[
    "livesum",
    "liveall",
    "livemax",
    "livemin",
    "livemostrecent",
    "sum",
    "all",
    "max",
    "min",
    "mostrecent",
]
"""How a gauge's values from several worker processes combine (prometheus-client's modes).

The ``live...`` modes count running workers only; the others keep a dead worker's last value
until the server restarts."""


class PluginMetrics(Protocol):
    """Creates metric families named for the plugin (``<plugin>_<name>``)."""

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter, ``<plugin>_<name>_total``."""
        ...

    def gauge(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        mode: GaugeMode = "livesum",
    ) -> Gauge:
        """A gauge, ``<plugin>_<name>``; ``mode``: how workers' values combine."""
        ...

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] | None = None,
    ) -> Histogram:
        """A histogram, ``<plugin>_<name>`` (prometheus' default buckets unless given)."""
        ...
