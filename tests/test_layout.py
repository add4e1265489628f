"""The shape of the house (issues 14, 39): imports flow one way, the README's map is the tree,
and the pages stay thin.

These stand for what the old line caps stood for: a module belongs to the room its concept
belongs to, and a room only reaches down to the rooms it is built on. Function length is kept
short by review, not by a number.
"""

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "explorer"
PAGE_CODE_LINES = 60
MODULES = sorted(PACKAGE.rglob("*.py"))
PAGES = sorted((ROOT / "pages").glob("*.py"))

# The layers, lowest first. A module may import from its own layer or a lower one, never a
# higher one. The paper's lesson (paper/, paper/inside/) sits on the models, data, training
# engine and store; transfer learning on the paper's stage anatomy; the presentation on all of
# those; the class server on the presentation; the front ends on everything.
FOUNDATION = {"__init__", "settings", "devices", "files", "typed_json", "words"}
LAYERS = ("foundation", "models", "data", "training", "store", "paper", "transfer", "present", "server",
          "front end")
FRONT_ENDS = {"cli", "ui", "app", "navigation", "__main__", "pages"}
# Two front ends that must stay independent of each other: the terminal never needs Streamlit,
# and a page's widgets never print for a terminal.
SEPARATE_FRONT_ENDS = {frozenset({"cli", "ui"}), frozenset({"cli", "pages"})}
# Pragmas are not reasons: a deferred import says *why* it is deferred (torch, plotly, a slow module).
PRAGMA = re.compile(r"#\s*(noqa|type:|pragma|pylint|fmt:)")


def room(module: str) -> str:
    """The room of a dotted module name: "explorer.paper.inside.lesion" -> "paper",
    "explorer.settings" -> "foundation", "pages.home" -> "pages"."""
    parts = module.split(".")
    if parts[0] == "pages":
        return "pages"
    top = parts[1] if len(parts) > 1 else "__init__"
    return "foundation" if top in FOUNDATION else top


def layer(room_name: str) -> int:
    return LAYERS.index("front end" if room_name in FRONT_ENDS else room_name)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module of a ``from … import`` (relative ones resolved against the importer)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The explorer modules one import statement reaches: ``from explorer import settings``
    reaches explorer.settings, ``from explorer import __version__`` the package itself."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "explorer"]
    module = resolve(node, importer, is_package)
    if module.split(".")[0] != "explorer":
        return []
    found = []
    for alias in node.names:
        child = f"{module}.{alias.name}"
        folder = ROOT.joinpath(*child.split("."))
        found.append(child if folder.with_suffix(".py").exists() or folder.is_dir() else module)
    return found


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def all_imports(tree: ast.AST):
    """Every import statement, with whether a function holds it (TYPE_CHECKING blocks and
    nested functions included: ``ast.walk`` sees them all)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, id(node) in inside


def backward_imports(paths: list[Path]) -> list[str]:
    wrong = []
    for path in paths:
        importer = module_name(path)
        source_room = room(importer)
        for node, _ in all_imports(parsed(path)):
            for target in imported_modules(node, importer, path.name == "__init__.py"):
                target_room = room(target)
                where = f"{path.relative_to(ROOT)}:{node.lineno}: {importer} -> {target}"
                if frozenset({source_room, target_room}) in SEPARATE_FRONT_ENDS:
                    wrong.append(f"{where} ({source_room} and {target_room} never import each other)")
                elif layer(target_room) > layer(source_room):
                    wrong.append(f"{where} (layer {target_room} above layer {source_room})")
    return sorted(set(wrong))


def comments(source: str) -> dict[int, str]:
    return {token.start[0]: token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.COMMENT and not PRAGMA.match(token.string)}


def undocumented_deferred_imports(paths: list[Path]) -> list[str]:
    """Imports inside a function with no reason on their lines or the line above them; a run of
    such imports (blank lines between groups allowed) shares the comment above its first line."""
    missing = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        reasons = comments("\n".join(lines) + "\n")
        deferred = {node.lineno: node.end_lineno for node, in_function in all_imports(parsed(path)) if in_function}
        start_of = {end: start for start, end in deferred.items()}
        for start, end in sorted(deferred.items()):
            above = start - 1
            while True:  # up through the run this import belongs to
                while above > 0 and not lines[above - 1].strip():
                    above -= 1
                if above not in start_of:
                    break
                above = start_of[above] - 1
            if not any(line in reasons for line in (*range(start, end + 1), above)):
                missing.append(f"{path.relative_to(ROOT)}:{start}")
    return missing


def code_lines(source: str) -> int:
    """Lines holding a token other than a comment or a line break."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines)


FULL_PATH = re.compile(r"\bexplorer/(?:\w+/)*(?:\w+\.py)?(?![\w/])")
BARE_MODULE = re.compile(r"(?<![\w/.])\w+\.py\b")


