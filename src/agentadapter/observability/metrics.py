"""Prometheus metrics for AgentAdapter, registered in prometheus-client's default registry.

The message bus is a hot path (hundreds of thousands of messages per second in-process), so its
metrics are not prometheus-client ``Counter``/``Histogram`` children, whose every update takes a lock
and costs ~0.25-0.5 microseconds. The bus instead bumps plain integers in :data:`BUS_METRICS` (updates
happen under the bus's own lock or the GIL) and a :class:`~prometheus_client.registry.Collector`
turns them into metric families when ``/metrics`` is scraped. Queue depth is read at scrape time from
the live buses themselves, so keeping it current costs nothing per message. Every bus metric name
starts with ``agentadapter_bus_``.

:class:`RelabeledView` is what a scrape reads: the registry with every label value passed through
a policy (the server maps model names, routes and agent names that came from requests to
``other``), samples that now share their labels merged, so ``/metrics`` shows a bounded set of
series whatever callers sent.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector
from prometheus_client.samples import Sample

__all__ = [
    "BUS_LATENCY_BUCKETS",
    "BUS_METRICS",
    "OTHER",
    "BusMetrics",
    "LatencyHistogram",
    "QueueDepthSource",
    "RelabeledView",
]

#: Delivery-latency buckets (seconds): from tens of microseconds in-process to seconds over Redis.
BUS_LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class QueueDepthSource(Protocol):
    """Anything that can report its current queue depth per agent (a live bus)."""

    def queue_depths(self) -> Mapping[str, int]: ...


class LatencyHistogram:
    """A lock-free histogram of delivery latencies for one transport (bucket counts + sum)."""

    __slots__ = ("_bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = BUS_LATENCY_BUCKETS) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Record one latency (seconds); negative values (clock skew between hosts) count as 0."""
        if seconds < 0.0:
            seconds = 0.0
        self.counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative_buckets(self) -> list[tuple[str, float]]:
        """Prometheus-style cumulative buckets, ending with ``+Inf``."""
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self._bounds, self.counts, strict=False):
            running += count
            buckets.append((repr(float(bound)), float(running)))
        buckets.append(("+Inf", float(running + self.counts[-1])))
        return buckets


class BusMetrics:
    """The message bus's counters: plain dicts bumped on the hot path, exported at scrape time.

    ``sent``/``delivered``/``redelivered`` are keyed by agent, ``dropped`` by ``(agent, reason)``
    where reason is ``expired``, ``queue_full``, ``dropped_oldest`` or ``retention``.
    """

    def __init__(self) -> None:
        self.sent: defaultdict[str, int] = defaultdict(int)
        self.delivered: defaultdict[str, int] = defaultdict(int)
        self.redelivered: defaultdict[str, int] = defaultdict(int)
        self.dropped: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._latency: dict[str, LatencyHistogram] = {}
        self._latency_lock = threading.Lock()
        self._depth_sources: weakref.WeakSet[QueueDepthSource] = weakref.WeakSet()

    def latency(self, transport: str) -> LatencyHistogram:
        """The latency histogram for ``transport`` (``inprocess`` or ``redis``); bind it once, reuse it."""
        histogram = self._latency.get(transport)
        if histogram is None:
            with self._latency_lock:
                histogram = self._latency.setdefault(transport, LatencyHistogram())
        return histogram

    def add_depth_source(self, source: QueueDepthSource) -> None:
        """Report ``source``'s queue depths while it is alive (held weakly)."""
        self._depth_sources.add(source)

    def queue_depths(self) -> dict[str, int]:
        """Current queue depth per agent, summed over every live bus in this process."""
        totals: defaultdict[str, int] = defaultdict(int)
        for source in list(self._depth_sources):
            for agent, depth in list(source.queue_depths().items()):
                totals[agent] += depth
        return dict(totals)

    def latency_histograms(self) -> dict[str, LatencyHistogram]:
        """Every transport's latency histogram."""
        return dict(self._latency)


#: The process-wide bus metrics; the buses update it, the collector below exports it.
BUS_METRICS = BusMetrics()


