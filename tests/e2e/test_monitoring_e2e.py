"""Monitoring on a real Airflow: the iflow page and API, scheduler metrics, auto-scaling, a browser.

One deployment (dag-processor, scheduler, api-server; harness.py) serves the whole
module: Airflow's start-up is the expensive part on this machine. Its dags folder
holds the loader, the seed's example workflow as it is in the repo, and
``burst_load``: four 10 s tasks on a resource of 1 slot that may grow to 3.
StatsD metrics go to a UDP socket of the test, alerts to an http.server receiver.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import time
from collections.abc import Iterator

import httpx
import pytest
from browser import browser
from harness import REPO_ROOT, AirflowDeployment
from receivers import StatsdCollector, WebhookReceiver

EXAMPLE = "full_stack_development"
EXAMPLE_ORDER = ["analyze_requirements", "design_architecture", "implement_frontend", "implement_backend",
                 "integrate_systems", "test_system"]
LOAD = "burst_load"
POOL = "iflow_burst"
ARTIFACTS = REPO_ROOT / "artifacts"


def load_yaml(webhook: str) -> str:
    jobs = "\n".join(f"    - {{id: job{i}, resource: burst, command: 'sleep 10; echo done {i}'}}" for i in range(1, 5))
    return textwrap.dedent(f"""\
        # e2e: four 10 s tasks contend for one slot; the pool may grow to 3
        orchestration: {{retry_attempts: 0, max_concurrent_tasks: 10}}
        scheduling: {{load_threshold: 0.8, auto_scaling: true}}
        resources:
          burst: {{slots: 1, max_slots: 3, description: "e2e burst resource"}}
        workflow:
          name: {LOAD}
          alerts:
            webhook: {webhook}
            events: [resource_saturated, run_failed, task_failed]
          tasks:
        """) + jobs + "\n"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("iflow_monitoring")
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(REPO_ROOT / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    shutil.copy(REPO_ROOT / "dags" / f"{EXAMPLE}.yaml", dags / f"{EXAMPLE}.yaml")
    rx, statsd = WebhookReceiver(), StatsdCollector(contains=".iflow.")
    (dags / f"{LOAD}.yaml").write_text(load_yaml(rx.url))
    af = AirflowDeployment(root / "home", dags, extra_env={
        "AIRFLOW__IFLOW__KEEPER_INTERVAL": "1",
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    })
    try:
        af.start()
        af.client.wait_for_dag(EXAMPLE, timeout=180)
        af.client.wait_for_dag(LOAD, timeout=180)
        yield {"af": af, "rx": rx, "statsd": statsd}
    finally:
        try:
            af.stop()
        finally:
            print(f"\n[e2e monitoring] timings {({k: round(v, 1) for k, v in af.timings.items()})}")
            rx.close()
            statsd.close()


@pytest.fixture(scope="module")
def example_run(deployment) -> str:
    """One run of the seed's example, finished."""
    client = deployment["af"].client
    run_id = client.trigger(EXAMPLE)
    assert client.wait_for_run(EXAMPLE, run_id, timeout=180) == "success"
    return run_id


ENDPOINTS = ["/iflow/", "/iflow/fragment", "/iflow/api/workflows", f"/iflow/api/workflows/{EXAMPLE}",
             "/iflow/api/workflows/nope", f"/iflow/timeline/{EXAMPLE}.svg", "/iflow/static/iflow.js",
             "/iflow/static/iflow.css"]


