"""The HTML view in a real browser: headless Debian Chromium driven by selenium, on a real tree.

The tree comes from the real pipeline with smollm2-135m: ``prm-fire branch`` (both methods) for one
response, the API for a second response carrying per-step PRM scores (set by hand: the scores are
the input under test here, not a scorer's output) cut at its first error, and a third response whose
first step holds ``</script><script>alert(1)</script>``.

Marked ``browser`` (deselected by default): run ``bash .ci/browser.sh`` or ``python -m pytest -m browser``.
Chromium and ChromeDriver are Debian's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``); selenium is
given the driver's path, so Selenium Manager never runs (nothing is downloaded). With
``PRM_FIRE_VIEW_SCREENSHOT=docs/tree-view.png`` the screenshot test also saves its picture there.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from prm_fire import SamplingConfig, branch, build_prefix, grade, load_builtin, make_generator
from prm_app.cli import main
from prm_fire.tree import add_branch_set, add_response, branches_of, load_tree
from prm_fire.view import visible_token, write_html

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH = 1200
PROBLEM = load_builtin()[0]  # gold answer 8
WRONG = ("The baker makes 4 * 9 = 36 muffins.\nAfter selling 23 she has 36 - 23 = 15 muffins.\n"
         "After giving 5 to the neighbor she has 15 - 5 = 10 muffins.\nThe answer is \\boxed{10}")
EVIL = "</script><script>alert(1)</script>"
EVIL_RESPONSE = f"We count {EVIL} & <!-- the trays.\nSo 4 * 9 = 36 muffins.\nThe answer is \\boxed{{8}}"
RECORD_ALERTS = "window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """r0 from `prm-fire branch`; r1 with PRM scores, branched at its first error; r2 with a script."""
    folder = tmp_path_factory.mktemp("view-tree")
    cli_args = ["branch", "--response", PROBLEM.solution, "--point", "line3", "--n", "4",
                "--max-new-tokens", "48", "--out", str(folder / "cli.json")]
    assert main(cli_args) == 0
    tree = load_tree(folder / "cli.json")
    generator = make_generator("hf", "smollm2-135m")
    r1 = add_response(tree, WRONG, origin="given", grade=grade(WRONG, PROBLEM.answer), prm="hand-set",
                      step_scores=[0.96, 0.07, 0.58, 0.41], first_error_index=1)
    cut = build_prefix(WRONG, "prm", first_error_index=1, problem_id=PROBLEM.id)
    for method in ("fire", "regular"):
        sampling = SamplingConfig(method=method, max_new_tokens=48)
        add_branch_set(tree, r1, branch(PROBLEM, cut, n=4, sampling=sampling, generator=generator))
    r2 = add_response(tree, EVIL_RESPONSE, origin="given", grade=grade(EVIL_RESPONSE, PROBLEM.answer))
    evil_cut = build_prefix(EVIL_RESPONSE, "line2", problem_id=PROBLEM.id)
    sampling = SamplingConfig(method="fire", max_new_tokens=48)
    add_branch_set(tree, r2, branch(PROBLEM, evil_cut, n=2, sampling=sampling, generator=generator))
    return tree


@pytest.fixture(scope="module")
def page(tree, tmp_path_factory) -> str:
    return write_html(tree, tmp_path_factory.mktemp("view-page") / "tree.html").as_uri()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"headless Chromium absent ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install chromium chromium-driver, or run .ci/browser.sh")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium absent: pip install 'prm-fire[browser]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", f"--window-size={WIDTH},1000"]:
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_ALERTS})
    yield chrome
    chrome.quit()


def _prefix_ids(tree) -> list[str]:
    return [n for n in tree if tree.nodes[n]["data"].kind == "prefix"]


def test_clicking_a_prefix_node_shows_its_branches_and_hot_first_tokens(driver, page, tree):
    from selenium.webdriver.common.by import By

    driver.get(page)
    assert _prefix_ids(tree) == ["r0/line3", "r1/prm", "r2/line2"]
    for prefix_id in _prefix_ids(tree):
        node = driver.find_element(By.CSS_SELECTOR, f'details.prefix[data-node="{prefix_id}"]')
        branches = node.find_elements(By.CSS_SELECTOR, "details.branch")
        assert node.get_attribute("open") is None and not any(b.is_displayed() for b in branches)
        node.find_element(By.TAG_NAME, "summary").click()
        assert node.get_attribute("open") is not None and all(b.is_displayed() for b in branches)
        assert len(branches) == tree.out_degree(prefix_id) > 0
        for method in ("fire", "regular"):
            expected = branches_of(tree, prefix_id, method)
            marks = node.find_elements(By.CSS_SELECTOR, f'details.branch[data-method="{method}"] > summary mark.first-token')
            assert [m.get_attribute("data-token") for m in marks] == [b.first_token for b in expected]
            assert [m.text for m in marks] == [visible_token(b.first_token) for b in expected]
            assert all(m.is_displayed() for m in marks)
    assert driver.execute_script("return window.__alerts") == []


def test_script_inside_a_response_renders_as_text(driver, page, tree):
    from selenium.webdriver.common.by import By

    driver.get(page)
    assert driver.execute_script("return window.__alerts") == []
    assert driver.execute_script("return document.scripts.length") == 2  # the page's data and its own JS
    step = driver.find_element(By.CSS_SELECTOR, 'details.response[data-node="r2"] ol.own-steps li.step')
    assert EVIL in step.text and "<!-- the trays" in step.text
    data = driver.execute_script("return JSON.parse(document.getElementById('prm-fire-tree').textContent)")
    texts = {n["id"]: n["data"].get("text") for n in data["nodes"]}
    assert texts["r2"] == EVIL_RESPONSE == tree.nodes["r2"]["data"].text


def test_screenshot_of_the_expanded_tree_is_not_blank(driver, page, tmp_path):
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By

    driver.get(page)
    driver.find_element(By.ID, "expand-all").click()
    assert driver.execute_script("return document.querySelectorAll('details:not([open])').length") == 0
    # the docs' picture: the scored response first, one open branch per method, the rest as summary rows
    driver.execute_script("""
      document.querySelector('details.response[data-node="r0"]').open = false;
      document.querySelectorAll('details.branch').forEach(function (d) { d.open = d.dataset.index === '0'; });
    """)
    opened = driver.execute_script("return document.querySelectorAll('details[open]').length")
    assert opened >= 5
    height = min(driver.execute_script("return document.documentElement.scrollHeight"), 1500)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
    import base64

    png = base64.b64decode(shot["data"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (WIDTH, height)
        rgb = image.convert("RGB")
    assert ImageStat.Stat(rgb.convert("L")).stddev[0] > 20  # text and colours, not one flat fill
    colours = {c for _, c in rgb.getcolors(maxcolors=WIDTH * height)}
    assert len(colours) > 100
    assert (255, 216, 168) in colours  # #ffd8a8: a FIRE branch's highlighted hot first token is on screen
    path = tmp_path / "tree-view.png"
    path.write_bytes(png)
    if os.environ.get("PRM_FIRE_VIEW_SCREENSHOT"):
        shutil.copyfile(path, os.environ["PRM_FIRE_VIEW_SCREENSHOT"])