def readme_layout_paths() -> list[str]:
    """What the README's "## Layout" names: ``explorer/...py`` files and ``explorer/.../`` folders,
    and each bare ``name.py`` on the lines of a room (a line opening with ``explorer/room/``,
    with its continuation lines), read as a module of that room."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    named, room_folder = set(), None
    for line in section.splitlines():
        opening = line.split()[0] if line.strip() else ""
        if "/" in opening:  # a new entry of the map: explorer/models/, explorer/settings.py, pages/
            folder = opening if opening.endswith("/") else opening.rsplit("/", 1)[0] + "/"
            room_folder = folder if folder.startswith("explorer/") else None
        named.update(FULL_PATH.findall(line))
        if room_folder is not None:
            named.update(room_folder + module for module in BARE_MODULE.findall(line))
    return sorted(named)


def test_rooms_and_layers_are_read_from_module_names():
    assert room("explorer.paper.inside.lesion") == "paper"
    assert room("explorer.settings") == "foundation" and room("explorer") == "foundation"
    assert layer(room("explorer.cli.parsing")) == layer(room("explorer.app")) == len(LAYERS) - 1
    assert layer("models") < layer("training") < layer("paper") < layer("transfer") < layer("present")


def test_the_checks_see_relative_deferred_and_type_checking_imports(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    models = tmp_path / "explorer" / "models"
    models.mkdir(parents=True)
    (tmp_path / "explorer" / "cli").mkdir()
    (models / "registry.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from explorer.store import runs\n"
        "from ..cli import parsing\n"
        "def build():\n"
        "    # deferred: torch\n    import torch\n    from explorer.data import loading\n"
        "    import json\n\n    import math\n"
        "    x = 1\n    import time  # noqa: F401\n    import os  # deferred: nothing, but says so\n")
    assert backward_imports([models / "registry.py"]) == [
        "explorer/models/registry.py:3: explorer.models.registry -> explorer.store (layer store above layer models)",
        "explorer/models/registry.py:4: explorer.models.registry -> explorer.cli (layer cli above layer models)",
        "explorer/models/registry.py:8: explorer.models.registry -> explorer.data (layer data above layer models)"]
    assert undocumented_deferred_imports([models / "registry.py"]) == ["explorer/models/registry.py:13"]


def test_imports_flow_one_way():
    """Layers, lowest first: foundation (settings, devices, files, typed_json, words) < models <
    data < training < store < paper (incl. paper/inside) < transfer < present < server < the
    front ends (cli, ui, app.py, navigation.py, __main__.py, pages/); cli never meets ui or pages."""
    wrong = backward_imports(MODULES + PAGES)
    assert not wrong, "imports that point up a layer:\n" + "\n".join(wrong)


def explorer_imports(relative: str) -> set[str]:
    path = ROOT / relative
    return {target for node, _ in all_imports(parsed(path))
            for target in imported_modules(node, module_name(path), path.name == "__init__.py")}


def test_gradcam_and_finetuning_take_the_anatomy_from_the_models():
    """Grad-CAM and fine-tuning share the stage ends and the weighted layers through
    explorer.models, not through the training engine or each other (issue 39)."""
    gradcam, finetune = explorer_imports("explorer/paper/gradcam.py"), explorer_imports("explorer/transfer/finetune.py")
    assert not {m for m in gradcam if m.startswith(("explorer.training", "explorer.transfer", "explorer.present"))}
    assert not {m for m in finetune if m.startswith(("explorer.paper", "explorer.training.engine"))}


def test_every_import_inside_a_function_says_why_it_is_deferred():
    """An import inside a function is there to defer a real cost (torch or plotly at the CLI's
    ``--help``, a slow optional module), and a comment on its line or above says which."""
    missing = undocumented_deferred_imports(MODULES + PAGES)
    assert not missing, "imports inside functions without a reason:\n" + "\n".join(missing)


def test_the_readme_map_names_only_modules_that_exist():
    named = readme_layout_paths()
    assert "explorer/models/" in named and "explorer/paper/gradcam.py" in named
    absent = [path for path in named if not (ROOT / path).exists() or (ROOT / path).is_dir() != path.endswith("/")]
    assert not absent, "README.md's Layout names what the tree does not have:\n" + "\n".join(absent)


def test_the_readme_map_names_every_package():
    named = set(readme_layout_paths())
    packages = [f"{init.parent.relative_to(ROOT)}/" for init in PACKAGE.rglob("__init__.py") if init.parent != PACKAGE]
    assert not [p for p in packages if p not in named], "README.md's Layout lacks packages"


def test_code_lines_skip_comments_and_blanks():
    assert code_lines("# a comment\n\nx = 1  # why\ny = (\n    2)\n") == 3


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_are_thin(path):
    """A page lays out widgets; what it shows is computed in the core (the page/core boundary)."""
    assert code_lines(path.read_text()) <= PAGE_CODE_LINES
