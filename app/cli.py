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
    """Apply migrations, publish the shipped notice texts and store the suppression keys of
    identifiers that have none under the key ring (each idempotent)."""
    from app.migrate import upgrade
    from app.services.consent import notices, suppression

    upgrade(settings.database_url)
    with db_session(settings) as session:
        notices.publish_file(session, settings.notices_path)
    with db_session(settings) as session:
        suppression.fill_variants(session, components(settings).rules)


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (Alembic), publish the default notices, store the identifiers'
    suppression keys (`suppression-keys`)."""
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
@click.option("--no-jobs", is_flag=True, help="Only deliver; leave the jobs to others.")
def worker(once: bool, interval: float, no_jobs: bool) -> None:
    """Deliver the mail and webhook outboxes, apply imports, and run the scheduled jobs (retention,
    checkpoints, overdue rights report), each once per turn across every worker."""
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
            sender = outbox.sender(settings)
            try:
                hooks = outbox.deliver_webhooks(engine, settings, sender)
            finally:
                sender.close()
            ran = outbox.run_due_jobs(engine, parts) if parts else []
            click.echo(
                json.dumps(
                    dataclasses.asdict(delivery)
                    | {"webhooks_sent": hooks.sent, "webhooks_failed": hooks.failed, "jobs": ran}
                )
            )
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        click.echo(
            "worker: delivering the outbox and running jobs; SIGTERM or Ctrl-C stops", err=True
        )
        rules = components(settings).rules
        sent = outbox.run(engine, settings, stop, interval=interval, parts=parts, rules=rules)
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
    from app.worker import retention

    settings = Settings.from_env()
    with db_session(settings) as session:
        report = retention(session, settings, components(settings).signing_keys.current)
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


@main.group()
def webhooks() -> None:
    """Webhook receivers of the changes feed (the API's /v1/webhooks, from a shell)."""


def _webhook_json(webhook: Any, secret: str | None = None) -> str:
    shown: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "events": webhook.events.split(),
        "created_at": webhook.created_at.isoformat(),
        "disabled_at": webhook.disabled_at.isoformat() if webhook.disabled_at else None,
        "disabled_reason": webhook.disabled_reason,
    }
    if secret:
        shown["secret"] = secret
    return json.dumps(shown)


@contextmanager
def _webhook_use_case() -> Iterator[tuple[Settings, Session]]:
    from app.domain.errors import DomainError

    settings = Settings.from_env()
    with db_session(settings) as session:
        try:
            yield settings, session
        except DomainError as error:
            raise click.ClickException(error.detail) from None


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--events",
    default="consent.changed subject.erased",
    show_default=True,
    help="Space-separated event types.",
)
def webhooks_add(url: str, events: str) -> None:
    """Register a receiver; prints it with its secret, shown this once."""
    from app.services.delivery import webhooks as service

    with _webhook_use_case() as (settings, session):
        made = service.register(
            session,
            url,
            events.split(),
            actor="cli",
            allow_private=settings.webhook_allow_private,
        )
        click.echo(_webhook_json(made.webhook, made.secret))


@webhooks.command("list")
def webhooks_list() -> None:
    """Every receiver, one JSON object per line (no secrets)."""
    from app.services.delivery import webhooks as service

    with _webhook_use_case() as (_, session):
        for webhook in service.listed(session):
            click.echo(_webhook_json(webhook))


@webhooks.command("remove")
@click.argument("webhook_id")
def webhooks_remove(webhook_id: str) -> None:
    """Remove a receiver and its queued deliveries."""
    from app.services.delivery import webhooks as service

    with _webhook_use_case() as (_, session):
        service.remove(session, webhook_id)
        click.echo(json.dumps({"removed": webhook_id}))


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
def webhooks_rotate(webhook_id: str) -> None:
    """A new secret, shown once; the old one keeps signing too for WEBHOOK_SECRET_OVERLAP_HOURS."""
    from app.services.delivery import webhooks as service

    with _webhook_use_case() as (settings, session):
        made = service.rotate_secret(session, webhook_id, overlap=settings.webhook_secret_overlap)
        click.echo(_webhook_json(made.webhook, made.secret))


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", default=20, show_default=True)
def webhooks_deliveries(webhook_id: str, limit: int) -> None:
    """The receiver's delivery log, newest change first (NDJSON)."""
    from app.services.delivery import webhooks as service

    with _webhook_use_case() as (_, session):
        for row in service.deliveries(session, webhook_id, limit=limit):
            click.echo(
                json.dumps(
                    {
                        "id": row.id,
                        "cursor": str(row.event_seq),
                        "type": row.event_type,
                        "status": row.status,
                        "attempts": row.attempts,
                        "response_status": row.response_status,
                        "latency_ms": row.latency_ms,
                        "error": row.last_error,
                    }
                )
            )


@main.command("rekey-identifiers")
def rekey_identifiers() -> None:
    """After a new IDENTIFIER_HMAC_KEY: re-key every identifier to it. Suppressions keep their
    old HMAC (no plain value is kept), so keep the old key in IDENTIFIER_HMAC_OLD_KEYS."""
    from app.services.consent import subjects, suppression

    settings = Settings.from_env()
    rules = components(settings).rules
    with db_session(settings) as session:
        report = subjects.rekey(session, rules)
    with db_session(settings) as session:  # the identifiers' suppression keys, new ring
        filled = suppression.fill_variants(session, rules)
    click.echo(json.dumps(report.__dict__ | {"variants_filled": filled.identifiers}))


