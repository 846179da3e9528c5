"""Fixtures shared by every test package: a real headless Chromium driven by Playwright, and
venvs for copies of the project that borrow this checkout's installed packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_configure(config: pytest.Config) -> None:
    """No test writes the user's cache of parsed CSVs (backtest.bar_cache): off unless a test
    names a folder. Set here, so the commands tests start inherit it."""
    os.environ["BACKTEST_CACHE_DIR"] = "off"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium (never a downloaded one). Missing browser = failure, with the fix."""
    executable = CHROMIUM if CHROMIUM.exists() else (shutil.which("chromium") or "")
    if not executable:
        pytest.fail(
            "Chromium is not installed: run `apt-get install -y chromium` (the browser "
            "tests drive Debian's Chromium; .ci/run installs it)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageProbe:
    """A page that records console errors, page errors, dialogs and off-limits requests."""

    def __init__(self, page: object, allowed_prefixes: tuple[str, ...]) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.blocked: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.route("**/*", self._route(allowed_prefixes))

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, allowed: tuple[str, ...]):
        def handle(route: object) -> None:
            url = route.request.url
            if url.startswith(allowed):
                route.continue_()
            else:
                self.blocked.append(url)
                route.abort()

        return handle


@pytest.fixture
def page_probe(browser):
    """Factory: probe(allowed_prefixes) -> PageProbe on a fresh page (closed after the test)."""
    contexts = []

    def factory(
        allowed_prefixes: tuple[str, ...] = ("file://", "data:"),
        width: int = 1400,
        height: int = 1200,
        **context_options: object,
    ) -> PageProbe:
        context = browser.new_context(
            viewport={"width": width, "height": height}, **context_options
        )
        contexts.append(context)
        return PageProbe(context.new_page(), allowed_prefixes)

    yield factory
    for context in contexts:
        context.close()


def borrowing_venv(venv: Path) -> None:
    """A venv of the copy's own that sees this checkout's installed packages (a .pth line),
    so the guide's `python3 -m venv .venv && pip install` finds everything installed and
    changes only the copy, never the checkout's .venv, and needs no network."""
    # its own pip first: with the checkout's on the path, ensurepip would find that one and
    # put no pip in the copy's bin/
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    mine = sysconfig.get_paths()["purelib"]
    theirs = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(theirs, "checkout_packages.pth").write_text(mine + "\n")
