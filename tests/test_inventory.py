"""The data inventory is complete: every stored column is declared, and /me shows it all."""

from __future__ import annotations

import json

from markupsafe import escape
from sqlalchemy import inspect, select

from consent_center.domain import NOT_MEMBER_DATA, PURPOSES
from consent_center.extensions import db
from consent_center.models import DATA_INVENTORY, HELD_TABLES
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
    assert not missing, f"give these info=held(...) (or NOT_MEMBER_DATA a reason): {missing}"


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
    """/me names every part of the data and lists the profile's fields with their values;
    each other part's fields open from it (in place with htmx, else on their own page),
    every field with why, where from, how long and with whom."""
    login_as(member)
    page = client.get("/me").get_data(as_text=True)
    assert member.email in page and member.name in page
    assert member.public_id not in page  # an internal number: listed, its value not shown
    for f in HELD_TABLES["member"].fields:
        assert escape(str(f.label)) in page, f.column
    for group in DATA_INVENTORY:
        assert escape(str(group.title)) in page
        if group.table == "member":
            continue
        url = f"/me/data/{group.table}"
        assert f'hx-get="{url}"' in page and f'href="{url}"' in page
        full = client.get(url).get_data(as_text=True)
        fragment = client.get(url, headers={"HX-Request": "true"})
        assert "<html" in full and "<html" not in fragment.get_data(as_text=True)
        assert "HX-Request" in fragment.headers["Vary"]
        for f in group.fields:
            assert escape(str(f.label)) in full, f.column
            assert escape(str(f.label)) in fragment.get_data(as_text=True), f.column
    assert "You gave it" in page and "We recorded it" in page and "Not shared" in page


def test_a_part_of_the_data_that_does_not_exist_is_not_found(client, member, login_as):
    login_as(member)
    for table in ("nope", "staff_role", "member_session_x", "x" * 300):
        assert client.get(f"/me/data/{table}").status_code == 404
    assert client.get("/me/data/%00").status_code == 400  # the inputs guard's
    own = client.get("/me/data/member").get_data(as_text=True)
    assert member.email in own and member.public_id not in own
    stranger = client.application.test_client()
    assert stranger.get("/me/data/notification").status_code == 302


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
    """/me follows the reader's language everywhere: the inventory's tables and the footer too."""
    login_as(member)
    english = client.get("/me").get_data(as_text=True)
    assert "Every field we keep for this, and why" in english
    assert post(client, "/language", {"locale": "zh_Hans_CN", "next": "/me"}).status_code == 303
    chinese = client.get("/me").get_data(as_text=True)
    assert "我们为此保存的全部信息项及原因" in chinese
    assert "Every field we keep for this, and why" not in chinese
    assert "Privacy policy" not in chinese.split("<main", 1)[1]  # nor the footer's links


def test_the_inventory_is_read_from_the_columns():
    """Every column carrying `held` info is in the inventory, and nothing else is; each
    inventory table names the column that says whose a row is."""
    held_columns = {
        (t.name, c.name) for t in db.metadata.sorted_tables for c in t.columns if "held" in c.info
    }
    assert held_columns == declared()
    positions = [t.info["held"].position for t in db.metadata.sorted_tables if "held" in t.info]
    assert len(positions) == len(set(positions)) == len(DATA_INVENTORY)
    for group in DATA_INVENTORY:
        assert group.owner in db.metadata.tables[group.table].c, group.table


def test_erasure_writes_what_each_column_declares(app, member):
    """Erasure removes exactly the fields whose inventory entry says so, and keeps the rest."""
    from consent_center.domain.inventory import ERASURE_TIME, KEEP, TOMBSTONE
    from consent_center.models import HELD_TABLES, DeletionRequest
    from consent_center.services.deletion import request_deletion
    from consent_center.services.erasure import erase_member

    member.phone, member.gender, member.notify_sms = "+8613800138000", "female", True
    request_deletion(member, requested_by=member, reason="Please go")
    db.session.commit()
    before = {f.column: getattr(member, f.column) for f in HELD_TABLES["member"].fields}
    erase_member(member, actor=None, reason="test")
    db.session.commit()
    db.session.refresh(member)
    for field in HELD_TABLES["member"].fields:
        value = getattr(member, field.column)
        if field.erased is KEEP:
            assert value == before[field.column], field.column
        elif field.erased is TOMBSTONE:
            assert value.startswith("erased-") and value != before[field.column]
        elif field.erased is ERASURE_TIME:
            assert value == member.erased_at is not None
        else:
            assert value == field.erased, field.column
    erased_request = {f.column: f.erased for f in HELD_TABLES["deletion_request"].fields
                      if f.erased is not KEEP}
    assert erased_request == {"reason": None}
    request = db.session.scalars(
        select(DeletionRequest).filter_by(member_id=member.id)
    ).one()
    assert request.reason is None and request.status is not None


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
