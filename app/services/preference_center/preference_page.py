"""The person's preference page: show it, save it, honour Global Privacy Control, add an
address or number, email a link."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.consent import (
    PreferencesView,
    legal_basis,
    offered_channels,
    pair_topic,
    preferences_view,
    purpose_topic,
)
from app.domain.errors import DomainError, InvalidIdentifierError, NotFoundError
from app.domain.identifiers import Identifier, identifier
from app.domain.rules import Rules
from app.domain.vocabulary import Action, IdentifierKind, Method, Reason, Status
from app.models import ConsentEvent, NoticeVersion, Subject, SubjectIdentifier, utcnow
from app.services.consent import ledger, notices, preferences, subjects, suppression
from app.services.delivery import mail
from app.services.identity import identifiers
from app.services.optin import confirmation
from app.services.preference_center.message_links import preference_url
from app.services.tokens import Purpose, Tokens

LINK_MAIL = "preference_link"
NO_RECORD_MAIL = "no_preferences"
LINK_MAIL_INTERVAL = timedelta(minutes=10)  # one mail per address per interval: no mail bombing
NO_SUBJECT = ""  # an id no subject has
CONTACT_TAKEN_MAIL = "contact_taken"
# The channel whose permission an added contact point carries, and whose policy says whether
# it needs its own confirmation first (rules.needs_double_opt_in, as POST /v1/subscriptions).
CONTACT_CHANNEL = {IdentifierKind.EMAIL: "email", IdentifierKind.PHONE: "sms"}
GPC_ACTOR = "browser:gpc"
PAGE_ACTOR = "subject"


@dataclass(frozen=True)
class Notice:
    version: str
    title: str
    text: str


@dataclass(frozen=True)
class PreferencePage:
    """What the preference page shows: the subject's choices, the notice and the GPC outcome."""

    subject_id: str
    locale: str
    view: PreferencesView
    notice: Notice | None
    is_gpc_honoured: bool
    is_gpc_overridden: bool = False  # the person allowed sharing on this page after the signal
    # Channels the page offers: those with a contact point held for the person (no SMS box
    # for someone with no number), and those they already chose on.
    offered: frozenset[str] = frozenset()
    identifiers: tuple[SubjectIdentifier, ...] = ()  # every address and number held, and whence


@dataclass(frozen=True)
class PreferenceVisit:
    """Who is on the page and what they send with it: the evidence of every event it writes."""

    ip: str | None = None
    user_agent: str | None = None
    is_gpc: bool = False


class ContactRefusedError(InvalidIdentifierError):
    """An address or number that may not be added: it is under suppression."""


def subject_of(tokens: Tokens, token: str) -> str:
    return tokens.open(Purpose.PREFERENCES, token).subject_id


def show(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    token: str,
    visit: PreferenceVisit,
    *,
    pick_locale: Callable[[str | None], str],
    now: datetime | None = None,
) -> PreferencePage:
    """The page for the token's subject, after recording a GPC opt-out if the browser sent one.

    `pick_locale` gets the subject's stored locale and answers the page's (?lang=, cookie, ...).
    """
    subject_id = subject_of(tokens, token)
    now = now or utcnow()
    overridden = _honour_gpc(session, rules, subject_id, visit, now) if visit.is_gpc else False
    subject = subjects.get(session, subject_id)
    locale = pick_locale(subject.locale)
    view = preferences.view(session, rules, subject_id, now=now)
    page = PreferencePage(
        subject_id,
        locale,
        view,
        _notice(session, locale),
        visit.is_gpc and not overridden,
        overridden,
        _offered(session, rules, subject_id, view),
        tuple(identifiers.held_by(session, subject.id)),
    )
    session.commit()
    return page


def _honour_gpc(
    session: Session, rules: Rules, subject_id: str, visit: PreferenceVisit, now: datetime
) -> bool:
    """Opt out of every purpose GPC concerns, once: nothing new while it stays withdrawn.

    A grant the person made on this page is an explicit choice that overrides the browser's
    general signal (CCPA regulations § 7025(c)(3)); the page then says so. Returns whether
    such a choice stood in the signal's way.
    """
    head = ledger.lock(session)
    subjects.get(session, subject_id)
    wanted = [purpose_topic(p) for p in rules.catalog.gpc_purposes()]
    current = ledger.standings(session, subject_id, wanted)
    chosen = {
        topic
        for topic, standing in current.items()
        if standing.status is Status.GRANTED and _chosen_on_page(session, standing.event_id)
    }
    drafts = [
        ledger.Draft(
            Action.WITHDRAW,
            subject_id=subject_id,
            topic=topic,
            status=Status.WITHDRAWN,
            legal_basis=legal_basis(rules.catalog, topic),
            details={"signal": "Sec-GPC: 1"},
        )
        for topic in wanted
        if topic not in chosen
        and ((s := current.get(topic)) is None or s.status is not Status.WITHDRAWN)
    ]
    if drafts:
        act = ledger.Act(
            actor=GPC_ACTOR,
            method=Method.GPC,
            source="preference_page",
            capture_point="preference_page",
            ip=visit.ip,
            user_agent=visit.user_agent,
        )
        ledger.append(session, head, act, drafts, now=now)
    return bool(chosen)


def _chosen_on_page(session: Session, event_id: str) -> bool:
    """Made by the person on this page: an API client's claim to the method is not enough."""
    made = session.execute(
        select(ConsentEvent.method, ConsentEvent.actor).where(ConsentEvent.id == event_id)
    ).first()
    return made is not None and tuple(made) == (Method.PREFERENCE_PAGE, PAGE_ACTOR)


def _notice(session: Session, locale: str) -> Notice | None:
    try:
        found = notices.current(session, notices.CONSENT_NOTICE, locale)
    except NotFoundError:
        return None
    return Notice(found.version, found.title, found.text)


def save(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    token: str,
    visit: PreferenceVisit,
    *,
    pairs: Collection[tuple[str, str]],
    purposes: Collection[str],
    locale: str,
    notice_version: str | None,
    now: datetime | None = None,
) -> int:
    """Make the page's boxes true: `pairs` and `purposes` are those ticked, the rest are not.

    Only what differs from what the page showed becomes an event, one per topic, so saving an
    untouched page writes nothing. Returns how many events were written.
    """
    subject_id = subject_of(tokens, token)
    now = now or utcnow()
    head = ledger.lock(session)
    subject = subjects.get(session, subject_id)
    current = ledger.standings(session, subject_id)
    shown = preferences_view(
        rules.catalog,
        current,
        is_suppressed=suppression.is_suppressed(session, rules, subject_id=subject_id),
        now=now,
        max_age=rules.max_consent_age,
    )
    changes: list[preferences.Change] = []
    offered = _offered(session, rules, subject_id, shown)
    for pair in shown.pairs:
        # A box the page did not offer (a channel with no contact point) is never granted.
        wanted = (pair.channel, pair.category) in pairs and pair.channel in offered
        if wanted == pair.decision.allowed:
            continue
        # Ticking a box of a channel awaiting confirmation leaves it pending: the page's link
        # can be passed on (an API client asks for it), so only the confirmation link proves
        # the mailbox.
        status = Status.GRANTED if wanted else Status.WITHDRAWN
        changes.append(preferences.Change(pair_topic(pair.channel, pair.category), status))
    for purpose in shown.purposes:
        wanted = purpose.purpose in purposes
        if wanted != purpose.decision.allowed:
            status = Status.GRANTED if wanted else Status.WITHDRAWN
            changes.append(preferences.Change(purpose_topic(purpose.purpose), status))
    preferences.validate_changes(rules, changes)
    awaiting = preferences.awaiting_confirmation(session, rules, subject, current)
    drafts = preferences.plan_changes(rules, subject_id, changes, current, awaiting=awaiting)
    if drafts:
        ledger.append(
            session, head, _page_act(session, visit, locale, notice_version), drafts, now=now
        )
    session.commit()
    return len(drafts)