@pytest.mark.e2e
def test_every_iflow_endpoint_needs_airflow_authentication(deployment):
    af = deployment["af"]
    with httpx.Client(base_url=af.base_url, timeout=30) as anon:
        for path in ENDPOINTS:
            assert anon.get(path).status_code == 401, path
            r = anon.get(path, headers={"Authorization": "Bearer not-a-jwt"})
            assert r.status_code == 403, path  # Airflow's answer to an invalid token
        token = af.client.login()
        for path in ENDPOINTS:
            r = anon.get(path, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == (404 if path.endswith("/nope") else 200), (path, r.text[:300])
        # the UI's cookie works the same way (that is how the framed page is authenticated)
        anon.cookies.set("_token", token)
        assert anon.get("/iflow/api/workflows").status_code == 200
    with httpx.Client(base_url=af.base_url, timeout=30) as browser_like:
        html = {"Accept": "text/html,application/xhtml+xml"}
        r = browser_like.get("/iflow/", headers=html)  # a browser without a session: to the login page
        assert r.status_code == 303 and r.headers["location"].startswith("/auth/login?next="), r.headers
        assert r.headers["location"].endswith("%2Fiflow%2F")
        assert browser_like.get("/iflow/api/workflows", headers=html).status_code == 401  # the API stays JSON
        for name in ("workflow", "defaults"):  # the schemas need no login (editors fetch them)
            schema = browser_like.get(f"/iflow/schema/{name}.json")
            assert schema.status_code == 200 and schema.json()["$id"] == f"urn:iflow-airflow:schema:{name}"
        assert browser_like.get("/iflow/schema/nope.json").status_code == 404
    plugins = af.client.get("/api/v2/plugins")["plugins"]
    iflow = next(p for p in plugins if p["name"] == "iflow")
    assert iflow["fastapi_apps"][0]["url_prefix"] == "/iflow"
    assert iflow["external_views"][0]["href"] == "/iflow/"
    assert iflow["external_views"][0]["url_route"] == "iflow"


@pytest.mark.e2e
def test_example_run_on_the_page_and_in_the_api(deployment, example_run):
    af = deployment["af"]
    client = af.client
    listing = client.get("/iflow/api/workflows")
    names = [w["name"] for w in listing["workflows"]]
    assert names == [LOAD, EXAMPLE]
    w = next(w for w in listing["workflows"] if w["name"] == EXAMPLE)
    assert w["runs"] == {"total": 1, "by_state": {"success": 1}}
    assert w["in_progress"] == []
    latest = w["latest_run"]
    assert (latest["run_id"], latest["done"], latest["total"], latest["progress"]) == (example_run, 6, 6, 1.0)
    assert w["completion_rate"] == 1.0
    assert w["planned_tasks"] == 6
    assert w["scheduling_latency"]["count"] == 6
    assert w["sync_delay"]["count"] == 5  # every task but the first has upstream tasks
    assert w["resource_wait"]["count"] == 0  # the example names no resource
    assert w["retries"] == 0
    assert 1 <= w["concurrency"] <= 2  # frontend and backend may overlap
    tl = w["timeline"]
    assert tl["run_id"] == example_run and tl["state"] == "success"
    assert [b["task_id"] for b in tl["bars"]] == EXAMPLE_ORDER
    assert {b["state"] for b in tl["bars"]} == {"success"}
    assert all(0 <= b["start"] <= b["end"] <= tl["span"] for b in tl["bars"])

    detail = client.get(f"/iflow/api/workflows/{EXAMPLE}")
    assert [r["run_id"] for r in detail["recent_runs"]] == [example_run]
    assert [t["task_id"] for t in detail["tasks"]] == EXAMPLE_ORDER
    assert detail["tasks"][5]["upstream"] == ["integrate_systems"]

    html = client.request("GET", "/iflow/").text
    assert f'data-workflow="{EXAMPLE}"' in html
    assert f'data-run-id="{example_run}" data-done="6" data-total="6"' in html
    assert "6/6 tasks done (100%)" in html
    assert html.count('class="bar" data-task=') == 6  # burst_load has not run yet: no bars
    svg = client.request("GET", f"/iflow/timeline/{EXAMPLE}.svg").text
    assert svg.startswith("<svg") and svg.count('data-state="success"') == 6

    # the scheduler's listener saw the run; its metrics went out through Airflow's StatsD logger
    sched_log = (af.log_dir / "scheduler.log").read_text(errors="replace")
    assert f"iflow event=run_running workflow={EXAMPLE} run_id={example_run}" in sched_log
    assert re.search(rf"iflow event=run_success workflow={EXAMPLE} run_id={re.escape(example_run)} "
                     r"duration_ms=[0-9.]+ tasks=6", sched_log)
    names = {ln.split(":")[0] for ln in deployment["statsd"].lines}
    for stat in ("run.running", "run.success", "run.duration", "task.queue_latency"):
        assert f"airflow.iflow.{stat}.{EXAMPLE}" in names, sorted(names)
    # the worker's listener: task metrics and one line per event in the task logs
    for stat in ("task.running", "task.success", "task.duration"):
        assert f"airflow.iflow.{stat}.{EXAMPLE}" in names, sorted(names)
    task_logs = list(af.home.glob(f"logs/dag_id={EXAMPLE}/**/task_id=test_system/attempt=1.log"))
    assert task_logs, sorted(str(p) for p in af.home.glob("logs/**/*.log"))[:20]
    text = task_logs[0].read_text(errors="replace")
    assert "iflow event=task_running workflow=full_stack_development" in text
    assert "iflow event=task_success workflow=full_stack_development" in text


@pytest.mark.e2e
def test_pool_grows_under_load_and_shrinks_back(deployment):
    af, rx = deployment["af"], deployment["rx"]
    client = af.client
    assert client.wait_until(lambda: client.pools().get(POOL) == 1, 60, f"pool {POOL} with 1 slot")
    run_id = client.trigger(LOAD)
    sizes: list[int] = []
    seen_saturated = False
    max_waiting = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        size = client.pools()[POOL]
        if not sizes or sizes[-1] != size:
            sizes.append(size)
        res = next((r for r in client.get("/iflow/api/workflows")["resources"] if r["pool"] == POOL), None)
        if res:
            seen_saturated |= res["saturated"]
            max_waiting = max(max_waiting, res["waiting"])
        state = client.dag_run(LOAD, run_id)["state"]
        if state in ("success", "failed") and size == 1:
            break
        time.sleep(0.5)
    assert state == "success", client.task_instances(LOAD, run_id)
    # one slot per tick up to max_slots, then one per tick back to the declared size
    assert sizes == [1, 2, 3, 2, 1], sizes
    assert seen_saturated and max_waiting >= 1
    sched_log = (af.log_dir / "scheduler.log").read_text(errors="replace")
    for a, b in ((1, 2), (2, 3), (3, 2), (2, 1)):
        assert f"iflow event=pool_scaled resource=burst pool={POOL} from_slots={a} to_slots={b}" in sched_log
    assert sched_log.count(f"iflow event=resource_saturated resource=burst pool={POOL}") == 1
    alerts_ = [b for b in rx.bodies if b["event"] == "resource_saturated"]
    assert len(alerts_) == 1, rx.bodies
    assert (alerts_[0]["workflow"], alerts_[0]["pool"], alerts_[0]["resource"], alerts_[0]["slots"]) == (
        LOAD, POOL, "burst", 1)
    assert alerts_[0]["waiting"] >= 1 and alerts_[0]["busy"] == 1
    gauges = [ln for ln in deployment["statsd"].lines if ln.startswith(f"airflow.iflow.pool.saturated.{POOL}:")]
    assert f"airflow.iflow.pool.saturated.{POOL}:1|g" in gauges and gauges[-1] == f"airflow.iflow.pool.saturated.{POOL}:0|g"
    tis = client.task_instances(LOAD, run_id)
    assert sorted(t["state"] for t in tis) == ["success"] * 4
    # the page's figures: resource wait was measured for the pooled tasks
    w = client.get(f"/iflow/api/workflows/{LOAD}")
    assert w["resource_wait"]["count"] == 4 and w["resource_wait"]["max"] > 5


@pytest.mark.e2e
@pytest.mark.browser
def test_browser_logs_in_and_sees_the_iflow_page(deployment, example_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    af = deployment["af"]
    password = json.loads(af.password_file.read_text())["admin"]
    with browser() as driver:
        wait = WebDriverWait(driver, 60)
        driver.get(f"{af.base_url}/iflow/")
        wait.until(lambda d: "/auth/login" in d.current_url)  # no session yet: the login page
        wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.get_cookie("_token") is not None)
        wait.until(lambda d: d.current_url.rstrip("/").endswith("/iflow"))  # and back to the page

        # the nav entry: the Airflow UI frames the page at /plugin/iflow
        driver.get(f"{af.base_url}/plugin/iflow")
        frame = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe[src*='/iflow/']")))
        assert frame.get_attribute("src").endswith("/iflow/")

        driver.get(f"{af.base_url}/iflow/")
        card = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"section[data-workflow='{EXAMPLE}']")))
        run = card.find_element(By.CSS_SELECTOR, f".run[data-run-id='{example_run}']")
        assert (run.get_attribute("data-done"), run.get_attribute("data-total")) == ("6", "6")
        assert "6/6 tasks done (100%)" in run.text
        fill = run.find_element(By.CSS_SELECTOR, ".progress .fill")
        assert fill.size["width"] > 200  # the bar is drawn full (260 px wide)
        svg = card.find_element(By.CSS_SELECTOR, "svg.iflow-timeline")
        assert svg.get_attribute("data-run-id") == example_run
        bars = svg.find_elements(By.CSS_SELECTOR, "g.bar")
        assert [b.get_attribute("data-task") for b in bars] == EXAMPLE_ORDER
        assert {b.get_attribute("data-state") for b in bars} == {"success"}
        assert all(b.find_element(By.CSS_SELECTOR, "rect").size["width"] >= 2 for b in bars)
        # the stylesheet and the script came through the same authentication
        assert driver.execute_script(
            "return getComputedStyle(document.querySelector('section.workflow')).borderTopStyle") == "solid"
        driver.execute_script("document.documentElement.removeAttribute('data-refreshed')")
        WebDriverWait(driver, 25).until(
            lambda d: d.execute_script("return document.documentElement.getAttribute('data-refreshed')"))
        ARTIFACTS.mkdir(exist_ok=True)
        driver.set_window_size(1400, max(900, driver.execute_script("return document.documentElement.scrollHeight") + 200))
        assert driver.save_screenshot(str(ARTIFACTS / "iflow-page.png"))
    assert (ARTIFACTS / "iflow-page.png").stat().st_size > 10_000
