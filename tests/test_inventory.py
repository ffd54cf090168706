"""The data inventory is complete: every stored column is declared, and /me shows it all."""

from __future__ import annotations

import json

from markupsafe import escape
from sqlalchemy import inspect

from consent_center.domain import DATA_INVENTORY, NOT_MEMBER_DATA, PURPOSES
from consent_center.extensions import db
from tests.conftest import post


def declared() -> set[tuple[str, str]]:
    return {(f.table, f.column) for g in DATA_INVENTORY for f in g.fields}


def test_every_database_column_is_in_the_inventory_or_explained(app):
    """Walks the live schema (made by the migrations), so a new column cannot slip past."""
    inspector = inspect(db.engine)
    missing = []
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            key = (table, column["name"])
            if key not in declared() and key not in NOT_MEMBER_DATA:
                missing.append(key)
    assert not missing, f"add these to DATA_INVENTORY (or NOT_MEMBER_DATA with a reason): {missing}"


def test_every_model_column_is_in_the_inventory_or_explained():
    missing = [
        (t.name, c.name)
        for t in db.metadata.sorted_tables
        for c in t.columns
        if (t.name, c.name) not in declared() and (t.name, c.name) not in NOT_MEMBER_DATA
    ]
    assert not missing


def test_inventory_names_only_real_columns_and_purposes():
    columns = {(t.name, c.name) for t in db.metadata.sorted_tables for c in t.columns}
    for group in DATA_INVENTORY:
        for f in group.fields:
            assert (f.table, f.column) in columns, f
            assert set(f.purposes) <= set(PURPOSES), f
            assert f.source in ("provided", "recorded")
    assert not declared() & set(NOT_MEMBER_DATA)


def test_me_shows_every_profile_field_with_purpose_source_retention(client, member, login_as):
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert member.email in page and member.name in page
    assert member.public_id not in page  # an internal number: listed, its value not shown
    for group in DATA_INVENTORY:
        assert escape(str(group.title)) in page
        for f in group.fields:
            assert escape(str(f.label)) in page, f.column
    assert "You gave it" in page and "We recorded it" in page and "Not shared" in page


def test_export_holds_every_inventory_field(client, member, login_as, policy):
    from consent_center.services.deletion import request_deletion
    from tests.test_data_export import download

    login_as(member)
    post(client, "/me/consents/advertising", {"granted": "1"})
    assert post(client, "/me/delete/code", {}).status_code == 303  # a code and its message
    request_deletion(member, requested_by=member, reason=None)
    data = json.loads(download(client, member, "json").data)
    records = data["records"]
    assert records["member"][0]["email"] == member.email
    by_table = {g.table: {f.column for f in g.fields} for g in DATA_INVENTORY}
    # Every table of the inventory is in the export, each row with exactly its fields.
    assert set(by_table) == set(records)
    for table, columns in by_table.items():
        for row in records[table]:
            assert set(row) == columns, table
    for table in ("consent_event", "consent_state", "one_time_code", "notification",
                  "deletion_request", "audit_event"):
        assert records[table], table
    assert records["consent_event"][0]["purpose"] == "advertising"


def test_export_of_another_member_is_impossible(client, member, login_as):
    """The export URL carries no id: it is always the signed-in member's own data."""
    from tests.test_data_export import reauth_code

    login_as(member)
    post(client, "/me/export/code?member=someone-else", {})
    response = post(client, "/me/export?member=someone-else",
                    {"code": reauth_code(member.email), "file_format": "json"})
    assert json.loads(response.data)["records"]["member"][0]["public_id"] == member.public_id


def test_parts_rendered_once_per_language_follow_the_language(client, member, login_as):
    """/me's static parts are cached per language: switching language switches them too."""
    login_as(member)
    english = client.get("/me").get_data(as_text=True)
    assert "Every field we keep for this, and why" in english
    assert post(client, "/language", {"locale": "zh_Hans_CN", "next": "/me"}).status_code == 303
    chinese = client.get("/me").get_data(as_text=True)
    assert "我们为此保存的全部信息项及原因" in chinese
    assert "Every field we keep for this, and why" not in chinese
    assert "Privacy policy" not in chinese.split("<main", 1)[1]  # nor the footer's links


def test_members_never_see_internal_values(client, login_as):
    from tests.conftest import make_member

    member = make_member(policy_seen_number=7, code_failures=3)
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    profile = page.split('id="group-member"', 1)[1].split("<details", 1)[0]
    for label in ("Member number", "Erased on", "Latest policy version whose change notice",
                  "Wrong sign-in codes entered recently"):
        assert label not in profile, label
    assert member.public_id not in page
    assert "Date of birth" in profile and "1 January 1990" in profile
    # Listed, with their purpose, but without values.
    bookkeeping = page.split("Bookkeeping we keep about your account", 1)[1].split("</details>")[0]
    assert "Member number" in bookkeeping and "Erased on" in bookkeeping
    assert 'class="value"' not in bookkeeping
