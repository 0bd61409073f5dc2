"""What an instructor sees of integrity, in chromium against a real server that grades
real uploads on the real CIFAR-10 test set: a model that memorised the test images is
flagged (its submission page, the gradebook, the dashboard), and a student who
uploaded another's weights under other layer names, as .h5, is paired with them on
"Possible copies". Screenshots: instructor-integrity.png (the flagged submission),
instructor-gradebook-flags.png and instructor-copies.png (into docs/screenshots/ with
GRADER_UPDATE_SCREENSHOTS=1, as the other browser flows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_web_browser as flows
from flask import Flask
from models import memoriser
from test_web_browser import ARGS, CHROMIUM, CIFAR10, log_in, shot

from grader import data

A = "day097-cifar10"
live = flows.live  # the same real server as the other browser flows

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium"),
    pytest.mark.skipif(
        not CIFAR10.exists(), reason="the probe needs the real CIFAR-10 test set (GRADER_CIFAR10)"
    ),
]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """alice: a lookup table of the first 300 test images, and a small CNN of her own;
    bob: her CNN's weights in a network with other layer names, saved as .h5."""
    import keras

    out = tmp_path_factory.mktemp("integrity")
    test_set = data.find_test_set(CIFAR10, None)
    memo = memoriser(test_set.images()[:300], test_set.labels[:300])

    def cnn(prefix: str, seed: int) -> Any:
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                keras.layers.Conv2D(8, 3, activation="relu", name=f"{prefix}_conv"),
                keras.layers.SeparableConv2D(16, 3, activation="relu", name=f"{prefix}_sep"),
                keras.layers.GlobalAveragePooling2D(name=f"{prefix}_pool"),
                keras.layers.Dense(10, activation="softmax", name=f"{prefix}_dense"),
            ]
        )

    files = {
        "memorised": out / "lookup.keras",
        "own": out / "my_cnn.keras",
        "copy": out / "totally_mine.h5",
    }
    memo.save(files["memorised"])
    original = cnn("alice", 1)
    original.save(files["own"])
    copy = cnn("bob", 2)
    copy.set_weights(original.get_weights())
    copy.save(files["copy"])
    return files


def _upload(page: Any, base: str, path: Path) -> str:
    """Upload as the logged-in student, wait for the grade; the submission's URL."""
    from playwright.sync_api import expect

    page.goto(f"{base}/assignments/{A}")
    page.set_input_files("#model-input", str(path))
    page.click("form.upload button[type=submit]")
    expect(page.locator("#score-value, p.big")).to_be_visible(timeout=180_000)
    return page.url


def test_instructor_sees_the_flag_and_the_copy(
    live: tuple[str, Flask], uploads: dict[str, Path]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _ = live
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        log_in(page, base, "alice")
        flagged_url = _upload(page, base, uploads["memorised"])
        expect(page.locator("#integrity")).to_have_count(0)  # action "flag": students never see it
        _upload(page, base, uploads["own"])
        page.click("button.link:has-text('Log out')")
        log_in(page, base, "bob")
        _upload(page, base, uploads["copy"])
        page.click("button.link:has-text('Log out')")

        log_in(page, base, "prof")
        page.goto(f"{base}/instructor/assignments/{A}")
        expect(page.locator("#flagged")).to_have_text("1")
        expect(page.locator("#copies-link")).to_contain_text("Possible copies (1)")
        page.goto(f"{base}/instructor/assignments/{A}/gradebook")
        expect(page.locator("#gradebook tr:has-text('alice')")).to_contain_text("flagged")
        shot(page, "instructor-gradebook-flags")
        expect(
            page.locator("#gradebook tr:has-text('bob') .badge:has-text('flagged')")
        ).to_have_count(0)
        page.goto(flagged_url)
        card = page.locator("#integrity")
        expect(card).to_contain_text("flagged for the instructor")
        expect(card).to_contain_text("100.0 %")  # the lookup's accuracy on the probe images
        expect(card).to_contain_text("memorised")
        shot(page, "instructor-integrity")

        page.goto(f"{base}/instructor/assignments/{A}/copies")
        rows = page.locator("#copy-pairs tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("identical weights")
        expect(rows.first).to_contain_text("100.0 %")
        expect(rows.first).to_contain_text("alice")
        expect(rows.first).to_contain_text("bob")
        shot(page, "instructor-copies")
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors
