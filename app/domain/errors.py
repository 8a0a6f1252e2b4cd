"""Domain exceptions: they say what went wrong, never which HTTP status it is."""

from collections.abc import Mapping, Sequence


class DomainError(Exception):
    """Base of every rule violation the service reports to its caller."""

    def __init__(self, detail: str, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors) if errors else None


class NotFoundError(DomainError):
    pass


class SubjectErasedError(DomainError):
    pass


class SubjectSuppressedError(DomainError):
    """A subject not erased but under suppression (back by an erased address, unconfirmed)."""


class UnknownTopicError(DomainError):
    """A channel, category or purpose the catalog does not have, or a pair it does not allow."""


class UnpublishedNoticeError(UnknownTopicError):
    """A notice_version never published: an event may cite only wording that can be shown."""


class InvalidIdentifierError(DomainError):
    pass


class ConflictError(DomainError):
    pass


class InvalidTokenError(DomainError):
    """A signed link that is forged, malformed or meant for something else."""


class ExpiredTokenError(InvalidTokenError):
    pass


class UsedTokenError(InvalidTokenError):
    pass


class InvalidWebhookError(DomainError):
    """A receiver URL or event type the service will not deliver to."""


class InvalidSignatureError(DomainError):
    """An inbound provider call whose signature does not verify."""
