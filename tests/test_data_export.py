"""The data export: a fresh code first, then every field with its purposes, source,
recipients and retention and every row about the member, as JSON (with a schema) or CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import select

from consent_center.extensions import db
from consent_center.models import DATA_INVENTORY, AuditEvent
from tests.conftest import post
from tests.support.outbox import mailbox
from tests.support.writes import nothing_written
from tests.test_guardians import GUARDIAN_EMAIL, family  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "static" / "export-schema.json").read_text(encoding="utf-8"))
# A wrong code counts an attempt on the code and on the account, by design.
WRONG_CODE_COUNTS = ("one_time_code.attempts", "member.code_failures",
                     "member.code_failures_since")


def reauth_code(to: str) -> str:
    message = next(m for m in mailbox() if m["to"] == to and m["kind"] == "reauth_code")
    return re.search(r"\b(\d{6})\b", message["text"]).group(1)


def exports() -> list[AuditEvent]:
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "member.data_exported")))


def download(client, member, file_format: str, url: str = "/me/export"):
    assert post(client, f"{url}/code", {}).status_code == 303
    response = post(client, url, {"code": reauth_code(member.email), "file_format": file_format})
    assert response.status_code == 200, response.data
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{"my-data" if url == "/me/export" else "ward-data"}.{file_format}"')
    return response


def test_export_needs_a_fresh_code_and_a_refusal_exports_nothing(client, member, login_as):
    login_as(member)
    page = client.get("/me/export").get_data(as_text=True)
    assert "Send me a confirmation code" in page and member.email not in page
    # No code asked for: refused, nothing written, nothing sent.
    with nothing_written():
        response = post(client, "/me/export", {"code": "123456", "file_format": "json"})
    assert response.status_code == 422 and "Content-Disposition" not in response.headers
    assert member.email not in response.get_data(as_text=True)
    assert post(client, "/me/export/code", {}).status_code == 303
    code = reauth_code(member.email)
    wrong = "000000" if code != "000000" else "111111"
    with nothing_written(except_columns=WRONG_CODE_COUNTS):
        response = post(client, "/me/export", {"code": wrong, "file_format": "json"})
    assert response.status_code == 422 and "Content-Disposition" not in response.headers
    with nothing_written():
        response = post(client, "/me/export", {"code": code, "file_format": "xml"})
    assert response.status_code == 422 and "Content-Disposition" not in response.headers
    assert exports() == []
    response = post(client, "/me/export", {"code": code, "file_format": "json"})
    assert response.status_code == 200
    assert json.loads(response.data)["records"]["member"][0]["email"] == member.email
    assert [(e.actor_member_id, e.subject_member_id) for e in exports()] == [
        (member.id, member.id)]
    # A code gives one download.
    with nothing_written():
        response = post(client, "/me/export", {"code": code, "file_format": "csv"})
    assert response.status_code == 422


def test_json_export_follows_its_schema_and_describes_every_field(
    client, member, login_as, policy
):
    login_as(member)
    post(client, "/me/consents/trend_analysis", {"granted": "1"})
    data = json.loads(download(client, member, "json").data)
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    described = {(f["table"], f["column"]): f for f in data["fields"]}
    assert set(described) == {(g.table, f.column) for g in DATA_INVENTORY for f in g.fields}
    email = described[("member", "email")]
    assert email["purposes"] == [{"key": "service", "title": "Providing the service"}]
    assert email["source"] == {"key": "provided", "label": "You gave it"}
    assert "email server" in email["recipients"] and "erased" in email["retention"]
    assert described[("member", "phone")]["recipients"].startswith("Twilio")
    assert described[("member", "name")]["recipients"] == "Not shared"
    # Every row about the member, each with exactly the inventory's columns.
    for table, rows in data["records"].items():
        columns = {c for t, c in described if t == table}
        assert all(set(row) == columns for row in rows), table
    for table in ("consent_event", "consent_state", "one_time_code", "audit_event",
                  "member_session", "notification"):
        assert data["records"][table], table
    assert data["records"]["consent_event"][0]["purpose"] == "trend_analysis"
    assert data["member"] == member.public_id and data["language"] == "en"


def test_schema_rejects_an_export_missing_what_the_field_is_for():
    broken = {"format": "consent-center-export/2", "exported_at": "2026-12-05T00:00:00+00:00",
              "language": "en", "member": "x", "records": {"member": [{"name": "A"}]},
              "fields": [{"table": "member", "column": "name", "label": "Name",
                          "source": {"key": "provided", "label": "You gave it"},
                          "recipients": "Not shared", "retention": "While you are a member"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_csv_export_has_one_row_per_field_value(client, member, login_as, policy):
    login_as(member)
    post(client, "/language", {"locale": "zh_Hans_CN"})
    response = download(client, member, "csv")
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["table", "record", "column", "label", "value", "purposes",
                             "source", "recipients", "retention"]
    email = next(r for r in rows if (r["table"], r["column"]) == ("member", "email"))
    assert email["value"] == member.email and email["record"] == "1"
    assert (email["label"], email["source"]) == ("电子邮箱", "由您提供")
    assert "邮件服务器" in email["recipients"]
    # As many rows as values: every column of every record.
    profile_columns = next(g for g in DATA_INVENTORY if g.table == "member").fields
    assert sum(r["table"] == "member" for r in rows) == len(profile_columns)
    audit = [r for r in rows if r["table"] == "audit_event"]
    assert audit and len({r["record"] for r in audit}) * len(
        next(g for g in DATA_INVENTORY if g.table == "audit_event").fields) == len(audit)


def test_guardian_export_needs_the_guardians_own_fresh_code(family):  # noqa: F811
    minor, guardian, guardian_client = family
    url = f"/guardian/wards/{minor.public_id}/export"
    page = guardian_client.get(url).get_data(as_text=True)
    assert "Send me a confirmation code" in page and minor.email not in page
    with nothing_written():
        response = post(guardian_client, url, {"code": "123456", "file_format": "json"})
    assert response.status_code == 422 and "Content-Disposition" not in response.headers
    assert post(guardian_client, f"{url}/code", {}).status_code == 303
    # The code goes to the guardian, never to the child.
    assert not [m for m in mailbox() if m["to"] == minor.email and m["kind"] == "reauth_code"]
    code = reauth_code(GUARDIAN_EMAIL)
    wrong = "000000" if code != "000000" else "111111"
    with nothing_written(except_columns=WRONG_CODE_COUNTS):
        response = post(guardian_client, url, {"code": wrong, "file_format": "csv"})
    assert response.status_code == 422 and "Content-Disposition" not in response.headers
    response = post(guardian_client, url, {"code": code, "file_format": "json"})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="ward-data.json"'
    data = json.loads(response.data)
    jsonschema.validate(data, SCHEMA)
    assert data["records"]["member"][0]["email"] == minor.email
    assert [(e.actor_member_id, e.subject_member_id) for e in exports()] == [
        (guardian.id, minor.id)]


def test_guardian_cannot_export_another_childs_data(family, app):  # noqa: F811
    from datetime import date

    from tests.conftest import make_member
    from tests.test_guardians import minor_birth_date

    _minor, _guardian, guardian_client = family
    stranger = make_member(birth_date=date.fromisoformat(minor_birth_date()))
    url = f"/guardian/wards/{stranger.public_id}/export"
    with nothing_written():
        assert guardian_client.get(url).status_code == 404
        assert post(guardian_client, f"{url}/code", {}).status_code == 404
        response = post(guardian_client, url, {"code": "123456", "file_format": "json"})
        assert response.status_code == 404
