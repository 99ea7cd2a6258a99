"""``agentadapter worker``: a Celery worker (prefork pool) that executes the service's runs."""

from __future__ import annotations

import typer

__all__ = ["register", "worker"]


def worker(
    concurrency: int = typer.Option(0, "--concurrency", "-c", min=0,
                                    help="Worker processes (0: one per CPU)."),
    queues: str = typer.Option("", "--queues", "-Q",
                               help="Queues to consume, comma-separated (default: AGENTADAPTER_WORKER_QUEUE)."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR."),
    hostname: str = typer.Option("", "--hostname", "-n",
                                 help="The worker's node name, e.g. worker1@%h (default: celery@<host>); give "
                                      "each worker on one host its own."),
) -> None:
    """Execute runs sent by servers started with AGENTADAPTER_EXECUTOR=celery (same database, Redis and broker)."""
    from agentadapter.llm.errors import ConfigurationError
    from agentadapter.service.worker_settings import WorkerSettings
    from agentadapter.worker.app import configure

    settings = WorkerSettings()
    try:
        app = configure(worker=settings)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    import agentadapter.worker.tasks  # noqa: F401 - registers the tasks on the app

    argv = ["worker", "--pool=prefork", f"--loglevel={loglevel}", f"--queues={queues or settings.queue}",
            "--without-gossip", "--without-mingle"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
