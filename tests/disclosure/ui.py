"""Selenium helpers shared by the browser tests of the public site."""

from __future__ import annotations

from typing import Any


def wait_for(browser: Any, css: str, timeout: float = 30) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def click_and_load(browser: Any, element: Any, timeout: float = 90) -> None:
    """Click, then wait until the browser has left the page (a form post and its redirect)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def left_page(_: Any) -> bool:
        # Chromium sometimes answers mid-navigation with a generic inspector error
        # ("Node with given id does not belong to the document") instead of a
        # stale-element error; either means the old page is gone.
        try:
            page.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(browser, timeout).until(left_page)


def submit(browser: Any, action: str) -> None:
    """Submit the form posting to ``action`` with its submit button, and wait for the answer."""
    from selenium.webdriver.common.by import By

    click_and_load(
        browser,
        browser.find_element(By.CSS_SELECTOR, f'form[action="{action}"] button[type=submit]'),
    )


def fill(browser: Any, field_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    el = browser.find_element(By.ID, field_id)
    el.clear()
    el.send_keys(value)


def choose(browser: Any, field_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, field_id)).select_by_value(value)


def console_problems(browser: Any) -> list[str]:
    """Severe console entries (CSP violations, script errors) since the last call."""
    try:
        entries = browser.get_log("browser")
    except Exception:  # not every driver exposes the log
        return []
    # A form re-rendered with its error answers 4xx on purpose; that is not a page fault.
    return [
        e["message"]
        for e in entries
        if e.get("level") == "SEVERE"
        and "the server responded with a status of 4" not in e["message"]
    ]
