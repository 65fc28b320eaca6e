"""Gatehouse: a single-file user and auth service.

Accounts, login, rotating refresh tokens, instant revocation and an admin CLI
(`cli.py`) over the same functions.

Run it:      uvicorn service:app
Embed it:    service.mount_gatehouse(host, "/auth", Settings(...))   # host routes can use CurrentUser
Settings:    environment variables or a `.env` file in the working directory
             (see `Settings`); with none at all it runs on a SQLite file and an
             in-process cache. Production: PostgreSQL + Redis, many instances.

Sections, top to bottom (each under a `# Name ####` banner, each using only those above it):
    Errors          ServiceError and one subclass per machine-readable code
    Settings        the vocabulary (roles, scopes, algorithms) and `Settings`
    Observability   JSON logs, request ids, Prometheus metrics
    Database        models, engine
    Migrations      append-only schema changes, applied once across instances
    Security        password hashing, tokens, sealing, API key format
    Cache and rate limiting   near cache + Redis, GCRA limits
    Mail            templates, SMTP and webhook transports, the delivery queue
    Federation      OpenID Connect and GitHub clients (Authlib, joserfc): discovery, JWKS, ID tokens
    Service functions         runtime; users; signing keys; API keys; action tokens and mail;
                    passwords and login codes; sessions; second factors; TOTP and recovery codes;
                    passkeys; step-up and sign-in; account lifecycle; federated sign-in;
                    audit, configuration and health (each a `# Service functions: name ---` banner)
    Schemas         request and response models
    Dependencies    the caller (`CurrentUser`, `require_scope`, `require_mfa`)
    Routes          thin: parse, call one service function, answer
    App factory     error mapping, the edge middleware, `create_app`, `mount_gatehouse`
"""

import asyncio
import atexit
import base64
import bisect
import collections
import contextlib
import dataclasses
import functools
import gc
import hashlib
import hmac
import html
import inspect
import ipaddress
import itertools
import json
import logging
import math
import os
import re
import secrets
import sqlite3
import ssl
import string
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import bcrypt
import cachetools
import email_validator
import httpx
import jwt
import orjson
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import OAuth2PasswordBearer
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.exceptions import HTTPException as StarletteHTTPException

__version__ = "0.1.0"
log = logging.getLogger("gatehouse")


# Errors ######################################################################
#
# One class per machine-readable code: a caller (and the README's table, which a test
# compares with these classes) can rely on `code` meaning one thing. The HTTP layer alone
# turns them into responses (see the App factory).


class ConfigError(Exception):
    """The configuration cannot work; the message names the setting."""


class ServiceError(Exception):
    """Root of every error the service reports to a caller: an HTTP status, a stable code, a message."""

    status_code: int = 400
    code: str = "bad_request"
    message: str = "The request cannot be served."
    headers: dict[str, str] = {}
    details: list[dict[str, Any]] | None = None  # what a caller needs to go on (e.g. a link token)

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class MalformedJson(ServiceError):
    status_code, code, message = 400, "malformed_json", "The body is not valid JSON."


class InvalidInput(ServiceError):
    status_code, code, message = 422, "invalid_input", "The request is not valid."


class InvalidCursor(InvalidInput):
    code, message = "invalid_cursor", "cursor: not a cursor this service issued"


class NotAuthenticated(ServiceError):
    status_code, code, message = 401, "not_authenticated", "Authentication is required."
    headers = {"WWW-Authenticate": "Bearer"}


class InvalidCredentials(NotAuthenticated):
    code, message = "invalid_credentials", "Incorrect email or password."


class ReauthenticationRequired(NotAuthenticated):
    code = "reauthentication_required"
    message = (
        "This action needs a recent sign-in: send your current password as `password`, "
        "or call POST /auth/reauthenticate first."
    )


class LoginCodeRequired(NotAuthenticated):
    code = "login_code_required"
    message = (
        "This account is protected after many failed sign-ins. If the password was right, a one-time "
        "code was sent to the account's email address: send it again with the password as `code`."
    )


class InvalidToken(NotAuthenticated):
    code, message = "invalid_token", "The token is invalid or has expired."


class WrongTokenType(InvalidToken):
    code, message = "wrong_token_type", "A token of another kind was sent where an access token is required."


class InvalidAlgorithm(InvalidToken):
    code, message = "invalid_algorithm", "The token's algorithm is not allowed for its key."


class UnknownKey(InvalidToken):
    code, message = "unknown_key", "The token was signed with an unknown or retired key."


class InvalidAudience(InvalidToken):
    code, message = "invalid_audience", "The token is meant for another audience."


class InvalidIssuer(InvalidToken):
    code, message = "invalid_issuer", "The token comes from another issuer."


class TokenExpired(InvalidToken):
    code, message = "token_expired", "The token has expired."


class SessionRevoked(InvalidToken):
    code, message = "session_revoked", "The session has ended."


class RefreshTokenReused(InvalidToken):
    code, message = "refresh_token_reused", "This refresh token was already used; the session has been ended."


class InvalidApiKey(NotAuthenticated):
    code, message = "invalid_api_key", "The API key is invalid, revoked or expired."


class ApiKeyExpired(InvalidApiKey):
    code, message = "api_key_expired", "The API key has expired."


class InvalidActionToken(ServiceError):
    status_code, code, message = 400, "invalid_or_expired_token", "The link is invalid, used or expired."


class FactorProofRequired(NotAuthenticated):
    code = "factor_proof_required"
    message = (
        "Adding or removing a second factor needs a proof in this request: a second factor (`otp`, "
        "`recovery_code` or `passkey`) when the account has one, else the `password` (an account without "
        "either: `email_code`, from POST /auth/email-code)."
    )


class WrongPassword(ServiceError):
    status_code, code, message = 400, "wrong_password", "The current password is not correct."


class Forbidden(ServiceError):
    status_code, code, message = 403, "forbidden", "You may not do this."


class InsufficientScope(Forbidden):
    code, message = "insufficient_scope", "The credential lacks a scope this needs."


class AccessTokenRequired(Forbidden):
    code, message = "access_token_required", "This needs a session's access token, not an API key."


class SessionRequired(Forbidden):
    code, message = "session_required", "This action needs a signed-in session, not an API key."


class KeyOutlivesParent(Forbidden):
    code, message = "key_outlives_parent", "A key made by a key cannot outlive the key that made it."


class InvalidMfaToken(NotAuthenticated):
    code, message = "invalid_mfa_token", "The MFA token is invalid, used or expired: sign in with your password again."


class InvalidOtp(NotAuthenticated):
    code, message = "invalid_otp", "The code is wrong, expired or already used."


class PasskeyRejected(NotAuthenticated):
    code, message = "passkey_rejected", "The passkey response could not be verified."


class MfaRequired(Forbidden):
    code, message = "mfa_required", "This needs a sign-in with a second factor."


class MfaEnrollmentRequired(Forbidden):
    code = "mfa_enrollment_required"
    message = (
        "Admin power needs a sign-in with a second factor: enroll one (POST /mfa/totp or a passkey), then sign "
        "in with it or call POST /auth/reauthenticate with `otp` or `passkey`; an admin API key must be made so."
    )


class MfaNotEnabled(ServiceError):
    status_code, code, message = 409, "mfa_not_enabled", "This account has no second factor for this."


class TotpAlreadyEnabled(ServiceError):
    status_code, code, message = (
        409,
        "totp_already_enabled",
        "An authenticator app is already enrolled; remove it first.",
    )


class EmailNotVerified(Forbidden):
    code, message = "email_not_verified", "Verify your email address before logging in."


class SignupDisabled(Forbidden):
    code, message = "signup_disabled", "Registration is closed."


class NotFound(ServiceError):
    status_code, code, message = 404, "not_found", "Not found."


class UserNotFound(NotFound):
    code, message = "user_not_found", "No such user."


class ApiKeyNotFound(NotFound):
    code, message = "api_key_not_found", "No such API key."


class SigningKeyNotFound(NotFound):
    code, message = "signing_key_not_found", "No such active signing key."


class SessionNotFound(NotFound):
    code, message = "session_not_found", "No such session."


class PasskeyNotFound(NotFound):
    code, message = "passkey_not_found", "No such passkey."


class EmailTaken(ServiceError):
    status_code, code, message = 409, "email_taken", "An account with this email already exists."


class LastAdmin(ServiceError):
    status_code, code, message = 409, "last_admin", "This would leave no active admin."


class RateLimited(ServiceError):
    status_code, code, message = 429, "rate_limited", "Too many requests; try again later."

    def __init__(self, retry_after: float):
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"Too many requests; retry in {seconds} s.")
        self.headers = {"Retry-After": str(seconds)}


class UnknownProvider(NotFound):
    code, message = "unknown_provider", "No such sign-in provider is configured."


class IdentityNotFound(NotFound):
    code, message = "identity_not_found", "No such linked identity."


class RedirectNotAllowed(ServiceError):
    status_code, code, message = (
        400,
        "redirect_not_allowed",
        "redirect_to is not in OAUTH_REDIRECT_ALLOWLIST.",
    )


class OauthStateMismatch(ServiceError):
    status_code, code, message = (
        400,
        "oauth_state_mismatch",
        "This sign-in was not started here, was already finished, or took too long: start it again.",
    )


class ProviderRejected(NotAuthenticated):
    code, message = "provider_rejected", "The identity provider did not confirm the sign-in."


class IdTokenRejected(ProviderRejected):
    code, message = "id_token_rejected", "The identity provider's ID token did not verify."


class ProviderEmailUnverified(Forbidden):
    code = "provider_email_unverified"
    message = (
        "The identity provider does not vouch for an email address of this account: it cannot create "
        "or link an account. Verify the address at the provider, or sign in another way."
    )


class LinkRequired(ServiceError):
    status_code, code = 409, "link_required"
    message = (
        "An account with this email address exists: prove it is yours to link this sign-in, with its password "
        "(POST /auth/oauth/link) or a link mailed to the address (POST /auth/oauth/link/mail), using `link_token`."
    )

    def __init__(self, link_token: str, provider: str, expires_in: int):
        super().__init__()
        self.details = [{"link_token": link_token, "provider": provider, "expires_in": expires_in}]


class MailLinkRequired(Forbidden):
    code = "mail_link_required"
    message = (
        "This account's address was never verified, so its password proves only who set it: link this sign-in "
        "with a link mailed to the address (POST /auth/oauth/link/mail, with the same `link_token`)."
    )


class IdentityInUse(ServiceError):
    status_code, code, message = (
        409,
        "identity_in_use",
        "This sign-in at the provider is linked to another account; unlink it there first.",
    )


class LastSignInMethod(ServiceError):
    status_code, code, message = (
        409,
        "last_sign_in_method",
        "This is the account's last way to sign in: set a password or add another first.",
    )


class ProviderUnavailable(ServiceError):
    status_code, code, message = (
        502,
        "provider_unavailable",
        "The identity provider cannot be reached; try again shortly.",
    )


class DatabaseUnavailable(ServiceError):
    status_code, code, message = 503, "database_unavailable", "The database is unavailable; try again shortly."


_DB_DOWN_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError, OSError, TimeoutError)


def database_unavailable(exc: BaseException) -> bool:
    """Does an exception raised by database work mean the database cannot be reached?
    (Only for database work: an OSError elsewhere is a bug, not an outage.)"""
    return isinstance(exc, _DB_DOWN_ERRORS) or (isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated)


# Settings ####################################################################

# The vocabulary, defined once: the tuples the code checks against are derived from the
# types the schemas and settings validate with.
Role = Literal["user", "admin"]
Scope = Literal["users:read", "users:write", "keys:read", "keys:write", "admin"]
SigningAlgorithm = Literal["HS256", "EdDSA", "ES256", "RS256"]
ROLES: tuple[str, ...] = get_args(Role)
SCOPES: tuple[str, ...] = get_args(Scope)
SIGNING_ALGORITHMS: tuple[str, ...] = get_args(SigningAlgorithm)
ROLE_SCOPES = {"user": frozenset(SCOPES) - {"admin"}, "admin": frozenset(SCOPES)}

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|m|h|d)[a-z]*\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit: `limit` events per `period` seconds (limit 0 = off)."""

    limit: int
    period: float

    def __str__(self) -> str:
        """As an operator writes it: '100/h', '10/15m', 'off'."""
        if not self.limit:
            return "off"
        for unit, seconds in sorted(_PERIODS.items(), key=lambda item: -item[1]):
            count, rest = divmod(self.period, seconds)
            if not rest:
                return f"{self.limit}/{'' if count == 1 else f'{count:g}'}{unit}"
        return f"{self.limit}/{self.period:g}s"


def parse_rate(value: object) -> Rate:
    """Parse '100/h', '10/15m', '60/minute' or 'off' into a Rate."""
    if isinstance(value, Rate):
        return value
    text = str(value).strip().lower()
    if text in {"", "0", "off", "none"}:
        return Rate(0, 1)
    match = _RATE_RE.match(text)
    if not match:
        raise ValueError(f"rate {value!r} is not of the form N/period, e.g. '100/h' or '10/15m'")
    count, multiple, unit = match.groups()
    return Rate(int(count), float(int(multiple or 1) * _PERIODS[unit.lower()]))


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _json_text(value: object) -> object:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else {}
    return value


def hide_password(url: str) -> str:
    """`url` with the password in it, if any, shown as `***`."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable, so there is no telling which part is the password
        return "***"
    if parts.password is None:
        return url
    return parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}").geturl()


RateSetting = Annotated[Rate, NoDecode, BeforeValidator(parse_rate)]
# The pages Gatehouse serves for the links it mails, by the setting that holds each link.
_PAGE_PATHS = {
    "password_reset_url": "/reset-password",
    "verify_email_url": "/verify-email",
    "email_change_url": "/confirm-email-change",
    "email_revert_url": "/revert-email-change",
    "identity_link_url": "/confirm-identity-link",
    "factor_undo_url": "/undo-factor",
}
_PLACEHOLDER_SECRETS = {"changethis", "changeme", "change-me", "change_me", "secret", "secret-key", "your-secret-key"}


_PROVIDER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_PRESETS = ("github", "google")


class OidcProviderSetting(BaseModel):
    """One OpenID Connect provider of OIDC_PROVIDERS (JSON: name -> this)."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(pattern=r"^https?://[^?#\s]+$", description="Exactly as the provider's ID tokens say `iss`.")
    client_id: str = Field(min_length=1, max_length=500, description="The client id the provider gave this service.")
    client_secret: SecretStr = Field(SecretStr(""), description="The client secret the provider gave this service.")
    scopes: str = Field("openid email profile", description="The scopes asked for, space-separated.")


class Settings(BaseSettings):
    """Every setting, read from the environment or `.env`; nothing else reads os.environ."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development",
        description=(
            "`development` or `production`. Production refuses to start (service and CLI) without a real "
            "`SECRET_KEY`, or with no way to send mail (`SMTP_URL` or `WEBHOOK_URL`)."
        ),
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./gatehouse.db",
        description=(
            "A SQLite file (this default: in the working directory), or `postgresql://user:pass@host/db` (the "
            "async driver is chosen for you)."
        ),
    )
    redis_url: str = Field(
        "",
        description=(
            "Empty: in-process cache and limits. `redis://host:6379/0`: shared cache, invalidation bus and rate limits."
        ),
    )
    redis_prefix: str = Field(
        "gatehouse:", description="Prefix of every Redis key and channel (several deployments can share one Redis)."
    )
    secret_key: SecretStr | None = Field(
        None,
        description=(
            "Signs tokens. Production: at least 32 bytes, not a placeholder. In development a missing key is "
            "generated once into `SECRET_KEY_FILE` (mode 0600) with a warning, so tokens survive restarts."
        ),
    )
    secret_key_file: str = Field("gatehouse.secret", description="Where the development key is kept.")
    jwt_issuer: str = Field("gatehouse", description="`iss` of access tokens; checked on every token.")
    jwt_audience: str = Field("gatehouse", description="`aud` of access tokens; checked on every token.")
    jwt_algorithm: SigningAlgorithm = Field(
        "HS256",
        description=(
            "`HS256` (keys derived from `SECRET_KEY`), or `EdDSA`, `ES256`, `RS256` (key pairs, public halves at "
            "`/.well-known/jwks.json`)."
        ),
    )
    access_token_minutes: int = Field(15, ge=1, le=24 * 60, description="Access token lifetime.")
    refresh_token_days: int = Field(30, ge=1, le=365, description="Session lifetime; each refresh extends it.")
    refresh_grace_seconds: int = Field(
        10,
        ge=0,
        le=300,
        description=(
            "A rotated refresh token presented again within this window gets the session's current tokens (racing"
            " clients); after it, the session is revoked as stolen."
        ),
    )
    bcrypt_rounds: int = Field(
        12, ge=4, le=17, description="bcrypt cost. Hashes with another cost are upgraded at the next login."
    )
    # Two per core by default: in a login storm the event loop is always runnable and the kernel shares the
    # cores per thread, so more hashing threads take CPU from everything else (measured, see Performance).
    hash_workers: int = Field(
        default_factory=lambda: min(64, 2 * (os.cpu_count() or 1)),
        ge=1,
        le=64,
        description=(
            "bcrypt threads: at most this many hashes run at once, never on the event loop. Lower it to keep more"
            " CPU for other requests during a login storm; logins then wait longer."
        ),
    )
    signup_enabled: bool = Field(
        True, description="`false` closes `POST /auth/register` (admins still create users with the CLI)."
    )
    auto_migrate: bool = Field(True, description="Apply pending migrations when the service or the CLI starts.")
    db_pool_size: int = Field(10, ge=1, description="Database connections kept open per process.")
    db_max_overflow: int = Field(
        10, ge=0, description="Database connections a process may open beyond `DB_POOL_SIZE` under load."
    )
    db_pool_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for a connection (and to connect); then `503 database_unavailable`."
    )
    db_pool_recycle: int = Field(1800, description="PostgreSQL: seconds after which a connection is replaced.")
    db_pool_pre_ping: bool = Field(
        True, description="PostgreSQL: test each connection before use, so a restarted database is survived."
    )
    sqlite_busy_timeout_ms: int = Field(10_000, ge=0, description="How long a SQLite writer waits for the write lock.")
    redis_max_connections: int = Field(
        64, ge=2, description="Size of the blocking Redis pool per process (callers wait, they do not fail)."
    )
    redis_timeout: float = Field(1.0, gt=0, description="Seconds for a Redis connect, command or pool wait.")
    cache_ttl_seconds: int = Field(300, ge=1, description="Lifetime of shared (Redis) cache entries.")
    local_cache_seconds: float = Field(
        30.0, ge=0, description="Lifetime of in-process cache entries (every change also evicts them at once)."
    )
    local_cache_max_entries: int = Field(
        100_000, ge=100, description="Bound of the in-process cache and of the in-process rate limiter."
    )
    rate_login_failures_account: RateSetting = Field(
        parse_rate("100/h"),
        description=(
            "Failed password checks per account. When full, the right password also needs a mailed one-time code,"
            " from any address; a passkey sign-in needs none."
        ),
    )
    rate_login_failures_account_ip: RateSetting = Field(
        parse_rate("10/15m"),
        description="Failed password checks per account from one address (login, step-up, password change).",
    )
    rate_auth_ip: RateSetting = Field(
        parse_rate("30/m"),
        description="Login, register, reset and step-up attempts per client address (IPv6: per /64).",
    )
    rate_general_ip: RateSetting = Field(
        parse_rate("1200/m"), description="Every API request per client address (health checks excepted)."
    )
    api_key_touch_seconds: int = Field(
        60,
        ge=1,
        description=(
            "An API key's `last_used_at` is written at most once per this interval (across instances with Redis)."
        ),
    )
    session_touch_seconds: int = Field(
        60,
        ge=1,
        description=(
            "A session's last use and last address are written at most once per this interval, off the request "
            "path (across instances with Redis)."
        ),
    )
    mfa_issuer: str = Field(
        "Gatehouse",
        min_length=1,
        max_length=100,
        description="The issuer authenticator apps show (in the `otpauth://` URI).",
    )
    rate_mfa_failures: RateSetting = Field(
        parse_rate("10/15m"),
        description=(
            "Wrong authenticator or recovery codes per user (sign-in and step-up alike), tried only past the first "
            "factor; the owner's known addresses have a reserve of the same size. Passkey answers never count."
        ),
    )
    require_mfa_for_admins: bool = Field(
        False,
        description=(
            "`true`: admin power needs a second factor, on every route. An admin session without one, or an "
            "`admin` API key that no second factor stood behind when it was made, holds no `admin` scope: admin "
            "routes answer `403 mfa_enrollment_required`; `check-config` lists such keys."
        ),
    )
    webauthn_rp_id: str = Field(
        "localhost", description="The passkeys' relying party id: your site's registrable domain, e.g. `example.com`."
    )
    webauthn_rp_name: str = Field("Gatehouse", description="The name browsers show when creating a passkey.")
    webauthn_origins: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        ["http://localhost:8000"],
        description=(
            "Comma-separated origins whose pages may use the passkeys (`https://app.example.com`); any other "
            "origin is refused."
        ),
    )
    password_reset_minutes: int = Field(30, ge=1, le=24 * 60, description="Lifetime of a password reset link.")
    verify_email_hours: int = Field(48, ge=1, le=24 * 30, description="Lifetime of an email verification link.")
    require_verified_email: bool = Field(
        False, description="Refuse logins (`403 email_not_verified`) until the address is verified."
    )
    public_url: str = Field(
        "http://localhost:8000",
        description=(
            "Where people reach this service: the base of the default mailed links (the host and port the server "
            "really answers on; under a mount, include the path)."
        ),
    )
    password_reset_url: str = Field(
        "",
        description=(
            "The link mailed for a reset: the built-in page, or your page that POSTs the token to "
            "`/auth/password-reset/confirm`."
        ),
    )
    verify_email_url: str = Field("", description="The link mailed to verify an address.")
    smtp_url: str = Field(
        "",
        description=(
            "`smtp://[user:password@]host[:port]` (port 587; STARTTLS when the server offers it, and required "
            "before a password goes to any host but a loopback one) or `smtps://…` (TLS from the start, port "
            "465). Percent-encode `@`, `:` in credentials."
        ),
    )
    smtp_username: str = Field("", description="SMTP user name, when it is not in `SMTP_URL`.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password, when it is not in `SMTP_URL`.")
    smtp_timeout: float = Field(10.0, gt=0, description="Seconds per SMTP attempt.")
    smtp_ca_file: str = Field(
        "", description="A CA bundle for a relay with a private certificate; empty: the system's CAs."
    )
    mail_from: str = Field(
        "", description="The sender, e.g. `Example <auth@example.com>`; required with `SMTP_URL` in production."
    )
    mail_templates_dir: str = Field(
        "",
        description=(
            "A directory whose files replace built-in mail templates (`KIND.subject.txt`, `KIND.txt`, `KIND.html`) "
            "and pages (`pages/NAME`) of the same name, one by one; a file that cannot be used stops the start."
        ),
    )
    mail_queue_size: int = Field(1000, ge=1, description="Bound of the mail send queue.")
    mail_attempts: int = Field(5, ge=1, le=20, description="Delivery attempts per message.")
    mail_retry_seconds: float = Field(
        2.0, ge=0, description="The first retry delay of a message (doubling, at most 300 s)."
    )
    webhook_url: str = Field(
        "",
        description=(
            "The other mail transport: a JSON POST per message to a mail-sending service of your own. With "
            "neither it nor `SMTP_URL`, development logs the message and production refuses to start."
        ),
    )
    webhook_secret: SecretStr | None = Field(
        None, description="If set, each delivery carries `X-Gatehouse-Signature: sha256=<HMAC of the body>`."
    )
    webhook_timeout: float = Field(5.0, gt=0, description="Seconds per webhook attempt.")
    rate_reset_email: RateSetting = Field(
        parse_rate("10/h"),
        description=(
            "Messages anyone's requests can send to one mailbox (reset, new-address confirmation); extra requests"
            " are not sent."
        ),
    )
    rate_reset_email_ip: RateSetting = Field(
        parse_rate("3/h"),
        description=(
            "Messages one requesting address (IPv6: /64) can send to one mailbox; also the owner's reserve from "
            "addresses they have signed in from, and the per-account limit of login codes (spent only by the "
            "right password), verification mails and email changes."
        ),
    )
    reauth_minutes: int = Field(
        10,
        ge=1,
        le=24 * 60,
        description="A sign-in (or `POST /auth/reauthenticate`) this recent counts as proof for sensitive actions.",
    )
    session_max_days: int = Field(
        90, ge=1, le=3650, description="Absolute session lifetime from the login, however often it is refreshed."
    )
    login_code_minutes: int = Field(
        10,
        ge=1,
        le=60,
        description="Lifetime of the one-time code mailed when an account's failed-login limit is full.",
    )
    email_change_hours: int = Field(
        24, ge=1, le=24 * 30, description="Lifetime of the confirmation link sent to a new address."
    )
    email_revert_days: int = Field(
        7, ge=1, le=90, description='Lifetime of the "this wasn\'t me" link sent to the old address on an email change.'
    )
    email_change_url: str = Field(
        "",
        description=(
            "The confirmation link for a new address: the built-in page, or your page that POSTs the token to "
            "`/auth/email-change/confirm`."
        ),
    )
    email_revert_url: str = Field(
        "",
        description=(
            'The "this wasn\'t me" link to the old address: the built-in page, or your page that POSTs the token '
            "to `/auth/email-change/revert`."
        ),
    )
    factor_undo_days: int = Field(
        3,
        ge=1,
        le=90,
        description=(
            'Lifetime of the "this wasn\'t me" link in the mail announcing a new second factor; a reset by link or'
            " an undone email change removes the factors added within it (unless kept)."
        ),
    )
    factor_undo_url: str = Field(
        "", description='The "this wasn\'t me" link in the mail announcing a new second factor.'
    )
    session_retention_days: int = Field(
        7,
        ge=0,
        le=3650,
        description=(
            "Ended sessions and spent or expired one-time tokens (reset, verification, email change, "
            "second-factor and passkey challenges) are deleted this many days after they end."
        ),
    )
    audit_retention_days: int = Field(
        365,
        ge=0,
        le=36500,
        description=(
            "Audit events older than this are deleted; `0` keeps them forever. Archive first with `cli.py audit "
            "--export`."
        ),
    )
    purge_interval_seconds: float = Field(
        3600.0,
        ge=0,
        description=(
            "How often each instance tries a background purge (at a random point in each interval; one instance "
            "at a time). `0`: no background purge, only `cli.py purge`."
        ),
    )
    purge_batch_size: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Rows deleted per purge transaction, so a purge never holds a lock for long.",
    )
    purge_pause_seconds: float = Field(0.05, ge=0, description="The pause between purge batches.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`json` (one object per line), `text`, or `auto`: JSON in production, text in development."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="`WARNING` drops the per-request lines."
    )
    slow_query_ms: float = Field(
        200.0,
        ge=0,
        description="Log SQL statements slower than this (statement text only, never parameters); `0` = off.",
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at `GET /metrics`.")
    metrics_token: SecretStr | None = Field(
        None, description="If set, `/metrics` answers only `Authorization: Bearer <token>`."
    )
    prometheus_multiproc_dir: str = Field(
        "",
        description="A writable, empty directory: needed with `uvicorn --workers N` so `/metrics` sums every worker.",
    )
    # Off by default: even with no provider configured, FastAPI's check per request costs about a tenth of
    # GET /users/me.
    otel_enabled: bool = Field(
        False,
        description=(
            "FastAPI's own OpenTelemetry spans and metrics, sent to the globally configured OpenTelemetry provider."
        ),
    )
    docs_enabled: bool | None = Field(None, description="`/docs`, `/redoc` and `/openapi.json`.")
    timing_headers: bool | None = Field(
        None,
        description=(
            "`Server-Timing` and `X-Process-Time` on every response (they let a caller time internal branches)."
        ),
    )
    cors_origins: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        [], description="Comma-separated browser origins allowed to call the API; `*` with credentials is refused."
    )
    cors_allow_credentials: bool = Field(
        False, description="Let those origins send credentials (cookies, `Authorization`)."
    )
    allowed_hosts: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        ["*"], description="Comma-separated host names served; anything else gets `400 invalid_host`."
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Larger request bodies get `413 payload_too_large` (declared or streamed)."
    )
    trusted_proxies: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        [],
        description=(
            "Comma-separated addresses or networks whose `X-Forwarded-For` is believed: the one rule for client "
            "addresses."
        ),
    )
    oidc_providers: Annotated[dict[str, OidcProviderSetting], NoDecode, BeforeValidator(_json_text)] = Field(
        {},
        description=(
            'JSON: provider name → `{"issuer", "client_id", "client_secret", "scopes"}` (the fields below); names'
            " are 1–32 of `a-z 0-9 - _`."
        ),
    )
    github_client_id: str = Field("", description="The GitHub preset (provider `github`), on when this is set.")
    github_client_secret: SecretStr | None = Field(None, description="The GitHub OAuth app's client secret.")
    github_url: str = Field(
        "https://github.com",
        description="GitHub's web base (authorize, token): GitHub Enterprise Server, or a test double.",
    )
    github_api_url: str = Field("https://api.github.com", description="GitHub's REST API base.")
    google_client_id: str = Field(
        "", description="The Google preset (provider `google`, OpenID Connect), on when this is set."
    )
    google_client_secret: SecretStr | None = Field(None, description="The Google OAuth client's secret.")
    google_issuer: str = Field("https://accounts.google.com", description="Google's issuer (only tests change it).")
    oauth_redirect_allowlist: Annotated[list[str], NoDecode, BeforeValidator(_split_list)] = Field(
        [],
        description=(
            "Comma-separated front-end URLs (exact) or origins (any path on them) a federated sign-in may land "
            "on; the first is the default. Empty: federated sign-in refuses (`400 redirect_not_allowed`)."
        ),
    )
    oauth_timeout: float = Field(10.0, gt=0, description="Seconds for each request to an identity provider.")
    identity_link_url: str = Field(
        "", description="The link mailed to confirm linking a provider sign-in to an existing account."
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # `print(Settings())` is the README's way to see the effective values, and what it prints ends up in
        # terminals, tickets and logs: URLs lose their passwords as SecretStr values already do.
        for name, value in super().__repr_args__():
            yield name, hide_password(value) if isinstance(value, str) else value

    @field_validator("oidc_providers")
    @classmethod
    def _valid_provider_names(cls, value: dict[str, OidcProviderSetting]) -> dict[str, OidcProviderSetting]:
        for name in value:
            if name in _PRESETS:
                raise ValueError(f"{name!r} is a preset: set {name.upper()}_CLIENT_ID and {name.upper()}_CLIENT_SECRET")
            if not _PROVIDER_NAME_RE.match(name):
                raise ValueError(f"provider name {name!r} must be 1-32 of a-z, 0-9, '-' and '_'")
        return value

    @field_validator("oauth_redirect_allowlist")
    @classmethod
    def _valid_redirects(cls, value: list[str]) -> list[str]:
        for item in value:
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or parts.username:
                raise ValueError(f"{item!r} is not an http(s) origin or URL (no fragment, no user info)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @functools.cached_property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """TRUSTED_PROXIES, parsed once."""
        return [ipaddress.ip_network(n, strict=False) for n in self.trusted_proxies]

    @field_validator("public_url")
    @classmethod
    def _valid_public_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL such as https://auth.example.com")
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _valid_smtp_url(cls, value: str) -> str:
        if value and not re.match(r"^smtps?://[^/?#\s]+/?$", value):
            raise ValueError("is not smtp://[user:password@]host[:port] or smtps://... (no path)")
        return value

    @model_validator(mode="after")
    def _links_from_public_url(self) -> "Settings":
        # The pages Gatehouse serves itself, at the address the operator says it is reached by.
        for name, path in _PAGE_PATHS.items():
            if not getattr(self, name):
                setattr(self, name, f"{self.public_url}{path}?token={{token}}")
        return self

    def problems(self) -> list[str]:
        """Rules a deployment must meet, one line per broken rule."""
        problems = []
        if "*" in self.cors_origins and self.cors_allow_credentials:
            problems.append("CORS_ORIGINS may not be '*' while CORS_ALLOW_CREDENTIALS is true; list the origins")
        if self.mail_templates_dir and not Path(self.mail_templates_dir).is_dir():
            problems.append(f"MAIL_TEMPLATES_DIR {self.mail_templates_dir} is not a directory")
        if self.environment != "production":
            return problems
        problems += self._secret_problems()
        if not self.smtp_url and not self.webhook_url:
            problems.append(
                "no way to send mail: set SMTP_URL (e.g. smtp://user:password@mail.example.com:587) "
                "or WEBHOOK_URL; reset and verification links cannot reach anyone without one"
            )
        if self.smtp_url and not self.mail_from:
            problems.append("MAIL_FROM is not set: SMTP needs the sender address, e.g. 'Example <auth@example.com>'")
        return problems

    def _secret_problems(self) -> list[str]:
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        hint = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        if not key:
            return [f"SECRET_KEY is not set; production needs a random value of at least 32 bytes ({hint})"]
        if key.strip().lower() in _PLACEHOLDER_SECRETS or "changethis" in key.lower():
            return [f"SECRET_KEY is a placeholder value; {hint}"]
        if len(key.encode()) < 32:
            return [f"SECRET_KEY is {len(key.encode())} bytes; production needs at least 32 ({hint})"]
        return []

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if problems := self.problems():
            raise ValueError("\n".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        return database_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def show_docs(self) -> bool:
        return self.environment == "development" if self.docs_enabled is None else self.docs_enabled

    @property
    def show_timing(self) -> bool:
        # Off in production: a caller could time internal branches (which check failed, cache or not).
        return self.environment == "development" if self.timing_headers is None else self.timing_headers

    @property
    def json_logs(self) -> bool:
        return self.environment == "production" if self.log_format == "auto" else self.log_format == "json"

    def advice(self) -> list[str]:
        """Production settings that work but that an operator should look at twice."""
        if self.environment != "production":
            return []
        notes = []
        if not self.redis_url:
            notes.append("REDIS_URL is empty: rate limits are per process; run one process or add Redis")
        if self.is_sqlite:
            notes.append("DATABASE_URL is SQLite: fine for one machine, not for several instances")
        if self.allowed_hosts == ["*"]:
            notes.append("ALLOWED_HOSTS is '*': list the host names this service answers to")
        if self.metrics_enabled and self.metrics_token is None:
            notes.append("/metrics is open: set METRICS_TOKEN or keep it off the public network")
        if self.smtp_url and self.webhook_url:
            notes.append("SMTP_URL and WEBHOOK_URL are both set: mail goes over SMTP, the webhook gets nothing")
        if self.public_url == "http://localhost:8000":
            notes.append("PUBLIC_URL is not set: mailed links point at http://localhost:8000")
        if (
            self.oidc_providers or self.github_client_id or self.google_client_id
        ) and not self.oauth_redirect_allowlist:
            notes.append("sign-in providers are set but OAUTH_REDIRECT_ALLOWLIST is empty: federated sign-in refuses")
        elif self.public_url.startswith("http://"):
            notes.append(f"PUBLIC_URL {self.public_url} is plain http: the mailed links carry credentials")
        return notes


# docs/configuration.md, generated by settings_reference(): a heading at the setting that starts each group
# (settings are declared by topic), and the defaults computed at startup as an operator would describe them.
_SETTINGS_GROUPS = {
    "environment": "Deployment",
    "jwt_issuer": "Accounts, tokens and passwords",
    "auto_migrate": "Database and cache",
    "rate_login_failures_account": "Rate limits and write intervals",
    "mfa_issuer": "Second factors and passkeys",
    "password_reset_minutes": "Mail and the links it carries",
    "reauth_minutes": "Sessions, step-up and account changes",
    "session_retention_days": "Retention",
    "log_format": "Logs and metrics",
    "docs_enabled": "HTTP",
    "oidc_providers": "Federated sign-in",
}
_DEFAULTS_SHOWN = {
    "secret_key": "*(generated in development)*",
    "hash_workers": "2 × CPU count (at most 64)",
    "docs_enabled": "on in development, off in production",
    "timing_headers": "on in development, off in production",
} | {name: f"`{{PUBLIC_URL}}{path}?token={{token}}`" for name, path in _PAGE_PATHS.items()}
_SETTINGS_REFERENCE_HEAD = """\
# Configuration

<!-- Generated from `Settings` in service.py: python cli.py settings-doc > docs/configuration.md -->

Every setting is an environment variable (or a line in `.env` in the working directory).
`python cli.py check-config` prints the effective values, secrets masked, and checks them.

Rates are `N/period` with a period of `s`, `m`, `h` or `d`, optionally multiplied (`10/15m`); `off` disables
one. Login, register and reset limits are GCRA buckets (a burst of N, then refilling evenly over the period),
checked atomically in Redis by a Lua script on every attempt. The general per-client limit applies to every
request, so it never waits on the network: each instance counts locally and adds its counts to a shared
per-window counter in Redis (`INCRBY`) every 100 ms — across instances it can overshoot by what arrives within
one such interval.
"""


def _default_shown(name: str, field: Any) -> str:
    if name in _DEFAULTS_SHOWN:
        return _DEFAULTS_SHOWN[name]
    if field.is_required():
        return "*(required)*"
    if field.default_factory is not None:  # it would print this machine's value
        raise ValueError(f"{name.upper()} has a computed default: describe it in _DEFAULTS_SHOWN")
    value = field.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, list | dict):
        value = ",".join(value)
    text = "" if value is None else str(value)
    return f"`{text}`" if text else "*(empty)*"


def _reference_rows(model: type[BaseModel], *, env: bool) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if env and name in _SETTINGS_GROUPS:
            yield f"\n## {_SETTINGS_GROUPS[name]}\n\n| Setting | Default | Meaning |\n| --- | --- | --- |"
        description = (field.description or "").replace("|", "\\|")
        yield f"| `{name.upper() if env else name}` | {_default_shown(name, field)} | {description} |"


def settings_reference() -> str:
    """docs/configuration.md: every setting with its default and description, from `Settings`."""
    providers = "\n### `OIDC_PROVIDERS` entries\n\n| Key | Default | Meaning |\n| --- | --- | --- |"
    rows = [*_reference_rows(Settings, env=True), providers, *_reference_rows(OidcProviderSetting, env=False)]
    return _SETTINGS_REFERENCE_HEAD + "\n".join(rows) + "\n"


def load_settings() -> Settings:
    """Settings from the environment; ConfigError naming each bad setting."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(map(str, error["loc"])).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{field}: {message}" if field else message)
        raise ConfigError("\n".join(lines)) from None
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


def database_url(raw: str) -> sa.URL:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async driver."""
    url = make_url(raw)
    if url.drivername in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    return url


def load_secret(settings: Settings) -> bytes:
    """SECRET_KEY, or in development a generated one persisted so tokens survive restarts."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.secret_key_file)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            log.warning("SECRET_KEY is not set: generated one in %s (development only)", path)
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret.encode()
        time.sleep(0.01)  # the creating process has not written it yet
    raise ConfigError(f"SECRET_KEY_FILE {path} is empty; delete it or set SECRET_KEY")


# Observability ###############################################################

request_id_var: ContextVar[str] = ContextVar("gatehouse_request_id", default="-")


_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def log_unhandled(exc: BaseException) -> None:
    """Log an error that no handler expected. A database error goes by its kind and statement only: the
    driver's own message can quote a bound value (an email, a hash, a client's input), which must never
    reach a log."""
    if isinstance(exc, sa.exc.StatementError):
        log.error("unhandled database error %s in: %s", type(exc.orig).__name__, exc.statement)
    else:
        log.exception("unhandled error", exc_info=exc)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _record_id(record: logging.LogRecord) -> str:
    return getattr(record, "request_id", "-")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any `fields`."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted: most lines share it

    def format(self, record: logging.LogRecord) -> str:
        error = self.formatException(record.exc_info) if record.exc_info else None
        fields = getattr(record, "fields", {})
        return self.line(
            record.created, record.levelname, record.name, record.getMessage(), _record_id(record), fields, error
        )

    def line(
        self,
        created: float,
        level: str,
        name: str,
        message: str,
        request_id: str,
        fields: dict[str, Any],
        error: str | None = None,
    ) -> str:
        fraction, whole = math.modf(created)  # rounded as datetime.fromtimestamp rounds
        second, micros = divmod(int(whole) * 1_000_000 + round(fraction * 1e6), 1_000_000)
        if self._second[0] != second:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        line = {
            "time": f"{self._second[1]}.{micros // 1000:03d}+00:00",  # isoformat(timespec="milliseconds")
            "level": level.lower(),
            "logger": name,
            "message": message,
            "request_id": request_id,
        }
        line.update(fields)
        if error:
            line["error"] = error
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        error = self.formatException(record.exc_info) if record.exc_info else None
        fields = getattr(record, "fields", {})
        return self.line(
            record.created, record.levelname, record.name, record.getMessage(), _record_id(record), fields, error
        )

    def line(
        self,
        created: float,
        level: str,
        name: str,
        message: str,
        request_id: str,
        fields: dict[str, Any],
        error: str | None = None,
    ) -> str:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        clock = time.strftime("%H:%M:%S", time.localtime(created))
        text = f"{clock} {level:<7} [{request_id}] {message}{' ' + extra if extra else ''}"
        return text + ("\n" + error if error else "")


# An access line queued without a LogRecord: (time, message, request id, fields).
AccessLine = tuple[float, str, str, dict[str, Any]]


class BatchWriter(logging.Handler):
    """Queue records; a thread formats them and writes whatever has queued up in one call.

    The event loop never formats or writes a log line, and at thousands of requests per
    second one write carries many lines instead of one syscall each. The queue is bounded:
    if stderr stalls, lines are dropped and counted rather than piling up in memory.
    The access log skips the LogRecord (`access()`): a tuple on a deque costs the request a
    fraction of what building a record and a locked queue did. Drained at exit."""

    MAX_QUEUED = 50_000

    def __init__(self, stream: Any, formatter: JsonFormatter | TextFormatter):
        super().__init__()
        self.setFormatter(formatter)
        self.line = formatter.line
        self.stream = stream
        self.dropped = 0
        # deque appends and pops are atomic: no lock on the request path
        self._queue: collections.deque[logging.LogRecord | AccessLine | threading.Event | None] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="gatehouse-log", daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if self.filter(record):
            self.emit(record)  # no handler lock: the queue is already thread-safe
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._put(record)

    def access(self, message: str, fields: dict[str, Any]) -> None:
        """An INFO line of `gatehouse.access` for the current request."""
        self._put((time.time(), message, request_id_var.get(), fields))

    def _put(self, item: Any) -> None:
        if len(self._queue) < self.MAX_QUEUED:
            self._queue.append(item)
        else:
            self.dropped += 1

    def flush(self) -> None:
        """Wait (briefly) until every line queued so far is written: startup lines before uvicorn's own."""
        if self._thread.is_alive():
            written = threading.Event()
            self._queue.append(written)
            written.wait(timeout=2)

    def _format(self, item: logging.LogRecord | AccessLine) -> str:
        if isinstance(item, tuple):
            created, message, request_id, fields = item
            return self.line(created, "INFO", "gatehouse.access", message, request_id, fields)
        return self.format(item)

    def _run(self) -> None:
        while True:
            # Wake on a timer, not per record: a wake-up per request would fight the event
            # loop for the GIL thousands of times a second.
            time.sleep(0.05)
            lines, done, flushed = [], False, []
            while self._queue:
                item = self._queue.popleft()
                if item is None:
                    done = True
                    break
                if isinstance(item, threading.Event):
                    flushed.append(item)
                    continue
                try:
                    lines.append(self._format(item) + "\n")
                except Exception:
                    if isinstance(item, logging.LogRecord):
                        self.handleError(item)
            if self.dropped:
                dropped, self.dropped = self.dropped, 0
                lines.append(f"gatehouse: {dropped} log lines dropped: stderr was not keeping up\n")
            if lines:
                self.stream.write("".join(lines))
                self.stream.flush()
            for waiter in flushed:
                waiter.set()
            if done:
                return

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.append(None)
            self._thread.join(timeout=5)
        super().close()


def configure_logging(settings: Settings) -> None:
    """Send the gatehouse loggers to stderr as JSON (production) or text (development)."""
    writer = BatchWriter(sys.stderr, JsonFormatter() if settings.json_logs else TextFormatter())
    writer.addFilter(_RequestIdFilter())  # runs in the caller: the request id lives in its context
    atexit.register(writer.close)
    logger = logging.getLogger("gatehouse")
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = [writer]
    logger.setLevel(settings.log_level)
    logger.propagate = False
    # Gatehouse writes the access log (one line per request, with route, user and duration): uvicorn's
    # own would be a second line for each request. Without handlers uvicorn skips it altogether.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
    # None of the formats print thread or process names: do not collect them per record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


class Metrics:
    """Prometheus metrics (one set per process; with PROMETHEUS_MULTIPROC_DIR, summed across workers)."""

    LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
    # A label value per method a client makes up would grow every scrape without bound (uvicorn's
    # h11 and other servers pass any token through): the rest count as OTHER.
    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter("gatehouse_requests_total", "HTTP requests", ["route", "method", "status"])
        self.latency = Histogram(
            "gatehouse_request_seconds", "HTTP request latency", ["route", "method"], buckets=self.LATENCY_BUCKETS
        )
        # (route, method, status) -> [seconds summed, requests per latency bucket..., past the last]
        self._tally: dict[tuple[str, str, int], list[float]] = {}
        self.logins = Counter("gatehouse_logins_total", "Login attempts", ["outcome"])
        self.rate_limited = Counter("gatehouse_rate_limited_total", "Requests refused by a rate limit", ["limit"])
        self.refresh_reuse = Counter("gatehouse_refresh_reuse_total", "Refresh tokens replayed after rotation")
        self.cache = Counter("gatehouse_cache_total", "Cache lookups", ["result"])
        self.db_pool = Gauge(
            "gatehouse_db_pool_in_use", "Database connections checked out", multiprocess_mode="livesum"
        )
        self.hash_queue = Gauge(
            "gatehouse_bcrypt_queue", "Password hashes queued or running", multiprocess_mode="livesum"
        )
        self.mail = Counter(
            "gatehouse_mail_total",
            "Mail messages by outcome: sent, retried, failed, dropped "
            "(queue full) or logged (development, no transport)",
            ["kind", "outcome"],
        )
        self.mail_queue = Gauge("gatehouse_mail_queue", "Mail messages waiting to be sent", multiprocess_mode="livesum")
        self.purged = Counter("gatehouse_purged_rows_total", "Rows deleted by retention purges", ["table"])

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request. Every request's count and latency go into a plain tally that
        flush_requests() adds to the two metrics (every second, before every scrape, at shutdown):
        inc() and observe() take a lock each, and with PROMETHEUS_MULTIPROC_DIR write a memory-mapped
        file, 3-7 µs a request, a few percent of a /users/me."""
        key = (route, method if method in self.METHODS else "OTHER", status)
        tally = self._tally.get(key)
        if tally is None:
            tally = self._tally[key] = [0.0] * (len(self.LATENCY_BUCKETS) + 2)
        tally[0] += seconds
        tally[1 + bisect.bisect_left(self.LATENCY_BUCKETS, seconds)] += 1  # as observe(): the first bound >= it

    def flush_requests(self) -> None:
        """Add the requests counted since the last flush to the metrics (see request_done)."""
        tallies, self._tally = self._tally, {}
        for (route, method, status), tally in tallies.items():
            self.requests.labels(route, method, str(status)).inc(sum(tally[1:]))
            latency = self.latency.labels(route, method)
            # prometheus-client keeps a histogram as its sum and a count per bucket (pinned version;
            # test_request_metrics_count_every_request_and_its_bucket checks the exposition).
            latency._sum.inc(tally[0])
            for bucket, count in zip(latency._buckets, tally[1:], strict=True):
                if count:
                    bucket.inc(count)


_metrics: Metrics | None = None


def metrics(settings: Settings) -> Metrics:
    """The process's metrics, created on first use (after PROMETHEUS_MULTIPROC_DIR is known)."""
    global _metrics
    if _metrics is None:
        if settings.prometheus_multiproc_dir:
            Path(settings.prometheus_multiproc_dir).mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", settings.prometheus_multiproc_dir)
        elif os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
            # prometheus-client switches to multiprocess mode when the variable merely exists and
            # then writes its files into the working directory: an empty value means "off" here.
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        _metrics = Metrics()
    return _metrics


def render_metrics() -> tuple[bytes, str]:
    """The exposition text: every worker's metrics in multiprocess mode, else this process's."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

    if _metrics is not None:
        _metrics.flush_requests()  # this process's requests so far; other workers' flush every second
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# Database ####################################################################


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(100))
    full_name: Mapped[str] = mapped_column(sa.String(200), default="")
    role: Mapped[str] = mapped_column(sa.String(16), default="user")
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        sa.Index("ix_users_created_at_id", "created_at", "id"),  # keyset pages
        # Filtered pages walk an index already in keyset order: a rare value costs what the first page does.
        sa.Index("ix_users_role_created_at_id", "role", "created_at", "id"),
        sa.Index("ix_users_is_active_created_at_id", "is_active", "created_at", "id"),
    )


class ApiKey(Base):
    """A machine credential acting as its owner, narrowed to its scopes; only a hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    public_id: Mapped[str] = mapped_column(sa.String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(100))
    scopes: Mapped[str] = mapped_column(sa.String(200))  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The key that made this one (None: made from a session or the CLI); revoked with it.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)
    # The assurance behind its making: the creating session's aal, its parent's, 2 from the CLI (the
    # operator). Under REQUIRE_MFA_FOR_ADMINS an aal1 key cannot use its admin scope (older keys are aal1).
    aal: Mapped[int] = mapped_column(sa.Integer, server_default="1")


class SigningKey(Base):
    """A token signing key. HS256 material is derived from SECRET_KEY and the kid; an
    asymmetric private key is stored sealed (AES-GCM, key derived from SECRET_KEY)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(sa.String(16))
    private_key: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    public_key: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ActionToken(Base):
    """A single-use, expiring token for a password reset or an email verification; stored hashed."""

    __tablename__ = "action_tokens"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    email: Mapped[str] = mapped_column(sa.String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (sa.Index("ix_action_tokens_expires_at", "expires_at"),)  # the purge's walk


class AuditEvent(Base):
    """One security event. Holds ids, never an email, password, token or key."""

    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event: Mapped[str] = mapped_column(sa.String(40))
    outcome: Mapped[str] = mapped_column(sa.String(16), default="success")
    actor_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    key_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    subject_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    ip: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(300), default="")
    detail: Mapped[str] = mapped_column(sa.String(1000), default="{}")

    __table_args__ = (
        sa.Index("ix_audit_events_at_id", "at", "id"),
        # Each list filter has an index in keyset order (at, id), so a rare match is found at once.
        sa.Index("ix_audit_events_subject_id_at_id", "subject_id", "at", "id"),
        sa.Index("ix_audit_events_actor_id_at_id", "actor_id", "at", "id"),
        sa.Index("ix_audit_events_event_at_id", "event", "at", "id"),
    )


class LoginSession(Base):
    """One row per login; refresh tokens are derived from (id, generation), never stored."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    user_agent: Mapped[str] = mapped_column(sa.String(300), default="")
    ip: Mapped[str] = mapped_column(sa.String(64), default="")
    # When the person last proved themselves (login, step-up); tokens carry it as `auth_time`.
    authenticated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # How: methods (space-separated RFC 8176-style names) and assurance level; refreshes keep both.
    amr: Mapped[str] = mapped_column(sa.String(64), default="pwd", server_default="pwd")
    aal: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    # Written at most once per SESSION_TOUCH_SECONDS, off the request path.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_ip: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")

    __table_args__ = (
        sa.Index("ix_sessions_user_id_created_at_id", "user_id", "created_at", "id"),  # a user's list
        sa.Index("ix_sessions_expires_at", "expires_at"),  # the purge's walks
        sa.Index("ix_sessions_revoked_at", "revoked_at"),
    )


class TotpFactor(Base):
    """A user's authenticator app (RFC 6238): the secret sealed with SECRET_KEY; live once confirmed."""

    __tablename__ = "totp_factors"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The newest time step accepted: a code is taken once, on every instance (compare-and-set).
    last_step: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class RecoveryCode(Base):
    """A single-use recovery code; only its SHA-256 is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Passkey(Base):
    """A WebAuthn credential: its id and COSE public key (base64url) and the last sign count seen."""

    __tablename__ = "passkeys"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(sa.String(1400), unique=True)
    public_key: Mapped[str] = mapped_column(sa.Text)
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    name: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Identity(Base):
    """A sign-in at another identity provider (its `sub`, or GitHub's user id) that leads to a user.

    `linked_at` NULL: seen, but the account's owner has not proved the account yet (email-match linking)."""

    __tablename__ = "identities"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(255))
    email: Mapped[str] = mapped_column(sa.String(320), default="")  # as the provider last said
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        sa.UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
        sa.Index("ix_identities_linked_at_created_at", "linked_at", "created_at"),  # the purge of stale pending links
    )


def _switch_to_wal(cursor: Any, patience: float) -> None:
    # Switching a fresh file to WAL needs a lock that SQLite may refuse at once, busy timeout or
    # not, while another first connection holds it (instances or CLI runs starting together):
    # try again for as long as the busy timeout would have waited.
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_connect(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _switch_to_wal(cursor, busy_timeout_ms / 1000)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a crash
        cursor.close()

    return on_connect


def _sqlite_begin(conn: sa.Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then
    # writes can fail with "database is locked" however long the busy timeout is.
    write = conn.get_execution_options().get("gatehouse_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _log_slow_queries(engine: AsyncEngine, threshold_ms: float) -> None:
    slow_log = logging.getLogger("gatehouse.sql")

    def before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("gatehouse_started", []).append(time.perf_counter())

    def after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        elapsed = (time.perf_counter() - conn.info["gatehouse_started"].pop()) * 1000
        if elapsed >= threshold_ms:  # the statement only: parameters may hold hashes or emails
            slow_log.warning(
                "slow query",
                extra={"fields": {"duration_ms": round(elapsed, 1), "statement": " ".join(statement.split())[:500]}},
            )

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)


def _create_engine(settings: Settings) -> AsyncEngine:
    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            hide_parameters=True,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect(settings.sqlite_busy_timeout_ms))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=settings.db_pool_pre_ping,
        connect_args={"timeout": settings.db_pool_timeout, "command_timeout": 30},
        hide_parameters=True,
    )


def create_engine(settings: Settings) -> AsyncEngine:
    """The async engine for DATABASE_URL, with the pool settings applied."""
    engine = _create_engine(settings)
    if settings.slow_query_ms > 0:
        _log_slow_queries(engine, settings.slow_query_ms)
    return engine


# Migrations ##################################################################

# Migrations: append-only; each is applied once, in order, in one transaction with the
# rest, and recorded in gatehouse_migrations. Never edit one that has shipped.

MIGRATIONS_TABLE = "gatehouse_migrations"
# A substring email search without a trigram index looks at this many users per page, at most.
CONTAINS_SCAN_ROWS = 10_000
_MIGRATION_LOCK_ID = 0x6761746568  # pg_advisory_xact_lock key: "gateh"
_migrations_meta = sa.MetaData()
_migrations_table = sa.Table(
    MIGRATIONS_TABLE,
    _migrations_meta,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)


def _m001_users_and_sessions(op: Operations) -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=False),
        sa.Column("rotated_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(32), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])


def _m002_api_and_signing_keys(op: Operations) -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("public_id", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("public_id", name="uq_api_keys_public_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_api_keys_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )


def _m003_lifecycle_and_audit(op: Operations) -> None:
    op.add_column("users", sa.Column("email_verified_at", UTCDateTime(), nullable=True))
    op.create_index("ix_users_created_at_id", "users", ["created_at", "id"])
    op.create_table(
        "action_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_action_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_action_tokens_token_hash"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_action_tokens_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_action_tokens_user_id", "action_tokens", ["user_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_at_id", "audit_events", ["at", "id"])
    op.create_index("ix_audit_events_subject_id_at", "audit_events", ["subject_id", "at"])


def _m004_step_up_and_key_parents(op: Operations) -> None:
    op.add_column("sessions", sa.Column("authenticated_at", UTCDateTime(), nullable=True))
    op.add_column("api_keys", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.create_index("ix_api_keys_parent_id", "api_keys", ["parent_id"])


def _m005_sessions_and_second_factors(op: Operations) -> None:
    op.add_column("sessions", sa.Column("amr", sa.String(64), nullable=False, server_default="pwd"))
    op.add_column("sessions", sa.Column("aal", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("sessions", sa.Column("last_used_at", UTCDateTime(), nullable=True))
    op.add_column("sessions", sa.Column("last_ip", sa.String(64), nullable=False, server_default=""))
    op.create_table(
        "totp_factors",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_totp_factors"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_totp_factors_user_id_users", ondelete="CASCADE"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "passkeys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_passkeys"),
        sa.UniqueConstraint("credential_id", name="uq_passkeys_credential_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_passkeys_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_passkeys_user_id", "passkeys", ["user_id"])


def _m006_identities(op: Operations) -> None:
    # Accounts made by a provider have no password: their password_hash is "" (no bcrypt hash is
    # empty), not NULL, because relaxing NOT NULL on SQLite means rebuilding `users`, and dropping
    # the old table with foreign keys on would cascade-delete every session, key and factor.
    op.create_table(
        "identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identities"),
        sa.UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_identities_user_id_users", ondelete="CASCADE"),
    )
    op.create_index("ix_identities_user_id", "identities", ["user_id"])
    op.create_index("ix_identities_linked_at_created_at", "identities", ["linked_at", "created_at"])


# PostgreSQL-only indexes for email search that the models cannot declare for both backends
# (an operator class, an extension's index); the drift check leaves them out.
_PG_SEARCH_INDEXES = frozenset({"ix_users_email_pattern", "ix_users_email_trgm"})


def _m007_search_and_retention_indexes(op: Operations) -> None:
    # Keyset-ordered indexes for every list filter, and walks for the retention purge; the new
    # composite indexes cover the older single-column ones, which go.
    op.create_index("ix_users_role_created_at_id", "users", ["role", "created_at", "id"])
    op.create_index("ix_users_is_active_created_at_id", "users", ["is_active", "created_at", "id"])
    op.drop_index("ix_audit_events_subject_id_at", "audit_events")
    op.create_index("ix_audit_events_subject_id_at_id", "audit_events", ["subject_id", "at", "id"])
    op.create_index("ix_audit_events_actor_id_at_id", "audit_events", ["actor_id", "at", "id"])
    op.create_index("ix_audit_events_event_at_id", "audit_events", ["event", "at", "id"])
    op.drop_index("ix_sessions_user_id", "sessions")
    op.create_index("ix_sessions_user_id_created_at_id", "sessions", ["user_id", "created_at", "id"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_index("ix_sessions_revoked_at", "sessions", ["revoked_at"])
    op.create_index("ix_action_tokens_expires_at", "action_tokens", ["expires_at"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite's BINARY collation lets the unique email index serve prefix ranges
    # LIKE 'prefix%' can use a btree only with pattern ordering when the collation is not C.
    op.create_index("ix_users_email_pattern", "users", ["email"], postgresql_ops={"email": "varchar_pattern_ops"})
    try:
        with bind.begin_nested():  # a refused CREATE EXTENSION must not abort the migration
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            op.create_index(
                "ix_users_email_trgm",
                "users",
                ["email"],
                postgresql_using="gin",
                postgresql_ops={"email": "gin_trgm_ops"},
            )
    except sa.exc.DBAPIError as exc:
        log.warning(
            "pg_trgm is not available (%s): substring email search scans a bounded window of %d users "
            "per page instead; a superuser can run CREATE EXTENSION pg_trgm and then "
            "CREATE INDEX ix_users_email_trgm ON users USING gin (email gin_trgm_ops)",
            str(exc).splitlines()[0],
            CONTAINS_SCAN_ROWS,
        )


def _m008_api_key_assurance(op: Operations) -> None:
    op.add_column("api_keys", sa.Column("aal", sa.Integer(), nullable=False, server_default="1"))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    upgrade: Callable[[Operations], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users and sessions", _m001_users_and_sessions),
    Migration(2, "api keys and signing keys", _m002_api_and_signing_keys),
    Migration(3, "email verification, action tokens, audit log", _m003_lifecycle_and_audit),
    Migration(4, "session proof time, API key parents", _m004_step_up_and_key_parents),
    Migration(5, "session methods and last use, TOTP, recovery codes, passkeys", _m005_sessions_and_second_factors),
    Migration(6, "identities at other providers", _m006_identities),
    Migration(7, "search and retention indexes", _m007_search_and_retention_indexes),
    Migration(8, "API key assurance", _m008_api_key_assurance),
)


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[tuple[int, str, datetime]]
    pending: list[Migration]
    drift: list[str]


def _applied_versions(conn: sa.Connection) -> dict[int, tuple[str, datetime]]:
    _migrations_meta.create_all(conn, checkfirst=True)
    rows = conn.execute(sa.select(_migrations_table)).all()
    return {row.version: (row.name, row.applied_at) for row in rows}


def _apply_pending(conn: sa.Connection) -> list[Migration]:
    applied = _applied_versions(conn)
    ops = Operations(MigrationContext.configure(conn))
    done = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        migration.upgrade(ops)
        conn.execute(
            sa.insert(_migrations_table).values(version=migration.version, name=migration.name, applied_at=utcnow())
        )
        done.append(migration)
    return done


def _status(conn: sa.Connection) -> MigrationStatus:
    applied = _applied_versions(conn)
    pending = [m for m in MIGRATIONS if m.version not in applied]
    drift: list[str] = []
    if not pending:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: (
                    not (
                        (kind == "table" and name == MIGRATIONS_TABLE)
                        or (kind == "index" and name in _PG_SEARCH_INDEXES)
                    )
                ),
            },
        )
        drift = [str(diff) for diff in compare_metadata(context, Base.metadata)]
    return MigrationStatus([(v, n, at) for v, (n, at) in sorted(applied.items())], pending, drift)


async def migrate(engine: AsyncEngine) -> list[Migration]:
    """Apply pending migrations once, even when several instances start together."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(gatehouse_write=True)
        async with conn.begin():
            if engine.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_ID})
            done = await conn.run_sync(_apply_pending)
    for migration in done:
        log.info("applied migration %03d %s", migration.version, migration.name)
    return done


async def migration_status(engine: AsyncEngine) -> MigrationStatus:
    """Applied and pending migrations, and any drift between the models and the database."""
    async with engine.connect() as conn:
        return await conn.run_sync(_status)


# Security ####################################################################

_PASSWORD_MIN, _PASSWORD_MAX, _PASSWORD_MAX_BYTES = 8, 256, 1024


def _no_bad_text(value: str) -> str:
    # Lone surrogates cannot be encoded and NUL breaks PostgreSQL text: refuse both as input.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def check_password(password: str) -> str:
    """Enforce the password policy; the password is used exactly as given."""
    _no_bad_text(password)
    if len(password) < _PASSWORD_MIN:
        raise ValueError(f"password must have at least {_PASSWORD_MIN} characters")
    if len(password) > _PASSWORD_MAX or len(password.encode()) > _PASSWORD_MAX_BYTES:
        raise ValueError(f"password must have at most {_PASSWORD_MAX} characters")
    return password


def normalize_email(email: str) -> str:
    """Validate an email address and return its stored form (lower case)."""
    _no_bad_text(email)
    try:
        info = email_validator.validate_email(email.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    return info.normalized.lower()


def _validated(check: Callable[[str], str], value: str, field: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


class PasswordHasher:
    """bcrypt off the event loop, at most `workers` at once.

    Passwords are pre-hashed (HMAC-SHA256, base64) so bcrypt's 72-byte cut never
    applies: every character of a long password counts.
    """

    def __init__(self, *, rounds: int, workers: int):
        self.rounds = rounds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        self._dummy: str | None = None
        self.queued = 0
        self.checks = 0
        self.hashes = 0

    @staticmethod
    def _prehash(password: str) -> bytes:
        digest = hmac.new(b"gatehouse/password/v1", password.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest)

    def _hash_sync(self, password: str) -> str:
        self.hashes += 1
        return bcrypt.hashpw(self._prehash(password), bcrypt.gensalt(self.rounds)).decode()

    def _verify_sync(self, password: str, hashed: str) -> bool:
        self.checks += 1
        try:
            return bcrypt.checkpw(self._prehash(password), hashed.encode())
        except ValueError:
            return False

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self.queued -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hash_sync, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check a password; with no hash, spend the same time and return False."""
        if hashed is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            await self._run(self._verify_sync, password, self._dummy)
            return False
        return await self._run(self._verify_sync, password, hashed)

    def needs_rehash(self, hashed: str) -> bool:
        try:
            return int(hashed.split("$")[2]) != self.rounds
        except (IndexError, ValueError):
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def b64url(data: bytes) -> str:
    """Unpadded URL-safe base64, as tokens and cursors carry it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"gatehouse/{purpose}/v1".encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    # No role here: the `role` claim is for other services; this one reads the current role
    # from the cached user, so a demotion applies to tokens already issued.
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: int
    kid: str = ""
    auth_time: int = 0  # when the person last proved themselves (0: not said, i.e. never fresh)
    amr: tuple[str, ...] = ()  # how (RFC 8176-style): pwd, otp, recovery, webauthn
    aal: int = 1  # assurance level, from `acr` ("aal1"/"aal2")


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One signing key as stored: the private half sealed, the public half as PEM."""

    kid: str
    algorithm: str
    private_key: str | None
    public_key: str | None


_KID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


_REFRESH_RE = re.compile(r"^([0-9a-f]{32})\.(\d{1,9})\.([A-Za-z0-9_-]{43})$")


_JWT_ERRORS: tuple[tuple[type[Exception], type[InvalidToken]], ...] = (
    (jwt.ExpiredSignatureError, TokenExpired),
    (jwt.InvalidAudienceError, InvalidAudience),
    (jwt.InvalidIssuerError, InvalidIssuer),
    (jwt.InvalidAlgorithmError, InvalidAlgorithm),
)


def _generate_private_key(algorithm: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# API keys look like gate_<public id>_<secret>: the prefix lets secret scanners spot a
# leaked one, the public id finds the row, and only SHA-256 of the secret is stored
# (the secret has 160 random bits, so a slow hash would add nothing).
API_KEY_PREFIX = "gate_"


class Sealer:
    """Secrets kept at rest (signing keys' private halves, TOTP secrets, the federated sign-in flow):
    AES-GCM under a key derived from SECRET_KEY, each bound to its `context`."""

    def __init__(self, secret: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._seal = AESGCM(_derive(secret, "signing-key-seal"))  # the derivation's label predates the other uses

    def seal(self, data: bytes, *, context: str) -> str:
        """AES-GCM under a key derived from SECRET_KEY, bound to `context` (a kid, `totp/<user id>`)."""
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._seal.encrypt(nonce, data, context.encode())).decode()

    def unseal(self, sealed: str, *, context: str, what: str) -> bytes:
        raw = base64.b64decode(sealed)
        try:
            return self._seal.decrypt(raw[:12], raw[12:], context.encode())
        except Exception:
            raise ConfigError(f"{what} cannot be unsealed: SECRET_KEY changed?") from None


class PasskeyChallenges:
    """WebAuthn challenges that carry their own purpose, user and expiry under a MAC, so any instance can
    check one without storing it; each is spent in the database when used."""

    def __init__(self, secret: bytes):
        self._key = _derive(secret, "webauthn-challenge")

    def issue(self, purpose: str, user_id: uuid.UUID | None, lifetime: int) -> bytes:
        """A challenge for `purpose` (and `user_id`), good for `lifetime` seconds."""
        body = os.urandom(16) + int(time.time() + lifetime).to_bytes(8, "big")
        return body + self._mac(purpose, user_id, body)

    def check(self, challenge: bytes, purpose: str, user_id: uuid.UUID | None) -> datetime | None:
        """When a genuine, unexpired challenge of this purpose and user expires; None otherwise."""
        body, mac = challenge[:24], challenge[24:]
        if len(challenge) != 40 or not hmac.compare_digest(mac, self._mac(purpose, user_id, body)):
            return None
        expires = int.from_bytes(body[16:], "big")
        return datetime.fromtimestamp(expires, UTC) if expires > time.time() else None

    def _mac(self, purpose: str, user_id: uuid.UUID | None, body: bytes) -> bytes:
        bound = f"{purpose}|{user_id.hex if user_id else '-'}|".encode() + body
        return hmac.new(self._key, bound, hashlib.sha256).digest()[:16]


class TokenIssuer:
    """Signs and verifies access tokens (their signing keys' private halves kept sealed); derives refresh
    tokens as HMACs over (session, generation)."""

    def __init__(self, settings: Settings, secret: bytes):
        self._secret = secret
        self._refresh_key = _derive(secret, "refresh-token")
        self.sealer = Sealer(secret)
        self.issuer, self.audience = settings.jwt_issuer, settings.jwt_audience
        self.access_ttl = settings.access_token_minutes * 60
        # kid -> key object. A kid's material never changes, so these never go stale;
        # only kids found in the database reach them, so they stay as small as the key table.
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}
        # token -> verified claims: a repeat of a token already verified skips the signature check
        # (its key is still checked for retirement, and its expiry on every use).
        self._verified: cachetools.LRUCache[str, AccessClaims] = cachetools.LRUCache(
            min(settings.local_cache_max_entries, 10_000)
        )

    def generate(self, algorithm: str) -> KeyMaterial:
        """A new signing key; asymmetric private halves are sealed with SECRET_KEY."""
        from cryptography.hazmat.primitives import serialization as ser

        kid = f"k{secrets.token_urlsafe(12)}"  # never starting with "-", which a shell or CLI takes for an option
        if algorithm == "HS256":
            return KeyMaterial(kid, algorithm, None, None)
        private = _generate_private_key(algorithm)
        pem = private.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
        sealed = self.sealer.seal(pem, context=kid)
        public = private.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
        return KeyMaterial(kid, algorithm, sealed, public.decode())

    def _hmac_key(self, kid: str) -> bytes:
        if kid not in self._private:
            self._private[kid] = _derive(self._secret, f"access-token/{kid}")
        return self._private[kid]

    def _signing_key(self, key: KeyMaterial) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        if key.algorithm == "HS256":
            return self._hmac_key(key.kid)
        if key.kid not in self._private:
            pem = self.sealer.unseal(key.private_key or "", context=key.kid, what=f"signing key {key.kid}")
            self._private[key.kid] = load_pem_private_key(pem, password=None)
        return self._private[key.kid]

    def unseals(self, key: KeyMaterial) -> bool:
        """Whether this SECRET_KEY opens the key's sealed private half (always, for HS256)."""
        try:
            self._signing_key(key)
        except ConfigError:
            return False
        return True

    def _verification_key(self, kid: str, algorithm: str, public_pem: str | None) -> Any:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        if algorithm == "HS256":
            return self._hmac_key(kid)
        if kid not in self._public:
            self._public[kid] = load_pem_public_key((public_pem or "").encode())
        return self._public[kid]

    def issue_access(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        role: str,
        key: KeyMaterial,
        auth_time: int,
        amr: list[str],
        aal: int,
    ) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": secrets.token_urlsafe(12),
            "role": role,
            "typ": "access",
            "iat": now,
            "exp": now + self.access_ttl,
            "iss": self.issuer,
            "aud": self.audience,
            "auth_time": auth_time,  # RFC 9068 / OIDC: other services can apply the same step-up rule
            "amr": amr,
            "acr": f"aal{aal}",  # and the same "needs MFA" rule
        }
        return jwt.encode(
            claims, self._signing_key(key), algorithm=key.algorithm, headers={"kid": key.kid, "typ": "at+jwt"}
        )

    def read_header(self, token: str) -> tuple[str, str]:
        """(kid, alg) of a would-be access token, refusing `none`, odd algorithms and odd kids."""
        if _REFRESH_RE.match(token) or token.startswith(API_KEY_PREFIX):
            raise WrongTokenType("A refresh token or API key was sent where an access token is required.")
        # Read by hand, not with jwt.get_unverified_header: PyJWT answers a non-string kid with its
        # generic error, and every kid we do not know should be `unknown_key`.
        try:
            header = json.loads(b64url_decode(token.split(".", 1)[0]))
            algorithm, kid = header.get("alg"), header.get("kid")
        except (ValueError, TypeError, AttributeError, RecursionError):  # RecursionError: nested too deep
            raise InvalidToken() from None
        if algorithm not in SIGNING_ALGORITHMS:
            raise InvalidAlgorithm("The token's algorithm is not allowed.")
        if not isinstance(kid, str) or not _KID_RE.match(kid):
            raise UnknownKey("The token names no known signing key.")
        return kid, algorithm

    def verified(self, token: str) -> AccessClaims | None:
        """The claims of a token this process already verified, while it has not expired."""
        known = self._verified.get(token)
        if known is not None and known.expires_at + 5 <= time.time():
            self._verified.pop(token, None)
            return None
        return known

    def decode_access(self, token: str, *, kid: str, algorithm: str, public_key: str | None) -> AccessClaims:
        """Verify signature, type and claims with the key `kid`; InvalidToken with a precise code."""
        if (known := self.verified(token)) is not None:
            return known
        claims = self._decode(token, kid=kid, algorithm=algorithm, public_key=public_key)
        self._verified[token] = claims
        return claims

    def _decode(self, token: str, *, kid: str, algorithm: str, public_key: str | None) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._verification_key(kid, algorithm, public_key),
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=5,
                options={"require": ["exp", "iat", "sub", "sid", "jti", "iss", "aud", "typ"]},
            )
        except jwt.PyJWTError as exc:
            for kind, error in _JWT_ERRORS:
                if isinstance(exc, kind):
                    raise error() from None
            raise InvalidToken() from None
        if claims["typ"] != "access":
            raise WrongTokenType()
        try:
            auth_time = claims.get("auth_time", 0)
            amr = claims.get("amr", [])
            amr = tuple(m for m in amr if isinstance(m, str)) if isinstance(amr, list) else ()
            return AccessClaims(
                uuid.UUID(claims["sub"]),
                uuid.UUID(claims["sid"]),
                int(claims["exp"]),
                kid,
                auth_time if isinstance(auth_time, int) else 0,
                amr,
                2 if claims.get("acr") == "aal2" else 1,
            )
        except (ValueError, TypeError, AttributeError):
            raise InvalidToken() from None

    def public_jwk(self, kid: str, algorithm: str, public_pem: str) -> dict[str, Any]:
        """The JWK of a public key, as published at /.well-known/jwks.json."""
        key = self._verification_key(kid, algorithm, public_pem)
        jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(key, as_dict=True)
        return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}

    def _refresh_mac(self, session_id: uuid.UUID, generation: int) -> str:
        mac = hmac.new(self._refresh_key, f"{session_id.hex}.{generation}".encode(), hashlib.sha256).digest()
        return b64url(mac)

    def issue_refresh(self, session_id: uuid.UUID, generation: int) -> str:
        return f"{session_id.hex}.{generation}.{self._refresh_mac(session_id, generation)}"

    def parse_refresh(self, token: str) -> tuple[uuid.UUID, int]:
        """(session id, generation) of a genuine refresh token; InvalidToken otherwise."""
        match = _REFRESH_RE.match(token or "")
        if not match:
            raise InvalidToken("The refresh token is malformed.")
        session_id, generation = uuid.UUID(match[1]), int(match[2])
        if not hmac.compare_digest(match[3], self._refresh_mac(session_id, generation)):
            raise InvalidToken()
        return session_id, generation


@functools.lru_cache(maxsize=4096)  # parsing an address costs more than the limit check it serves
def ip_group(ip: str) -> str:
    """The unit per-address limits count: an IPv4 address, or an IPv6 client's /64 (one
    subscriber's whole allocation, so rotating through it buys no extra attempts)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return ip


_API_KEY_RE = re.compile(r"^gate_([a-z2-7]{10})_([a-z2-7]{32})$")


def _b32(nbytes: int) -> str:
    return base64.b32encode(os.urandom(nbytes)).decode().rstrip("=").lower()


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API key, reset or verification token): what is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """(key to show once, public id, hash to store)."""
    public_id, secret = _b32(7)[:10], _b32(20)
    return f"{API_KEY_PREFIX}{public_id}_{secret}", public_id, hash_secret(secret)


TOTP_STEP = 30


RECOVERY_CODES = 10


_RECOVERY_RE = re.compile(r"^[a-z2-7]{12}$")


def totp_step(code: str, secret: str, *, now: float | None = None) -> int | None:
    """The time step (now, or one either side for clock skew) whose RFC 6238 code this is; None if none."""
    import pyotp

    totp, step = pyotp.TOTP(secret, interval=TOTP_STEP), int((time.time() if now is None else now) // TOTP_STEP)
    found = None
    for candidate in (step - 1, step, step + 1):  # all three compared: the time says nothing about which
        if hmac.compare_digest(totp.at(candidate * TOTP_STEP).encode(), code.encode()):
            found = candidate
    return found


def new_recovery_code() -> str:
    """60 random bits as xxxx-xxxx-xxxx (base32): high entropy, so SHA-256 is the right hash."""
    raw = _b32(8)[:12]
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalize_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx", "httpx"),
    ("python-requests", "requests"),
    ("gatehouse-cli", "Gatehouse CLI"),
)


_SYSTEMS = (
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_label(user_agent: str) -> str:
    """A short label such as "Firefox on Linux" from a User-Agent (first match wins; enough to tell devices apart)."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:40] if user_agent else "unknown device")


# Cache and rate limiting #####################################################
#
# Two tiers. A bounded in-process "near cache" answers the common request with no
# network at all; every write that changes a user or session tells every process to
# drop its copy (Redis pub/sub with Redis, a signal file next to the database without).
# Entries carry a version, so a slow reader can never overwrite a newer value.

Entry = tuple[int, Any]  # (version, payload); payload None = known not to exist / revoked


class Keys:
    """Every near-cache entry and limit key, by what it holds: the whole key space in one place (in Redis
    each also carries REDIS_PREFIX). A limit's metric label is the part before the first colon."""

    # Cached entries, each published to every process when what it holds changes.
    user = "u:{}".format
    session = "s:{}".format
    api_key = "k:{}".format  # by the key's public id
    signing_key = "sk:{}".format  # by kid
    active_signing_key = "sk:active:{}".format  # by algorithm
    # Rate limits per client address (a /64 for IPv6), per account, per account and address ...
    general_ip = "ip:{}".format
    auth_ip = "auth-ip:{}".format
    login_failures = "login-fail:{}".format
    login_failures_from = "login-fail:{}|{}".format
    mfa_failures = "mfa-fail:{}".format
    mfa_failures_known = "mfa-fail-known:{}".format  # the owner's reserve, from addresses signed in from
    verification_mail = "verify:{}".format
    email_change = "email-change:{}".format
    # ... and per mailbox: the mail budget.
    mail = "mail:{}".format
    mail_from = "mail-ip:{}|{}".format  # mailbox, requesting address
    mail_known = "mail-known:{}".format
    mail_code = "mail-code:{}".format  # login and email codes of one account
    # Claims: the first caller in a window does the work, on every instance.
    api_key_touch = "touch:{}".format
    session_touch = "touch-s:{}".format
    clone_mail = "clone-mail:{}".format
    oauth_state = "oauth-state:{}".format

    @staticmethod
    def code_tries(purpose: str, user_id: object) -> str:
        """Wrong tries of one mailed code (`login_code`: "login-code:…")."""
        return f"{purpose.replace('_', '-')}:{user_id}"


class LocalCache:
    """Bounded LRU of versioned entries with a TTL and an invalidation epoch (the version and
    epoch rules are ours; cachetools keeps the bound)."""

    def __init__(self, *, max_entries: int, ttl: float):
        self._data: cachetools.LRUCache[str, tuple[float, int, Any]] = cachetools.LRUCache(max_entries)
        self.max_entries, self.ttl = max_entries, ttl
        self.epoch = 0

    def get(self, key: str) -> Entry | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self._data.pop(key, None)
            return None
        return item[1], item[2]

    def put(self, key: str, version: int, payload: Any, *, epoch: int | None = None) -> None:
        """Store unless an invalidation arrived since `epoch` or a newer version is held."""
        if self.ttl <= 0 or (epoch is not None and epoch != self.epoch):
            return
        current = self._data.get(key)
        if current is not None and current[1] > version:
            return
        self._data[key] = (time.monotonic() + self.ttl, version, payload)

    def evict(self, keys: list[str]) -> None:
        self.epoch += 1
        for key in keys:
            self._data.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class LocalLimiter:
    """GCRA rate limiter in process memory, bounded by an LRU of keys."""

    def __init__(self, max_entries: int):
        self._tat: cachetools.LRUCache[str, float] = cachetools.LRUCache(max_entries)

    def forget(self, key: str) -> None:
        self._tat.pop(key, None)

    def hit(self, key: str, rate: Rate, cost: int = 1) -> float:
        """Spend `cost` (0 = only look, negative = give back); seconds to wait, 0.0 when allowed."""
        now = time.monotonic()
        interval = rate.period / rate.limit
        tat = max(self._tat.get(key, now), now)
        if cost < 0:
            self._tat[key] = max(now, tat + cost * interval)
            return 0.0
        allow_at = tat + max(cost, 1) * interval - rate.period
        if now < allow_at - 1e-9:
            return allow_at - now
        if cost:
            self._tat[key] = tat + cost * interval
        return 0.0


class Cache:
    """The cache interface: versioned entries, cross-process invalidation, rate limits."""

    kind = "memory"

    def __init__(self, settings: Settings):
        self.local = LocalCache(max_entries=settings.local_cache_max_entries, ttl=settings.local_cache_seconds)
        self.limiter = LocalLimiter(settings.local_cache_max_entries)

    def epoch(self) -> int:
        """Token to pass to fill(): fills started before an invalidation are dropped."""
        return self.local.epoch

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> Entry | None:
        return self.local.get(key)

    async def fill(self, key: str, version: int, payload: Any, epoch: int | None) -> None:
        """Cache-aside fill after a database read."""
        self.local.put(key, version, payload, epoch=epoch)

    async def publish(self, entries: dict[str, Entry]) -> None:
        """After a write commits: store the new versions and make every process drop its copy."""
        self.local.evict(list(entries))
        for key, (version, payload) in entries.items():
            self.local.put(key, version, payload)

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> float:
        """Spend from a rate limit; seconds to wait, 0.0 when allowed."""
        return self.limiter.hit(key, rate, cost) if rate.limit else 0.0

    async def forget_limit(self, key: str) -> None:
        """Clear a rate limit's count (a completed password reset clears the account's)."""
        self.limiter.forget(key)

    async def claim(self, key: str, seconds: float) -> bool:
        """True for the first caller in `seconds` (in this process; across processes with Redis)."""
        return seconds <= 0 or self.limiter.hit(f"claim:{key}", Rate(1, seconds)) == 0

    async def hit_general(self, key: str, rate: Rate) -> float:
        """The per-request limit: never a network round trip (see RedisCache)."""
        return self.limiter.hit(key, rate) if rate.limit else 0.0

    async def health(self) -> dict[str, str]:
        return {"status": "ok", "kind": self.kind}


class MemoryCache(Cache):
    """Per-process cache and limits. Other processes on the same database file (the CLI,
    `--workers N`) are told about writes through a signal file: its identity is checked
    on every read (one stat call), and a change empties this process's cache."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        url = database_url(settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self.signal_path = Path(f"{url.database}-gatehouse-signal")
        else:
            tag = hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]
            self.signal_path = Path(tempfile.gettempdir()) / f"gatehouse-{tag}-signal"
        self._stamp = self._read_stamp()
        self._checked = time.monotonic()

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.signal_path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _check_signal(self) -> None:
        now = time.monotonic()
        if now - self._checked < 0.002:  # one stat per 2 ms at most, not one per lookup
            return
        self._checked = now
        stamp = self._read_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self.local.clear()

    def epoch(self) -> int:
        self._check_signal()
        return self.local.epoch

    async def get(self, key: str) -> Entry | None:
        self._check_signal()
        return self.local.get(key)

    async def publish(self, entries: dict[str, Entry]) -> None:
        await super().publish(entries)
        tmp = self.signal_path.with_name(f"{self.signal_path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            tmp.write_text(str(time.time_ns()))
            os.replace(tmp, self.signal_path)  # a new inode: readers see a change even within one mtime tick
        except OSError as exc:
            log.warning("could not write the cache signal file %s: %s", self.signal_path, exc)


_LUA_FILL = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  if bar and tonumber(string.sub(cur, 1, bar - 1)) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""

# GCRA: one key per limit holds the theoretical arrival time in ms. ARGV: interval ms,
# period ms, cost (0 = look only, negative = give back). Returns ms to wait (0 = allowed).
_LUA_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if cost < 0 then
  local back = math.max(now, tat + cost * interval)
  redis.call('SET', KEYS[1], back, 'PX', math.max(1, math.ceil(back - now)))
  return 0
end
local allow_at = tat + math.max(cost, 1) * interval - period
if now < allow_at then return allow_at - now end
if cost > 0 then
  local new_tat = tat + cost * interval
  redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
end
return 0
"""


class RedisCache(Cache):
    """Redis as the shared tier and the invalidation bus, with the near cache in front.

    The near cache is used only while this process is subscribed to the invalidation
    channel. When Redis fails, reads go to the database and limits to the in-process
    limiter; a write that could not be announced bumps the key generation on recovery,
    so no instance keeps trusting an entry from before the outage."""

    kind = "redis"

    def __init__(self, settings: Settings):
        import redis.asyncio as aioredis

        super().__init__(settings)
        self._errors = (aioredis.RedisError, OSError, asyncio.TimeoutError)
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_timeout,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            health_check_interval=30,
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.prefix = settings.redis_prefix
        self.channel = f"{settings.redis_prefix}events"
        self.ttl = settings.cache_ttl_seconds
        self._fill = self.redis.register_script(_LUA_FILL)
        self._gcra = self.redis.register_script(_LUA_GCRA)
        self._gen = 0
        self._subscribed = False
        self._dirty = False
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._startup_timeout = settings.redis_timeout
        self._gl_pending: dict[tuple[str, int, float], int] = {}
        self._gl_known: cachetools.LRUCache[str, tuple[int, int]] = cachetools.LRUCache(
            settings.local_cache_max_entries
        )
        self._gl_task: asyncio.Task[None] | None = None

    def _key(self, key: str) -> str:
        return f"{self.prefix}c:{self._gen}:{key}"

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._available():
            log.warning("redis unavailable (%s); using the database and in-process limits", exc)
        self._down_until = time.monotonic() + 1.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="gatehouse-redis-listener")
        self._gl_task = asyncio.create_task(self._sync_general(), name="gatehouse-limit-sync")
        try:  # serve with the right key generation from the first request; degraded if Redis is down
            await asyncio.wait_for(self._ready.wait(), timeout=self._startup_timeout)
        except TimeoutError:
            log.warning("redis is not reachable at startup; running degraded until it is")

    async def close(self) -> None:
        tasks = [task for task in (self._task, self._gl_task) if task]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a cancellation swallowed inside the Redis client (seen as a rare hang at
            # shutdown) must not keep the process from closing.
            _, stuck = await asyncio.wait(tasks, timeout=2)
            for task in stuck:
                log.warning("redis task %s did not stop when cancelled; leaving it", task.get_name())
        await self.redis.aclose()

    async def _listen(self) -> None:
        """Follow the invalidation channel; reconnect forever with a short backoff."""
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._gen = int(await self.redis.get(f"{self.prefix}gen") or 0)
                self.local.clear()
                self._subscribed, backoff = True, 0.1
                self._ready.set()
                while True:
                    if self._dirty:
                        await self._bump_generation()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop trusting the near cache, then retry
                self._subscribed = False
                self.local.clear()
                self._failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):  # the connection is being dropped anyway
                    await pubsub.aclose()

    def _on_message(self, data: bytes) -> None:
        message = json.loads(data)
        if "gen" in message:
            self._gen = int(message["gen"])
            self.local.clear()
        else:
            self.local.evict(message["evict"])

    async def _bump_generation(self) -> None:
        self._gen = int(await self.redis.incr(f"{self.prefix}gen"))
        self.local.clear()
        await self.redis.publish(self.channel, json.dumps({"gen": self._gen}))
        self._dirty = False
        log.warning("redis recovered; cache generation is now %d", self._gen)

    async def get(self, key: str) -> Entry | None:
        if self._subscribed and (entry := self.local.get(key)) is not None:
            return entry
        if not self._available():
            return None
        epoch = self.local.epoch
        try:
            raw = await self.redis.get(self._key(key))
        except self._errors as exc:
            self._failed(exc)
            return None
        if raw is None:
            return None
        version, _, payload = raw.partition(b"|")
        entry = (int(version), json.loads(payload))
        if self._subscribed:
            self.local.put(key, entry[0], entry[1], epoch=epoch)
        return entry

    async def fill(self, key: str, version: int, payload: Any, epoch: int | None) -> None:
        if self._subscribed:
            self.local.put(key, version, payload, epoch=epoch)
        if self._available():
            try:
                await self._fill(keys=[self._key(key)], args=[version, json.dumps(payload), self.ttl])
            except self._errors as exc:
                self._failed(exc)

    async def publish(self, entries: dict[str, Entry]) -> None:
        self.local.evict(list(entries))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, (version, payload) in entries.items():
                    await self._fill(keys=[self._key(key)], args=[version, json.dumps(payload), self.ttl], client=pipe)
                pipe.publish(self.channel, json.dumps({"evict": list(entries)}))
                await pipe.execute()
        except self._errors as exc:
            # The database already holds the truth; make sure no instance trusts old entries.
            self._dirty = True
            self._failed(exc)

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> float:
        if not rate.limit:
            return 0.0
        if self._available():
            interval = rate.period * 1000 / rate.limit
            try:
                wait_ms = await self._gcra(keys=[f"{self.prefix}rl:{key}"], args=[interval, rate.period * 1000, cost])
                return float(wait_ms) / 1000
            except self._errors as exc:
                self._failed(exc)
        return self.limiter.hit(key, rate, cost)

    async def hit_general(self, key: str, rate: Rate) -> float:
        # Counted here and added to a shared per-window counter (INCRBY) every 100 ms, so the
        # request path never waits on Redis; instances overshoot by at most one sync interval.
        if not rate.limit:
            return 0.0
        if not self._available():
            return self.limiter.hit(key, rate)
        now = time.time()
        window = int(now // rate.period)
        known_window, known = self._gl_known.get(key, (window, 0))
        pending = self._gl_pending.get((key, window, rate.period), 0) + 1
        if (known if known_window == window else 0) + pending > rate.limit:
            return (window + 1) * rate.period - now
        self._gl_pending[(key, window, rate.period)] = pending
        return 0.0

    async def _sync_general(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if not self._gl_pending or not self._available():
                continue
            batch, self._gl_pending = self._gl_pending, {}
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for (key, window, period), count in batch.items():
                        name = f"{self.prefix}gl:{key}:{window}"
                        pipe.incrby(name, count)
                        pipe.expire(name, int(period * 2) + 1)
                    results = await pipe.execute()
            except self._errors as exc:
                self._failed(exc)
                continue
            for ((key, window, _), _count), total in zip(batch.items(), results[::2], strict=True):
                self._gl_known[key] = (window, int(total))

    async def forget_limit(self, key: str) -> None:
        self.limiter.forget(key)
        try:
            await self.redis.delete(f"{self.prefix}rl:{key}")
        except self._errors as exc:
            self._failed(exc)

    async def claim(self, key: str, seconds: float) -> bool:
        if not self._available():
            return True
        try:
            return bool(await self.redis.set(f"{self.prefix}claim:{key}", b"1", nx=True, px=int(seconds * 1000)))
        except self._errors as exc:
            self._failed(exc)
            return True

    async def health(self) -> dict[str, str]:
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=1.0)
        except Exception as exc:
            return {"status": "degraded", "kind": self.kind, "detail": type(exc).__name__}
        state = "ok" if self._subscribed else "degraded"
        return {"status": state, "kind": self.kind}


def create_cache(settings: Settings) -> Cache:
    return RedisCache(settings) if settings.redis_url else MemoryCache(settings)


# Mail ########################################################################

_KIND_RE = re.compile(r"^[a-z0-9_]{1,64}$")


# The built-in messages, so that service.py needs no file beside it. Each is a subject and the paragraphs of
# its body; the text and HTML parts are made from them inside one layout. A paragraph that is just $link or
# $code stands out: indented in the text, a link or bold in the HTML.
_MESSAGES: dict[str, tuple[str, ...]] = {
    "_generic": (
        "$kind_title: your account on $site",
        "There is news about your account $email on $site: $kind_title.",
        "$link",
        "If you did not expect this message, contact the administrators of $site.",
    ),
    "password_reset": (
        "Reset your password for $site",
        "Someone (hopefully you) asked to reset the password of the account $email on $site.",
        "Choose a new password here; the link works once and expires in $reset_minutes minutes:",
        "$link",
        "If you did not ask for this, ignore this message: your password stays as it is.",
    ),
    "email_verification": (
        "Confirm your email address for $site",
        "Please confirm that $email is your address; the link expires in $verify_hours hours:",
        "$link",
        "If you did not create an account on $site, ignore this message.",
    ),
    "email_change_confirm": (
        "Confirm your new email address for $site",
        "Someone asked to use $email as the address of an account on $site.",
        "The change happens only when you open this link (it expires in $email_change_hours hours):",
        "$link",
        "If you did not ask for this, ignore this message: nothing changes.",
    ),
    "email_change_notice": (
        "Your email address on $site is being changed",
        "Someone asked to change the address of your account on $site from $email to $new_email.",
        "If that was you, there is nothing to do. If it was not, open this link within $email_revert_days days: "
        "it cancels or undoes the change, signs out every session and revokes every API key:",
        "$link",
        "Then choose a new password: whoever asked for the change may know your current one.",
    ),
    "email_changed": (
        "Your email address on $site was changed",
        "An administrator changed the address of your account on $site from $email to $new_email.",
        "From now on, messages about your account go to the new address.",
        "If you did not expect this, contact the administrators of $site.",
    ),
    "login_code": (
        "Your sign-in code for $site: $code",
        "Someone is signing in to your account $email on $site after several wrong passwords.",
        "To continue, enter this code (valid for $login_code_minutes minutes):",
        "$code",
        "If it was not you, do not share the code with anyone, and consider changing your password.",
    ),
    "email_code": (
        "Your code for $site: $code",
        "Someone signed in to your account $email on $site is changing its second factors, and asked for this "
        "code to prove the account is theirs (valid for $login_code_minutes minutes):",
        "$code",
        "If it was not you, do not share the code with anyone, and sign out every session of your account.",
    ),
    "identity_link": (
        "Link a $provider sign-in to your account on $site?",
        "Someone signing in with $provider asked to link that sign-in to the account of $email on $site. Once "
        "linked, whoever holds that $provider sign-in can use your account.",
        "If it was you, open this link within $reset_minutes minutes and press the button:",
        "$link",
        "If it was not you, ignore this message: nothing is linked without that button.",
    ),
    "new_sign_in": (
        "New sign-in to your account on $site",
        "Your account $email on $site was signed in to from a device or network it has not used before.",
        "If this was you, there is nothing to do. If not, reset your password: every session ends with it.",
    ),
    "mfa_enabled": (
        "Two-step sign-in is now on for $site",
        "Two-step sign-in was turned on for your account $email on $site.",
        "If you did not do this, remove it at once with this link (every session ends and every API key is "
        "revoked; the link works for $factor_undo_days days):",
        "$link",
        "Then choose a new password with a reset link.",
    ),
    "mfa_disabled": (
        "Two-step sign-in was turned off on $site",
        "Two-step sign-in was turned off for your account $email on $site.",
        "If you did not do this, reset your password at once: someone else may be in your account.",
    ),
    "mfa_reset": (
        "Your two-step sign-in on $site was reset",
        "The second factor of your account $email on $site was reset; you can set up a new one the next time "
        "you sign in.",
        "If you did not ask for this, contact the administrators of $site.",
    ),
    "recovery_code_used": (
        "A recovery code was used on your account on $site",
        "A recovery code was used to sign in to your account $email on $site; $remaining are left.",
        "If it was not you, someone holds your password and a recovery code: reset your password at once.",
    ),
    "recovery_codes_replaced": (
        "Your recovery codes on $site were replaced",
        "New recovery codes were made for your account $email on $site; the old ones no longer work.",
        "If you did not do this, reset your password at once: someone else may be in your account.",
    ),
    "passkey_added": (
        "A passkey was added to your account on $site",
        "A new passkey ($name) can now sign in to your account $email on $site.",
        "If you did not add it, remove it at once with this link (every session ends and every API key is "
        "revoked; the link works for $factor_undo_days days):",
        "$link",
        "Then choose a new password with a reset link.",
    ),
    "passkey_removed": (
        "A passkey was removed from your account on $site",
        "The passkey ($name) can no longer sign in to your account $email on $site.",
        "If you did not remove it, reset your password at once: someone else may be in your account.",
    ),
    "passkey_clone_detected": (
        "A copy of your passkey was used on $site",
        'Someone tried to sign in to your account $email on $site with a copy of your passkey "$name": its '
        "signature counter went backwards, as a cloned authenticator's does. The attempt was refused.",
        'Sign in with another factor, remove the passkey "$name" from your account, and add it again from the '
        "authenticator you hold.",
    ),
}


_MAIL_STYLE = (
    "font-family: sans-serif; line-height: 1.5; color: #1d2430; max-width: 36em; margin: 0 auto; padding: 1em;"
)


_MAIL_HTML_LAYOUT = """\
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body style="{style}">
<p>Hello,</p>
{paragraphs}
<p style="color: #5b6472; font-size: 0.9em;">&mdash; $site</p>
</body>
</html>
"""


def _mail_text(paragraphs: tuple[str, ...]) -> str:
    body = "\n\n".join(f"    {p}" if p in ("$link", "$code") else p for p in paragraphs)
    return f"Hello,\n\n{body}\n\n-- \n$site\n"


def _mail_html(subject: str, paragraphs: tuple[str, ...]) -> str:
    shown = {
        "$link": '<p><a href="$link">$link</a></p>',
        "$code": '<p style="font-size: 1.6em; letter-spacing: 0.2em;"><strong>$code</strong></p>',
    }
    html_paragraphs = "\n".join(shown.get(p) or f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return _MAIL_HTML_LAYOUT.format(title=html.escape(subject), style=_MAIL_STYLE, paragraphs=html_paragraphs)


# The pages the mailed links open (see the Routes section): one layout, one style sheet.
_PAGES = {
    "pages/layout.html": """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>$title</title>
<link rel="stylesheet" href="$base/pages/gatehouse.css">
</head>
<body>
<main>
<h1>$title</h1>
$content
</main>
</body>
</html>
""",
    "pages/confirm.html": """\
<p>$explain</p>
<form method="post" action="$action">
<input type="hidden" name="token" value="$token">
<button type="submit">$button</button>
</form>
""",
    "pages/done.html": """\
<p class="$outcome">$message</p>
""",
    "pages/reset_password.html": """\
<p>Choose a new password for your account. Every session will end and every API key will be revoked,
so sign in again everywhere afterwards.</p>
<p class="error">$error</p>
<form method="post" action="$action">
<input type="hidden" name="token" value="$token">
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" minlength="8" required
 autofocus>
<label for="confirm_password">Repeat it</label>
<input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" minlength="8"
 required>
$factors
<button type="submit">Set the new password</button>
</form>
""",
    "pages/gatehouse.css": """\
body { font-family: system-ui, sans-serif; line-height: 1.5; color: #1d2430; background: #f4f6f9; margin: 0; }
main { max-width: 28em; margin: 3em auto; padding: 2em; background: #fff; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0, 0, 0, 0.12); }
h1 { font-size: 1.4em; margin-top: 0; }
label { display: block; margin-top: 1em; font-weight: 600; }
input[type=password] { width: 100%; box-sizing: border-box; padding: 0.5em; font-size: 1em; }
button { margin-top: 1.5em; padding: 0.6em 1.2em; font-size: 1em; background: #1f5fbf; color: #fff; border: 0;
         border-radius: 4px; cursor: pointer; }
.ok { color: #17663a; }
.error { color: #a51d2d; }
.factors { padding-left: 0; list-style: none; }
.factors label { display: inline; font-weight: normal; margin-left: 0.4em; }
""",
}


BUILT_IN_TEMPLATES: dict[str, str] = {
    **{f"{kind}.subject.txt": parts[0] for kind, parts in _MESSAGES.items()},
    **{f"{kind}.txt": _mail_text(parts[1:]) for kind, parts in _MESSAGES.items()},
    **{f"{kind}.html": _mail_html(parts[0], parts[1:]) for kind, parts in _MESSAGES.items()},
    **_PAGES,
}


_NOT_TEMPLATES = frozenset({"pages/gatehouse.css"})  # served as it is


class _Values(dict[str, str]):
    """Template values: a placeholder that a message does not fill renders empty rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


class Templates:
    """Every mail and page template (`$name`, string.Template), built in; a file of the same name in
    MAIL_TEMPLATES_DIR replaces one. All are read and rendered once when made: what cannot be used is
    listed in `problems` (the server refuses to start on them) and the built-in one stays, so a broken
    file is never a failing page or a lost mail."""

    def __init__(self, settings: Settings):
        self.texts = dict(BUILT_IN_TEMPLATES)
        self.origin = {name: f"built-in template {name}" for name in self.texts}
        self.problems: list[str] = []
        if settings.mail_templates_dir:
            self._read(Path(settings.mail_templates_dir))
        self._templates = {name: string.Template(text) for name, text in self.texts.items()}
        for name in sorted(self._templates.keys() - _NOT_TEMPLATES):
            try:
                self.render(name, {}, as_html=False)
            except ValueError as exc:
                self.problems.append(f"{self.origin[name]}: {exc} (write $$ for a dollar sign)")
                self.texts[name] = BUILT_IN_TEMPLATES[name]
                self._templates[name] = string.Template(self.texts[name])

    def _read(self, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_dir() or any(part.startswith(".") for part in name.split("/")):  # .git, editors' swap files
                continue
            if name not in self.texts:
                self.problems.append(
                    f"{path}: no built-in template has this name (mail: KIND.subject.txt, KIND.txt or KIND.html "
                    f"for a kind Gatehouse sends; pages: {', '.join(sorted(_PAGES))})"
                )
                continue
            try:
                self.texts[name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeError) as exc:
                self.problems.append(f"{path} cannot be read: {exc}")
                continue
            self.origin[name] = str(path)

    def get(self, name: str) -> string.Template | None:
        return self._templates.get(name)

    def render(self, name: str, values: dict[str, str], *, as_html: bool, markup: dict[str, str] | None = None) -> str:
        """Fill a template; in HTML every value is escaped (`markup`: HTML built from escaped parts)."""
        if as_html:
            values = {k: html.escape(v, quote=True) for k, v in values.items()}
        return self._templates[name].substitute(_Values({**values, **(markup or {})}))


@dataclass(frozen=True, slots=True)
class Mail:
    """A rendered message and the facts it was made from (which the webhook receives)."""

    kind: str
    to: str
    subject: str
    text: str
    html: str
    fields: dict[str, str]
    user_id: uuid.UUID | None = None


def render_mail(
    settings: Settings,
    files: Templates,
    *,
    kind: str,
    to: str,
    link: str = "",
    user_id: uuid.UUID | None = None,
    **fields: str,
) -> Mail:
    """Subject, text and HTML for one kind of message; a kind without templates uses `_generic`."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"mail kind {kind!r} is not a template name")
    if files.get(f"{kind}.txt") is None:
        kind_files = "_generic"
    else:
        kind_files = kind
    values = {
        "email": to,
        "link": link,
        "kind": kind,
        "kind_title": kind.replace("_", " ").capitalize(),
        "public_url": settings.public_url,
        "site": settings.public_url.split("://", 1)[1].split("/", 1)[0],
        "reset_minutes": str(settings.password_reset_minutes),
        "verify_hours": str(settings.verify_email_hours),
        "email_change_hours": str(settings.email_change_hours),
        "email_revert_days": str(settings.email_revert_days),
        "factor_undo_days": str(settings.factor_undo_days),
        "login_code_minutes": str(settings.login_code_minutes),
        **{k: str(v) for k, v in fields.items()},
    }
    subject = files.render(f"{kind_files}.subject.txt", values, as_html=False)
    subject = " ".join(subject.split())  # one header line, whatever a value holds
    return Mail(
        kind=kind,
        to=to,
        subject=subject,
        text=files.render(f"{kind_files}.txt", values, as_html=False),
        html=files.render(f"{kind_files}.html", values, as_html=True),
        fields={"link": link, **fields},
        user_id=user_id,
    )


class MailRefused(Exception):
    """The receiving server refused the message for good: another attempt would get the same answer."""


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(" >") or "localhost"


def _mail_domain(settings: Settings) -> str:
    return settings.public_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]


class SmtpTransport:
    """SMTP_URL: smtps:// is TLS from the first byte; smtp:// upgrades with STARTTLS when the server offers
    it, and insists on it before sending a password to any host but this one."""

    name = "smtp"

    def __init__(self, settings: Settings):
        url = urlsplit(settings.smtp_url)
        self.implicit_tls = url.scheme == "smtps"
        self.host = url.hostname or "localhost"
        self.port = url.port or (465 if self.implicit_tls else 587)
        self.username = unquote(url.username or "") or settings.smtp_username
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
        self.password = unquote(url.password or "") or password
        self.timeout = settings.smtp_timeout
        self.tls_context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
        self.sender = settings.mail_from or f"Gatehouse <gatehouse@{_mail_domain(settings)}>"
        loopback = self.host == "localhost" or self.host.startswith("127.") or self.host == "::1"
        self.start_tls: bool | None = (
            False if self.implicit_tls else (True if self.username and not loopback else None)
        )  # None: STARTTLS when offered

    async def send(self, mail: Mail) -> None:
        import aiosmtplib  # imported when mail is first sent: most processes (the CLI) never send any

        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, mail.to, mail.subject
        message["Date"], message["Message-ID"] = formatdate(localtime=False), make_msgid(domain=_domain(self.sender))
        message.set_content(mail.text)
        message.add_alternative(mail.html, subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self.password or None,
                use_tls=self.implicit_tls,
                start_tls=self.start_tls,
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            if all(code >= 500 for code in codes):
                raise MailRefused(f"SMTP {'/'.join(map(str, codes))} for the recipient") from None
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise MailRefused(f"SMTP {exc.code} ({type(exc).__name__})") from None
            raise

    async def close(self) -> None:
        pass


class WebhookTransport:
    """WEBHOOK_URL: the message as JSON (signed with WEBHOOK_SECRET) for a service of your own to send."""

    name = "webhook"

    def __init__(self, settings: Settings):
        import httpx

        self.url, self.secret = settings.webhook_url, settings.webhook_secret
        self.http = httpx.AsyncClient(timeout=settings.webhook_timeout)

    async def send(self, mail: Mail) -> None:
        body = json.dumps(
            {
                "type": mail.kind,
                "email": mail.to,
                **mail.fields,
                "message": {"subject": mail.subject, "text": mail.text, "html": mail.html},
            }
        ).encode()
        headers = {"content-type": "application/json", "user-agent": f"gatehouse/{__version__}"}
        if self.secret is not None:
            mac = hmac.new(self.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
            headers["x-gatehouse-signature"] = f"sha256={mac}"
        response = await self.http.post(self.url, content=body, headers=headers)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise MailRefused(f"webhook answered {response.status_code}")
        response.raise_for_status()

    async def close(self) -> None:
        await self.http.aclose()


MailTransport = SmtpTransport | WebhookTransport


def _mail_error(exc: Exception) -> str:
    """What went wrong, for logs and the audit: a server's reply text may quote the address, so only its code."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return f"{type(exc).__name__} {code}"
    return f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__


class Mailer:
    """Every message goes through one bounded queue: the request path only renders and enqueues, a few
    workers send with retries and backoff, and every outcome is counted, logged and audited."""

    WORKERS = 4
    MAX_DELAY = 300.0

    def __init__(
        self,
        settings: Settings,
        *,
        templates: Templates,
        metrics: Metrics,
        audit: Callable[[Mail, bool, dict[str, Any]], None],
    ):
        self.settings, self.templates = settings, templates
        self.metrics, self.audit = metrics, audit
        self.transport: MailTransport | None = None
        self._queue: asyncio.Queue[Mail] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._sending = 0

    def start(self) -> None:
        settings = self.settings
        if settings.smtp_url:
            self.transport = SmtpTransport(settings)
        elif settings.webhook_url:
            self.transport = WebhookTransport(settings)
        self._queue = asyncio.Queue(maxsize=settings.mail_queue_size)
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(self.WORKERS)] if self.transport else []

    def render(self, *, kind: str, to: str, link: str = "", user_id: uuid.UUID | None = None, **fields: str) -> Mail:
        return render_mail(self.settings, self.templates, kind=kind, to=to, link=link, user_id=user_id, **fields)

    def submit(self, mail: Mail) -> bool:
        """Queue a message (never waits); False when it cannot be sent, said in the log."""
        if self.transport is None or self._queue is None:
            if self.settings.environment == "development":
                self.metrics.mail.labels(mail.kind, "logged").inc()
                log.warning(
                    "no SMTP_URL or WEBHOOK_URL (development): %s for %s: %s %s",
                    mail.kind,
                    mail.to,
                    mail.fields.get("link", ""),
                    {k: v for k, v in mail.fields.items() if k != "link"} or "",
                )
            else:
                log.error("cannot deliver %s: neither SMTP_URL nor WEBHOOK_URL is set", mail.kind)
            return False
        try:
            self._queue.put_nowait(mail)
        except asyncio.QueueFull:
            self.metrics.mail.labels(mail.kind, "dropped").inc()
            log.error(
                "mail queue full (%d waiting, MAIL_QUEUE_SIZE): %s message for user=%s NOT sent; "
                "is the mail server reachable?",
                self._queue.qsize(),
                mail.kind,
                mail.user_id,
            )
            self.audit(mail, False, {"reason": "queue_full", "attempts": 0})
            return False
        self.metrics.mail_queue.set(self._queue.qsize())
        return True

    async def _work(self) -> None:
        if self._queue is None:  # started only by `start`, which makes the queue first
            raise RuntimeError("the mail worker has no queue")
        while True:
            mail = await self._queue.get()
            self._sending += 1
            try:
                await self._send(mail)
            except Exception:
                log.exception("mail worker error")
            finally:
                self._sending -= 1
                self._queue.task_done()
                self.metrics.mail_queue.set(self._queue.qsize())

    async def _send(self, mail: Mail) -> None:
        if self.transport is None:  # only queued when a transport is set (see submit)
            raise RuntimeError("no mail transport to send with")
        attempts, error = self.settings.mail_attempts, ""
        for attempt in range(1, attempts + 1):
            try:
                await self.transport.send(mail)
            except MailRefused as exc:
                error = str(exc)
                break
            except Exception as exc:
                error = _mail_error(exc)
                if attempt < attempts:
                    self.metrics.mail.labels(mail.kind, "retried").inc()
                    delay = min(self.MAX_DELAY, self.settings.mail_retry_seconds * 2 ** (attempt - 1))
                    log.warning(
                        "%s delivery of %s failed (attempt %d of %d: %s); retrying in %.1f s",
                        self.transport.name,
                        mail.kind,
                        attempt,
                        attempts,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                continue
            self.metrics.mail.labels(mail.kind, "sent").inc()
            log.info(
                "mail sent kind=%s user=%s via=%s attempts=%d", mail.kind, mail.user_id, self.transport.name, attempt
            )
            self.audit(mail, True, {"transport": self.transport.name, "attempts": attempt})
            return
        self.metrics.mail.labels(mail.kind, "failed").inc()
        log.error(
            "%s delivery of %s for user=%s failed for good after %d attempt(s): %s",
            self.transport.name,
            mail.kind,
            mail.user_id,
            attempt,
            error,
        )
        self.audit(mail, False, {"transport": self.transport.name, "attempts": attempt, "error": error})

    async def join(self, seconds: float) -> bool:
        """Wait until every queued message is sent or given up; False if time ran out."""
        if self._queue is None:
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._queue.join()
            return True
        except TimeoutError:
            return False

    async def close(self, seconds: float = 10.0) -> None:
        """Send what is queued (for at most `seconds`), then stop the workers."""
        if self._queue is not None and not await self.join(seconds):
            log.error(
                "mail: %d message(s) still queued or retrying at shutdown were NOT sent",
                self._queue.qsize() + self._sending,
            )
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()


# Federation ##################################################################
#
# Clients of other identity providers. Authlib does the OAuth 2 part (authorization URL with
# PKCE S256, the code exchange); joserfc checks ID tokens. Discovery documents and JWKS are
# public provider metadata, not user state: each process caches them for an hour, and fetches
# the JWKS again when an ID token names a key it does not hold (a rotation at the provider).

# `none` and the HMAC family never: an HMAC ID token would be "signed" with our own client secret.
_ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


_METADATA_SECONDS = 3600


_JWKS_REFETCH_SECONDS = 10.0  # an unknown kid fetches the JWKS again at most this often per provider


@dataclass(frozen=True, slots=True)
class OAuthProvider:
    """A configured provider: an OpenID Connect issuer, or GitHub (plain OAuth 2 and its REST API)."""

    name: str
    kind: Literal["oidc", "github"]
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    scopes: str
    issuer: str = ""
    authorize_url: str = ""
    token_url: str = ""
    api_url: str = ""


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """Who the provider says signed in: a stable subject, and an email only if the provider vouches for it."""

    subject: str
    email: str | None
    email_verified: bool
    name: str = ""


_SUBJECT_MAX = 255  # OpenID Connect Core 2: `sub` is at most 255 ASCII characters; the column holds exactly that


def _provider_identity(subject: object, email: object, email_verified: bool, name: object) -> ProviderIdentity:
    """What a provider said, in a shape the database can store: a subject that is not storable whole is
    refused (cutting it would merge two people), the name is cleaned, an unstorable email is no email."""
    if not isinstance(subject, str | int) or isinstance(subject, bool):
        raise ProviderRejected("The identity provider's subject (`sub`) is not a string.")
    subject = str(subject)
    try:
        _no_bad_text(subject)
    except ValueError:
        raise ProviderRejected("The identity provider's subject (`sub`) is not text that can be stored.") from None
    if not 0 < len(subject) <= _SUBJECT_MAX:
        raise ProviderRejected(f"The identity provider's subject (`sub`) is empty or longer than {_SUBJECT_MAX}.")
    try:
        email = _no_bad_text(email) if isinstance(email, str) else None
    except ValueError:
        email = None
    # A display name is only shown: drop what cannot be stored (lone surrogates, NUL, control characters).
    text = name if isinstance(name, str) else ""
    cleaned = "".join(
        " " if unicodedata.category(ch) == "Cc" else ch for ch in text if unicodedata.category(ch) != "Cs"
    )
    return ProviderIdentity(subject, email, email_verified, " ".join(cleaned.split())[:200])


def configured_providers(settings: Settings) -> dict[str, OAuthProvider]:
    """OIDC_PROVIDERS plus the GitHub and Google presets whose client id is set."""
    providers = {
        name: OAuthProvider(
            name, "oidc", entry.client_id, entry.client_secret.get_secret_value(), entry.scopes, issuer=entry.issuer
        )
        for name, entry in settings.oidc_providers.items()
    }
    if settings.google_client_id:
        secret = settings.google_client_secret.get_secret_value() if settings.google_client_secret else ""
        providers["google"] = OAuthProvider(
            "google", "oidc", settings.google_client_id, secret, "openid email profile", issuer=settings.google_issuer
        )
    if settings.github_client_id:
        secret = settings.github_client_secret.get_secret_value() if settings.github_client_secret else ""
        web = settings.github_url.rstrip("/")
        providers["github"] = OAuthProvider(
            "github",
            "github",
            settings.github_client_id,
            secret,
            "read:user user:email",
            authorize_url=f"{web}/login/oauth/authorize",
            token_url=f"{web}/login/oauth/access_token",
            api_url=settings.github_api_url.rstrip("/"),
        )
    return providers


def _oauth_error(value: object) -> str:
    """A provider's error code, as far as it is a plain word (it is shown to the caller)."""
    text = str(value or "error")
    return text if re.fullmatch(r"[a-z_]{1,40}", text) else "error"


class Federation:
    """Talks to identity providers: metadata, the PKCE code exchange, and the checks on what comes back."""

    def __init__(self, settings: Settings):
        self.providers = configured_providers(settings)
        self.timeout = settings.oauth_timeout
        self.http = httpx.AsyncClient(timeout=settings.oauth_timeout, follow_redirects=False)
        self._metadata: cachetools.TTLCache[str, dict[str, Any]] = cachetools.TTLCache(64, _METADATA_SECONDS)
        self._keys: cachetools.TTLCache[str, Any] = cachetools.TTLCache(64, _METADATA_SECONDS)
        self._refetched: dict[str, float] = {}

    def provider(self, name: str) -> OAuthProvider:
        found = self.providers.get(name)
        if found is None:
            raise UnknownProvider()
        return found

    async def close(self) -> None:
        await self.http.aclose()

    async def _get_json(self, url: str, *, headers: dict[str, str] | None = None) -> Any:
        try:
            response = await self.http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("identity provider unreachable url=%s error=%s", url, type(exc).__name__)
            raise ProviderUnavailable() from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(f"The identity provider answered {response.status_code}; try again shortly.")
        if response.status_code != 200:
            raise ProviderRejected(f"The identity provider refused a request ({response.status_code}).")
        try:
            return response.json()
        except ValueError:
            raise ProviderUnavailable("The identity provider answered something that is not JSON.") from None

    async def metadata(self, provider: OAuthProvider) -> dict[str, Any]:
        """The issuer's discovery document, checked to name the issuer configured."""
        if (doc := self._metadata.get(provider.name)) is not None:
            return doc
        doc = await self._get_json(f"{provider.issuer.rstrip('/')}/.well-known/openid-configuration")
        needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        if (
            not isinstance(doc, dict)
            or doc.get("issuer") != provider.issuer
            or not all(isinstance(doc.get(k), str) for k in needed)
        ):
            raise ProviderUnavailable("The identity provider's discovery document is not for this issuer.")
        self._metadata[provider.name] = doc
        return doc

    async def _key_set(self, provider: OAuthProvider, *, refetch: bool = False) -> Any:
        from joserfc.jwk import KeySet

        if not refetch and (keys := self._keys.get(provider.name)) is not None:
            return keys
        doc = await self.metadata(provider)
        try:
            keys = KeySet.import_key_set(await self._get_json(doc["jwks_uri"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ProviderUnavailable(f"The identity provider's JWKS cannot be read ({exc}).") from None
        self._keys[provider.name] = keys
        return keys

    def _client(self, provider: OAuthProvider, redirect_uri: str) -> Any:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        return AsyncOAuth2Client(
            provider.client_id,
            provider.client_secret or None,
            scope=provider.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
        )

    async def authorization_url(
        self, provider: OAuthProvider, *, redirect_uri: str, state: str, nonce: str, verifier: str
    ) -> str:
        """Where to send the browser: the provider's authorization endpoint with state, nonce and PKCE."""
        endpoint = provider.authorize_url or (await self.metadata(provider))["authorization_endpoint"]
        extra = {"nonce": nonce} if provider.kind == "oidc" else {}
        async with self._client(provider, redirect_uri) as oauth:
            url, _ = oauth.create_authorization_url(endpoint, state=state, code_verifier=verifier, **extra)
        return url

    async def identity(
        self, provider: OAuthProvider, *, code: str, redirect_uri: str, verifier: str, nonce: str
    ) -> ProviderIdentity:
        """Spend the authorization code (with the PKCE verifier) and check who signed in."""
        from authlib.integrations.base_client.errors import OAuthError

        endpoint = provider.token_url or (await self.metadata(provider))["token_endpoint"]
        try:
            async with self._client(provider, redirect_uri) as oauth:
                token = await oauth.fetch_token(endpoint, code=code, code_verifier=verifier)
        except httpx.HTTPError as exc:
            log.warning("identity provider unreachable provider=%s error=%s", provider.name, type(exc).__name__)
            raise ProviderUnavailable() from None
        except OAuthError as exc:
            raise ProviderRejected(f"The identity provider refused the code ({_oauth_error(exc.error)}).") from None
        except ValueError:
            raise ProviderUnavailable("The identity provider's token answer cannot be read.") from None
        if provider.kind == "github":
            return await self._github_identity(provider, str(token.get("access_token", "")))
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise IdTokenRejected("The identity provider sent no ID token.")
        claims = await self._check_id_token(provider, id_token, nonce=nonce)
        if "email" not in claims:
            # OpenID Connect Core 5.4: in the code flow, the email claims may come from UserInfo alone.
            info = await self._userinfo(provider, str(token.get("access_token", "")), subject=claims["sub"])
            claims |= {k: info.get(k) for k in ("email", "email_verified")}
            claims.setdefault("name", info.get("name"))
        return _provider_identity(
            claims["sub"],
            claims.get("email"),
            claims.get("email_verified") is True,  # a string "true" is not a provider vouching
            claims.get("name"),
        )

    async def _userinfo(self, provider: OAuthProvider, access_token: str, *, subject: str) -> dict[str, Any]:
        """The UserInfo claims, only if they are about the subject the ID token names (Core 5.3.2)."""
        endpoint = (await self.metadata(provider)).get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not access_token:
            return {}
        info = await self._get_json(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        if not isinstance(info, dict):
            raise ProviderRejected("The identity provider's UserInfo answer is not a JSON object.")
        if info.get("sub") != subject:  # another person's claims must never be taken for this one's
            raise ProviderRejected("The identity provider's UserInfo answer is about another subject.")
        return info

    async def _check_id_token(self, provider: OAuthProvider, id_token: str, *, nonce: str) -> dict[str, Any]:
        from joserfc import jwt as jose_jwt
        from joserfc.errors import InvalidKeyIdError, JoseError

        doc = await self.metadata(provider)
        advertised = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in advertised if a in _ID_TOKEN_ALGORITHMS] if isinstance(advertised, list) else []
        keys = await self._key_set(provider)
        try:
            try:
                decoded = jose_jwt.decode(id_token, keys, algorithms=algorithms)
            except InvalidKeyIdError:
                decoded = jose_jwt.decode(id_token, await self._refetched_keys(provider), algorithms=algorithms)
            registry = jose_jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": provider.issuer},
                sub={"essential": True},
                aud={"essential": True, "value": provider.client_id},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise IdTokenRejected(f"The identity provider's ID token did not verify ({exc.error}).") from None
        except (ValueError, TypeError):
            raise IdTokenRejected() from None
        claims = decoded.claims
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != provider.client_id:
            raise IdTokenRejected("The ID token is shared with other clients and not authorized for this one.")
        return dict(claims)

    async def _refetched_keys(self, provider: OAuthProvider) -> Any:
        from joserfc.errors import InvalidKeyIdError

        # A forged token with a random kid must not make every sign-in hit the provider.
        if time.monotonic() - self._refetched.get(provider.name, -math.inf) < _JWKS_REFETCH_SECONDS:
            raise InvalidKeyIdError()
        self._refetched[provider.name] = time.monotonic()
        return await self._key_set(provider, refetch=True)

    async def _github_identity(self, provider: OAuthProvider, access_token: str) -> ProviderIdentity:
        # GitHub's documented REST API: GET /user (the stable numeric id) and GET /user/emails, where
        # only the primary address with "verified": true counts.
        headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        user = await self._get_json(f"{provider.api_url}/user", headers=headers)
        emails = await self._get_json(f"{provider.api_url}/user/emails", headers=headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int) or not isinstance(emails, list):
            raise ProviderRejected("GitHub's user answer is not what its API documents.")
        primary = next((e for e in emails if isinstance(e, dict) and e.get("primary") is True), {})
        return _provider_identity(
            user["id"], primary.get("email"), primary.get("verified") is True, user.get("name") or user.get("login")
        )


# Service functions ###########################################################


# Service functions: runtime --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a user snapshot (as cached), and a session or an API key."""

    user: dict[str, Any]
    session_id: uuid.UUID | None
    key_id: uuid.UUID | None
    scopes: frozenset[str]
    auth_time: int = 0  # when the person last proved themselves (sessions only)
    amr: tuple[str, ...] = ()  # how the session signed in (sessions only), from the token
    aal: int = 1  # the session's; an API key's is its maker's (a key never passes require_mfa)
    valid_until: float = math.inf  # when the token, session or key behind it runs out (Unix time)
    withheld: frozenset[str] = frozenset()  # scopes held but not usable yet: see resolve_credential

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.UUID(self.user["id"])


@dataclass(frozen=True, slots=True)
class Client:
    """Who is calling: the network origin, and the authenticated actor if there is one."""

    ip: str = "cli"
    user_agent: str = "gatehouse-cli"
    actor_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None

    def acting(self, principal: "Principal") -> "Client":
        return dataclasses.replace(self, actor_id=principal.user_id, key_id=principal.key_id)


CLI = Client()


SERVICE = Client(ip="", user_agent=f"gatehouse/{__version__}")  # the service acting on its own


MAILER = Client(ip="-", user_agent="gatehouse-mailer")


# Every audit event type, for filters that should refuse a misspelt one (`cli.py audit --event`).
AUDIT_EVENTS = frozenset(
    {
        "auth.login",
        "auth.login_code_sent",
        "auth.email_code_sent",
        "auth.logout",
        "auth.logout_all",
        "auth.reauthenticate",
        "auth.refresh_reuse",
        "auth.step_up",
        "key.create",
        "key.revoke",
        "mail.failed",
        "mail.sent",
        "sessions.revoke",
        "signing_key.retire",
        "signing_key.rotate",
        "user.create",
        "user.delete",
        "user.email_change",
        "user.email_change_kept",
        "user.email_change_notice",
        "user.email_change_request",
        "user.email_change_revert",
        "user.email_verified",
        "user.email_verify_request",
        "user.password_change",
        "user.password_reset",
        "user.password_reset_request",
        "user.password_set",
        "user.register",
        "user.update",
        "auth.logout_others",
        "auth.session_end",
        "auth.mfa_challenge",
        "auth.mfa",
        "auth.passkey_login",
        "mfa.totp_enroll",
        "mfa.totp_confirm",
        "mfa.totp_enabled",
        "mfa.totp_disabled",
        "mfa.recovery_codes_replaced",
        "mfa.passkey_added",
        "mfa.passkey_removed",
        "mfa.undo_link_sent",
        "mfa.factor_undone",
        "mfa.recovery_removed",
        "mfa.passkey_clone_detected",
        "mfa.reset",
        "auth.oauth_callback",
        "auth.federated_login",
        "identity.link",
        "identity.link_mail",
        "identity.linked",
        "identity.unlinked",
        "user.unverified_access_ended",
    }
)


def _audit(
    event: str, client: Client, *, subject: uuid.UUID | None = None, outcome: str = "success", **detail: Any
) -> AuditEvent:
    """An audit row; callers add it to the transaction that makes the change."""
    return AuditEvent(
        at=utcnow(),
        event=event,
        outcome=outcome,
        actor_id=client.actor_id,
        key_id=client.key_id,
        subject_id=subject,
        ip=client.ip[:64],
        user_agent=client.user_agent[:300],
        detail=json.dumps(detail, default=str, sort_keys=True)[:1000],
    )


class Gatehouse:
    """Everything the service functions need: engine, cache, hasher, token issuer, audit queue."""

    PRINCIPAL_MEMO_ENTRIES = 10_000  # as many as the verified-token memo keeps

    def __init__(self, settings: Settings):
        """The parts; `await Gatehouse.open(settings)` gives one that is also migrated and listening."""
        self.settings = settings
        secret = load_secret(settings)
        self.tokens = TokenIssuer(settings, secret)
        self.sealer = self.tokens.sealer
        self.challenges = PasskeyChallenges(secret)
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.cache: Cache = create_cache(settings)
        self.hasher = PasswordHasher(rounds=settings.bcrypt_rounds, workers=settings.hash_workers)
        self.key_touches: dict[uuid.UUID, float] = {}  # see due_once_per
        # credential -> (near-cache epoch, valid until, Principal): see resolve_credential. Keyed by
        # the whole credential (a part of it could be forged onto another payload), so an entry
        # costs a few hundred bytes: the busiest callers fit, the rest take the three reads.
        # An OrderedDict kept in least-recently-used order: a hit costs two C calls, not cachetools'
        # four Python ones, on every authenticated request.
        self.principals: collections.OrderedDict[str, tuple[int, float, Principal]] = collections.OrderedDict()
        self.principals_max = min(settings.local_cache_max_entries, self.PRINCIPAL_MEMO_ENTRIES)
        self.session_touches: dict[uuid.UUID, float] = {}  # see due_once_per
        self._tasks: set[asyncio.Task[Any]] = set()
        # near-cache loads under way: key -> (the epoch it started in, its future); see _cached
        self.loading: dict[str, tuple[int, asyncio.Future[Any]]] = {}
        self._audit_queue: list[AuditEvent] = []
        self._audit_flush_due = False
        self._audit_flushing = asyncio.Lock()  # a flush returns only once earlier rows are written
        self.metrics = metrics(settings)
        self._cache_hit, self._cache_miss = self.metrics.cache.labels("hit"), self.metrics.cache.labels("miss")
        self._sampler: asyncio.Task[None] | None = None
        self._purger: asyncio.Task[None] | None = None
        self.trigram_search: bool | None = None  # whether users.email has a trigram index (PostgreSQL)
        self.templates = Templates(settings)
        self.mailer = Mailer(settings, templates=self.templates, metrics=self.metrics, audit=self._audit_mail)
        self.federation = Federation(settings)

    def _audit_mail(self, mail: Mail, sent: bool, detail: dict[str, Any]) -> None:
        # Ids and kind only: the address and the link (a credential) never enter the audit log.
        self.audit_later(
            _audit(
                "mail.sent" if sent else "mail.failed",
                MAILER,
                subject=mail.user_id,
                outcome="success" if sent else "failure",
                kind=mail.kind,
                **detail,
            )
        )

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run bookkeeping off the request path; close() waits for it."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                log.warning("background task failed: %s", exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def audit_later(self, row: AuditEvent) -> None:
        """Queue an audit row that has no transaction of its own (failed logins); written in batches."""
        self._audit_queue.append(row)
        if len(self._audit_queue) > 10_000:
            del self._audit_queue[0]
            log.warning("audit queue full: the oldest queued event was dropped")
        if not self._audit_flush_due:
            self._audit_flush_due = True

            async def soon() -> None:
                await asyncio.sleep(0.2)
                await self.flush_audit()

            self.spawn(soon())

    async def flush_audit(self) -> None:
        """Write queued audit rows in one transaction (kept queued if the database is down). A flush
        already under way is waited for, so every row queued before the call is written when it returns."""
        async with self._audit_flushing:
            self._audit_flush_due = False
            rows, self._audit_queue = self._audit_queue, []
            if not rows:
                return
            try:
                async with self.transaction(write=True) as db:
                    db.add_all(rows)
            except Exception as exc:
                # Fresh copies (the failed session has let go of the originals), every column kept.
                columns = [column.key for column in AuditEvent.__table__.columns]
                self._audit_queue[:0] = [AuditEvent(**{c: getattr(r, c) for c in columns}) for r in rows]
                log.warning("audit rows kept queued: %s", exc)

    @classmethod
    async def open(cls, settings: Settings, *, auto_migrate: bool | None = None) -> "Gatehouse":
        """A ready Gatehouse: migrated (with AUTO_MIGRATE), following the cache bus, sampling gauges."""
        gatehouse = cls(settings)
        try:
            if settings.auto_migrate if auto_migrate is None else auto_migrate:
                try:
                    await migrate(gatehouse.engine)
                except _DB_DOWN_ERRORS as exc:
                    raise ConfigError(f"DATABASE_URL: cannot reach the database to migrate ({exc})") from exc
            await gatehouse.cache.start()
            gatehouse.mailer.start()
        except BaseException:
            await gatehouse.close()
            raise
        gatehouse._sampler = asyncio.get_running_loop().create_task(gatehouse._sample_gauges())
        return gatehouse

    def start_purger(self, job: Callable[["Gatehouse"], Awaitable[None]]) -> None:
        """Run the retention purge in the background until `close` (a serving process does: see
        `open_for_serving`; the job is `purge_periodically`, which needs the service functions below)."""
        self._purger = asyncio.get_running_loop().create_task(job(self))

    async def _sample_gauges(self) -> None:
        while True:
            self.metrics.flush_requests()
            self.metrics.hash_queue.set(self.hasher.queued)
            self.metrics.db_pool.set(getattr(self.engine.pool, "checkedout", lambda: 0)())
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Finish background work, write queued audit rows, then close pools and connections."""
        if self._sampler is not None:
            self._sampler.cancel()
        if self._purger is not None:  # a batch cut short rolls back; let it, before the pools close
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        await self.mailer.close()
        if self._tasks:  # the audit flushes the mailer's outcomes scheduled
            await asyncio.wait(list(self._tasks), timeout=10)
        await self.flush_audit()
        self.metrics.flush_requests()
        await self.cache.close()
        await self.federation.close()
        await self.engine.dispose()
        self.hasher.close()

    async def __aenter__(self) -> "Gatehouse":  # `async with await Gatehouse.open(settings) as gatehouse:`
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """One database transaction; outages become DatabaseUnavailable."""
        try:
            async with self.sessionmaker() as session, session.begin():
                if write:
                    await session.connection(execution_options={"gatehouse_write": True})
                yield session
        except (ServiceError, sa.exc.IntegrityError):
            raise
        except Exception as exc:
            if database_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class UserPublic(BaseModel):
    """The one shape of a user: what the API answers, what the CLI prints, and — as JSON — what
    the cache holds, built once when the user is written so `/users/me` can send it as is."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime
    email_verified_at: datetime | None = None


def _user_entry(user: User) -> Entry:
    return user.version, UserPublic.model_validate(user).model_dump(mode="json")


async def _publish_user(gatehouse: Gatehouse, user: User) -> UserPublic:
    """After a user's write commits: every instance drops its copy; the public shape."""
    version, payload = _user_entry(user)
    await gatehouse.cache.publish({Keys.user(user.id): (version, payload)})
    return UserPublic.model_validate(payload)


def _session_entry(row: LoginSession | None) -> Entry:
    if row is None or row.revoked_at is not None:
        return 1, None  # revoked outranks live: a stale "live" fill can never win
    return 0, {"uid": str(row.user_id), "exp": row.expires_at.timestamp()}


async def _load_and_fill(gatehouse: Gatehouse, key: str, epoch: int, load: Callable[[], Awaitable[Entry]]) -> Any:
    version, payload = await load()
    await gatehouse.cache.fill(key, version, payload, epoch)
    return payload


def _loaded(gatehouse: Gatehouse, key: str, done: asyncio.Future[Any]) -> None:
    if gatehouse.loading.get(key, (0, None))[1] is done:
        del gatehouse.loading[key]
    if not done.cancelled():
        done.exception()  # retrieved here too: every waiter may have gone away before it failed


async def _cached(gatehouse: Gatehouse, key: str, load: Callable[[], Awaitable[Entry]]) -> Any:
    """Cache-aside read of one entry's payload. Concurrent misses of one key share one load: when a
    busy entry expires, the requests waiting on it make one database read, not one each. A request
    joins only a load that started after the last invalidation (same epoch): one that began before a
    logout could otherwise answer "live" to a request that arrived after it."""
    entry = await gatehouse.cache.get(key)
    if entry is not None:
        gatehouse._cache_hit.inc()
        return entry[1]
    gatehouse._cache_miss.inc()
    epoch = gatehouse.cache.epoch()
    started = gatehouse.loading.get(key)
    if started is None or started[0] != epoch:
        started = gatehouse.loading[key] = (epoch, asyncio.ensure_future(_load_and_fill(gatehouse, key, epoch, load)))
        started[1].add_done_callback(lambda done: _loaded(gatehouse, key, done))
    return await asyncio.shield(started[1])  # a waiter that goes away does not cancel the others' load


async def _load_user_entry(gatehouse: Gatehouse, user_id: uuid.UUID) -> Entry:
    async with gatehouse.transaction() as db:
        user = await db.get(User, user_id)
    return _user_entry(user) if user else (0, None)


async def _load_session_entry(gatehouse: Gatehouse, session_id: uuid.UUID) -> Entry:
    async with gatehouse.transaction() as db:
        row = await db.get(LoginSession, session_id)
    return _session_entry(row)


async def _check_rate(gatehouse: Gatehouse, key: str, rate: Rate, cost: int = 1) -> None:
    wait = await gatehouse.cache.hit(key, rate, cost)
    if wait > 0:
        gatehouse.metrics.rate_limited.labels(key.split(":", 1)[0]).inc()
        raise RateLimited(wait)


async def _check_auth_ip(gatehouse: Gatehouse, client: Client) -> None:
    """The per-address limit on unauthenticated auth work (register, login, reset; IPv6 per /64)."""
    await _check_rate(gatehouse, Keys.auth_ip(ip_group(client.ip)), gatehouse.settings.rate_auth_ip)


# Service functions: users ----------------------------------------------------


async def _user_by_email(db: AsyncSession, email: str) -> User | None:
    return await db.scalar(sa.select(User).where(User.email == email))


async def _lock_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    """The user row, locked for this transaction; UserNotFound if there is none."""
    user = await db.get(User, user_id, with_for_update=True)
    if user is None:
        raise UserNotFound()
    return user


async def _load_user(gatehouse: Gatehouse, user_id: uuid.UUID) -> User:
    """The user row; UserNotFound if there is none."""
    async with gatehouse.transaction() as db:
        user = await db.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def find_user(gatehouse: Gatehouse, *, email: str) -> UserPublic:
    """The user with this email; UserNotFound otherwise."""
    email = _validated(normalize_email, email, "email")
    async with gatehouse.transaction() as db:
        user = await _user_by_email(db, email)
    if user is None:
        raise UserNotFound()
    return UserPublic.model_validate(user)


async def _user_payload(gatehouse: Gatehouse, user_id: uuid.UUID | str) -> dict[str, Any] | None:
    """A user's cached public fields (None if there is no such user); `user_id` as UUID or its text."""
    return await _cached(gatehouse, Keys.user(user_id), lambda: _load_user_entry(gatehouse, uuid.UUID(str(user_id))))


async def get_user(gatehouse: Gatehouse, *, user_id: uuid.UUID) -> UserPublic:
    """A user (cached)."""
    payload = await _user_payload(gatehouse, user_id)
    if payload is None:
        raise UserNotFound()
    return UserPublic.model_validate(payload)


def _encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    return b64url(json.dumps([at.isoformat(), row_id.hex]).encode())


# Rows are stamped with utcnow(): a time before the epoch or in the calendar's last year is in
# no cursor this service issued, and at the calendar's edges the conversion to UTC overflows.
_CURSOR_TIMES = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, row_id = json.loads(b64url_decode(cursor))
        when = datetime.fromisoformat(at).astimezone(UTC)
        row = uuid.UUID(row_id) if isinstance(row_id, str) else None
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise InvalidCursor() from None
    if row is None or not _CURSOR_TIMES[0] <= when < _CURSOR_TIMES[1]:
        raise InvalidCursor()
    return when, row


async def _keyset_page(
    db: AsyncSession, stmt: sa.Select[Any], at: Any, row_id: Any, *, cursor: str | None, limit: int, newest_first: bool
) -> tuple[list[Any], str | None]:
    """One page in (at, id) order from an index; the cost does not grow with the table."""
    if not 1 <= limit <= 200:
        raise InvalidInput("limit: must be between 1 and 200")
    if cursor:
        after_at, after_id = _decode_cursor(cursor)
        key = sa.tuple_(at, row_id)
        bound = sa.tuple_(sa.literal(after_at, UTCDateTime()), sa.literal(after_id, sa.Uuid()))
        stmt = stmt.where(key < bound if newest_first else key > bound)
    order = (at.desc(), row_id.desc()) if newest_first else (at.asc(), row_id.asc())
    rows = list(await db.scalars(stmt.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, _encode_cursor(getattr(rows[-1], at.key), rows[-1].id) if more else None


EmailMatch = Literal["exact", "prefix", "contains"]


def _email_search_key(email: str, match: EmailMatch) -> str:
    if match == "exact":
        with contextlib.suppress(ValueError):
            return normalize_email(email)  # the stored form; a malformed address is searched as typed
    return email.strip().lower()


async def _has_trigram_index(gatehouse: Gatehouse, db: AsyncSession) -> bool:
    # Looked up once per process: migration 7 makes the index when the database allows pg_trgm.
    if gatehouse.trigram_search is None:
        gatehouse.trigram_search = gatehouse.engine.dialect.name == "postgresql" and bool(
            await db.scalar(sa.text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_users_email_trgm'"))
        )
    return gatehouse.trigram_search


async def _windowed_page(
    db: AsyncSession, stmt: sa.Select[Any], *, cursor: str | None, limit: int
) -> tuple[list[User], str | None]:
    """A keyset page of `stmt` among the next CONTAINS_SCAN_ROWS users only: a filter no index
    serves costs one bounded window per page, however many users there are."""
    walk = sa.select(User.created_at, User.id)
    if cursor:
        after_at, after_id = _decode_cursor(cursor)
        walk = walk.where(
            sa.tuple_(User.created_at, User.id)
            > sa.tuple_(sa.literal(after_at, UTCDateTime()), sa.literal(after_id, sa.Uuid()))
        )
    edge = (await db.execute(walk.order_by(User.created_at, User.id).offset(CONTAINS_SCAN_ROWS - 1).limit(1))).first()
    if edge is not None:
        stmt = stmt.where(
            sa.tuple_(User.created_at, User.id)
            <= sa.tuple_(sa.literal(edge.created_at, UTCDateTime()), sa.literal(edge.id, sa.Uuid()))
        )
    rows, next_cursor = await _keyset_page(
        db, stmt, User.created_at, User.id, cursor=cursor, limit=limit, newest_first=False
    )
    if next_cursor is None and edge is not None:  # the window ran out before the page filled
        next_cursor = _encode_cursor(edge.created_at, edge.id)
    return rows, next_cursor


async def list_users(
    gatehouse: Gatehouse,
    *,
    email: str | None = None,
    match: EmailMatch = "contains",
    role: str | None = None,
    active: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[UserPublic], str | None]:
    """A page of users, oldest first, and the cursor of the next page.

    `email` matches by `match`: exact and prefix through an index on both backends; contains
    through a trigram index on PostgreSQL, otherwise by scanning at most CONTAINS_SCAN_ROWS
    users per page (a page may then hold fewer than `limit` users and still have a next one)."""
    stmt = sa.select(User)
    window = False
    if email:
        key = _email_search_key(email, match)
        if match == "exact":
            stmt = stmt.where(User.email == key)
        elif match == "prefix":
            stmt = stmt.where(User.email.startswith(key, autoescape=True))
            if gatehouse.engine.dialect.name == "sqlite":  # LIKE cannot use SQLite's index; a range can
                stmt = stmt.where(User.email >= key, User.email < key + "\U0010ffff")
        else:
            stmt = stmt.where(User.email.contains(key, autoescape=True))
            window = True
    if role is not None:
        stmt = stmt.where(User.role == role)
    if active is not None:
        stmt = stmt.where(User.is_active == active)  # `IS true` cannot use an index on PostgreSQL
    async with gatehouse.transaction() as db:
        # Trigrams need three characters; a shorter substring scans a window like SQLite does.
        if window and len(email.strip()) >= 3 and await _has_trigram_index(gatehouse, db):  # type: ignore[union-attr]
            window = False
        if not window:
            rows, next_cursor = await _keyset_page(
                db, stmt, User.created_at, User.id, cursor=cursor, limit=limit, newest_first=False
            )
        else:
            rows, next_cursor = await _windowed_page(db, stmt, cursor=cursor, limit=limit)
    return [UserPublic.model_validate(row) for row in rows], next_cursor


async def create_user(
    gatehouse: Gatehouse,
    *,
    email: str,
    password: str,
    full_name: str = "",
    role: str = "user",
    self_signup: bool = False,
    client: Client = CLI,
) -> UserPublic:
    """Create an account; `self_signup` applies the SIGNUP_ENABLED and per-IP limits."""
    if self_signup:
        if not gatehouse.settings.signup_enabled:
            raise SignupDisabled()
        await _check_auth_ip(gatehouse, client)
    email = _validated(normalize_email, email, "email")
    password = _validated(check_password, password, "password")
    full_name = _validated(_no_bad_text, full_name, "full_name").strip()
    if role not in ROLES:
        raise InvalidInput(f"role must be one of: {', '.join(ROLES)}")
    password_hash = await gatehouse.hasher.hash(password)
    try:
        async with gatehouse.transaction(write=True) as db:
            user = User(id=uuid.uuid4(), email=email, password_hash=password_hash, full_name=full_name, role=role)
            db.add(user)
            db.add(_audit("user.register" if self_signup else "user.create", client, subject=user.id, role=role))
    except sa.exc.IntegrityError:
        raise EmailTaken() from None
    log.info("user created id=%s role=%s", user.id, role)
    return UserPublic.model_validate(user)


async def _other_ways_in(
    db: AsyncSession, user: User, *, identity: uuid.UUID | None = None, passkey: uuid.UUID | None = None
) -> bool:
    """Whether the user can still sign in without this identity or passkey: a password, another passkey
    or another linked identity."""
    if user.password_hash:
        return True
    others = await db.execute(
        sa.select(
            sa.exists().where(Passkey.user_id == user.id, Passkey.id != (passkey or uuid.UUID(int=0))),
            sa.exists().where(
                Identity.user_id == user.id,
                Identity.linked_at.is_not(None),
                Identity.id != (identity or uuid.UUID(int=0)),
            ),
        )
    )
    return any(others.one())


async def _live_user(gatehouse: Gatehouse, user_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The cached user if the account exists and is active."""
    user = await _user_payload(gatehouse, user_id)
    return user if user is not None and user["is_active"] else None


# Service functions: signing keys ---------------------------------------------


def _key_entry(row: SigningKey | None) -> Entry:
    if row is None or row.retired_at is not None:
        return 1, None
    return 0, {"kid": row.kid, "alg": row.algorithm, "public": row.public_key}


def _material(row: SigningKey) -> KeyMaterial:
    return KeyMaterial(row.kid, row.algorithm, row.private_key, row.public_key)


async def _load_key_entry(gatehouse: Gatehouse, kid: str) -> Entry:
    async with gatehouse.transaction() as db:
        return _key_entry(await db.get(SigningKey, kid))


def _active_entry(row: SigningKey | None) -> Entry:
    # Written with a clock version so the newest rotation wins; fills from reads use 0 and never do.
    return time.time_ns(), (None if row is None else dataclasses.asdict(_material(row)))


async def _newest_key(db: AsyncSession, algorithm: str) -> SigningKey | None:
    return await db.scalar(
        sa.select(SigningKey)
        .where(SigningKey.algorithm == algorithm, SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)
        .limit(1)
    )


async def rotate_signing_key(gatehouse: Gatehouse, *, algorithm: str | None = None, client: Client = CLI) -> SigningKey:
    """Make a new active signing key; older keys keep verifying until retired."""
    algorithm = algorithm or gatehouse.settings.jwt_algorithm
    if algorithm not in SIGNING_ALGORITHMS:
        raise InvalidInput(f"algorithm must be one of: {', '.join(SIGNING_ALGORITHMS)}")
    material = await asyncio.to_thread(gatehouse.tokens.generate, algorithm)  # RSA generation takes a while
    async with gatehouse.transaction(write=True) as db:
        row = SigningKey(
            kid=material.kid,
            algorithm=algorithm,
            private_key=material.private_key,
            public_key=material.public_key,
            created_at=utcnow(),
        )
        db.add(row)
        db.add(_audit("signing_key.rotate", client, kid=row.kid, algorithm=algorithm))
    await gatehouse.cache.publish(
        {Keys.active_signing_key(algorithm): _active_entry(row), Keys.signing_key(row.kid): _key_entry(row)}
    )
    log.info("signing key rotated kid=%s alg=%s", row.kid, algorithm)
    return row


async def active_signing_key(gatehouse: Gatehouse) -> KeyMaterial:
    """The key new access tokens are signed with; the first one is made on first use."""
    algorithm = gatehouse.settings.jwt_algorithm

    async def load() -> Entry:
        async with gatehouse.transaction() as db:
            row = await _newest_key(db, algorithm)
        return 0, None if row is None else dataclasses.asdict(_material(row))

    active = await _cached(gatehouse, Keys.active_signing_key(algorithm), load)
    if active is None:
        return _material(await rotate_signing_key(gatehouse, client=SERVICE))
    return KeyMaterial(**active)


async def retire_signing_key(gatehouse: Gatehouse, *, kid: str, client: Client = CLI) -> SigningKey:
    """Stop a key verifying anywhere; if it was active, the next newest key signs."""
    async with gatehouse.transaction(write=True) as db:
        row = await db.get(SigningKey, kid, with_for_update=True)
        if row is None or row.retired_at is not None:
            raise SigningKeyNotFound()
        row.retired_at = utcnow()
        db.add(_audit("signing_key.retire", client, kid=kid))
        await db.flush()
        successor = await _newest_key(db, row.algorithm)
    await gatehouse.cache.publish(
        {Keys.signing_key(kid): _key_entry(None), Keys.active_signing_key(row.algorithm): _active_entry(successor)}
    )
    log.warning("signing key retired kid=%s", kid)
    return row


async def sealed_keys_not_opened(gatehouse: Gatehouse) -> list[str]:
    """Kids of unretired signing keys whose private half SECRET_KEY cannot unseal (it changed since)."""
    async with gatehouse.transaction() as db:
        rows = list(
            await db.scalars(
                sa.select(SigningKey)
                .where(SigningKey.retired_at.is_(None), SigningKey.private_key.is_not(None))
                .order_by(SigningKey.created_at)
            )
        )
    return [row.kid for row in rows if not gatehouse.tokens.unseals(_material(row))]


def sealed_keys_problem(kids: list[str]) -> str:
    """The one line that says which keys cannot be unsealed, and what to do."""
    return (
        f"SECRET_KEY cannot unseal signing key(s) {', '.join(kids)}: was SECRET_KEY changed? Restore the "
        "old value, or retire them with `cli.py signing-keys retire KID` (tokens they signed stop working)"
    )


async def list_signing_keys(gatehouse: Gatehouse) -> list[SigningKey]:
    """Every signing key, newest first."""
    async with gatehouse.transaction() as db:
        return list(await db.scalars(sa.select(SigningKey).order_by(SigningKey.created_at.desc())))


async def public_jwks(gatehouse: Gatehouse) -> dict[str, Any]:
    """The JWK set of every non-retired asymmetric key."""
    async with gatehouse.transaction() as db:
        rows = await db.scalars(
            sa.select(SigningKey)
            .where(SigningKey.retired_at.is_(None), SigningKey.public_key.is_not(None))
            .order_by(SigningKey.created_at.desc())
        )
        return {"keys": [gatehouse.tokens.public_jwk(r.kid, r.algorithm, r.public_key or "") for r in rows]}


# Service functions: API keys -------------------------------------------------


def _api_key_entry(row: ApiKey | None) -> Entry:
    if row is None or row.revoked_at is not None:
        return 1, None
    expires = row.expires_at.timestamp() if row.expires_at else None
    return 0, {
        "id": str(row.id),
        "uid": str(row.user_id),
        "hash": row.secret_hash,
        "scopes": row.scopes.split(),
        "exp": expires,
        "aal": row.aal,
    }


async def _load_api_key_entry(gatehouse: Gatehouse, public_id: str) -> Entry:
    async with gatehouse.transaction() as db:
        return _api_key_entry(await db.scalar(sa.select(ApiKey).where(ApiKey.public_id == public_id)))


_NO_KEY_HASH = hash_secret("no such key")


async def resolve_api_key(gatehouse: Gatehouse, key: str) -> Principal:
    """The caller behind an API key: its owner, narrowed to the key's scopes."""
    match = _API_KEY_RE.match(key)
    if not match:
        raise InvalidApiKey("The API key is malformed.")
    entry = await _cached(gatehouse, Keys.api_key(match[1]), lambda: _load_api_key_entry(gatehouse, match[1]))
    if not hmac.compare_digest(hash_secret(match[2]), entry["hash"] if entry else _NO_KEY_HASH) or not entry:
        raise InvalidApiKey()
    if entry["exp"] is not None and entry["exp"] <= time.time():
        raise ApiKeyExpired()
    user = await _live_user(gatehouse, entry["uid"])
    if user is None:
        raise InvalidApiKey("The API key's owner is not active.")
    scopes = frozenset(entry["scopes"]) & ROLE_SCOPES.get(user["role"], frozenset())  # never above the owner
    return Principal(
        user, None, uuid.UUID(entry["id"]), scopes, aal=entry.get("aal", 1), valid_until=entry["exp"] or math.inf
    )


def due_once_per(interval: float, last: dict[uuid.UUID, float], key: uuid.UUID, bound: int) -> bool:
    """True at most once per `interval` seconds for `key` in this process: a dict lookup per request.
    Bounded by clearing at `bound` keys; a forgotten key is due again, and the write it starts is
    still claimed once per interval across instances."""
    now = time.monotonic()
    if now - last.get(key, -math.inf) < interval:
        return False
    if len(last) >= bound:
        last.clear()
    last[key] = now
    return True


def _touch_api_key(gatehouse: Gatehouse, key_id: uuid.UUID) -> None:
    # last_used_at without a write per request: at most one per key per interval, across instances.
    interval = gatehouse.settings.api_key_touch_seconds
    if not due_once_per(interval, gatehouse.key_touches, key_id, gatehouse.settings.local_cache_max_entries):
        return

    async def write() -> None:
        if await gatehouse.cache.claim(Keys.api_key_touch(key_id), interval):
            async with gatehouse.transaction(write=True) as db:
                await db.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))

    gatehouse.spawn(write())


async def create_api_key(
    gatehouse: Gatehouse,
    *,
    user_id: uuid.UUID,
    name: str,
    scopes: list[str],
    expires_days: int | None = None,
    aal: int,
    granted: frozenset[str] | None = None,
    parent_id: uuid.UUID | None = None,
    client: Client = CLI,
) -> tuple[ApiKey, str]:
    """Create a key for a user; (row, the key itself — shown this once). `granted` caps the scopes;
    `aal` is the assurance behind the maker (see ApiKey.aal; a key's own, when a key makes it); a key
    made by the key `parent_id` expires no later than it and is revoked with it."""
    name = _validated(_no_bad_text, name, "name").strip()
    if not name or len(name) > 100:
        raise InvalidInput("name: must have 1 to 100 characters")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"scopes: choose from {', '.join(SCOPES)}")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InvalidInput("expires_days: must be between 1 and 3650")
    owner = await _load_user(gatehouse, user_id)
    allowed = ROLE_SCOPES[owner.role] & (granted if granted is not None else frozenset(SCOPES))
    if excess := sorted(set(scopes) - allowed):
        raise InsufficientScope(f"A key cannot hold scopes its owner or creator lacks: {', '.join(excess)}.")
    key, public_id, secret_hash = new_api_key()
    now = utcnow()
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    async with gatehouse.transaction(write=True) as db:
        if parent_id is not None:
            parent = await db.get(ApiKey, parent_id, with_for_update=True)  # not revoked while we add a child
            if parent is None or parent.revoked_at is not None:
                raise InvalidApiKey()
            if parent.expires_at is not None:
                if expires_at is None:
                    expires_at = parent.expires_at
                elif expires_at > parent.expires_at:
                    raise KeyOutlivesParent(
                        f"This key expires at {parent.expires_at.isoformat()}; a key it makes must expire no later."
                    )
        row = ApiKey(
            id=uuid.uuid4(),
            user_id=user_id,
            public_id=public_id,
            secret_hash=secret_hash,
            name=name,
            scopes=" ".join(sorted(set(scopes))),
            created_at=now,
            expires_at=expires_at,
            parent_id=parent_id,
            aal=aal,
        )
        db.add(row)
        db.add(
            _audit(
                "key.create",
                client,
                subject=user_id,
                key=str(row.id),
                scopes=row.scopes,
                aal=aal,
                parent=str(parent_id) if parent_id else None,
            )
        )
    log.info("api key created id=%s user=%s", row.id, user_id)
    return row, key


async def list_api_keys(gatehouse: Gatehouse, *, user_id: uuid.UUID | None = None) -> list[ApiKey]:
    """Unrevoked keys of one user, or of everyone when user_id is None."""
    stmt = sa.select(ApiKey).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.created_at, ApiKey.id)
    if user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    async with gatehouse.transaction() as db:
        return list(await db.scalars(stmt))


async def unproven_admin_keys(gatehouse: Gatehouse) -> list[ApiKey]:
    """Unrevoked keys holding the admin scope with no second factor behind their making (aal1): the
    keys REQUIRE_MFA_FOR_ADMINS refuses that scope to (every admin key made before migration 8 among them)."""
    stmt = sa.select(ApiKey).where(ApiKey.revoked_at.is_(None), ApiKey.aal < 2).order_by(ApiKey.created_at)
    async with gatehouse.transaction() as db:
        return [row for row in await db.scalars(stmt) if "admin" in row.scopes.split()]


async def find_api_key(gatehouse: Gatehouse, *, ref: str) -> ApiKey:
    """An unrevoked key by its id or by the prefix that listings print (with or without `gate_`)."""
    ref = ref.strip()
    try:
        condition = ApiKey.id == uuid.UUID(ref)
    except ValueError:
        condition = ApiKey.public_id == ref.removeprefix(API_KEY_PREFIX)
    async with gatehouse.transaction() as db:
        row = await db.scalar(sa.select(ApiKey).where(condition, ApiKey.revoked_at.is_(None)))
    if row is None:
        raise ApiKeyNotFound(f"No unrevoked API key has the id or prefix {ref!r}.")
    return row


async def _revoke_key_rows(db: AsyncSession, key_ids: list[uuid.UUID]) -> list[ApiKey]:
    """Revoke these keys and every key they made, transitively; the rows revoked."""
    now, revoked, frontier = utcnow(), [], list(key_ids)
    while frontier:
        rows = list(
            await db.scalars(
                sa.update(ApiKey)
                .where(ApiKey.id.in_(frontier), ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(ApiKey)
            )
        )
        revoked += rows
        frontier = (
            list(
                await db.scalars(
                    sa.select(ApiKey.id).where(ApiKey.parent_id.in_([r.id for r in rows]), ApiKey.revoked_at.is_(None))
                )
            )
            if rows
            else []
        )
    return revoked


async def _publish_revoked_keys(gatehouse: Gatehouse, rows: list[ApiKey]) -> None:
    if rows:
        await gatehouse.cache.publish({Keys.api_key(r.public_id): _api_key_entry(None) for r in rows})


async def revoke_api_key(
    gatehouse: Gatehouse, *, key_id: uuid.UUID, owner_id: uuid.UUID | None = None, client: Client = CLI
) -> ApiKey:
    """Revoke a key (only `owner_id`'s, when given); it stops working everywhere at once."""
    async with gatehouse.transaction(write=True) as db:
        row = await db.get(ApiKey, key_id, with_for_update=True)
        if row is None or row.revoked_at is not None or (owner_id is not None and row.user_id != owner_id):
            raise ApiKeyNotFound()
        revoked = await _revoke_key_rows(db, [key_id])
        db.add(_audit("key.revoke", client, subject=row.user_id, key=str(key_id), with_children=len(revoked) - 1))
    await _publish_revoked_keys(gatehouse, revoked)
    log.info("api key revoked id=%s children=%d", key_id, len(revoked) - 1)
    return row


async def _revoke_user_keys(db: AsyncSession, user_id: uuid.UUID, beyond: frozenset[str] | None = None) -> list[ApiKey]:
    """Revoke a user's keys (only those holding a scope outside `beyond`, when given), with their children."""
    keys = await db.execute(
        sa.select(ApiKey.id, ApiKey.scopes).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    ids = [key_id for key_id, scopes in keys if beyond is None or not set(scopes.split()) <= beyond]
    return await _revoke_key_rows(db, ids) if ids else []


# Service functions: action tokens and mail -----------------------------------

# Single-use tokens (links, codes, challenges), stored as hashes and spent atomically, and the
# mail budget every message that strangers can trigger goes through.


def _spendable(token: str, purpose: str, now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """What makes a single-use token spendable now: this one, of this kind, unused, unexpired."""
    return (
        ActionToken.token_hash == hash_secret(token),
        ActionToken.purpose == purpose,
        ActionToken.used_at.is_(None),
        ActionToken.expires_at > sa.literal(now, UTCDateTime()),
    )


async def _consume_action_token(db: AsyncSession, *, token: str, purpose: str) -> ActionToken:
    """Spend a single-use token atomically; a second use, or an expired token, is refused."""
    now = utcnow()
    row = await db.scalar(
        sa.update(ActionToken).where(*_spendable(token, purpose, now)).values(used_at=now).returning(ActionToken)
    )
    if row is None:
        raise InvalidActionToken()
    return row


async def _peek_action_token(gatehouse: Gatehouse, *, token: str, purpose: str) -> ActionToken:
    """Refuse a token that could not be spent now, before any costly work (it is spent later, atomically)."""
    async with gatehouse.transaction() as db:
        found = await db.scalar(sa.select(ActionToken).where(*_spendable(token, purpose, utcnow())))
    if found is None:
        raise InvalidActionToken()
    return found


async def _spend_user_tokens(db: AsyncSession, user_id: uuid.UUID, *purposes: str, sparing: str | None = None) -> int:
    """Outstanding links of these kinds (all kinds when none named; but those sent to `sparing`) stop
    working; how many did."""
    stmt = sa.update(ActionToken).where(ActionToken.user_id == user_id, ActionToken.used_at.is_(None))
    if purposes:
        stmt = stmt.where(ActionToken.purpose.in_(purposes))
    if sparing is not None:
        stmt = stmt.where(ActionToken.email != sparing)
    return (await db.execute(stmt.values(used_at=utcnow()))).rowcount


async def _issue_action_token(
    gatehouse: Gatehouse,
    *,
    user: User,
    purpose: str,
    lifetime: timedelta,
    event: str,
    client: Client,
    email: str | None = None,
    token: str | None = None,
    db: AsyncSession | None = None,
) -> str:
    """A single-use token for `user` (bound to `email`, by default the current address); only its hash is kept."""
    token = token or secrets.token_urlsafe(32)
    now = utcnow()
    rows = [
        ActionToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_secret(token),
            email=email or user.email,
            created_at=now,
            expires_at=now + lifetime,
        ),
        _audit(event, client, subject=user.id),
    ]
    if db is not None:
        db.add_all(rows)
        return token
    async with gatehouse.transaction(write=True) as own:
        own.add_all(rows)
    return token


async def _is_known_address(gatehouse: Gatehouse, user_id: uuid.UUID, group: str) -> bool:
    """Has the user signed in from this address (IPv6: this /64) in their recent sessions?"""
    async with gatehouse.transaction() as db:
        ips = await db.scalars(
            sa.select(LoginSession.ip)
            .where(LoginSession.user_id == user_id)
            .order_by(LoginSession.created_at.desc())
            .limit(200)
        )
        return any(ip_group(ip) == group for ip in ips)


async def _mail_allowed(gatehouse: Gatehouse, address: str, client: Client, user_id: uuid.UUID | None) -> bool:
    """The mail budget: RATE_RESET_EMAIL_IP messages per mailbox per requesting address, RATE_RESET_EMAIL
    per mailbox from anyone; once strangers have spent that, the owner still gets RATE_RESET_EMAIL_IP
    more from an address they have signed in from before, which strangers cannot spend."""
    settings, group = gatehouse.settings, ip_group(client.ip)
    allowed = await gatehouse.cache.hit(Keys.mail_from(address, group), settings.rate_reset_email_ip) == 0 and (
        await gatehouse.cache.hit(Keys.mail(address), settings.rate_reset_email) == 0
        or (
            user_id is not None
            and await _is_known_address(gatehouse, user_id, group)
            and await gatehouse.cache.hit(Keys.mail_known(address), settings.rate_reset_email_ip) == 0
        )
    )
    if not allowed:
        gatehouse.metrics.rate_limited.labels("mail").inc()
        log.warning("mail not sent: over the hourly budget of this mailbox or requester ip=%s", client.ip)
    return allowed


async def deliver(
    gatehouse: Gatehouse, *, kind: str, email: str, link: str = "", user_id: uuid.UUID | None = None, **fields: str
) -> bool:
    """Render a message from its templates and queue it for SMTP_URL or WEBHOOK_URL (in development
    without either, log it). Never waits for the mail server; False if the message cannot go."""
    mail = gatehouse.mailer.render(kind=kind, to=email, link=link, user_id=user_id, **fields)
    return gatehouse.mailer.submit(mail)


async def send_mail(
    gatehouse: Gatehouse,
    *,
    kind: str,
    email: str,
    client: Client,
    user_id: uuid.UUID | None = None,
    budget: bool = True,
    link: str = "",
    **fields: str,
) -> bool:
    """Deliver a message if the mail budget allows (`budget=False`: account-security notices)."""
    if budget and not await _mail_allowed(gatehouse, email, client, user_id):
        return False
    return await deliver(gatehouse, kind=kind, email=email, link=link, user_id=user_id, **fields)


# Service functions: passwords and login codes --------------------------------

# The password check under the guessing limits, and the one-time code mailed when strangers
# have filled the account-wide limit.


def _login_limit_keys(account: str, client: Client) -> tuple[str, str]:
    """(account-wide, account+address) keys of the failed-password limits."""
    return Keys.login_failures(account), Keys.login_failures_from(account, ip_group(client.ip))


async def _send_login_code(gatehouse: Gatehouse, *, user: User, client: Client, purpose: str = "login_code") -> None:
    # Only the right password (or, for an `email_code`, a session of a passwordless account) gets here, so
    # codes have a per-account budget of their own instead of the mailbox's: strangers spending that with
    # reset requests cannot keep the owner's code from a new address, and whoever holds the password
    # still cannot flood the mailbox.
    if await gatehouse.cache.hit(Keys.mail_code(user.id), gatehouse.settings.rate_reset_email_ip) > 0:
        gatehouse.metrics.rate_limited.labels("mail").inc()
        log.warning("login code not sent: over the hourly budget of this account's codes ip=%s", client.ip)
        return
    code = f"{secrets.randbelow(10**8):08d}"
    await _issue_action_token(
        gatehouse,
        user=user,
        purpose=purpose,
        token=f"{user.id}:{code}",
        lifetime=timedelta(minutes=gatehouse.settings.login_code_minutes),
        event=f"auth.{purpose}_sent",
        client=client,
    )
    await deliver(gatehouse, kind=purpose, email=user.email, user_id=user.id, code=code)


async def _spend_login_code(gatehouse: Gatehouse, *, user: User, code: str, purpose: str = "login_code") -> bool:
    # Codes are bound to the user and tried at most five times per code lifetime.
    tries = Rate(5, gatehouse.settings.login_code_minutes * 60)
    if await gatehouse.cache.hit(Keys.code_tries(purpose, user.id), tries) > 0:
        return False
    try:
        async with gatehouse.transaction(write=True) as db:
            await _consume_action_token(db, token=f"{user.id}:{code.strip()}", purpose=purpose)
    except InvalidActionToken:
        return False
    return True


async def _check_password(
    gatehouse: Gatehouse,
    *,
    account: str,
    user: User | None,
    password: str,
    code: str | None,
    client: Client,
    event: str,
    wrong: type[ServiceError] = InvalidCredentials,
) -> User:
    """Check a password under the guessing limits; the active user it proves, or `wrong`.

    Each attempt reserves a slot of the account+address and the account-wide limit *before*
    bcrypt runs, so parallel guesses never get more checks than the limits allow; a success
    gives the slots back. Once others have filled the account-wide limit, the right password
    alone neither opens the account nor fails: it must come with a one-time code mailed to the
    address, and right and wrong passwords get the same answer, so the limit is no oracle."""
    settings = gatehouse.settings
    account_key, pair_key = _login_limit_keys(account, client)
    await _check_rate(gatehouse, pair_key, settings.rate_login_failures_account_ip)
    protected = await gatehouse.cache.hit(account_key, settings.rate_login_failures_account) > 0
    # "" is an account without a password (made by a provider): it costs a check like any other.
    ok = await gatehouse.hasher.verify(password, (user.password_hash or None) if user else None)
    if ok and user is not None and user.is_active:
        if not protected:
            await gatehouse.cache.hit(pair_key, settings.rate_login_failures_account_ip, -1)
            await gatehouse.cache.hit(account_key, settings.rate_login_failures_account, -1)
            return user
        if code is not None and await _spend_login_code(gatehouse, user=user, code=code):
            await gatehouse.cache.hit(pair_key, settings.rate_login_failures_account_ip, -1)
            return user
        if code is None:
            gatehouse.spawn(_send_login_code(gatehouse, user=user, client=client))
    detail = {"reason": "account_protected"} if protected else {}
    gatehouse.audit_later(_audit(event, client, subject=user.id if user else None, outcome="failure", **detail))
    log.info("password check failed event=%s ip=%s", event, client.ip)
    raise LoginCodeRequired() if protected else wrong()


# Service functions: sessions -------------------------------------------------

# Sessions: opened by a sign-in, rotated by a refresh, ended on request or by another change,
# listed for their owner; and the caller behind a token or key, read through the near cache.


def _session_expiry(gatehouse: Gatehouse, created_at: datetime, now: datetime) -> datetime:
    """Sliding REFRESH_TOKEN_DAYS from now, never past SESSION_MAX_DAYS from the login."""
    settings = gatehouse.settings
    return min(
        now + timedelta(days=settings.refresh_token_days), created_at + timedelta(days=settings.session_max_days)
    )


async def _token_pair(gatehouse: Gatehouse, *, user_id: uuid.UUID, role: str, session: LoginSession) -> TokenPair:
    key = await active_signing_key(gatehouse)
    proved = session.authenticated_at or session.created_at
    access = gatehouse.tokens.issue_access(
        user_id=user_id,
        session_id=session.id,
        role=role,
        key=key,
        auth_time=int(proved.timestamp()),
        amr=session.amr.split(),
        aal=session.aal,
    )
    return TokenPair(
        access_token=access,
        refresh_token=gatehouse.tokens.issue_refresh(session.id, session.generation),
        expires_in=gatehouse.tokens.access_ttl,
    )


async def _start_session(
    gatehouse: Gatehouse,
    user: User,
    client: Client,
    *,
    rehash: str | None,
    amr: tuple[str, ...] = ("pwd",),
    aal: int = 1,
) -> TokenPair:
    now = utcnow()
    async with gatehouse.transaction(write=True) as db:
        row = LoginSession(
            user_id=user.id,
            created_at=now,
            refreshed_at=now,
            generation=0,
            authenticated_at=now,
            expires_at=_session_expiry(gatehouse, now, now),
            user_agent=client.user_agent[:300],
            ip=client.ip[:64],
            amr=" ".join(amr),
            aal=aal,
            last_used_at=now,
            last_ip=client.ip[:64],
        )
        db.add(row)
        db.add(_audit("auth.login", client, subject=user.id, amr=list(amr)))
        if rehash is not None:
            await db.execute(sa.update(User).where(User.id == user.id).values(password_hash=rehash))
    await gatehouse.cache.fill(Keys.session(row.id), *_session_entry(row), epoch=None)
    gatehouse.session_touches[row.id] = time.monotonic()  # signing in is a use: no touch write right after it
    return await _token_pair(gatehouse, user_id=user.id, role=user.role, session=row)


async def refresh_session(gatehouse: Gatehouse, *, refresh_token: str, client: Client = CLI) -> TokenPair:
    """Rotate a refresh token; a rotated one replayed after the grace window ends the session."""
    session_id, generation = gatehouse.tokens.parse_refresh(refresh_token)
    now = utcnow()
    grace = timedelta(seconds=gatehouse.settings.refresh_grace_seconds)
    reused = False
    async with gatehouse.transaction(write=True) as db:
        # The row lock serialises racing refreshes of one token: exactly one rotates.
        row = await db.get(LoginSession, session_id, with_for_update=True)
        if row is None or row.revoked_at is not None:
            raise SessionRevoked()
        if min(row.expires_at, _session_expiry(gatehouse, row.created_at, now)) <= now:  # idle or SESSION_MAX_DAYS
            raise TokenExpired("The session has expired.")
        user = await db.get(User, row.user_id)
        if user is None or not user.is_active:
            raise SessionRevoked()
        if generation == row.generation:
            row.generation += 1
            row.rotated_at = row.refreshed_at = now
            row.expires_at = _session_expiry(gatehouse, row.created_at, now)
        elif not (generation == row.generation - 1 and row.rotated_at and now - row.rotated_at <= grace):
            row.revoked_at, row.revoke_reason = now, "refresh_reuse"
            db.add(
                _audit("auth.refresh_reuse", client, subject=row.user_id, outcome="failure", session=str(session_id))
            )
            reused = True
    if reused:
        gatehouse.metrics.refresh_reuse.inc()
        await gatehouse.cache.publish({Keys.session(session_id): _session_entry(None)})
        log.warning("refresh token reuse: session %s revoked", session_id)
        raise RefreshTokenReused()
    return await _token_pair(gatehouse, user_id=user.id, role=user.role, session=row)


# Why sessions end on request, and the audit event each writes. (Sessions that end as part of
# another audited change — deactivation, a new password, an undone email change — are counted
# in that change's row.)
_SESSION_END_EVENTS = {
    "logout": "auth.logout",
    "logout_all": "auth.logout_all",
    "logout_others": "auth.logout_others",
    "ended": "auth.session_end",
    "admin": "sessions.revoke",
}


async def _end_sessions(
    gatehouse: Gatehouse,
    *,
    user_id: uuid.UUID,
    reason: str,
    session_id: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
    audit: AuditEvent | None = None,
) -> int:
    stmt = sa.update(LoginSession).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
    if session_id is not None:
        stmt = stmt.where(LoginSession.id == session_id)
    if keep is not None:
        stmt = stmt.where(LoginSession.id != keep)
    async with gatehouse.transaction(write=True) as db:
        ended = list(
            await db.scalars(stmt.values(revoked_at=utcnow(), revoke_reason=reason).returning(LoginSession.id))
        )
        if audit is not None:
            audit.detail = json.dumps({"sessions": len(ended)})
            db.add(audit)
    if ended:
        await gatehouse.cache.publish({Keys.session(sid): _session_entry(None) for sid in ended})
    return len(ended)


async def revoke_sessions(
    gatehouse: Gatehouse,
    *,
    user_id: uuid.UUID,
    reason: str,
    session_id: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
    client: Client = CLI,
) -> int:
    """End one session, or every session of a user but `keep`, and audit it; the number ended."""
    if reason not in _SESSION_END_EVENTS:
        raise InvalidInput(f"reason must be one of: {', '.join(_SESSION_END_EVENTS)}")
    return await _end_sessions(
        gatehouse,
        user_id=user_id,
        session_id=session_id,
        keep=keep,
        reason=reason,
        audit=_audit(_SESSION_END_EVENTS[reason], client, subject=user_id),
    )


async def resolve_access_token(gatehouse: Gatehouse, token: str) -> Principal:
    """The caller behind an access token; its key, session and account must still be live."""
    claims = gatehouse.tokens.verified(token)
    if claims is not None:  # verified before: only its key's retirement can have changed
        known = await _cached(gatehouse, Keys.signing_key(claims.kid), lambda: _load_key_entry(gatehouse, claims.kid))
        if known is None:
            raise UnknownKey()
    else:
        kid, algorithm = gatehouse.tokens.read_header(token)
        key = await _cached(gatehouse, Keys.signing_key(kid), lambda: _load_key_entry(gatehouse, kid))
        if key is None:
            raise UnknownKey()
        if key["alg"] != algorithm:  # e.g. HS256 "signed" with a published public key
            raise InvalidAlgorithm("The token's algorithm does not match its key.")
        claims = gatehouse.tokens.decode_access(token, kid=kid, algorithm=algorithm, public_key=key["public"])
    session = await _cached(
        gatehouse, Keys.session(claims.session_id), lambda: _load_session_entry(gatehouse, claims.session_id)
    )
    if session is not None and session["exp"] <= time.time():
        session = (await _load_session_entry(gatehouse, claims.session_id))[1]  # cached copy predates a refresh?
        if session is not None and session["exp"] <= time.time():
            session = None
    if session is None or session["uid"] != str(claims.user_id):
        raise SessionRevoked()
    user = await _live_user(gatehouse, claims.user_id)
    if user is None:
        raise SessionRevoked("The account is not active.")
    return Principal(
        user,
        claims.session_id,
        None,
        ROLE_SCOPES.get(user["role"], frozenset()),
        claims.auth_time,
        claims.amr,
        claims.aal,
        min(claims.expires_at, session["exp"]),
    )


def remembered_principal(gatehouse: Gatehouse, credential: str) -> Principal | None:
    """The caller behind a credential resolved before, from the memo, or None.

    The memo stands for exactly the near-cache reads it skips: an entry holds only while the
    near cache saw no invalidation at all (its epoch; every revocation, role change or
    deactivation is one), no longer than a near-cache entry lives, and never past the token's,
    session's or key's end. A plain function, not a coroutine: it is every request's path."""
    memo = gatehouse.principals.get(credential)
    if memo is not None and memo[0] == gatehouse.cache.epoch() and memo[1] > time.time():
        gatehouse.principals.move_to_end(credential)
        return memo[2]
    return None


async def resolve_credential(gatehouse: Gatehouse, credential: str) -> Principal:
    """The caller behind an access token or an API key, read through the near cache and
    remembered (see remembered_principal)."""
    epoch, now, memos = gatehouse.cache.epoch(), time.time(), gatehouse.principals  # the epoch before the reads
    if credential.startswith(API_KEY_PREFIX):
        principal = await resolve_api_key(gatehouse, credential)
    else:
        principal = await resolve_access_token(gatehouse, credential)
    if "admin" in principal.scopes and principal.aal < 2 and gatehouse.settings.require_mfa_for_admins:
        # Admin power needs a second factor behind the call (a key: behind its making). Withheld here,
        # where every caller is resolved, so no route that asks `"admin" in scopes` can forget the rule.
        principal = dataclasses.replace(principal, scopes=principal.scopes - {"admin"}, withheld=frozenset({"admin"}))
    memos[credential] = (epoch, min(principal.valid_until, now + gatehouse.settings.local_cache_seconds), principal)
    memos.move_to_end(credential)
    if len(memos) > gatehouse.principals_max:
        memos.popitem(last=False)  # the least recently used
    return principal


@dataclass(frozen=True, slots=True)
class CredentialsEnded:
    """What a password change, reset, undone email change or undone factor ended."""

    user_id: uuid.UUID
    sessions_ended: int
    api_keys_revoked: int
    factors_removed: tuple[str, ...] = ()


async def list_sessions(gatehouse: Gatehouse, *, user_id: uuid.UUID) -> list[LoginSession]:
    """A user's live sessions, newest first (at most 200)."""
    async with gatehouse.transaction() as db:
        return list(
            await db.scalars(
                sa.select(LoginSession)
                .where(
                    LoginSession.user_id == user_id,
                    LoginSession.revoked_at.is_(None),
                    LoginSession.expires_at > sa.literal(utcnow(), UTCDateTime()),
                )
                .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())
                .limit(200)
            )
        )


async def end_session(
    gatehouse: Gatehouse, *, session_id: uuid.UUID, owner_id: uuid.UUID | None = None, client: Client = CLI
) -> None:
    """End one session (only `owner_id`'s, when given); its tokens stop working on every instance."""
    async with gatehouse.transaction() as db:
        row = await db.get(LoginSession, session_id)
    if row is None or row.revoked_at is not None or (owner_id is not None and row.user_id != owner_id):
        raise SessionNotFound()
    if not await revoke_sessions(gatehouse, user_id=row.user_id, session_id=session_id, reason="ended", client=client):
        raise SessionNotFound()


def session_touch_due(gatehouse: Gatehouse, session_id: uuid.UUID) -> bool:
    """True at most once per SESSION_TOUCH_SECONDS per session in this process (a dict lookup otherwise)."""
    bound = gatehouse.settings.local_cache_max_entries
    return due_once_per(gatehouse.settings.session_touch_seconds, gatehouse.session_touches, session_id, bound)


def touch_session(gatehouse: Gatehouse, session_id: uuid.UUID, *, ip: str) -> None:
    """Record a session's last use and address off the request path, once per interval across instances."""
    interval = gatehouse.settings.session_touch_seconds

    async def write() -> None:
        if await gatehouse.cache.claim(Keys.session_touch(session_id), interval):
            async with gatehouse.transaction(write=True) as db:
                await db.execute(
                    sa.update(LoginSession)
                    .where(LoginSession.id == session_id)
                    .values(last_used_at=utcnow(), last_ip=ip[:64])
                )

    gatehouse.spawn(write())


# Service functions: second factors -------------------------------------------

# What every second factor shares: the typed passkey answer, the challenge a sign-in answers with,
# the per-user limit on guessable codes, the mail with its "this wasn't me" link, and what
# recovery by mailbox removes. Codes are checked under a per-user limit whose slot is reserved
# before the check, and only for callers past the first factor; passkeys, which cannot be guessed,
# never under it, so that nobody can spend the owner's tries with junk answers.


_B64URL = r"^[A-Za-z0-9_-]*={0,2}$"


def _b64url_field(max_length: int, min_length: int = 1) -> Any:
    return Field(min_length=min_length, max_length=max_length, pattern=_B64URL)


class PasskeyResponse(BaseModel):
    """The `response` of a PublicKeyCredential: base64url fields, each bounded."""

    model_config = ConfigDict(extra="ignore")

    clientDataJSON: Annotated[str, _b64url_field(4096)]  # noqa: N815 (the WebAuthn JSON names)
    authenticatorData: Annotated[str, _b64url_field(4096)] | None = None  # noqa: N815
    signature: Annotated[str, _b64url_field(1024)] | None = None
    userHandle: Annotated[str, _b64url_field(256, min_length=0)] | None = None  # noqa: N815
    attestationObject: Annotated[str, _b64url_field(16384)] | None = None  # noqa: N815 (a body is at most 64 KiB)
    transports: list[Annotated[str, Field(max_length=32, pattern=r"^[a-z-]+$")]] | None = Field(None, max_length=10)


class PasskeyAnswer(BaseModel):
    """A PublicKeyCredential from navigator.credentials.create() or .get(), as JSON (WebAuthn Level 3's
    toJSON()): typed, so that hostile input is refused before it reaches a query or a counter."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(min_length=1, max_length=1400, pattern=r"^[A-Za-z0-9_-]+$")]
    rawId: Annotated[str, _b64url_field(1400)] | None = None  # noqa: N815
    type: Literal["public-key"] = "public-key"
    response: PasskeyResponse
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None  # noqa: N815
    clientExtensionResults: dict[str, Any] = {}  # noqa: N815

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _aal(amr: list[str] | tuple[str, ...], *, verified_passkey: bool = False) -> int:
    """Two distinct methods, or a passkey that verified the user (PIN, biometric), are aal2."""
    return 2 if verified_passkey or len(set(amr)) >= 2 else 1


async def _mfa_methods(db: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """The second factors a sign-in may use; empty when the account has none."""
    totp, passkeys, codes = (
        await db.execute(
            sa.select(
                sa.exists().where(TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)),
                sa.exists().where(Passkey.user_id == user_id),
                sa.exists().where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)),
            )
        )
    ).one()
    methods = (["totp"] if totp else []) + (["webauthn"] if passkeys else [])
    return methods + ["recovery_code"] if methods and codes else methods


async def _has_second_factor(gatehouse: Gatehouse, user_id: uuid.UUID) -> bool:
    async with gatehouse.transaction() as db:
        return bool(await _mfa_methods(db, user_id))


@dataclass(frozen=True, slots=True)
class MfaChallenge:
    """The password was right and the account has a second factor: finish with `complete_mfa`."""

    mfa_token: str
    methods: list[str]
    expires_in: int


MFA_TOKEN_LIFETIME = timedelta(minutes=5)


async def _mfa_challenge(
    gatehouse: Gatehouse, user: User, methods: list[str], *, rehash: str | None, client: Client, first: str = "pwd"
) -> MfaChallenge:
    # The mfa_token is a random single-use action token bound to the user, stored hashed: not a JWT,
    # so no route that takes an access token can be fooled by it. A federated first factor is written
    # in front ("fed."); the stored hash covers it, so it cannot be added or removed.
    token = f"{first}.{secrets.token_urlsafe(32)}" if first != "pwd" else None
    async with gatehouse.transaction(write=True) as db:
        token = await _issue_action_token(
            gatehouse,
            user=user,
            purpose="mfa",
            lifetime=MFA_TOKEN_LIFETIME,
            event="auth.mfa_challenge",
            client=client,
            db=db,
            token=token,
        )
        if rehash is not None:
            await db.execute(sa.update(User).where(User.id == user.id).values(password_hash=rehash))
    return MfaChallenge(token, methods, int(MFA_TOKEN_LIFETIME.total_seconds()))


async def _mfa_token_user(gatehouse: Gatehouse, mfa_token: str) -> User:
    """The active user an unspent mfa_token belongs to; InvalidMfaToken otherwise."""
    try:
        row = await _peek_action_token(gatehouse, token=mfa_token, purpose="mfa")
    except InvalidActionToken:
        raise InvalidMfaToken() from None
    async with gatehouse.transaction() as db:
        user = await db.get(User, row.user_id)
    if user is None or not user.is_active or user.email != row.email:
        raise InvalidMfaToken()
    return user


async def _guarded_check(
    gatehouse: Gatehouse, *, user: User, method: str, event: str, client: Client, check: Callable[[], Awaitable[Any]]
) -> Any:
    """Run one code check under RATE_MFA_FAILURES. The slot is reserved *before* the check and given
    back on success, so N parallel wrong codes get at most the limit's checks, on every instance.

    Only callers past the first factor get here (an mfa_token, or a session). Once they have spent the
    budget, the owner on an address they have signed in from still has a reserve of the same size that
    tries from elsewhere cannot spend."""
    rate, key = gatehouse.settings.rate_mfa_failures, Keys.mfa_failures(user.id)
    if (wait := await gatehouse.cache.hit(key, rate)) > 0:
        if not await _is_known_address(gatehouse, user.id, ip_group(client.ip)):
            gatehouse.metrics.rate_limited.labels("mfa-fail").inc()
            raise RateLimited(wait)
        key = Keys.mfa_failures_known(user.id)
        await _check_rate(gatehouse, key, rate)
    try:
        result = await check()
        failure: ServiceError = InvalidOtp()
    except (InvalidOtp, PasskeyRejected) as exc:
        result, failure = None, exc
    if result:
        await gatehouse.cache.hit(key, rate, -1)
        return result
    gatehouse.audit_later(_audit(event, client, subject=user.id, outcome="failure", method=method))
    log.info("second factor check failed event=%s method=%s ip=%s", event, method, client.ip)
    raise failure


async def _forget_codes_without_factor(db: AsyncSession, user_id: uuid.UUID) -> None:
    # Recovery codes stand in for a factor; with none left they would be a back door.
    if not await _mfa_methods(db, user_id):
        await db.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


async def _undo_link(gatehouse: Gatehouse, db: AsyncSession, user: User, factor: str, client: Client) -> str:
    """The "this wasn't me" link for the mail announcing a new factor (`totp`, or a passkey's id)."""
    token = await _issue_action_token(
        gatehouse,
        user=user,
        purpose="factor_undo",
        lifetime=timedelta(days=gatehouse.settings.factor_undo_days),
        event="mfa.undo_link_sent",
        client=client,
        token=f"{factor}.{secrets.token_urlsafe(32)}",
        db=db,
    )
    return gatehouse.settings.factor_undo_url.format(token=token)


async def undo_factor(gatehouse: Gatehouse, *, token: str, client: Client = CLI) -> CredentialsEnded:
    """ "This wasn't me", from the mail announcing a new second factor: that factor goes (with the recovery
    codes when no factor is left), every session ends and every API key is revoked. An authenticator
    app enrolled again after the link was sent is not the one it names, and stays."""
    factor = token.partition(".")[0]
    async with gatehouse.transaction(write=True) as db:
        spent = await _consume_action_token(db, token=token, purpose="factor_undo")  # the stored hash covers `factor`
        user = await db.get(User, spent.user_id, with_for_update=True)
        if user is None:
            raise InvalidActionToken()
        if factor == "totp":
            named = TotpFactor.confirmed_at <= sa.literal(spent.created_at, UTCDateTime())
            stmt = sa.delete(TotpFactor).where(TotpFactor.user_id == user.id, named).returning(sa.literal("app"))
        else:
            named = Passkey.id == uuid.UUID(hex=factor)
            stmt = sa.delete(Passkey).where(Passkey.user_id == user.id, named).returning(Passkey.name)
        removed = tuple(await db.scalars(stmt))
        await _forget_codes_without_factor(db, user.id)
        revoked = await _revoke_user_keys(db, user.id)
        db.add(_audit("mfa.factor_undone", client, subject=user.id, factor=factor, removed=len(removed)))
    await _publish_revoked_keys(gatehouse, revoked)
    ended = await _end_sessions(gatehouse, user_id=user.id, reason="factor_undo")
    log.warning("second factor undone by its owner user=%s factor=%s sessions_ended=%d", user.id, factor, ended)
    return CredentialsEnded(user.id, ended, len(revoked), removed)


@dataclass(frozen=True, slots=True)
class FactorInfo:
    """A second factor as its owner sees it when recovering the account."""

    id: str  # "totp" or the passkey's id: what `keep_factors` names
    kind: Literal["totp", "passkey"]
    name: str
    added_at: datetime
    recent: bool  # added within FACTOR_UNDO_DAYS: account recovery removes it unless kept


async def list_factors(gatehouse: Gatehouse, *, user_id: uuid.UUID) -> list[FactorInfo]:
    """A user's second factors (an authenticator app, passkeys), oldest first."""
    since = utcnow() - timedelta(days=gatehouse.settings.factor_undo_days)
    async with gatehouse.transaction() as db:
        totp = await db.scalar(
            sa.select(TotpFactor.confirmed_at).where(
                TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
            )
        )
        passkeys = list(
            await db.execute(
                sa.select(Passkey.id, Passkey.name, Passkey.created_at)
                .where(Passkey.user_id == user_id)
                .order_by(Passkey.created_at, Passkey.id)
            )
        )
    found = [FactorInfo("totp", "totp", "authenticator app", totp, totp > since)] if totp else []
    found += [FactorInfo(str(pid), "passkey", name, added, added > since) for pid, name, added in passkeys]
    return sorted(found, key=lambda f: f.added_at)


async def reset_factors(gatehouse: Gatehouse, *, token: str) -> list[FactorInfo]:
    """The second factors of the account a reset link is for, so that its owner can choose which recent
    ones to keep (the link is not spent)."""
    row = await _peek_action_token(gatehouse, token=token, purpose="reset")
    return await list_factors(gatehouse, user_id=row.user_id)


async def _drop_recent_factors(
    gatehouse: Gatehouse, db: AsyncSession, user_id: uuid.UUID, keep: frozenset[str]
) -> list[str]:
    """Account recovery by mailbox (inside its transaction): the factors added within FACTOR_UNDO_DAYS go,
    but for those the owner keeps (`keep`: "totp", passkey ids). Older ones stay: a mailbox alone never
    strips an established factor, which would make it a way around the second factor. The names removed."""
    since = sa.literal(utcnow() - timedelta(days=gatehouse.settings.factor_undo_days), UTCDateTime())
    removed: list[str] = []
    if "totp" not in keep:
        recent = sa.or_(TotpFactor.confirmed_at.is_(None), TotpFactor.confirmed_at > since)
        stmt = sa.delete(TotpFactor).where(TotpFactor.user_id == user_id, recent).returning(TotpFactor.confirmed_at)
        removed += ["authenticator app" for confirmed in await db.scalars(stmt) if confirmed is not None]
    kept = [uuid.UUID(k) for k in keep if k != "totp"]
    stmt = sa.delete(Passkey).where(Passkey.user_id == user_id, Passkey.created_at > since, Passkey.id.not_in(kept))
    removed += [f"passkey {name}" for name in await db.scalars(stmt.returning(Passkey.name))]
    await _forget_codes_without_factor(db, user_id)
    if removed:
        db.add(_audit("mfa.recovery_removed", CLI, subject=user_id, removed=len(removed)))
    return removed


async def _remove_second_factors(db: AsyncSession, user_id: uuid.UUID) -> int:
    """Delete every authenticator app, passkey and recovery code of a user; how many."""
    removed = 0
    for model in (TotpFactor, Passkey, RecoveryCode):
        removed += len(
            list(await db.scalars(sa.delete(model).where(model.user_id == user_id).returning(model.user_id)))
        )
    return removed


async def reset_mfa(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> int:
    """An admin removes every second factor of a user (lost device); the number removed. The user is told."""
    user = await _load_user(gatehouse, user_id)
    async with gatehouse.transaction(write=True) as db:
        removed = await _remove_second_factors(db, user.id)
        db.add(_audit("mfa.reset", client, subject=user.id, removed=removed))
    gatehouse.spawn(send_mail(gatehouse, kind="mfa_reset", email=user.email, client=client, budget=False))
    log.warning("mfa reset user=%s removed=%d", user.id, removed)
    return removed


# Service functions: TOTP and recovery codes ----------------------------------

# Authenticator apps (RFC 6238), single use across instances (a compare-and-set on the last time
# step), and the recovery codes that stand in for them.


def _totp_secret(gatehouse: Gatehouse, row: TotpFactor) -> str:
    return gatehouse.sealer.unseal(row.secret, context=f"totp/{row.user_id}", what="a TOTP secret").decode()


async def _spend_totp(gatehouse: Gatehouse, user_id: uuid.UUID, code: str, *, pending: bool = False) -> bool:
    """Accept a code of the confirmed (or, `pending`, the unconfirmed) authenticator once: its time step
    must be newer than the last one accepted, a compare-and-set that holds across instances."""
    async with gatehouse.transaction() as db:
        row = await db.get(TotpFactor, user_id)
    if row is None or (row.confirmed_at is None) != pending:
        return False
    step = totp_step(code.strip(), _totp_secret(gatehouse, row))
    if step is None:
        return False
    state = TotpFactor.confirmed_at.is_(None) if pending else TotpFactor.confirmed_at.is_not(None)
    changes: dict[str, Any] = {"last_step": step} | ({"confirmed_at": utcnow()} if pending else {})
    async with gatehouse.transaction(write=True) as db:
        taken = await db.scalar(
            sa.update(TotpFactor)
            .where(TotpFactor.user_id == user_id, TotpFactor.last_step < step, state)
            .values(**changes)
            .returning(TotpFactor.user_id)
        )
    return taken is not None


async def _spend_recovery_code(gatehouse: Gatehouse, user: User, code: str, *, client: Client) -> bool:
    normalized = normalize_recovery_code(code)
    if not _RECOVERY_RE.match(normalized):
        return False
    async with gatehouse.transaction(write=True) as db:
        spent = await db.scalar(
            sa.update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == hash_secret(normalized),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .returning(RecoveryCode.id)
        )
        left = await db.scalar(
            sa.select(sa.func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
    if spent is None:
        return False
    gatehouse.spawn(
        send_mail(
            gatehouse, kind="recovery_code_used", email=user.email, client=client, budget=False, remaining=str(left)
        )
    )
    return True


async def _store_recovery_codes(db: AsyncSession, user_id: uuid.UUID) -> list[str]:
    """Replace a user's recovery codes inside the caller's transaction; the new codes, to show once."""
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    await db.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    now = utcnow()
    db.add_all(
        [
            RecoveryCode(user_id=user_id, code_hash=hash_secret(normalize_recovery_code(c)), created_at=now)
            for c in codes
        ]
    )
    return codes


async def enroll_totp(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> tuple[str, str]:
    """Start enrolling an authenticator app: (secret, otpauth:// URI). It counts once confirmed."""
    import pyotp

    user = await _load_user(gatehouse, user_id)
    secret = pyotp.random_base32()
    sealed = gatehouse.sealer.seal(secret.encode(), context=f"totp/{user.id}")
    try:
        async with gatehouse.transaction(write=True) as db:
            row = await db.get(TotpFactor, user.id, with_for_update=True)
            if row is not None and row.confirmed_at is not None:
                raise TotpAlreadyEnabled()
            if row is None:
                db.add(TotpFactor(user_id=user.id, secret=sealed, created_at=utcnow(), last_step=0))
            else:
                row.secret, row.created_at, row.last_step = sealed, utcnow(), 0
            db.add(_audit("mfa.totp_enroll", client, subject=user.id))
    except sa.exc.IntegrityError:
        raise TotpAlreadyEnabled("Another enrollment started at the same moment; start again.") from None
    uri = pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(
        name=user.email, issuer_name=gatehouse.settings.mfa_issuer
    )
    return secret, uri


async def confirm_totp(gatehouse: Gatehouse, *, user_id: uuid.UUID, code: str, client: Client = CLI) -> list[str]:
    """Activate the pending authenticator with one of its codes; the new recovery codes, shown once."""
    user = await _load_user(gatehouse, user_id)
    async with gatehouse.transaction() as db:
        pending = await db.scalar(
            sa.select(TotpFactor.user_id).where(TotpFactor.user_id == user.id, TotpFactor.confirmed_at.is_(None))
        )
    if pending is None:
        raise MfaNotEnabled("No authenticator enrollment is pending: start with POST /mfa/totp.")
    await _guarded_check(
        gatehouse,
        user=user,
        method="otp",
        event="mfa.totp_confirm",
        client=client,
        check=lambda: _spend_totp(gatehouse, user.id, code, pending=True),
    )
    async with gatehouse.transaction(write=True) as db:
        codes = await _store_recovery_codes(db, user.id)
        db.add(_audit("mfa.totp_enabled", client, subject=user.id))
        undo = await _undo_link(gatehouse, db, user, "totp", client)
    gatehouse.spawn(
        send_mail(
            gatehouse, kind="mfa_enabled", email=user.email, client=client, budget=False, method="totp", link=undo
        )
    )
    return codes


async def disable_totp(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> None:
    """Remove the authenticator app (and the recovery codes, when no passkey is left)."""
    user = await _load_user(gatehouse, user_id)
    async with gatehouse.transaction(write=True) as db:
        removed = await db.scalar(
            sa.delete(TotpFactor).where(TotpFactor.user_id == user.id).returning(TotpFactor.confirmed_at)
        )
        if removed is None:
            raise MfaNotEnabled("No authenticator app is enrolled.")
        await _forget_codes_without_factor(db, user.id)
        db.add(_audit("mfa.totp_disabled", client, subject=user.id))
    gatehouse.spawn(
        send_mail(gatehouse, kind="mfa_disabled", email=user.email, client=client, budget=False, method="totp")
    )


async def replace_recovery_codes(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> list[str]:
    """A new set of recovery codes (the old ones stop working); needs a second factor to recover."""
    user = await _load_user(gatehouse, user_id)
    async with gatehouse.transaction(write=True) as db:
        if not await _mfa_methods(db, user.id):
            raise MfaNotEnabled("Enroll an authenticator app or a passkey first.")
        codes = await _store_recovery_codes(db, user.id)
        db.add(_audit("mfa.recovery_codes_replaced", client, subject=user.id))
    gatehouse.spawn(send_mail(gatehouse, kind="recovery_codes_replaced", email=user.email, client=client, budget=False))
    return codes


# Service functions: passkeys -------------------------------------------------

# Passkeys. Challenges are stateless (random, purpose, user and expiry under a MAC), and spent by
# inserting their hash as a used action token: the unique index refuses a second use anywhere.


PASSKEY_CHALLENGE_SECONDS = 300


def _rp_options(gatehouse: Gatehouse) -> dict[str, Any]:
    return {"expected_rp_id": gatehouse.settings.webauthn_rp_id, "expected_origin": gatehouse.settings.webauthn_origins}


async def _passkey_ids(gatehouse: Gatehouse, user_id: uuid.UUID) -> list[str]:
    async with gatehouse.transaction() as db:
        return list(await db.scalars(sa.select(Passkey.credential_id).where(Passkey.user_id == user_id)))


async def passkey_registration_options(gatehouse: Gatehouse, *, user_id: uuid.UUID) -> dict[str, Any]:
    """Options for navigator.credentials.create(): a discoverable credential, bound to this user."""
    import webauthn
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    user = await _load_user(gatehouse, user_id)
    options = webauthn.generate_registration_options(
        rp_id=gatehouse.settings.webauthn_rp_id,
        rp_name=gatehouse.settings.webauthn_rp_name,
        user_name=user.email,
        user_id=user.id.bytes,
        user_display_name=user.full_name or user.email,
        challenge=gatehouse.challenges.issue("register", user.id, PASSKEY_CHALLENGE_SECONDS),
        timeout=PASSKEY_CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c))
            for c in await _passkey_ids(gatehouse, user.id)
        ],
    )
    return json.loads(webauthn.options_to_json(options))


def _request_options(gatehouse: Gatehouse, purpose: str, user_id: uuid.UUID | None, ids: list[str]) -> dict[str, Any]:
    import webauthn
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

    options = webauthn.generate_authentication_options(
        rp_id=gatehouse.settings.webauthn_rp_id,
        challenge=gatehouse.challenges.issue(purpose, user_id, PASSKEY_CHALLENGE_SECONDS),
        timeout=PASSKEY_CHALLENGE_SECONDS * 1000,
        user_verification=UserVerificationRequirement.PREFERRED,
        allow_credentials=[PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c)) for c in ids],
    )
    return json.loads(webauthn.options_to_json(options))


async def passkey_login_options(
    gatehouse: Gatehouse, *, mfa_token: str | None = None, client: Client = CLI
) -> dict[str, Any]:
    """Options for navigator.credentials.get(): for a passkey-only sign-in (any discoverable passkey),
    or, with an mfa_token, for that user's passkeys as the second factor."""
    await _check_auth_ip(gatehouse, client)
    if mfa_token is None:
        return _request_options(gatehouse, "login", None, [])
    user = await _mfa_token_user(gatehouse, mfa_token)
    return _request_options(gatehouse, "mfa", user.id, await _passkey_ids(gatehouse, user.id))


async def passkey_proof_options(gatehouse: Gatehouse, *, principal: "Principal") -> dict[str, Any]:
    """Options for proving a passkey in a step-up (sensitive action or POST /auth/reauthenticate)."""
    if principal.session_id is None:
        raise SessionRequired()
    ids = await _passkey_ids(gatehouse, principal.user_id)
    if not ids:
        raise MfaNotEnabled("This account has no passkey.")
    return _request_options(gatehouse, "proof", principal.user_id, ids)


def _client_challenge(
    gatehouse: Gatehouse, answer: PasskeyAnswer, purpose: str, user_id: uuid.UUID | None
) -> tuple[bytes, datetime]:
    """The challenge the browser signed, if this service issued it for this purpose and user and it is live."""
    import webauthn

    try:
        client_data = json.loads(webauthn.base64url_to_bytes(answer.response.clientDataJSON))
        challenge = webauthn.base64url_to_bytes(client_data["challenge"])
    except Exception:  # any shape of hostile input: one answer
        raise PasskeyRejected() from None
    expires = gatehouse.challenges.check(challenge, purpose, user_id)
    if expires is None:
        raise PasskeyRejected("The passkey challenge is not one this service issued for this, or it has expired.")
    return challenge, expires


def _spend_challenge(db: AsyncSession, user: User, challenge: bytes, expires: datetime) -> None:
    now = utcnow()
    db.add(
        ActionToken(
            user_id=user.id,
            purpose="webauthn",
            token_hash=hash_secret(challenge.hex()),
            email=user.email,
            created_at=now,
            expires_at=expires,
            used_at=now,
        )
    )


async def register_passkey(
    gatehouse: Gatehouse, *, user_id: uuid.UUID, credential: PasskeyAnswer, name: str, client: Client = CLI
) -> Passkey:
    """Verify navigator.credentials.create()'s answer to our options and keep the credential."""
    import webauthn

    name = _validated(_no_bad_text, name, "name").strip()[:100] or "passkey"
    user = await _load_user(gatehouse, user_id)
    challenge, expires = _client_challenge(gatehouse, credential, "register", user.id)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential.as_json(), expected_challenge=challenge, **_rp_options(gatehouse)
        )
    except Exception as exc:
        log.info("passkey registration refused: %s", exc)
        raise PasskeyRejected() from None
    try:
        async with gatehouse.transaction(write=True) as db:
            _spend_challenge(db, user, challenge, expires)
            row = Passkey(
                user_id=user.id,
                credential_id=webauthn.helpers.bytes_to_base64url(verified.credential_id),
                public_key=webauthn.helpers.bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count,
                name=name,
                created_at=utcnow(),
            )
            db.add(row)
            await db.flush()  # the row's id, for the audit row and the undo link
            db.add(_audit("mfa.passkey_added", client, subject=user.id, passkey=str(row.id)))
            undo = await _undo_link(gatehouse, db, user, row.id.hex, client)
    except sa.exc.IntegrityError:
        raise PasskeyRejected("This passkey is already registered, or this answer was already used.") from None
    gatehouse.spawn(
        send_mail(gatehouse, kind="passkey_added", email=user.email, client=client, budget=False, name=name, link=undo)
    )
    return row


async def list_passkeys(gatehouse: Gatehouse, *, user_id: uuid.UUID) -> list[Passkey]:
    """A user's passkeys, oldest first."""
    async with gatehouse.transaction() as db:
        return list(
            await db.scalars(
                sa.select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at, Passkey.id)
            )
        )


async def delete_passkey(
    gatehouse: Gatehouse, *, user_id: uuid.UUID, passkey_id: uuid.UUID, client: Client = CLI
) -> None:
    """Remove one of a user's passkeys (and the recovery codes, when no factor is left)."""
    user = await _load_user(gatehouse, user_id)
    async with gatehouse.transaction(write=True) as db:
        locked = await _lock_user(db, user.id)
        if not await _other_ways_in(db, locked, passkey=passkey_id):
            exists = await db.scalar(sa.select(Passkey.id).where(Passkey.id == passkey_id, Passkey.user_id == user.id))
            raise LastSignInMethod() if exists else PasskeyNotFound()
        name = await db.scalar(
            sa.delete(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id).returning(Passkey.name)
        )
        if name is None:
            raise PasskeyNotFound()
        await _forget_codes_without_factor(db, user.id)
        db.add(_audit("mfa.passkey_removed", client, subject=user.id, passkey=str(passkey_id)))
    gatehouse.spawn(
        send_mail(gatehouse, kind="passkey_removed", email=user.email, client=client, budget=False, name=name)
    )


async def _find_passkey(gatehouse: Gatehouse, answer: PasskeyAnswer) -> Passkey | None:
    async with gatehouse.transaction() as db:
        return await db.scalar(sa.select(Passkey).where(Passkey.credential_id == answer.id))


class _CounterWentBack(Exception):
    """Inside the spending transaction: the stored counter is not below the presented one."""


async def _refuse_clone(gatehouse: Gatehouse, passkey: Passkey, user: User, count: int, client: Client) -> None:
    gatehouse.audit_later(
        _audit(
            "mfa.passkey_clone_detected",
            client,
            subject=user.id,
            outcome="failure",
            passkey=str(passkey.id),
            stored=passkey.sign_count,
            presented=count,
        )
    )
    log.warning("passkey sign count went backwards: passkey=%s user=%s", passkey.id, user.id)
    # The owner is told once an hour, however often the copy tries.
    if await gatehouse.cache.claim(Keys.clone_mail(passkey.id), 3600):
        gatehouse.spawn(
            send_mail(
                gatehouse,
                kind="passkey_clone_detected",
                email=user.email,
                client=client,
                budget=False,
                name=passkey.name,
            )
        )
    raise PasskeyRejected(
        "This passkey's signature counter went backwards, as a cloned authenticator's would: "
        "it is refused. Sign in with another factor and remove it."
    )


async def _check_assertion(
    gatehouse: Gatehouse,
    passkey: Passkey,
    user: User,
    answer: PasskeyAnswer,
    *,
    challenge: bytes,
    expires: datetime,
    client: Client,
) -> bool:
    """Verify an assertion of `passkey` to `challenge`: origin, RP id, signature; then spend the challenge,
    and only then compare the sign count, which must grow (a counter going backwards means a cloned
    authenticator: refused, audited and mailed to the owner). Spending first makes a client's retry of
    the same answer a spent challenge, never a false clone alarm. True when the authenticator verified
    the user (PIN, biometric)."""
    import webauthn

    handle = answer.response.userHandle
    if handle and handle != webauthn.helpers.bytes_to_base64url(user.id.bytes):
        raise PasskeyRejected("The passkey answered for another account.")
    try:
        # The counter is checked below, not by the library, so that a clone is told from a bad signature.
        verified = webauthn.verify_authentication_response(
            credential=answer.as_json(),
            expected_challenge=challenge,
            credential_current_sign_count=0,
            credential_public_key=webauthn.base64url_to_bytes(passkey.public_key),
            **_rp_options(gatehouse),
        )
    except Exception as exc:
        log.info("passkey assertion refused: %s", type(exc).__name__)
        raise PasskeyRejected() from None
    count = verified.new_sign_count
    try:
        async with gatehouse.transaction(write=True) as db:
            _spend_challenge(db, user, challenge, expires)
            await db.flush()  # a second submission of this answer stops here, on every instance
            grows = Passkey.sign_count < count if count else Passkey.sign_count == 0
            if (
                await db.scalar(
                    sa.update(Passkey)
                    .where(Passkey.id == passkey.id, grows)
                    .values(sign_count=count, last_used_at=utcnow())
                    .returning(Passkey.id)
                )
                is None
            ):
                raise _CounterWentBack()
    except sa.exc.IntegrityError:
        raise PasskeyRejected("This passkey answer was already used.") from None
    except _CounterWentBack:
        await _refuse_clone(gatehouse, passkey, user, count, client)
    return bool(verified.user_verified)


async def _prove_passkey(
    gatehouse: Gatehouse, answer: PasskeyAnswer, *, purpose: str, user: User | None, event: str, client: Client
) -> tuple[User, bool]:
    """Check a passkey answer for `purpose` (of `user`, or of whoever it is registered to): the challenge
    this service issued first, so junk costs no lookup; then the credential, its signature, the single use
    of the challenge and the counter. A failure is audited; there is no per-user budget to spend (a
    signature cannot be guessed). (The user it proves, whether the authenticator verified the user.)"""
    challenge, expires = _client_challenge(gatehouse, answer, purpose, user.id if user else None)
    passkey = await _find_passkey(gatehouse, answer)
    owner = user
    if passkey is not None and owner is None:
        async with gatehouse.transaction() as db:
            owner = await db.get(User, passkey.user_id)
    try:
        if passkey is None or owner is None or passkey.user_id != owner.id:
            raise PasskeyRejected("This passkey is not registered to this account." if user else None)
        if not owner.is_active:
            raise PasskeyRejected()
        verified = await _check_assertion(
            gatehouse, passkey, owner, answer, challenge=challenge, expires=expires, client=client
        )
    except PasskeyRejected:
        gatehouse.audit_later(
            _audit(event, client, subject=owner.id if owner else None, outcome="failure", method="webauthn")
        )
        raise
    return owner, verified


async def sign_in_with_passkey(gatehouse: Gatehouse, *, credential: PasskeyAnswer, client: Client = CLI) -> TokenPair:
    """Passwordless sign-in with a discoverable passkey; aal2 when the authenticator verified the user."""
    await _check_auth_ip(gatehouse, client)
    user, verified = await _prove_passkey(
        gatehouse, credential, purpose="login", user=None, event="auth.passkey_login", client=client
    )
    if gatehouse.settings.require_verified_email and user.email_verified_at is None:
        raise EmailNotVerified()
    pair = await _start_session(
        gatehouse, user, client, rehash=None, amr=("webauthn",), aal=_aal(["webauthn"], verified_passkey=verified)
    )
    gatehouse.metrics.logins.labels("success").inc()
    log.info("login user=%s passkey", user.id)
    return pair


# Service functions: step-up and sign-in --------------------------------------

# The orchestration: a sign-in with the password and, when enrolled, a second factor; a step-up for
# sensitive actions; and the proof in the request that changing a factor needs.


async def authenticate(
    gatehouse: Gatehouse, *, email: str, password: str, code: str | None = None, client: Client = CLI
) -> TokenPair | MfaChallenge:
    """Log in: verify the password under the guessing limits and open a session, or, when the
    account has a second factor, answer with the challenge that `complete_mfa` finishes.

    Unknown email, wrong password and inactive account are one error, at one cost."""
    settings = gatehouse.settings
    await _check_auth_ip(gatehouse, client)
    try:
        email = normalize_email(email)
    except ValueError:
        email = email.strip().lower()[:320]  # still costs a hash check below: no shortcut to tell apart
    async with gatehouse.transaction() as db:
        user = await _user_by_email(db, email)
    try:
        user = await _check_password(
            gatehouse, account=email, user=user, password=password, code=code, client=client, event="auth.login"
        )
    except NotAuthenticated:
        gatehouse.metrics.logins.labels("failure").inc()
        raise
    if settings.require_verified_email and user.email_verified_at is None:
        gatehouse.audit_later(
            _audit("auth.login", client, subject=user.id, outcome="failure", reason="email_not_verified")
        )
        raise EmailNotVerified()
    rehash = await gatehouse.hasher.hash(password) if gatehouse.hasher.needs_rehash(user.password_hash) else None
    async with gatehouse.transaction() as db:
        methods = await _mfa_methods(db, user.id)
    if methods:
        return await _mfa_challenge(gatehouse, user, methods, rehash=rehash, client=client)
    pair = await _start_session(gatehouse, user, client, rehash=rehash)
    gatehouse.metrics.logins.labels("success").inc()
    log.info("login user=%s", user.id)
    return pair


async def _second_factor(
    gatehouse: Gatehouse,
    *,
    user: User,
    purpose: str,
    event: str,
    client: Client,
    otp: str | None = None,
    recovery_code: str | None = None,
    passkey: PasskeyAnswer | None = None,
) -> tuple[str, bool]:
    """Check one second factor (codes under the per-user limit): (method used, passkey verified the user)."""
    if otp is not None:
        await _guarded_check(
            gatehouse,
            user=user,
            method="otp",
            event=event,
            client=client,
            check=lambda: _spend_totp(gatehouse, user.id, otp),
        )
        return "otp", False
    if recovery_code is not None:
        await _guarded_check(
            gatehouse,
            user=user,
            method="recovery",
            event=event,
            client=client,
            check=lambda: _spend_recovery_code(gatehouse, user, recovery_code, client=client),
        )
        return "recovery", False
    if passkey is not None:
        _, verified = await _prove_passkey(gatehouse, passkey, purpose=purpose, user=user, event=event, client=client)
        return "webauthn", verified
    raise InvalidInput("send one of `code`, `recovery_code` or `webauthn`")


async def reauthenticate(
    gatehouse: Gatehouse,
    *,
    principal: "Principal",
    password: str | None = None,
    code: str | None = None,
    otp: str | None = None,
    passkey: "PasskeyAnswer | None" = None,
    client: Client = CLI,
) -> TokenPair:
    """Step up: prove the password, an authenticator code or a passkey again; a fresh access token for
    the same session. A second factor proved here joins the session's methods (and can raise it to aal2)."""
    if principal.session_id is None:
        raise SessionRequired()
    await _check_auth_ip(gatehouse, client)
    user = await _load_user(gatehouse, principal.user_id)
    method, verified = "pwd", False
    if password is not None:
        await _check_password(
            gatehouse,
            account=user.email,
            user=user,
            password=password,
            code=code,
            client=client,
            event="auth.reauthenticate",
        )
    elif otp is not None or passkey is not None:
        method, verified = await _second_factor(
            gatehouse, user=user, otp=otp, passkey=passkey, purpose="proof", event="auth.reauthenticate", client=client
        )
    else:
        raise InvalidInput("send `password`, `otp` or `passkey`")
    async with gatehouse.transaction(write=True) as db:
        row = await db.get(LoginSession, principal.session_id, with_for_update=True)
        if row is None or row.revoked_at is not None:
            raise SessionRevoked()
        row.authenticated_at = utcnow()
        amr = row.amr.split() + [method] if method not in row.amr.split() else row.amr.split()
        row.amr, row.aal = " ".join(amr), max(row.aal, _aal(amr, verified_passkey=verified))
        db.add(_audit("auth.reauthenticate", client, subject=user.id, session=str(row.id), method=method))
    return await _token_pair(gatehouse, user_id=user.id, role=user.role, session=row)


async def _prove_now(
    gatehouse: Gatehouse,
    user: User,
    *,
    client: Client,
    password: str | None = None,
    otp: str | None = None,
    recovery_code: str | None = None,
    passkey: PasskeyAnswer | None = None,
) -> None:
    """Check the proof a step-up carries: the password, or one second factor."""
    if password is not None:
        await _check_password(
            gatehouse,
            account=user.email,
            user=user,
            password=password,
            code=None,
            client=client,
            event="auth.step_up",
            wrong=WrongPassword,
        )
    else:
        await _second_factor(
            gatehouse,
            user=user,
            otp=otp,
            recovery_code=recovery_code,
            passkey=passkey,
            purpose="proof",
            event="auth.step_up",
            client=client,
        )


async def require_factor_proof(
    gatehouse: Gatehouse,
    principal: "Principal",
    *,
    password: str | None = None,
    otp: str | None = None,
    recovery_code: str | None = None,
    passkey: PasskeyAnswer | None = None,
    email_code: str | None = None,
    client: Client = CLI,
) -> None:
    """Gate adding or removing a second factor: a session, and a proof in this request, never a recent
    sign-in alone (a stolen access token must neither plant a factor that outlives a password reset nor
    strip the owner's). The proof is the strongest the account has: one of its second factors when it
    has one (the password alone would let a phished password plant a passkey past the owner's factor),
    else its password, else (an account made by a provider) a code mailed to its address."""
    if principal.session_id is None:
        raise SessionRequired()
    user = await _load_user(gatehouse, principal.user_id)
    has_factor = await _has_second_factor(gatehouse, user.id)
    if has_factor and (otp or recovery_code or passkey):
        await _prove_now(gatehouse, user, otp=otp, recovery_code=recovery_code, passkey=passkey, client=client)
    elif not has_factor and password is not None and user.password_hash:
        await _prove_now(gatehouse, user, password=password, client=client)
    elif not has_factor and email_code is not None and not user.password_hash:
        if not await _spend_login_code(gatehouse, user=user, code=email_code, purpose="email_code"):
            gatehouse.audit_later(
                _audit("auth.step_up", client, subject=user.id, outcome="failure", method="email_code")
            )
            raise InvalidOtp("The emailed code is wrong, expired or already used.")
    else:
        raise FactorProofRequired()


async def require_recent_proof(
    gatehouse: Gatehouse,
    principal: "Principal",
    *,
    password: str | None,
    otp: str | None = None,
    passkey: "PasskeyAnswer | None" = None,
    client: Client = CLI,
    factor_if_enrolled: bool = False,
) -> None:
    """Gate a sensitive action: a session (never an API key), and the password, an authenticator code
    or a passkey now, or a sign-in within REAUTH_MINUTES (the token's `auth_time`). With
    `factor_if_enrolled`, an account with a second factor must send one in the request (an email change:
    a stolen session with the password must not move the account, nor spend the owner's undo links)."""
    if principal.session_id is None:
        raise SessionRequired()
    if factor_if_enrolled and await _has_second_factor(gatehouse, principal.user_id):
        await require_factor_proof(gatehouse, principal, otp=otp, passkey=passkey, client=client)
    elif password is not None or otp is not None or passkey is not None:
        user = await _load_user(gatehouse, principal.user_id)
        await _prove_now(gatehouse, user, password=password, otp=otp, passkey=passkey, client=client)
    elif time.time() - principal.auth_time > gatehouse.settings.reauth_minutes * 60:
        raise ReauthenticationRequired()


async def complete_mfa(
    gatehouse: Gatehouse,
    *,
    mfa_token: str,
    otp: str | None = None,
    recovery_code: str | None = None,
    passkey: PasskeyAnswer | None = None,
    client: Client = CLI,
) -> TokenPair:
    """Finish a sign-in that answered `mfa_required`: one second factor, then the session opens."""
    await _check_auth_ip(gatehouse, client)
    user = await _mfa_token_user(gatehouse, mfa_token)
    method, _ = await _second_factor(
        gatehouse,
        user=user,
        otp=otp,
        recovery_code=recovery_code,
        passkey=passkey,
        purpose="mfa",
        event="auth.mfa",
        client=client,
    )
    try:
        async with gatehouse.transaction(write=True) as db:
            await _consume_action_token(db, token=mfa_token, purpose="mfa")
    except InvalidActionToken:
        raise InvalidMfaToken() from None
    first = "fed" if mfa_token.startswith("fed.") else "pwd"
    pair = await _start_session(gatehouse, user, client, rehash=None, amr=(first, method), aal=2)
    gatehouse.metrics.logins.labels("success").inc()
    log.info("login user=%s mfa=%s", user.id, method)
    return pair


async def send_email_code(gatehouse: Gatehouse, *, principal: "Principal", client: Client = CLI) -> None:
    """Mail the signed-in account's address a one-time code: the proof a factor change needs on an account
    with neither a password nor a second factor (one made by a provider)."""
    if principal.session_id is None:
        raise SessionRequired()
    user = await _load_user(gatehouse, principal.user_id)
    gatehouse.spawn(_send_login_code(gatehouse, user=user, client=client, purpose="email_code"))


# Service functions: account lifecycle ----------------------------------------

# Changes to an account: by an admin, by its owner (password, email), and recovery by mailbox.


async def _lock_admins(db: AsyncSession) -> list[uuid.UUID]:
    """Lock every active admin's row, in one order, before any other user row is locked: two admins
    demoting each other at once then queue here instead of deadlocking on each other's rows."""
    return list(
        await db.scalars(
            sa.select(User.id).where(User.role == "admin", User.is_active.is_(True)).order_by(User.id).with_for_update()
        )
    )


def _guard_last_admin(user: User, admins: list[uuid.UUID]) -> None:
    """Refuse a change that would leave no active admin (`admins`: from _lock_admins, still locked)."""
    if user.role != "admin" or not user.is_active:
        return
    if admins == [user.id]:
        raise LastAdmin()


def _bump(user: User) -> None:
    """Mark a user row changed: caches holding an older version lose to it."""
    user.version += 1
    user.updated_at = utcnow()


async def update_user(
    gatehouse: Gatehouse,
    *,
    user_id: uuid.UUID,
    email: str | None = None,
    full_name: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
    client: Client = CLI,
) -> UserPublic:
    """Change a user's fields at once (an admin's act; owners change their email through
    `request_email_change`). Deactivation ends every session, a demotion revokes the keys that
    hold scopes the new role lacks, an email change notifies the old address; the last admin stays."""
    changes: dict[str, Any] = {}
    if email is not None:
        changes["email"] = _validated(normalize_email, email, "email")
    if full_name is not None:
        changes["full_name"] = _validated(_no_bad_text, full_name, "full_name").strip()
    if role is not None:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of: {', '.join(ROLES)}")
        changes["role"] = role
    if is_active is not None:
        changes["is_active"] = is_active
    revoked: list[ApiKey] = []
    try:
        async with gatehouse.transaction(write=True) as db:
            admins = await _lock_admins(db) if role == "user" or is_active is False else []
            user = await _lock_user(db, user_id)
            old_email = user.email
            changes = {k: v for k, v in changes.items() if getattr(user, k) != v}
            if changes.get("role") == "user" or changes.get("is_active") is False:
                _guard_last_admin(user, admins)
            if changes:
                for name, value in changes.items():
                    setattr(user, name, value)
                if "email" in changes:
                    user.email_verified_at = None  # the new address is not verified yet
                if "role" in changes:  # nothing dormant may come back on a later promotion
                    revoked = await _revoke_user_keys(db, user.id, beyond=ROLE_SCOPES[user.role])
                _bump(user)
                audited = {k: v for k, v in changes.items() if k != "email"} | {"fields": sorted(changes)}
                db.add(_audit("user.update", client, subject=user.id, keys_revoked=len(revoked), **audited))
    except sa.exc.IntegrityError:
        raise EmailTaken() from None
    if not changes:
        return UserPublic.model_validate(user)
    public = await _publish_user(gatehouse, user)
    await _publish_revoked_keys(gatehouse, revoked)
    if changes.get("is_active") is False:
        await _end_sessions(gatehouse, user_id=user.id, reason="deactivated")
    if "email" in changes:
        gatehouse.spawn(
            send_mail(
                gatehouse, kind="email_changed", email=old_email, client=client, budget=False, new_email=user.email
            )
        )
    log.info("user updated id=%s fields=%s", user.id, ",".join(sorted(changes)))
    return public


async def _store_password(
    db: AsyncSession, *, user: User, new_hash: str, event: str, client: Client, revoke_keys: bool
) -> list[ApiKey]:
    """Inside the caller's transaction: the new hash, reset links dead, keys revoked if asked, audited."""
    user.password_hash = new_hash
    _bump(user)
    await _spend_user_tokens(db, user.id, "reset", "login_code")  # links and codes die with the old password
    revoked = await _revoke_user_keys(db, user.id) if revoke_keys else []
    db.add(_audit(event, client, subject=user.id, keys_revoked=len(revoked)))
    return revoked


async def _after_password_stored(
    gatehouse: Gatehouse, user: User, revoked: list[ApiKey], *, keep_session: uuid.UUID | None
) -> CredentialsEnded:
    await _publish_user(gatehouse, user)
    await _publish_revoked_keys(gatehouse, revoked)
    ended = await _end_sessions(gatehouse, user_id=user.id, keep=keep_session, reason="password_changed")
    log.info("password changed user=%s sessions_ended=%d keys_revoked=%d", user.id, ended, len(revoked))
    return CredentialsEnded(user.id, ended, len(revoked))


async def change_password(
    gatehouse: Gatehouse,
    *,
    principal: "Principal",
    current_password: str,
    new_password: str,
    revoke_api_keys: bool = False,
    client: Client = CLI,
) -> CredentialsEnded:
    """The owner changes their password (sensitive: a session and the current password); every other
    session ends, API keys stay unless `revoke_api_keys`."""
    new_password = _validated(check_password, new_password, "new_password")
    await require_recent_proof(gatehouse, principal, password=current_password, client=client)
    new_hash = await gatehouse.hasher.hash(new_password)
    async with gatehouse.transaction(write=True) as db:
        user = await _lock_user(db, principal.user_id)
        revoked = await _store_password(
            db, user=user, new_hash=new_hash, event="user.password_change", client=client, revoke_keys=revoke_api_keys
        )
    return await _after_password_stored(gatehouse, user, revoked, keep_session=principal.session_id)


async def reset_password(
    gatehouse: Gatehouse,
    *,
    token: str,
    new_password: str,
    keep_factors: frozenset[str] = frozenset(),
    client: Client = CLI,
) -> CredentialsEnded:
    """Recovery through the emailed link: the account may be compromised, so every session ends,
    every API key is revoked, second factors added within FACTOR_UNDO_DAYS go unless kept (see
    `list_factors`), and the account's failed-login and second-factor counters are cleared."""
    new_password = _validated(check_password, new_password, "new_password")
    await _check_auth_ip(gatehouse, client)
    await _peek_action_token(gatehouse, token=token, purpose="reset")  # a bogus token costs no bcrypt
    new_hash = await gatehouse.hasher.hash(new_password)
    async with gatehouse.transaction(write=True) as db:
        row = await _consume_action_token(db, token=token, purpose="reset")
        user = await db.get(User, row.user_id, with_for_update=True)
        if user is None or not user.is_active or user.email != row.email:
            raise InvalidActionToken()
        revoked = await _store_password(
            db, user=user, new_hash=new_hash, event="user.password_reset", client=client, revoke_keys=True
        )
        removed = await _drop_recent_factors(gatehouse, db, user.id, keep_factors)
    await gatehouse.cache.forget_limit(_login_limit_keys(user.email, client)[0])
    await gatehouse.cache.forget_limit(Keys.code_tries("login_code", user.id))
    await gatehouse.cache.forget_limit(Keys.mfa_failures(user.id))  # those who spent it held the password now replaced
    ended = await _after_password_stored(gatehouse, user, revoked, keep_session=None)
    return dataclasses.replace(ended, factors_removed=tuple(removed))


async def set_password(
    gatehouse: Gatehouse, *, user_id: uuid.UUID, new_password: str, client: Client = CLI
) -> CredentialsEnded:
    """An admin sets a user's password: every session ends; API keys stay."""
    new_password = _validated(check_password, new_password, "new_password")
    new_hash = await gatehouse.hasher.hash(new_password)
    async with gatehouse.transaction(write=True) as db:
        user = await _lock_user(db, user_id)
        revoked = await _store_password(
            db, user=user, new_hash=new_hash, event="user.password_set", client=client, revoke_keys=False
        )
    return await _after_password_stored(gatehouse, user, revoked, keep_session=None)


async def delete_user(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> None:
    """Delete a user and their sessions, keys and tokens; the audit log keeps only the id."""
    async with gatehouse.transaction(write=True) as db:
        admins = await _lock_admins(db)
        user = await _lock_user(db, user_id)
        _guard_last_admin(user, admins)
        sessions = list(await db.scalars(sa.select(LoginSession.id).where(LoginSession.user_id == user_id)))
        keys = list(await db.scalars(sa.select(ApiKey.public_id).where(ApiKey.user_id == user_id)))
        for model in (LoginSession, ApiKey, ActionToken, TotpFactor, RecoveryCode, Passkey, Identity):
            await db.execute(sa.delete(model).where(model.user_id == user_id))
        await db.delete(user)
        db.add(_audit("user.delete", client, subject=user_id))
    entries = {Keys.session(sid): _session_entry(None) for sid in sessions}
    entries.update({Keys.api_key(public_id): _api_key_entry(None) for public_id in keys})
    entries[Keys.user(user_id)] = (user.version + 1, None)
    await gatehouse.cache.publish(entries)
    log.info("user deleted id=%s", user_id)


async def password_reset_link(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> str:
    """A single-use, expiring password reset link for a user."""
    user = await _load_user(gatehouse, user_id)
    token = await _issue_action_token(
        gatehouse,
        user=user,
        purpose="reset",
        event="user.password_reset_request",
        lifetime=timedelta(minutes=gatehouse.settings.password_reset_minutes),
        client=client,
    )
    return gatehouse.settings.password_reset_url.format(token=token)


async def request_password_reset(gatehouse: Gatehouse, *, email: str, client: Client = CLI) -> None:
    """Start a reset. Returns at once whatever the email: the work happens off the request path,
    so neither the answer nor its timing tells whether the account exists."""
    await _check_auth_ip(gatehouse, client)

    async def send() -> None:
        try:
            address = normalize_email(email)
        except ValueError:
            return
        async with gatehouse.transaction() as db:
            user = await _user_by_email(db, address)
        if user is None or not user.is_active or not await _mail_allowed(gatehouse, address, client, user.id):
            return
        link = await password_reset_link(gatehouse, user_id=user.id, client=client)
        await deliver(gatehouse, kind="password_reset", email=user.email, link=link, user_id=user.id)

    gatehouse.spawn(send())


async def request_email_verification(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> bool:
    """Send a verification link to the user's current address; False if already verified."""
    user = await _load_user(gatehouse, user_id)
    if user.email_verified_at is not None:
        return False
    await _check_rate(gatehouse, Keys.verification_mail(user.id), gatehouse.settings.rate_reset_email_ip)
    token = await _issue_action_token(
        gatehouse,
        user=user,
        purpose="verify",
        event="user.email_verify_request",
        lifetime=timedelta(hours=gatehouse.settings.verify_email_hours),
        client=client,
    )
    gatehouse.spawn(
        deliver(
            gatehouse,
            kind="email_verification",
            email=user.email,
            user_id=user.id,
            link=gatehouse.settings.verify_email_url.format(token=token),
        )
    )
    return True


async def confirm_email_verification(gatehouse: Gatehouse, *, token: str, client: Client = CLI) -> UserPublic:
    """Spend a verification token: the address it was sent to is now verified."""
    async with gatehouse.transaction(write=True) as db:
        row = await _consume_action_token(db, token=token, purpose="verify")
        user = await db.get(User, row.user_id, with_for_update=True)
        if user is None or user.email != row.email:
            raise InvalidActionToken()  # the address changed since the link was sent
        user.email_verified_at = utcnow()
        _bump(user)
        db.add(_audit("user.email_verified", client, subject=user.id))
    return await _publish_user(gatehouse, user)


async def request_email_change(gatehouse: Gatehouse, *, user_id: uuid.UUID, email: str, client: Client = CLI) -> str:
    """The owner asks for a new address: it changes only when the link mailed there is used.
    The current address gets a notice whose link undoes the change (see `revert_email_change`).
    Until then login and reset use the current address. Returns the pending address."""
    new = _validated(normalize_email, email, "email")
    user = await _load_user(gatehouse, user_id)
    if new == user.email:
        raise InvalidInput("email: this is already the account's address")
    await _check_rate(gatehouse, Keys.email_change(user.id), gatehouse.settings.rate_reset_email_ip)
    settings = gatehouse.settings
    async with gatehouse.transaction(write=True) as db:
        if await _user_by_email(db, new) is not None:
            raise EmailTaken()
        await _spend_user_tokens(db, user.id, "email_change")  # one pending change at a time
        confirm = await _issue_action_token(
            gatehouse,
            user=user,
            purpose="email_change",
            email=new,
            db=db,
            client=client,
            event="user.email_change_request",
            lifetime=timedelta(hours=settings.email_change_hours),
        )
        revert = await _issue_action_token(
            gatehouse,
            user=user,
            purpose="email_revert",
            db=db,
            client=client,
            event="user.email_change_notice",
            lifetime=timedelta(days=settings.email_revert_days),
        )
    gatehouse.spawn(
        send_mail(
            gatehouse,
            kind="email_change_confirm",
            email=new,
            client=client,
            link=settings.email_change_url.format(token=confirm),
        )
    )
    # The notice is not under the strangers' mail budget: filling it must not hide a takeover.
    gatehouse.spawn(
        send_mail(
            gatehouse,
            kind="email_change_notice",
            email=user.email,
            client=client,
            budget=False,
            link=settings.email_revert_url.format(token=revert),
            new_email=new,
        )
    )
    return new


async def confirm_email_change(gatehouse: Gatehouse, *, token: str, client: Client = CLI) -> UserPublic:
    """Spend the link mailed to the new address: the account's address is now that one, verified."""
    try:
        async with gatehouse.transaction(write=True) as db:
            row = await _consume_action_token(db, token=token, purpose="email_change")
            user = await db.get(User, row.user_id, with_for_update=True)
            if user is None or not user.is_active:
                raise InvalidActionToken()
            # Undo links of earlier moves die: whoever holds an address the owner has since left (often why
            # they left) must not pull the account back. This move's own link, sent to the address it leaves, stays.
            await _spend_user_tokens(db, user.id, "email_revert", sparing=user.email)
            user.email, user.email_verified_at = row.email, utcnow()
            _bump(user)
            await _spend_user_tokens(db, user.id, "reset", "verify", "login_code")  # meant for the old address
            db.add(_audit("user.email_change", client, subject=user.id))
    except sa.exc.IntegrityError:
        raise EmailTaken() from None
    log.info("email changed user=%s", user.id)
    return await _publish_user(gatehouse, user)


async def keep_email_change(gatehouse: Gatehouse, *, user_id: uuid.UUID, client: Client = CLI) -> int:
    """The owner vouches for their email changes: every outstanding "this wasn't me" link stops working
    (how many), so an address left behind cannot pull the account back. Audited."""
    async with gatehouse.transaction(write=True) as db:
        spent = await _spend_user_tokens(db, user_id, "email_revert")
        db.add(_audit("user.email_change_kept", client, subject=user_id, links=spent))
    return spent


async def revert_email_change(gatehouse: Gatehouse, *, token: str, client: Client = CLI) -> CredentialsEnded:
    """ "This wasn't me", from the notice sent to the old address: cancel the pending change or undo a
    confirmed one, kill every outstanding link, end every session and revoke every API key."""
    try:
        async with gatehouse.transaction(write=True) as db:
            row = await _consume_action_token(db, token=token, purpose="email_revert")
            user = await db.get(User, row.user_id, with_for_update=True)
            if user is None:
                raise InvalidActionToken()
            await _spend_user_tokens(db, user.id)
            if user.email != row.email:
                user.email, user.email_verified_at = row.email, utcnow()  # the link proves the old address
            _bump(user)
            removed = await _drop_recent_factors(gatehouse, db, user.id, frozenset())
            revoked = await _revoke_user_keys(db, user.id)
            db.add(_audit("user.email_change_revert", client, subject=user.id, keys_revoked=len(revoked)))
    except sa.exc.IntegrityError:
        raise EmailTaken("The old address now belongs to another account; ask an administrator.") from None
    await _publish_user(gatehouse, user)
    await _publish_revoked_keys(gatehouse, revoked)
    ended = await _end_sessions(gatehouse, user_id=user.id, reason="email_revert")
    log.warning("email change reverted user=%s sessions_ended=%d keys_revoked=%d", user.id, ended, len(revoked))
    return CredentialsEnded(user.id, ended, len(revoked), tuple(removed))


# Service functions: federated sign-in ----------------------------------------

# The browser leaves for the provider with the flow (state, nonce, PKCE verifier, where to land)
# sealed into a short-lived cookie, so any instance can finish it, and comes back to the callback,
# which checks the state against the cookie (this also stops login CSRF), spends the provider's
# code and answers the front end with a one-time code in the query; the front end trades that code
# for the usual session at POST /auth/oauth/exchange. Tokens never travel in a URL.
#
# Linking: an identity seen for the first time with a verified address that an account already has
# is stored unlinked, and links only once someone proves the account (its password, or a link mailed
# to the address). A provider that does not vouch for the address never links and never creates.
# An account whose address was never verified may have been registered by someone who does not own it:
# only the mailed link links it, and it ends every way in set up before (see _end_unverified_access).


OAUTH_FLOW_COOKIE = "gatehouse_oauth"


OAUTH_FLOW_SECONDS = 600


OAUTH_CODE_SECONDS = 60


OAUTH_LINK_SECONDS = 600


# What the callback adds to redirect_to's query; a redirect_to that already holds one is refused, or a front
# end reading the first `code` would sign its user in with one an attacker planted there (login CSRF).
_ADDED_QUERY_NAMES = frozenset({"code", "linked"})


@dataclass(frozen=True, slots=True)
class FederatedStart:
    """Where to send the browser, and the sealed flow the callback needs back (as a cookie)."""

    url: str
    flow: str
    max_age: int


def _callback_url(gatehouse: Gatehouse, provider: str) -> str:
    return f"{gatehouse.settings.public_url}/auth/oauth/{provider}/callback"


def allowed_redirect(settings: Settings, redirect_to: str | None) -> str:
    """`redirect_to` if OAUTH_REDIRECT_ALLOWLIST allows it (an exact URL, or any path on a listed origin);
    without one, the first entry. Nothing else: no open redirect."""
    allow = settings.oauth_redirect_allowlist
    if not allow:
        raise RedirectNotAllowed("OAUTH_REDIRECT_ALLOWLIST is empty: federated sign-in has nowhere to land.")
    if not redirect_to:
        return allow[0]
    parts = urlsplit(redirect_to)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.fragment
        or any(ch in redirect_to for ch in "\\\r\n\t ")
    ):
        raise RedirectNotAllowed()
    if _ADDED_QUERY_NAMES.intersection(name for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
        raise RedirectNotAllowed("redirect_to must not hold `code` or `linked`: the callback adds them.")
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    for entry in allow:
        listed = urlsplit(entry)
        if redirect_to == entry:
            return redirect_to
        if listed.path in ("", "/") and not listed.query and origin == f"{listed.scheme}://{listed.netloc}".lower():
            return redirect_to
    raise RedirectNotAllowed()


def _with_param(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode({name: value})}"


async def start_federated_login(
    gatehouse: Gatehouse,
    *,
    provider: str,
    redirect_to: str | None = None,
    client: Client = CLI,
    link_to: uuid.UUID | None = None,
) -> FederatedStart:
    """Begin a sign-in at `provider` (with `link_to`, a link of it to that account): its authorization URL,
    and the sealed flow for the callback."""
    await _check_auth_ip(gatehouse, client)
    found = gatehouse.federation.provider(provider)
    target = allowed_redirect(gatehouse.settings, redirect_to)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    url = await gatehouse.federation.authorization_url(
        found, redirect_uri=_callback_url(gatehouse, provider), state=state, nonce=nonce, verifier=verifier
    )
    flow = {
        "p": provider,
        "s": state,
        "n": nonce,
        "v": verifier,
        "r": target,
        "x": int(time.time()) + OAUTH_FLOW_SECONDS,
    }
    if link_to is not None:
        flow["u"] = str(link_to)  # sealed: only this service wrote it, so the callback may act on this account
    return FederatedStart(url, gatehouse.sealer.seal(orjson.dumps(flow), context="oauth-flow"), OAUTH_FLOW_SECONDS)


async def _open_flow(gatehouse: Gatehouse, sealed: str | None, *, provider: str, state: str) -> dict[str, Any]:
    """The flow this browser started, if the state matches and it is unexpired and unspent (on every instance)."""
    try:
        flow = orjson.loads(gatehouse.sealer.unseal(sealed or "", context="oauth-flow", what="oauth flow"))
    except (ConfigError, ValueError, orjson.JSONDecodeError):
        raise OauthStateMismatch() from None
    if (
        not isinstance(flow, dict)
        or flow.get("p") != provider
        or flow.get("x", 0) < time.time()
        or not hmac.compare_digest(str(flow.get("s", "")).encode(), state.encode())
    ):
        raise OauthStateMismatch()
    if not await gatehouse.cache.claim(Keys.oauth_state(hash_secret(state)), OAUTH_FLOW_SECONDS):
        raise OauthStateMismatch()  # this flow was already finished once
    return flow


async def _attach_identity(
    gatehouse: Gatehouse, provider: str, seen: ProviderIdentity, user_id: uuid.UUID, client: Client
) -> Identity:
    """Link what the provider said to the account that started the flow: a new identity, one already its own,
    or one waiting for proof of another account (its owner chose this one); never one linked elsewhere."""
    now = utcnow()
    async with gatehouse.transaction(write=True) as db:
        user = await db.get(User, user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("This account cannot link a sign-in.")
        row = await db.scalar(
            sa.select(Identity).where(Identity.provider == provider, Identity.subject == seen.subject).with_for_update()
        )
        if row is not None and row.linked_at is not None:
            if row.user_id != user.id:
                raise IdentityInUse()
            return row
        try:
            email = normalize_email(seen.email) if seen.email and seen.email_verified else ""
        except ValueError:
            email = ""
        if row is None:
            row = Identity(provider=provider, subject=seen.subject, created_at=now, user_id=user.id)
            db.add(row)
        # A waiting row's link tokens name the other account: they stop matching it (see _identity_for).
        row.user_id, row.email, row.linked_at, row.last_used_at = user.id, email, now, now
        await db.flush()
        db.add(_audit("identity.linked", client, subject=user.id, provider=provider, identity=row.id, how="account"))
    log.info("identity linked user=%s provider=%s how=account", user.id, provider)
    return row


async def _place_identity(
    gatehouse: Gatehouse, provider: str, seen: ProviderIdentity, client: Client
) -> tuple[Identity, User]:
    """The identity row (and its user) for what the provider said: known, new with a new account,
    or new and unlinked because an account has the address (proof comes later)."""
    now = utcnow()
    async with gatehouse.transaction(write=True) as db:
        row = await db.scalar(
            sa.select(Identity).where(Identity.provider == provider, Identity.subject == seen.subject).with_for_update()
        )
        if row is not None and row.linked_at is not None:
            user = await db.get(User, row.user_id)
            if user is None or not user.is_active:
                raise InvalidCredentials("This account cannot sign in.")
            return row, user
        if not seen.email or not seen.email_verified:
            raise ProviderEmailUnverified()
        try:
            email = normalize_email(seen.email)
        except ValueError:
            raise ProviderEmailUnverified() from None
        user = await _user_by_email(db, email)
        linked_at = None
        if user is None:
            if not gatehouse.settings.signup_enabled:
                raise SignupDisabled()
            # No password ("" never verifies); the provider vouched for the address.
            user = User(id=uuid.uuid4(), email=email, password_hash="", full_name=seen.name, email_verified_at=now)
            db.add(user)
            await db.flush()
            db.add(_audit("user.register", client, subject=user.id, method="fed", provider=provider))
            linked_at = now
        if row is None:
            row = Identity(provider=provider, subject=seen.subject, created_at=now, user_id=user.id)
            db.add(row)
        elif linked_at is None:
            row.created_at = now  # a pending link seen again starts over: the purge counts from here
        row.user_id, row.email, row.linked_at = user.id, email, linked_at
        await db.flush()
        if linked_at is not None:
            db.add(_audit("identity.linked", client, subject=user.id, provider=provider, identity=row.id, how="signup"))
    return row, user


async def finish_federated_login(
    gatehouse: Gatehouse,
    *,
    provider: str,
    flow: str | None,
    state: str,
    code: str,
    error: str = "",
    client: Client = CLI,
) -> str:
    """The provider sent the browser back: check the flow, spend the code, check who signed in, and
    answer where to send the browser: the front end's URL with a one-time `code` for the exchange."""
    await _check_auth_ip(gatehouse, client)
    found = gatehouse.federation.provider(provider)
    started = await _open_flow(gatehouse, flow, provider=provider, state=state)
    if error or not code:
        raise ProviderRejected(f"The identity provider answered {_oauth_error(error or 'no_code')}.")
    seen = await gatehouse.federation.identity(
        found, code=code, redirect_uri=_callback_url(gatehouse, provider), verifier=started["v"], nonce=started["n"]
    )
    if "u" in started:
        account = uuid.UUID(started["u"])
        try:
            await _attach_identity(gatehouse, provider, seen, account, client)
        except sa.exc.IntegrityError:  # the same identity arrived twice at once: the first one won
            await _attach_identity(gatehouse, provider, seen, account, client)
        return _with_param(started["r"], "linked", provider)
    try:
        identity, user = await _place_identity(gatehouse, provider, seen, client)
    except sa.exc.IntegrityError:  # the same identity or address arrived twice at once: the first one won
        identity, user = await _place_identity(gatehouse, provider, seen, client)
    one_time = f"{identity.id.hex}.{secrets.token_urlsafe(32)}"
    await _issue_action_token(
        gatehouse,
        user=user,
        purpose="oauth_code",
        lifetime=timedelta(seconds=OAUTH_CODE_SECONDS),
        event="auth.oauth_callback",
        client=client,
        token=one_time,
    )
    return _with_param(started["r"], "code", one_time)


async def start_identity_link(
    gatehouse: Gatehouse, *, user_id: uuid.UUID, provider: str, redirect_to: str | None = None, client: Client = CLI
) -> FederatedStart:
    """A signed-in person links `provider` to their account (the caller proved the account just now): the
    browser goes to the provider, and the callback links whoever signs in there to this account."""
    user = await _load_user(gatehouse, user_id)
    if user.email_verified_at is None:
        # Whoever registered an address they do not own must not leave a link behind: the owner's recovery
        # (a reset, a mailed identity link) ends passwords, sessions and keys, but a link made here would outlive it.
        raise EmailNotVerified("Verify the account's address before linking a sign-in to it.")
    return await start_federated_login(
        gatehouse, provider=provider, redirect_to=redirect_to, client=client, link_to=user.id
    )


async def _identity_for(db: AsyncSession, token: str, spent: ActionToken) -> tuple[Identity, User]:
    """The identity a spent one-time code or link names (its id leads the token) and its user, both current."""
    try:
        identity_id = uuid.UUID(hex=token.split(".", 1)[0])
    except ValueError:
        raise InvalidActionToken() from None
    identity = await db.get(Identity, identity_id)
    user = await db.get(User, spent.user_id)
    if (
        identity is None
        or user is None
        or identity.user_id != user.id
        or not user.is_active
        or user.email != spent.email
    ):
        raise InvalidActionToken()
    return identity, user


async def _federated_session(
    gatehouse: Gatehouse, user: User, identity: Identity, client: Client
) -> TokenPair | MfaChallenge:
    """A session for a federated sign-in, through the same second-factor rule as a password's; amr `fed`."""
    if gatehouse.settings.require_verified_email and user.email_verified_at is None:
        raise EmailNotVerified()
    gatehouse.audit_later(_audit("auth.federated_login", client, subject=user.id, provider=identity.provider))
    async with gatehouse.transaction() as db:
        methods = await _mfa_methods(db, user.id)
    if methods:
        return await _mfa_challenge(gatehouse, user, methods, rehash=None, client=client, first="fed")
    pair = await _start_session(gatehouse, user, client, rehash=None, amr=("fed",))
    gatehouse.metrics.logins.labels("success").inc()
    log.info("login user=%s federated=%s", user.id, identity.provider)
    return pair


async def exchange_federated_code(gatehouse: Gatehouse, *, code: str, client: Client = CLI) -> TokenPair | MfaChallenge:
    """Trade the callback's one-time code for a session (or the MFA challenge); LinkRequired when the
    identity waits for proof of the account it would join."""
    await _check_auth_ip(gatehouse, client)
    async with gatehouse.transaction(write=True) as db:
        spent = await _consume_action_token(db, token=code, purpose="oauth_code")
        identity, user = await _identity_for(db, code, spent)
        link_token = None
        if identity.linked_at is None:
            link_token = await _issue_action_token(
                gatehouse,
                user=user,
                purpose="oauth_link",
                lifetime=timedelta(seconds=OAUTH_LINK_SECONDS),
                event="identity.link",
                client=client,
                token=f"{identity.id.hex}.{secrets.token_urlsafe(32)}",
                db=db,
            )
        else:
            identity.last_used_at = utcnow()
    if link_token is not None:
        raise LinkRequired(link_token, identity.provider, OAUTH_LINK_SECONDS)
    return await _federated_session(gatehouse, user, identity, client)


async def _end_unverified_access(db: AsyncSession, user: User, *, keep: uuid.UUID, client: Client) -> list[ApiKey]:
    """Inside the caller's transaction, for an account whose address was never verified and whose mailbox was
    just proved: whoever registered the address may not own it, so the password, API keys, second factors,
    other identities and outstanding links all end (sessions after the commit). The revoked keys."""
    had_password = bool(user.password_hash)
    user.password_hash = ""  # "" never verifies
    revoked = await _revoke_user_keys(db, user.id)
    factors = await _remove_second_factors(db, user.id)
    others = await db.scalars(
        sa.delete(Identity).where(Identity.user_id == user.id, Identity.id != keep).returning(Identity.id)
    )
    identities = len(list(others))
    await _spend_user_tokens(db, user.id)
    db.add(
        _audit(
            "user.unverified_access_ended",
            client,
            subject=user.id,
            password_removed=had_password,
            keys_revoked=len(revoked),
            factors_removed=factors,
            identities_removed=identities,
        )
    )
    return revoked


async def _link(gatehouse: Gatehouse, *, token: str, purpose: str, how: str, client: Client) -> tuple[Identity, User]:
    """Spend a link token or mailed link: the waiting identity joins its account; audited. An account whose
    address was never verified is verified now, and loses every way in that was set up before."""
    revoked: list[ApiKey] = []
    async with gatehouse.transaction(write=True) as db:
        spent = await _consume_action_token(db, token=token, purpose=purpose)
        # Locked before it is checked: a concurrent change of the account lands wholly before or after this.
        await db.get(User, spent.user_id, with_for_update=True)
        identity, user = await _identity_for(db, token, spent)
        if identity.linked_at is not None:
            raise InvalidActionToken()
        now = utcnow()
        unverified = user.email_verified_at is None
        if unverified:
            revoked = await _end_unverified_access(db, user, keep=identity.id, client=client)
            user.email_verified_at = now
            _bump(user)
        identity.linked_at = identity.last_used_at = now
        db.add(
            _audit(
                "identity.linked", client, subject=user.id, provider=identity.provider, identity=identity.id, how=how
            )
        )
    if unverified:
        await _publish_user(gatehouse, user)
        await _publish_revoked_keys(gatehouse, revoked)
        await _end_sessions(gatehouse, user_id=user.id, reason="address_proved")
        # A session that was live until the line above could still mint a key after the first sweep.
        async with gatehouse.transaction(write=True) as db:
            late = await _revoke_user_keys(db, user.id)
        await _publish_revoked_keys(gatehouse, late)
    log.info("identity linked user=%s provider=%s how=%s", user.id, identity.provider, how)
    return identity, user


async def link_with_password(
    gatehouse: Gatehouse, *, link_token: str, password: str, client: Client = CLI
) -> TokenPair | MfaChallenge:
    """Prove the existing account with its password: the identity is linked and the sign-in goes on
    (with the account's second factor, if it has one)."""
    await _check_auth_ip(gatehouse, client)
    waiting = await _peek_action_token(gatehouse, token=link_token, purpose="oauth_link")
    async with gatehouse.transaction() as db:
        user = await db.get(User, waiting.user_id)
    if user is None:
        raise InvalidActionToken()
    if user.email_verified_at is None:
        # The password proves only whoever set it, perhaps someone who registered an address they do not own;
        # the link token is kept for the mailed link, which proves the mailbox.
        gatehouse.audit_later(
            _audit("identity.link", client, subject=user.id, outcome="failure", reason="address_unverified")
        )
        raise MailLinkRequired()
    await _check_password(
        gatehouse,
        account=user.email,
        user=user,
        password=password,
        code=None,
        client=client,
        event="identity.link",
        wrong=WrongPassword,
    )
    identity, user = await _link(gatehouse, token=link_token, purpose="oauth_link", how="password", client=client)
    return await _federated_session(gatehouse, user, identity, client)


async def request_link_mail(gatehouse: Gatehouse, *, link_token: str, client: Client = CLI) -> None:
    """Mail the account's address a link that links the waiting identity when its owner presses it.
    The link token is spent; the mailed link is another secret, seen only in that mailbox."""
    await _check_auth_ip(gatehouse, client)
    async with gatehouse.transaction(write=True) as db:
        spent = await _consume_action_token(db, token=link_token, purpose="oauth_link")
        identity, user = await _identity_for(db, link_token, spent)
        mailed = await _issue_action_token(
            gatehouse,
            user=user,
            purpose="oauth_link_mail",
            lifetime=timedelta(minutes=gatehouse.settings.password_reset_minutes),
            event="identity.link_mail",
            client=client,
            token=f"{identity.id.hex}.{secrets.token_urlsafe(32)}",
            db=db,
        )
    link = gatehouse.settings.identity_link_url.format(token=mailed)
    gatehouse.spawn(
        send_mail(
            gatehouse,
            kind="identity_link",
            email=user.email,
            client=client,
            user_id=user.id,
            link=link,
            provider=identity.provider,
        )
    )


async def confirm_identity_link(gatehouse: Gatehouse, *, token: str, client: Client = CLI) -> Identity:
    """The owner pressed the mailed link: the identity is linked (they sign in with it next time)."""
    identity, _ = await _link(gatehouse, token=token, purpose="oauth_link_mail", how="mail", client=client)
    return identity


async def list_identities(gatehouse: Gatehouse, *, user_id: uuid.UUID) -> list[Identity]:
    """A user's linked identities, oldest first."""
    async with gatehouse.transaction() as db:
        return list(
            await db.scalars(
                sa.select(Identity)
                .where(Identity.user_id == user_id, Identity.linked_at.is_not(None))
                .order_by(Identity.created_at, Identity.id)
            )
        )


async def unlink_identity(
    gatehouse: Gatehouse, *, user_id: uuid.UUID, identity_id: uuid.UUID, client: Client = CLI
) -> None:
    """Remove a linked identity; never the account's last way to sign in."""
    async with gatehouse.transaction(write=True) as db:
        user = await _lock_user(db, user_id)  # two removals at once cannot each leave the other as the last
        identity = await db.scalar(
            sa.select(Identity).where(
                Identity.id == identity_id, Identity.user_id == user.id, Identity.linked_at.is_not(None)
            )
        )
        if identity is None:
            raise IdentityNotFound()
        if not await _other_ways_in(db, user, identity=identity.id):
            raise LastSignInMethod()
        await db.delete(identity)
        db.add(_audit("identity.unlinked", client, subject=user.id, provider=identity.provider, identity=identity.id))
    log.info("identity unlinked user=%s provider=%s", user.id, identity.provider)


# Service functions: audit, configuration and health --------------------------


def _utc_bound(at: datetime | None, name: str) -> datetime | None:
    """A time filter in UTC (no offset means UTC); InvalidInput if UTC lies off the calendar."""
    if at is None:
        return None
    try:
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is 14 hours before year 1 in UTC
        raise InvalidInput(f"{name}: {at.isoformat()} is outside the calendar once converted to UTC") from None


async def list_audit(
    gatehouse: Gatehouse,
    *,
    user_id: uuid.UUID | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[AuditEvent], str | None]:
    """A page of audit events, newest first (this process's queue is written first)."""
    since, until = _utc_bound(since, "since"), _utc_bound(until, "until")
    await gatehouse.flush_audit()
    stmt = sa.select(AuditEvent)
    if event:
        stmt = stmt.where(AuditEvent.event == event)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= sa.literal(since, UTCDateTime()))
    if until is not None:
        stmt = stmt.where(AuditEvent.at < sa.literal(until, UTCDateTime()))
    if user_id is None:
        async with gatehouse.transaction() as db:
            return await _keyset_page(
                db, stmt, AuditEvent.at, AuditEvent.id, cursor=cursor, limit=limit, newest_first=True
            )
    # Subject or actor: two walks, each down its own (user, at, id) index, merged; an OR would
    # collect and sort every event the user ever had.
    pages = []
    async with gatehouse.transaction() as db:
        for column in (AuditEvent.subject_id, AuditEvent.actor_id):
            pages.append(
                await _keyset_page(
                    db,
                    stmt.where(column == user_id),
                    AuditEvent.at,
                    AuditEvent.id,
                    cursor=cursor,
                    limit=limit,
                    newest_first=True,
                )
            )
    merged = sorted(
        {row.id: row for rows, _ in pages for row in rows}.values(), key=lambda r: (r.at, r.id), reverse=True
    )
    more = len(merged) > limit or any(next_cursor for _, next_cursor in pages)
    merged = merged[:limit]
    return merged, _encode_cursor(merged[-1].at, merged[-1].id) if more and merged else None


async def iter_audit(
    gatehouse: Gatehouse, *, until: datetime | None = None, batch: int = 200
) -> AsyncIterator[AuditEvent]:
    """Every audit event before `until`, oldest first, read a page at a time (for archiving)."""
    until = _utc_bound(until, "until")
    await gatehouse.flush_audit()
    stmt = sa.select(AuditEvent)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < sa.literal(until, UTCDateTime()))
    cursor: str | None = None
    while True:
        async with gatehouse.transaction() as db:
            rows, cursor = await _keyset_page(
                db, stmt, AuditEvent.at, AuditEvent.id, cursor=cursor, limit=batch, newest_first=False
            )
        for row in rows:
            yield row
        if cursor is None:
            return


# Retention: what each table keeps. A session row goes SESSION_RETENTION_DAYS after it expired or
# was revoked: its refresh tokens already fail (expired or revoked), and after the purge they fail
# the same way (no such session), so a replayed token is refused before and after. A one-time
# token goes that long after it expired, or after it was spent once it has also expired — a spent
# passkey challenge must outlive the challenge, or the challenge could be replayed.
_PURGE_LOCK_ID = 0x6761746570  # pg_try_advisory_lock key: "gatep"


def _purge_rules(settings: Settings, now: datetime) -> list[tuple[str, Any, Any]]:
    # One condition per index walk: an OR would make each batch gather every candidate first.
    cutoff = sa.literal(now - timedelta(days=settings.session_retention_days), UTCDateTime())
    rules: list[tuple[str, Any, Any]] = [
        ("sessions", LoginSession, LoginSession.expires_at < cutoff),
        ("sessions", LoginSession, LoginSession.revoked_at < cutoff),
        ("action_tokens", ActionToken, ActionToken.expires_at < cutoff),
        # an identity whose owner never proved the account (its link tokens died long ago)
        ("identities", Identity, sa.and_(Identity.linked_at.is_(None), Identity.created_at < cutoff)),
        (
            "action_tokens",
            ActionToken,
            sa.and_(ActionToken.expires_at < sa.literal(now, UTCDateTime()), ActionToken.used_at < cutoff),
        ),
    ]
    if settings.audit_retention_days:
        kept = sa.literal(now - timedelta(days=settings.audit_retention_days), UTCDateTime())
        rules.append(("audit_events", AuditEvent, AuditEvent.at < kept))
    return rules


@asynccontextmanager
async def _purge_lock(gatehouse: Gatehouse) -> AsyncIterator[bool]:
    # PostgreSQL: one purging instance, by a session-level advisory lock on a connection that holds
    # no transaction open. SQLite: every batch takes the write lock, which serialises purges anyway.
    if gatehouse.engine.dialect.name != "postgresql":
        yield True
        return
    async with gatehouse.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        mine = bool(await conn.scalar(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _PURGE_LOCK_ID}))
        try:
            yield mine
        finally:
            if mine:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PURGE_LOCK_ID})


async def _purge_table(gatehouse: Gatehouse, table: str, model: Any, condition: Any) -> int:
    # Batches by primary key in short transactions with a pause between: requests writing the
    # same tables wait at most one batch.
    size = gatehouse.settings.purge_batch_size
    removed = 0
    while True:
        async with gatehouse.transaction(write=True) as db:
            batch = sa.select(model.id).where(condition).limit(size)
            result = await db.execute(
                sa.delete(model).where(model.id.in_(batch)), execution_options={"synchronize_session": False}
            )
        done = result.rowcount or 0  # type: ignore[attr-defined]
        removed += done
        gatehouse.metrics.purged.labels(table).inc(done)
        if done < size:
            return removed
        await asyncio.sleep(gatehouse.settings.purge_pause_seconds)


async def purge(gatehouse: Gatehouse, *, dry_run: bool = False) -> dict[str, int | None]:
    """Delete what retention no longer keeps, in small batches; the rows removed per table (with
    `dry_run`, the rows that would be). None for a table: another instance is purging right now."""
    now = utcnow()
    rules = _purge_rules(gatehouse.settings, now)
    counts: dict[str, int | None] = {"sessions": 0, "action_tokens": 0, "identities": 0, "audit_events": 0}
    if dry_run:
        async with gatehouse.transaction() as db:
            for table in counts:
                conditions = [condition for name, _, condition in rules if name == table]
                model = next((model for name, model, _ in rules if name == table), None)
                if model is not None:
                    stmt = sa.select(sa.func.count()).select_from(model).where(sa.or_(*conditions))
                    counts[table] = await db.scalar(stmt) or 0
        return counts
    async with _purge_lock(gatehouse) as mine:
        if not mine:
            return dict.fromkeys(counts)
        for table, model, condition in rules:
            counts[table] = (counts[table] or 0) + await _purge_table(gatehouse, table, model, condition)
    return counts


async def purge_periodically(gatehouse: Gatehouse) -> None:
    """Purge every PURGE_INTERVAL_SECONDS, at a random point of each interval (instances that started
    together spread out); a failed round is logged and the next one tries again."""
    interval = gatehouse.settings.purge_interval_seconds
    while True:
        await asyncio.sleep(interval * (0.5 + secrets.randbelow(1000) / 2000))
        try:
            counts = await purge(gatehouse)
        except Exception as exc:
            log.warning("retention purge failed: %s", exc)
            continue
        if any(counts.values()):
            log.info("retention purge removed %s", counts)


def describe_settings(settings: Settings) -> dict[str, str]:
    """The effective settings with every secret masked, for printing."""
    shown = {}
    for name, value in settings.model_dump().items():
        if name == "secret_key" and value is None and settings.environment == "development":
            value = "generated (development)"
        elif isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        elif isinstance(value, str):
            value = hide_password(value)  # any URL setting (a webhook's too), as print(Settings()) does
        elif isinstance(value, list):
            value = ",".join(value)
        elif name == "oidc_providers":  # names and issuers; the client secrets stay masked
            value = ",".join(f"{provider}={entry['issuer']}" for provider, entry in value.items())
        elif isinstance(value, dict):
            value = str(Rate(**value))
        shown[name.upper()] = "" if value is None else str(value)
    return shown


async def check_health(gatehouse: Gatehouse) -> tuple[bool, dict[str, Any]]:
    """Readiness: the database must answer; a degraded cache is reported but not fatal."""
    checks: dict[str, Any] = {}
    ready = True
    try:
        async with asyncio.timeout(gatehouse.settings.db_pool_timeout + 1):
            async with gatehouse.transaction() as db:
                await db.execute(sa.text("SELECT 1"))
        checks["database"] = {"status": "ok"}
    except Exception as exc:
        ready = False
        checks["database"] = {"status": "unavailable", "detail": type(exc).__name__}
    checks["cache"] = await gatehouse.cache.health()
    return ready, checks


async def check_config(gatehouse: Gatehouse) -> list[str]:
    """What keeps this deployment from working: unreachable database or Redis, pending
    migrations that will not be applied, broken rules. One line each; empty when all is well."""
    problems = [*gatehouse.settings.problems(), *gatehouse.templates.problems]
    ready, checks = await check_health(gatehouse)
    if not ready:
        problems.append(f"DATABASE_URL: the database does not answer ({checks['database'].get('detail', '')})")
    else:
        status = await migration_status(gatehouse.engine)
        if status.pending and not gatehouse.settings.auto_migrate:
            problems.append(f"{len(status.pending)} migration(s) pending and AUTO_MIGRATE is off: run `cli.py migrate`")
        problems += [f"schema drift: {diff}" for diff in status.drift]
        if not status.pending and (kids := await sealed_keys_not_opened(gatehouse)):
            problems.append(sealed_keys_problem(kids))
        if (
            not status.pending
            and gatehouse.settings.require_mfa_for_admins
            and (keys := await unproven_admin_keys(gatehouse))
        ):
            problems.append(
                f"REQUIRE_MFA_FOR_ADMINS: API key(s) {', '.join(API_KEY_PREFIX + k.public_id for k in keys)} hold the "
                "admin scope but no second factor stood behind their making, so it is refused: make new ones from a "
                "session signed in with one (or `cli.py create-key`) and revoke these"
            )
    if gatehouse.settings.redis_url and checks["cache"]["status"] != "ok":
        problems.append(f"REDIS_URL: Redis does not answer ({checks['cache'].get('detail', 'not subscribed')})")
    return problems


# Schemas #####################################################################

_NO_NUL = r"^[^\x00]*$"  # in the schema too, so clients and fuzzers know
CleanStr = Annotated[str, Field(pattern=_NO_NUL), AfterValidator(_no_bad_text)]
Email = Annotated[
    str, Field(max_length=320, pattern=_NO_NUL, json_schema_extra={"format": "email"}), AfterValidator(normalize_email)
]
Password = Annotated[
    str, Field(min_length=_PASSWORD_MIN, max_length=_PASSWORD_MAX, pattern=_NO_NUL), AfterValidator(check_password)
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")  # role/is_active smuggled into a body is an error, not ignored


class UserRegister(_Input):
    email: Email
    password: Password
    full_name: Annotated[CleanStr, Field(max_length=200)] = ""


ProvidedPassword = Annotated[CleanStr, Field(max_length=_PASSWORD_MAX * 4)]  # checked, never policed
LoginCode = Annotated[
    str, Field(pattern=r"^\s*\d{8}\s*$", description="The one-time code mailed after login_code_required.")
]


TotpCode = Annotated[str, Field(pattern=r"^\s*\d{6}\s*$", description="A 6-digit code from the authenticator app.")]
RecoveryCodeText = Annotated[
    str,
    Field(min_length=1, max_length=40, pattern=_NO_NUL, description="One of the recovery codes, e.g. abcd-efgh-ijkl."),
]
WebauthnCredential = Annotated[
    PasskeyAnswer,
    Field(
        description="The PublicKeyCredential from the browser as JSON "
        "(id, rawId, type, response with base64url fields)."
    ),
]


class LoginIn(_Input):
    email: Annotated[CleanStr, Field(max_length=320)]
    password: ProvidedPassword
    code: LoginCode | None = None


class ReauthIn(_Input):
    password: ProvidedPassword | None = Field(None, description="The password; or `otp`, or `passkey`.")
    code: LoginCode | None = None
    otp: TotpCode | None = None
    passkey: WebauthnCredential | None = Field(None, description="An answer to POST /mfa/passkeys/challenge.")


class ProofIn(_Input):
    password: ProvidedPassword | None = Field(
        None,
        description="Your current password, unless you signed in "
        "within REAUTH_MINUTES (or send `otp` or `passkey` instead).",
    )
    otp: TotpCode | None = None
    passkey: WebauthnCredential | None = Field(None, description="An answer to POST /mfa/passkeys/challenge.")


class FactorProofIn(ProofIn):
    password: ProvidedPassword | None = Field(
        None, description="Your current password, when the account has no second factor yet."
    )
    recovery_code: RecoveryCodeText | None = None
    passkey: WebauthnCredential | None = Field(None, description="An answer to POST /mfa/passkeys/challenge.")
    email_code: LoginCode | None = Field(
        None, description="From POST /auth/email-code, when the account has neither a password nor a second factor."
    )


class MfaIn(_Input):
    mfa_token: Annotated[str, Field(min_length=1, max_length=100)]
    code: TotpCode | None = None
    recovery_code: RecoveryCodeText | None = None
    webauthn: WebauthnCredential | None = Field(
        None, description="An answer to POST /auth/webauthn/options called with this mfa_token."
    )


class MfaChallengeOut(BaseModel):
    mfa_required: Literal[True] = True
    mfa_token: str = Field(description="Single use, for POST /auth/mfa within `expires_in` seconds.")
    methods: list[Literal["totp", "webauthn", "recovery_code"]]
    expires_in: int


class TotpEnrollOut(BaseModel):
    secret: str = Field(description="Base32; for authenticator apps that cannot scan the URI.")
    otpauth_uri: str = Field(description="Show as a QR code.")


class TotpConfirmIn(_Input):
    code: TotpCode


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Each works once. Shown this once; only hashes are kept.")


class WebauthnOptionsIn(_Input):
    mfa_token: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="For a passkey as second factor; without it, options for a passkey-only sign-in."
    )


class PasskeyLoginIn(_Input):
    credential: WebauthnCredential


class PasskeyRegisterIn(_Input):
    credential: WebauthnCredential
    name: Annotated[CleanStr, Field(max_length=100)] = "passkey"


class PasskeyPublic(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: Passkey) -> "PasskeyPublic":
        return cls(id=row.id, name=row.name, created_at=row.created_at, last_used_at=row.last_used_at)


class SessionPublic(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime | None = Field(description="Written at most once per SESSION_TOUCH_SECONDS.")
    ip: str = Field(description="The client address at sign-in.")
    last_ip: str = Field(description="The client address at the last recorded use.")
    device: str = Field(description='A short label from the User-Agent, e.g. "Firefox on Linux".')
    amr: list[str] = Field(description="How it signed in: pwd, otp, recovery, webauthn.")
    aal: int
    current: bool

    @classmethod
    def of(cls, row: LoginSession, current: uuid.UUID | None) -> "SessionPublic":
        return cls(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            ip=row.ip,
            last_ip=row.last_ip or row.ip,
            device=device_label(row.user_agent),
            amr=row.amr.split(),
            aal=row.aal,
            current=row.id == current,
        )


class RefreshIn(_Input):
    refresh_token: Annotated[str, Field(max_length=200)]


class UserUpdateMe(ProofIn):
    email: Email | None = Field(None, description="Becomes the address once the link mailed there is used.")
    full_name: Annotated[CleanStr, Field(max_length=200)] | None = None


class PasswordChange(_Input):
    current_password: ProvidedPassword
    new_password: Password
    revoke_api_keys: Annotated[bool, Strict()] = False


class CredentialsEndedOut(BaseModel):
    sessions_ended: int
    api_keys_revoked: int
    factors_removed: list[str] = Field(
        [], description="Second factors removed: those added within FACTOR_UNDO_DAYS that were not kept."
    )

    @classmethod
    def of(cls, ended: CredentialsEnded) -> "CredentialsEndedOut":
        return cls(
            sessions_ended=ended.sessions_ended,
            api_keys_revoked=ended.api_keys_revoked,
            factors_removed=list(ended.factors_removed),
        )


class FactorPublic(BaseModel):
    id: str = Field(description='"totp", or the passkey\'s id: what `keep_factors` names.')
    kind: Literal["totp", "passkey"]
    name: str
    added_at: datetime
    recent: bool = Field(description="Added within FACTOR_UNDO_DAYS: a reset removes it unless kept.")


class UserMeUpdated(UserPublic):
    pending_email: str | None = Field(
        None, description="Waiting for the link mailed to it; `email` is still the account's address until then."
    )


class UserCreate(_Input):
    email: Email
    password: Password
    full_name: Annotated[CleanStr, Field(max_length=200)] = ""
    role: Role = "user"


class UserUpdate(_Input):
    email: Email | None = None
    full_name: Annotated[CleanStr, Field(max_length=200)] | None = None
    role: Role | None = None
    is_active: Annotated[bool, Strict()] | None = None  # "yes", 1 or "on" are not booleans here


class UserPage(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None
    match: EmailMatch | None = None  # how `email` was matched (None: no email filter)


class ResetRequest(_Input):
    email: Annotated[CleanStr, Field(max_length=320)]


_FACTOR_REF = r"^(totp|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
FactorRef = Annotated[str, Field(pattern=_FACTOR_REF)]


class ResetConfirm(_Input):
    token: Annotated[str, Field(min_length=1, max_length=100)]
    new_password: Password
    keep_factors: list[FactorRef] = Field(
        [],
        max_length=50,
        description="Recently added second factors (see POST /auth/password-reset/factors) to keep; "
        "the others added within FACTOR_UNDO_DAYS are removed.",
    )


class TokenIn(_Input):
    token: Annotated[str, Field(min_length=1, max_length=100)]


def _iso_time_only(value: Any) -> Any:
    # pydantic also reads bare numbers as Unix times; the schema promises ISO 8601, so hold to it.
    if isinstance(value, (int, float)) or (
        isinstance(value, str) and re.fullmatch(r"\s*[-+]?[\d.]+(?:[eE][-+]?\d+)?\s*", value)
    ):
        raise ValueError("an ISO 8601 date-time is expected, e.g. 2026-01-31T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time_only)]


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class AuditPublic(BaseModel):
    id: uuid.UUID
    at: datetime
    event: str
    outcome: str
    actor_id: uuid.UUID | None
    key_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    ip: str
    user_agent: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> "AuditPublic":
        return cls(
            id=row.id,
            at=row.at,
            event=row.event,
            outcome=row.outcome,
            actor_id=row.actor_id,
            key_id=row.key_id,
            subject_id=row.subject_id,
            ip=row.ip,
            user_agent=row.user_agent,
            detail=json.loads(row.detail or "{}"),
        )


class AuditPage(BaseModel):
    items: list[AuditPublic]
    next_cursor: str | None


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ApiKeyCreate(ProofIn):
    name: Annotated[CleanStr, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES))] = ["users:read"]
    expires_in_days: Annotated[int, Strict(), Field(ge=1, le=3650)] | None = None  # `true` is not 1 day
    user_id: uuid.UUID | None = Field(None, description="Another user's id (admin scope only).")


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    prefix: str
    name: str
    scopes: list[str]
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    parent_id: uuid.UUID | None = Field(None, description="The key that made this one; revoked with it.")

    @classmethod
    def of(cls, row: ApiKey) -> "ApiKeyPublic":
        return cls(
            id=row.id,
            prefix=f"{API_KEY_PREFIX}{row.public_id}",
            name=row.name,
            scopes=row.scopes.split(),
            user_id=row.user_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            parent_id=row.parent_id,
        )


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself. Shown this once; only a hash is kept.")


class IdentityPublic(BaseModel):
    """A linked sign-in at another provider."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    email: str = Field(description="The address the provider gave when it was last seen.")
    created_at: datetime
    linked_at: datetime | None
    last_used_at: datetime | None


OneTimeToken = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]


class OauthExchangeIn(_Input):
    code: OneTimeToken = Field(description="The `code` the callback put in the redirect_to URL (single use, 60 s).")


class LinkPasswordIn(_Input):
    link_token: OneTimeToken
    password: ProvidedPassword


class LinkMailIn(_Input):
    link_token: OneTimeToken


class IdentityLinkIn(FactorProofIn):
    provider: str = Field(
        pattern=_PROVIDER_NAME_RE.pattern, description="The provider to link (GET /auth/oauth/providers)."
    )
    redirect_to: str | None = Field(
        None,
        max_length=2000,
        description="Where the browser lands afterwards (from OAUTH_REDIRECT_ALLOWLIST), with `linked=<provider>`.",
    )


class IdentityLinkStart(BaseModel):
    authorization_url: str = Field(description="Send the browser here; the provider sends it back to the callback.")


class ProvidersOut(BaseModel):
    providers: list[str]


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str
    details: list[dict[str, Any]] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: str
    checks: dict[str, Any] = {}


def _tokens_out(pair: TokenPair) -> TokenOut:
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


def _login_out(result: TokenPair | MfaChallenge) -> TokenOut | MfaChallengeOut:
    if isinstance(result, MfaChallenge):
        return MfaChallengeOut(
            mfa_token=result.mfa_token,
            methods=result.methods,  # type: ignore[arg-type]
            expires_in=result.expires_in,
        )
    return _tokens_out(result)


# Dependencies ################################################################


async def get_gatehouse(request: Request) -> Gatehouse:
    # Dependencies are async on purpose: FastAPI runs a plain `def` one in a thread pool.
    return request.app.state.gatehouse


GatehouseDep = Annotated[Gatehouse, Depends(get_gatehouse)]


def client_ip(peer: str, forwarded_for: str, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The socket peer, or the right-most untrusted X-Forwarded-For hop when the peer is a trusted proxy.
    Worked out once per request by the edge (`request.state.client_ip`)."""

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


def request_ip(request: Request, settings: Settings) -> str:
    """The client address the edge worked out (a host app's own routes, outside it, work it out here)."""
    known = getattr(request.state, "client_ip", None)
    if known is not None:
        return known
    peer = request.client.host if request.client else "unknown"
    return client_ip(peer, request.headers.get("x-forwarded-for", ""), settings.trusted_networks)


async def get_client(request: Request) -> Client:
    return Client(ip=request.state.client_ip, user_agent=request.headers.get("user-agent", "")[:300])


ClientDep = Annotated[Client, Depends(get_client)]


def _scope_error(principal: Principal, missing: list[str], message: str | None = None) -> ServiceError:
    """The refusal for a caller lacking `missing`: mfa_enrollment_required when only withheld scopes lack."""
    if set(missing) <= principal.withheld:
        return MfaEnrollmentRequired()
    return InsufficientScope(message or f"This needs the scope(s): {', '.join(missing)}.")


def credential_from(headers: dict[bytes, bytes]) -> str:
    """The credential a request carries (its raw headers as a dict: the last of a repeated name wins):
    `Authorization: Bearer <access token or API key>`, else `X-API-Key`; "" when there is none. The one
    reading of these headers, for the dependency and the edge alike."""
    scheme, _, credential = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not credential:
        credential = headers.get(b"x-api-key", b"").decode("latin-1")
    return credential.strip()


class Authenticated(OAuth2PasswordBearer):
    """The caller, from `Authorization: Bearer <access token or API key>` or `X-API-Key`,
    holding every scope in `scopes` (403 insufficient_scope) and, with `session=True`,
    signed in with a session rather than a key.

    With `mfa=True` the session must have signed in with a second factor (aal2; 403 mfa_required).
    With REQUIRE_MFA_FOR_ADMINS an admin without one holds no `admin` scope (see resolve_credential):
    admin routes answer 403 mfa_enrollment_required, and every other route treats them as a user.

    One dependency does it all: each extra FastAPI dependency costs the hot path more than
    the token check itself. As an OAuth2 scheme it keeps /docs' Authorize button.
    """

    def __init__(self, *scopes: str, session: bool = False, mfa: bool = False):
        super().__init__(tokenUrl="auth/login", auto_error=False, scheme_name="OAuth2PasswordBearer")
        self.scopes, self.session, self.mfa = scopes, session, mfa

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return await self.guard(request.scope)

    async def guard(self, scope: dict[str, Any], gatehouse: Gatehouse | None = None) -> Principal:
        """The dependency's work on the request's ASGI scope: for FastAPI's solving, and for the
        host routes `mount_gatehouse` guards before they run (`_GuardedHostRoute`)."""
        if gatehouse is None:
            gatehouse = scope["app"].state.gatehouse
        principal = await self.admit(
            gatehouse, credential_from(dict(scope["headers"])), lambda: request_ip(Request(scope), gatehouse.settings)
        )
        scope.setdefault("state", {})["principal"] = principal  # request.state.principal, for the access line
        return principal

    async def admit(self, gatehouse: Gatehouse, credential: str, ip: Callable[[], str]) -> Principal:
        """The caller behind a credential (see `credential_from`), if this guard lets them through: the whole
        check, for the dependency and for the edge's hot reads alike. `ip` is asked only when a session is touched."""
        if not credential:
            raise NotAuthenticated()
        principal = remembered_principal(gatehouse, credential) or await resolve_credential(gatehouse, credential)
        if principal.session_id is not None:
            if session_touch_due(gatehouse, principal.session_id):
                touch_session(gatehouse, principal.session_id, ip=ip())
        elif principal.key_id is not None:
            _touch_api_key(gatehouse, principal.key_id)
        if self.scopes and (missing := [scope for scope in self.scopes if scope not in principal.scopes]):
            raise _scope_error(principal, missing)
        if self.session and principal.session_id is None:
            raise AccessTokenRequired()
        if self.mfa and (principal.aal < 2 or principal.session_id is None):  # a key's aal is its maker's
            raise MfaRequired()
        return principal


CurrentUser = Annotated[Principal, Depends(Authenticated())]


def require_scope(*scopes: str) -> Any:
    """A dependency: the caller, who must hold every scope named (403 insufficient_scope)."""
    return Depends(Authenticated(*scopes))


def require_mfa(*scopes: str) -> Any:
    """A dependency: a session signed in with a second factor (aal2; 403 mfa_required), holding `scopes`."""
    return Depends(Authenticated(*scopes, mfa=True))


SessionUser = Annotated[Principal, Depends(Authenticated(session=True))]


SessionReader = Annotated[Principal, Depends(Authenticated("users:read", session=True))]


SessionWriter = Annotated[Principal, Depends(Authenticated("users:write", session=True))]


READER = Authenticated("users:read")


Reader = Annotated[Principal, Depends(READER)]


Writer = Annotated[Principal, require_scope("users:write")]


KeyReader = Annotated[Principal, require_scope("keys:read")]


KeyWriter = Annotated[Principal, require_scope("keys:write")]


AdminUser = Annotated[Principal, require_scope("admin")]


# Routes ######################################################################

# Every error any route can answer, including the edge's (400 invalid_host, 413, 429, 500).
_ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)}
auth_router = APIRouter(prefix="/auth", tags=["auth"], responses=_ERRORS)
users_router = APIRouter(prefix="/users", tags=["users"], responses=_ERRORS)
health_router = APIRouter(
    prefix="/health", tags=["health"], responses={code: {"model": ErrorOut} for code in (400, 413, 500)}
)
keys_router = APIRouter(prefix="/api-keys", tags=["api keys"], responses=_ERRORS)
wellknown_router = APIRouter(prefix="/.well-known", tags=["keys"], responses=_ERRORS)
audit_router = APIRouter(prefix="/audit", tags=["admin"], responses=_ERRORS)
sessions_router = APIRouter(prefix="/sessions", tags=["sessions"], responses=_ERRORS)
mfa_router = APIRouter(prefix="/mfa", tags=["second factors"], responses=_ERRORS)
ops_router = APIRouter()


async def _prove_in_request(
    gatehouse: Gatehouse, principal: Principal, body: FactorProofIn | None, client: Client
) -> None:
    """The proof a second-factor change needs, from the body (never a recent sign-in alone)."""
    body = body or FactorProofIn()
    await require_factor_proof(
        gatehouse,
        principal,
        password=body.password,
        otp=body.otp,
        recovery_code=body.recovery_code,
        passkey=body.passkey,
        email_code=body.email_code,
        client=client,
    )


async def _prove(gatehouse: Gatehouse, principal: Principal, body: ProofIn | None, client: Client) -> None:
    """The step-up rule for a sensitive route, with whatever proof the body carries."""
    await require_recent_proof(
        gatehouse,
        principal,
        password=body.password if body else None,
        otp=body.otp if body else None,
        passkey=body.passkey if body else None,
        client=client,
    )


def _acting_for(principal: Principal, user_id: uuid.UUID | None) -> uuid.UUID:
    """The user a call acts on: the caller, or with the admin scope anyone."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if "admin" not in principal.scopes:
        raise _scope_error(principal, ["admin"], "Acting on another user needs the admin scope.")
    return user_id


@auth_router.post("/register", status_code=201, response_model=UserPublic)
async def register(body: UserRegister, gatehouse: GatehouseDep, client: ClientDep) -> UserPublic:
    """Create an account."""
    user = await create_user(
        gatehouse, email=body.email, password=body.password, full_name=body.full_name, self_signup=True, client=client
    )
    return user


_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginIn.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
                }
            },
        },
    }
}


async def _read_login(request: Request) -> LoginIn:
    """Credentials from a JSON body or an OAuth2 password form."""
    content_type = request.headers.get("content-type", "")
    is_form = content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))
    try:
        if is_form:
            form = await request.form()
            data: Any = {"email": form.get("username"), "password": form.get("password")}
        else:
            data = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise MalformedJson() from None
    try:
        return LoginIn.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        if is_form:  # name the field the form has
            for error in errors:
                error["loc"] = tuple("username" if part == "email" else part for part in error["loc"])
        raise RequestValidationError(errors) from None


@auth_router.post("/login", response_model=TokenOut | MfaChallengeOut, openapi_extra=_LOGIN_BODY)
async def login(
    request: Request, response: Response, gatehouse: GatehouseDep, client: ClientDep
) -> TokenOut | MfaChallengeOut:
    """Log in with email and password (JSON, or the OAuth2 form's username/password); with a second
    factor enrolled the answer is `mfa_required` and an `mfa_token` for POST /auth/mfa."""
    creds = await _read_login(request)
    result = await authenticate(gatehouse, email=creds.email, password=creds.password, code=creds.code, client=client)
    response.headers["Cache-Control"] = "no-store"
    return _login_out(result)


@auth_router.post("/mfa", response_model=TokenOut)
async def login_mfa(body: MfaIn, response: Response, gatehouse: GatehouseDep, client: ClientDep) -> TokenOut:
    """Finish a sign-in with a second factor: an authenticator `code`, a `recovery_code` or a passkey."""
    pair = await complete_mfa(
        gatehouse,
        mfa_token=body.mfa_token,
        otp=body.code,
        recovery_code=body.recovery_code,
        passkey=body.webauthn,
        client=client,
    )
    response.headers["Cache-Control"] = "no-store"
    return _tokens_out(pair)


@auth_router.post("/webauthn/options", response_model=dict[str, Any])
async def webauthn_options(gatehouse: GatehouseDep, client: ClientDep, body: WebauthnOptionsIn | None = None) -> Any:
    """Options for navigator.credentials.get(): a passkey-only sign-in, or with `mfa_token` the second factor."""
    return await passkey_login_options(gatehouse, mfa_token=body.mfa_token if body else None, client=client)


@auth_router.post("/webauthn", response_model=TokenOut)
async def webauthn_login(
    body: PasskeyLoginIn, response: Response, gatehouse: GatehouseDep, client: ClientDep
) -> TokenOut:
    """Sign in with a passkey alone (no password)."""
    pair = await sign_in_with_passkey(gatehouse, credential=body.credential, client=client)
    response.headers["Cache-Control"] = "no-store"
    return _tokens_out(pair)


@auth_router.get("/oauth/providers", response_model=ProvidersOut)
async def oauth_providers(gatehouse: GatehouseDep) -> ProvidersOut:
    """The configured sign-in providers, by name (for /auth/oauth/{provider}/authorize)."""
    return ProvidersOut(providers=sorted(gatehouse.federation.providers))


ProviderName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


def _set_flow_cookie(response: Response, gatehouse: Gatehouse, start: FederatedStart, *, path: str) -> None:
    response.set_cookie(
        OAUTH_FLOW_COOKIE,
        start.flow,
        max_age=start.max_age,
        path=path,  # the callback's: sent to it alone
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on cross-site subrequests
        secure=gatehouse.settings.public_url.startswith("https://"),
    )


@auth_router.get("/oauth/{provider}/authorize", status_code=302, response_class=RedirectResponse)
async def oauth_authorize(
    provider: ProviderName,
    request: Request,
    gatehouse: GatehouseDep,
    client: ClientDep,
    redirect_to: Annotated[str | None, Query(max_length=2000)] = None,
) -> RedirectResponse:
    """Sign in at another provider: redirects there; `redirect_to` (from OAUTH_REDIRECT_ALLOWLIST) is
    where the browser lands afterwards, with a one-time `code` for POST /auth/oauth/exchange."""
    start = await start_federated_login(gatehouse, provider=provider, redirect_to=redirect_to, client=client)
    response = RedirectResponse(start.url, status_code=302, headers={"Cache-Control": "no-store"})
    _set_flow_cookie(response, gatehouse, start, path=request.url.path.removesuffix("/authorize") + "/callback")
    return response


@auth_router.get("/oauth/{provider}/callback", status_code=303, response_class=RedirectResponse)
async def oauth_callback(
    provider: ProviderName,
    request: Request,
    gatehouse: GatehouseDep,
    client: ClientDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> RedirectResponse:
    """Where the provider sends the browser back; it goes on to `redirect_to` with a one-time `code` (or with
    `linked=<provider>`, for a link started at POST /users/me/identities)."""
    target = await finish_federated_login(
        gatehouse,
        provider=provider,
        flow=request.cookies.get(OAUTH_FLOW_COOKIE),
        state=state,
        code=code,
        error=error,
        client=client,
    )
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(OAUTH_FLOW_COOKIE, path=request.url.path, httponly=True, samesite="lax")
    return response


@auth_router.post("/oauth/exchange", response_model=TokenOut | MfaChallengeOut)
async def oauth_exchange(
    body: OauthExchangeIn, response: Response, gatehouse: GatehouseDep, client: ClientDep
) -> TokenOut | MfaChallengeOut:
    """Trade the callback's one-time code for a session (or `mfa_required`); 409 `link_required` with a
    `link_token` when an existing account must be proved first."""
    result = await exchange_federated_code(gatehouse, code=body.code, client=client)
    response.headers["Cache-Control"] = "no-store"
    return _login_out(result)


@auth_router.post("/oauth/link", response_model=TokenOut | MfaChallengeOut)
async def oauth_link(
    body: LinkPasswordIn, response: Response, gatehouse: GatehouseDep, client: ClientDep
) -> TokenOut | MfaChallengeOut:
    """Link the waiting identity by proving the existing account's password; then the sign-in goes on."""
    result = await link_with_password(gatehouse, link_token=body.link_token, password=body.password, client=client)
    response.headers["Cache-Control"] = "no-store"
    return _login_out(result)


@auth_router.post("/oauth/link/mail", status_code=202, response_model=Accepted)
async def oauth_link_mail(body: LinkMailIn, gatehouse: GatehouseDep, client: ClientDep) -> Accepted:
    """Link the waiting identity through a link mailed to the existing account's address."""
    await request_link_mail(gatehouse, link_token=body.link_token, client=client)
    return Accepted()


@auth_router.post("/reauthenticate", response_model=TokenOut)
async def reauthenticate_route(
    body: ReauthIn, principal: CurrentUser, response: Response, gatehouse: GatehouseDep, client: ClientDep
) -> TokenOut:
    """Prove your password (or an authenticator code, or a passkey) again: a fresh access token for this
    session (sensitive actions need one)."""
    pair = await reauthenticate(
        gatehouse,
        principal=principal,
        password=body.password,
        code=body.code,
        otp=body.otp,
        passkey=body.passkey,
        client=client.acting(principal),
    )
    response.headers["Cache-Control"] = "no-store"
    return _tokens_out(pair)


@auth_router.post("/email-code", status_code=202, response_model=Accepted)
async def email_code(principal: SessionUser, gatehouse: GatehouseDep, client: ClientDep) -> Accepted:
    """Mail your address a one-time code, the proof a second-factor change needs on an account with
    neither a password nor a second factor."""
    await send_email_code(gatehouse, principal=principal, client=client.acting(principal))
    return Accepted()


@auth_router.post("/refresh", response_model=TokenOut)
async def refresh(body: RefreshIn, response: Response, gatehouse: GatehouseDep, client: ClientDep) -> TokenOut:
    """Exchange a refresh token for a new pair (the old one is spent)."""
    pair = await refresh_session(gatehouse, refresh_token=body.refresh_token, client=client)
    response.headers["Cache-Control"] = "no-store"
    return _tokens_out(pair)


@auth_router.post("/logout", status_code=204)
async def logout(principal: SessionUser, gatehouse: GatehouseDep, client: ClientDep) -> None:
    """End this session; its tokens stop working at once."""
    await revoke_sessions(
        gatehouse,
        user_id=principal.user_id,
        session_id=principal.session_id,
        reason="logout",
        client=client.acting(principal),
    )


@auth_router.post("/logout-others", status_code=204)
async def logout_others(principal: SessionUser, gatehouse: GatehouseDep, client: ClientDep) -> None:
    """End every session of the current user but this one."""
    await revoke_sessions(
        gatehouse,
        user_id=principal.user_id,
        keep=principal.session_id,
        reason="logout_others",
        client=client.acting(principal),
    )


@auth_router.post("/logout-all", status_code=204)
async def logout_all(principal: SessionUser, gatehouse: GatehouseDep, client: ClientDep) -> None:
    """End every session of the current user."""
    await revoke_sessions(gatehouse, user_id=principal.user_id, reason="logout_all", client=client.acting(principal))


def me_body(principal: Principal) -> bytes:
    # The cached payload already has exactly UserPublic's fields and format: send it as is.
    return orjson.dumps(principal.user)


@users_router.get("/me", response_model=UserPublic)
async def read_me(principal: Reader) -> Response:
    """The current user."""
    return Response(me_body(principal), media_type="application/json")


@users_router.patch("/me", response_model=UserMeUpdated)
async def update_me(body: UserUpdateMe, principal: Writer, gatehouse: GatehouseDep, client: ClientDep) -> UserMeUpdated:
    """Change your name; or ask for a new email address (sensitive: a session and a recent sign-in or
    `password`), which changes once the link mailed to it is used."""
    client = client.acting(principal)
    pending = None
    if body.email is not None:
        await require_recent_proof(
            gatehouse,
            principal,
            password=body.password,
            otp=body.otp,
            passkey=body.passkey,
            client=client,
            factor_if_enrolled=True,
        )
        pending = await request_email_change(gatehouse, user_id=principal.user_id, email=body.email, client=client)
    user = await update_user(gatehouse, user_id=principal.user_id, full_name=body.full_name, client=client)
    return UserMeUpdated(**user.model_dump(), pending_email=pending)


@users_router.delete("/me", status_code=204)
async def delete_me(principal: Writer, gatehouse: GatehouseDep, client: ClientDep, body: ProofIn | None = None) -> None:
    """Delete your account with its sessions, keys and links (sensitive; the last admin stays)."""
    client = client.acting(principal)
    await _prove(gatehouse, principal, body, client)
    await delete_user(gatehouse, user_id=principal.user_id, client=client)


@users_router.post("/me/password", status_code=204)
async def change_password_route(
    body: PasswordChange, principal: Writer, gatehouse: GatehouseDep, client: ClientDep
) -> None:
    """Change your password (sessions only); every other session ends, API keys stay unless
    `revoke_api_keys`."""
    await change_password(
        gatehouse,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
        revoke_api_keys=body.revoke_api_keys,
        client=client.acting(principal),
    )


@users_router.post("/me/email-change/keep", status_code=204)
async def keep_email_change_route(
    principal: Writer, gatehouse: GatehouseDep, client: ClientDep, body: FactorProofIn | None = None
) -> None:
    """Vouch for your email changes (a proof in the body: a second factor when the account has one): the
    "this wasn't me" links sent to earlier addresses stop working."""
    client = client.acting(principal)
    await _prove_in_request(gatehouse, principal, body, client)
    await keep_email_change(gatehouse, user_id=principal.user_id, client=client)


@auth_router.post("/password-reset/request", status_code=202, response_model=Accepted)
async def password_reset_request(body: ResetRequest, gatehouse: GatehouseDep, client: ClientDep) -> Accepted:
    """Send a reset link if the account exists; the answer is the same either way."""
    await request_password_reset(gatehouse, email=body.email, client=client)
    return Accepted()


@auth_router.post("/password-reset/confirm", response_model=CredentialsEndedOut)
async def password_reset_confirm(body: ResetConfirm, gatehouse: GatehouseDep, client: ClientDep) -> CredentialsEndedOut:
    """Set a new password with a reset token; every session ends, every API key is revoked, and second
    factors added within FACTOR_UNDO_DAYS are removed unless listed in `keep_factors`."""
    ended = await reset_password(
        gatehouse,
        token=body.token,
        new_password=body.new_password,
        keep_factors=frozenset(body.keep_factors),
        client=client,
    )
    return CredentialsEndedOut.of(ended)


@auth_router.post("/password-reset/factors", response_model=list[FactorPublic])
async def password_reset_factors(body: TokenIn, gatehouse: GatehouseDep) -> list[FactorPublic]:
    """The account's second factors, for the owner holding a reset token (it is not spent)."""
    return [FactorPublic(**dataclasses.asdict(f)) for f in await reset_factors(gatehouse, token=body.token)]


@auth_router.post("/email-change/confirm", response_model=UserPublic)
async def email_change_confirm(body: TokenIn, gatehouse: GatehouseDep, client: ClientDep) -> UserPublic:
    """Use the link mailed to the new address: it becomes the account's address."""
    return await confirm_email_change(gatehouse, token=body.token, client=client)


@auth_router.post("/email-change/revert", response_model=CredentialsEndedOut)
async def email_change_revert(body: TokenIn, gatehouse: GatehouseDep, client: ClientDep) -> CredentialsEndedOut:
    """ "This wasn't me" from the notice sent to the old address: the change is undone, every session
    ends and every API key is revoked."""
    ended = await revert_email_change(gatehouse, token=body.token, client=client)
    return CredentialsEndedOut.of(ended)


@auth_router.post("/verify/request", status_code=202, response_model=Accepted)
async def verify_request(principal: Writer, gatehouse: GatehouseDep, client: ClientDep) -> Accepted:
    """Send a verification link to your current email address."""
    await request_email_verification(gatehouse, user_id=principal.user_id, client=client.acting(principal))
    return Accepted()


@auth_router.post("/verify/confirm", response_model=UserPublic)
async def verify_confirm(body: TokenIn, gatehouse: GatehouseDep, client: ClientDep) -> UserPublic:
    """Mark an email address verified with the token sent to it."""
    return await confirm_email_verification(gatehouse, token=body.token, client=client)


@users_router.get("", response_model=UserPage)
async def admin_list_users(
    principal: AdminUser,
    gatehouse: GatehouseDep,
    email: Annotated[
        str | None, Query(max_length=320, pattern=_NO_NUL, description="The email, or part of it.")
    ] = None,
    match: Annotated[
        EmailMatch, Query(description="How `email` matches: exact, prefix, or contains (a substring).")
    ] = "contains",
    role: Role | None = None,
    active: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserPage:
    """Users, oldest first, a page at a time (`next_cursor` until the last page); the page says how `email` matched."""
    rows, next_cursor = await list_users(
        gatehouse, email=email, match=match, role=role, active=active, cursor=cursor, limit=limit
    )
    return UserPage(items=rows, next_cursor=next_cursor, match=match if email else None)


@users_router.post("", status_code=201, response_model=UserPublic)
async def admin_create_user(
    body: UserCreate, principal: AdminUser, gatehouse: GatehouseDep, client: ClientDep
) -> UserPublic:
    """Create a user with a role."""
    return await create_user(
        gatehouse,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        role=body.role,
        client=client.acting(principal),
    )


@users_router.get("/{user_id:uuid}", response_model=UserPublic)
async def admin_get_user(user_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep) -> UserPublic:
    """One user."""
    return await get_user(gatehouse, user_id=user_id)


@users_router.patch("/{user_id:uuid}", response_model=UserPublic)
async def admin_update_user(
    user_id: uuid.UUID, body: UserUpdate, principal: AdminUser, gatehouse: GatehouseDep, client: ClientDep
) -> UserPublic:
    """Change a user's email, name, role or active flag (never removing the last admin)."""
    return await update_user(
        gatehouse,
        user_id=user_id,
        email=body.email,
        full_name=body.full_name,
        role=body.role,
        is_active=body.is_active,
        client=client.acting(principal),
    )


@users_router.delete("/{user_id:uuid}", status_code=204)
async def admin_delete_user(
    user_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep, client: ClientDep
) -> None:
    """Delete a user and their sessions, keys and tokens."""
    await delete_user(gatehouse, user_id=user_id, client=client.acting(principal))


@users_router.delete("/{user_id:uuid}/sessions", status_code=204)
async def admin_revoke_sessions(
    user_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep, client: ClientDep
) -> None:
    """End every session of a user (force logout)."""
    await get_user(gatehouse, user_id=user_id)
    await revoke_sessions(gatehouse, user_id=user_id, reason="admin", client=client.acting(principal))


@users_router.get("/{user_id:uuid}/sessions", response_model=list[SessionPublic])
async def admin_list_sessions(user_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep) -> list[SessionPublic]:
    """A user's live sessions, newest first."""
    await get_user(gatehouse, user_id=user_id)
    return [SessionPublic.of(row, principal.session_id) for row in await list_sessions(gatehouse, user_id=user_id)]


@users_router.get("/me/identities", response_model=list[IdentityPublic])
async def my_identities(principal: Reader, gatehouse: GatehouseDep) -> list[IdentityPublic]:
    """Your linked sign-ins at other providers."""
    return [IdentityPublic.model_validate(row) for row in await list_identities(gatehouse, user_id=principal.user_id)]


@users_router.post("/me/identities", response_model=IdentityLinkStart)
async def link_my_identity(
    body: IdentityLinkIn,
    response: Response,
    principal: Writer,
    gatehouse: GatehouseDep,
    client: ClientDep,
) -> IdentityLinkStart:
    """Link a sign-in at a provider to your account (a proof in this request, as for a second factor: a link
    outlives every session, so a recent sign-in, perhaps a stolen token's, is not enough): send the browser
    to `authorization_url`; the callback links whoever signs in there, then lands on `redirect_to?linked=…`."""
    client = client.acting(principal)
    await _prove_in_request(gatehouse, principal, body, client)
    start = await start_identity_link(
        gatehouse, user_id=principal.user_id, provider=body.provider, redirect_to=body.redirect_to, client=client
    )
    _set_flow_cookie(response, gatehouse, start, path=urlsplit(_callback_url(gatehouse, body.provider)).path)
    response.headers["Cache-Control"] = "no-store"
    return IdentityLinkStart(authorization_url=start.url)


@users_router.delete("/me/identities/{identity_id:uuid}", status_code=204)
async def unlink_my_identity(
    identity_id: uuid.UUID, principal: Writer, gatehouse: GatehouseDep, client: ClientDep, body: ProofIn | None = None
) -> None:
    """Remove one of your linked sign-ins (sensitive; never your last way to sign in)."""
    client = client.acting(principal)
    await _prove(gatehouse, principal, body, client)
    await unlink_identity(gatehouse, user_id=principal.user_id, identity_id=identity_id, client=client)


@users_router.get("/{user_id:uuid}/identities", response_model=list[IdentityPublic])
async def admin_list_identities(
    user_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep
) -> list[IdentityPublic]:
    """A user's linked sign-ins at other providers."""
    await get_user(gatehouse, user_id=user_id)
    return [IdentityPublic.model_validate(row) for row in await list_identities(gatehouse, user_id=user_id)]


@users_router.delete("/{user_id:uuid}/identities/{identity_id:uuid}", status_code=204)
async def admin_unlink_identity(
    user_id: uuid.UUID, identity_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep, client: ClientDep
) -> None:
    """Remove a user's linked sign-in (never their last way to sign in)."""
    await unlink_identity(gatehouse, user_id=user_id, identity_id=identity_id, client=client.acting(principal))


@users_router.delete("/{user_id:uuid}/mfa", status_code=204)
async def admin_reset_mfa(user_id: uuid.UUID, principal: AdminUser, gatehouse: GatehouseDep, client: ClientDep) -> None:
    """Remove every second factor of a user (a lost device); the user is notified."""
    await reset_mfa(gatehouse, user_id=user_id, client=client.acting(principal))


@sessions_router.get("", response_model=list[SessionPublic])
async def my_sessions(principal: SessionReader, gatehouse: GatehouseDep) -> list[SessionPublic]:
    """Your live sessions, newest first; `current` marks the one making this call (a session, never an
    API key: like logout, a key does not see or end the sessions of the person who made it)."""
    return [
        SessionPublic.of(row, principal.session_id) for row in await list_sessions(gatehouse, user_id=principal.user_id)
    ]


@sessions_router.delete("/{session_id:uuid}", status_code=204)
async def delete_session(
    session_id: uuid.UUID, principal: SessionWriter, gatehouse: GatehouseDep, client: ClientDep
) -> None:
    """End one of your sessions (anyone's with the admin scope; API keys: `DELETE /users/{id}/sessions`);
    404 for another user's."""
    owner = None if "admin" in principal.scopes else principal.user_id
    await end_session(gatehouse, session_id=session_id, owner_id=owner, client=client.acting(principal))


@mfa_router.post("/totp", response_model=TotpEnrollOut)
async def totp_enroll(
    principal: Writer,
    gatehouse: GatehouseDep,
    client: ClientDep,
    body: FactorProofIn | None = None,
) -> TotpEnrollOut:
    """Start enrolling an authenticator app (needs a proof in the body); confirm with a code to switch it on."""
    client = client.acting(principal)
    await _prove_in_request(gatehouse, principal, body, client)
    secret, uri = await enroll_totp(gatehouse, user_id=principal.user_id, client=client)
    return TotpEnrollOut(secret=secret, otpauth_uri=uri)


@mfa_router.post("/totp/confirm", response_model=RecoveryCodesOut)
async def totp_confirm(
    body: TotpConfirmIn, principal: SessionWriter, gatehouse: GatehouseDep, client: ClientDep
) -> RecoveryCodesOut:
    """Switch the enrolled authenticator on with one of its codes; returns 10 recovery codes, shown once."""
    codes = await confirm_totp(gatehouse, user_id=principal.user_id, code=body.code, client=client.acting(principal))
    return RecoveryCodesOut(recovery_codes=codes)


@mfa_router.delete("/totp", status_code=204)
async def totp_disable(
    principal: Writer, gatehouse: GatehouseDep, client: ClientDep, body: FactorProofIn | None = None
) -> None:
    """Remove the authenticator app (needs a proof in the body)."""
    client = client.acting(principal)
    await _prove_in_request(gatehouse, principal, body, client)
    await disable_totp(gatehouse, user_id=principal.user_id, client=client)


@mfa_router.post("/recovery-codes", response_model=RecoveryCodesOut)
async def recovery_codes_replace(
    principal: Writer, gatehouse: GatehouseDep, client: ClientDep, body: FactorProofIn | None = None
) -> RecoveryCodesOut:
    """Replace your recovery codes (needs a proof in the body); the old ones stop working."""
    client = client.acting(principal)
    await _prove_in_request(gatehouse, principal, body, client)
    return RecoveryCodesOut(
        recovery_codes=await replace_recovery_codes(gatehouse, user_id=principal.user_id, client=client)
    )


@mfa_router.post("/passkeys/options", response_model=dict[str, Any])
async def passkey_options(
    principal: Writer, gatehouse: GatehouseDep, client: ClientDep, body: FactorProofIn | None = None
) -> Any:
    """Options for navigator.credentials.create() to register a passkey (needs a proof in the body)."""
    await _prove_in_request(gatehouse, principal, body, client.acting(principal))
    return await passkey_registration_options(gatehouse, user_id=principal.user_id)


@mfa_router.post("/passkeys", status_code=201, response_model=PasskeyPublic)
async def passkey_register(
    body: PasskeyRegisterIn, principal: SessionWriter, gatehouse: GatehouseDep, client: ClientDep
) -> PasskeyPublic:
    """Register the passkey the browser created from /mfa/passkeys/options."""
    row = await register_passkey(
        gatehouse,
        user_id=principal.user_id,
        credential=body.credential,
        name=body.name,
        client=client.acting(principal),
    )
    return PasskeyPublic.of(row)


@mfa_router.get("/passkeys", response_model=list[PasskeyPublic])
async def passkey_list(principal: Reader, gatehouse: GatehouseDep) -> list[PasskeyPublic]:
    """Your passkeys."""
    return [PasskeyPublic.of(row) for row in await list_passkeys(gatehouse, user_id=principal.user_id)]


@mfa_router.delete("/passkeys/{passkey_id:uuid}", status_code=204)
async def passkey_delete(
    passkey_id: uuid.UUID,
    principal: Writer,
    gatehouse: GatehouseDep,
    client: ClientDep,
    body: FactorProofIn | None = None,
) -> None:
    """Remove one of your passkeys (needs a proof in the body)."""
    client = client.acting(principal)
    await _prove_in_request(gatehouse, principal, body, client)
    await delete_passkey(gatehouse, user_id=principal.user_id, passkey_id=passkey_id, client=client)


@mfa_router.post("/undo", response_model=CredentialsEndedOut)
async def factor_undo(body: TokenIn, gatehouse: GatehouseDep, client: ClientDep) -> CredentialsEndedOut:
    """ "This wasn't me" from the mail announcing a new second factor: it is removed, every session ends
    and every API key is revoked."""
    return CredentialsEndedOut.of(await undo_factor(gatehouse, token=body.token, client=client))


@mfa_router.post("/passkeys/challenge", response_model=dict[str, Any])
async def passkey_challenge(principal: SessionUser, gatehouse: GatehouseDep) -> Any:
    """Options for navigator.credentials.get() to prove a passkey in a step-up (`passkey` in a proof)."""
    return await passkey_proof_options(gatehouse, principal=principal)


@audit_router.get("", response_model=AuditPage)
async def audit_log(
    principal: AdminUser,
    gatehouse: GatehouseDep,
    user_id: uuid.UUID | None = None,
    event: Annotated[str | None, Query(max_length=40, pattern=_NO_NUL)] = None,
    since: IsoTime | None = None,
    until: IsoTime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """Security events, newest first, filtered by user (subject or actor), type and time."""
    rows, next_cursor = await list_audit(
        gatehouse, user_id=user_id, event=event, since=since, until=until, cursor=cursor, limit=limit
    )
    return AuditPage(items=[AuditPublic.of(row) for row in rows], next_cursor=next_cursor)


@keys_router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_key(
    body: ApiKeyCreate, principal: KeyWriter, gatehouse: GatehouseDep, client: ClientDep
) -> ApiKeyCreated:
    """Create an API key (for yourself, or with the admin scope for anyone); the key is shown once.
    From a session this is sensitive (a recent sign-in or `password`); a key made by a key holds no
    more scopes, expires no later, and is revoked with it."""
    owner = _acting_for(principal, body.user_id)
    client = client.acting(principal)
    if principal.key_id is None:
        await _prove(gatehouse, principal, body, client)
    if missing := sorted(set(body.scopes) & principal.withheld):
        raise _scope_error(principal, missing)
    row, key = await create_api_key(
        gatehouse,
        user_id=owner,
        name=body.name,
        scopes=list(body.scopes),
        expires_days=body.expires_in_days,
        aal=principal.aal,
        granted=principal.scopes,
        parent_id=principal.key_id,
        client=client,
    )
    return ApiKeyCreated(**ApiKeyPublic.of(row).model_dump(), key=key)


@keys_router.get("", response_model=list[ApiKeyPublic])
async def list_keys(
    principal: KeyReader, gatehouse: GatehouseDep, user_id: uuid.UUID | None = None
) -> list[ApiKeyPublic]:
    """Your API keys (admin scope: another user's with ?user_id=)."""
    rows = await list_api_keys(gatehouse, user_id=_acting_for(principal, user_id))
    return [ApiKeyPublic.of(row) for row in rows]


@keys_router.delete("/{key_id:uuid}", status_code=204)
async def revoke_key(key_id: uuid.UUID, principal: KeyWriter, gatehouse: GatehouseDep, client: ClientDep) -> None:
    """Revoke an API key (yours, or anyone's with the admin scope)."""
    owner = None if "admin" in principal.scopes else principal.user_id
    await revoke_api_key(gatehouse, key_id=key_id, owner_id=owner, client=client.acting(principal))


@wellknown_router.get("/jwks.json", response_model=Jwks)
async def jwks(gatehouse: GatehouseDep, response: Response) -> Jwks:
    """Public keys that verify access tokens (asymmetric algorithms only)."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return Jwks(**await public_jwks(gatehouse))


@ops_router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request, gatehouse: GatehouseDep) -> Response:
    """Prometheus metrics (METRICS_ENABLED; with METRICS_TOKEN, only for `Authorization: Bearer <token>`)."""
    settings = gatehouse.settings
    if not settings.metrics_enabled:
        raise NotFound()
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
            raise NotAuthenticated("/metrics needs the metrics token.")
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


_LIVE = HealthOut(status="ok").model_dump_json().encode()  # the same bytes every time: built once


def live_body(_: Principal | None) -> bytes:
    return _LIVE


@health_router.get("/live", response_model=HealthOut)
async def live() -> Response:
    """The process is up."""
    return Response(live_body(None), media_type="application/json")


# The edge answers these GETs itself, with the route's own guard and body: FastAPI's routing and
# dependency solving cost more than the whole answer. Only the path is matched (no query, no CORS).
EDGE_READS: dict[str, tuple[Authenticated | None, Callable[[Principal | None], bytes]]] = {
    "/users/me": (READER, me_body),  # type: ignore[dict-item]
    "/health/live": (None, live_body),
}


@health_router.get("/ready", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def ready(gatehouse: GatehouseDep) -> JSONResponse:
    """The database answers (503 otherwise); the cache's state is reported."""
    ok, checks = await check_health(gatehouse)
    body = HealthOut(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


# The pages the mailed links open: plain HTML forms posted back to the same path, no script at all.
pages_router = APIRouter(include_in_schema=False)
_PAGE_CSP = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
_INCOMPLETE_LINK = "This link is incomplete: open the whole link from the message."


def _page(
    request: Request,
    title: str,
    content: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    markup: dict[str, str] | None = None,
    **values: str,
) -> HTMLResponse:
    """One of the pages/ templates inside the layout; every value HTML-escaped."""
    base = html.escape(request.scope.get("root_path", "").rstrip("/"))
    templates: Templates = request.app.state.gatehouse.templates
    body = templates.render(f"pages/{content}", values, as_html=True, markup=markup)
    page = templates.render(
        "pages/layout.html", {"title": html.escape(title), "base": base, "content": body}, as_html=False
    )
    return HTMLResponse(page, status_code=status, headers={**(headers or {}), "Content-Security-Policy": _PAGE_CSP})


async def _read_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


@pages_router.get("/pages/gatehouse.css")
async def page_style(gatehouse: GatehouseDep) -> Response:
    """The pages' one style sheet (a file: the CSP allows no inline style)."""
    css = gatehouse.templates.texts["pages/gatehouse.css"]
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@pages_router.get("/favicon.ico")
async def favicon() -> Response:
    """No icon, said without a 404: browsers ask for one on every page they open."""
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


def _factor_choices(gatehouse: Gatehouse, factors: list[FactorInfo]) -> dict[str, str]:
    """The reset form's list of second factors: recent ones are removed unless ticked, older ones stay."""
    if not factors:
        return {"factors": ""}
    items = []
    for n, factor in enumerate(factors):
        kind = "authenticator app" if factor.kind == "totp" else "passkey"
        label = html.escape(f"{factor.name} ({kind}, added {factor.added_at:%Y-%m-%d %H:%M} UTC)")
        if factor.recent:
            items.append(
                f'<li><input type="checkbox" id="keep-{n}" name="keep" value="{html.escape(factor.id)}">'
                f'<label for="keep-{n}">Keep {label}</label></li>'
            )
        else:
            items.append(f"<li>{label}: stays</li>")
    days = gatehouse.settings.factor_undo_days
    return {
        "factors": f"<p>Your second factors. Those added in the last {days} days are removed unless you tick "
        f'them: keep only those you added yourself.</p><ul class="factors">{"".join(items)}</ul>'
    }


async def _reset_form(
    request: Request, gatehouse: Gatehouse, token: str, *, status: int = 200, error: str = ""
) -> HTMLResponse:
    try:
        factors = await reset_factors(gatehouse, token=token)
    except ServiceError:
        factors = []  # a bad link says so when it is posted
    return _page(
        request,
        "Choose a new password",
        "reset_password.html",
        status=status,
        action="reset-password",
        token=token,
        error=error,
        markup=_factor_choices(gatehouse, factors),
    )


@pages_router.get("/reset-password")
async def reset_password_page(
    request: Request, gatehouse: GatehouseDep, token: Annotated[str, Query(max_length=200)] = ""
) -> HTMLResponse:
    """The page PASSWORD_RESET_URL opens: a form for the new password, and the account's second factors."""
    if not token:
        return _page(request, "Reset your password", "done.html", status=400, outcome="error", message=_INCOMPLETE_LINK)
    return await _reset_form(request, gatehouse, token)


@pages_router.post("/reset-password")
async def reset_password_form(request: Request, gatehouse: GatehouseDep, client: ClientDep) -> HTMLResponse:
    """The reset form, posted: the password changes and every session ends."""
    form = await _read_form(request)
    token, password = form.get("token", ""), form.get("new_password", "")
    # A posted form is not validated like a JSON body: what is not a factor reference keeps nothing.
    keep = frozenset(
        k for k in (await request.form()).getlist("keep") if isinstance(k, str) and re.match(_FACTOR_REF, k)
    )
    if password != form.get("confirm_password", password):
        return await _reset_form(
            request, gatehouse, token, status=422, error="The two passwords differ; type the same one twice."
        )
    try:
        ended = await reset_password(gatehouse, token=token, new_password=password, keep_factors=keep, client=client)
    except ServiceError as exc:
        page = await _reset_form(request, gatehouse, token, status=exc.status_code, error=exc.message)
        page.headers.update(exc.headers)
        return page
    removed = f" Second factors removed: {', '.join(ended.factors_removed)}." if ended.factors_removed else ""
    return _page(
        request,
        "Password changed",
        "done.html",
        outcome="ok",
        message=f"Your password is changed. {ended.sessions_ended} session(s) ended and {ended.api_keys_revoked} API "
        f"key(s) were revoked: sign in again with the new password.{removed}",
    )


@dataclass(frozen=True, slots=True)
class _LinkPage:
    """A link that does one thing when its owner presses the button (never on opening: mail scanners open links)."""

    path: str
    title: str
    explain: str
    button: str
    done: str
    spend: Callable[..., Awaitable[Any]]


def _add_link_page(page: _LinkPage) -> None:
    async def show(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
        if not token:
            return _page(request, page.title, "done.html", status=400, outcome="error", message=_INCOMPLETE_LINK)
        return _page(
            request,
            page.title,
            "confirm.html",
            action=page.path.lstrip("/"),
            token=token,
            explain=page.explain,
            button=page.button,
        )

    async def spend(request: Request, gatehouse: GatehouseDep, client: ClientDep) -> HTMLResponse:
        try:
            await page.spend(gatehouse, token=(await _read_form(request)).get("token", ""), client=client)
        except ServiceError as exc:
            return _page(
                request,
                page.title,
                "done.html",
                status=exc.status_code,
                headers=exc.headers,
                outcome="error",
                message=exc.message,
            )
        return _page(request, page.title, "done.html", outcome="ok", message=page.done)

    name = page.path.strip("/").replace("-", "_")
    pages_router.add_api_route(page.path, show, methods=["GET"], name=f"{name}_page")
    pages_router.add_api_route(page.path, spend, methods=["POST"], name=f"{name}_form")


for _link_page in (
    _LinkPage(
        "/verify-email",
        "Confirm your email address",
        "Confirm that this address is yours.",
        "Confirm my address",
        "Your address is confirmed. You can close this page.",
        confirm_email_verification,
    ),
    _LinkPage(
        "/confirm-email-change",
        "Use your new email address",
        "Confirm that this address is yours: your account's address becomes this one now.",
        "Use this address",
        "Your account's address is changed: sign in with it from now on.",
        confirm_email_change,
    ),
    _LinkPage(
        "/revert-email-change",
        "This wasn't me",
        "Undo the change of your account's email address. Every session ends and every API key is revoked.",
        "Undo the change and sign out everywhere",
        "The change is undone, every session has ended and every API key is revoked. Now choose a new "
        "password: ask for a reset link with your usual address.",
        revert_email_change,
    ),
    _LinkPage(
        "/undo-factor",
        "This wasn't me",
        "Remove the second factor that was just added to your account. Every session ends and every API key "
        "is revoked.",
        "Remove it and sign out everywhere",
        "The second factor is removed, every session has ended and every API key is revoked. If someone may "
        "know your password, choose a new one: ask for a reset link.",
        undo_factor,
    ),
    _LinkPage(
        "/confirm-identity-link",
        "Link a sign-in",
        "Link the sign-in at another provider to your account: whoever holds that sign-in can then use your "
        "account. Press only if you just asked for this.",
        "Link it to my account",
        "It is linked: sign in with that provider from now on.",
        confirm_identity_link,
    ),
):
    _add_link_page(_link_page)


@ops_router.get("/", include_in_schema=False)
async def root(request: Request, gatehouse: GatehouseDep) -> dict[str, str]:
    """Where to go from here: the API docs (when on) and the health check."""
    base = request.scope.get("root_path", "").rstrip("/")
    answer = {"service": "gatehouse", "health": f"{base}/health/ready"}
    if gatehouse.settings.show_docs:
        answer["docs"] = f"{base}/docs"
    return answer


# App factory #################################################################

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# Codes the HTTP layer answers itself (the framework's errors and the edge's), besides ServiceError's.
_EDGE_CODES = {"invalid_host": 400, "validation_error": 422, "internal_error": 500}


def error_codes() -> dict[str, int]:
    """Every error code the service can answer, with its status: the contract the README's table states."""

    def every(cls: type[ServiceError]) -> Iterator[type[ServiceError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from every(sub)

    codes = {cls.code: cls.status_code for cls in every(ServiceError)}
    return codes | {code: status for status, code in _HTTP_CODES.items()} | _EDGE_CODES


def _error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id_var.get()}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


def service_error_response(exc: ServiceError) -> JSONResponse:
    """A ServiceError as the JSON answer every route and the edge give."""
    return _error_response(exc.status_code, exc.code, exc.message, headers=exc.headers, details=exc.details)


async def _on_service_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ServiceError):
        return service_error_response(exc)
    log_unhandled(exc)
    return _error_response(500, "internal_error", "An internal error occurred.")


async def _on_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error_response(400, "malformed_json", "The body is not valid JSON.")
    details = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors
    ]
    return _error_response(422, "validation_error", "The request is not valid.", details=details)


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    # FastAPI registers one route per method, and Starlette's 405 names only the first one's. Ask
    # every route whether it takes this path with each method (included routers nest their routes).
    from starlette.routing import Match

    routes = request.app.router.routes
    return [
        method
        for method in _HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _error_response(exc.status_code, code, message, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error, ours or the framework's, to {"error": {"code", "message"}}."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(Exception, _on_service_error)


class PayloadTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"The request body is larger than {limit} bytes.")


_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


_UNLIMITED_PATHS = ("/health/", "/metrics")


@dataclass(frozen=True, slots=True)
class _EdgeRoute:
    path: str  # the route template the access line and the metrics name


async def open_for_serving(settings: Settings) -> Gatehouse:
    """A Gatehouse ready to serve HTTP, refusing to start when a template in MAIL_TEMPLATES_DIR cannot
    be used (better than a page or a mail failing later) or when SECRET_KEY cannot unseal a signing
    key: every login would fail to sign. (The CLI still starts, so an operator can retire the keys.)"""
    gatehouse = await Gatehouse.open(settings)
    if gatehouse.templates.problems:
        await gatehouse.close()
        problems = "\n".join(gatehouse.templates.problems)
        log.error("%s", problems)
        raise ConfigError(problems)
    if settings.purge_interval_seconds > 0:
        gatehouse.start_purger(purge_periodically)
    try:
        kids = await sealed_keys_not_opened(gatehouse)
    except (ServiceError, sa.exc.DBAPIError):
        return gatehouse  # no database or no schema yet is not this check's business: requests will say so
    if kids:
        await gatehouse.close()
        log.error("%s", sealed_keys_problem(kids))
        raise ConfigError(sealed_keys_problem(kids))
    return gatehouse


class EdgeMiddleware:
    """The HTTP edge in one pass: host check, body limit, request id, timing and security
    headers, a JSON 500 for anything unhandled, one access log line and the request metrics."""

    def __init__(self, app: Any, *, settings: Settings):
        self.app = app
        self.settings = settings
        self._starting = asyncio.Lock()
        self.max_body = settings.max_body_bytes
        self.hosts = {h.lower() for h in settings.allowed_hosts}
        self.trusted = settings.trusted_networks
        self.timing = settings.show_timing
        self.cors = bool(settings.cors_origins)
        self.access = logging.getLogger("gatehouse.access")
        self.metrics = metrics(settings)
        self._id_prefix, self._ids = secrets.token_hex(12), itertools.count()  # unique without a syscall each

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        gatehouse = getattr(scope["app"].state, "gatehouse", None) or await self._start_lazily(scope["app"])
        header = dict(scope["headers"])  # the last of a repeated header wins, which is fine for these
        incoming = header.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else f"{self._id_prefix}{next(self._ids):08x}"
        context = request_id_var.set(request_id)
        outcome = {"status": 500, "started": False}
        ip = client_ip(
            scope["client"][0] if scope.get("client") else "unknown",
            header.get(b"x-forwarded-for", b"").decode("latin-1"),
            self.trusted,
        )
        scope.setdefault("state", {})["client_ip"] = ip

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                outcome["status"], outcome["started"] = message["status"], True
                headers = list(message.get("headers", []))
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))  # personal data: no caching by default
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if self.timing:
                    elapsed = time.perf_counter() - started
                    headers += [
                        (b"server-timing", f"app;dur={elapsed * 1000:.2f}".encode()),
                        (b"x-process-time", f"{elapsed:.6f}".encode()),
                    ]
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
                message = {**message, "headers": headers}
            await send(message)

        path = scope["path"][len(scope.get("root_path", "")) :]
        try:
            host = header.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0].lower()
            length = header.get(b"content-length", b"0")
            if "*" not in self.hosts and host not in self.hosts:
                await _error_response(400, "invalid_host", "This host name is not served here.")(
                    scope, receive, send_with_headers
                )
            elif length.isdigit() and int(length) > self.max_body:
                await _error_response(
                    413, "payload_too_large", f"The request body is larger than {self.max_body} bytes."
                )(scope, receive, send_with_headers)
            elif (wait := await self._general_limit(gatehouse, path, ip)) > 0:
                self.metrics.rate_limited.labels("ip").inc()
                await service_error_response(RateLimited(wait))(scope, receive, send_with_headers)
            elif scope["method"] == "GET" and path in EDGE_READS and not (self.cors and b"origin" in header):
                await self._read(gatehouse, path, header, ip, scope, receive, send_with_headers)
            else:
                if scope["method"] in _BODY_METHODS:
                    receive = self._limited(receive)
                await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            log_unhandled(exc)
            if outcome["started"]:
                if isinstance(exc, sa.exc.StatementError):  # the server logs what it is handed: not the values
                    raise RuntimeError("unhandled database error (logged above)") from None
                raise
            await _error_response(500, "internal_error", "An internal error occurred.")(
                scope, receive, send_with_headers
            )
        finally:
            self._record(scope, ip, outcome["status"], time.perf_counter() - started)
            request_id_var.reset(context)

    async def _start_lazily(self, app: Any) -> "Gatehouse":
        # A plain `host.mount(path, create_app())` never runs this app's lifespan (Starlette does not
        # run mounted apps' lifespans): start on first use rather than answer 500.
        async with self._starting:
            if getattr(app.state, "gatehouse", None) is None:
                log.warning(
                    "Gatehouse was mounted without mount_gatehouse(): started on the first request; "
                    "use service.mount_gatehouse(host) so the host's shutdown also closes it"
                )
                app.state.gatehouse = await open_for_serving(self.settings)
        return app.state.gatehouse

    async def _general_limit(self, gatehouse: "Gatehouse", path: str, ip: str) -> float:
        if not gatehouse.settings.rate_general_ip.limit or path.startswith(_UNLIMITED_PATHS):
            return 0.0
        return await gatehouse.cache.hit_general(Keys.general_ip(ip_group(ip)), gatehouse.settings.rate_general_ip)

    async def _read(
        self,
        gatehouse: "Gatehouse",
        path: str,
        header: dict[bytes, bytes],
        ip: str,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
    ) -> None:
        """One of EDGE_READS, answered here as its route would answer it (errors included)."""
        guard, body = EDGE_READS[path]
        scope["route"] = _EdgeRoute(path)
        principal = None
        if guard is not None:
            try:
                principal = await guard.admit(gatehouse, credential_from(header), lambda: ip)
            except ServiceError as exc:
                await service_error_response(exc)(scope, receive, send)
                return
            scope["state"]["principal"] = principal
        content = body(principal)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _limited(self, receive: Any) -> Any:
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise PayloadTooLarge(self.max_body)
            return message

        return limited

    def _record(self, scope: dict[str, Any], ip: str, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        self.metrics.request_done(template, scope["method"], status, elapsed)
        # Successful health probes arrive every few seconds from every load balancer: no line each.
        if self.access.isEnabledFor(logging.INFO) and not (status == 200 and template.startswith("/health/")):
            principal = scope["state"].get("principal")
            fields = {
                "method": scope["method"],
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "client_ip": ip,
                "user_id": principal.user["id"] if principal else None,
                "key_id": str(principal.key_id) if principal and principal.key_id else None,
            }
            message = f"{scope['method']} {template} {status}"
            if writer := self._sole_writer():
                writer.access(message, fields)
            else:
                record = logging.LogRecord("gatehouse.access", logging.INFO, __file__, 0, message, (), None)
                record.fields = fields
                self.access.handle(record)  # no caller lookup: the line says where it is from

    def _sole_writer(self) -> BatchWriter | None:
        """Gatehouse's own writer when it is the access log's one destination (as configure_logging
        sets it up), so the line can skip the LogRecord; None when a host added handlers."""
        access, parent = self.access, self.access.parent
        if access.handlers or not access.propagate or parent is None or parent.propagate:
            return None
        handlers = parent.handlers
        return handlers[0] if len(handlers) == 1 and type(handlers[0]) is BatchWriter else None


_DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def _install_docs(app: FastAPI) -> None:
    """/docs and /redoc with their scripts served from the fastapi-offline package: FastAPI's defaults
    load them from a CDN (and ReDoc its fonts from Google), which leaves both pages blank offline."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html

    assets = Path(fastapi_offline.__file__).resolve().parent / "static"
    patched: dict[str, bytes] = {}

    async def docs_asset(name: str) -> Response:
        if name not in _DOCS_ASSETS:
            raise NotFound()
        headers = {"Cache-Control": "public, max-age=86400"}
        if name == "redoc.standalone.js":
            if name not in patched:  # its "powered by" logo is fetched from a CDN: an empty image instead
                patched[name] = (
                    (assets / name)
                    .read_bytes()
                    .replace(
                        b"https://cdn.redoc.ly/redoc/logo-mini.svg",
                        b"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E",
                    )
                )
            return Response(patched[name], media_type=_DOCS_ASSETS[name], headers=headers)
        return FileResponse(assets / name, media_type=_DOCS_ASSETS[name], headers=headers)

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        # validatorUrl None: Swagger UI would otherwise fetch a badge from validator.swagger.io.
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}/docs/assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs/assets/favicon.png",
            with_google_fonts=False,
        )

    for path, endpoint in (
        ("/docs", swagger_ui),
        ("/docs/oauth2-redirect", swagger_ui_redirect),
        ("/docs/assets/{name}", docs_asset),
        ("/redoc", redoc),
    ):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)


def _openapi_with_api_keys(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus X-API-Key as an alternative wherever a bearer token is accepted."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["APIKeyHeader"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if any("OAuth2PasswordBearer" in req for req in operation.get("security", [])):
                    operation["security"].append({"APIKeyHeader": []})
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh Gatehouse ASGI app; settings default to the environment."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gatehouse = await open_for_serving(settings)
        app.state.gatehouse = gatehouse
        for handler in log.handlers:
            handler.flush()  # the migration lines come before uvicorn's "Application startup complete"
        gc.freeze()  # everything built so far lives as long as the app: keep it out of every GC pass
        try:
            yield
        finally:
            await gatehouse.close()

    docs = settings.show_docs
    app = FastAPI(
        title="Gatehouse",
        version=__version__,
        lifespan=lifespan,
        description='Accounts, sessions and tokens. Errors are {"error": {"code", "message"}}.',
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        telemetry=None if settings.otel_enabled else {"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(EdgeMiddleware, settings=settings)
    # FastAPI tries routes one by one, at about 2 us each (measured with FastAPI 0.165): the busiest
    # come first. Load balancers' probes, then /users/me; /health/live was 2.4x dearer when last.
    for router in (
        health_router,
        users_router,
        auth_router,
        keys_router,
        sessions_router,
        mfa_router,
        wellknown_router,
        audit_router,
    ):
        app.include_router(router)
    app.openapi = lambda: _openapi_with_api_keys(app)  # type: ignore[method-assign]
    app.include_router(ops_router)
    app.include_router(pages_router)
    if docs:
        _install_docs(app)
    return app


def _handed_the_caller(endpoint: Callable[..., Any], name: str, request_name: str, drop_request: bool) -> Any:
    """`endpoint`, given the caller the guard admitted as its parameter `name`."""

    @functools.wraps(endpoint)
    async def call(**values: Any) -> Any:
        request = values.pop(request_name) if drop_request else values[request_name]
        values[name] = request.scope["state"]["principal"]
        return await endpoint(**values)

    return call


class _GuardedHostRoute:
    """A host route whose only dependency is a Gatehouse guard (`CurrentUser`, `require_scope`,
    `require_mfa`), run the way the edge runs Gatehouse's own hot reads: the guard first, on the
    scope, then the route as FastAPI built it without that dependency, the endpoint handed the
    caller. FastAPI's solving of one dependency costs a host route more than the guard's whole
    check. Answers are the same either way (`test_guarded_host_routes_answer_as_through_fastapi`);
    while the host has any `dependency_overrides`, every request takes FastAPI's own path."""

    __slots__ = ("host", "gatehouse", "guard", "fastapi_app", "guarded_app")

    def __init__(self, host: FastAPI, guard: Authenticated, fastapi_app: Any, guarded_app: Any):
        self.host, self.gatehouse, self.guard = host, host.state.gatehouse, guard
        self.fastapi_app, self.guarded_app = fastapi_app, guarded_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.host.dependency_overrides:
            return await self.fastapi_app(scope, receive, send)
        await self.guard.guard(scope, self.gatehouse)  # a refusal is a ServiceError, answered by the host's handler
        await self.guarded_app(scope, receive, send)

    @classmethod
    def install(cls, host: FastAPI) -> None:
        """Guard the host's own routes that qualify: async endpoints on the app itself (routes in
        an included router keep FastAPI's path), with no body size limit of their own."""
        from fastapi.routing import APIRoute, request_response

        for route in host.router.routes:
            if isinstance(getattr(route, "app", None), cls):
                route.app.gatehouse = host.state.gatehouse  # the host started again: a new Gatehouse
                continue
            if not isinstance(route, APIRoute):
                continue
            dependant = route.dependant
            if len(dependant.dependencies) != 1 or getattr(route, "max_body_size", None) is not None:
                continue
            guard = dependant.dependencies[0]
            if not isinstance(guard.call, Authenticated) or guard.name is None or guard.dependencies:
                continue
            if not inspect.iscoroutinefunction(dependant.call):
                continue
            request_name = dependant.request_param_name or "_gatehouse_request"
            endpoint = _handed_the_caller(
                dependant.call, guard.name, request_name, dependant.request_param_name is None
            )
            route.dependant = dataclasses.replace(
                dependant, dependencies=[], call=endpoint, request_param_name=request_name
            )
            try:
                handler = route.get_route_handler()  # FastAPI's own handler, for the route without the guard
            finally:
                route.dependant = dependant  # the docs still show the route's security
            route.app = cls(host, guard.call, route.app, request_response(handler))


def mount_gatehouse(host: FastAPI, path: str = "/auth", settings: Settings | None = None) -> FastAPI:
    """Mount Gatehouse at `path` inside a host FastAPI app and share it with the host's routes,
    so `CurrentUser` and `require_scope(...)` protect them too. Returns the mounted app."""
    gatehouse_app = create_app(settings)
    host.mount(path, gatehouse_app)
    host.add_exception_handler(ServiceError, _on_service_error)  # CurrentUser on host routes answers in kind
    host_lifespan = host.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        # Starlette does not run a mounted app's lifespan: run it here, inside the host's.
        async with gatehouse_app.router.lifespan_context(gatehouse_app):
            app.state.gatehouse = gatehouse_app.state.gatehouse
            _GuardedHostRoute.install(host)  # every route is declared by now
            async with host_lifespan(app) as state:
                yield state

    host.router.lifespan_context = lifespan
    return gatehouse_app


def _app_from_environment() -> FastAPI:
    """`uvicorn service:app`: settings from the environment; a bad setting exits with its reason."""
    try:
        settings = load_settings()
        configure_logging(settings)
        return create_app(settings)
    except ConfigError as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def __getattr__(name: str) -> Any:
    # `service.app` is built on first access, not at import: importing service (tests,
    # cli.py, a host app) never reads the environment or touches the disk.
    if name == "app":
        globals()["app"] = _app_from_environment()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
