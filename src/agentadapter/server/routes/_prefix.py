"""The version prefix every resource route lives under (in each router's own prefix, so a route's
path - what metrics and logs label requests with - is the whole path, ``/v1/agents/{agent_id}``)."""

from __future__ import annotations

API_PREFIX = "/v1"
