"""The shape of the house (issue 14): small rooms, thin pages, short functions.

Limits from the redesign: no module in explorer/ over 350 lines, no function over 60 lines,
no page over 60 code lines (blank lines and comments not counted).
"""

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES, FUNCTION_LINES, PAGE_CODE_LINES = 350, 60, 60
MODULES = sorted((ROOT / "explorer").rglob("*.py"))
PAGES = sorted((ROOT / "pages").glob("*.py"))


def code_lines(source: str) -> int:
    """Lines holding a token other than a comment or a line break."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines)


def test_code_lines_skip_comments_and_blanks():
    assert code_lines("# a comment\n\nx = 1  # why\ny = (\n    2)\n") == 3


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_small_rooms(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MODULE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES]
    assert not long


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_are_thin(path):
    assert code_lines(path.read_text()) <= PAGE_CODE_LINES