class _BusCollector(Collector):
    """Turns :data:`BUS_METRICS` into Prometheus metric families at scrape time."""

    def __init__(self, metrics: BusMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        # Lets the registry detect name clashes at registration without computing values.
        yield CounterMetricFamily("agentadapter_bus_messages_sent", "", labels=["agent"])
        yield CounterMetricFamily("agentadapter_bus_messages_delivered", "", labels=["agent"])
        yield CounterMetricFamily("agentadapter_bus_messages_redelivered", "", labels=["agent"])
        yield CounterMetricFamily("agentadapter_bus_messages_dropped", "", labels=["agent", "reason"])
        yield GaugeMetricFamily("agentadapter_bus_queue_depth", "", labels=["agent"])
        yield HistogramMetricFamily("agentadapter_bus_delivery_latency_seconds", "", labels=["transport"])

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        sent = CounterMetricFamily(
            "agentadapter_bus_messages_sent", "Messages sent on the bus, by sending agent.", labels=["agent"]
        )
        for agent, count in list(metrics.sent.items()):
            sent.add_metric([agent], count)
        yield sent
        delivered = CounterMetricFamily(
            "agentadapter_bus_messages_delivered",
            "Messages delivered from the bus, by receiving agent.",
            labels=["agent"],
        )
        for agent, count in list(metrics.delivered.items()):
            delivered.add_metric([agent], count)
        yield delivered
        redelivered = CounterMetricFamily(
            "agentadapter_bus_messages_redelivered",
            "Messages delivered again because the consumer that took them did not acknowledge them in time.",
            labels=["agent"],
        )
        for agent, count in list(metrics.redelivered.items()):
            redelivered.add_metric([agent], count)
        yield redelivered
        dropped = CounterMetricFamily(
            "agentadapter_bus_messages_dropped",
            "Messages not delivered: expired, refused by a full queue, evicted as oldest, or past retention.",
            labels=["agent", "reason"],
        )
        for (agent, reason), count in list(metrics.dropped.items()):
            dropped.add_metric([agent, reason], count)
        yield dropped
        depth = GaugeMetricFamily(
            "agentadapter_bus_queue_depth",
            "Messages waiting in an agent's inbox (last known value for Redis inboxes).",
            labels=["agent"],
        )
        for agent, value in sorted(metrics.queue_depths().items()):
            depth.add_metric([agent], value)
        yield depth
        latency = HistogramMetricFamily(
            "agentadapter_bus_delivery_latency_seconds",
            "Time from a message's creation to its delivery to the receiving agent.",
            labels=["transport"],
        )
        for transport, histogram in sorted(metrics.latency_histograms().items()):
            latency.add_metric([transport], histogram.cumulative_buckets(), histogram.sum)
        yield latency


_COLLECTOR = _BusCollector(BUS_METRICS)
REGISTRY.register(_COLLECTOR)


# ------------------------------------------------------------------------------------ bounded view

OTHER = "other"
"""The label value that stands for every value a policy does not let through."""

Relabel = Callable[[str, dict[str, str]], dict[str, str]]
"""``(metric family name, a sample's labels) -> the labels to show``."""

# Gauges whose merged value is the worst of the merged series, not their sum (a state, not a count).
_MAX_GAUGES = frozenset({"agentadapter_llm_breaker_state"})


class RelabeledView(Collector):
    """``source``'s metrics with every label value passed through ``relabel``; series that end up
    with the same labels are merged (counts, sums and buckets add up; ``_created`` keeps the
    earliest; a state gauge keeps the worst)."""

    def __init__(self, relabel: Relabel, source: Collector = REGISTRY) -> None:
        self._relabel = relabel
        self._source = source

    def collect(self) -> Iterator[Metric]:
        relabel = self._relabel
        for family in self._source.collect():
            merged: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
            for sample in family.samples:
                labels = relabel(family.name, dict(sample.labels)) if sample.labels else sample.labels
                key = (sample.name, tuple(sorted(labels.items())))
                seen = merged.get(key)
                if seen is None:
                    merged[key] = sample._replace(labels=labels, exemplar=None)
                    continue
                if sample.name.endswith("_created"):
                    value = min(seen.value, sample.value)
                elif family.name in _MAX_GAUGES:
                    value = max(seen.value, sample.value)
                else:
                    value = seen.value + sample.value
                merged[key] = seen._replace(value=value)
            view = Metric(family.name, family.documentation, family.type, family.unit)
            view.samples = list(merged.values())
            yield view
