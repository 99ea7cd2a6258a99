"""Celery workers that execute the service's runs (``AGENTADAPTER_EXECUTOR=celery``).

:mod:`.app` is the Celery application and each worker process's long-lived runtime, :mod:`.engine`
replays a run's strategy and executes its steps, :mod:`.tasks` are the Celery tasks, :mod:`.channel`
carries events and cancel requests over Redis, :mod:`.settings` the knobs, :mod:`.cli` the
``agentadapter worker`` command.
"""
