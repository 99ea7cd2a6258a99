"""Observability used by every layer: structured logs (``logging``), Prometheus metrics and
OpenTelemetry spans (``telemetry``, ``metrics``)."""
