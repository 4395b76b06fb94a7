"""Reading the packaging recipes without running PyInstaller."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "trainer_gui"
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "trainer_gui.spec"


def spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _literal_strings(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def spec_strings(name: str) -> list[str]:
    """Every string literal put into the spec's top-level list `name` (`=` and `+=`)."""
    out: list[str] = []
    for node in spec_tree().body:
        # `if not KEEP_ALL: excludes += [...]` counts too
        for stmt in node.body if isinstance(node, ast.If) else [node]:
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, ast.AugAssign):
                targets = [stmt.target]
            else:
                continue
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                out += _literal_strings(stmt.value)
    return out


def spec_collection_modes() -> dict[str, str]:
    for node in ast.walk(spec_tree()):
        if isinstance(node, ast.keyword) and node.arg == "module_collection_mode":
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    return {}


def function_level_imports() -> dict[str, set[str]]:
    """Module name -> the source files that import it inside a function (lazy imports)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if (SRC / "resources") in path.parents:  # code the user's own interpreter runs
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                names: list[str] = []
                if isinstance(inner, ast.Import):
                    names = [alias.name for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                    names = [inner.module]
                for name in names:
                    if id(inner) not in top:
                        found.setdefault(name, set()).add(str(path.relative_to(SRC)))
    return found


def third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top not in {"trainer_gui", "__future__"}


def aws_services_in_source() -> set[str]:
    pattern = re.compile(r"""\.client\(\s*["']([a-z0-9-]+)["']""")
    services: set[str] = set()
    for path in SRC.rglob("*.py"):
        services.update(pattern.findall(path.read_text(encoding="utf-8")))
    return services
