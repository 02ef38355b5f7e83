"""Import facts of the project, read from the code.

Static (``ast`` over the tree, fast): no import cycle among the project's
modules; platform and sink folders use the command line's public kit only, and
no sink module imports another sink; no production module imports the sandbox.
Dynamic (a fresh interpreter): importing every production module, or running
the release and service entry points, loads no ``worker.sandbox`` module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from worker.sinks import SINKS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("web", "worker")
SANDBOX = "worker.sandbox"
KIT = "worker.cli.kit"
NOT_IMPORTABLE = (
    "worker.cli.__main__",  # runs the command line when imported
    "worker.storage.migrations.",  # alembic's environment and versions: run by alembic
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def production_modules() -> list[str]:
    return [m for m in project_modules() if not is_sandbox(m)]


def is_sandbox(module: str) -> bool:
    return module == SANDBOX or module.startswith(SANDBOX + ".")


def imported_names(module: str) -> Iterator[str]:
    """Every module name an import statement of ``module`` names (at any depth)."""
    path = project_modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def project_imports(module: str) -> set[str]:
    """The project modules ``module`` imports (``from worker import x`` names ``worker.x``)."""
    modules = project_modules()
    return {name for name in imported_names(module) if name in modules and name != module}


def top_level_imports(module: str) -> set[str]:
    """Project modules imported at module level: what loading ``module`` loads."""
    path = project_modules()[module]
    modules = project_modules()
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name in modules and name != module}


def modules_on_cycles() -> dict[str, list[str]]:
    """Each module that its own imports (at any depth: a lazy import is an import too)
    lead back to, with its imports on the way back."""
    graph = {module: project_imports(module) for module in project_modules()}
    looped = {}
    for module, targets in graph.items():
        back = sorted(t for t in targets if module in reachable(graph, t))
        if back:
            looped[module] = back
    return looped


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def sink_modules() -> dict[str, str]:
    """The module of every registered sink kind, by module name."""
    return {sink.__module__: kind for kind, sink in SINKS.items()}


def package_modules() -> set[str]:
    return {m for m, p in project_modules().items() if p.name == "__init__.py"}


def test_it_has_no_import_cycle() -> None:
    # A package's __init__ re-exporting its submodules is not a cycle of the code's
    # own making; everything else must form a tree of layers.
    packages = package_modules()
    looped = {
        module: [t for t in back if t not in packages]
        for module, back in modules_on_cycles().items()
        if module not in packages
    }
    assert {module: back for module, back in looped.items() if back} == {}


def test_it_keeps_platforms_and_sinks_off_the_command_lines_internals() -> None:
    offenders = {
        module: sorted(
            name
            for name in project_imports(module)
            if name.startswith("worker.cli") and name != KIT
        )
        for module in project_modules()
        if module.startswith(("worker.platforms", "worker.sinks"))
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_it_keeps_each_sink_to_itself() -> None:
    """A sink's module and its helpers (``email_cli``, ``email_render``) use no other sink."""
    sinks = sink_modules()
    crossing = {}
    for module in project_modules():
        own = next((s for s in sinks if module == s or module.startswith(f"{s}_")), None)
        if own is not None:
            crossing[module] = sorted((sinks.keys() & project_imports(module)) - {own})
    assert {module: names for module, names in crossing.items() if names} == {}


def test_it_imports_the_sandbox_from_no_production_module_at_module_level() -> None:
    offenders = {
        module: sorted(name for name in top_level_imports(module) if is_sandbox(name))
        for module in production_modules()
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_it_finds_the_imports_it_checks() -> None:
    """The checks above can fail: the reading sees the imports that are there."""
    assert "worker.pipeline.outbox" in project_imports("worker.tasks")
    assert "worker.sandbox.demo" in project_imports("worker.cli.dev")  # inside the command
    assert "worker.sandbox.demo" not in top_level_imports("worker.cli.dev")
    assert any(is_sandbox(name) for name in top_level_imports("worker.sandbox.demo"))


def loaded_sandbox_modules(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the sandbox modules it left in sys.modules."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({SANDBOX!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_it_loads_no_sandbox_when_every_production_module_is_imported() -> None:
    modules = [m for m in production_modules() if not m.startswith(NOT_IMPORTABLE)]
    assert len(modules) > 50
    code = "import importlib\n" + "\n".join(f"importlib.import_module({m!r})" for m in modules)
    assert loaded_sandbox_modules(code) == []


ENTRY_POINTS = [
    ["migrate", "--help"],
    ["run", "--help"],
    ["sweep", "--help"],
    ["stores", "list", "--help"],
    ["sinks", "add", "--help"],
]


@pytest.mark.parametrize("arguments", ENTRY_POINTS, ids=" ".join)
def test_it_runs_the_service_commands_without_the_sandbox(arguments: list[str]) -> None:
    code = (
        "from worker.cli.app import main\n"
        f"try:\n    main({arguments!r})\nexcept SystemExit as done:\n"
        "    assert done.code in (0, None), done.code"
    )
    assert loaded_sandbox_modules(code) == []


def test_it_loads_no_sandbox_in_the_web_app_or_the_worker() -> None:
    code = "import web, worker.celery_app, worker.tasks, web.gunicorn_conf"
    assert loaded_sandbox_modules(code) == []


def test_it_would_see_a_sandbox_module_loaded() -> None:
    assert loaded_sandbox_modules("import worker.sandbox.capture") != []


def test_the_worker_loads_every_platform_client_before_it_forks_its_pool() -> None:
    """The main process's ``worker_init`` loads what each pool process would otherwise
    import on its own first event and first fetch (``worker.platforms.warm``)."""
    from worker.platforms import API_MODULES, REGISTRY

    wanted = [*API_MODULES, *(spec.partition(":")[0] for spec in REGISTRY.values())]
    probe = (
        "import json, sys\nfrom celery.signals import worker_init\nimport worker.celery_app\n"
        f"before = [m for m in {wanted!r} if m in sys.modules]\n"
        "worker_init.send(sender=None)\n"
        f"print(json.dumps([before, [m for m in {wanted!r} if m not in sys.modules]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    before, missing = json.loads(result.stdout.strip().splitlines()[-1])
    assert before != wanted  # the signal, not the import of the app, loads them
    assert missing == []
