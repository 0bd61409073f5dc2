"""The feature-map view in a real browser (Playwright on Debian's chromium, a real
server and grading worker): a student uploads the trained CIFAR-10 fixture (or, without
the test set, the Day 96 model) and sees each convolution and pooling layer of their own
model drawn as pictures with its W×H×C; the instructor sees the same on that page.
The picture goes to test-artifacts/screenshots/student-feature-maps.png, and with
GRADER_UPDATE_SCREENSHOTS=1 to docs/screenshots/ for the README."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from test_web_browser import ARGS, CHROMIUM, CIFAR10, live, log_in, pytestmark, shot
from webutil import ROOT

__all__ = ["live", "pytestmark"]  # the live-server fixture and the chromium skip, shared

FIXTURE = ROOT / "tests" / "fixtures" / "day097_cifar10.keras"


def test_feature_maps_render_for_student_and_instructor(
    live: tuple[str, Flask], tiny_model: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _ = live
    if CIFAR10.exists():
        assignment, model = "day097-cifar10", FIXTURE
        first, last = ("conv2d", "32×32×32"), ("separable_conv2d_2", "4×4×256")
    else:
        assignment, model = "day096-conv2d", tiny_model
        first, last = ("conv2d", "222×222×32"), ("conv2d_1", "220×220×64")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        log_in(page, base, "alice")
        page.goto(f"{base}/assignments/{assignment}")
        page.set_input_files("#model-input", str(model))
        page.click("form.upload button[type=submit]")
        expect(page.locator("#score-value, p.big")).to_be_visible(timeout=240_000)
        section = page.locator("#feature-maps")
        expect(section).to_be_visible()
        expect(section.locator(f"tr[data-layer='{first[0]}'] .fmap-shape")).to_contain_text(
            first[1]
        )
        expect(section.locator(f"tr[data-layer='{last[0]}'] .fmap-shape")).to_contain_text(last[1])
        # Every picture decoded (a broken data URI has no natural width).
        images = section.locator("img")
        assert images.count() >= 6
        assert page.evaluate(
            "[...document.querySelectorAll('#feature-maps img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        section.scroll_into_view_if_needed()
        rows = section_rows(page)
        assert rows == (9 if CIFAR10.exists() else 2)
        shot_section(page, section)
        feedback_url = page.url
        page.click("button.link:has-text('Log out')")

        log_in(page, base, "prof")
        page.goto(feedback_url)
        expect(page.locator("#feature-maps tr[data-layer]").first).to_be_visible()
        assert section_rows(page) == rows
        assert not errors, errors
        browser.close()


def section_rows(page) -> int:
    return page.locator("#feature-maps tbody tr[data-layer]").count()


def shot_section(page, section) -> None:
    """The section alone, at its full height."""
    box = section.bounding_box()
    assert box is not None and box["height"] > 100
    page.set_viewport_size({"width": 1200, "height": int(box["height"]) + 40})
    section.scroll_into_view_if_needed()
    shot(_Clip(page, section), "student-feature-maps")


class _Clip:
    """Makes ``shot`` take a picture of one element instead of the page."""

    def __init__(self, page, element) -> None:
        self.page, self.element = page, element

    def screenshot(self, path: str, full_page: bool = True) -> None:
        self.element.screenshot(path=path)
