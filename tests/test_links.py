"""Every relative link in README.md and docs/*.md names a file that exists and, with a
``#heading``, a heading of it: tier 1 catches a broken link without MkDocs (tier 2's
``mkdocs build --strict`` checks the site as built). A heading's anchor is accepted in
GitHub's form (where the README is read) or MkDocs' (where the pages are)."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """``text`` without code blocks and inline code, where a bracket is no link."""
    return CODE.sub("", FENCE.sub("", text))


def _anchors(text: str) -> set:
    """The anchors of each heading, as GitHub and as MkDocs (Python-Markdown's toc) make them."""
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
        github = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        ascii_ = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode()
        mkdocs = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_).strip().lower())
        anchors |= {github, mkdocs}
    return anchors


def broken_links(page: Path) -> list:
    """Each relative link of ``page`` whose file or heading does not exist, with the reason."""
    problems = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:: not this repository's
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            problems.append(f"{target}: no such file {where.relative_to(ROOT) if ROOT in where.parents else where}")
        elif anchor and where.suffix == ".md" and anchor not in _anchors(where.read_text(encoding="utf-8")):
            problems.append(f"{target}: {where.name} has no heading #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_readme_links_into_the_manual():
    """The front door leads somewhere: the index and the picture are linked and exist."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/index.md)" in text and "](docs/jupyterlab.png)" in text


def test_twin_a_broken_link_is_caught(tmp_path):
    """The check can fail: a missing file, a missing heading; code and web links are not links here."""
    (tmp_path / "other.md").write_text("# Other page\n\n## Its part: `code`\n")
    page = tmp_path / "page.md"
    page.write_text("See [a](other.md#its-part-code), [b](missing.md), [c](other.md#nope), [d](#here),\n"
                    "![e](other.md), [f](https://example.org/x.md), `[g](inline.md)`.\n\n"
                    "```\n[h](fenced.md)\n```\n\n## Here\n")
    assert broken_links(page) == [f"missing.md: no such file {tmp_path / 'missing.md'}",
                                  "other.md#nope: other.md has no heading #nope"]
