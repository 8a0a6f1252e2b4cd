"""Seed a database with N subjects quickly: bulk rows with a real hash chain and real HMACs.

Every subject i has the email ``user{i}@bench.example``, an email-channel grant and an
email/newsletter grant; every tenth (i % 10 == 9) has withdrawn the newsletter since. So a
check for email/newsletter answers granted, withdrawn, or (for an unknown email) no_record.
The events are hashed with app.domain.chain.event_hash and continue the chain from its head,
so ``consent-center audit verify`` passes. PostgreSQL is loaded with COPY, SQLite with
executemany, both in one transaction.

    python -m bench.seed --database-url URL --subjects 10000 [--reset]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.chain import FIELDS, event_hash
from app.domain.identifiers import Identifier, identifier_hmac
from app.domain.vocabulary import IdentifierKind
from app.models import ConsentEvent, ConsentState, IdentifierVariant, Subject, SubjectIdentifier
from app.services.consent import ledger, suppression

SECRET_KEY = "bench-secret-key-not-for-production-use-only-bench"
IDENTIFIER_KEY = b"bench-identifier-key"
CHUNK = 20_000
EVENT_COLUMNS = tuple(f.name for f in FIELDS)
SUBJECT_COLUMNS = ("id", "created_at", "locale", "country", "erased_at")
IDENTIFIER_COLUMNS = ("hmac", "id", "subject_id", "kind", "value", "created_at", "confirmed_at")
VARIANT_COLUMNS = ("identifier_hmac", "ring", "key")
STATE_COLUMNS = (
    "subject_id",
    "channel",
    "category",
    "purpose",
    "status",
    "event_seq",
    "event_id",
    "occurred_at",
)


def email_for(i: int) -> str:
    return f"user{i}@bench.example"


def external_id_for(i: int) -> str:
    return f"crm-{i}"


def subject_id_for(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012x}"


def expected_reason(i: int) -> str:
    """What a check of email/newsletter answers for subject i."""
    return "withdrawn" if i % 10 == 9 else "granted"


@dataclass(frozen=True)
class Seeded:
    subjects: int
    events: int
    seconds: float


def bench_settings(database_url: str, instance: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        identifier_key=IDENTIFIER_KEY,
        instance_path=instance,
        ratelimit_enabled=False,
    )


def reset(settings: Settings) -> None:
    """An empty, migrated database with the shipped notices published."""
    from app.cli import upgrade_database
    from app.database import make_engine

    if settings.is_sqlite:
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        engine = make_engine(settings.database_url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade_database(settings)


def count_subjects(engine: Engine) -> int:
    with Session(engine) as session:
        try:
            return int(session.scalar(select(func.count()).select_from(Subject)) or 0)
        except Exception:  # no schema yet
            return -1


def seed(engine: Engine, identifier_key: bytes, subjects: int, *, first: int = 0) -> Seeded:
    """Append subjects first .. first+subjects-1 to the chain, in one transaction."""
    started = time.perf_counter()
    events = 0
    with Session(engine) as session:
        head = ledger.lock(session)
        seq, prev_hash = head.last_seq, head.last_hash
        base_time = datetime.now(UTC) - timedelta(days=30)
        connection = session.connection()
        for start in range(first, first + subjects, CHUNK):
            stop = min(start + CHUNK, first + subjects)
            rows = _Rows()
            for i in range(start, stop):
                seq, prev_hash = rows.add_subject(identifier_key, i, seq, prev_hash, base_time)
            events += len(rows.events)
            if engine.dialect.name == "postgresql":
                _copy(connection, rows)
            else:
                _executemany(connection, rows)
        head.last_seq, head.last_hash = seq, prev_hash
        session.commit()
    return Seeded(subjects, events, time.perf_counter() - started)


class _Rows:
    def __init__(self) -> None:
        self.subjects: list[tuple[Any, ...]] = []
        self.identifiers: list[tuple[Any, ...]] = []
        self.variants: list[tuple[Any, ...]] = []  # as `suppression.store_variants` makes them
        self.events: list[tuple[Any, ...]] = []
        self.states: list[tuple[Any, ...]] = []

    def add_subject(
        self, key: bytes, i: int, seq: int, prev_hash: str, base_time: datetime
    ) -> tuple[int, str]:
        subject_id = subject_id_for(i)
        created = base_time + timedelta(microseconds=i * 3)
        email = email_for(i)
        self.subjects.append((subject_id, created, "en", "DE", None))
        external = external_id_for(i)
        self.identifiers.append(
            (
                identifier_hmac(key, IdentifierKind.EMAIL, email),
                f"00000000-0000-4000-a000-{i:012x}",
                subject_id,
                "email",
                email,
                created,
                created,  # confirmed: the seeded people confirmed their addresses
            )
        )
        self.identifiers.append(
            (
                identifier_hmac(key, IdentifierKind.EXTERNAL_ID, external),
                f"00000000-0000-4000-b000-{i:012x}",
                subject_id,
                "external_id",
                external,
                created,
                None,
            )
        )
        ring = suppression.ring_name((key,))
        for row in self.identifiers[-2:]:
            ident = Identifier(IdentifierKind(row[3]), row[4])
            self.variants.extend(
                (row[0], ring, variant) for variant in suppression.keys_under((key,), ident)
            )
        plan = [("email", "", "granted"), ("email", "newsletter", "granted")]
        if i % 10 == 9:
            plan.append(("email", "newsletter", "withdrawn"))
        state: dict[tuple[str, str], tuple[Any, ...]] = {}
        for offset, (channel, category, status) in enumerate(plan):
            seq += 1
            record: dict[str, Any] = {
                "chain_id": ledger.CHAIN_ID,
                "seq": seq,
                "id": f"00000000-0000-4000-9000-{seq:012x}",
                "occurred_at": created + timedelta(microseconds=offset),
                "subject_id": subject_id,
                "channel": channel,
                "category": category or None,
                "purpose": None,
                "action": "grant" if status == "granted" else "withdraw",
                "status": status,
                "legal_basis": "consent",
                "method": "import",
                "source": "bench",
                "actor": "bench:seed",
                "capture_point": None,
                "locale": "en",
                "notice_version": None,
                "notice_sha256": None,
                "evidence_hash": None,
                "details": None,
                "prev_hash": prev_hash,
            }
            record["hash"] = prev_hash = event_hash(record)
            self.events.append(tuple(record[c] for c in EVENT_COLUMNS))
            state[(channel, category)] = (
                subject_id,
                channel,
                category,
                "",
                status,
                seq,
                record["id"],
                record["occurred_at"],
            )
        self.states.extend(state.values())
        return seq, prev_hash


def _copy(connection: Any, rows: _Rows) -> None:
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:
        for table, columns, values in _tables(rows):
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)


def _executemany(connection: Any, rows: _Rows) -> None:
    models: dict[str, type[Any]] = {
        "subjects": Subject,
        "subject_identifiers": SubjectIdentifier,
        "identifier_variants": IdentifierVariant,
        "consent_events": ConsentEvent,
        "consent_state": ConsentState,
    }
    for table, columns, values in _tables(rows):
        connection.execute(
            insert(models[table]).execution_options(render_nulls=True),
            [dict(zip(columns, row, strict=True)) for row in values],
        )


def _tables(rows: _Rows) -> Iterator[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    yield "subjects", SUBJECT_COLUMNS, rows.subjects
    yield "subject_identifiers", IDENTIFIER_COLUMNS, rows.identifiers
    yield "identifier_variants", VARIANT_COLUMNS, rows.variants
    yield "consent_events", EVENT_COLUMNS, rows.events
    yield "consent_state", STATE_COLUMNS, rows.states


def ensure(database_url: str, subjects: int, instance: Path, *, force: bool = False) -> bool:
    """Seed `subjects` into a fresh database unless it already holds exactly that many."""
    from app.database import make_engine

    settings = bench_settings(database_url, instance)
    engine = make_engine(database_url)
    try:
        if not force and count_subjects(engine) == subjects:
            return False
        engine.dispose()
        reset(settings)
        result = seed(engine, IDENTIFIER_KEY, subjects)
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:  # committed: a rolled-back ANALYZE keeps no stats
                connection.execute(text("ANALYZE"))
        print(
            f"seeded {result.subjects:,} subjects, {result.events:,} events "
            f"in {result.seconds:.1f} s",
            flush=True,
        )
        return True
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--subjects", type=int, required=True)
    parser.add_argument("--reset", action="store_true", help="seed even if already seeded")
    parser.add_argument("--instance", type=Path, default=Path("bench/results/instance"))
    args = parser.parse_args()
    if not ensure(args.database_url, args.subjects, args.instance, force=args.reset):
        print(f"already seeded with {args.subjects:,} subjects", flush=True)


if __name__ == "__main__":
    main()
