"""A course's first week in a real browser (Playwright, Debian's chromium), at desktop
and phone size: the instructor's per-student page and CSV export, the feedback page
without page-level sideways scrolling at 390 px, the late-upload warning, the skip link
and the favicon. Reports are stored ones (webutil.fake_report, with a layer check and a
long model), so no grading runs; tests/web/test_web_browser.py grades real files."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import test_web_browser as wb
from flask import Flask
from webutil import ASSIGNMENTS, add_submission, user_id

from grader.service.db import db
from grader.service.models import Submission
from grader.service.specs import import_spec

pytestmark = pytest.mark.skipif(not wb.CHROMIUM.exists(), reason="no /usr/bin/chromium")
live = wb.live  # the live server fixture (SQLite only)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 800}
CIFAR = "day097-cifar10"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _seed(app: Flask) -> dict[str, int]:
    """alice: a failing try, a late pass and an overridden one on CIFAR-10, with a layer
    check whose cells are dicts and a long layer table; an 8-byte file."""
    first = add_submission(app, "alice", CIFAR, status="failed", content=b"8 bytes!")
    late = add_submission(app, "alice", CIFAR, status="passed", content=b"late pass")
    with app.app_context():
        sub = db.session.get(Submission, first)
        report = dict(sub.result.report)
        conv = {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3], "strides": [1, 1],
                "padding": "valid", "output_shape": "(None, 30, 30, 32)"}  # fmt: skip
        report["checks"] = [
            {"name": "Layer 1: SeparableConv2D", "group": "architecture", "passed": False,
             "expected": {**conv, "type": "SeparableConv2D"}, "actual": conv,
             "message": "Layer type: expected SeparableConv2D, yours Conv2D ('conv2d_with_a_"
                        "rather_long_layer_name'). A separable convolution factors the kernel "
                        "into a depthwise and a pointwise step."},
            {"name": "Total parameters", "group": "parameters", "passed": False,
             "expected": "at most 1,500,000", "actual": 121642, "message": ""},
        ]  # fmt: skip
        layer = report["model"]["layers"][0]
        report["model"]["layers"] = [
            {**layer, "name": f"separable_conv2d_block_{i}_with_long_name",
             "type": "SeparableConv2D", "output_shape": [None, 32, 32, 256], "params": 33920,
             "formula": {"params": "3·3·128·1 + 128·1·256 = 33,920",
                         "output": "same, stride 1: ⌈32 / 1⌉ = 32"}}
            for i in range(6)
        ]  # fmt: skip
        report["timings"] = {"inspect": 0.05, "sandbox_start": 0.3, "import": 2.5, "load": 0.2,
                             "predict": 2.4, "score": 0.0}  # fmt: skip
        sub.result.report = report
        db.session.get(Submission, late).late_days = 2
        db.session.get(Submission, late).penalty = 0.2
        db.session.commit()
    bob = add_submission(app, "bob", CIFAR, status="failed", content=b"bob")
    with app.app_context():
        sub = db.session.get(Submission, bob)
        sub.override_score, sub.override_reason = 62.5, "=agreed by e-mail, see ticket 12"
        db.session.commit()
    return {"first": first, "late": late}


def _overflow(page: Any) -> int:
    return int(page.evaluate(OVERFLOW))


def _docs_copy(path: Path, name: str) -> None:
    if os.environ.get("GRADER_UPDATE_SCREENSHOTS") == "1":
        wb.DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, wb.DOCS / name)


def test_first_week_pages_at_desktop_and_phone_size(
    live: tuple[str, Flask], app: Flask, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _ = live
    ids = _seed(app)
    alice = user_id(app, "alice")
    # day096-conv2d with a deadline 2 days and an hour ago and 10 % per day
    deadline = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2, hours=1)).replace(microsecond=0)
    text = (ASSIGNMENTS / "day096-conv2d.yaml").read_text().split("\npolicy:")[0]
    text += f"\npolicy:\n  deadline: {deadline.isoformat()}\n  late_penalty_per_day: 0.1\n"
    with app.app_context():
        import_spec(text, "day096-conv2d.yaml")
    missing: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(wb.CHROMIUM), args=wb.ARGS)
        for size in (DESKTOP, PHONE):
            phone = size is PHONE
            context = browser.new_context(viewport=size, is_mobile=phone, accept_downloads=True)
            page = context.new_page()
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)

            # Student: the feedback page and the late warning.
            wb.log_in(page, base, "alice")
            page.goto(f"{base}/submissions/{ids['first']}")
            expect(page.locator("table.checks")).to_contain_text(
                "SeparableConv2D, 32 filters, 3×3, stride 1, valid"
            )
            expect(page.locator("#timings")).to_contain_text("starting the sandbox")
            expect(page.locator("#status-region")).to_have_attribute("aria-live", "polite")
            assert _overflow(page) <= 0, f"feedback page scrolls sideways at {size}"
            if phone:
                # The note that explains the failure is on screen, not cut off.
                note = page.locator("table.checks td[data-label=Note]").first
                box = note.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
                matrix = page.locator(".scroll.matrix")
                assert matrix.evaluate("e => getComputedStyle(e).overflowX") == "auto"
                wb.shot(page, "student-feedback-phone", full=True)
            page.keyboard.press("Tab")  # the first stop is the skip link
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"
            for path in ("/", "/submissions"):
                page.goto(base + path)
                assert _overflow(page) <= 0, f"{path} scrolls sideways at {size}"
            page.goto(f"{base}/assignments/day096-conv2d")
            warning = page.locator("#late-warning")
            expect(warning).to_contain_text("an upload now is 3 days late and loses 30.0 %")
            assert _overflow(page) <= 0
            if not phone:
                wb.shot(page, "student-upload-late")
            page.click("button.link:has-text('Log out')")

            # Instructor: gradebook -> per-student page -> a submission and back.
            wb.log_in(page, base, "prof")
            for path in (
                f"/instructor/assignments/{CIFAR}",
                "/instructor/students",
                "/instructor/audit",
                f"/instructor/assignments/{CIFAR}/gradebook",
            ):
                page.goto(base + path)
                assert _overflow(page) <= 0, f"{path} scrolls sideways at {size}"
            page.click("#gradebook a.student:has-text('alice')")
            expect(page).to_have_url(f"{base}/instructor/students/{alice}#{CIFAR}")
            section = page.locator(f"section#{CIFAR}")
            expect(section).to_contain_text("2 days late, −20.0 %")
            expect(section.locator("tr.counted-row")).to_contain_text("counts")
            assert _overflow(page) <= 0, f"per-student page scrolls sideways at {size}"
            if not phone:
                wb.shot(page, "instructor-student")
            section.locator(f"a[href='/submissions/{ids['late']}']").first.click()
            expect(page.locator("#back-links")).to_contain_text("All attempts by Alice")
            page.locator("#other-attempts a").first.click()
            expect(page).to_have_url(f"{base}/submissions/{ids['first']}")
            if not phone:
                page.goto(f"{base}/instructor/assignments/{CIFAR}")
                with page.expect_download() as info:
                    page.click("#export-csv")
                csv_path = tmp_path / "grades.csv"
                info.value.save_as(csv_path)
                lines = csv_path.read_text().splitlines()
                assert lines[0].startswith("username,name,email,status,counted,max_score,raw,")
                alice_row = next(line for line in lines if line.startswith("alice,"))
                assert ",passed,68,100,85,20.0,2," in alice_row
                bob_row = next(line for line in lines if line.startswith("bob,"))
                assert ',62.5,"\'=agreed by e-mail, see ticket 12",' in bob_row  # no formula
                _docs_copy(csv_path, "gradebook-export.csv")
            context.close()
        browser.close()
    assert not missing, missing  # the favicon included
