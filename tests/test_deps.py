"""dvc.yaml's `deps:` list every module a stage runs: walked from the stage's entry point through its imports (imports
inside functions too), transitively. A module missing from a stage's deps would let `dvc repro` keep outputs that code
no longer makes; a stage listing a module it does not import re-runs for nothing. Both fail here, naming the stage and
the module to add or drop."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "sling")
# Imported by stages but unable to change a DVC output; each is left out of every stage's deps.
OUTPUT_NEUTRAL = {
    "sling/cli.py": "sets up logging and turns a user's error into one line; it writes nothing",
    "sling/tracking/runs.py": "logs params, metrics and artifacts to MLflow; it writes no file a stage declares",
    "sling/errors.py": "the error classes alone: a stage that raises one stops and writes nothing",
}


def module_file(name: str) -> Path | None:
    """The source file of a dotted module name in this repository (None outside it)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_files(path: Path) -> set[Path]:
    """The repository modules one file imports, at the top or inside functions."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                file = module_file(".".join(parts[:i]))
                if file:
                    found.add(file)
    return found


def closure(entry: Path) -> set[str]:
    """Every repository module `python -m <entry>` runs, as paths relative to the root, output-neutral ones left out."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        rel = path.relative_to(ROOT).as_posix()
        if rel in seen or rel in OUTPUT_NEUTRAL:
            continue
        seen.add(rel)
        todo.extend(imported_files(path))
    # package markers that hold nothing but their docstring cannot change an output
    return {m for m in seen if not (m.endswith("__init__.py") and not _has_code(ROOT / m))}


def _has_code(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def stages() -> dict[str, dict]:
    """Each stage (a foreach stage's template once) with its entry module and its code deps."""
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        stage = stage.get("do", stage)
        module = re.search(r"python -m ([\w.]+)", stage["cmd"]).group(1)
        deps = {d for d in stage.get("deps", []) if isinstance(d, str) and d.endswith(".py")}
        out[name] = {"entry": module_file(module), "deps": deps}
    return out


def test_every_stage_lists_the_modules_it_runs():
    problems = []
    for name, stage in stages().items():
        needed = closure(stage["entry"])
        if needed - stage["deps"]:
            problems.append(f"{name}: add {sorted(needed - stage['deps'])} to its deps in dvc.yaml")
        if stage["deps"] - needed:
            problems.append(f"{name}: {sorted(stage['deps'] - needed)} in its deps is not imported by it: drop it")
    assert not problems, "\n".join(problems)


def test_no_stage_imports_another_stage_and_the_library_imports_no_stage():
    entries = {s["entry"] for s in stages().values()} | {ROOT / "pipeline" / "compose.py"}
    problems = []
    for path in sorted((ROOT / "pipeline").glob("*.py")) + sorted((ROOT / "sling").rglob("*.py")):
        for imported in imported_files(path):
            if imported.parent == ROOT / "pipeline" and imported.name != "__init__.py" and imported != path:
                problems.append(f"{path.relative_to(ROOT)} imports the stage {imported.relative_to(ROOT)}")
    assert not problems, "\n".join(problems)
    assert all(e and e.parent == ROOT / "pipeline" for e in entries)


def test_bench_and_scripts_import_no_test():
    for path in sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in modules if m.split(".")[0] == "tests"], f"{path.relative_to(ROOT)} imports a test module"


def test_the_walk_finds_imports_inside_functions(tmp_path):
    """The walk itself: a module imported only inside a function body is still one the stage runs."""
    answer = closure(ROOT / "pipeline" / "answer.py")
    assert "sling/teacher/client.py" in answer and "pipeline/answer.py" in answer
    assert not set(OUTPUT_NEUTRAL) & answer


def test_no_import_cycles():
    """The house has no import cycles (imports inside functions count too): a cycle names its modules in order."""
    files = [p for d in PACKAGES for p in (ROOT / d).rglob("*.py")]
    graph = {p: {f for f in imported_files(p) if f.name != "__init__.py"} - {p} for p in files}
    state: dict[Path, int] = {}
    cycles: list[list[Path]] = []

    def visit(node: Path, stack: list[Path]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(" -> ".join(p.relative_to(ROOT).as_posix() for p in c) for c in cycles)


# sling/'s layers, lowest first. A module may import its own layer and the ones below it, never one above: the
# arrows of the import graph point one way. The base holds what every layer shares (errors, the schema and config,
# paths, atomic writes and provenance, the machine's facts, embeddings, text measures); the command line sits on top.
LAYERS = (
    ("base", ("sling/errors.py", "sling/words.py", "sling/schema.py", "sling/config.py", "sling/paths.py",
              "sling/precision.py", "sling/environment.py", "sling/io.py", "sling/embed.py", "sling/text.py")),
    ("documents", ("sling/documents/",)),
    ("models", ("sling/models/",)),
    ("teacher", ("sling/teacher/",)),
    ("retrieval", ("sling/retrieval/",)),
    ("scoring", ("sling/scoring/",)),
    ("data", ("sling/data/",)),
    ("tracking", ("sling/tracking/",)),
    ("serving", ("sling/serving/",)),
    ("commands", ("sling/cli.py", "sling/commands.py")),
)


def layer_of(rel: str) -> int:
    """The index in LAYERS of a module under sling/ (its path relative to the root)."""
    for i, (_, members) in enumerate(LAYERS):
        if any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in members):
            return i
    raise AssertionError(f"{rel} is in no layer: add it to LAYERS in tests/test_deps.py")


def test_the_library_layers_point_one_way():
    """0 back arrows: no module under sling/ imports one from a higher layer (imports inside functions count)."""
    back = []
    for path in sorted((ROOT / "sling").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "sling/__init__.py":
            continue
        for imported in imported_files(path):
            target = imported.relative_to(ROOT).as_posix()
            if target.endswith("__init__.py") and not _has_code(imported):
                continue
            if layer_of(target) > layer_of(rel):
                back.append(f"{rel} ({LAYERS[layer_of(rel)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})")
    assert not back, "\n".join(back)


def test_no_library_module_is_a_command_line_program():
    """Command-line mains live in pipeline/ (the stages) and sling/commands.py (the `sling` command), not in the
    library: a module under sling/ is imported, never run."""
    mains = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "sling").rglob("*.py"))
             if p.name != "commands.py" and any(
                 isinstance(n, ast.If) and isinstance(n.test, ast.Compare) and isinstance(n.test.left, ast.Name)
                 and n.test.left.id == "__name__" for n in ast.parse(p.read_text(encoding="utf-8")).body)]
    assert not mains, f"{mains} run as programs: move their main into sling/commands.py or pipeline/"


def test_no_script_puts_the_checkout_on_sys_path():
    """scripts/ and bench/ import `sling` and `pipeline` as the install left them (an editable install of this
    checkout, scripts/install.sh), never by putting the repository's root on sys.path themselves."""
    editing = []
    for p in sorted([*(ROOT / "scripts").glob("*.py"), *(ROOT / "bench").glob("*.py")]):
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("insert", "append")
                    and ast.unparse(n.func.value) == "sys.path"
                    and not ast.unparse(n.args[-1]).endswith("'tests')")):
                editing.append(f"{p.relative_to(ROOT)}:{n.lineno}")
    assert not editing, f"{editing} edit sys.path: the editable install (scripts/install.sh) already finds the project"
