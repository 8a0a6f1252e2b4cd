"""The `consent-center` command: serve, migrate, manage clients, verify and export the trail."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session

from app.config import Settings
from app.database import make_engine
from app.domain.catalog import load_catalog
from app.domain.rules import Rules


@click.group()
def main() -> None:
    """consent-center: consent and preference center with a verifiable audit trail."""


@contextmanager
def db_session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def rules_for(settings: Settings) -> Rules:
    return Rules(
        catalog=load_catalog(settings.catalog_path),
        identifier_key=settings.identifier_key,
        max_consent_age=settings.max_consent_age,
        single_opt_in_countries=settings.single_opt_in_countries,
    )


def upgrade_database(settings: Settings) -> None:
    """Apply migrations, then publish the shipped notice texts (idempotent)."""
    from app.migrate import upgrade
    from app.services import notices

    upgrade(settings.database_url)
    with db_session(settings) as session:
        notices.publish_file(session, settings.notices_path)


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (Alembic) and publish the default notices."""
    upgrade_database(Settings.from_env())
    click.echo("database is up to date", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations on start.")
def run(host: str, port: int, no_migrate: bool) -> None:
    """The development server (use gunicorn in production)."""
    import os

    os.environ.setdefault("PORT", str(port))
    settings = Settings.from_env()
    if not no_migrate:
        upgrade_database(settings)
    from app import create_app

    app = create_app(settings.with_overrides(send_mail_inline=True))
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


@main.command("create-client")
@click.argument("name")
@click.option("--scopes", default="consent:read", show_default=True, help="Space-separated scopes.")
def create_client(name: str, scopes: str) -> None:
    """Create an API client; prints {"client_id", "client_secret", "scopes"} once."""
    from app.services import clients

    with db_session(Settings.from_env()) as session:
        credentials = clients.create(session, name, scopes)
    click.echo(json.dumps(credentials.__dict__))


@main.command("revoke-client")
@click.argument("client_id")
def revoke_client(client_id: str) -> None:
    """Revoke a client: its tokens stop working within seconds."""
    from app.services import clients

    with db_session(Settings.from_env()) as session:
        clients.revoke(session, client_id)
    click.echo(f"revoked {client_id}", err=True)


@main.command("rotate-secret")
@click.argument("client_id")
def rotate_secret(client_id: str) -> None:
    """Give a client a new secret (the old one stops working at once)."""
    from app.services import clients

    with db_session(Settings.from_env()) as session:
        credentials = clients.rotate_secret(session, client_id)
    click.echo(json.dumps(credentials.__dict__))


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Verify the hash chain; exit 1 and name the first bad event if it is broken."""
    from app.services import audit as audit_service

    with db_session(Settings.from_env()) as session:
        result = audit_service.verify(session)
    report = {
        "ok": result.is_ok,
        "events_checked": result.events_checked,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }
    click.echo(json.dumps(report))
    sys.exit(0 if result.is_ok else 1)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv"]), default="ndjson")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def audit_export(fmt: str, output: Path | None) -> None:
    """Stream every event as NDJSON or CSV to a file or stdout."""
    from app.services import audit as audit_service

    with db_session(Settings.from_env()) as session:
        events = audit_service.iter_events(session, audit_service.EventFilter())
        chunks = audit_service.to_csv(events) if fmt == "csv" else audit_service.to_ndjson(events)
        target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            for chunk in chunks:
                target.write(chunk)
        finally:
            if output:
                target.close()


@main.command()
@click.option("--subjects", "count", default=25, show_default=True)
def demo(count: int) -> None:
    """Seed demo data: subjects in every state, and an API client whose credentials are printed."""
    from app.demo import seed

    settings = Settings.from_env()
    upgrade_database(settings)
    with db_session(settings) as session:
        summary = seed(session, rules_for(settings), count=count)
    click.echo(json.dumps(summary, indent=2))


@main.command()
@click.option("--once", is_flag=True, help="Deliver what is due once, then exit.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between passes.")
def worker(once: bool, interval: float) -> None:
    """Deliver the mail outbox over SMTP (or to .eml files), with retries and back-off."""
    import signal
    import threading

    from app import worker as outbox

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        if once:
            delivery = outbox.deliver_once(engine, settings)
            click.echo(json.dumps({"sent": delivery.sent, "deferred": delivery.deferred}))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        click.echo("worker: delivering the outbox; SIGTERM or Ctrl-C stops", err=True)
        sent = outbox.run(engine, settings, stop, interval=interval)
        click.echo(f"worker: stopped after sending {sent} message(s)", err=True)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
