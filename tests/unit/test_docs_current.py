"""README.md and docs/*.md speak of the product as it is: no unfilled placeholder, no ticket.

The rule, for the prose of these files (what a reader takes as the product's description):
- an unfilled placeholder is ``@WORD@`` (upper case, digits, ``_``), the templates' syntax;
- a ticket reference is "issue N" / "issues N" / "ticket N" (any case, ``#`` optional), or a
  bare "#N" not glued to a word (``ceph-container#1682`` names another project's tracker).
Code is not prose: fenced and indented code blocks, inline code spans and "double-quoted"
text (another program's output, quoted) are left out, so a doc may name the lab's template
placeholders (`@DATA_DIR@`) or quote e2fsck's "group #1".  lab/ itself is not scanned: its
compose templates use placeholders on purpose.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")
TICKET = re.compile(r"\b(?:issues?|tickets?)\s+#?\d+\b|(?<![\w-])#\d+\b", re.IGNORECASE)
_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_QUOTED = re.compile(r'"(?:[^"\n]|\n(?!\s*\n))*"')  # within a paragraph


def _blank(quote: re.Match[str]) -> str:
    return re.sub(r"[^\n]", "", quote.group(0))  # keeps the line breaks: numbers stay right


def prose(text: str) -> list[tuple[int, str]]:
    """The lines of a Markdown text with code and quotations blanked: (line number, text)."""
    kept: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced and not line.startswith(("    ", "\t")):
            kept.append((number, _CODE_SPAN.sub("``", line)))
    if not kept:
        return []
    lines = _QUOTED.sub(_blank, "\n".join(line for _, line in kept)).split("\n")
    return [(number, line) for (number, _), line in zip(kept, lines, strict=True)]


def findings(pattern: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{number}: {hit.group(0)!r}"
        for path in DOCS
        for number, line in prose(path.read_text())
        for hit in pattern.finditer(line)
    ]


def test_no_unfilled_placeholder_in_readme_or_docs() -> None:
    """No @WORD@ placeholder is left in the prose of README.md or docs/*.md (code may name
    the lab's template placeholders)."""
    assert findings(PLACEHOLDER) == []


def test_no_ticket_reference_in_readme_or_docs() -> None:
    """README.md and docs/*.md cite no ticket of our tracker ("issue 12", "#12"): the docs
    describe the product, its history lives in git."""
    assert findings(TICKET) == []


@pytest.mark.parametrize(
    ("line", "hits"),
    [
        ("About @TIER@ minutes here", ["@TIER@"]),
        ("the template's `@DATA_DIR@` is filled by the lab", []),
        ("The lease (issue 10) and Issue 11 and issues 4", ["issue 10", "Issue 11", "issues 4"]),
        ("fixed in #12, see ceph-container#1682", ["#12"]),
        ('e2fsck: "Free blocks count wrong for group #1"', []),
        ('a quote over two lines: "group\n#1 wrong", then #2', ["#2"]),
        ("    indented code: @X@ issue 3", []),
    ],
)
def test_the_rule_itself(line: str, hits: list[str]) -> None:
    """The scan flags prose and leaves code spans, indented code and quoted output alone."""
    found = [
        m.group(0)
        for _, text in prose(line)
        for p in (PLACEHOLDER, TICKET)
        for m in p.finditer(text)
    ]
    assert found == hits
