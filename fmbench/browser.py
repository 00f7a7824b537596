"""A headless Chromium for checking and photographing the web leaderboard (``fmbench leaderboard site``).

It is Debian's ``chromium`` driven through Debian's ``chromium-driver`` by selenium (the ``dev`` extra;
``make setup`` installs both packages when ``apt-get`` is there). Nothing is downloaded: both
executables must be on ``PATH``.

``python -m fmbench.browser --out docs/platform`` builds the site from the checkout's leaderboards and
writes the README's screenshots (:func:`screenshots`).

Example:
    >>> missing_browser() is None or missing_browser().startswith("no ")
    True
    >>> with chromium() as driver:  # doctest: +SKIP
    ...     driver.get("file:///tmp/site/index.html")
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fmbench.errors import FmbenchError

BROWSERS = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


def missing_browser() -> str | None:
    """Why no headless browser can run here (one line), or ``None`` when Chromium, its driver and selenium are."""
    if not any(shutil.which(b) for b in BROWSERS):
        return "no chromium on PATH (Debian: apt-get install chromium chromium-driver; `make setup` does it)"
    if not shutil.which(DRIVER):
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver; `make setup` does it)"
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "no selenium (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium (a selenium ``WebDriver``) that keeps the console log; quit on exit."""
    why = missing_browser()
    if why:
        raise FmbenchError(why)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The console messages of level ``SEVERE`` (errors, failed loads) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


SHOTS = {
    "site-index.png": "index.html",
    "site-task.png": "tasks/fmbench__ConceptGenH32Train1-v0.html",
    "site-study.png": "studies/compositional/index.html",
}
"""The screenshots the README shows: file name -> page of the site."""


def screenshots(site: Path, out: Path, width: int = 1280, height: int = 900) -> list[Path]:
    """Photograph the pages of :data:`SHOTS` of a built site into ``out`` (PNG, ``width`` x ``height``; the first
    entry's details opened)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium(width, height) as driver:
        for name, page in SHOTS.items():
            driver.get((site / page).as_uri())
            errors = console_errors(driver)
            if errors:
                raise FmbenchError(f"{page}: console errors: {errors[0]}")
            driver.execute_script("var d = document.querySelector('details'); if (d) { d.open = true; }")
            driver.save_screenshot(str(out / name))
            written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> None:
    from fmbench.site import build_site

    p = argparse.ArgumentParser(description="Build the web leaderboard and write the README's screenshots.")
    p.add_argument("--out", default="docs/platform", help="folder of the PNG files (default docs/platform)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        build_site(Path(tmp) / "site")
        for path in screenshots(Path(tmp) / "site", Path(args.out)):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
