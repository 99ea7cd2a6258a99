"""The application layer: what the API's routes, the Celery workers and the CLI call, FastAPI-free.

A face validates its input, calls a function here and shapes the reply; this layer checks what is
asked against the tenant's data and the trust boundary, changes it through the store's repositories,
writes the audit entry in the same transaction and commits. Its modules:

- ``building`` and ``trust``: the one builder that turns a tenant's stored definitions into agents
  and workflows, and the rules it applies when data is written and again when it is built to run;
- ``agents``, ``workflows``, ``settings``, ``provider_keys``, ``credits``, ``tenants``: each
  resource's audited writes (the API and the CLI go through the same functions);
- ``runs``: submission, cancellation and events of runs, on an executor (``executor``: the
  interface; ``celery_executor``, ``queue``, ``channel``, ``reaper``: runs on Celery workers);
- ``tenancy``: each tenant's metered and guarded ``LLM`` facade, as every process of the service
  wires it; ``providers``: what the adapter can reach;
- ``common`` (who acts, the audit entry), ``errors`` (the domain errors the faces map), ``config``
  (the settings this layer reads).

It imports the orchestrator, agents, adapter, protocol and store - never the faces (``server``,
``worker``, ``cli*``) nor a web framework.
"""
