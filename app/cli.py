"""The `consent-center` command: serve, migrate, manage clients, verify and export the trail."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from app.components import Components, build
from app.config import ConfigError, Settings
from app.database import make_engine
from app.domain.chain import format_time


class Commands(click.Group):
    """Settings that cannot start the service end the command with their message, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=Commands)
def main() -> None:
    """consent-center: consent and preference center with a verifiable audit trail."""


@contextmanager
def db_session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url, timeouts=settings.timeouts)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def components(settings: Settings | None = None) -> Components:
    """The command's rules and keys, built once from its settings as create_app builds them."""
    return build(settings or Settings.from_env())


def upgrade_database(settings: Settings) -> None:
    """Apply migrations, then publish the shipped notice texts (idempotent)."""
    from app.migrate import upgrade
    from app.services.consent import notices

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
    settings = Settings.from_env(defaults={"PORT": str(port)})
    if not no_migrate:
        upgrade_database(settings)
    from app import create_app

    app = create_app(settings.with_overrides(send_mail_inline=True))
    app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True)


@main.command("create-client")
@click.argument("name")
@click.option(
    "--scopes",
    default="consent:read",
    show_default=True,
    help="Space-separated scopes: consent:read consent:write notices:publish subjects:manage "
    "audit:read audit:write.",
)
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
@click.option(
    "--file",
    "package_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify an exported package instead of the database (no database needed).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The service's public key: the JWK set from /.well-known/jwks.json (with --file).",
)
def audit_verify(package_file: Path | None, key_file: Path | None) -> None:
    """Verify the hash chain (or, with --file, a DPO package); exit 1 naming the first bad event."""
    if package_file is not None:
        if key_file is None:
            raise click.UsageError("--file needs --key, the service's public key (JWK set).")
        from app.domain import proof

        keys = proof.key_set(json.loads(key_file.read_text(encoding="utf-8")))
        with package_file.open(encoding="utf-8", errors="replace") as lines:
            outcome = proof.verify_package(lines, keys)
        click.echo(json.dumps(outcome.as_dict()))
        sys.exit(0 if outcome.is_ok else 1)
    from app.services.audit import trail as audit_service

    settings = Settings.from_env()
    keys = components(settings).signing_keys.verifying()
    with db_session(settings) as session:
        result = audit_service.verify(session, keys=keys)
    click.echo(json.dumps(result.as_dict()))
    sys.exit(0 if result.is_ok else 1)


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv"]), default="ndjson")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def audit_export(fmt: str, output: Path | None) -> None:
    """Stream every event as NDJSON or CSV to a file or stdout."""
    from app.services.audit import trail as audit_service

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
        summary = seed(session, components(settings).rules, count=count)
    click.echo(json.dumps(summary, indent=2))


@main.command()
@click.option("--once", is_flag=True, help="Deliver what is due and run due jobs once, then exit.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between passes.")
@click.option("--no-jobs", is_flag=True, help="Only deliver mail; leave the jobs to others.")
def worker(once: bool, interval: float, no_jobs: bool) -> None:
    """Deliver the mail outbox and run the scheduled jobs (retention, checkpoints, overdue
    rights report), each once per turn across every worker."""
    import signal
    import threading

    from app import worker as outbox
    from app.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)  # the same JSON lines as the web process
    parts = None if no_jobs else components(settings)
    engine = make_engine(settings.database_url, timeouts=settings.timeouts)
    try:
        if once:
            delivery = outbox.deliver_once(engine, settings)
            ran = outbox.run_due_jobs(engine, parts) if parts else []
            click.echo(json.dumps(dataclasses.asdict(delivery) | {"jobs": ran}))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        click.echo(
            "worker: delivering the outbox and running jobs; SIGTERM or Ctrl-C stops", err=True
        )
        sent = outbox.run(engine, settings, stop, interval=interval, parts=parts)
        click.echo(f"worker: stopped after sending {sent} message(s)", err=True)
    finally:
        engine.dispose()


@audit.command("checkpoint")
@click.option(
    "--if-due",
    is_flag=True,
    help="Only when CHECKPOINT_EVERY events were written since the last one (for cron).",
)
def audit_checkpoint(if_due: bool) -> None:
    """Sign the chain's head and store the signature as a checkpoint event."""
    from app.services.audit import checkpoints

    settings = Settings.from_env()
    key = components(settings).signing_keys.current
    with db_session(settings) as session:
        made = (
            checkpoints.create_if_due(session, key, settings.checkpoint_every)
            if if_due
            else checkpoints.create(session, key)
        )
    if made is None:
        click.echo(json.dumps({"checkpoint": None}))
        return
    click.echo(
        json.dumps({"seq": made.seq, "signed_seq": made.signed_seq, "hash": made.signed_hash})
    )


