"""The rules of the house: which part of the package may import which.

The import contracts live in pyproject.toml's ``[tool.importlinter]`` and are checked here by
import-linter, one test per contract; the rules it cannot express are checked with ``ast``: no
module imports another module's ``_private`` names, and ``import mobilenet`` / the CLI's parser
load no PyTorch.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # import-linter (dev extra) brings tomli on 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "mobilenet"
CONTRACTS: list[dict[str, Any]] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "importlinter"
]["contracts"]

# `python -m importlinter.cli` is no runner: the module has no `__main__` block, so it exits 0 having
# checked nothing. This calls the `lint-imports` console script of this interpreter's environment.
LINT_IMPORTS = (
    "import sys\n"
    "from importlib.metadata import entry_points\n"
    "(script,) = entry_points(group='console_scripts', name='lint-imports')\n"
    "sys.exit(script.load()())\n"
)
needs_import_linter = pytest.mark.skipif(
    find_spec("importlinter") is None, reason="needs import-linter: pip install -e '.[dev]'"
)


def run_python(code: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` in a fresh interpreter that imports ``mobilenet`` from this checkout's src."""
    env = dict(os.environ, COLUMNS="200")  # rich wraps its report at the terminal width
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the pyproject.toml in ``cwd``, without writing a cache there."""
    return run_python(LINT_IMPORTS, "--no-cache", *args, cwd=cwd)


def report(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed run said: the broken contracts and their import chains (not the logo), or all of it."""
    _, heading, broken = result.stdout.partition("Broken contracts")
    return f"exit status {result.returncode}\n{heading + broken if heading else result.stdout}{result.stderr}"


@needs_import_linter
@pytest.mark.parametrize("contract", CONTRACTS, ids=[str(contract.get("id")) for contract in CONTRACTS])
def test_import_contract_is_kept(contract: dict[str, Any]) -> None:
    result = lint_imports("--contract", str(contract.get("id")))
    assert result.returncode == 0, f"broken: {contract.get('name')}\n{report(result)}"
    assert re.search(r"\b1 kept, 0 broken\b", result.stdout), report(result)


