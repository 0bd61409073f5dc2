"""Browser flows with Playwright on Debian's chromium, against a real server:
a student uploads a real model and watches it get graded; an instructor finds
it on the dashboard, regrades it, overrides the score and downloads the CSV.
Screenshots go to test-artifacts/screenshots/; with GRADER_UPDATE_SCREENSHOTS=1 they
also replace the README's pictures in docs/screenshots/."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from webutil import PASSWORD, ROOT
from werkzeug.serving import make_server

from grader.settings import Settings
from grader.web import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CIFAR10 = Path(os.environ.get("GRADER_CIFAR10") or ROOT.parent / "shared" / "data" / "cifar10")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@pytest.fixture
def live(app: Flask, app_config: dict[str, Any], db_url: str) -> Iterator[tuple[str, Flask]]:
    if db_url.startswith("postgresql"):
        pytest.skip("browser flows run once, on SQLite; every route is covered on both databases")
    settings = Settings(cifar10=CIFAR10 if CIFAR10.exists() else None)
    config = dict(
        app_config, GRADER_EXECUTOR="thread", WTF_CSRF_ENABLED=True, GRADER_SETTINGS=settings
    )
    config.pop("SERVER_NAME")
    live_app = create_app(config)
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", live_app
    server.shutdown()
    live_app.extensions["grader_executor"].wait(timeout=120)


@pytest.fixture(scope="module")
def cifar_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained CIFAR-10 CNN: fast to evaluate, and it has per-class results."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.SeparableConv2D(8, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    path = tmp_path_factory.mktemp("browser") / "cifar_cnn.keras"
    model.save(path)
    return path


def shot(page: Any, name: str, full: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    if os.environ.get("GRADER_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_student_and_instructor_flows(
    live: tuple[str, Flask], cifar_model: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _ = live
    assignment = "day097-cifar10" if CIFAR10.exists() else "day096-conv2d"
    model = cifar_model if CIFAR10.exists() else tiny_model
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            viewport={"width": 1200, "height": 800}, accept_downloads=True
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # Student: log in, see assignments, upload, watch it get graded.
        page.goto(f"{base}/login")
        shot(page, "login", full=False)
        log_in(page, base, "alice")
        expect(page.locator("h1")).to_have_text("Your assignments")
        shot(page, "student-assignments")
        page.goto(f"{base}/assignments/{assignment}")
        page.set_input_files("#model-input", str(model))
        expect(page.locator(".dz-file")).to_contain_text(model.name)
        shot(page, "student-upload")
        page.click("form.upload button[type=submit]")
        expect(page.locator("#live-status")).to_be_visible()
        # htmx polls and reloads the page once graded.
        expect(page.locator("#score-value, p.big")).to_be_visible(timeout=180_000)
        if CIFAR10.exists():
            expect(page.locator("#per-class-chart")).to_be_visible()
            expect(
                page.locator("#confusion td.heat-10, #confusion td.heat-9").first
            ).to_be_visible()
            assert page.evaluate(
                "!!window.Chart && Chart.getChart('per-class-chart') !== undefined"
            )
        expect(page.locator("table.checks")).to_be_visible()
        shot(page, "student-feedback")
        feedback_url = page.url
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone_page = phone.new_page()
        log_in(phone_page, base, "alice")
        phone_page.goto(feedback_url)
        shot(phone_page, "student-feedback-phone-top", full=False)  # the full page: first-week test
        phone.close()
        page.click("button.link:has-text('Log out')")

        # Instructor: dashboard, feedback page, regrade, override, CSV.
        log_in(page, base, "prof")
        page.goto(f"{base}/instructor/assignments/{assignment}")
        expect(page.locator("#submitted")).to_have_text("1")
        shot(page, "instructor-dashboard")
        page.goto(f"{base}/instructor/assignments/{assignment}/gradebook")
        expect(page.locator("#gradebook")).to_contain_text("alice")
        shot(page, "instructor-gradebook")
        page.goto(feedback_url)
        page.click("#regrade")
        expect(page.locator(".flash.ok")).to_contain_text("Queued for regrading")
        expect(page.locator("#score-value, p.big")).to_be_visible(timeout=180_000)
        expect(page.locator("pre.log")).to_contain_text("regrade requested by prof")
        page.fill("input[name=score]", "77")
        page.fill("textarea[name=reason]", "Late enrolment, agreed by e-mail")
        page.click("#override")
        expect(page.locator("#score-value")).to_contain_text("77")
        expect(page.locator(".instructor")).to_contain_text("Late enrolment, agreed by e-mail")
        shot(page, "instructor-feedback")
        page.goto(f"{base}/instructor/assignments/{assignment}")
        with page.expect_download() as info:
            page.click("#export-csv")
        csv_path = tmp_path / "grades.csv"
        info.value.save_as(csv_path)
        text = csv_path.read_text()
        assert text.startswith("username,") and "alice" in text and "77" in text
        page.goto(f"{base}/instructor/audit")
        expect(page.locator("#audit")).to_contain_text("override")
        shot(page, "instructor-audit")
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors
