"""The public API's types: shipped (py.typed), complete, and resolvable at run time
without the optional dependencies; and the rule that long functions say why."""

import ast
import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The modules whose public names the checks below walk: what ``import calibrate``
#: exposes and the modules its signatures mention.  (``schema`` is left out: it
#: and ``artifact`` import each other, so it names Calibrator for checkers only.)
MODULES = ["calibrate", "calibrate.artifact", "calibrate.fitting", "calibrate.evaluation",
           "calibrate.sources", "calibrate.io", "calibrate.metrics", "calibrate.summary",
           "calibrate.thresholds", "calibrate.families", "calibrate.backends", "calibrate.rows",
           "calibrate.errors", "calibrate.params", "calibrate.curves", "calibrate.bootstrap",
           "calibrate.smooth_ece", "calibrate.guarantee", "calibrate.outputs", "calibrate.scores"]

#: Run in a fresh interpreter: walks every public function, class and method of
#: the given modules, resolves its annotations with typing.get_type_hints, and
#: prints the ones missing an annotation (a parameter or the return) or whose
#: hints do not resolve; then which heavy packages got imported.
WALK = textwrap.dedent("""
    import importlib, inspect, sys, typing

    def public(module):
        for name in getattr(module, "__all__", None) or dir(module):
            obj = getattr(module, name, None)
            if name.startswith("_") or getattr(obj, "__module__", None) is None:
                continue
            if obj.__module__.startswith("calibrate") and (
                    inspect.isfunction(obj) or inspect.isclass(obj)):
                yield f"{module.__name__}.{name}", obj

    def members(qual, cls):
        for name, obj in vars(cls).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(obj, property):
                obj = obj.fget
            elif isinstance(obj, (classmethod, staticmethod)):
                obj = obj.__func__
            if inspect.isfunction(obj):
                yield f"{qual}.{name}", obj

    problems, seen = [], 0
    for modname in sys.argv[1:]:
        for qual, obj in public(importlib.import_module(modname)):
            funcs = list(members(qual, obj)) if inspect.isclass(obj) else [(qual, obj)]
            if inspect.isclass(obj):
                try:
                    typing.get_type_hints(obj)
                except Exception as exc:
                    problems.append(f"{qual}: {type(exc).__name__}: {exc}")
            for q, f in funcs:
                seen += 1
                try:
                    hints = typing.get_type_hints(f)
                except Exception as exc:
                    problems.append(f"{q}: {type(exc).__name__}: {exc}")
                    continue
                params = list(inspect.signature(f).parameters.values())
                if params and params[0].name in ("self", "cls"):
                    params = params[1:]
                missing = [p.name for p in params if p.name not in hints]
                if "return" not in hints:
                    missing.append("return")
                if missing:
                    problems.append(f"{q}: not annotated: {', '.join(missing)}")
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "sklearn", "matplotlib"})
    print("checked", seen)
    print("heavy", ",".join(heavy) or "none")
    print("\\n".join(problems))
""")


def _walk(*modules):
    proc = subprocess.run([sys.executable, "-c", WALK, *modules], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    return int(lines[0].split()[1]), lines[1].split()[1], [ln for ln in lines[2:] if ln]


def test_py_typed_ships_with_the_package():
    assert (ROOT / "calibrate" / "py.typed").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "py.typed" in cfg["options.package_data"]["calibrate"].split()


def test_public_api_is_annotated_and_resolves_without_torch_or_sklearn():
    checked, heavy, problems = _walk(*MODULES)
    assert problems == []
    assert heavy == "none"
    assert checked > 150   # the walk reached the API (functions, methods, properties)


@pytest.mark.parametrize("module, needs", [("calibrate.torch", "torch"),
                                           ("calibrate.sklearn", "sklearn")])
def test_integration_modules_are_annotated(module, needs):
    pytest.importorskip(needs)
    checked, _, problems = _walk(module)
    assert problems == []
    assert checked >= 3


def test_plot_annotations_resolve_with_matplotlib_types():
    """The plots name matplotlib's types for checkers only (matplotlib loads when
    a picture is drawn): given those names, every hint resolves."""
    pytest.importorskip("matplotlib")
    import inspect
    import typing

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.typing import LegendLocType

    from calibrate import plots
    names = {"Axes": Axes, "Figure": Figure, "SubFigure": SubFigure,
             "LegendLocType": LegendLocType}
    funcs = [f for n, f in vars(plots).items()
             if inspect.isfunction(f) and f.__module__ == plots.__name__]
    assert len(funcs) > 15
    for f in funcs:
        hints = typing.get_type_hints(f, localns=names)
        assert "return" in hints, f.__name__


def _long_functions(limit=60):
    for path in sorted((ROOT / "calibrate").rglob("*.py")) + sorted((ROOT / "cli").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > limit:
                    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                    yield path.relative_to(ROOT), node.name, lines[first - 2].strip()


def test_functions_over_60_lines_say_why():
    found = list(_long_functions())
    unexplained = [f"{p}: {name}" for p, name, above in found if not above.startswith("# long: ")]
    assert unexplained == []
    assert len(found) < 10   # a handful, each with its reason
