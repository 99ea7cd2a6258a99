"""The ``agentadapter`` command line (typer + rich).

``chat`` streams a model's answer to the terminal (or prints ``Response.to_dict()`` with
``--json``); ``embed`` prints the vectors of one or more texts (a summary, or
``EmbeddingResponse.to_dict()`` with ``--json``); ``backends`` shows the presets table. Exit
codes: 0 ok, 2 a usage error (bad arguments, unknown provider, missing key or config), 1 a
provider error, printed as its translated message without a traceback. The other commands live in
this package's modules and are added to ``app`` here: ``run`` (:mod:`.run`), ``serve``, ``db``,
``tenants``, ``keys``, ``provider-keys``, ``secrets`` and ``credits`` (:mod:`.service` and the
modules it registers), ``cluster`` (:mod:`.cluster`), ``eval`` (:mod:`.evals`) and ``worker``
(:mod:`agentadapter.worker.cli`).
Each stays a thin shell over the library and imports what it needs inside the command, so that
``agentadapter --help`` starts fast; :func:`main` builds only the commands its arguments need (an
operator's command does not load the workflow runner or build the help of every other command).
``python -m agentadapter.cli`` runs the same app as the ``agentadapter`` script. :func:`command`
names option values in the help (``TEXT``, ``N``, ``PATH``, never Python types); tables go through
:mod:`.tables` (boxed, one record per row, or plain in a pipe); :func:`main` renders logs as
sentences on a terminal and JSON elsewhere, and turns a missing optional dependency into the extra
to install (exit 2). ``cost --run`` and ``health`` exit 1 when a row failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from agentadapter.cli.tables import Cell, Column, show_table, usd
from agentadapter.llm.errors import AgentAdapterError, ConfigurationError, InvalidRequestError

_HELP_NAMES = ["-h", "--help"]
_APP_SETTINGS: dict[str, Any] = {
    "name": "agentadapter",
    "help": "Run AI agents on any LLM backend.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": _HELP_NAMES},
}
# The commands defined in this module; the others join them in _build_app.
_root = typer.Typer(**_APP_SETTINGS)
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"agentadapter {version('agentadapter')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("agentadapter (not installed: no version recorded)")
        raise typer.Exit()


@_root.callback()
def _options(
    show_version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                      help="Print the version and exit."),
) -> None:
    """Run AI agents on any LLM backend."""


EXIT_PROVIDER_ERROR = 1
EXIT_USAGE_ERROR = 2


def _fail(error: AgentAdapterError) -> typer.Exit:
    usage = isinstance(error, ConfigurationError | InvalidRequestError)
    stderr.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
    return typer.Exit(EXIT_USAGE_ERROR if usage else EXIT_PROVIDER_ERROR)


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="agentadapter.yaml to use (default: ./agentadapter.yaml)")
]


@_root.command()
def chat(
    model: Annotated[str, typer.Argument(help="provider/model, a named backend's model, or an alias")],
    prompt: Annotated[str, typer.Argument(help="the user message ('-' reads standard input)")],
    system: Annotated[str | None, typer.Option("--system", "-s", help="a system prompt")] = None,
    image: Annotated[
        list[str] | None, typer.Option("--image", "-i", help="an image path or URL (repeatable)")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", min=1, help="the most tokens the answer may have (default: the model's own limit)")] = None,
    temperature: Annotated[float | None, typer.Option(
        "--temperature", min=0.0, max=2.0, help="sampling temperature: 0 is the most predictable")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print Response.to_dict() as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Ask a model once; the answer streams to the terminal."""
    from agentadapter.llm.client import LLM, to_image_part
    from agentadapter.llm.messages import Message, Part, TextPart

    if prompt == "-":
        prompt = sys.stdin.read()
    try:
        llm = LLM(config=config)
        parts: list[Part] = [TextPart(prompt)]
        parts.extend(to_image_part(i) for i in image or ())
        messages = ([Message.system(system)] if system else []) + [Message("user", parts)]
        settings: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        settings = {k: v for k, v in settings.items() if v is not None}
        if as_json:
            try:
                response = llm.generate_sync(model, messages, **settings)
            finally:
                llm.close()  # its pooled connections close before the process exits
            stdout.print_json(json.dumps(response.to_dict()))
            return
        asyncio.run(_stream_to_terminal(llm, model, messages, settings))
    except AgentAdapterError as error:
        raise _fail(error) from None


