"""The playground page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) against real `mda serve` processes: the form is filled, Predict pressed,
and the numbers the page shows compared with the model's own. A screenshot of each page is
kept in test-artifacts/."""

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.pipeline import Pipeline

from tests.conftest import PEOPLE_INPUTS, ServerProcess, serving_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
Start = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them (apt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1100,1400", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def write_config(tmp_path: Path, artifact: Any, name: str, **config: Any) -> Path:
    import joblib

    path = tmp_path / f"{name}.joblib"
    joblib.dump(artifact, path)
    body = serving_config(path, name=name, **config)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return tmp_path / f"{name}.yaml"


def open_page(driver: Any, url: str) -> None:
    """Load the page with the browser's network log started afresh."""
    driver.get_log("performance")
    driver.get(url)


def wait_for(driver: Any, css: str, timeout: float = 20) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def fill(driver: Any, values: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    for field, value in values.items():
        element = driver.find_element(By.ID, field)
        if element.get_attribute("type") == "checkbox":
            if element.is_selected() != bool(value):
                element.click()
        else:
            element.clear()
            element.send_keys(str(value))


def press_predict(driver: Any) -> Any:
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('output').replaceChildren()")
    driver.find_element(By.ID, "predict").click()
    return wait_for(driver, "#output .result, #output .error")


def shown_probabilities(driver: Any, row: int = 0) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    lines = driver.find_elements(By.CSS_SELECTOR, f'.result[data-row="{row}"] .bar-row')
    return {
        line.get_attribute("data-class"): float(
            line.find_element(By.CSS_SELECTOR, ".num").get_attribute("data-value")
        )
        for line in lines
    }


def requests_left_for_other_hosts(driver: Any, origin: str) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls, "the browser's network log is empty"
    return [u for u in urls if not u.startswith(origin) and not u.startswith(("data:", "about:"))]


def keep_screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"playground-{name}.png"))


def test_a_numeric_classifier_shows_its_own_probabilities(
    browser: Any, start_server: Start, tmp_path: Path, iris_pipeline: Pipeline
) -> None:
    example = [6.7, 3.0, 5.2, 2.3]
    config = write_config(tmp_path, iris_pipeline, "iris", job="classification", input_size=4)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "examples": [example]}))
    server = start_server(config)
    open_page(browser, server.url + "/")
    wait_for(browser, "#field-3")
    row = [5.1, 3.5, 1.4, 0.2]
    fill(browser, {f"field-{i}": v for i, v in enumerate(row)})
    press_predict(browser)
    expected = iris_pipeline.predict_proba(np.array([row]))[0]
    shown = shown_probabilities(browser)
    ranked = [c for _, c in sorted(zip(-expected, iris_pipeline.classes_, strict=True))]
    assert list(shown) == ranked, "most likely first"
    for label, p in zip(iris_pipeline.classes_, expected, strict=True):
        assert shown[label] == pytest.approx(p, abs=1e-12)
    from selenium.webdriver.common.by import By

    assert "curl -s " + server.url + "/predict" in browser.find_element(By.ID, "curl").text
    assert "Version" in browser.find_element(By.ID, "answered-by").text
    browser.find_element(By.XPATH, "//button[text()='Example 1']").click()
    press_predict(browser)
    expected = iris_pipeline.predict_proba(np.array([example]))[0]
    assert shown_probabilities(browser)[iris_pipeline.classes_[2]] == pytest.approx(expected[2])
    keep_screenshot(browser, "iris")
    assert requests_left_for_other_hosts(browser, server.url) == []


def test_a_dataframe_pipeline_with_a_string_column_and_a_bad_value(
    browser: Any, start_server: Start, tmp_path: Path, mixed_pipeline: Pipeline
) -> None:
    from selenium.webdriver.common.by import By

    config = write_config(tmp_path, mixed_pipeline, "churn", job="classification",
                          inputs=PEOPLE_INPUTS)  # fmt: skip
    server = start_server(config)
    open_page(browser, server.url + "/")
    wait_for(browser, "#field-3")
    labels = browser.execute_script(
        "return [...document.querySelectorAll('input, textarea')].map(i => "
        "document.querySelector('label[for=\"' + i.id + '\"]') ? i.id : 'unlabelled ' + i.id)"
    )
    assert all(not label.startswith("unlabelled") for label in labels), labels
    assert browser.find_element(By.ID, "field-3").get_attribute("type") == "checkbox"
    record = {"age": 52, "income": 61000.5, "city": "Paris", "member": True}
    fill(browser, {f"field-{i}": record[spec["name"]] for i, spec in enumerate(PEOPLE_INPUTS)})
    press_predict(browser)
    expected = mixed_pipeline.predict_proba(pd.DataFrame([record]))[0]
    shown = shown_probabilities(browser)
    for label, p in zip(mixed_pipeline.classes_, expected, strict=True):
        assert shown[label] == pytest.approx(p, abs=1e-12)
    keep_screenshot(browser, "dataframe")
    fill(browser, {"field-0": "1e30"})
    press_predict(browser)
    error = browser.find_element(By.ID, "error").text
    assert "422" in error and "row 0, column 'age'" in error
    assert "column 'age'" in browser.find_element(By.ID, "field-0-error").text
    assert browser.find_element(By.ID, "field-0").get_attribute("aria-invalid") == "true"
    keep_screenshot(browser, "dataframe-refused")


