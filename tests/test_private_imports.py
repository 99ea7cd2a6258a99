"""No module imports a private name (``_x``) or a private module (``_x.py``) of another package.

A leading underscore means "this package's own business": a package may use its private modules and
names among its modules, and nothing outside it may, so that a package can change them without
looking elsewhere. What another package needs is given a public name. The scan reads every
module's source (imports inside functions and ``TYPE_CHECKING`` blocks included, relative imports
resolved); tests may import private names and are not scanned.
"""

from __future__ import annotations

import ast
from pathlib import Path

import agentadapter

SOURCE = Path(agentadapter.__file__).parent.parent

PENDING: frozenset[str] = frozenset()
"""Private modules still imported across packages (none: the error root is ``agentadapter.errors``, the
Redis owner ``agentadapter.redis_connections``)."""


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _module_of(path: Path, root: Path) -> tuple[str, str]:
    """The dotted name of the module at ``path`` and of the package it belongs to."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), ".".join(parts[:-1])
    return ".".join(parts), ".".join(parts[:-1])


def _is_package(root: Path, dotted: str) -> bool:
    return (root.joinpath(*dotted.split(".")) / "__init__.py").is_file()


def offenders(root: Path, package: str) -> list[str]:
    """``module:line what`` for every import, under ``root/package``, of another package's private module or name."""
    found: list[str] = []
    for path in sorted((root / package).rglob("*.py")):
        module, home = _module_of(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            imported: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                imported = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:  # relative: from the importing module's package, one level up per extra dot
                    base = home.split(".")[: len(home.split(".")) - (node.level - 1)]
                    source = ".".join([*base, *([source] if source else [])])
                imported = [(source, alias.name) for alias in node.names]
            for source, name in imported:
                if source != package and not source.startswith(package + "."):
                    continue
                parts = source.split(".")
                hidden = next((i for i, part in enumerate(parts) if _private(part)), None)
                if hidden is not None and ".".join(parts[:hidden]) != home:
                    found.append(f"{module}:{node.lineno} imports the private module {'.'.join(parts[: hidden + 1])}")
                if name is not None and _private(name):
                    owner = source if _is_package(root, source) else source.rpartition(".")[0]
                    if owner != home:
                        found.append(f"{module}:{node.lineno} imports the private name {name} of {source}")
    return list(dict.fromkeys(found))  # once per import statement, however many names it takes


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_scan_tells_a_package_s_own_use_from_another_package_s(tmp_path: Path) -> None:
    # The check below is only as good as this: each way of reaching into another package is seen,
    # and a package's use of its own private modules and names is not.
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/_hidden.py": "VALUE = 1\n",
        "pkg/own.py": "from pkg._hidden import VALUE\nfrom pkg.other import _helper\nfrom . import _hidden\n",
        "pkg/other.py": "def _helper(): ...\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/_inner.py": "",
        "pkg/sub/mod.py": (
            "import pkg._hidden\n"
            "from pkg.other import _helper, public\n"
            "from .. import _hidden\n"
            "from pkg.sub._inner import thing\n"
            "def later():\n"
            "    from pkg._hidden import VALUE\n"
        ),
        "pkg/uses_sub.py": "from pkg.sub._inner import thing\nfrom pkg.sub import _inner\n",
    })
    assert offenders(tmp_path, "pkg") == [
        "pkg.sub.mod:1 imports the private module pkg._hidden",
        "pkg.sub.mod:2 imports the private name _helper of pkg.other",
        "pkg.sub.mod:3 imports the private name _hidden of pkg",
        "pkg.sub.mod:6 imports the private module pkg._hidden",
        "pkg.uses_sub:1 imports the private module pkg.sub._inner",
        "pkg.uses_sub:2 imports the private name _inner of pkg.sub",
    ]


def test_no_module_imports_a_private_module_or_name_of_another_package() -> None:
    found = [line for line in offenders(SOURCE, "agentadapter")
             if not any(line.endswith(f"private module {pending}") for pending in PENDING)]
    assert found == []
