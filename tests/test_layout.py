"""The package's shape: functions that fit on a screen, no module-level ``__getattr__``, late imports only
through :mod:`pose2id_demo.lazy`, no import cycles between the package's modules.

These read the source (``ast``), so they check every module, whether or not a test imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pose2id_demo import lazy

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pose2id_demo"
SOURCES = sorted(PACKAGE.rglob("*.py")) + [ROOT / "app.py"]
MAX_FUNCTION_LINES = 80
#: Modules that still import heavy packages inside functions (the list only shrinks).
LATE_IMPORTERS: set[str] = {
    "pose2id_demo/engine/models.py", "pose2id_demo/ipg/precompute.py", "pose2id_demo/reid/extract.py",
    "pose2id_demo/ui/render.py", "pose2id_demo/engine/warmup.py",
}
#: Import cycles still to break (the list only shrinks).
KNOWN_CYCLES: list[list[str]] = []
#: Third-party packages whose import anywhere but the top of a module must go through pose2id_demo.lazy.
HEAVY = {"torch", "torchvision", "diffusers", "transformers", "sklearn", "scipy", "gradio", "plotly", "mediapipe",
         "accelerate", "faiss", "huggingface_hub", "cv2", "deep_sort_realtime", "controlnet_aux", "matplotlib",
         "skimage", "safetensors", "PIL", "tqdm"}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), filename=str(p))) for p in SOURCES]


def _functions(tree: ast.Module):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_function_is_longer_than_a_screen():
    lengths = {f"{_rel(p)}::{f.name}": f.end_lineno - f.lineno + 1 for p, tree in _trees() for f in _functions(tree)}
    too_long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_no_module_getattr():
    offenders = [_rel(p) for p, tree in _trees()
                 if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)]
    assert not offenders


def test_heavy_packages_are_imported_at_the_top_or_through_lazy():
    late = []
    for path, tree in _trees():
        for fn in _functions(tree):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                late += [(_rel(path), f"{_rel(path)}:{node.lineno} {n}") for n in names if n.split(".")[0] in HEAVY]
    new = [where for path, where in late if path not in LATE_IMPORTERS]
    assert not new, f"import these at the top of the module, or via pose2id_demo.lazy: {new}"
    fixed = sorted(LATE_IMPORTERS - {path for path, _ in late})
    assert not fixed, f"no late heavy imports left, take them off LATE_IMPORTERS: {fixed}"


def test_lazy_refuses_what_is_not_listed():
    with pytest.raises(ValueError, match="top of the module"):
        lazy.load("numpy")
    assert lazy.load("sklearn.manifold").TSNE is not None
    assert lazy.optional("faiss") is None or hasattr(lazy.optional("faiss"), "IndexFlatL2")


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SOURCES}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path, tree in _trees():
        me = _module_name(path)
        base = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level:
                    mod = ".".join(base[: len(base) - node.level + 1] + ([mod] if mod else []))
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            graph[me] |= {t for t in targets if t in modules and t != me and not me.startswith(t + ".")}
    return graph


def test_no_import_cycles():
    """No module imports (at any depth, anywhere in it) a module that imports it back, apart from a package
    importing its own submodules."""
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert sorted(cycles) == sorted(KNOWN_CYCLES), f"import cycles: {cycles}"
