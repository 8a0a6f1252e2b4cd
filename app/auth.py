"""OAuth 2 for the API: client credentials at /oauth/token, RFC 9068 JWT access tokens,
and the scope check on every /v1 route.

Tokens are signed (HS256, key derived from SECRET_KEY) and checked in memory, so a check call
costs no database round trip for auth. A revoked or deleted client is refused within
`revocation_refresh` (the set of active clients is re-read at most that often).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from flask import Flask, current_app, g, request
from joserfc.jwk import OctKey
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import AuthError
from app.extensions import db
from app.models import OAuthClient
from app.services import clients

RESOURCE = "consent-center-api"
F = TypeVar("F", bound=Callable[..., Any])


class Client(ClientMixin):  # type: ignore[misc]
    """Authlib's view of a stored client."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.scopes = row.scopes.split()

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.check_secret(self.row.secret_hash, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return bool(grant_type == "client_credentials")


class UnknownClient(Client):
    """Stands in for a client id that does not exist or was revoked: its secret check costs
    what a real one does and always fails, so neither the answer nor its timing tells an
    attacker whether the id exists."""

    def __init__(self, client_id: str) -> None:
        super().__init__(
            OAuthClient(client_id=client_id, name="", secret_hash="", scopes="", created_at=None)
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.check_unknown_secret(client_secret)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_requested_scope(self) -> None:
        """RFC 6749 §5.2: asking for a scope the client does not hold is invalid_scope."""
        scope = self.request.payload.scope
        if scope and not set(scope.split()) <= set(self.request.client.scopes):
            raise InvalidScopeError()


class TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, key: OctKey, issuer: str, ttl: int) -> None:
        super().__init__(issuer=issuer, alg="HS256", expires_generator=lambda _c, _g: ttl)
        self.key = key

    def get_jwks(self) -> OctKey:
        return self.key

    def get_audiences(self, client: Client, user: Any, scope: str) -> str:
        return RESOURCE


class TokenValidator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, key: OctKey, issuer: str, active_clients: ActiveClients) -> None:
        super().__init__(issuer=issuer, resource_server=RESOURCE)
        self.key = key
        self.active_clients = active_clients

    def get_jwks(self) -> OctKey:
        return self.key

    def validate_token(self, token: Any, scopes: Any, request: Any, **kwargs: Any) -> None:
        super().validate_token(token, scopes, request, **kwargs)
        if not self.active_clients.contains(str(token.get("client_id"))):
            raise InvalidTokenError(description="The client is revoked or unknown.")


class VerifiedTokens:
    """Tokens whose signature and claims were verified, keyed by the Authorization header.

    A repeat call skips the JWT decode; scope and revocation (ActiveClients) are still checked
    on every call, and an entry is never used past its token's `exp`. Bounded: the oldest
    entry goes first.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[Any, float, frozenset[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, header: str, scope: str) -> Any | None:
        """The verified token if it is still unexpired and holds `scope`, else None."""
        entry = self._entries.get(header)
        if entry is None:
            return None
        token, expires_at, scopes = entry
        if time.time() >= expires_at or scope not in scopes:
            return None
        return token

    def client_of(self, header: str) -> str | None:
        """The client a cached header's token was issued to, whatever its scope or expiry: its
        signature was verified when it was cached (what the rate limiter's key needs)."""
        entry = self._entries.get(header)
        client_id = entry[0].get("client_id") if entry is not None else None
        return client_id if isinstance(client_id, str) and client_id else None

    def put(self, header: str, token: Any) -> None:
        scopes = frozenset(str(token.get("scope") or "").split())
        entry = (token, float(token["exp"]), scopes)
        with self._lock:
            self._entries.pop(header, None)
            self._entries[header] = entry
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


class ActiveClients:
    """The ids of clients that may use the API, re-read from the database every `ttl` seconds.

    An id not in the set (a client created since the last read) is looked up on its own, so a
    new client works at once while a revoked one is refused within `ttl`.
    """

    def __init__(
        self, load: Callable[[], set[str]], is_active: Callable[[str], bool], ttl: float
    ) -> None:
        self._load, self._is_active, self._ttl = load, is_active, ttl
        self._ids: set[str] = set()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def contains(self, client_id: str) -> bool:
        if time.monotonic() - self._loaded_at > self._ttl:
            with self._lock:
                self._ids, self._loaded_at = self._load(), time.monotonic()
        if client_id in self._ids:
            return True
        if self._is_active(client_id):
            with self._lock:
                self._ids = self._ids | {client_id}
            return True
        return False


def init_auth(app: Flask, settings: Settings, key: OctKey) -> AuthorizationServer:
    issuer = settings.base_url

    def query_client(client_id: str) -> Client:
        row = db.session.get(OAuthClient, client_id)
        if row is None or row.revoked_at is not None:
            return UnknownClient(client_id)
        return Client(row)

    def save_token(token: dict[str, Any], request: Any) -> None:
        """Access tokens are self-contained JWTs: nothing to store."""

    with (
        app.app_context()
    ):  # the engine itself: the fast check (app/api/fastcheck) has no app context
        engine = db.engine

    def load_active() -> set[str]:
        with Session(engine) as session:
            return clients.active_ids(session)

    def is_active(client_id: str) -> bool:
        with Session(engine) as session:
            return clients.is_active(session, client_id)

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(ClientCredentialsGrant)
    ttl = int(settings.access_token_ttl.total_seconds())
    server.register_token_generator("default", TokenGenerator(key, issuer, ttl))
    active = ActiveClients(load_active, is_active, settings.revocation_refresh.total_seconds())
    protector = ResourceProtector()  # one per app: Authlib keeps the first validator it is given
    protector.register_token_validator(TokenValidator(key, issuer, active))
    app.extensions["oauth_server"] = server
    app.extensions["resource_protector"] = protector
    app.extensions["active_clients"] = active
    app.extensions["verified_tokens"] = VerifiedTokens()
    return server


def require(scope: str) -> Callable[[F], F]:
    """The route needs a valid bearer token holding `scope`: 401 without one, 403 without scope."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            verified: VerifiedTokens = current_app.extensions["verified_tokens"]
            token = verified.get(header, scope)
            if token is None or not current_app.extensions["active_clients"].contains(
                str(token.get("client_id"))
            ):
                try:
                    token = current_app.extensions["resource_protector"].acquire_token([scope])
                except OAuth2Error as error:
                    raise AuthError.from_oauth(error) from None
                verified.put(header, token)
            g.client_id = token.get("client_id")
            g.scopes = frozenset(str(token.get("scope") or "").split())
            return view(*args, **kwargs)

        wrapped.required_scope = scope  # type: ignore[attr-defined]  # read by app/api/openapi
        return wrapped  # type: ignore[return-value]

    return decorator


def has_scope(scope: str) -> bool:
    """Whether the token of this request holds `scope` too (beyond the one its route needs)."""
    return scope in g.get("scopes", frozenset())


def current_client_id() -> str:
    return str(g.get("client_id", "unknown"))
