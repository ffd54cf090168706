"""Admins: manage the staff team (add by email, change role, remove the staff role)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ...domain import Role
from ...extensions import db
from ...services import staff as staff_service
from ...services.errors import Conflict, Invalid
from ..forms import apply_field_errors
from ..member.forms import EmptyForm
from .forms import TeamAddForm, TeamRoleForm
from .views import admin_required, bp


def _page(add_form=None, problem=None, status: int = 200):
    return render_template(
        "staff/team.html",
        team=staff_service.team_members(),
        add_form=add_form or TeamAddForm(),
        problem=problem,
    ), status


@bp.get("/team")
@admin_required
def team():
    """Everyone with staff access, and the forms to change it."""
    return _page()


@bp.post("/team")
@admin_required
def team_add():
    """Give an account (created if needed) staff or admin access."""
    form = TeamAddForm()
    if form.validate_on_submit():
        try:
            member, created = staff_service.add_team_member(
                current_user, form.email.data or "", role=form.role.data or ""
            )
        except Invalid as exc:
            db.session.rollback()
            apply_field_errors(form, exc.field_errors)
        else:
            db.session.commit()
            flash(
                _("%(email)s now has staff access.", email=member.email)
                if not created
                else _(
                    "An account for %(email)s is created with staff access; they sign in "
                    "with a code sent to that address.",
                    email=member.email,
                ),
                "status",
            )
            return redirect(url_for("staff.team"), 303)
    return _page(add_form=form, status=422)


def _change(public_id: str, role: str):
    member = staff_service.load_team_member(current_user, public_id)
    try:
        staff_service.set_staff_role(current_user, member, role)
    except Invalid as exc:
        db.session.rollback()
        return _page(problem=exc.message, status=422)
    except Conflict as exc:
        db.session.rollback()
        return _page(problem=exc.message, status=409)
    db.session.commit()
    flash(_("The role is changed."), "status")
    if member.id == current_user.id and role != Role.ADMIN:  # no longer allowed on this page
        target = "staff.dashboard" if role == Role.STAFF else "member.overview"
        return redirect(url_for(target), 303)
    return redirect(url_for("staff.team"), 303)


@bp.post("/team/<public_id>/role")
@admin_required
def team_role(public_id: str):
    """Make a staff account admin, or an admin staff."""
    form = TeamRoleForm()
    if not form.validate_on_submit():
        return _page(problem=_("Choose one of the options."), status=422)
    return _change(public_id, form.role.data or "")


@bp.post("/team/<public_id>/remove")
@admin_required
def team_remove(public_id: str):
    """Take away staff access (the account stays an ordinary member)."""
    if not EmptyForm().validate_on_submit():
        return _page(problem=_("Please try again."), status=400)
    return _change(public_id, Role.MEMBER)
