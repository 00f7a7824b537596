"""``fmbench leaderboard site``: the static web leaderboard, built from the shipped leaderboards and docs and checked
in a real headless browser (Debian's chromium via chromium-driver and selenium; skipped, saying why, where none
can be installed)."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from fmbench.browser import SHOTS, chromium, console_errors, missing_browser, screenshots
from fmbench.leaderboard import default_dir, ranked_rows, scan
from fmbench.registry import list_tasks
from fmbench.site import build_site, page_name

TASK = "fmbench/ComposeDirect-v0"


def _rows(html: str) -> list[str]:
    """The submission names of a task page's table, in its order."""
    return re.findall(r'<tr><td data-sort="\d+">\d+</td><td data-sort="([^"]*)">', html)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The whole site, from the shipped leaderboards plus one file that does not validate."""
    boards = tmp_path_factory.mktemp("boards") / "leaderboards"
    shutil.copytree(default_dir(), boards)
    (boards / TASK / "broken.json").write_text('{"schema_version": 1}\n')
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(out, boards)
    return out


def test_site_refuses_a_folder_it_did_not_build_and_rebuilds_its_own(fmbench_cli, tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    proc = fmbench_cli("leaderboard", "site", "--out", mine)
    assert proc.returncode == 1 and "is not a site fmbench built" in proc.stderr
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    proc = fmbench_cli("leaderboard", "render", "--out", tmp_path / "x")
    assert proc.returncode == 1 and "--out and --docs go with `leaderboard site` only" in proc.stderr


@pytest.mark.slow
def test_every_task_page_shows_exactly_its_valid_entries_and_invalid_files_as_invalid(site, ranked):
    """About 5 s: the whole site is built."""
    index = (site / "index.html").read_text()
    for tid in list_tasks():
        page = site / "tasks" / page_name(tid)
        assert f'href="tasks/{page_name(tid)}"' in index
        html = page.read_text()
        assert _rows(html) == ranked[tid], tid  # the shipped rows, ranked
    direct = (site / "tasks" / page_name(TASK)).read_text()
    assert "Invalid files (not ranked)" in direct and "broken.json" in direct
    assert "details" in direct and all(h in direct for h in scan(TASK)[0][0]["task"]["data_hash"].values())


PAGE_FACTS = """return {
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
  names: Array.from(document.querySelectorAll('tbody tr')).map(r => r.cells[1].dataset.sort)
}"""


@pytest.fixture(scope="module")
def ranked() -> dict[str, list[str]]:
    """Each task's entry names in rank order, from the shipped leaderboards."""
    return {tid: [r["name"] for r in ranked_rows(tid)] for tid in list_tasks()}


@pytest.mark.slow
@pytest.mark.skipif(missing_browser() is not None, reason=f"no headless browser: {missing_browser()}")
def test_site_in_a_headless_browser(site, ranked, tmp_path):
    """Every page loads from file:// with no console error, every link and image resolves, each task page shows the
    leaderboard's rows, sorting works; the index and a task page from http.server too. About 35 s at a load average
    of ~30 on the shared 2-core machine (chromium loading ~90 pages)."""
    pages = sorted(site.rglob("*.html"))
    with chromium() as driver:
        for page in pages:
            driver.get(page.as_uri())
            assert console_errors(driver) == [], page
            facts = driver.execute_script(PAGE_FACTS)
            for link in facts["links"]:
                url = urlparse(link)
                if url.scheme == "file":
                    assert Path(unquote(url.path)).is_file(), f"{page}: broken link {link}"
            assert facts["broken"] == [], page  # images that did not load
            if page.parent.name == "tasks":
                tid = next(t for t in ranked if page_name(t) == page.name)
                assert facts["names"] == ranked[tid], page

        driver.get((site / "tasks" / page_name("fmbench/ConceptGenH32Train1-v0")).as_uri())
        column = "return Array.from(document.querySelectorAll('tbody tr')).map(r => r.cells[%d].dataset.sort)"
        driver.find_elements("css selector", "thead th button")[1].click()  # by name, ascending
        names = driver.execute_script(column % 1)
        assert names == sorted(names) and len(names) >= 3
        driver.find_elements("css selector", "thead th button")[2].click()  # by the score, ascending then descending
        assert [float(x) for x in driver.execute_script(column % 2)] == sorted(
            float(x) for x in driver.execute_script(column % 2)
        )
        driver.find_elements("css selector", "thead th button")[2].click()
        scores = [float(x) for x in driver.execute_script(column % 2)]
        assert scores == sorted(scores, reverse=True)
        assert console_errors(driver) == []

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            for path in ("index.html", f"tasks/{page_name(TASK)}", "studies/compositional/index.html"):
                driver.get(f"{base}/{path}")
                assert console_errors(driver) == [] and driver.title
            assert driver.execute_script("return Array.from(document.images).every(i => i.naturalWidth > 0)")
        finally:
            server.shutdown()

    shots = screenshots(site, tmp_path, width=800, height=600)  # the README's screenshots, as the script writes them
    assert [p.name for p in shots] == list(SHOTS)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in shots)