async def _stream_to_terminal(llm: Any, model: str, messages: list[Any], settings: dict[str, Any]) -> None:
    stream = llm.stream(model, messages, **settings)
    in_reasoning = False
    try:
        async for event in stream:
            if event.kind == "reasoning" and event.text:
                if not in_reasoning:
                    stderr.print("[dim]thinking…[/]", markup=True)
                    in_reasoning = True
                stderr.print(event.text, style="dim", end="")
            elif event.kind == "text":
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif event.kind == "tool_call" and event.tool_call is not None:
                call = event.tool_call
                stdout.print(f"\n→ tool call {call.name}({json.dumps(call.arguments)})", style="cyan")
        sys.stdout.write("\n")
        response = stream.response
        if response is not None:
            # None is a model without a known price: its cost is unknown, never shown as $0.
            cost = f", ${usd(response.cost_usd)}" if response.cost_usd is not None else ", cost unknown"
            stderr.print(
                f"[dim]{escape(response.provider)}/{escape(response.model)} · {response.usage.input_tokens} in / "
                f"{response.usage.output_tokens} out{cost} · {response.latency_ms:.0f} ms[/]",
                markup=True,
            )
    finally:
        await llm.aclose()


@_root.command()
def embed(
    model: Annotated[str, typer.Argument(help="an embedding model: provider/model, a backend's model, or an alias")],
    texts: Annotated[list[str], typer.Argument(help="the texts to embed ('-' reads standard input as one text)")],
    dimensions: Annotated[int | None, typer.Option("--dimensions", "-d", min=1,
                                                   help="fewer dimensions, where the model can shorten")] = None,
    input_type: Annotated[str | None, typer.Option(
        "--input-type", help="query, document, classification or clustering (Cohere, Gemini)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print EmbeddingResponse.to_dict() as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Embed texts with a model; prints each vector's start (or every number with --json)."""
    from agentadapter.llm.client import LLM

    inputs = [sys.stdin.read() if text == "-" else text for text in texts]
    try:
        llm = LLM(config=config)
        try:
            response = llm.embed_sync(model, inputs, dimensions=dimensions, input_type=input_type)
        finally:
            llm.close()
    except AgentAdapterError as error:
        raise _fail(error) from None
    if as_json:
        stdout.print_json(json.dumps(response.to_dict()))
        return
    for text, vector in zip(inputs, response.vectors, strict=True):
        start = ", ".join(f"{value:.4f}" for value in vector[:4])
        label = text if len(text) <= 40 else text[:37] + "..."
        stdout.print(f"{label!r}: [{start}{', ...' if len(vector) > 4 else ''}]", markup=False)
    cost = f"${response.cost_usd:.8f}" if response.cost_usd is not None else "cost unknown"
    stderr.print(f"[dim]{escape(response.provider)}/{escape(response.model)} · {len(response.vectors)} vectors of "
                 f"{response.dimensions} dimensions · {response.usage.input_tokens} tokens · {cost} · "
                 f"{response.latency_ms:.0f} ms[/]", markup=True)


@_root.command()
def backends(
    as_json: Annotated[bool, typer.Option("--json", help="print the table as JSON")] = False,
) -> None:
    """Show the provider presets: base URL, key variable, and whether the key is set."""
    import os

    from agentadapter.llm.backends.presets import PRESETS
    from agentadapter.observability.redact import mask_url

    rows = []
    for preset in PRESETS.values():
        key_env = preset.api_key_env[0] if preset.api_key_env else ""
        key_set = any(os.environ.get(name) for name in preset.api_key_env)
        base_url = next((os.environ[n] for n in preset.base_url_env if os.environ.get(n)), preset.base_url)
        rows.append({
            "provider": preset.name,
            "label": preset.label,
            "wire_format": preset.backend,
            # A base URL from the environment may carry credentials (https://user:pass@proxy/v1).
            "base_url": mask_url(base_url) if base_url else base_url,
            "key_env": key_env,
            "key_set": key_set,
            "key_required": preset.key_required,
        })
    if as_json:
        stdout.print_json(json.dumps(rows))
        return
    show_table(
        stdout,
        [Column("provider"), Column("name"), Column("wire format"), Column("base URL"), Column("key variable"),
         Column("key")],
        [[str(row["provider"]), str(row["label"]), str(row["wire_format"]),
          str(row["base_url"]) if row["base_url"] else Text("(set a base URL)", style="dim"), str(row["key_env"]),
          _key_status(bool(row["key_set"]), bool(row["key_required"]))] for row in rows],
        title="Backends",
    )


@_root.command()
def health(
    models: Annotated[
        list[str] | None, typer.Argument(help="model ids or aliases to probe (default: every alias in the config)")
    ] = None,
    probes: Annotated[int, typer.Option("--probes", min=1, help="probe calls per target")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print the health as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Probe each target of the given routes and show its health (success, latency, breaker).

    Exits 1 when a target failed a probe.
    """
    from agentadapter.llm.client import LLM

    try:
        llm = LLM(config=config)
        names = list(models or llm.file_config.models)
        if not names:
            raise typer.BadParameter("name at least one model or alias, or define aliases under `models:`")
        labels = sorted({t.label for name in names for t in _leaf_targets(llm, name)})
        asyncio.run(_probe(llm, labels, probes))
    except AgentAdapterError as error:
        raise _fail(error) from None
    report = llm.health()
    # A target whose probes did not all succeed fails the command (exit 1), as for any command where
    # some rows failed: a script can act on it without reading the table.
    unhealthy = [item.target for item in report.values()
                 if item.success_rate is not None and item.success_rate < 1.0]
    if as_json:
        stdout.print_json(json.dumps({k: v.to_dict() for k, v in report.items()}))
    else:
        _health_table(report)
    if unhealthy:
        stderr.print(f"[bold red]error:[/] {len(unhealthy)} target(s) failed their probes: "
                     f"{escape(', '.join(unhealthy))}", markup=True, highlight=False)
        raise typer.Exit(EXIT_PROVIDER_ERROR)


def _health_table(report: dict[str, Any]) -> None:
    show_table(
        stdout,
        [Column("target"), Column("calls", numeric=True), Column("success", numeric=True),
         Column("p50 ms", numeric=True), Column("p95 ms", numeric=True), Column("breaker"), Column("last error")],
        [[item.target, str(item.calls), f"{item.success_rate:.0%}" if item.success_rate is not None else "-",
          _ms_text(item.p50_ms), _ms_text(item.p95_ms), item.breaker, item.last_error or ""]
         for item in report.values()],
        title="Health",
    )


def _leaf_targets(llm: Any, name: str) -> list[Any]:
    from agentadapter.llm.router import Router

    leaves = []
    for target in llm.resolver.route(name).targets:
        if isinstance(target.backend, Router):
            leaves.extend(_leaf_targets(llm, target.provider))
        else:
            leaves.append(target)
    return leaves


async def _probe(llm: Any, labels: list[str], probes: int) -> None:
    from agentadapter.llm.errors import AgentAdapterError as ProbeError

    try:
        for label in labels:
            for _ in range(probes):
                try:
                    await llm.generate(label, "ping", max_tokens=1, timeout=30)
                except ProbeError:
                    pass  # a failed probe is what the health table reports
    finally:
        await llm.aclose()


def _ms_text(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


@_root.command()
def models(
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="only this provider's models")] = None,
    live: Annotated[bool, typer.Option("--live", help="ask the provider which models it serves, and say which "
                                                    "of them are priced (needs --provider and its key)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the catalog as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """The model catalog: capabilities and prices (USD per million tokens); with --provider, which are unpriced."""
    from agentadapter.llm import catalog

    if live:
        if provider is None:
            raise typer.BadParameter("--live needs --provider (the provider whose models to list)")
        _models_live(provider, as_json=as_json, config=config)
        return
    entries = {
        model_id: caps for model_id, caps in sorted(catalog.known_models().items())
        if provider is None or model_id.split("/", 1)[0] == provider
    }
    if as_json:
        stdout.print_json(json.dumps({model_id: _caps_dict(caps) for model_id, caps in entries.items()}))
        return
    show_table(
        stdout,
        [Column("model"), Column("context", numeric=True), Column("max out", numeric=True), Column("tools"),
         Column("vision"), Column("json"), Column("reasoning"), Column("api"), Column("$ in", numeric=True),
         Column("$ out", numeric=True), Column("$ cached", numeric=True)],
        [[model_id, f"{caps.context_window:,}", f"{caps.max_output_tokens:,}", _yes(caps.tools), _yes(caps.vision),
          _yes(caps.json_schema), _yes(caps.reasoning), caps.api,
          _price(caps.pricing.input if caps.pricing else None), _price(caps.pricing.output if caps.pricing else None),
          _price(caps.pricing.cached_input if caps.pricing else None, cached=True)]
         for model_id, caps in entries.items()],
        title="Models, prices in USD per million tokens" + (f" ({provider})" if provider else ""),
    )
    if provider is not None:
        _say_unpriced([model_id for model_id, caps in entries.items() if caps.pricing is None])


def _models_live(provider: str, *, as_json: bool, config: Path | None) -> None:
    from agentadapter.llm.client import LLM
    from agentadapter.llm.price_coverage import price_coverage

    try:
        llm = LLM(config=config)
        rows = asyncio.run(price_coverage(llm, provider, live=True))
    except AgentAdapterError as error:
        raise _fail(error) from None
    if as_json:
        stdout.print_json(json.dumps([
            {"model": row.model_id, "served": row.served, "price_from": row.origin,
             "input": row.pricing.input if row.pricing else None, "output": row.pricing.output if row.pricing else None}
            for row in rows]))
        return
    show_table(
        stdout,
        [Column("model"), Column("served"), Column("price from"), Column("$ in", numeric=True),
         Column("$ out", numeric=True)],
        [[row.model_id, "yes" if row.served else "not listed", row.origin or "-",
          _price(row.pricing.input if row.pricing else None), _price(row.pricing.output if row.pricing else None)]
         for row in rows],
        title=f"{provider}: served models and their prices (USD per million tokens)",
    )
    _say_unpriced([row.model_id for row in rows if not row.priced])


def _say_unpriced(model_ids: list[str]) -> None:
    if not model_ids:
        stdout.print("Every model listed is priced.")
        return
    stdout.print(f"Unpriced ({len(model_ids)}): {', '.join(model_ids)}. Their calls have no cost_usd until a "
                 "`catalog:` entry in agentadapter.yaml prices them.")


def _caps_dict(caps: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(caps)


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _price(value: float | None, *, cached: bool = False) -> str:
    if value is not None:
        return f"{value:.3f}"
    # A model with no cached-input price may still be priced (no prompt cache); one with no price is unknown.
    return "-" if cached else "unknown"


@_root.command()
def cost(
    prompt: Annotated[str, typer.Argument(help="the prompt to price")],
    models_list: Annotated[str, typer.Option("--models", "-m", help="comma-separated model ids or aliases")],
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="the output bound of the estimate")] = 512,
    run: Annotated[bool, typer.Option("--run", help="also call each model and show the actual cost")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Compare what the same prompt costs across models: estimated, and with --run, actual."""
    from agentadapter.llm.client import LLM

    names = [name.strip() for name in models_list.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter("give at least one model in --models")
    try:
        llm = LLM(config=config)
        rows: list[dict[str, Any]] = [
            {"model": name, "estimated_usd": llm.estimate_cost(name, prompt, max_tokens=max_tokens)} for name in names
        ]
        if run:
            asyncio.run(_run_costs(llm, rows, prompt, max_tokens))
    except AgentAdapterError as error:
        raise _fail(error) from None
    if as_json:
        stdout.print_json(json.dumps(rows))
        return
    columns = [Column("model"), Column("estimated $", numeric=True)]
    if run:
        columns += [Column("actual $", numeric=True), Column("in", numeric=True), Column("out", numeric=True),
                    Column("ms", numeric=True), Column("error")]
    table_rows: list[list[Cell]] = []
    for row in rows:
        cells: list[Cell] = [str(row["model"]), usd(row["estimated_usd"])]
        if run:
            answered = "input_tokens" in row
            cells += [
                usd(row.get("actual_usd")) if answered else "-",
                str(row.get("input_tokens", "-")), str(row.get("output_tokens", "-")),
                f"{row['latency_ms']:.0f}" if "latency_ms" in row else "-",
                Text(str(row.get("error", "")), style="red"),
            ]
        table_rows.append(cells)
    show_table(stdout, columns, table_rows, title=f"Cost of one call (output bound {max_tokens} tokens)")
    failed = [row for row in rows if "error" in row]
    if failed:
        for row in failed:
            stderr.print(f"[bold red]error:[/] {escape(row['model'])}: {escape(row['error_message'])}",
                         markup=True, highlight=False)
        raise typer.Exit(EXIT_PROVIDER_ERROR)


async def _run_costs(llm: Any, rows: list[dict[str, Any]], prompt: str, max_tokens: int) -> None:
    try:
        for row in rows:
            try:
                response = await llm.generate(row["model"], prompt, max_tokens=max_tokens)
            except AgentAdapterError as error:
                row["error"], row["error_message"] = type(error).__name__, str(error)
                continue
            row.update(actual_usd=response.cost_usd, input_tokens=response.usage.input_tokens,
                       output_tokens=response.usage.output_tokens, latency_ms=response.latency_ms)
    finally:
        await llm.aclose()


# The module that adds each command not defined here, in the order the help lists them. A command
# runs with only its own module imported (main), so that an operator's command does not load the
# workflow runner, the evaluation or cluster commands, or build their help.
_MODULE_OF_COMMAND: dict[str, str] = {
    "run": "run", "serve": "service", "db": "service", "tenants": "service", "keys": "service",
    "provider-keys": "service", "secrets": "service", "credits": "service", "compliance": "service",
    "agents": "agents", "files": "files", "archives": "files", "cluster": "cluster", "eval": "evals",
    "worker": "worker",
}
_ALL_MODULES = tuple(dict.fromkeys(_MODULE_OF_COMMAND.values()))


def _add_commands(app: typer.Typer, module: str) -> None:
    if module == "run":
        from agentadapter.cli.run import register as register_run

        register_run(app)
    elif module == "service":
        from agentadapter.cli.service import register as register_service

        register_service(app)
    elif module == "agents":
        from agentadapter.cli.agents import register as register_agents

        register_agents(app)
    elif module == "files":
        from agentadapter.cli.files import register as register_files

        register_files(app)
    elif module == "cluster":
        from agentadapter.cli.cluster import cluster_app

        app.add_typer(cluster_app)
    elif module == "evals":
        from agentadapter.cli.evals import eval_app

        app.add_typer(eval_app)
    elif module == "worker":
        from agentadapter.worker.cli import register as register_worker

        register_worker(app)
    else:
        raise ValueError(f"no command module {module!r}")


def _build_app(modules: tuple[str, ...] = _ALL_MODULES) -> typer.Typer:
    """The commands of this module and those of ``modules``, as one typer app."""
    app = typer.Typer(**_APP_SETTINGS)
    app.registered_callback = _root.registered_callback
    app.registered_commands = list(_root.registered_commands)
    for module in modules:
        _add_commands(app, module)
    return app


def _modules_for(argv: list[str]) -> tuple[str, ...]:
    """The command modules that running ``argv`` needs: none for ``--version`` or a command of this
    module, the one of a known command, every one for the help listing or a name click must correct."""
    if not argv or argv[0] in _HELP_NAMES:
        return _ALL_MODULES
    if argv[0] in ("-V", "--version"):
        return ()
    module = _MODULE_OF_COMMAND.get(argv[0])
    if module is not None:
        return (module,)
    own = {info.name or (info.callback.__name__ if info.callback else "") for info in _root.registered_commands}
    return () if argv[0] in own else _ALL_MODULES


_full_app: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    # ``app`` (every command) is built on first use: main() builds only what its command needs.
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = _build_app()
        return _full_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _key_status(key_set: bool, key_required: bool) -> Text:
    if key_set:
        return Text("set", style="green")
    return Text("missing", style="red") if key_required else Text("not needed", style="dim")


def command(argv: list[str] | None = None) -> typer.core.TyperGroup:
    """The command behind ``app``, with help that names values by what they are.

    Typer labels values by their Python type (``<str>``, ``<bool>``, ``<list[str]>``); the help
    instead shows ``TEXT``, ``N``, ``NUMBER``, ``PATH`` or the choices, nothing after a flag, and
    arguments by their name (``MODEL``), as command-line tools conventionally do. Given the
    arguments it will run (``argv``), it holds only the commands they need.
    """
    import typer.main

    root = typer.main.get_command(__getattr__("app") if argv is None else _build_app(_modules_for(argv)))
    assert isinstance(root, typer.core.TyperGroup)
    _name_values(root)
    return root


_VALUE_NAMES: dict[Any, str] = {int: "N", float: "NUMBER", Path: "PATH"}


def _no_type(ctx: Any) -> None:
    return None


def _name_values(node: Any) -> None:
    # The help option is made on first use; made now (with the app's names), its flag shows no type.
    help_option = node.get_help_option(typer.Context(node, help_option_names=_HELP_NAMES))
    if help_option is not None:
        help_option.metavar = ""
    for param in node.params:
        if param.metavar is not None:
            continue  # named on purpose where it is declared
        if isinstance(param, typer.core.TyperArgument):
            param.metavar = str(param.name or "value").upper()  # typer adds "..." to one that repeats
            # An argument's help is its name and its text; its Python type says nothing more.
            setattr(param, "display_type_rich", _no_type)  # noqa: B010 - on this one object, not the class
            continue
        descriptor = param.type_descriptor
        element = get_args(descriptor.annotation)[0] if descriptor.is_list else descriptor.annotation
        if getattr(param, "is_flag", False) or element is bool:
            param.metavar = ""
        elif descriptor.is_choice:
            param.metavar = "|".join(str(choice) for choice in descriptor.choices or ())
        else:
            param.metavar = _VALUE_NAMES.get(element, "TEXT")
    for child in getattr(node, "commands", {}).values():
        _name_values(child)


def main() -> None:
    """Console-script entry point: typer's usage errors exit 2, ours as documented above."""
    import os

    from agentadapter.observability.logging import configure_logging

    # Logs go to stderr, quiet (warnings only) unless AGENTADAPTER_LOG_LEVEL asks for more, so they
    # never mix with an answer on stdout. A person at a terminal reads sentences; a pipe, a file or a
    # log collector gets JSON lines; AGENTADAPTER_LOG_FORMAT=json or text chooses either way.
    log_format = os.environ.get("AGENTADAPTER_LOG_FORMAT", "").strip().lower()
    if log_format not in ("", "json", "text"):
        stderr.print(f"[bold red]error:[/] AGENTADAPTER_LOG_FORMAT is {log_format!r}; use json or text",
                     markup=True, highlight=False)
        raise SystemExit(EXIT_USAGE_ERROR)
    as_text = log_format == "text" or (not log_format and sys.stderr.isatty())
    configure_logging(os.environ.get("AGENTADAPTER_LOG_LEVEL", "WARNING"), text=as_text)
    try:
        command(sys.argv[1:])(prog_name="agentadapter")
    except ModuleNotFoundError as error:  # an optional dependency a command needs (./dev run installs few)
        from agentadapter.cli.common import missing_extra

        hint = missing_extra(error)
        if hint is None:
            raise
        stderr.print(f"[bold red]error:[/] {escape(hint)}", markup=True, highlight=False)
        raise SystemExit(EXIT_USAGE_ERROR) from None