def test_a_regressor_shows_its_value_and_works_from_the_keyboard(
    browser: Any, start_server: Start, tmp_path: Path, gb_regressor: Any, diabetes: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    config = write_config(tmp_path, gb_regressor, "diabetes", job="regression", input_size=10)
    server = start_server(config, MDA_ROOT_PATH="/diabetes-regressor")
    row = diabetes[0][7]
    open_page(
        browser, server.url + "/diabetes-regressor"
    )  # under the prefix, without a final slash
    wait_for(browser, "#field-9")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for value in row:  # keyboard only: tab from field to field, type, Enter submits
        active = browser.switch_to.active_element
        while active.get_attribute("id") is None or not active.get_attribute("id").startswith(
            "field-"
        ):
            active.send_keys(Keys.TAB)
            active = browser.switch_to.active_element
        active.send_keys(repr(float(value)))
        active.send_keys(Keys.TAB)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    value = wait_for(browser, "#output .regression").get_attribute("data-value")
    assert float(value) == pytest.approx(gb_regressor.predict(np.array([row]))[0], rel=1e-12)
    keep_screenshot(browser, "regressor-under-prefix")
    assert requests_left_for_other_hosts(browser, server.url) == []


def test_a_text_model_takes_one_text_a_line(
    browser: Any, start_server: Start, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    from selenium.webdriver.common.by import By

    from tests.text_models import build_text_classifier, forward

    folder = build_text_classifier(tmp_path / "sentiment")
    config = tmp_path / "sentiment.yaml"
    config.write_text(yaml.safe_dump({
        "name": "sentiment", "modelType": "transformers", "job": "classification",
        "model": {"method": "LOCAL", "path": str(folder)},
        "examples": ["a great film", "hated every minute"],
    }))  # fmt: skip
    server = start_server(config)
    open_page(browser, server.url + "/")
    area = wait_for(browser, "textarea#field-0")
    texts = ["loved it", "a dull and slow story"]
    area.send_keys("\n".join(texts))
    press_predict(browser)
    logits = forward(folder, texts)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for row, probabilities in enumerate(expected):
        shown = shown_probabilities(browser, row)
        assert shown["negative"] == pytest.approx(probabilities[0], abs=1e-5)
        assert shown["positive"] == pytest.approx(probabilities[1], abs=1e-5)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#examples button")) == 2
    keep_screenshot(browser, "text")


def test_with_tokens_the_page_asks_for_one_and_keeps_it_in_memory(
    browser: Any, start_server: Start, tmp_path: Path, iris_pipeline: Pipeline
) -> None:
    from selenium.webdriver.common.by import By

    tokens = tmp_path / "tokens"
    tokens.write_text("page-token-1\n")
    config = write_config(tmp_path, iris_pipeline, "iris", job="classification", input_size=4)
    server = start_server(config, MDA_API_TOKENS_FILE=str(tokens))
    open_page(browser, server.url + "/")
    field = wait_for(browser, "#token-section:not([hidden]) #token")
    assert field.get_attribute("type") == "password"
    field.send_keys("page-token-1")
    browser.find_element(By.ID, "token-use").click()
    wait_for(browser, "#field-3")
    fill(browser, {f"field-{i}": v for i, v in enumerate([5.1, 3.5, 1.4, 0.2])})
    press_predict(browser)
    assert shown_probabilities(browser)
    stored = browser.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]"
    )
    assert stored == [0, 0, ""]


def test_the_playground_can_be_turned_off(
    start_server: Start, tmp_path: Path, iris_pipeline: Pipeline
) -> None:
    config = write_config(tmp_path, iris_pipeline, "iris", job="classification", input_size=4)
    server = start_server(config, MDA_PLAYGROUND="false")
    assert httpx.get(server.url + "/").status_code == 404
    assert httpx.post(f"{server.url}/predict", json=[[5.1, 3.5, 1.4, 0.2]]).status_code == 200
