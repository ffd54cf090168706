"""`flask api-token ...` and `flask webhooks ...`: credentials and subscriptions of the company
systems that read consent (thin commands that call services and commit)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from .extensions import db
from .services.api_tokens import create_api_token, list_api_tokens, parse_scopes, revoke_api_token
from .services.errors import DomainError
from .services.outgoing_webhooks import add_webhook, list_webhooks, parse_events, remove_webhook

api_token_cli = AppGroup("api-token", help="Bearer tokens for the /api/v1 API.")
webhooks_cli = AppGroup("webhooks", help="Outgoing webhook subscriptions.")


def _fail(exc: DomainError) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(str(exc.message))


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


@api_token_cli.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated: consents:read, audiences:read, events:read.",
)
def api_token_create(name: str, scopes: str) -> None:
    """Create a token for the system NAME and print it (shown only this once)."""
    try:
        issued = create_api_token(name, parse_scopes(scopes))
    except DomainError as exc:
        raise _fail(exc) from exc
    db.session.commit()
    click.echo(f"created API token {issued.name!r} with scopes {','.join(issued.scopes)}")
    click.echo(issued.token)
    click.echo("Store it now: it is shown only this once (only its SHA-256 is kept).", err=True)


@api_token_cli.command("revoke")
@click.argument("name")
def api_token_revoke(name: str) -> None:
    """Revoke the token NAME; requests with it fail at once."""
    try:
        revoke_api_token(name)
    except DomainError as exc:
        raise _fail(exc) from exc
    db.session.commit()
    click.echo(f"revoked API token {name!r}")


@api_token_cli.command("list")
def api_token_list() -> None:
    """List tokens (never the tokens themselves)."""
    tokens = list_api_tokens()
    for t in tokens:
        status = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "live"
        click.echo(
            f"{t.name}\t{t.prefix}…\t{t.scopes}\tcreated {_when(t.created_at)}"
            f"\tlast used {_when(t.last_used_at)}\t{status}"
        )
    if not tokens:
        click.echo("no API tokens")


@webhooks_cli.command("add")
@click.argument("url")
@click.option(
    "--events",
    default="consent.changed,member.erased",
    show_default=True,
    help="Comma-separated event types.",
)
def webhooks_add(url: str, events: str) -> None:
    """Subscribe URL to events; prints its id and signing secret (shown only this once)."""
    try:
        new = add_webhook(url, parse_events(events))
    except DomainError as exc:
        raise _fail(exc) from exc
    db.session.commit()
    click.echo(f"subscribed {new.url} to {','.join(new.events)} as {new.public_id}")
    click.echo(new.secret)
    click.echo(
        "Give this secret to the receiver now: it signs every delivery and is shown only "
        "this once (docs/webhooks.md shows how to verify).",
        err=True,
    )


@webhooks_cli.command("list")
def webhooks_list() -> None:
    """List subscriptions (never their secrets)."""
    subs = list_webhooks()
    for s in subs:
        click.echo(
            f"{s.public_id}\t{s.url}\t{s.events}\t{'active' if s.active else 'inactive'}"
            f"\tcreated {_when(s.created_at)}"
        )
    if not subs:
        click.echo("no webhook subscriptions")


@webhooks_cli.command("remove")
@click.argument("subscription_id")
def webhooks_remove(subscription_id: str) -> None:
    """Delete a subscription; its undelivered events are dropped."""
    try:
        dropped = remove_webhook(subscription_id)
    except DomainError as exc:
        raise _fail(exc) from exc
    db.session.commit()
    click.echo(f"removed {subscription_id} ({dropped} undelivered events dropped)")
