"""The OpenAI-compatible gateway: any OpenAI client reaches every backend through ``/v1/chat/completions``.

:mod:`.requests` turns a Chat Completions body into our neutral ``Request``, :mod:`.responses` turns
the neutral answer (or its stream events) back into ``chat.completion`` JSON and
``chat.completion.chunk`` SSE frames, :mod:`.errors` maps the library's exceptions onto OpenAI's
error statuses and :mod:`.models` builds the ``/v1/models`` list. The routes are in
:mod:`agentadapter.server.routes.gateway`; the calls go through the tenant's ``LLM`` facade.
"""
