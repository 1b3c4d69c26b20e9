"""The house rules that keep the package readable: no import circle at module load, lower layers never (even lazily)
import higher ones, and no source file grows past ~400 lines."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "cycleresearcher"

# Layer of each top-level module or package (DESIGN.md); a module may import its own layer or lower ones.
LAYERS = {
    "schema": 0, "io": 0, "errors": 0, "config": 0, "limits": 0,
    "formats": 1,
    "backends": 2,
    "repair": 3, "injection": 3, "outcome": 3, "latex_template": 3, "paper_text": 3, "embed": 3, "retrieve": 3, "research": 3,
    "experiments": 3, "paper_folder": 3, "review": 3, "reward": 3,
    "judges": 4,
    "data": 5, "train": 5, "evaluate": 5, "detect": 5, "detect_calibration": 5, "demo": 6,
    "cli": 7, "web": 7, "presets": 0,
}
MAX_LINES = 430  # "~400": a little slack for a docstring, never a second job


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _walk(tree, top_only: bool):
    if not top_only:
        yield from ast.walk(tree)
        return
    stack = list(tree.body)
    while stack:  # module-level statements, into if/try blocks but not into functions or classes
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, modules: dict[str, Path], top_only: bool = False) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _walk(ast.parse(path.read_text(encoding="utf-8")), top_only):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("cycleresearcher"):
                continue
            subs = [f"{target}.{a.name}" for a in node.names]
            found |= {s for s in subs if s in modules} if all(s in modules for s in subs) else {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cycleresearcher")}
    return {m for m in found if m in modules and m != name}


def _graph(top_only: bool = False):
    modules = _modules()
    return {name: _imports(name, path, modules, top_only) for name, path in modules.items()}


def test_no_import_circle():
    """Imports run at module load form no circle (a lazy import inside a function, such as a parser handing
    DeepReviewer output to its own module, runs after both modules are loaded)."""
    graph = _graph(top_only=True)
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt):] + [node, nxt] if nxt in trail else [node, nxt])
                return True
            if nxt not in state and visit(nxt, trail + [node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if node not in state and visit(node, []):
            break
    assert not cycle, "import circle: " + " -> ".join(cycle)


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") >= 1 else ""
    if top not in LAYERS:
        pytest.fail(f"{module}: add its top-level name to LAYERS in tests/test_layers.py")
    return LAYERS[top]


def test_lower_layers_never_import_higher_ones():
    bad = [f"{a} -> {b}" for a, targets in _graph().items() if a != "cycleresearcher"
           for b in targets if b != "cycleresearcher" and _layer(b) > _layer(a)]
    assert not bad, "imports going up a layer:\n" + "\n".join(sorted(bad))


def test_no_source_file_is_too_long():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these files (one job per module): {long}"
