"""The README's table of registered items matches the registry, and every relative link in the docs resolves."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from fmbench import registry
from fmbench.cli import main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").rglob("*.md"))]
TABLE = re.compile(r"<!-- registry-table:start -->\n(.*?)<!-- registry-table:end -->", re.S)
FENCE = re.compile(r"^```.*?^```$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture
def builtin_registry(monkeypatch):
    """The registry of the built-in specs only (no $FMBENCH_SPEC_PATH, no installed study distributions)."""
    monkeypatch.delenv(registry.SPEC_PATH_ENV, raising=False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


def test_the_readme_table_is_the_registry(builtin_registry, capsys):
    found = TABLE.findall(README.read_text(encoding="utf-8"))
    assert len(found) == 1, "README.md needs one table between <!-- registry-table:start/end --> markers"
    assert main(["list", "--markdown"]) == 0
    expected = capsys.readouterr().out
    diff = "\n".join(
        difflib.unified_diff(
            found[0].splitlines(), expected.splitlines(), "README.md", "fmbench list --markdown", lineterm=""
        )
    )
    assert found[0] == expected, (
        f"README.md's table is stale: paste `fmbench list --markdown` between its markers\n{diff}"
    )


def relative_links(path: Path) -> list[str]:
    """Targets of the Markdown links and images of ``path`` outside code blocks, except URLs and in-page anchors."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_links_find_relative_targets(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```\n[not a link](nowhere.md)\n```\n[a](x.md#part) [b](https://example.org) ![c](d.png) [e](#top)\n",
        encoding="utf-8",
    )
    assert relative_links(page) == ["x.md#part", "d.png"]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file(page):
    broken = [t for t in relative_links(page) if not (page.parent / t.partition("#")[0]).exists()]
    assert not broken, f"{page.relative_to(REPO)} links to missing files: {broken}"


def test_the_readme_stays_short_and_links_every_study(builtin_registry):
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    studies = {Path(s.spec_file).stem for s in registry.specs()[1].values()}
    assert all(f"(docs/{s}/README.md)" in TABLE.sub("", text) for s in studies), studies