@audit.command("public-key")
def audit_public_key() -> None:
    """Print the JWK set that verifies checkpoints and packages (give it to the auditor)."""

    click.echo(json.dumps(components().signing_keys.jwks(), indent=2))


@audit.command("new-key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def audit_new_key(path: Path) -> None:
    """Make a new signing key at PATH (mode 0600); refuses to overwrite one."""
    from app.services.audit import checkpoints

    try:
        key = checkpoints.new_key(path)
    except FileExistsError as error:
        raise click.ClickException(f"{path} exists; a signing key is never overwritten") from error
    click.echo(json.dumps(checkpoints.public_jwks(key), indent=2))


@audit.command("package")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--since", type=click.DateTime(), help="UTC, inclusive.")
@click.option("--until", type=click.DateTime(), help="UTC, exclusive.")
@click.option("--subject-id", default=None)
@click.option("--channel", default=None)
@click.option("--category", default=None)
def audit_package(
    output: Path,
    since: datetime | None,
    until: datetime | None,
    subject_id: str | None,
    channel: str | None,
    category: str | None,
) -> None:
    """Write the DPO package (events, notices, Art. 30 record, checkpoints, signed head)."""
    from app.services.audit import package
    from app.services.audit import trail as audit_service

    settings = Settings.from_env()
    filters = audit_service.EventFilter(
        subject_id=subject_id,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
        channel=channel,
        category=category,
    )
    parts = components(settings)
    catalog = parts.catalog.as_dict()
    with db_session(settings) as session, output.open("w", encoding="utf-8") as target:
        for line in package.stream(session, filters, parts.signing_keys, catalog):
            target.write(line)
    click.echo(f"wrote {output}", err=True)


@main.group()
def retention() -> None:
    """Removing what is kept past its need."""


@retention.command("run")
def retention_run() -> None:
    """Remove expired requests, evidence and proof by the configured periods; logs the run."""
    from app.services.audit import retention as retention_service

    settings = Settings.from_env()
    periods = retention_service.Periods(
        pending=settings.pending_retention,
        evidence=settings.evidence_retention,
        proof=settings.proof_retention,
        access_log=settings.access_log_retention,
        mail=settings.mail_retention,
    )
    with db_session(settings) as session:
        report = retention_service.run(
            session,
            periods,
            key=components(settings).signing_keys.current,
            mail_files=None if settings.smtp_host else settings.outbox_dir,
        )
    click.echo(json.dumps(report.as_dict()))


@main.command("openapi")
@click.option(
    "--check",
    "committed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Compare with this file instead of printing; exit 1 if it is not current.",
)
@click.option(
    "--compare",
    "other",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="List what this (hand-edited) file says that the generated one does not, and back.",
)
def openapi(committed: Path | None, other: Path | None) -> None:
    """Print the API description generated from the routes and schemas (openapi.yaml)."""
    import yaml

    from app.api.openapi import generate
    from app.api.spec_diff import differences

    generated = generate()
    if other is not None:
        found = differences(
            yaml.safe_load(other.read_text(encoding="utf-8")), yaml.safe_load(generated)
        )
        for line in found:
            click.echo(line)
        sys.exit(1 if found else 0)
    if committed is None:
        click.echo(generated, nl=False)
    elif committed.read_text(encoding="utf-8") != generated:
        raise click.ClickException(
            f"{committed} is not current: run `consent-center openapi > {committed}`."
        )


@main.group()
def rights() -> None:
    """The rights-request log."""


@rights.command("overdue")
def rights_overdue() -> None:
    """List unanswered rights requests past their due date (NDJSON); exit 1 if there are any."""
    from app.services.privacy_center import rights as rights_service

    with db_session(Settings.from_env()) as session:
        found = rights_service.listing(session, overdue=True)
        for row in found:
            click.echo(
                json.dumps(
                    {
                        "id": row.id,
                        "subject_id": row.subject_id,
                        "kind": row.kind,
                        "received_at": format_time(row.received_at),
                        "due_at": format_time(row.due_at),
                        "channel": row.channel,
                    }
                )
            )
    sys.exit(1 if found else 0)


@main.command("rekey-identifiers")
def rekey_identifiers() -> None:
    """After a new IDENTIFIER_HMAC_KEY: re-key every identifier to it. Suppressions keep their
    old HMAC (no plain value is kept), so keep the old key in IDENTIFIER_HMAC_OLD_KEYS."""
    from app.services.consent import subjects

    settings = Settings.from_env()
    with db_session(settings) as session:
        report = subjects.rekey(session, components(settings).rules)
    click.echo(json.dumps(report.__dict__))


@main.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (docs/configuration.md) from the settings' declaration."""
    from app.config import reference

    click.echo(reference(), nl=False)


if __name__ == "__main__":
    main()
