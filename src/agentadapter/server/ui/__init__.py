"""The web dashboard at ``/ui``: runs live, costs, backend health, agents, workflows, evaluations.

Server-rendered Jinja2 pages (``templates/``) made live with htmx (polling fragments) and an
``EventSource`` on the run's events; charts with uPlot. Every asset is in the package (``static/``,
the vendored libraries' versions and licenses in ``static/vendor/VERSIONS``), so the dashboard works
with no network. Sign-in and CSRF: :mod:`.session`. The pages read only through
:mod:`agentadapter.service.dashboard` and act through the same services as the API.
"""

from __future__ import annotations

from agentadapter.server.ui.pages import router

__all__ = ["router"]
