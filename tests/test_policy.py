"""Policy pages: safe rendering, versions, the readable diff, the seed text."""

from __future__ import annotations

from pathlib import Path

from consent_center.services.policy_text import diff_texts, render_markdown, seed_text_to_markdown
from tests.conftest import make_policy
from tests.support.writes import nothing_written

SEED = Path(__file__).resolve().parent.parent / "consent_center" / "seed" / "privacy-policy.txt"


def test_markdown_is_rendered_safely():
    html = str(render_markdown("# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))"))
    assert "<h1>Title</h1>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html


def test_policy_page_shows_current_version_and_last_updated(client):
    make_policy(body="# Privacy policy\n\nOld text.\n", effective_in_days=-30)
    make_policy(
        body="# Privacy policy\n\nCurrent text.\n", effective_in_days=-1, summary="Clarified"
    )
    make_policy(
        body="# Privacy policy\n\nFuture text.\n", effective_in_days=10, summary="Coming soon"
    )
    page = client.get("/policy").get_data(as_text=True)
    assert "Current text." in page and "Future text." not in page
    assert "Last updated:" in page and "Version 2" in page
    assert "A new version takes effect on" in page and "Coming soon" in page


def test_versions_list_and_version_diff(client):
    make_policy(body="We use data for statistics.\n\nWe never sell data.\n")
    make_policy(
        body="We use data for statistics and trend analysis.\n\nWe never sell data.\n\n"
        "New paragraph.\n",
        summary="Added trend analysis",
    )
    listing = client.get("/policy/versions").get_data(as_text=True)
    assert "Version 1" in listing and "Version 2" in listing and "Added trend analysis" in listing
    page = client.get("/policy/versions/2").get_data(as_text=True)
    assert "What changed from version 1" in page
    assert "<ins>" in page and "trend analysis" in page and "New paragraph." in page
    first = client.get("/policy/versions/1").get_data(as_text=True)
    assert "This is the first published version." in first
    with nothing_written():
        assert client.get("/policy/versions/99").status_code == 404


def test_diff_marks_words_and_paragraphs():
    blocks = diff_texts("A b c.\n\nGone.", "A x c.\n\nNew.\n\nAdded.")
    kinds = [b.kind for b in blocks]
    assert kinds[0] == "changed"
    assert ("removed", "b") in blocks[0].pieces and ("added", "x") in blocks[0].pieces
    assert "added" in kinds


def test_diff_handles_chinese_character_by_character():
    blocks = diff_texts("我们收集姓名。", "我们收集姓名和电话。")
    assert blocks[0].kind == "changed"
    assert ("added", "和电话") in blocks[0].pieces


def test_seed_policy_becomes_structured_markdown():
    title, md = seed_text_to_markdown(SEED.read_text(encoding="utf-8"))
    assert title == "Privacy policy"
    assert "## Types of Information Extracted and Collected" in md
    assert "## Contact Customer Service Center" in md
    assert "- Directly related to national security and national defense security;" in md
    html = str(render_markdown(md))
    assert html.count("<li>") == 5


def test_demo_seed_publishes_the_company_policy(runner, client):
    result = runner.invoke(args=["demo", "seed"])
    assert result.exit_code == 0 and "seeded policy version 1" in result.output
    page = client.get("/policy").get_data(as_text=True)
    assert "aftersale@autooltech.com" in page
    assert "Special Agreement on the Privacy Protection" in page
    again = runner.invoke(args=["demo", "seed"])
    assert "nothing seeded" in again.output


def test_cli_publish_enforces_notice_period(runner, tmp_path, client):
    make_policy()
    text = tmp_path / "v2.md"
    text.write_text("# Policy\n\nUpdated.\n")
    result = runner.invoke(
        args=["policy", "publish", str(text), "--effective", "2000-01-01", "--summary", "Too soon"]
    )
    assert result.exit_code == 2 and "7 days in advance" in result.output
