"""The package's layout rules (issue 14): small modules, small signatures, no private names across modules,
and models, analysis, diffusion, training and stats never import the baselines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xdepthrecon"
#: Most lines in one module.
MAX_LINES = 400
#: Most positional parameters (without self/cls) and most parameters in all of a public function or method.
MAX_POSITIONAL, MAX_PARAMETERS = 4, 12
#: Packages that must not depend on the baselines (the baselines are thin wrappers over stats/).
INDEPENDENT_OF_BASELINES = ("models", "analysis", "diffusion", "training", "stats")


def _modules() -> dict[str, Path]:
    """Dotted module name of every file of the package (``xdepthrecon.io.cube``, ``xdepthrecon.stats``)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _where(path: Path, node: ast.AST | None = None) -> str:
    line = f":{node.lineno}" if node is not None else ""
    return f"{path.relative_to(PACKAGE.parent)}{line}"


def _imports(module: str, path: Path) -> list[tuple[ast.AST, str, list[str]]]:
    """``(node, imported module, imported names)`` of every import of the package in a module (all scopes)."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append((node, base, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node, alias.name, []) for alias in node.names)
    return [(node, base, names) for node, base, names in found if base.split(".")[0] == "xdepthrecon"]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _public_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Public module-level functions and public methods of public module-level classes."""
    functions = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _private(node.name):
            functions.append(node)
        elif isinstance(node, ast.ClassDef) and not _private(node.name):
            functions.extend(item for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                             and not item.name.startswith("_"))
    return functions


def _is_method(function: ast.FunctionDef | ast.AsyncFunctionDef, tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ClassDef) and function in node.body for node in tree.body)


def test_modules_are_small():
    long = [f"{_where(path)}: {lines} lines" for path in _modules().values()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines (split them by job):\n" + "\n".join(long)


def test_public_signatures_are_small():
    wide = []
    for module, path in _modules().items():
        if any(_private(part) for part in module.split(".")):
            continue
        tree = ast.parse(path.read_text())
        for function in _public_functions(tree):
            arguments = function.args
            positional = [*arguments.posonlyargs, *arguments.args]
            bound = _is_method(function, tree) and not any(
                isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)
            if bound and positional:
                positional = positional[1:]
            total = len(positional) + len(arguments.kwonlyargs) + (arguments.vararg is not None) + (
                arguments.kwarg is not None)
            if len(positional) > MAX_POSITIONAL or total > MAX_PARAMETERS:
                wide.append(f"{_where(path, function)} {function.name}: {len(positional)} positional, {total} in all")
    assert not wide, (f"public functions with over {MAX_POSITIONAL} positional or {MAX_PARAMETERS} parameters "
                      "(make the rest keyword-only, or group them):\n" + "\n".join(wide))


def test_no_private_name_is_imported_across_modules():
    modules = _modules()
    leaks = []
    for module, path in modules.items():
        for node, source, names in _imports(module, path):
            for name in names or [None]:
                target = f"{source}.{name}" if f"{source}.{name}" in modules else source
                imported = None if target != source else name
                if target == module:
                    continue
                package = target.rpartition(".")[0]
                private_module = any(_private(part) for part in target.split(".")[1:])
                if private_module and not module.startswith(package + "."):
                    leaks.append(f"{_where(path, node)}: imports the private module {target} from outside {package}")
                elif imported is not None and _private(imported):
                    leaks.append(f"{_where(path, node)}: from {source} import {imported}")
    assert not leaks, "private names imported across modules (make them public where they belong):\n" + "\n".join(
        leaks)


def test_model_code_does_not_import_the_baselines():
    offending = []
    for module, path in _modules().items():
        if module.split(".")[1:2] and module.split(".")[1] in INDEPENDENT_OF_BASELINES:
            for node, source, names in _imports(module, path):
                targets = [source] + [f"{source}.{name}" for name in names]
                if any(t == "xdepthrecon.baselines" or t.startswith("xdepthrecon.baselines.") for t in targets):
                    offending.append(f"{_where(path, node)}: imports {source}")
    assert not offending, (f"{', '.join(INDEPENDENT_OF_BASELINES)} must not import xdepthrecon.baselines (use the "
                           "kernels in xdepthrecon.stats):\n" + "\n".join(offending))
