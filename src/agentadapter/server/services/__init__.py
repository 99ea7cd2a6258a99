"""The service layer: what a route calls after validating its input, and before shaping the reply.

Each module serves one resource; functions take the request's session, the app state and the
:class:`~agentadapter.server.services.common.Caller`, check what the request asks against the
tenant's data, change it through the store's repositories, write the audit entry in the same
transaction and commit. Routes hold no logic; the store holds no HTTP.
"""
