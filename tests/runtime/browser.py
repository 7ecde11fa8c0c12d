"""
A person in the Airflow UI: Debian's Chromium driven by Playwright (the system browser, never
a downloaded one). Screenshots of each step go to the test's own folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise AssertionError("Debian's chromium is not installed: apt-get install -y chromium (scripts/test.sh does it)")
    return path


@dataclass
class AirflowPage:
    page: Any
    base_url: str
    shots: Path
    after_text: str = ""  # the page after the last click, toasts included

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, user: str, password: str) -> None:
        """The simple auth manager's login form, filled in as a person does."""
        self.page.goto(f"{self.base_url}/")
        self.page.get_by_label("Username").fill(user)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)

    def trigger(self, dag_id: str) -> str:
        """Press Trigger on the DAG's page and in its dialog; returns the new run's id."""
        self.page.goto(f"{self.base_url}/dags/{dag_id}")
        self.page.get_by_role("button", name="Trigger").first.click()
        self.page.get_by_role("dialog").get_by_role("button", name="Trigger").click()
        self.page.wait_for_url(lambda url: f"/dags/{dag_id}/runs/" in url, timeout=30_000)
        self.shot(f"triggered-{dag_id}")
        return unquote(self.page.url.split("/runs/", 1)[1].split("/", 1)[0].split("?", 1)[0])

    def open_required_action(self, dag_id: str, run_id: str, task_id: str = "approve") -> str:
        """The run's Required Action page; returns its text once the form is there."""
        self.page.goto(f"{self.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/required_actions")
        self.page.get_by_text("Gate:").first.wait_for(timeout=30_000)
        self.page.wait_for_timeout(500)
        return str(self.page.inner_text("body"))

    def approve(self, dag_id: str, run_id: str, *, expect: str, reason: str | None = None,
                task_id: str = "approve", shot: str = "") -> str:
        """
        Open the run's Required Action, check it names ``expect``, type ``reason`` in the form's
        Reason field, click Approve; returns the page text. Whether the answer was accepted is for
        the caller to check (the task's state, the registry).
        """
        text = self.open_required_action(dag_id, run_id, task_id)
        self.shot(f"required-action{shot}")
        assert expect in text, text[:3000]
        if reason is not None:
            # The form's field: the input in the row labelled "Reason" (Airflow's form ties no <label> to it).
            label = self.page.get_by_text("Reason", exact=True)
            label.locator("xpath=ancestor::*[.//input or .//textarea][1]").locator("input, textarea").first.fill(reason)
        button = self.page.get_by_role("button", name="Approve")
        button.wait_for(timeout=30_000)
        if button.is_enabled():
            button.click()
        self.page.wait_for_timeout(1500)
        self.after_text = str(self.page.inner_text("body"))
        self.shot(f"after-approve{shot}")
        return text


@contextmanager
def ui(base_url: str, password: str, shots: Path, user: str = "admin") -> Iterator[AirflowPage]:
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = AirflowPage(browser.new_page(viewport={"width": 1400, "height": 1000}), base_url, shots)
            page.login(user, password)
            yield page
        finally:
            browser.close()