def unsubscribe_all(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    token: str,
    visit: PreferenceVisit,
    *,
    locale: str,
    notice_version: str | None,
    now: datetime | None = None,
) -> None:
    subject_id = subject_of(tokens, token)
    act = _page_act(session, visit, locale, notice_version)
    preferences.withdraw_all(session, subject_id, act, now=now or utcnow())
    session.commit()


def remove_identifier(
    session: Session,
    tokens: Tokens,
    token: str,
    identifier_id: str,
    visit: PreferenceVisit,
    *,
    locale: str,
    now: datetime | None = None,
) -> None:
    """The person removes one of their addresses or numbers; the unlink is an event."""
    subject_id = subject_of(tokens, token)
    act = replace(_page_act(session, visit, locale, None), notice_version=None)
    identifiers.remove(session, subject_id, identifier_id, act, now=now or utcnow())
    session.commit()


def add_contact(
    session: Session,
    rules: Rules,
    mailer: confirmation.Mailer,
    token: str,
    visit: PreferenceVisit,
    *,
    kind: IdentifierKind,
    value: str,
    locale: str,
    now: datetime | None = None,
) -> None:
    """The person adds an email address or a phone number on their page.

    A new one is linked to them (a `link` event, actor subject, source preference_page). An
    email address then gets its own double opt-in mail: until it confirms, the check answers
    `pending_confirmation` for it, and confirming grants there what the person chose on the
    channel. A number needs a confirmation only where the channel's policy says so.

    The page answers the same whatever happens here. An address another person holds is
    neither linked nor named: its owner is told by mail instead (at most once per interval),
    so one mail goes to the address typed either way. A suppressed address is refused
    (ContactRefusedError), a malformed one too (InvalidIdentifierError).
    """
    subject_id = subject_of(mailer.tokens, token)
    now = now or utcnow()
    ident = identifier(kind, value, region=subjects.get(session, subject_id).country)
    head = ledger.lock(session)
    subject = subjects.get(session, subject_id)
    if suppression.is_suppressed(session, rules, ident=ident):
        message = "This address or number asked not to be contacted, so it cannot be added."
        raise ContactRefusedError(message, {"value": [message]})
    key = ident.key(rules.identifier_key)
    held = session.get(SubjectIdentifier, key)
    act = replace(_page_act(session, visit, locale, None), notice_version=None)
    channel = CONTACT_CHANNEL[kind]
    if held is not None and held.subject_id != subject.id:
        if kind is IdentifierKind.EMAIL:
            _tell_owner(session, rules, mailer, held, locale, now)
    else:
        row = held or identifiers.attach(session, rules, head, subject.id, ident, key, act, now=now)
        if row.confirmed_at is None and rules.needs_double_opt_in(channel, subject.country):
            chosen = _chosen(session, rules, subject.id, channel, now)
            is_mailed = kind is IdentifierKind.EMAIL
            confirmation.ask(
                session, rules, mailer, row, channel, chosen, act, now=now, is_mailed=is_mailed
            )
    session.commit()


def _chosen(
    session: Session, rules: Rules, subject_id: str, channel: str, now: datetime
) -> list[str]:
    """The categories the person chose on `channel`, granted or awaiting a confirmation."""
    view = ledger.current_view(session, rules, subject_id, now=now)
    return [
        pair.category
        for pair in view.pairs
        if pair.channel == channel
        and (pair.decision.allowed or pair.decision.reason is Reason.PENDING_CONFIRMATION)
    ]


def _tell_owner(
    session: Session,
    rules: Rules,
    mailer: confirmation.Mailer,
    held: SubjectIdentifier,
    locale: str,
    now: datetime,
) -> None:
    """Tell the holder of an address that someone tried to add it to their own page."""
    if mail.sent_recently(
        session, held.subject_id, CONTACT_TAKEN_MAIL, since=now - LINK_MAIL_INTERVAL
    ):
        return
    owner = subjects.get(session, held.subject_id)
    rendered = mailer.templates.render(
        CONTACT_TAKEN_MAIL,
        owner.locale or locale,
        {
            "sender": rules.catalog.controller.get("name", "Consent Center"),
            "request_url": f"{mailer.base_url}/preferences",
        },
    )
    mail.enqueue(
        session,
        rendered,
        to=held.value,
        mail_from=mailer.mail_from,
        subject_id=held.subject_id,
        now=now,
    )


