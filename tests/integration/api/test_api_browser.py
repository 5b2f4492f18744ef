"""The browser form in real Chromium (Playwright): fill, submit without a reload, read class and version."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mlstack.config import REPO_ROOT
from tests.support.browser import chromium_page
from tests.support.pipeline import TrainedRegistry
from tests.support.services import ApiProcess, run_api, served_version

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def form_api(
    trained_registry: TrainedRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    with run_api(trained_registry.config(), tmp_path_factory.mktemp("form-api")) as api:
        yield api


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    with chromium_page(tmp_path / "chromium-profile") as page:  # a fresh user data dir per test
        yield page


def test_form_predicts_and_shows_class_and_model_version(form_api: ApiProcess, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    version = served_version(form_api.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(form_api.url) else external.append(r.url))

    page.goto(form_api.url + "/")
    fields = page.locator(".field input")
    expect(fields.first).to_be_visible(timeout=15_000)
    schema = requests.get(f"{form_api.url}/schema", timeout=5).json()
    schema_names = [f["name"] for f in schema["features"]]
    assert fields.count() == len(schema_names)
    for name in schema_names:  # one labelled field per feature, pre-filled with the typical value
        field = page.get_by_label(name, exact=True)
        assert field.input_value() != ""
        assert field.get_attribute("min") is not None and field.get_attribute("max") is not None
    expect(page.locator("#model-line")).to_contain_text(f"version {version}")

    page.get_by_label("proline", exact=True).fill("1100")
    page.evaluate("window.__noReload = true")
    page.get_by_role("button", name="Predict").click()
    result = page.locator("#result")
    expect(result).to_be_visible(timeout=10_000)
    instance = {f["name"]: f["typical"] for f in schema["features"]} | {"proline": 1100.0}
    expected = requests.post(f"{form_api.url}/predict", json={"instances": [instance]}, timeout=5).json()
    expect(page.locator("#result-class")).to_have_text(expected["predictions"][0]["class_name"])
    expect(page.locator("#result-model")).to_contain_text(f"version {version}")
    assert page.locator("#result-probabilities tbody tr").count() == 3
    assert page.evaluate("window.__noReload") is True  # submitted with fetch, the page was not reloaded

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-form-prediction.png"), full_page=True)

    # A readable error: the server refuses a value beyond float32 and the page says which field.
    page.get_by_label("hue", exact=True).fill("1e39")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#error")).to_contain_text("instances[0].hue", timeout=10_000)
    expect(page.get_by_label("hue", exact=True)).to_have_class(re.compile(r"\bbad\b"))
    expect(result).to_be_hidden()  # no stale result next to the error
    page.screenshot(path=str(ARTIFACTS / "api-form-error.png"), full_page=True)
    assert not errors, errors
    assert not external, f"the form must not load anything from elsewhere: {external}"
