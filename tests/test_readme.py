"""The documentation runs: README.md and docs/*.md are checked against the real tool.

docs/cli.md ("How the documentation is tested") states the conventions for writers:

* ```python blocks run (one namespace per ``#`` / ``##`` section, in order, in a
  temporary directory holding a copy of sample_data/); a ```output block right after
  one is what it prints;
* a block whose first line starts with ``$ `` is a transcript: each command runs in
  bash and its output (stdout and stderr) must be the one shown, a line ``...``
  standing for one or more lines left out; it exits 0 unless it shows ``Error: ``;
* the ``calibrate`` commands of ```bash blocks (not run) parse with the real CLI;
* ```json blocks are the sample data's threshold files, to the digits shown;
* the README's synopsis names every option and choice; every ``--help`` is shown;
  every ``calibrate.<name>`` mentioned exists; links between the documents resolve;
  docs/file-format.md lists every field of a threshold file and docs/math.md every
  summary metric.

There is no way to mark a python block or a transcript as "do not run".
"""

import difflib
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import click
import pytest

from calibrate_cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
ELLIPSIS = "..."
FENCE = re.compile(r"^(```+)\s*([\w-]*)\s*$")


# --------------------------------------------------------------------------- parsing
class Block:
    """One fenced block: its info string, its lines, and where it starts (1-based)."""

    def __init__(self, path, line, info, lines):
        self.path, self.line, self.info, self.lines = path, line, info, lines

    @property
    def where(self):
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_transcript(self):
        return bool(self.lines) and self.lines[0].startswith("$ ")


def sections(path):
    """``[(heading, [Block, ...]), ...]`` in document order."""
    out = [("(top)", [])]
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            start, fence, body = i + 1, m.group(1), []
            i += 1
            while i < len(lines) and lines[i].rstrip() != fence:
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{path.name}:{start}: unclosed code fence"
            out[-1][1].append(Block(path, start, m.group(2), body))
        elif re.match(r"^#{1,2} ", lines[i]):
            out.append((lines[i].lstrip("#").strip(), []))
        i += 1
    return out


def runnable(blocks):
    return [b for b in blocks if b.info == "python" or b.is_transcript]


def _slug(heading):
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")[:40]


SECTIONS = [pytest.param(path, heading, blocks, id=f"{path.name}::{_slug(heading)}")
            for path in [README, *DOCS]
            for heading, blocks in sections(path) if runnable(blocks)]


# --------------------------------------------------------------------------- matching
def matches(want, got):
    """Whether output lines ``got`` fit ``want``, where a line ``...`` in ``want``
    stands for one or more lines of ``got``."""
    want = [w.rstrip() for w in want]
    got = [g.rstrip() for g in got]

    @functools.cache
    def fit(i, j):
        if i == len(want):
            return j == len(got)
        if want[i] == ELLIPSIS:
            return any(fit(i + 1, k) for k in range(j + 1, len(got) + 1))
        return j < len(got) and want[i] == got[j] and fit(i + 1, j + 1)

    return fit(0, 0)


def check_output(where, what, want, got):
    if not matches(want, got):
        diff = "\n".join(difflib.unified_diff(want, got, "documented", "real", lineterm=""))
        pytest.fail(f"{where}: the output of {what} is not the one documented "
                    f"('...' lines stand for one or more lines):\n{diff}", pytrace=False)


def test_matches_elision_rules():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "c", "...", "e"], ["a", "b", "c", "d", "e"])
    assert matches(["a  "], ["a"])                          # trailing blanks aside
    assert not matches(["a", "...", "b"], ["a", "b"])       # '...' is at least one line
    assert not matches(["a", "..."], ["a"])
    assert not matches(["a", "b"], ["a", "b", "c"])         # nothing extra at the end
    assert not matches(["a", "b"], ["a", " b"])             # leading blanks count
    assert not matches(["temp 2.48..."], ["temp 2.484"])    # no elision inside a line


# --------------------------------------------------------------------------- running
def _environment():
    """This interpreter's scripts first on the PATH (the editable install's
    ``calibrate``), and the 80 columns click wraps help text at."""
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               COLUMNS="80")
    env.pop("PYTHONWARNINGS", None)
    return env


def _transcript_commands(block):
    """``[(command, expected output lines), ...]`` of a transcript."""
    out = []
    for line in block.lines:
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out