def _page_act(
    session: Session, visit: PreferenceVisit, locale: str, notice_version: str | None
) -> ledger.Act:
    """The proof of a choice made on the page, tied to the notice version the page showed."""
    shown: NoticeVersion | None = notices.resolve(session, notice_version, locale)
    if shown is None or shown.key != notices.CONSENT_NOTICE:
        notice = _notice(session, locale)
        version = notice.version if notice else None
    else:
        version = shown.version
    return ledger.Act(
        actor=PAGE_ACTOR,
        method=Method.PREFERENCE_PAGE,
        source="preference_page",
        capture_point="preference_page",
        locale=locale,
        notice_version=version,
        ip=visit.ip,
        user_agent=visit.user_agent,
    )


def request_link(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    templates: mail.MailTemplates,
    email: str,
    *,
    base_url: str,
    mail_from: str,
    locale: str,
    now: datetime | None = None,
) -> None:
    """Email a preference link to a known address, at most once per interval.

    The caller answers the same whatever happens here, and the work is the same too: the same
    three reads, known or not, then one mail through the outbox (an unknown address is told
    that nothing is held for it; the per-mailbox rate limit bounds both). A suppressed or
    malformed address gets no mail.
    """
    try:
        ident: Identifier | None = identifier(IdentifierKind.EMAIL, email)
    except DomainError:
        ident = None
    if ident is not None:
        _mail_link(
            session,
            rules,
            tokens,
            templates,
            ident,
            to=email.strip(),
            base_url=base_url,
            mail_from=mail_from,
            locale=locale,
            now=now or utcnow(),
        )
    session.commit()


def _mail_link(
    session: Session,
    rules: Rules,
    tokens: Tokens,
    templates: mail.MailTemplates,
    ident: Identifier,
    *,
    to: str,
    base_url: str,
    mail_from: str,
    locale: str,
    now: datetime,
) -> None:
    found = session.execute(
        select(Subject.id, Subject.locale)
        .join(SubjectIdentifier, SubjectIdentifier.subject_id == Subject.id)
        .where(
            SubjectIdentifier.hmac.in_(ident.keys(rules.identifier_keys)),
            Subject.erased_at.is_(None),
        )
        .limit(1)
    ).first()
    subject_id, subject_locale = (found[0], found[1]) if found else (None, None)
    is_suppressed = suppression.is_suppressed(session, rules, ident=ident)
    # Asked for an unknown address too (of an id no subject has), so that it costs the same.
    is_recent = mail.sent_recently(
        session, subject_id or NO_SUBJECT, LINK_MAIL, since=now - LINK_MAIL_INTERVAL
    )
    sender = rules.catalog.controller.get("name", "Consent Center")
    if subject_id is None:
        rendered = templates.render(NO_RECORD_MAIL, locale, {"sender": sender})
    else:
        rendered = templates.render(
            LINK_MAIL,
            subject_locale or locale,
            {
                "url": preference_url(tokens, base_url, subject_id),
                "days": tokens.ttl(Purpose.PREFERENCES).days,
                "sender": sender,
                "request_url": f"{base_url}/preferences",
            },
        )
    if not is_suppressed and not is_recent:
        mail.enqueue(session, rendered, to=to, mail_from=mail_from, subject_id=subject_id, now=now)


def _offered(
    session: Session, rules: Rules, subject_id: str, view: PreferencesView
) -> frozenset[str]:
    held = session.scalars(
        select(SubjectIdentifier.kind).where(SubjectIdentifier.subject_id == subject_id)
    )
    return offered_channels(rules.catalog, set(held), view)
