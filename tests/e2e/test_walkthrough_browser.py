"""A newcomer's first hour, in a real browser (headless Chromium) on a real Airflow.

The deployment is what ``make run`` gives: the repository's ``dags/`` as shipped (the seed
example with the prompts of ``dags/iflow.defaults.yaml``, run by the offline demo agent as
``[iflow] agent_command``), plus one broken workflow file. The person opens the iflow page
before logging in, is sent to the login page and back, opens the seed example and its
docs, triggers it with the UI's button, sees it finish with real results (the agent's
answers, the test run it did), finds it on the iflow page, and reads the broken file's error
from the dashboard.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from harness import REPO_ROOT, AirflowDeployment

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SEED = "full_stack_development"
ORDER = ["analyze_requirements", "design_architecture", "implement_frontend", "implement_backend",
         "integrate_systems", "test_system"]
BROKEN = "workflow:\n  name: broken_flow\n  tasks:\n    - id: a\n      dependencies: [missing_task]\n"
DEMO = shlex.join([sys.executable, "-m", "iflow_airflow.examples.demo_agent"])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowDeployment]:
    root = tmp_path_factory.mktemp("walkthrough")
    dags = root / "dags"
    shutil.copytree(REPO_ROOT / "dags", dags)
    (dags / "teams").mkdir()
    (dags / "teams" / "broken.yaml").write_text(BROKEN)
    af = AirflowDeployment(root / "home", dags, extra_env={"AIRFLOW__IFLOW__AGENT_COMMAND": DEMO})
    try:
        af.start()
        af.client.wait_for_dag(SEED, timeout=240)
        af.client.wait_until(lambda: any(e["filename"].endswith("broken.yaml") for e in af.client.import_errors()),
                             240, "the import error of teams/broken.yaml")
        yield af
    finally:
        af.stop()


@pytest.fixture
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (apt-get install)")
    profile = tempfile.mkdtemp(prefix="iflow-walkthrough-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, timeout: float = 90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5)


def click(driver, element) -> None:
    """A real click; a script click if something (a toast, an overlay) is in the way."""
    from selenium.common.exceptions import WebDriverException

    try:
        element.click()
    except WebDriverException:
        driver.execute_script("arguments[0].click()", element)


def click_button(driver, text: str, inside: str = "") -> None:
    """Click the last visible button named ``text`` (its text or, for icon buttons, its aria-label;
    a dialog's button comes after the page's)."""
    from selenium.webdriver.common.by import By

    xpath = f"{inside}//button[normalize-space()='{text}' or @aria-label='{text}']"

    def find(d):
        found = [b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed() and b.is_enabled()]
        return found[-1] if found else False

    click(driver, wait(driver).until(find))


def page_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def log_in_from_the_iflow_page(driver, af: AirflowDeployment) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{af.base_url}/iflow/")
    wait(driver).until(lambda d: "/auth/login" in d.current_url)
    assert "next=" in driver.current_url and "Not authenticated" not in driver.page_source
    password = json.loads(af.password_file.read_text())["admin"]
    wait(driver).until(lambda d: d.find_element(By.NAME, "username")).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver).until(lambda d: d.current_url.rstrip("/").endswith("/iflow"))  # back where they were going
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"section[data-workflow='{SEED}']"))


def read_the_docs(driver, af: AirflowDeployment) -> None:
    """The DAG docs open in Airflow's modal; the plan table fits it (nothing cut off)."""
    driver.get(f"{af.base_url}/dags/{SEED}")
    click_button(driver, "Dag Docs")
    table = wait(driver).until(lambda d: next((t for t in d.find_elements("css selector", "[role=dialog] table")
                                               if t.is_displayed()), False))
    assert "analyze_requirements" in table.text and "prompt · 3 retries · timeout 300s" in table.text
    fits = driver.execute_script(
        "const t = arguments[0]; const box = t.closest('[role=dialog]').getBoundingClientRect();"
        "const r = t.getBoundingClientRect(); return r.right <= box.right + 1 && t.scrollWidth <= t.clientWidth + 1",
        table)
    assert fits, "the plan table is wider than the docs modal"
    driver.find_element("tag name", "body").send_keys("\ue00c")  # Escape closes the modal


