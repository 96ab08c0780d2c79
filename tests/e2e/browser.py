"""Headless Chromium for the browser tests (marker ``browser``): start it, log in to Airflow."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def chrome(user_data_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1800", f"--user-data-dir={user_data_dir}"):
        opts.add_argument(flag)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver_path), options=opts)


@contextmanager
def browser() -> Iterator[Any]:
    """A fresh headless Chromium with its own profile, quit and removed afterwards."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (apt-get install)")
    profile = tempfile.mkdtemp(prefix="iflow-chromium-")
    driver = chrome(profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def login(driver: Any, af: Any, timeout: float = 60) -> None:
    """Log in as ``admin`` through Airflow's login form; returns once the session cookie is set."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    password = json.loads(af.password_file.read_text())["admin"]
    wait = WebDriverWait(driver, timeout)
    driver.get(f"{af.base_url}/auth/login")
    wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.get_cookie("_token") is not None)