@needs_import_linter
def test_lint_imports_fails_on_a_broken_contract(tmp_path: Path) -> None:
    """The runner is no silent no-op: a contract that the code breaks fails, naming the import."""
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_package = "mobilenet"

            [[tool.importlinter.contracts]]
            id = "broken-on-purpose"
            name = "mobilenet.__main__ does not import mobilenet.cli"
            type = "forbidden"
            source_modules = ["mobilenet.__main__"]
            forbidden_modules = ["mobilenet.cli"]
            """
        ),
        encoding="utf-8",
    )
    result = lint_imports(cwd=tmp_path)
    assert result.returncode != 0, report(result)
    assert "mobilenet.__main__ -> mobilenet.cli" in result.stdout, report(result)


def builtin_kinds() -> list[str]:
    """The references of the built-in kinds, ``BUILTIN`` of mobilenet/registry.py, read as source."""
    tree = ast.parse((PACKAGE / "registry.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "BUILTIN" for t in node.targets):
            return [element.value for element in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("mobilenet/registry.py no longer has BUILTIN = (...): update this test")


def task_packages() -> set[str]:
    """The packages (``mobilenet.<task>``) of the built-in kinds."""
    return {".".join(reference.split(":")[0].split(".")[:2]) for reference in builtin_kinds()}


def layer_modules(layer: str) -> set[str]:
    """The modules named in a layer of a layers contract, optional ``(mobilenet.x)`` ones included."""
    return set(re.findall(r"mobilenet(?:\.\w+)+", layer))


def test_task_contracts_cover_every_task_package() -> None:
    contracts = {contract.get("id"): contract for contract in CONTRACTS}
    packages = task_packages()
    assert "mobilenet.classification" in packages
    *above_training, training = contracts["training-task-agnostic"]["layers"]
    assert layer_modules(training) == {"mobilenet.training"}
    upper = set().union(*map(layer_modules, above_training))
    assert packages <= upper, f"training-task-agnostic must name the task packages {sorted(packages - upper)}"
    (siblings,) = contracts["tasks-independent"]["layers"]
    assert "|" in siblings, "the task packages must be one layer of independent ('|') siblings"
    missing = packages - layer_modules(siblings)
    assert not missing, f"tasks-independent must name the task packages {sorted(missing)}"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_private(name: str) -> bool:
    """``_name`` (and ``__name``), not a dunder such as ``__version__``."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_module_misuse(module: str, importer: str) -> str | None:
    """The private part of ``module`` (``a.b._c``) if ``importer`` is outside its parent package (``a.b``)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        parent = ".".join(parts[:i])
        if is_private(part) and importer != parent and not importer.startswith(parent + "."):
            return ".".join(parts[: i + 1])
    return None


def private_imports() -> list[str]:
    """Every import of a ``_private`` name of another module of the package, as ``file:line: what``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems = [private_module_misuse(alias.name, importer) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from .x import y / from .. import y
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                if source.split(".")[0] != "mobilenet" or source == importer:
                    continue
                problems = [private_module_misuse(source, importer)]
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if is_module(full):  # a submodule: private to its package
                        problems.append(private_module_misuse(full, importer))
                    elif is_private(alias.name):
                        problems.append(full)
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found += [f"{where}: {problem}" for problem in problems if problem and problem.split(".")[0] == "mobilenet"]
    return found


def test_no_module_imports_private_names_of_another() -> None:
    """``_private`` names stay in their module (``_private`` modules in their package): make them public to share."""
    found = private_imports()
    assert not found, "imports of another module's _private names:\n" + "\n".join(found)


def test_import_and_cli_parser_load_no_torch() -> None:
    """``import mobilenet`` and ``mobilenet --help`` stay fast: PyTorch loads only with the command that needs it."""
    code = textwrap.dedent(
        """
        import contextlib, io, sys
        import mobilenet, mobilenet.cli
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            mobilenet.cli.main(["--help"])
        print("torch" in sys.modules)
        print(" ".join(sorted(name for name in sys.modules if name.startswith("mobilenet"))))
        """
    )
    result = run_python(code)
    assert result.returncode == 0, report(result)
    torch_loaded, loaded = result.stdout.splitlines()
    assert torch_loaded == "False", f"torch was imported; the mobilenet modules loaded: {loaded}"


# Where the kinds of model may be named: their own packages, the registry (the one place that lists them), the
# commands that are one kind's own, and the package's public names (its __init__ re-exports each task's API).
TASK_NAMES = re.compile(r"deeplab|ssd|segmentation|detection|classification", re.IGNORECASE)
MAY_NAME_TASKS = ("registry.py", "__init__.py", "cli/commands/segment.py", "cli/commands/detect.py")
# Third-party vocabulary: Hugging Face's pipeline tag of an image classifier, in the model card of a Hub folder,
# transformers' class names of its MobileNet classifiers, and TF Lite's SSD post-processing op, with its options
# and the output name MediaPipe's ObjectDetector looks for in a file's metadata.
THIRD_PARTY = {
    "weights/hub.py": ("image-classification",),
    "weights/huggingface.py": ("ForImageClassification",),
    "weights/frameworks.py": ("ForImageClassification",),
    "runtimes/litert.py": ("TFLite_Detection_PostProcess",),
    "inference/edge.py": (
        "max_classes_per_detection",
        "max_detections",
        "detections_per_class",
        "number of detections",
    ),
}


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings: prose about the code, not code."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def task_names_in(path: Path) -> list[str]:
    """Task names in a module's code: its names, attributes, imports and strings (docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose, allowed = docstrings(tree), THIRD_PARTY.get(path.relative_to(PACKAGE).as_posix(), ())
    found = []
    for node in ast.walk(tree):
        text = {
            ast.Constant: lambda n: n.value if isinstance(n.value, str) and id(n) not in prose else None,
            ast.Name: lambda n: n.id,
            ast.Attribute: lambda n: n.attr,
            ast.alias: lambda n: n.name,
            ast.ImportFrom: lambda n: n.module,
            ast.FunctionDef: lambda n: n.name,
            ast.ClassDef: lambda n: n.name,
            ast.arg: lambda n: n.arg,
        }.get(type(node), lambda n: None)(node)
        for vocabulary in allowed if text else ():
            text = text.replace(vocabulary, "")
        if text and TASK_NAMES.search(text):
            found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {text[:60]!r}")
    return found


def test_only_the_registry_and_the_tasks_own_modules_name_the_tasks() -> None:
    """What dispatches on kinds of model asks the registry: the trainer, the CLI's shared commands, inference, the
    tools and the paper name no task (a new kind is its own package plus one registration)."""
    task_dirs = {package.split(".")[1] for package in task_packages()}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.split("/")[0] in task_dirs or relative in MAY_NAME_TASKS:
            continue
        found += task_names_in(path)
    assert not found, "task names outside the registry and the tasks' own modules:\n" + "\n".join(found)


def test_the_runtimes_are_set_up_in_runtimes_alone() -> None:
    """ONNX Runtime sessions and LiteRT interpreters are made in mobilenet/runtimes, and nowhere else."""
    makers = re.compile(r"InferenceSession|SessionOptions|Interpreter\(|ai_edge_litert\.interpreter")
    found = [
        f"{path.relative_to(ROOT)}: {match[0]}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "runtimes"
        for match in makers.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, "runtimes set up outside mobilenet/runtimes:\n" + "\n".join(found)