def run_transcript(block, folder):
    env = _environment()
    assert shutil.which("calibrate", path=env["PATH"]), (
        "the `calibrate` command is not installed beside this Python: pip install -e .")
    for command, want in _transcript_commands(block):
        proc = subprocess.run(["bash", "-c", command], cwd=folder, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        failing = any(w.startswith("Error: ") for w in want)
        ok_codes = (1, 2) if failing else (0,)
        if proc.returncode not in ok_codes:
            pytest.fail(f"{block.where}: `{command}` exited {proc.returncode}, expected "
                        f"{' or '.join(map(str, ok_codes))}:\n{proc.stdout}", pytrace=False)
        check_output(block.where, f"`{command}`", want, proc.stdout.splitlines())


def run_python(block, namespace, expected):
    """Run ``block`` in ``namespace``; compare what it prints with ``expected`` (a
    Block, or None when the docs show no output)."""
    # Pad the source so that a traceback names the line of the Markdown file.
    code = compile("\n" * block.line + "\n".join(block.lines), str(block.path), "exec")
    printed = StringIO()
    try:
        with redirect_stdout(printed):
            exec(code, namespace)
    except ModuleNotFoundError as exc:
        if exc.name in ("torch",):   # an optional extra, as in the other test files
            pytest.skip(f"{block.where} needs {exc.name}")
        raise
    if expected is not None:
        check_output(expected.where, f"the python block at {block.where}", expected.lines,
                     printed.getvalue().splitlines())


@pytest.fixture
def one_torch_thread():
    """One torch thread while a section runs, as for the example scripts: on a shared,
    loaded machine torch's threads spin, and a block that takes 1 s alone takes 10."""
    try:
        import torch
    except ImportError:   # the section skips itself
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("path, heading, blocks", SECTIONS)
def test_section_runs(path, heading, blocks, tmp_path, monkeypatch, request):
    if any(b.info == "python" and "import torch" in "\n".join(b.lines) for b in blocks):
        request.getfixturevalue("one_torch_thread")
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    for i, block in enumerate(blocks):
        if block.info == "python":
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            run_python(block, namespace, nxt if nxt is not None and nxt.info == "output"
                       else None)
        elif block.is_transcript:
            run_transcript(block, tmp_path)
        elif block.info == "output":
            prev = blocks[i - 1] if i else None
            assert prev is not None and prev.info == "python", (
                f"{block.where}: an output block must follow a python block")


# --------------------------------------------------------------------------- the CLI reference
def _all_blocks():
    return [b for path in [README, *DOCS] for _, blocks in sections(path) for b in blocks]


def _options(command):
    """Every option string of a click command, without -h / --help."""
    return {o for p in command.params if isinstance(p, click.Option)
            for o in (*p.opts, *p.secondary_opts)} - {"-h", "--help"}


def _calibrate_commands(block):
    """The argument lists of the ``calibrate`` commands in a bash block."""
    out = []
    for line in block.lines:
        words = shlex.split(line, comments=True)
        cmd = []
        for w in words + ["&&"]:
            if w in ("&&", "||", ";", "|"):
                if cmd and cmd[0] == "calibrate":
                    out.append(cmd[1:])
                cmd = []
            else:
                cmd.append(w)
    return out


def test_bash_blocks_parse_with_the_real_command_line():
    seen = 0
    for block in _all_blocks():
        if block.info != "bash":
            continue
        for args in _calibrate_commands(block):
            seen += 1
            assert args and args[0] in cli.commands, f"{block.where}: calibrate {args}"
            command = cli.commands[args[0]]
            try:
                command.make_context(f"calibrate {args[0]}", list(args[1:]))
            except click.ClickException as exc:
                pytest.fail(f"{block.where}: `calibrate {' '.join(args)}`: "
                            f"{exc.format_message()}", pytrace=False)
    assert seen >= 5   # the Quick start and the large-data examples


def _synopsis():
    found = [b for _, blocks in sections(README) for b in blocks
             if b.info == "" and b.lines and b.lines[0].startswith("calibrate ")]
    assert len(found) == 1, "README.md: expected one synopsis block of the command line"
    entries = {}
    for line in found[0].lines:
        if line.startswith("calibrate "):
            name = line.split()[1]
            entries[name] = line[len("calibrate "):]
        else:
            entries[name] += " " + line.strip()
    return found[0], entries


def test_readme_synopsis_names_every_command_option_and_choice():
    block, entries = _synopsis()
    assert set(entries) - {"--version"} == set(cli.commands), block.where
    group = entries.get("--version", "")
    assert "--help" in group, f"{block.where}: the group line shows --version and --help"
    for name, command in cli.commands.items():
        text = entries[name]
        shown = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", text)) - {"-h", "--help"}
        unknown = shown - _options(command)
        assert not unknown, f"{block.where}: calibrate {name}: no such option {sorted(unknown)}"
        missing = [p.opts[-1] for p in command.params if isinstance(p, click.Option)
                   and not p.hidden and not shown & {*p.opts, *p.secondary_opts}
                   and p.name != "help"]
        assert not missing, f"{block.where}: calibrate {name}: the synopsis lacks {missing}"
        args = [p.name.upper() for p in command.params if isinstance(p, click.Argument)]
        words = re.findall(r"\b[A-Z]{2,}\b", text.split("[")[0])
        assert words == args, f"{block.where}: calibrate {name} arguments {words} != {args}"
        for p in command.params:
            if isinstance(p, click.Option) and isinstance(p.type, click.Choice):
                m = re.search(re.escape(p.opts[-1]) + r" ([\w|-]+)", text)
                assert m, f"{block.where}: calibrate {name} {p.opts[-1]} shows no choices"
                assert m.group(1).split("|") == list(p.type.choices), (
                    f"{block.where}: calibrate {name} {p.opts[-1]}: {m.group(1)} != "
                    f"{'|'.join(p.type.choices)}")


def test_every_help_text_is_shown():
    shown = {line[2:].strip() for b in _all_blocks() if b.is_transcript
             for line in b.lines if line.startswith("$ ")}
    want = {"calibrate --help"} | {f"calibrate {name} --help" for name in cli.commands}
    assert want <= shown, f"help transcripts missing from README.md / docs: {sorted(want - shown)}"
    readme = {line[2:].strip() for _, blocks in sections(README) for b in blocks
              if b.is_transcript for line in b.lines if line.startswith("$ ")}
    assert "calibrate --help" in readme


# --------------------------------------------------------------------------- JSON examples
class Shown(float):
    """A number as the docs show it: its value and its decimal places."""

    def __new__(cls, text):
        self = super().__new__(cls, text)
        frac = text.lower().split("e")[0].partition(".")[2]
        self.places = len(frac)
        return self


@functools.cache
def _sample_file(task):
    """The threshold file of the README's sample fit for ``task`` (default options;
    class names for the 10-class set)."""
    import json

    import numpy as np

    import calibrate

    sample = ROOT / "sample_data"
    if task == "multiclass":
        cal = calibrate.fit(np.load(sample / "val_logits.npy"), np.load(sample / "val_labels.npy"),
                            classes=(sample / "classes.txt").read_text().split())
    else:
        name = {"binary": "binary_val.npz", "multilabel": "multilabel_val.npz"}[task]
        with np.load(sample / name) as f:
            cal = calibrate.fit(f["logits"], f["labels"])
    return json.loads(json.dumps(cal.to_dict()))


def same_as_shown(shown, real, path="$"):
    """Assert that every value of the example ``shown`` is the real one: numbers to
    the decimal places shown, ``"..."`` in a list or as a key for entries left out,
    a string ending in ``...`` for the rest of that string."""
    if isinstance(shown, dict):
        assert isinstance(real, dict), f"{path}: {real!r} is not an object"
        keys = [k for k in shown if k != ELLIPSIS]
        assert [k for k in real if k in keys] == keys, f"{path}: keys {keys} not in {list(real)}"
        if ELLIPSIS not in shown:
            assert set(real) == set(keys), f"{path}: keys left out {sorted(set(real) - set(keys))}"
        for k in keys:
            same_as_shown(shown[k], real[k], f"{path}.{k}")
    elif isinstance(shown, list):
        assert isinstance(real, list), f"{path}: {real!r} is not a list"
        cut = shown[-1:] == [ELLIPSIS]
        items = shown[:-1] if cut else shown
        assert len(real) > len(items) if cut else len(real) == len(items), (
            f"{path}: {len(real)} entries, {len(items)} shown" + (" and more" if cut else ""))
        for i, v in enumerate(items):
            same_as_shown(v, real[i], f"{path}[{i}]")
    elif isinstance(shown, Shown):
        ok = (isinstance(real, (int, float)) and not isinstance(real, bool)
              and abs(real - shown) <= 0.5 * 10.0 ** -shown.places * (1 + 1e-9))
        assert ok, f"{path}: shown {shown}, real {real!r}"
    elif isinstance(shown, str) and shown.endswith(ELLIPSIS) and shown != ELLIPSIS:
        assert isinstance(real, str) and real.startswith(shown[:-3]), f"{path}: {real!r}"
    else:
        assert shown == real and type(shown) is type(real), \
            f"{path}: shown {shown!r}, real {real!r}"


def test_same_as_shown_rules():
    import json

    def shown(text):
        return json.loads(text, parse_float=Shown)

    same_as_shown(shown('{"a": 2.484, "b": [1, "..."], "...": "..."}'),
                  {"a": 2.48396, "b": [1, 2], "c": None})
    same_as_shown(shown('{"d": "Brier score: ..."}'), {"d": "Brier score: mean"})
    for text, real in [('{"a": 2.49}', {"a": 2.4839}),          # 2.4839 shows as 2.48
                       ('{"a": 1}', {"a": 1, "b": 2}),          # a key left out silently
                       ('{"b": [1, "..."]}', {"b": [1]}),       # "..." is at least one entry
                       ('{"a": 1}', {"a": True}),
                       ('{"a": null}', {"a": 0.0})]:
        with pytest.raises(AssertionError):
            same_as_shown(shown(text), real)


def test_json_examples_are_real_threshold_files():
    import json

    seen = 0
    for block in _all_blocks():
        if block.info != "json":
            continue
        shown = json.loads("\n".join(block.lines), parse_float=Shown)
        try:
            same_as_shown(shown, _sample_file(shown["task"]))
        except AssertionError as exc:
            pytest.fail(f"{block.where}: the example is not the real file: {exc}", pytrace=False)
        seen += 1
    assert seen >= 1


# --------------------------------------------------------------------------- names
def test_every_documented_calibrate_name_exists():
    import importlib

    names = set()
    for path in [README, *DOCS]:
        names |= set(re.findall(r"`(calibrate(?:\.[A-Za-z_]\w*)+)", path.read_text("utf-8")))
    assert names
    for name in sorted(names):
        parts = name.split(".")
        obj, i = None, len(parts)
        while i > 0:   # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ModuleNotFoundError:
                i -= 1
        for attr in parts[i:]:
            assert hasattr(obj, attr), f"the docs mention `{name}`, which does not exist"
            obj = getattr(obj, attr)


# --------------------------------------------------------------------------- links
def _anchors(path):
    """The heading anchors of a Markdown file, as GitHub makes them."""
    out = set()
    in_fence = False
    for line in path.read_text("utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_links_between_documents_resolve():
    for path in [README, *DOCS]:
        text = re.sub(r"```.*?```", "", path.read_text("utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue   # an external address: not checked offline
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            assert dest.exists(), f"{path.name}: link to {target}: no such file"
            if anchor:
                assert anchor in _anchors(dest), f"{path.name}: link to {target}: no such heading"


# --------------------------------------------------------------------------- the file format
def _field_paths(value, path=""):
    """Every field of a threshold file as a dotted path: ``[]`` for the rows of an
    array of objects, ``<name>`` for the keys of ``summary.metrics``."""
    out = {path} if path else set()
    if isinstance(value, dict):
        for k, v in value.items():
            key = "<name>" if path == "summary.metrics" else k
            out |= _field_paths(v, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for v in value:
            out |= _field_paths(v, path + "[]")
    return out


def _table_keys(path):
    """The first cells (in backticks) of the table rows of ``path``."""
    return set(re.findall(r"^\| `([^`]+)` \|", path.read_text("utf-8"), flags=re.M))


def test_file_format_documents_every_field():
    real = set()
    for task in ("multiclass", "binary", "multilabel"):
        real |= {f for f in _field_paths(_sample_file(task)) if not f.endswith("[]")}
    documented = _table_keys(ROOT / "docs" / "file-format.md")
    assert real - documented == set(), "fields missing from docs/file-format.md"
    assert documented - real == set(), "docs/file-format.md documents fields no file has"


def test_math_defines_every_summary_metric():
    real = set()
    for task in ("multiclass", "binary", "multilabel"):
        real |= set(_sample_file(task)["summary"]["metrics"])
    assert _table_keys(ROOT / "docs" / "math.md") == real