def trigger_from_the_ui(driver, af: AirflowDeployment) -> str:
    before = {r["dag_run_id"] for r in af.client.runs(SEED)}
    driver.get(f"{af.base_url}/dags/{SEED}")
    click_button(driver, "Trigger")
    wait(driver).until(lambda d: d.find_elements("css selector", "[role=dialog]"))
    click_button(driver, "Trigger", inside="//*[@role='dialog']")
    new = af.client.wait_until(lambda: [r["dag_run_id"] for r in af.client.runs(SEED)
                                        if r["dag_run_id"] not in before], 60, "the run the button triggered")
    return new[0]


def see_the_results(driver, af: AirflowDeployment, run_id: str) -> None:
    assert af.client.wait_for_run(SEED, run_id, timeout=600) == "success"
    driver.get(f"{af.base_url}/dags/{SEED}/runs/{quote(run_id, safe='')}/tasks/test_system/xcom")
    wait(driver, 120).until(lambda d: "tests: 5 passed" in page_text(d))
    assert "[demo agent]" in page_text(driver)


def find_it_on_the_iflow_page(driver, af: AirflowDeployment, run_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{af.base_url}/iflow/")
    card = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, f"section[data-workflow='{SEED}']"))
    run = card.find_element(By.CSS_SELECTOR, f".run[data-run-id='{run_id}']")
    assert "6/6 tasks done (100%)" in run.text
    bars = card.find_elements(By.CSS_SELECTOR, "svg.iflow-timeline g.bar")
    assert [b.get_attribute("data-task") for b in bars] == ORDER
    assert {b.get_attribute("data-state") for b in bars} == {"success"}
    assert "tasks/min" in card.text or " in " in card.text  # throughput as a rate or as "n tasks in t"


def read_the_broken_files_error(driver, af: AirflowDeployment) -> None:
    """The dashboard's "Dag Import Error" badge, then the file, then its located problem.

    The badge is reloaded for until it shows: a broken file's error is dropped at each bundle
    refresh and comes back at the loader's next parse (README, "Limits").
    """
    from selenium.webdriver.common.by import By

    def badge(d):
        d.get(f"{af.base_url}/")
        try:
            return wait(d, 15).until(lambda d2: next((e for e in d2.find_elements(
                By.XPATH, "//*[contains(text(), 'Dag Import Error')]") if e.is_displayed()), False))
        except Exception:
            return False

    label = wait(driver, 180).until(badge)
    click(driver, label.find_element(By.XPATH, "./ancestor::button[1]"))
    entry = wait(driver).until(lambda d: next((e for e in d.find_elements(
        By.XPATH, "//*[@role='dialog']//*[normalize-space(text())='teams/broken.yaml']") if e.is_displayed()), False))
    click(driver, entry)
    wait(driver).until(lambda d: "unknown task id 'missing_task'" in page_text(d))
    assert "teams/broken.yaml:5:22: workflow.tasks[0].dependencies[0]" in page_text(driver)


def test_a_newcomers_walkthrough(deployment: AirflowDeployment, browser, tmp_path: Path) -> None:
    log_in_from_the_iflow_page(browser, deployment)
    read_the_docs(browser, deployment)
    run_id = trigger_from_the_ui(browser, deployment)
    see_the_results(browser, deployment, run_id)
    find_it_on_the_iflow_page(browser, deployment, run_id)
    read_the_broken_files_error(browser, deployment)
    # the agent really wrote the application into the run's workspace, and its tests ran
    workspace = deployment.home / "iflow-workspaces" / SEED
    (folder,) = list(workspace.iterdir())
    assert (folder / "tests" / "test_app.py").is_file() and (folder / "backend" / "service.py").is_file()