@main.command("suppression-keys")
def suppression_keys() -> None:
    """Store the suppression keys (variants) of identifiers that have none under the current
    key ring: those made before migration 0012, or before a key rotation or rekeying. Until
    then such a subject's suppression test keys its identifiers in Python (the same answer)."""
    from app.services.consent import suppression

    settings = Settings.from_env()
    with db_session(settings) as session:
        filled = suppression.fill_variants(session, components(settings).rules)
    click.echo(json.dumps(filled.__dict__))


@main.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (docs/configuration.md) from the settings' declaration."""
    from app.config import reference

    click.echo(reference(), nl=False)


def _cli_act(source: str | None = None) -> Any:
    from app.domain.vocabulary import Method
    from app.services.consent.ledger import Act

    return Act(actor="admin:cli", method=Method.ADMIN, source=source or "cli", capture_point="cli")


@main.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig", lazy=True))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv"]),
    default=None,
    help="Default: from the file name (.csv is CSV, anything else NDJSON).",
)
def import_file(file: Any, dry_run: bool, fmt: str | None) -> None:
    """Import a list of existing choices with their provenance (NDJSON or CSV), with progress."""
    from app.services.imports import jobs
    from app.worker import run_import

    settings = Settings.from_env()
    rules = components(settings).rules
    name = getattr(file, "name", "") or ""
    chosen = jobs.Format(fmt or ("csv" if str(name).lower().endswith(".csv") else "ndjson"))
    with db_session(settings) as session:
        job = jobs.create(session, file, chosen, actor="admin:cli", is_dry_run=dry_run)
        total = job.chunks
        with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:

            def progress(current: Any) -> None:
                bar.update(current.chunks_done - bar.pos)

            job = run_import(session, rules, job.id, progress=progress)
        click.echo(json.dumps(jobs.report(session, job.id).as_data(), default=str))
    if job.state != "done":
        sys.exit(1)


@main.group()
def identifiers() -> None:
    """The identifiers a subject holds (emails, phones, external ids, catalog kinds)."""


@identifiers.command("list")
@click.argument("subject_id")
def identifiers_list(subject_id: str) -> None:
    from app.services.consent.subjects import identifier_data
    from app.services.identity import identifiers as identity

    with db_session(Settings.from_env()) as session:
        rows = [identifier_data(r) for r in identity.listing(session, subject_id)]
    click.echo(json.dumps({"identifiers": rows}, default=str))


@identifiers.command("link")
@click.argument("subject_id")
@click.argument("kind")
@click.argument("value")
@click.option("--source", default=None)
def identifiers_link(subject_id: str, kind: str, value: str, source: str | None) -> None:
    from app.services.consent.subjects import identifier_data
    from app.services.identity import identifiers as identity

    settings = Settings.from_env()
    with db_session(settings) as session:
        row, _ = identity.link(
            session, components(settings).rules, subject_id, kind, value, _cli_act(source)
        )
        click.echo(json.dumps(identifier_data(row), default=str))


@identifiers.command("unlink")
@click.argument("subject_id")
@click.argument("identifier_id")
def identifiers_unlink(subject_id: str, identifier_id: str) -> None:
    from app.services.identity import identifiers as identity

    with db_session(Settings.from_env()) as session:
        identity.unlink(session, subject_id, identifier_id, _cli_act())
    click.echo(f"unlinked {identifier_id}", err=True)


@main.group()
def subjects() -> None:
    """Subjects: merging two records of one person."""


@subjects.command("merge")
@click.argument("subject_id")
@click.argument("other_id")
def subjects_merge(subject_id: str, other_id: str) -> None:
    """Move OTHER_ID's identifiers and history onto SUBJECT_ID."""
    from app.services.identity import merges

    settings = Settings.from_env()
    with db_session(settings) as session:
        merged = merges.merge(session, components(settings).rules, subject_id, other_id, _cli_act())
    click.echo(
        json.dumps(
            {
                "subject_id": merged.subject_id,
                "merged_subject_id": merged.merged_id,
                "identifiers_moved": merged.identifiers_moved,
                "choices_changed": merged.changed,
            }
        )
    )


@main.command()
@click.option(
    "--per-minute",
    type=click.IntRange(min=1),
    default=None,
    help="Mails a minute (default REPERMISSION_PER_MINUTE).",
)
@click.option("--once", is_flag=True, help="Send one minute's worth, then exit.")
def repermission(per_minute: int | None, once: bool) -> None:
    """Ask imported contacts whose proof was not enough to confirm, at a rate you set.

    Each mail is logged as an event; no address is mailed twice within the confirmation
    window. The worker (or the dev server) delivers the mail.
    """
    import time

    from app import create_app
    from app.http import mailer
    from app.services.imports import repermission as asking

    settings = Settings.from_env()
    rate = per_minute or settings.repermission_per_minute
    app = create_app(settings)
    with app.app_context(), db_session(settings) as session:
        while True:
            started = time.monotonic()
            done = asking.run(session, app.extensions["rules"], mailer(), limit=rate)
            click.echo(json.dumps({"mailed": done.mailed, "remaining": done.remaining}))
            if once or not done.remaining:
                break
            time.sleep(max(0.0, 60 - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
