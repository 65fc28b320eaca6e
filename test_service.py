"""Gatehouse test suite: every test runs on SQLite + in-process cache and on PostgreSQL + Redis.

Server URLs come from TEST_DATABASE_URL (an admin URL; each run creates and drops its own
database) and TEST_REDIS_URL (each test uses its own key prefix and deletes it). Without
reachable servers the PostgreSQL cases skip; with REQUIRE_SERVICES=1 (CI) they fail instead.
"""

import asyncio
import json
import logging
import os
import re
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import cli
import service
from service import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
PASSWORD = "correct horse battery"
SECRET = "test-secret-" + "k" * 40
NO_MAIL = "http://127.0.0.1:9/mail"  # a mail transport for production settings in tests that send none


# Fixtures ####################################################################


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


async def _pg_admin(sql: str, url: str = TEST_DATABASE_URL) -> Any:
    import asyncpg

    conn = await asyncpg.connect(str(service.database_url(url).set(drivername="postgresql")), timeout=3)
    try:
        return await conn.execute(sql)
    finally:
        await conn.close()


async def new_pg_database() -> str:
    name = f"gatehouse_test_{secrets.token_hex(6)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    return str(service.database_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False))


async def drop_pg_database(url: str) -> None:
    await _pg_admin(f'DROP DATABASE IF EXISTS "{service.database_url(url).database}" WITH (FORCE)')


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Any) -> AsyncIterator[str]:
    """A database URL with nothing in it yet, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh-{secrets.token_hex(3)}.db"
        return
    url = await new_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture(scope="session")
def pg_url() -> Any:
    try:
        url = asyncio.run(new_pg_database())
    except Exception as exc:
        _unavailable(f"PostgreSQL is not reachable at {TEST_DATABASE_URL} ({type(exc).__name__}: {exc})")
    yield url
    asyncio.run(drop_pg_database(url))


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unavailable(f"Redis is not reachable at {TEST_REDIS_URL} ({type(exc).__name__}: {exc})")
    return TEST_REDIS_URL


def _truncate(url: str) -> None:
    # DELETE, children first: on tables this small it takes milliseconds where TRUNCATE takes ~300 ms (new files
    # for every table), and it runs after every PostgreSQL test.
    tables = reversed(service.Base.metadata.sorted_tables)
    try:
        asyncio.run(_pg_admin("; ".join(f"DELETE FROM {t.name}" for t in tables), url))
    except Exception as exc:
        if "does not exist" not in str(exc):
            raise


def _drop_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def _temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The suite's temporary directory, for this process and the ones it starts (server logs, the in-process
    cache's signal files, browser profiles): under pytest's own, which is removed after a passing run and kept
    after a failing one. Short, as a socket path under it must fit 107 bytes."""
    tmp = str(tmp_path_factory.mktemp("tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", tmp)
        patch.setenv("TMPDIR", tmp)
        yield tmp


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_settings(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> Any:
    """Settings for this test's backend; keyword overrides win."""
    base: dict[str, Any] = {
        "bcrypt_rounds": 4,
        "secret_key": SECRET,
        "secret_key_file": str(tmp_path / "secret"),
        "rate_auth_ip": "off",
        "rate_general_ip": "off",
        "hash_workers": 2,
        "mail_retry_seconds": 0.05,
    }
    cleanups: list[Callable[[], None]] = []
    if backend == "sqlite":
        base["database_url"] = f"sqlite+aiosqlite:///{tmp_path}/gatehouse.db"
    else:
        url = request.getfixturevalue("pg_url")
        redis = request.getfixturevalue("redis_url")
        prefix = f"gh-test-{secrets.token_hex(4)}:"
        base.update(database_url=url, redis_url=redis, redis_prefix=prefix)
        cleanups += [lambda: _truncate(url), lambda: _drop_prefix(redis, prefix)]

    def make(**overrides: Any) -> Settings:
        if overrides.get("environment") == "production" and not overrides.get("smtp_url"):
            overrides.setdefault("webhook_url", NO_MAIL)  # production refuses to start with no way to send mail
        return Settings(**{**base, **overrides})

    yield make
    for cleanup in cleanups:
        cleanup()


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its lifespan run, and an httpx client talking to it over ASGI."""
    app = service.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse.test") as client:
            client.gatehouse = app.state.gatehouse  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    email = email or f"user-{secrets.token_hex(4)}@example.com"
    r = await client.post("/auth/register", json={"email": email, "password": password, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def new_user(client: httpx.AsyncClient, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register and log in; (user, tokens)."""
    user = await register(client, **extra)
    return user, await login(client, user["email"])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces `settings` for a CLI or a server process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None or value == "":
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = ",".join(value)
        elif name == "oidc_providers":
            if not value:
                continue
            value = json.dumps(
                {n: {**p, "client_secret": p["client_secret"].get_secret_value()} for n, p in value.items()}
            )
        elif isinstance(value, dict):
            value = str(service.Rate(**value))
        env[name.upper()] = str(value)
    return env


async def run_cli(settings: Settings, *args: str, input: str | None = None) -> Any:
    """Run a CLI command as a user would (its own event loop, settings from the environment)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli.app, list(args), input=input, env=settings_env(settings))


async def session_row(gh: service.Gatehouse, session_id: str) -> service.LoginSession:
    async with gh.transaction() as db:
        row = await db.get(service.LoginSession, uuid.UUID(session_id))
    assert row is not None
    return row


async def user_row(gh: service.Gatehouse, email: str) -> service.User:
    async with gh.transaction() as db:
        row = await db.scalar(sa.select(service.User).where(service.User.email == email))
    assert row is not None
    return row


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


# The module's map ############################################################
#
# service.py reads top-down: each banner's code uses only what stands above it, and the module
# docstring's table of contents names the banners in order.


def _service_banners() -> tuple[list[tuple[int, str, bool]], str]:
    """(line, name, is a `Service functions: …` subsection) for every banner, and the source."""
    import re

    source = open(service.__file__, encoding="utf-8").read()
    banners = []
    for number, line in enumerate(source.splitlines(), 1):
        if m := re.match(r"^# ([A-Z][^#]*?) #{10,}$", line):
            banners.append((number, m.group(1), False))
        elif m := re.match(r"^# Service functions: (.*?) -{3,}$", line):
            banners.append((number, m.group(1), True))
    return banners, source


def test_every_section_uses_only_what_stands_above_it() -> None:
    import ast
    import bisect
    import re

    banners, source = _service_banners()
    starts = [number for number, _, _ in banners]
    tree = ast.parse(source)

    def section(line: int) -> str:
        return banners[bisect.bisect_right(starts, line) - 1][1]

    defined: dict[str, int] = {}
    for node in tree.body:
        targets = [node] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []
        names = [n.name for n in targets]
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        for name in names:
            defined.setdefault(name, node.lineno)
    later = []
    for node in tree.body:
        own = section(node.lineno)
        local = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
        local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - local
        for sub in ast.walk(node):  # "Principal" in an annotation is a use too
            annotations = []
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = sub.args.posonlyargs + sub.args.args + sub.args.kwonlyargs
                annotations = [sub.returns, *(a.annotation for a in arguments)]
            elif isinstance(sub, ast.AnnAssign):
                annotations = [sub.annotation]
            for annotation in filter(None, annotations):
                for leaf in ast.walk(annotation):
                    if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                        used |= set(re.findall(r"[A-Za-z_]\w*", leaf.value))
        for name in used:
            if name in defined and defined[name] > node.lineno:  # a later section, or later in its own
                later.append(f"line {node.lineno} ({own}) uses {name}, defined below in {section(defined[name])}")
    assert not later, "\n".join(sorted(later))


def test_the_table_of_contents_names_the_sections_in_order() -> None:
    banners, _ = _service_banners()
    doc = (service.__doc__ or "").split("Sections, top to bottom", 1)[1]
    listed = [line[4:].split("  ")[0] for line in doc.splitlines()[1:] if line[4:5].isupper()]
    assert listed == [name for _, name, sub in banners if not sub]
    contents = " ".join(doc.split("Service functions", 1)[1].split("Schemas", 1)[0].split()).split(" (")[0]
    assert contents.split("; ") == [name for _, name, sub in banners if sub]


# Settings ####################################################################


@pytest.mark.parametrize(
    "secret, problem",
    [
        (None, "SECRET_KEY is not set"),
        ("changethis", "placeholder"),
        ("short-but-random-1234", "at least 32"),
    ],
)
def test_production_refuses_weak_secret(secret: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings(environment="production", secret_key=secret)


def test_production_refusal_names_the_setting_for_cli_and_server(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVIRONMENT", "production")
    result = CliRunner().invoke(cli.app, ["list-users"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: SECRET_KEY is not set")
    with pytest.raises(SystemExit):
        service.__getattr__("app")
    assert not (tmp_path / "gatehouse.db").exists()  # refused before touching anything


def test_settings_parse_rates_and_lists() -> None:
    s = Settings(
        rate_login_failures_account="100/h",
        rate_auth_ip="10/15m",
        rate_general_ip="off",
        trusted_proxies="10.0.0.0/8, 127.0.0.1",
    )
    assert s.rate_login_failures_account == service.Rate(100, 3600)
    assert s.rate_auth_ip == service.Rate(10, 900)
    assert s.rate_general_ip.limit == 0
    assert s.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    with pytest.raises(ValueError):
        Settings(rate_auth_ip="lots")
    with pytest.raises(ValueError):
        Settings(trusted_proxies="not-an-ip")


async def test_development_secret_is_generated_once_and_persisted(make_settings: Any, tmp_path: Any) -> None:
    settings = make_settings(secret_key=None, secret_key_file=str(tmp_path / "dev.secret"))
    async with running(settings) as client:
        _, tokens = await new_user(client)
    secret = (tmp_path / "dev.secret").read_text()
    assert len(secret) >= 32 and oct((tmp_path / "dev.secret").stat().st_mode & 0o777) == "0o600"
    async with running(settings) as client:  # a restart: the same secret, tokens still valid
        assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
    assert (tmp_path / "dev.secret").read_text() == secret


@pytest.mark.parametrize("backend", ["sqlite"])  # no database or Redis involved
def test_the_configuration_doc_is_generated_from_settings(backend: str) -> None:
    """docs/configuration.md is the settings reference: exactly what `cli.py settings-doc` prints from
    `Settings`, so a setting cannot be added, dropped or re-defaulted without the doc saying so. The
    README's short table shows the same rows."""
    result = CliRunner().invoke(cli.app, ["settings-doc"])
    assert result.exit_code == 0, result.output
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "docs", "configuration.md"), encoding="utf-8") as fh:
        documented = fh.read()
    assert result.output == documented, "stale: run `python cli.py settings-doc > docs/configuration.md`"
    for name in Settings.model_fields:
        assert f"\n| `{name.upper()}` | " in documented, name
    with open(os.path.join(here, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    section = readme[readme.index("\n## Settings\n") : readme.index("\n## HTTP API\n")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == 5 and all(row in documented.splitlines() for row in rows), rows


@pytest.mark.parametrize("model", [Settings, service.OidcProviderSetting])
def test_every_setting_has_a_description(model: Any) -> None:
    missing = [name for name, field in model.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"add Field(description=...) to {missing}"


@pytest.mark.parametrize("backend", ["sqlite"])  # no database or Redis involved
def test_attack_printing_settings_shows_no_secret(backend: str, monkeypatch: Any, capsys: Any) -> None:
    """`print(Settings())` (the README's way to see the effective values) is pasted into tickets and logs:
    whoever reads them must not get the database, Redis or SMTP password, a webhook's credentials or any
    secret setting."""
    secret = "pw-" + secrets.token_hex(8)
    environment = {
        "DATABASE_URL": f"postgresql://gate:{secret}@db.internal:5432/gatehouse",
        "REDIS_URL": f"redis://:{secret}@cache.internal:6379/0",
        "SMTP_URL": f"smtp://mailer:{secret}@mail.example.com:587",
        "WEBHOOK_URL": f"https://hook:{secret}@hooks.example.com/mail",
        "SECRET_KEY": secret * 3,
        "SMTP_PASSWORD": secret,
        "WEBHOOK_SECRET": secret,
        "METRICS_TOKEN": secret,
        "GITHUB_CLIENT_ID": "gh-client",
        "GITHUB_CLIENT_SECRET": secret,
        "OIDC_PROVIDERS": json.dumps(
            {"corp": {"issuer": "https://id.example.com", "client_id": "c", "client_secret": secret}}
        ),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.database_url == environment["DATABASE_URL"]  # masked when shown, never when used
    print(settings)
    printed = capsys.readouterr().out
    for shown in (printed, repr(settings)):
        assert secret not in shown
        # still says where each thing is, and as whom
        assert "database_url='postgresql://gate:***@db.internal:5432/gatehouse'" in shown
        assert "redis_url='redis://:***@cache.internal:6379/0'" in shown
        assert "smtp_url='smtp://mailer:***@mail.example.com:587'" in shown
        assert "webhook_url='https://hook:***@hooks.example.com/mail'" in shown
        assert "redis_prefix='gatehouse:'" in shown and "github_client_id='gh-client'" in shown


# Registration ################################################################


async def test_register_returns_public_user_with_normalised_email(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/auth/register", json={"email": "  Mixed.Case@Example.COM ", "password": PASSWORD, "full_name": "Ada Lovelace"}
    )
    assert r.status_code == 201
    body = r.json()
    assert body["email"] == "mixed.case@example.com"
    assert body["role"] == "user" and body["is_active"] is True and body["full_name"] == "Ada Lovelace"
    assert (
        set(body) == {"id", "email", "full_name", "role", "is_active", "created_at", "updated_at", "email_verified_at"}
        and body["email_verified_at"] is None
    )
    row = await user_row(client.gatehouse, "mixed.case@example.com")
    assert row.password_hash.startswith("$2b$04$") and PASSWORD not in row.password_hash


async def test_duplicate_email_in_any_case_is_409(client: httpx.AsyncClient) -> None:
    await register(client, "dup@example.com")
    r = await client.post("/auth/register", json={"email": "DUP@example.com", "password": PASSWORD})
    assert r.status_code == 409 and error_code(r) == "email_taken"


async def test_signup_disabled(make_settings: Any) -> None:
    async with running(make_settings(signup_enabled=False)) as client:
        r = await client.post("/auth/register", json={"email": "a@example.com", "password": PASSWORD})
        assert r.status_code == 403 and error_code(r) == "signup_disabled"


@pytest.mark.parametrize(
    "body, code",
    [
        ({"email": "not-an-email", "password": PASSWORD}, "validation_error"),
        ({"email": "a@example.com", "password": "short"}, "validation_error"),
        ({"email": "a@example.com", "password": "x" * 257}, "validation_error"),
        ({"email": "a@example.com", "password": "€" * 300}, "validation_error"),
        ({"email": "a@example.com"}, "validation_error"),
        ({"email": 12, "password": PASSWORD}, "validation_error"),
        ({"email": "a@example.com", "password": PASSWORD, "role": "admin"}, "validation_error"),
        ({"email": "a@example.com", "password": PASSWORD, "is_active": False}, "validation_error"),
        ({"email": "a@example.com", "password": PASSWORD, "full_name": "nul\x00byte"}, "validation_error"),
        ({"email": "a@example.com", "password": PASSWORD, "full_name": "x" * 201}, "validation_error"),
        ([1, 2, 3], "validation_error"),
    ],
)
async def test_register_rejects_bad_input(client: httpx.AsyncClient, body: Any, code: str) -> None:
    r = await client.post("/auth/register", json=body)
    assert r.status_code == 422 and error_code(r) == code
    async with client.gatehouse.transaction() as db:
        assert await db.scalar(sa.select(sa.func.count()).select_from(service.User)) == 0


async def test_lone_surrogate_and_malformed_json_are_clear_errors(client: httpx.AsyncClient) -> None:
    raw = b'{"email": "a@example.com", "password": "' + PASSWORD.encode() + b'", "full_name": "\\ud800"}'
    r = await client.post("/auth/register", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and error_code(r) == "validation_error"
    r = await client.post("/auth/register", content=b'{"email": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_code(r) == "malformed_json"
    r = await client.post("/auth/login", content=b"\xff\xfe{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_code(r) == "malformed_json"


async def test_concurrent_registrations_no_lock_errors_duplicates_get_409(client: httpx.AsyncClient) -> None:
    emails = [f"c{i}@example.com" for i in range(40)] + [f"c{i}@example.com" for i in range(10)]
    responses = await asyncio.gather(
        *[client.post("/auth/register", json={"email": e, "password": PASSWORD}) for e in emails]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 40 + [409] * 10, [r.text for r in responses if r.status_code not in (201, 409)]
    async with client.gatehouse.transaction() as db:
        assert await db.scalar(sa.select(sa.func.count()).select_from(service.User)) == 40


# Passwords ###################################################################


@pytest.mark.parametrize(
    "password",
    [
        "пароль-очень-надёжный",
        "密码密码密码密码密码",
        "🔑🔐🗝️ emoji passphrase",
        "a" * 64,
        "ü" * 200,  # 400 bytes: far past bcrypt's 72
    ],
)
async def test_unicode_and_long_passwords_verify_exactly(client: httpx.AsyncClient, password: str) -> None:
    user = await register(client, password=password)
    await login(client, user["email"], password)
    r = await client.post("/auth/login", json={"email": user["email"], "password": password[:-1] + "!"})
    assert r.status_code == 401


async def test_no_truncation_at_72_bytes(client: httpx.AsyncClient) -> None:
    prefix = "p" * 80
    user = await register(client, password=prefix + "-one")
    r = await client.post("/auth/login", json={"email": user["email"], "password": prefix + "-two"})
    assert r.status_code == 401 and error_code(r) == "invalid_credentials"


async def test_hash_is_upgraded_to_current_rounds_on_login(make_settings: Any) -> None:
    async with running(make_settings(bcrypt_rounds=4)) as client:
        user = await register(client)
    async with running(make_settings(bcrypt_rounds=5)) as client:
        await login(client, user["email"])
        assert (await user_row(client.gatehouse, user["email"])).password_hash.startswith("$2b$05$")
        await login(client, user["email"])  # the upgraded hash verifies


async def test_hashing_runs_off_the_event_loop(client: httpx.AsyncClient) -> None:
    user = await register(client)
    loop_thread = __import__("threading").get_ident()
    seen: list[int] = []
    original = client.gatehouse.hasher._verify_sync

    def spy(password: str, hashed: str) -> bool:
        seen.append(__import__("threading").get_ident())
        return original(password, hashed)

    client.gatehouse.hasher._verify_sync = spy
    await login(client, user["email"])
    assert seen and loop_thread not in seen


# Login #######################################################################


async def test_login_json_and_oauth2_form(client: httpx.AsyncClient) -> None:
    user = await register(client, "form@example.com")
    r = await client.post("/auth/login", data={"username": "FORM@example.com", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert r.headers["cache-control"] == "no-store"
    c = claims(body["access_token"])
    assert {"sub", "sid", "jti", "iat", "exp", "iss", "aud", "role", "typ"} <= set(c)
    assert c["sub"] == user["id"] and c["typ"] == "access" and c["exp"] - c["iat"] == 900
    assert c["iss"] == "gatehouse" and c["aud"] == "gatehouse" and c["role"] == "user"
    json_tokens = await login(client, "form@example.com")
    assert claims(json_tokens["access_token"])["sid"] != c["sid"]  # one session per login


async def test_login_failures_are_indistinguishable(client: httpx.AsyncClient) -> None:
    await register(client, "real@example.com")
    inactive = await register(client, "inactive@example.com")
    await service.update_user(client.gatehouse, user_id=uuid.UUID(inactive["id"]), is_active=False)
    hasher = client.gatehouse.hasher
    answers = []
    for email, password in [
        ("real@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("inactive@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ]:
        before = hasher.checks
        r = await client.post("/auth/login", json={"email": email, "password": password})
        body = r.json()
        assert body["error"].pop("request_id") == r.headers["x-request-id"]  # differs per request by design
        answers.append((r.status_code, body, r.headers.get("www-authenticate")))
        assert hasher.checks == before + 1  # every path pays for one bcrypt check
    assert all(a == answers[0] for a in answers), answers
    assert answers[0][0] == 401 and answers[0][1]["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"password": "x"}, {"email": ["a"], "password": 1}])
async def test_login_bad_bodies_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post("/auth/login", json=body)
    assert r.status_code == 422 and error_code(r) == "validation_error"


# Tokens ######################################################################


def _forge(settings: Settings, token: str, **changes: Any) -> str:
    """A token signed with the service's real HS256 key for the token's kid, with claims changed."""
    kid = jwt.get_unverified_header(token)["kid"]
    payload = {k: v for k, v in {**claims(token), **changes}.items() if v is not None}
    key = service.TokenIssuer(settings, SECRET.encode())._hmac_key(kid)
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": kid})


def _unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    import base64
    import json

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(payload)}.{signature}"


async def test_bad_access_tokens_are_rejected_each_with_its_code(client: httpx.AsyncClient, settings: Settings) -> None:
    _, tokens = await new_user(client)
    good = tokens["access_token"]
    kid = jwt.get_unverified_header(good)["kid"]
    now = int(time.time())
    cases = {
        "expired": (_forge(settings, good, iat=now - 3600, exp=now - 1800), "token_expired"),
        "wrong_issuer": (_forge(settings, good, iss="someone-else"), "invalid_issuer"),
        "wrong_audience": (_forge(settings, good, aud="another-api"), "invalid_audience"),
        "no_sid": (_forge(settings, good, sid=None), "invalid_token"),
        "no_exp": (_forge(settings, good, exp=None), "invalid_token"),
        "future_iat": (_forge(settings, good, iat=now + 3600), "invalid_token"),
        "refresh_typ": (_forge(settings, good, typ="refresh"), "wrong_token_type"),
        "path_in_sid": (_forge(settings, good, sid="../../etc/passwd"), "invalid_token"),
        "other_secret": (jwt.encode(claims(good), b"x" * 32, algorithm="HS256", headers={"kid": kid}), "invalid_token"),
        "tampered": (good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), "invalid_token"),
        "garbage": ("not.a.token", "invalid_token"),
        "refresh_token": (tokens["refresh_token"], "wrong_token_type"),
        "no_kid": (jwt.encode(claims(good), b"x" * 32, algorithm="HS256"), "unknown_key"),
        "unknown_kid": (_unsigned({"alg": "HS256", "kid": "AAAAAAAAAAAAAAAA"}, claims(good), "c2ln"), "unknown_key"),
        "path_kid": (_unsigned({"alg": "HS256", "kid": "../../etc/passwd"}, claims(good), "c2ln"), "unknown_key"),
        "kid_object": (_unsigned({"alg": "HS256", "kid": {"$ne": 1}}, claims(good), "c2ln"), "unknown_key"),
        "alg_rs256_on_hs_key": (_unsigned({"alg": "RS256", "kid": kid}, claims(good), "c2ln"), "invalid_algorithm"),
        **{
            f"alg_{alg}": (_unsigned({"alg": alg, "kid": kid}, claims(good)), "invalid_algorithm")
            for alg in ("none", "None", "NONE", "nOnE", "", "HS512")
        },
    }
    for name, (token, code) in cases.items():
        r = await client.get("/users/me", headers=bearer(token))
        assert (r.status_code, error_code(r)) == (401, code), name
        assert r.headers["www-authenticate"] == "Bearer"
    r = await client.get("/users/me")
    assert r.status_code == 401 and error_code(r) == "not_authenticated"
    assert (await client.get("/users/me", headers=bearer(good))).status_code == 200


async def test_token_for_deleted_user_or_foreign_session_is_rejected(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    a, a_tokens = await new_user(client)
    b, b_tokens = await new_user(client)
    # a genuine signature but A's session claimed for B: the session does not belong to B
    forged = _forge(settings, a_tokens["access_token"], sub=b["id"])
    r = await client.get("/users/me", headers=bearer(forged))
    assert r.status_code == 401 and error_code(r) == "session_revoked"
    # B's own token, verified and cached, after B is deleted
    assert (await client.get("/users/me", headers=bearer(b_tokens["access_token"]))).status_code == 200
    await service.delete_user(client.gatehouse, user_id=uuid.UUID(b["id"]))
    r = await client.get("/users/me", headers=bearer(b_tokens["access_token"]))
    assert r.status_code == 401 and error_code(r) == "session_revoked"
    r = await client.post("/auth/refresh", json={"refresh_token": b_tokens["refresh_token"]})
    assert r.status_code == 401 and error_code(r) == "session_revoked"
    assert (await client.get("/users/me", headers=bearer(a_tokens["access_token"]))).status_code == 200


# Refresh #####################################################################


async def test_refresh_rotates_and_old_token_in_grace_gets_current_pair(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    r1 = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r1.status_code == 200 and r1.headers["cache-control"] == "no-store"
    first = r1.json()
    assert first["refresh_token"] != tokens["refresh_token"]
    r2 = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r2.status_code == 200
    assert r2.json()["refresh_token"] == first["refresh_token"]  # same branch, not a new one
    row = await session_row(client.gatehouse, claims(first["access_token"])["sid"])
    assert row.generation == 1 and row.revoked_at is None
    r3 = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r3.status_code == 200
    assert (await client.get("/users/me", headers=bearer(r3.json()["access_token"]))).status_code == 200


async def test_refresh_reuse_after_grace_revokes_the_whole_session(make_settings: Any) -> None:
    async with running(make_settings(refresh_grace_seconds=0)) as client:
        _, tokens = await new_user(client)
        rotated = (await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
        await asyncio.sleep(0.01)
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "refresh_token_reused"
        for access in (tokens["access_token"], rotated["access_token"]):
            r = await client.get("/users/me", headers=bearer(access))
            assert r.status_code == 401 and error_code(r) == "session_revoked"
        r = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "session_revoked"
        row = await session_row(client.gatehouse, claims(tokens["access_token"])["sid"])
        assert row.revoked_at is not None and row.revoke_reason == "refresh_reuse"


async def test_parallel_refreshes_rotate_exactly_once(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    responses = await asyncio.gather(
        *[client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(12)]
    )
    assert [r.status_code for r in responses] == [200] * 12, [r.text for r in responses]
    assert len({r.json()["refresh_token"] for r in responses}) == 1
    row = await session_row(client.gatehouse, claims(tokens["access_token"])["sid"])
    assert row.generation == 1 and row.revoked_at is None


@pytest.mark.parametrize("token", ["", "abc", "0" * 32 + ".0." + "A" * 43, "x" * 199])
async def test_forged_refresh_tokens_are_invalid(client: httpx.AsyncClient, token: str) -> None:
    r = await client.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 401 and error_code(r) == "invalid_token"


async def test_access_token_is_not_a_refresh_token(client: httpx.AsyncClient, settings: Settings) -> None:
    _, tokens = await new_user(client)
    assert len(tokens["access_token"]) > 200  # longer than any refresh token: refused by the schema
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert r.status_code == 422 and error_code(r) == "validation_error"
    assert r.json()["error"]["details"][0]["loc"] == ["body", "refresh_token"]
    # one short enough for the schema is still not a refresh token
    short = jwt.encode({"sid": claims(tokens["access_token"])["sid"]}, "k" * 32, algorithm="HS256")
    assert len(short) <= 200
    r = await client.post("/auth/refresh", json={"refresh_token": short})
    assert r.status_code == 401 and error_code(r) == "invalid_token"


async def test_refresh_of_tampered_generation_is_invalid(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    sid, gen, mac = tokens["refresh_token"].split(".")
    r = await client.post("/auth/refresh", json={"refresh_token": f"{sid}.{int(gen) + 1}.{mac}"})
    assert r.status_code == 401 and error_code(r) == "invalid_token"


async def test_refresh_of_an_expired_session_is_token_expired(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    sid = claims(tokens["access_token"])["sid"]
    async with client.gatehouse.transaction(write=True) as db:
        await db.execute(
            sa.update(service.LoginSession)
            .where(service.LoginSession.id == uuid.UUID(sid))
            .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
        )
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401 and error_code(r) == "token_expired"
    row = await session_row(client.gatehouse, sid)
    assert row.generation == 0 and row.revoked_at is None  # refused, not rotated


async def test_access_path_rereads_a_cached_session_expiry_that_has_passed(client: httpx.AsyncClient) -> None:
    """A cached expiry in the past may predate a refresh (on another instance) that extended the
    session: the database decides, and only an expiry it confirms ends the session."""
    _, tokens = await new_user(client)
    gh, auth = client.gatehouse, bearer(tokens["access_token"])
    sid, uid = claims(tokens["access_token"])["sid"], claims(tokens["access_token"])["sub"]
    assert (await client.get("/users/me", headers=auth)).status_code == 200
    stale = {"uid": uid, "exp": time.time() - 1}
    # This test edits the near cache under the memo of resolved callers (which stands for these
    # reads and is dropped by every invalidation); drop it too, as a real invalidation would.
    gh.cache.local.put(f"s:{sid}", 0, stale)
    gh.principals.clear()
    assert (await client.get("/users/me", headers=auth)).status_code == 200  # the database says it is live
    async with gh.transaction(write=True) as db:
        await db.execute(
            sa.update(service.LoginSession)
            .where(service.LoginSession.id == uuid.UUID(sid))
            .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
        )
    gh.cache.local.put(f"s:{sid}", 0, stale)
    gh.principals.clear()
    r = await client.get("/users/me", headers=auth)
    assert r.status_code == 401 and error_code(r) == "session_revoked"  # now it agrees: over


# Logout ######################################################################


async def test_logout_revokes_this_session_only(client: httpx.AsyncClient) -> None:
    user, first = await new_user(client)
    second = await login(client, user["email"])
    r = await client.post("/auth/logout", headers=bearer(first["access_token"]))
    assert r.status_code == 204
    r = await client.get("/users/me", headers=bearer(first["access_token"]))
    assert r.status_code == 401 and error_code(r) == "session_revoked"
    r = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401
    assert (await client.get("/users/me", headers=bearer(second["access_token"]))).status_code == 200
    row = await session_row(client.gatehouse, claims(first["access_token"])["sid"])
    assert row.revoked_at is not None and row.revoke_reason == "logout"


async def test_logout_all_revokes_every_session(client: httpx.AsyncClient) -> None:
    user, first = await new_user(client)
    second = await login(client, user["email"])
    _, other = await new_user(client)
    assert (await client.post("/auth/logout-all", headers=bearer(second["access_token"]))).status_code == 204
    for tokens in (first, second):
        assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await client.get("/users/me", headers=bearer(other["access_token"]))).status_code == 200


async def test_logout_requires_a_live_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/logout")
    assert r.status_code == 401 and error_code(r) == "not_authenticated"


# Users #######################################################################


async def test_me_read_and_update(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client, full_name="Before")
    auth = bearer(tokens["access_token"])
    assert (await client.get("/users/me", headers=auth)).json() == user
    r = await client.patch("/users/me", headers=auth, json={"full_name": "After", "email": "New.Addr@Example.com"})
    assert r.status_code == 200
    assert r.json()["full_name"] == "After" and r.json()["email"] == user["email"]
    assert r.json()["pending_email"] == "new.addr@example.com"  # changes once the link mailed there is used
    me = (await client.get("/users/me", headers=auth)).json()  # no stale cached copy
    assert me["full_name"] == "After" and me["email"] == user["email"]
    await login(client, user["email"])


@pytest.mark.parametrize(
    "body", [{"role": "admin"}, {"is_active": False}, {"id": str(uuid.uuid4())}, {"email": "bad"}, {"full_name": 5}]
)
async def test_me_update_rejects_privileged_or_bad_fields(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    user, tokens = await new_user(client)
    r = await client.patch("/users/me", headers=bearer(tokens["access_token"]), json=body)
    assert r.status_code == 422
    row = await user_row(client.gatehouse, user["email"])
    assert row.role == "user" and row.is_active


async def test_me_update_to_taken_email_is_409(client: httpx.AsyncClient) -> None:
    other = await register(client)
    _, tokens = await new_user(client)
    r = await client.patch("/users/me", headers=bearer(tokens["access_token"]), json={"email": other["email"]})
    assert r.status_code == 409 and error_code(r) == "email_taken"


async def test_change_password_ends_other_sessions(client: httpx.AsyncClient) -> None:
    user, current = await new_user(client)
    other = await login(client, user["email"])
    auth = bearer(current["access_token"])
    r = await client.post(
        "/users/me/password",
        headers=auth,
        json={"current_password": "wrong one!", "new_password": "a brand new secret"},
    )
    assert r.status_code == 400 and error_code(r) == "wrong_password"
    r = await client.post(
        "/users/me/password", headers=auth, json={"current_password": PASSWORD, "new_password": "a brand new secret"}
    )
    assert r.status_code == 204
    assert (await client.get("/users/me", headers=auth)).status_code == 200
    assert (await client.get("/users/me", headers=bearer(other["access_token"]))).status_code == 401
    r = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status_code == 401
    await login(client, user["email"], "a brand new secret")
    r = await client.post(
        "/users/me/password", headers=auth, json={"current_password": "a brand new secret", "new_password": "short"}
    )
    assert r.status_code == 422


async def test_deactivation_rejects_existing_tokens_at_once(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200  # cached
    await service.update_user(client.gatehouse, user_id=uuid.UUID(user["id"]), is_active=False)
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 401


# Errors and health ###########################################################


async def test_framework_errors_are_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/no/such/route")
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = await client.put("/health/live")
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"
    r = await client.post("/auth/refresh", json={"refresh_token": 123})
    assert r.status_code == 422 and error_code(r) == "validation_error"
    assert r.json()["error"]["details"][0]["loc"] == ["body", "refresh_token"]


async def test_fuzz_findings_stay_fixed(client: httpx.AsyncClient, settings: Settings) -> None:
    """The three bugs the fuzzer found, each pinned."""
    admin_user, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    # 1. a 405 names every method the path allows, not only the first route's
    r = await client.put("/users/me", headers=auth)
    assert (r.status_code, error_code(r), r.headers["allow"]) == (405, "method_not_allowed", "DELETE, GET, PATCH")
    r = await client.post(f"/users/{admin_user['id']}", headers=auth, json={})
    assert (r.status_code, r.headers["allow"]) == (405, "DELETE, GET, PATCH")
    # 2. DELETE /users/me is the owner's own route, never DELETE /users/{user_id} with user_id "me"
    r = await client.delete("/users/me", headers=auth)
    assert (r.status_code, error_code(r)) == (409, "last_admin")  # the owner's guard answered, not a 422 on "me"
    assert (await client.get("/users/me", headers=auth)).json()["id"] == admin_user["id"]
    r = await client.delete("/users/not-a-user-id", headers=auth)  # no route takes it: not a 422 from /{user_id}
    assert (r.status_code, error_code(r)) == (404, "not_found")
    # 3. times are ISO 8601 as documented, never Unix numbers
    for value in ("0", "1700000000", "1.7e9", " 17 "):
        r = await client.get("/audit", headers=auth, params={"since": value})
        assert r.status_code == 422 and error_code(r) == "validation_error", value
        assert r.json()["error"]["details"][0]["loc"] == ["query", "since"]
    assert (await client.get("/audit", headers=auth, params={"until": "2999-01-31T12:00:00Z"})).json()["items"]


def test_error_codes_match_the_readme() -> None:
    """The error-code table of docs/api.md is the contract: every code the service can answer is in it, with
    its status, and it lists nothing the service cannot answer."""
    import re

    with open(os.path.join(os.path.dirname(__file__), "docs", "api.md"), encoding="utf-8") as fh:
        api = fh.read()
    documented = {code: status for code, status in re.findall(r"^\| `([a-z_]+)` \| (\d{3}|other) \|", api, re.M)}
    assert len(documented) > 40
    assert documented.pop("http_error") == "other"  # any other status the framework raises
    assert documented == {code: str(status) for code, status in service.error_codes().items()}


def _markdown_outside_code(text: str) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks, with inline code spans removed: a `#` or a
    `[x](y)` inside code is neither a heading nor a link."""
    import re

    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def _heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a file's headings: lower-case, spaces to `-`, punctuation but `-` and `_` dropped,
    a repeated heading suffixed `-1`, `-2`, …"""
    import re

    anchors: set[str] = set()
    for line in _markdown_outside_code(text):
        if m := re.match(r"#{1,6} (.+?)\s*#*\s*$", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            unique, n = slug, 0
            while unique in anchors:
                n += 1
                unique = f"{slug}-{n}"
            anchors.add(unique)
    return anchors


def test_docs_links_resolve() -> None:
    """Every relative link in the top-level pages (README.md, SECURITY.md, …) and docs/*.md points at a file
    that exists, and its `#anchor` at a heading of that file: moving a section must not leave a reader at a
    dead link."""
    import glob
    import re

    here = os.path.dirname(os.path.abspath(__file__))
    pages = sorted(glob.glob(os.path.join(here, "*.md"))) + sorted(glob.glob(os.path.join(here, "docs", "*.md")))
    broken, checked = [], 0
    for page in pages:
        with open(page, encoding="utf-8") as fh:
            text = fh.read()
        for line in _markdown_outside_code(text):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not ours to check
                    continue
                checked += 1
                path, _, anchor = target.partition("#")
                linked = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                where = f"{os.path.relpath(page, here)}: ({target})"
                if not os.path.isfile(linked):
                    broken.append(f"{where}: no such file")
                    continue
                if anchor:
                    with open(linked, encoding="utf-8") as fh:
                        if anchor not in _heading_anchors(fh.read()):
                            broken.append(f"{where}: no such heading")
    assert checked > 20  # the README links every page of docs/
    assert not broken, broken


async def test_health(client: httpx.AsyncClient, backend: str) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok", "checks": {}}
    r = await client.get("/health/ready")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["cache"] == {"status": "ok", "kind": "memory" if backend == "sqlite" else "redis"}


async def test_database_outage_is_503_json(tmp_path: Any) -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/none",
        auto_migrate=False,
        secret_key=SECRET,
        bcrypt_rounds=4,
        db_pool_timeout=1,
        rate_auth_ip="off",
    )
    async with running(settings) as client:
        r = await client.get("/health/ready")
        assert r.status_code == 503 and r.json()["checks"]["database"]["status"] == "unavailable"
        r = await client.post("/auth/login", json={"email": "a@example.com", "password": PASSWORD})
        assert r.status_code == 503 and error_code(r) == "database_unavailable"
        r = await client.post("/auth/register", json={"email": "a@example.com", "password": PASSWORD})
        assert r.status_code == 503 and error_code(r) == "database_unavailable"


# Rate limits #################################################################


async def test_failed_logins_per_account_and_ip_are_limited(make_settings: Any) -> None:
    settings = make_settings(rate_login_failures_account_ip="3/h", rate_login_failures_account="5/h")
    async with running(settings) as client:
        user = await register(client)
        wrong = {"email": user["email"], "password": "wrong password"}
        for _ in range(3):
            assert (await client.post("/auth/login", json=wrong)).status_code == 401
        r = await client.post("/auth/login", json=wrong)
        assert r.status_code == 429 and error_code(r) == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 3600
        # the right password from that address waits too; another address is not locked out
        assert (await client.post("/auth/login", json={**wrong, "password": PASSWORD})).status_code == 429
        other = httpx.ASGITransport(app=client._transport.app, client=("10.1.1.1", 5000))
        async with httpx.AsyncClient(transport=other, base_url="http://gatehouse.test") as elsewhere:
            assert (await elsewhere.post("/auth/login", json={**wrong, "password": PASSWORD})).status_code == 200


async def test_register_attempts_per_ip_are_limited(make_settings: Any) -> None:
    async with running(make_settings(rate_auth_ip="2/m")) as client:
        await register(client)
        await register(client)
        r = await client.post("/auth/register", json={"email": "third@example.com", "password": PASSWORD})
        assert r.status_code == 429 and "retry-after" in r.headers


# CLI #########################################################################


async def test_cli_create_user_then_login_over_http(settings: Settings) -> None:
    result = await run_cli(
        settings,
        "create-user",
        "Admin@Example.com",
        "--admin",
        "--full-name",
        "Ops",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created admin admin@example.com" in result.output and PASSWORD not in result.output
    async with running(settings) as client:
        tokens = await login(client, "admin@example.com")
        me = (await client.get("/users/me", headers=bearer(tokens["access_token"]))).json()
        assert me["role"] == "admin" and me["full_name"] == "Ops"


async def test_cli_create_user_interactive_prompt_confirms(settings: Settings, monkeypatch: Any) -> None:
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)  # as a person at a terminal
    result = await run_cli(settings, "create-user", "p@example.com", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0 and PASSWORD not in result.output
    result = await run_cli(settings, "create-user", "p@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 1 and result.output.strip() == "error: An account with this email already exists."
    result = await run_cli(settings, "create-user", "q@example.com", "--password-stdin", input="short\n")
    assert result.exit_code == 1 and "at least 8" in result.output


async def test_cli_works_on_a_fresh_database_before_the_server_ever_ran(
    make_settings: Any, backend: str, tmp_path: Any
) -> None:
    async with fresh_database(backend, tmp_path) as url:
        settings = make_settings(database_url=url)
        result = await run_cli(settings, "migrate", "--status")
        assert result.exit_code == 0 and "pending  001  users and sessions" in result.output
        result = await run_cli(settings, "create-user", "first@example.com", "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 0, result.output  # AUTO_MIGRATE applied the schema first
        result = await run_cli(settings, "migrate", "--status")
        assert result.exit_code == 0 and "applied  001  users and sessions" in result.output
        assert "pending" not in result.output and "drift" not in result.output
        result = await run_cli(settings, "migrate")
        assert result.exit_code == 0 and "up to date" in result.output


async def test_concurrent_migrations_apply_once(make_settings: Any, backend: str, tmp_path: Any) -> None:
    async with fresh_database(backend, tmp_path) as url:
        engines = [service.create_engine(make_settings(database_url=url)) for _ in range(4)]
        results = await asyncio.gather(*[service.migrate(e) for e in engines])
        assert sorted(len(r) for r in results) == [0, 0, 0, len(service.MIGRATIONS)]
        status = await service.migration_status(engines[0])
        assert [v for v, _, _ in status.applied] == [m.version for m in service.MIGRATIONS]
        assert status.pending == [] and status.drift == []
        for engine in engines:
            await engine.dispose()


async def _insert_pre_003_rows(engine: Any) -> tuple[str, str]:
    """A user, a session and an API key as the schema before migration 003 held them; (email, key)."""
    hasher = service.PasswordHasher(rounds=4, workers=1)
    password_hash = await hasher.hash(PASSWORD)
    hasher.close()
    key, public_id, secret_hash = service.new_api_key()
    user_id, now = uuid.uuid4(), service.utcnow()
    async with engine.connect() as conn:
        conn = await conn.execution_options(gatehouse_write=True)
        async with conn.begin():
            await conn.execute(
                sa.insert(service.User.__table__).values(
                    id=user_id,
                    email="before@example.com",
                    password_hash=password_hash,
                    full_name="Before",
                    role="user",
                    is_active=True,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            old_sessions = sa.table(
                "sessions",
                *(  # the columns migration 001 made
                    sa.column(c, service.LoginSession.__table__.c[c].type)
                    for c in (
                        "id",
                        "user_id",
                        "generation",
                        "created_at",
                        "refreshed_at",
                        "expires_at",
                        "user_agent",
                        "ip",
                    )
                ),
            )
            await conn.execute(
                sa.insert(old_sessions).values(
                    id=uuid.uuid4(),
                    user_id=user_id,
                    generation=0,
                    created_at=now,
                    refreshed_at=now,
                    expires_at=now + service.timedelta(days=1),
                    user_agent="",
                    ip="",
                )
            )
            await conn.execute(
                sa.insert(service.ApiKey.__table__).values(
                    id=uuid.uuid4(),
                    user_id=user_id,
                    public_id=public_id,
                    secret_hash=secret_hash,
                    name="old",
                    scopes="users:read",
                    created_at=now,
                )
            )
    return "before@example.com", key


async def _tables_and_user_columns(engine: Any) -> tuple[set[str], set[str]]:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda c: (
                set(sa.inspect(c).get_table_names()),
                {col["name"] for col in sa.inspect(c).get_columns("users")},
            )
        )


async def test_migrations_complete_a_partly_migrated_database_that_holds_rows(
    make_settings: Any, backend: str, tmp_path: Any, monkeypatch: Any
) -> None:
    async with fresh_database(backend, tmp_path) as url:
        settings = make_settings(database_url=url)
        engine = service.create_engine(settings)
        try:
            monkeypatch.setattr(service, "MIGRATIONS", service.MIGRATIONS[:2])  # the release before 003
            assert [m.version for m in await service.migrate(engine)] == [1, 2]
            email, key = await _insert_pre_003_rows(engine)
            monkeypatch.undo()
            later = [m.version for m in service.MIGRATIONS[2:]]
            assert [m.version for m in await service.migrate(engine)] == later
            status = await service.migration_status(engine)
            assert ([v for v, _, _ in status.applied], status.pending, status.drift) == ([1, 2, *later], [], [])
        finally:
            await engine.dispose()
        async with running(settings) as client:  # the old rows work under the new schema
            tokens = await login(client, email)
            me = (await client.get("/users/me", headers=bearer(tokens["access_token"]))).json()
            assert (me["email"], me["full_name"], me["email_verified_at"]) == (email, "Before", None)
            assert (await client.get("/users/me", headers=bearer(key))).json()["id"] == me["id"]


async def test_a_failing_migration_rolls_back_whole(
    make_settings: Any, backend: str, tmp_path: Any, monkeypatch: Any
) -> None:
    shipped = service.MIGRATIONS

    def broken(op: Any) -> None:
        op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
        raise RuntimeError("migration 004 fails halfway")

    async with fresh_database(backend, tmp_path) as url:
        engine = service.create_engine(make_settings(database_url=url))
        try:
            monkeypatch.setattr(service, "MIGRATIONS", shipped[:2])
            await service.migrate(engine)
            email, _ = await _insert_pre_003_rows(engine)
            later = [m.version for m in shipped[2:]]
            monkeypatch.setattr(
                service, "MIGRATIONS", (*shipped, service.Migration(len(shipped) + 1, "broken", broken))
            )
            with pytest.raises(RuntimeError, match="fails halfway"):
                await service.migrate(engine)  # 003 and later succeed, then the last fails: none may stay
            status = await service.migration_status(engine)
            assert ([v for v, _, _ in status.applied], [m.version for m in status.pending]) == (
                [1, 2],
                [*later, len(shipped) + 1],
            )
            tables, columns = await _tables_and_user_columns(engine)
            assert {"users", "sessions", "api_keys"} <= tables
            assert not tables & {"action_tokens", "audit_events", "half_done"}
            assert "email_verified_at" not in columns  # 003's change to an existing table is undone too
            async with engine.connect() as conn:
                assert (await conn.execute(sa.text("SELECT email FROM users"))).scalars().all() == [email]
            monkeypatch.setattr(service, "MIGRATIONS", shipped)  # fixed: what is pending applies
            assert [m.version for m in await service.migrate(engine)] == later
        finally:
            await engine.dispose()


async def test_migrate_status_reports_drift(client: httpx.AsyncClient, settings: Settings) -> None:
    async with client.gatehouse.transaction(write=True) as db:
        await db.execute(sa.text("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)"))
    try:
        result = await run_cli(settings, "migrate", "--status")
        assert result.exit_code == 1
        assert "drift" in result.output and "nickname" in result.output
    finally:  # the PostgreSQL database is shared by the run: leave its schema as found
        async with client.gatehouse.transaction(write=True) as db:
            await db.execute(sa.text("ALTER TABLE users DROP COLUMN nickname"))


async def test_cli_user_admin_commands(settings: Settings, client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client, full_name="Grace")
    email, auth = user["email"], bearer(tokens["access_token"])
    assert (await client.get("/users/me", headers=auth)).status_code == 200  # warm the cache

    result = await run_cli(settings, "list-users", "--json")
    assert result.exit_code == 0
    listed = __import__("json").loads(result.output)
    assert [u["email"] for u in listed] == [email] and "password_hash" not in result.output

    result = await run_cli(settings, "set-role", email, "admin")
    assert result.exit_code == 0 and f"{email} is now admin" in result.output
    result = await run_cli(settings, "deactivate", email)
    assert result.exit_code == 1 and result.output.strip() == "error: This would leave no active admin."
    result = await run_cli(
        settings, "create-user", "second-admin@example.com", "--admin", "--password-stdin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 0
    assert (await client.get("/users/me", headers=auth)).json()["role"] == "admin"  # no stale role
    result = await run_cli(settings, "set-role", email, "root")
    assert result.exit_code == 1 and "role must be one of" in result.output

    result = await run_cli(settings, "deactivate", email)
    assert result.exit_code == 0
    r = await client.get("/users/me", headers=auth)
    assert r.status_code == 401  # the CLI's change reached the running service at once
    assert (await client.post("/auth/login", json={"email": email, "password": PASSWORD})).status_code == 401
    assert (await run_cli(settings, "activate", email)).exit_code == 0
    tokens = await login(client, email)

    result = await run_cli(settings, "set-password", email, "--password-stdin", input="new secret value\n")
    assert result.exit_code == 0 and "new secret value" not in result.output
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    tokens = await login(client, email, "new secret value")

    result = await run_cli(settings, "revoke-sessions", email)
    assert result.exit_code == 0 and "ended 1 session(s)" in result.output
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401

    tokens = await login(client, email, "new secret value")
    result = await run_cli(settings, "delete-user", email, "--yes")
    assert result.exit_code == 0
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    result = await run_cli(settings, "list-users")
    assert result.exit_code == 0 and email not in result.output and "second-admin@example.com" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["deactivate"],
        ["activate"],
        ["set-role", "admin"],
        ["revoke-sessions"],
        ["delete-user", "--yes"],
        ["set-password", "--password-stdin"],
    ],
)
async def test_cli_unknown_user_is_one_line_and_exit_1(settings: Settings, command: list[str]) -> None:
    args = [command[0], "ghost@example.com", *command[1:]]
    result = await run_cli(settings, *args, input="irrelevant password\n")
    assert result.exit_code == 1
    assert result.output.strip() == "error: No such user."


async def test_cli_reports_unreachable_database_in_one_line(make_settings: Any) -> None:
    settings = make_settings(database_url="postgresql://postgres@127.0.0.1:1/none", db_pool_timeout=1)
    result = await run_cli(settings, "list-users")
    assert result.exit_code == 1
    assert (
        result.output.startswith("error: DATABASE_URL: cannot reach the database") and "Traceback" not in result.output
    )


# Instances ###################################################################


async def test_two_instances_share_revocation_and_user_changes(settings: Settings) -> None:
    """Two app instances on one database (and Redis): what one changes, the other sees at once."""
    async with running(settings) as a, running(settings) as b:
        user, tokens = await new_user(a)
        auth = bearer(tokens["access_token"])
        assert (await b.get("/users/me", headers=auth)).status_code == 200  # B caches the session
        r = await a.patch("/users/me", headers=auth, json={"full_name": "Changed on A"})
        assert r.status_code == 200

        async def b_sees_the_change() -> bool:
            return (await b.get("/users/me", headers=auth)).json()["full_name"] == "Changed on A"

        await _until(b_sees_the_change, "B serves the name changed on A")
        assert (await a.post("/auth/logout", headers=auth)).status_code == 204

        async def b_refuses() -> bool:
            return (await b.get("/users/me", headers=auth)).status_code == 401

        await _until(b_refuses, "B refuses the session ended on A")
        r = await b.get("/users/me", headers=auth)
        assert r.status_code == 401 and error_code(r) == "session_revoked"
        await login(b, user["email"])


# Production: proxies, limits, pools ##########################################


async def test_forwarded_for_is_believed_only_from_trusted_proxies(make_settings: Any) -> None:
    settings = make_settings(rate_auth_ip="1/h", trusted_proxies="10.0.0.0/8")
    async with running(settings) as client:
        app = client._transport.app

        async def register_from(peer: str, xff: str | None) -> int:
            transport = httpx.ASGITransport(app=app, client=(peer, 4000))
            headers = {"X-Forwarded-For": xff} if xff else {}
            async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse.test") as c:
                body = {"email": f"x{secrets.token_hex(3)}@example.com", "password": PASSWORD}
                return (await c.post("/auth/register", json=body, headers=headers)).status_code

        # behind the trusted proxy, each forwarded client has its own budget
        assert await register_from("10.0.0.5", "203.0.113.1") == 201
        assert await register_from("10.0.0.5", "203.0.113.2") == 201
        assert await register_from("10.0.0.6", "198.51.100.9, 203.0.113.1") == 429  # right-most untrusted hop
        # a direct caller cannot spoof its address with the header
        assert await register_from("192.0.2.7", "203.0.113.3") == 201
        assert await register_from("192.0.2.7", "203.0.113.4") == 429


async def test_general_limit_per_client_and_health_is_exempt(make_settings: Any) -> None:
    async with running(make_settings(rate_general_ip="3/m")) as client:
        codes = [(await client.get("/users/me")).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        assert (await client.get("/health/live")).status_code == 200


@pytest.mark.parametrize("backend", ["postgres"])  # across instances needs Redis
async def test_general_limit_adds_up_across_instances(make_settings: Any) -> None:
    async with running(make_settings(rate_general_ip="5/h")) as a, running(make_settings(rate_general_ip="5/h")) as b:

        async def counted(instance: httpx.AsyncClient, total: int) -> None:
            async def known() -> bool:
                return instance.gatehouse.cache._gl_known.get("ip:127.0.0.1", (0, 0))[1] == total

            await _until(known, f"{total} requests summed in Redis")

        assert [(await a.get("/users/me")).status_code for _ in range(3)] == [401] * 3
        await counted(a, 3)
        assert (await b.get("/users/me")).status_code == 401
        await counted(b, 4)  # B has added its one to A's three
        assert [(await b.get("/users/me")).status_code for _ in range(2)] == [401, 429]  # the 5th, then over
        assert (await b.get("/health/live")).status_code == 200


async def test_a_stampede_of_misses_makes_one_database_read_per_entry(settings: Settings) -> None:
    """When a busy entry expires (or an instance starts cold), the requests that miss it together
    share one load: 32 at once read the signing key, the session and the user at most once each."""
    async with running(settings) as first:
        _, tokens = await new_user(first)
    async with running(settings) as cold:  # a fresh instance: its near cache holds nothing yet
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        sa.event.listen(cold.gatehouse.engine.sync_engine, "before_cursor_execute", seen)
        answers = await asyncio.gather(
            *[cold.get("/users/me", headers=bearer(tokens["access_token"])) for _ in range(32)]
        )
        assert [r.status_code for r in answers] == [200] * 32
        reads = {
            table: sum(1 for s in statements if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s)
            for table in ("signing_keys", "sessions", "users")
        }
        # With Redis some entries come from the shared cache instead; whatever the database serves, once.
        assert all(n <= 1 for n in reads.values()) and sum(reads.values()) >= 1, reads


async def test_in_process_cache_is_bounded(make_settings: Any) -> None:
    async with running(make_settings(local_cache_max_entries=100)) as client:
        user = await register(client)
        for _ in range(30):
            tokens = await login(client, user["email"])
            assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
        assert len(client.gatehouse.cache.local) <= 100
        for _ in range(120):
            tokens = await login(client, user["email"])
        assert len(client.gatehouse.cache.local) <= 100


def _cache_lookups() -> tuple[float, float]:
    """(hits, misses) of this process's cache so far."""
    from prometheus_client import REGISTRY

    return tuple(
        REGISTRY.get_sample_value("gatehouse_cache_total", {"result": r}) or 0.0  # type: ignore[return-value]
        for r in ("hit", "miss")
    )


def _statements(gh: service.Gatehouse) -> list[str]:
    """Every SQL statement `gh` sends from now on, appended as it goes."""
    seen: list[str] = []
    sa.event.listen(
        gh.engine.sync_engine,
        "before_cursor_execute",  # type: ignore[union-attr]
        lambda _conn, _cursor, statement, *_: seen.append(statement),
    )
    return seen


async def test_many_concurrent_requests_share_a_small_pool(make_settings: Any, backend: str) -> None:
    settings = make_settings(
        redis_max_connections=8, db_pool_size=4, db_max_overflow=0, db_pool_timeout=30, redis_timeout=30
    )  # the pool bounds the waits here, not a clock
    async with running(settings) as client:
        gh = client.gatehouse
        user = await register(client)
        sessions = [await login(client, user["email"]) for _ in range(25)]
        assert (await client.get("/users/me", headers=bearer(sessions[0]["access_token"]))).status_code == 200
        gh.cache.local.clear()  # force every request through the shared tier
        statements, (hits, misses) = _statements(gh), _cache_lookups()
        responses = await asyncio.gather(
            *[client.get("/users/me", headers=bearer(sessions[i % 25]["access_token"])) for i in range(500)]
        )
        assert [r.status_code for r in responses] == [200] * 500
        new_hits, new_misses = _cache_lookups()
        if backend == "postgres":
            # Every key, session and user lookup was answered by Redis through the 8 connections: none
            # failed over to the database (a failed or starved GET reads the database and counts a miss).
            pool = gh.cache.redis.connection_pool
            opened = len(pool._available_connections) + len(pool._in_use_connections)
            assert (new_misses - misses, statements) == (0, [])
            assert new_hits - hits >= 3 * 500 and gh.cache._down_until == 0.0  # key, session, user each
            assert 1 < opened <= 8, opened
        else:  # no shared tier: the database answered, through its 4 connections
            assert new_misses - misses > 0 and statements and gh.engine.pool.checkedout() == 0


async def test_exhausted_database_pool_is_503_then_recovers(make_settings: Any) -> None:
    settings = make_settings(db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5)
    async with running(settings) as client:
        held = await client.gatehouse.engine.connect()
        await held.exec_driver_sql("SELECT 1")
        r = await client.post("/auth/register", json={"email": "p@example.com", "password": PASSWORD})
        assert r.status_code == 503 and error_code(r) == "database_unavailable"
        assert (await client.get("/health/ready")).status_code == 503
        await held.close()
        await register(client, "p@example.com")


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored, to simulate an outage."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        self._writers.clear()
        await self._server.wait_closed()


def postgres_address(pg_url: str) -> tuple[str, int]:
    url = service.database_url(pg_url)
    return url.host or "127.0.0.1", url.port or 5432


def through_proxy(make_settings: Any, pg_url: str, port: int) -> Settings:
    """Settings whose database connections go through a proxy listening on `port`."""
    url = service.database_url(pg_url).set(host="127.0.0.1", port=port)
    return make_settings(database_url=url.render_as_string(hide_password=False), db_pool_timeout=1)


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_outage_is_503_and_recovers_without_restart(make_settings: Any, pg_url: str) -> None:
    url = service.database_url(pg_url)
    proxy = await TcpProxy(*postgres_address(pg_url)).start()
    async with running(through_proxy(make_settings, pg_url, proxy.port)) as client:
        user, tokens = await new_user(client)
        await proxy.cut()
        r = await client.post("/auth/register", json={"email": "down@example.com", "password": PASSWORD})
        assert r.status_code == 503 and error_code(r) == "database_unavailable"
        r = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        assert r.status_code == 503
        r = await client.get("/health/ready")
        assert r.status_code == 503 and r.json()["checks"]["database"]["status"] == "unavailable"
        await proxy.start()  # the database is back on the same address
        await register(client, "down@example.com")
        assert (await client.get("/health/ready")).status_code == 200
        # connections killed by the server are replaced without a 500
        await _pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{url.database}' AND pid <> pg_backend_pid()"
        )
        assert (await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 200
        await proxy.cut()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own on a free port, to kill and restart without touching the shared one."""

    def __init__(self) -> None:
        import shutil

        self.binary = shutil.which("redis-server")
        if self.binary is None:
            _unavailable("redis-server is not installed")
        self.port = _free_port()
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start_sync(self) -> "PrivateRedis":
        import subprocess

        import redis

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        client.close()
        return self

    def kill_sync(self) -> None:
        self.proc.kill()
        self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> "PrivateRedis":
        return await asyncio.to_thread(self.start_sync)

    async def kill(self) -> None:
        await asyncio.to_thread(self.kill_sync)


async def _until(predicate: Callable[[], Any], what: str, attempts: int = 100) -> None:
    """Wait up to `attempts` tenths of a second; the first looks come sooner, as most things happen in ms."""
    delay, waited = 0.005, 0.0
    while not await predicate():
        if waited >= attempts * 0.1:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(delay)
        waited, delay = waited + delay, min(2 * delay, 0.1)


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
async def test_redis_outage_falls_back_to_database_and_recovers(make_settings: Any) -> None:
    redis_server = await PrivateRedis().start()
    settings = make_settings(redis_url=redis_server.url, redis_timeout=0.5, rate_login_failures_account_ip="3/h")
    try:
        async with running(settings) as client:
            user, first = await new_user(client)
            second = await login(client, user["email"])
            assert (await client.get("/users/me", headers=bearer(first["access_token"]))).status_code == 200
            await redis_server.kill()

            assert (await client.get("/users/me", headers=bearer(first["access_token"]))).status_code == 200
            assert (await client.post("/auth/logout", headers=bearer(first["access_token"]))).status_code == 204
            r = await client.get("/users/me", headers=bearer(first["access_token"]))
            assert r.status_code == 401  # revocation checked against the database
            refreshed = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
            assert refreshed.status_code == 200
            await login(client, user["email"])
            await register(client)
            wrong = {"email": user["email"], "password": "wrong password"}
            codes = [(await client.post("/auth/login", json=wrong)).status_code for _ in range(4)]
            assert codes == [401, 401, 401, 429]  # limits fall back in process, never open
            ready = await client.get("/health/ready")
            assert ready.status_code == 200 and ready.json()["checks"]["cache"]["status"] == "degraded"

            await redis_server.start()  # same port, empty

            async def recovered() -> bool:
                r = await client.get("/health/ready")
                return r.json()["checks"]["cache"]["status"] == "ok"

            await _until(recovered, "the service uses Redis again")
            access = refreshed.json()["access_token"]
            assert (await client.get("/users/me", headers=bearer(access))).status_code == 200
            assert (await client.post("/auth/logout", headers=bearer(access))).status_code == 204
            assert (await client.get("/users/me", headers=bearer(access))).status_code == 401
    finally:
        if redis_server.running:
            await redis_server.kill()


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
async def test_change_made_while_cut_off_from_redis_is_not_served_stale_after(
    make_settings: Any, redis_url: str
) -> None:
    target = service.database_url(redis_url.replace("redis://", "postgresql://"))  # only to parse host/port
    proxy = await TcpProxy(target.host or "127.0.0.1", target.port or 6379).start()
    proxied = redis_url.replace(f"{target.host}:{target.port}", f"127.0.0.1:{proxy.port}")
    base = make_settings()
    async with running(base.model_copy(update={"redis_url": proxied})) as a, running(base) as b:
        user, tokens = await new_user(a)
        auth = bearer(tokens["access_token"])
        assert (await a.get("/users/me", headers=auth)).status_code == 200
        assert (await b.get("/users/me", headers=auth)).status_code == 200  # B holds the session as live
        await proxy.cut()
        assert (await a.post("/auth/logout", headers=auth)).status_code == 204  # announced to nobody
        assert (await a.get("/users/me", headers=auth)).status_code == 401
        await proxy.start()

        async def a_reconnected() -> bool:
            return a.gatehouse.cache._subscribed and not a.gatehouse.cache._dirty

        await _until(a_reconnected, "A resubscribes and bumps the cache generation")

        async def b_refuses() -> bool:
            return (await b.get("/users/me", headers=auth)).status_code == 401

        await _until(b_refuses, "B drops its stale entry once told of the new generation")
        r = await b.get("/users/me", headers=auth)
        assert r.status_code == 401 and error_code(r) == "session_revoked"
        await proxy.cut()


# Real processes ##############################################################

REPO = os.path.dirname(os.path.abspath(__file__))


class Server:
    """`uvicorn service:app` in its own process, configured through the environment."""

    def __init__(
        self,
        settings: Settings,
        *args: str,
        log_path: Any = None,
        port: int | None = None,
        cwd: Any = REPO,
        **env: str,
    ):
        self.env = {**os.environ, **settings_env(settings), **env}
        self.cwd = cwd  # where `service` is imported from
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            "uvicorn",
            "service:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
            *args,
        ]
        self.proc: Any = None
        self.log_path = log_path

    @classmethod
    def as_the_image(cls, settings: Settings, *, log_path: Any = None, **env: str) -> "Server":
        """The Dockerfile's CMD exactly, but listening on a free loopback port."""
        server = cls(settings, log_path=log_path, **{"ENVIRONMENT": "production", "WEBHOOK_URL": NO_MAIL, **env})
        command = image_command()
        command[command.index("--host") + 1], command[command.index("--port") + 1] = "127.0.0.1", str(server.port)
        server.command = command
        return server

    def start(self) -> "Server":
        import subprocess
        import sys

        if self.log_path is None:  # a file, not a pipe: an unread pipe would stall the server's logging
            fd, self.log_path = tempfile.mkstemp(prefix="gatehouse-server-", suffix=".log")  # see _temporary_directory
            os.close(fd)
        stderr = open(self.log_path, "wb")
        # `python -m uvicorn`: the `uvicorn` on PATH may belong to another interpreter.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.command], cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        for _ in range(200):
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                output = open(self.log_path).read()
                raise AssertionError(f"server exited: {output[-2000:]}")
            time.sleep(0.05)
        raise AssertionError("server did not start")

    def signup(self, email: str) -> dict[str, Any]:
        """Register over HTTP (if new) and log in; the token pair."""
        with httpx.Client(base_url=self.url, timeout=10) as c:
            c.post("/auth/register", json={"email": email, "password": PASSWORD})
            r = c.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return r.json()

    def stop(self, *, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=15)


def image_command() -> list[str]:
    """The Dockerfile's CMD as an argument list."""
    import json
    import re

    dockerfile = open(os.path.join(REPO, "Dockerfile")).read()
    command = json.loads(re.findall(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)[-1])
    assert command[0] == "uvicorn", command
    return command


def _cli_process(settings: Settings, *args: str, cwd: Any = REPO) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **settings_env(settings)},
        timeout=60,
    )


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
def test_two_uvicorn_instances_share_postgres_and_redis(make_settings: Any) -> None:
    settings = make_settings(rate_login_failures_account="4/h", rate_login_failures_account_ip="100/h")
    a, b = Server(settings).start(), Server(settings).start()
    try:
        with httpx.Client(base_url=a.url, timeout=10) as on_a, httpx.Client(base_url=b.url, timeout=10) as on_b:
            email = "shared@example.com"
            assert on_a.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
            tokens = on_b.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
            auth = bearer(tokens["access_token"])
            assert on_a.get("/users/me", headers=auth).json()["role"] == "user"
            assert on_b.get("/users/me", headers=auth).json()["role"] == "user"

            result = _cli_process(settings, "set-role", email, "admin")
            assert result.returncode == 0, result.stderr
            assert on_a.get("/users/me", headers=auth).json()["role"] == "admin"
            assert on_b.get("/users/me", headers=auth).json()["role"] == "admin"

            assert on_a.post("/auth/logout", headers=auth).status_code == 204
            started = time.perf_counter()
            while on_b.get("/users/me", headers=auth).status_code != 401:
                assert time.perf_counter() - started < 5, "B kept accepting a token revoked on A"
            print(f"revocation seen on B {1000 * (time.perf_counter() - started):.1f} ms after logout on A")

            wrong = {"email": email, "password": "not the password"}
            answers = [c.post("/auth/login", json=wrong) for c in (on_a, on_b, on_a, on_b, on_a)]
            assert [r.status_code for r in answers] == [401] * 5
            # one budget across instances: once it is full, a mailed code must join even the right password
            assert [error_code(r) for r in answers] == ["invalid_credentials"] * 4 + ["login_code_required"]
    finally:
        a.stop()
        b.stop()


@pytest.mark.live
def test_acknowledged_writes_survive_kill_9(make_settings: Any) -> None:
    import concurrent.futures
    import signal

    settings = make_settings()
    server = Server(settings).start()
    acknowledged: list[str] = []
    stop = __import__("threading").Event()

    def writer(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            for i in range(10_000):
                if stop.is_set():
                    return
                email = f"w{n}-{i}@example.com"
                try:
                    r = c.post("/auth/register", json={"email": email, "password": PASSWORD})
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged.append(email)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(writer, n) for n in range(8)]
        while len(acknowledged) < 40 and server.proc.poll() is None:
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        stop.set()
        for f in futures:
            f.result()

    result = _cli_process(settings, "list-users", "--json")
    assert result.returncode == 0, result.stderr
    stored = {u["email"] for u in __import__("json").loads(result.stdout)}
    missing = [e for e in acknowledged if e not in stored]
    assert not missing, f"{len(missing)} acknowledged registrations lost"
    assert len(acknowledged) >= 40


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_connections_are_durable_and_wait_for_the_write_lock(client: httpx.AsyncClient) -> None:
    """What a kill -9 cannot tell apart (synchronous FULL from OFF), read from a live pooled connection."""
    await register(client)
    async with client.gatehouse.engine.connect() as conn:  # type: ignore[union-attr]
        pragmas = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("synchronous", "journal_mode", "busy_timeout", "foreign_keys")
        }
    assert pragmas == {"synchronous": 2, "journal_mode": "wal", "busy_timeout": 10_000, "foreign_keys": 1}


# API keys ####################################################################

API_KEY_RE = r"^gate_[a-z2-7]{10}_[a-z2-7]{32}$"


async def make_key(client: httpx.AsyncClient, access: str, **body: Any) -> dict[str, Any]:
    r = await client.post("/api-keys", headers=bearer(access), json={"name": "ci", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def admin_tokens(client: httpx.AsyncClient, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await register(client)
    await service.update_user(client.gatehouse, user_id=uuid.UUID(user["id"]), role="admin")
    return user, await login(client, user["email"])


async def test_api_key_lifecycle(client: httpx.AsyncClient) -> None:
    import re

    user, tokens = await new_user(client)
    created = await make_key(client, tokens["access_token"], scopes=["users:read", "keys:read"], expires_in_days=30)
    key = created["key"]
    assert re.match(API_KEY_RE, key) and key.startswith(created["prefix"] + "_")
    assert created["scopes"] == ["keys:read", "users:read"] and created["user_id"] == user["id"]
    async with client.gatehouse.transaction() as db:
        row = await db.get(service.ApiKey, uuid.UUID(created["id"]))
    assert row.secret_hash == service.hash_secret(key.rsplit("_", 1)[1]) and key not in str(vars(row))

    for headers in (bearer(key), {"X-API-Key": key}):
        r = await client.get("/users/me", headers=headers)
        assert r.status_code == 200 and r.json()["id"] == user["id"]
    listed = (await client.get("/api-keys", headers=bearer(key))).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in str(listed) and listed[0]["prefix"] == created["prefix"]

    r = await client.delete(f"/api-keys/{created['id']}", headers=bearer(tokens["access_token"]))
    assert r.status_code == 204
    r = await client.get("/users/me", headers=bearer(key))
    assert r.status_code == 401 and error_code(r) == "invalid_api_key"
    assert (await client.get("/api-keys", headers=bearer(tokens["access_token"]))).json() == []
    r = await client.delete(f"/api-keys/{created['id']}", headers=bearer(tokens["access_token"]))
    assert r.status_code == 404 and error_code(r) == "api_key_not_found"


async def test_api_key_scopes_are_enforced_on_every_route(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    read_only = (await make_key(client, tokens["access_token"], scopes=["users:read"]))["key"]
    checks = [
        ("GET", "/users/me", None, 200),
        ("PATCH", "/users/me", {"full_name": "x"}, 403),
        ("POST", "/users/me/password", {"current_password": PASSWORD, "new_password": "another secret"}, 403),
        ("GET", "/api-keys", None, 403),
        ("POST", "/api-keys", {"name": "escalate", "scopes": ["users:read"]}, 403),
    ]
    for method, path, body, expected in checks:
        r = await client.request(method, path, headers=bearer(read_only), json=body)
        assert r.status_code == expected, (method, path, r.text)
        if expected == 403:
            assert error_code(r) == "insufficient_scope"
    for path in ("/auth/logout", "/auth/logout-all"):  # sessions only
        r = await client.post(path, headers=bearer(read_only))
        assert r.status_code == 403 and error_code(r) == "access_token_required"


async def test_api_key_cannot_exceed_owner_or_creator(client: httpx.AsyncClient, settings: Settings) -> None:
    _, tokens = await new_user(client)
    r = await client.post("/api-keys", headers=bearer(tokens["access_token"]), json={"name": "x", "scopes": ["admin"]})
    assert r.status_code == 403 and error_code(r) == "insufficient_scope"
    minter = (await make_key(client, tokens["access_token"], scopes=["keys:write"]))["key"]
    r = await client.post("/api-keys", headers=bearer(minter), json={"name": "x", "scopes": ["users:write"]})
    assert r.status_code == 403 and error_code(r) == "insufficient_scope"
    assert (await make_key(client, minter, scopes=["keys:write"]))["scopes"] == ["keys:write"]
    r = await client.post("/api-keys", headers=bearer(tokens["access_token"]), json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 422

    admin, admin_session = await admin_tokens(client, settings)
    admin_key = (await make_key(client, admin_session["access_token"], scopes=["admin", "keys:read"]))["key"]
    assert (await client.get(f"/api-keys?user_id={uuid.uuid4()}", headers=bearer(admin_key))).status_code == 200
    await admin_tokens(client, settings)  # another admin, so this one may be demoted
    await service.update_user(client.gatehouse, user_id=uuid.UUID(admin["id"]), role="user")  # demoted
    r = await client.get(f"/api-keys?user_id={uuid.uuid4()}", headers=bearer(admin_key))
    assert r.status_code == 401 and error_code(r) == "invalid_api_key"  # revoked with the owner's admin role


async def test_admin_manages_other_users_keys(client: httpx.AsyncClient, settings: Settings) -> None:
    user, tokens = await new_user(client)
    mine = await make_key(client, tokens["access_token"], scopes=["users:read"])
    _, admin_session = await admin_tokens(client, settings)
    admin = bearer(admin_session["access_token"])
    made = await make_key(client, admin_session["access_token"], user_id=user["id"], scopes=["users:read"])
    assert made["user_id"] == user["id"]
    listed = (await client.get(f"/api-keys?user_id={user['id']}", headers=admin)).json()
    assert sorted(k["id"] for k in listed) == sorted([mine["id"], made["id"]])
    # a plain user can neither see nor revoke another user's keys
    _, other = await new_user(client)
    r = await client.get(f"/api-keys?user_id={user['id']}", headers=bearer(other["access_token"]))
    assert r.status_code == 403
    r = await client.delete(f"/api-keys/{mine['id']}", headers=bearer(other["access_token"]))
    assert r.status_code == 404
    assert (await client.delete(f"/api-keys/{mine['id']}", headers=admin)).status_code == 204
    assert (await client.get("/users/me", headers=bearer(mine["key"]))).status_code == 401


async def test_expired_and_owner_deactivated_keys_stop_at_once(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    expiring = await make_key(client, tokens["access_token"], expires_in_days=1)
    async with client.gatehouse.transaction(write=True) as db:
        await db.execute(
            sa.update(service.ApiKey)
            .where(service.ApiKey.id == uuid.UUID(expiring["id"]))
            .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
        )
    r = await client.get("/users/me", headers=bearer(expiring["key"]))
    assert r.status_code == 401 and error_code(r) == "api_key_expired"

    key = (await make_key(client, tokens["access_token"]))["key"]
    assert (await client.get("/users/me", headers=bearer(key))).status_code == 200  # cached now
    await service.update_user(client.gatehouse, user_id=uuid.UUID(user["id"]), is_active=False)
    r = await client.get("/users/me", headers=bearer(key))
    assert r.status_code == 401 and error_code(r) == "invalid_api_key"


@pytest.mark.parametrize("key", ["gate_", "gate_abc_def", "gate_aaaaaaaaaa_" + "a" * 32, "gate_AAAAAAAAAA_" + "A" * 32])
async def test_malformed_or_unknown_api_keys(client: httpx.AsyncClient, key: str) -> None:
    r = await client.get("/users/me", headers={"X-API-Key": key})
    assert r.status_code == 401 and error_code(r) == "invalid_api_key"


async def test_api_key_with_wrong_secret_is_rejected(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    key = (await make_key(client, tokens["access_token"]))["key"]
    wrong = key[:-1] + ("a" if key[-1] != "a" else "b")
    r = await client.get("/users/me", headers=bearer(wrong))
    assert r.status_code == 401 and error_code(r) == "invalid_api_key"


async def test_api_key_last_used_is_recorded_without_a_write_per_request(settings: Settings, backend: str) -> None:
    async with running(settings) as a, running(settings) as b:
        _, tokens = await new_user(a)
        created = await make_key(a, tokens["access_token"])
        seen_a, seen_b = _statements(a.gatehouse), _statements(b.gatehouse)
        for _ in range(5):
            for instance in (a, b):
                assert (await instance.get("/users/me", headers=bearer(created["key"]))).status_code == 200

        async def settled() -> bool:
            return not a.gatehouse._tasks and not b.gatehouse._tasks

        await _until(settled, "the touches are written")
        writes = [s for s in seen_a + seen_b if s.lstrip().upper().startswith("UPDATE API_KEYS")]
        # One write per interval: with Redis across both instances; without it, one per instance.
        assert len(writes) == (1 if backend == "postgres" else 2), writes
        listed = (await a.get("/api-keys", headers=bearer(tokens["access_token"]))).json()
        assert [k["id"] for k in listed] == [created["id"]] and listed[0]["last_used_at"] is not None


async def test_api_key_revocation_reaches_another_instance(settings: Settings) -> None:
    async with running(settings) as a, running(settings) as b:
        _, tokens = await new_user(a)
        created = await make_key(a, tokens["access_token"])
        assert (await b.get("/users/me", headers=bearer(created["key"]))).status_code == 200
        assert (await a.delete(f"/api-keys/{created['id']}", headers=bearer(tokens["access_token"]))).status_code == 204

        async def b_refuses() -> bool:
            return (await b.get("/users/me", headers=bearer(created["key"]))).status_code == 401

        await _until(b_refuses, "B refuses the key revoked on A")
        r = await b.get("/users/me", headers=bearer(created["key"]))
        assert r.status_code == 401 and error_code(r) == "invalid_api_key"


async def test_cli_keys(settings: Settings, client: httpx.AsyncClient) -> None:
    import json
    import re

    user = await register(client)
    result = await run_cli(
        settings,
        "create-key",
        user["email"],
        "--name",
        "deploy",
        "--scope",
        "users:read",
        "--scope",
        "keys:read",
        "--expires-days",
        "7",
        "--json",
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert re.match(API_KEY_RE, created["key"]) and created["scopes"] == ["keys:read", "users:read"]
    assert (await client.get("/users/me", headers=bearer(created["key"]))).status_code == 200

    result = await run_cli(settings, "list-keys", user["email"], "--json")
    listed = json.loads(result.output)
    assert [k["id"] for k in listed] == [created["id"]] and created["key"] not in result.output
    assert (await run_cli(settings, "list-keys")).output.count(created["prefix"]) == 1

    result = await run_cli(settings, "create-key", user["email"], "--name", "x", "--scope", "admin")
    assert result.exit_code == 1 and "scopes its owner or creator lacks: admin" in result.output
    result = await run_cli(settings, "revoke-key", created["id"])
    assert result.exit_code == 0
    assert (await client.get("/users/me", headers=bearer(created["key"]))).status_code == 401
    result = await run_cli(settings, "revoke-key", created["id"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: No unrevoked API key has the id or prefix '{created['id']}'."
    result = await run_cli(settings, "revoke-key", "not-a-uuid")
    assert result.exit_code == 1


async def test_attack_children_of_a_revoked_key_stop_even_when_a_shared_cache_holds_them(
    make_settings: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    # On SQLite alone each publish empties the in-process cache (the signal file), which would hide a child
    # left in it; a shared cache keeps entries across publishes, so SQLite runs with Redis here too.
    shared = {}
    if backend == "sqlite":
        shared = {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": f"gh-test-{secrets.token_hex(4)}:"}
    try:
        async with running(make_settings(**shared)) as client:
            _, tokens = await new_user(client)
            parent = await make_key(client, tokens["access_token"], scopes=["keys:write", "users:read"])
            child = await make_key(client, parent["key"], scopes=["keys:write", "users:read"])
            grandchild = await make_key(client, child["key"], scopes=["users:read"])
            for key in (parent, child, grandchild):  # each resolved, so each is in the cache
                assert (await client.get("/users/me", headers=bearer(key["key"]))).status_code == 200
            r = await client.delete(f"/api-keys/{parent['id']}", headers=bearer(tokens["access_token"]))
            assert r.status_code == 204
            for key in (parent, child, grandchild):
                r = await client.get("/users/me", headers=bearer(key["key"]))
                assert r.status_code == 401 and error_code(r) == "invalid_api_key", key["name"]
            [row] = await audit_rows(client.gatehouse, "key.revoke")
            assert json_detail(row)["with_children"] == 2
    finally:
        if shared:
            _drop_prefix(shared["redis_url"], shared["redis_prefix"])


async def test_attack_a_memoised_key_or_token_stops_at_its_own_expiry(make_settings: Any) -> None:
    settings = make_settings(local_cache_seconds=3600)  # a memo window far longer than either credential lives
    async with running(settings) as client:
        _, tokens = await new_user(client)
        key = await make_key(client, tokens["access_token"], scopes=["users:read"], expires_in_days=1)
        ends = service.utcnow().replace(microsecond=0) + service.timedelta(seconds=3)
        async with client.gatehouse.transaction(write=True) as db:
            await db.execute(
                sa.update(service.ApiKey).where(service.ApiKey.id == uuid.UUID(key["id"])).values(expires_at=ends)
            )
        token = _forge(settings, tokens["access_token"], exp=int(ends.timestamp()))
        for credential in (key["key"], token):
            assert (await client.get("/users/me", headers=bearer(credential))).status_code == 200
            assert (await client.get("/users/me", headers=bearer(credential))).status_code == 200
            assert credential in client.gatehouse.principals  # answered from the memo
        await asyncio.sleep(ends.timestamp() + 6 - time.time())  # past both ends (the token's with its 5 s leeway)
        r = await client.get("/users/me", headers=bearer(key["key"]))
        assert r.status_code == 401 and error_code(r) == "api_key_expired"
        r = await client.get("/users/me", headers=bearer(token))
        assert r.status_code == 401 and error_code(r) == "token_expired"


# Signing keys and JWKS #######################################################


async def test_rotate_and_retire_signing_keys_under_a_running_service(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    user, before = await new_user(client)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    result = await run_cli(settings, "signing-keys", "rotate")
    assert result.exit_code == 0, result.output
    after = await login(client, user["email"])
    new_kid = jwt.get_unverified_header(after["access_token"])["kid"]
    assert new_kid != old_kid and new_kid in result.output
    for tokens in (before, after):  # both verify
        assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
    listing = (await run_cli(settings, "signing-keys", "list")).output
    assert listing.index(new_kid) < listing.index(old_kid) and listing.count("active") == 2

    result = await run_cli(settings, "signing-keys", "retire", old_kid)
    assert result.exit_code == 0
    r = await client.get("/users/me", headers=bearer(before["access_token"]))
    assert r.status_code == 401 and error_code(r) == "unknown_key"
    assert (await client.get("/users/me", headers=bearer(after["access_token"]))).status_code == 200
    # refreshing the old session issues a token under the new key
    refreshed = (await client.post("/auth/refresh", json={"refresh_token": before["refresh_token"]})).json()
    assert jwt.get_unverified_header(refreshed["access_token"])["kid"] == new_kid
    result = await run_cli(settings, "signing-keys", "retire", old_kid)
    assert result.exit_code == 1 and "No such active signing key" in result.output


async def test_rotation_under_traffic_fails_no_request(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    stop = asyncio.Event()
    statuses: list[int] = []

    async def traffic() -> None:
        current = tokens
        while not stop.is_set():
            statuses.append((await client.get("/users/me", headers=bearer(current["access_token"]))).status_code)
            current = await login(client, user["email"])

    workers = [asyncio.create_task(traffic()) for _ in range(4)]
    for _ in range(3):
        await service.rotate_signing_key(client.gatehouse)
        answered = len(statuses)

        async def five_more(answered: int = answered) -> bool:  # under each new key, however slow the machine
            return len(statuses) >= answered + 5 or any(w.done() for w in workers)  # a failed worker ends it

        await _until(five_more, "five requests after a rotation", attempts=600)
    stop.set()
    await asyncio.gather(*workers)
    assert len(statuses) >= 15 and set(statuses) == {200}


@pytest.mark.parametrize("algorithm, kty", [("EdDSA", "OKP"), ("ES256", "EC"), ("RS256", "RSA")])
async def test_asymmetric_tokens_verify_from_jwks_alone(make_settings: Any, algorithm: str, kty: str) -> None:
    async with running(make_settings(jwt_algorithm=algorithm)) as client:
        _, tokens = await new_user(client)
        r = await client.get("/.well-known/jwks.json")
        assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
        keys = r.json()["keys"]
        header = jwt.get_unverified_header(tokens["access_token"])
        assert header["alg"] == algorithm and [k["kid"] for k in keys] == [header["kid"]]
        assert keys[0]["kty"] == kty and "d" not in keys[0]  # public half only
        public = jwt.PyJWK(keys[0])
        verified = jwt.decode(
            tokens["access_token"], public.key, algorithms=[algorithm], audience="gatehouse", issuer="gatehouse"
        )
        assert verified["typ"] == "access"
        async with client.gatehouse.transaction() as db:
            stored = await db.get(service.SigningKey, header["kid"])
        assert "PRIVATE KEY" not in (stored.private_key or "") and stored.private_key  # sealed at rest
        with pytest.raises(service.ConfigError):
            other = service.TokenIssuer(make_settings(), b"another secret entirely, 32 bytes+")
            other._signing_key(service._material(stored))


async def test_hs256_publishes_no_keys(client: httpx.AsyncClient) -> None:
    await new_user(client)
    assert (await client.get("/.well-known/jwks.json")).json() == {"keys": []}


async def test_key_confusion_hs256_signed_with_public_key(make_settings: Any) -> None:
    async with running(make_settings(jwt_algorithm="EdDSA")) as client:
        _, tokens = await new_user(client)
        kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
        async with client.gatehouse.transaction() as db:
            public_pem = (await db.get(service.SigningKey, kid)).public_key
        import hashlib
        import hmac as hmac_mod

        header_payload = _unsigned({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims(tokens["access_token"]))
        signing_input = header_payload[:-1]
        for secret in (public_pem.encode(), public_pem.strip().encode()):
            mac = hmac_mod.new(secret, signing_input.encode(), hashlib.sha256).digest()
            import base64

            forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
            r = await client.get("/users/me", headers=bearer(forged))
            assert r.status_code == 401 and error_code(r) == "invalid_algorithm"
        for alg in ("none", "NONE"):
            r = await client.get(
                "/users/me", headers=bearer(_unsigned({"alg": alg, "kid": kid}, claims(tokens["access_token"])))
            )
            assert r.status_code == 401 and error_code(r) == "invalid_algorithm"


@pytest.mark.live
@pytest.mark.parametrize("backend", ["sqlite"])
def test_pyjwkclient_verifies_against_the_running_service(make_settings: Any) -> None:
    settings = make_settings(jwt_algorithm="EdDSA")
    server = Server(settings).start()
    try:
        token = server.signup("jwks@example.com")["access_token"]
        client = jwt.PyJWKClient(f"{server.url}/.well-known/jwks.json")
        signing_key = client.get_signing_key_from_jwt(token)
        verified = jwt.decode(token, signing_key.key, algorithms=["EdDSA"], audience="gatehouse", issuer="gatehouse")
        assert verified["sub"] and verified["typ"] == "access"
    finally:
        server.stop()


# Administration ##############################################################


async def test_admin_lists_users_in_stable_keyset_pages(client: httpx.AsyncClient, settings: Settings) -> None:
    _, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    for i in range(7):
        await register(client, f"page{i}@example.com")
    seen: list[str] = []
    cursor = None
    while True:
        r = await client.get("/users", headers=auth, params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8 and len(set(seen)) == 8
    everyone = (await client.get("/users", headers=auth, params={"limit": 200})).json()["items"]
    assert [u["email"] for u in everyone] == seen  # same order, whatever the page size

    def emails(params: dict[str, Any]) -> Any:
        return client.get("/users", headers=auth, params=params)

    assert [u["email"] for u in (await emails({"email": "PAGE1"})).json()["items"]] == ["page1@example.com"]
    assert (await emails({"email": "%"})).json()["items"] == []  # LIKE metacharacters are literal
    assert [u["role"] for u in (await emails({"role": "admin"})).json()["items"]] == ["admin"]
    r = await emails({"cursor": "not-a-cursor"})
    assert r.status_code == 422 and error_code(r) == "invalid_cursor"
    assert (await emails({"limit": 201})).status_code == 422


async def test_admin_routes_need_the_admin_scope(client: httpx.AsyncClient, settings: Settings) -> None:
    _, user_tokens = await new_user(client)
    for method, path in [
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", f"/users/{uuid.uuid4()}"),
        ("PATCH", f"/users/{uuid.uuid4()}"),
        ("DELETE", f"/users/{uuid.uuid4()}"),
        ("DELETE", f"/users/{uuid.uuid4()}/sessions"),
        ("GET", "/audit"),
    ]:
        r = await client.request(method, path, headers=bearer(user_tokens["access_token"]), json={})
        assert r.status_code == 403 and error_code(r) == "insufficient_scope", (method, path)
    _, admin = await admin_tokens(client, settings)
    admin_key = (await make_key(client, admin["access_token"], scopes=["admin"]))["key"]
    assert (await client.get("/users", headers={"X-API-Key": admin_key})).status_code == 200
    reader_key = (await make_key(client, admin["access_token"], scopes=["users:read"]))["key"]
    assert (await client.get("/users", headers={"X-API-Key": reader_key})).status_code == 403


async def test_admin_user_crud_and_force_logout(client: httpx.AsyncClient, settings: Settings) -> None:
    _, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    r = await client.post(
        "/users",
        headers=auth,
        json={"email": "Made@Example.com", "password": PASSWORD, "full_name": "Made", "role": "admin"},
    )
    assert r.status_code == 201 and r.json()["role"] == "admin" and r.json()["email"] == "made@example.com"
    made = r.json()
    assert (await client.get(f"/users/{made['id']}", headers=auth)).json() == made
    r = await client.get(f"/users/{uuid.uuid4()}", headers=auth)
    assert r.status_code == 404 and error_code(r) == "user_not_found"
    assert (await client.get("/users/not-a-uuid", headers=auth)).status_code == 404  # not a route at all

    tokens = await login(client, "made@example.com")
    r = await client.patch(f"/users/{made['id']}", headers=auth, json={"role": "user", "full_name": "Renamed"})
    assert r.status_code == 200 and r.json()["role"] == "user" and r.json()["full_name"] == "Renamed"
    me = (await client.get("/users/me", headers=bearer(tokens["access_token"]))).json()
    assert me["role"] == "user" and me["full_name"] == "Renamed"
    r = await client.patch(f"/users/{made['id']}", headers=auth, json={"role": "owner"})
    assert r.status_code == 422
    r = await client.patch(f"/users/{made['id']}", headers=auth, json={"password_hash": "x"})
    assert r.status_code == 422

    assert (await client.delete(f"/users/{made['id']}/sessions", headers=auth)).status_code == 204
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    tokens = await login(client, "made@example.com")
    key = (await make_key(client, tokens["access_token"]))["key"]
    r = await client.patch(f"/users/{made['id']}", headers=auth, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    for credential in (tokens["access_token"], key):
        assert (await client.get("/users/me", headers=bearer(credential))).status_code == 401
    assert (await client.patch(f"/users/{made['id']}", headers=auth, json={"is_active": True})).status_code == 200
    tokens = await login(client, "made@example.com")

    assert (await client.delete(f"/users/{made['id']}", headers=auth)).status_code == 204
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await client.get(f"/users/{made['id']}", headers=auth)).status_code == 404
    async with client.gatehouse.transaction() as db:
        for model in (service.LoginSession, service.ApiKey, service.ActionToken):
            count = await db.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.user_id == uuid.UUID(made["id"]))
            )
            assert count == 0, model
        events = list(
            await db.scalars(
                sa.select(service.AuditEvent).where(service.AuditEvent.subject_id == uuid.UUID(made["id"]))
            )
        )
    assert {"user.create", "user.update", "user.delete", "sessions.revoke"} <= {e.event for e in events}
    assert not any("made@example.com" in (e.detail or "") for e in events)  # the id survives, the email does not


async def test_last_admin_cannot_be_removed(client: httpx.AsyncClient, settings: Settings) -> None:
    admin, tokens = await admin_tokens(client, settings)
    auth = bearer(tokens["access_token"])
    for method, body in [("PATCH", {"role": "user"}), ("PATCH", {"is_active": False}), ("DELETE", None)]:
        r = await client.request(method, f"/users/{admin['id']}", headers=auth, json=body)
        assert r.status_code == 409 and error_code(r) == "last_admin", (method, body)
    second = await register(client)
    assert (await client.patch(f"/users/{second['id']}", headers=auth, json={"role": "admin"})).status_code == 200
    assert (await client.patch(f"/users/{admin['id']}", headers=auth, json={"role": "user"})).status_code == 200
    r = await client.patch(f"/users/{second['id']}", headers=auth, json={"role": "user"})
    assert r.status_code == 403  # the demoted caller is no longer an admin
    result = await run_cli(settings, "delete-user", second["email"], "--yes")
    assert result.exit_code == 1 and "no active admin" in result.output


async def test_two_admins_demoting_each_other_at_once_leaves_one(client: httpx.AsyncClient, settings: Settings) -> None:
    a, _ = await admin_tokens(client, settings)
    b, _ = await admin_tokens(client, settings)
    results = await asyncio.gather(
        service.update_user(client.gatehouse, user_id=uuid.UUID(a["id"]), role="user"),
        service.update_user(client.gatehouse, user_id=uuid.UUID(b["id"]), role="user"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["LastAdmin", "UserPublic"]
    async with client.gatehouse.transaction() as db:
        assert (
            await db.scalar(sa.select(sa.func.count()).select_from(service.User).where(service.User.role == "admin"))
            == 1
        )


# Password reset and email verification #######################################


class Receiver:
    """A real local HTTP endpoint standing in for a mail-sending service."""

    def __init__(self, fail_first: int = 0, script: list[int | str] | None = None):
        """`script`: how to answer each attempt in turn (a status, or "hang" until closed); then 204."""
        import http.server
        import threading

        self.messages: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.failures_left = fail_first
        self.script = list(script or [])
        self.attempts = 0
        self.released = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = self.rfile.read(int(self.headers["content-length"]))
                outer.attempts += 1
                answer = outer.script.pop(0) if outer.script else 204
                if answer == "hang":
                    outer.released.wait(30)
                    return
                if outer.failures_left > 0 or answer != 204:
                    outer.failures_left = max(0, outer.failures_left - 1)
                    self.send_response(503 if answer == 204 else int(answer))
                else:
                    outer.messages.append(json.loads(body))
                    outer.headers.append({**dict(self.headers), "_body": body.decode()})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.close()


def token_of(link: str) -> str:
    return link.split("token=", 1)[1]


async def test_password_reset_end_to_end(make_settings: Any, receiver: Receiver) -> None:
    async with running(make_settings(webhook_url=receiver.url, webhook_secret="hook-signing-secret")) as client:
        user, first = await new_user(client)
        other = await login(client, user["email"])
        r = await client.post("/auth/password-reset/request", json={"email": user["email"].upper()})
        assert r.status_code == 202 and r.json() == {"status": "accepted"}
        await _until(lambda: asyncio.sleep(0, len(receiver.messages) == 1), "the reset message is delivered")
        message = receiver.messages[0]
        assert message["type"] == "password_reset" and message["email"] == user["email"]
        import hashlib
        import hmac as hmac_mod

        sent = receiver.headers[0]
        expected = hmac_mod.new(b"hook-signing-secret", sent["_body"].encode(), hashlib.sha256).hexdigest()
        assert sent["x-gatehouse-signature"] == f"sha256={expected}"

        token = token_of(message["link"])
        body = {"token": token, "new_password": "reset to this one"}
        r = await client.post("/auth/password-reset/confirm", json=body)
        assert r.status_code == 200 and r.json() == {"sessions_ended": 2, "api_keys_revoked": 0, "factors_removed": []}
        for tokens in (first, other):
            assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 401
        assert (
            await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        ).status_code == 401
        await login(client, user["email"], "reset to this one")
        r = await client.post("/auth/password-reset/confirm", json={**body, "new_password": "and again this"})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"  # single use
        async with client.gatehouse.transaction() as db:
            stored = await db.scalar(sa.select(service.ActionToken.token_hash))
        assert stored != token and stored == service.hash_secret(token)


async def test_password_reset_does_not_enumerate(make_settings: Any, receiver: Receiver) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user = await register(client)
        answers = []
        for email in (user["email"], "nobody@example.com", "not an email"):
            r = await client.post("/auth/password-reset/request", json={"email": email})
            answers.append((r.status_code, r.json(), sorted(r.headers.keys())))
        assert answers[0] == answers[1] == answers[2]
        await _until(lambda: asyncio.sleep(0, not client.gatehouse._tasks), "every request's lookup")
        await messages_of(receiver, "password_reset")  # queued by then; the mail worker sends it a moment later
        assert [m["email"] for m in receiver.messages] == [user["email"]]


async def test_reset_tokens_expire_and_die_with_the_password(client: httpx.AsyncClient, settings: Settings) -> None:
    user = await register(client)
    gh = client.gatehouse
    first = token_of(await service.password_reset_link(gh, user_id=uuid.UUID(user["id"])))
    second = token_of(await service.password_reset_link(gh, user_id=uuid.UUID(user["id"])))
    async with gh.transaction(write=True) as db:
        await db.execute(
            sa.update(service.ActionToken)
            .where(service.ActionToken.token_hash == service.hash_secret(first))
            .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
        )
    r = await client.post("/auth/password-reset/confirm", json={"token": first, "new_password": "brand new pass"})
    assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"
    third = token_of(await service.password_reset_link(gh, user_id=uuid.UUID(user["id"])))
    assert (
        await client.post("/auth/password-reset/confirm", json={"token": third, "new_password": "brand new pass"})
    ).status_code == 200
    r = await client.post("/auth/password-reset/confirm", json={"token": second, "new_password": "another pass!"})
    assert r.status_code == 400  # other outstanding links died with the old password
    r = await client.post("/auth/password-reset/confirm", json={"token": "x" * 43, "new_password": "another pass!"})
    assert r.status_code == 400


async def test_webhook_delivery_retries(make_settings: Any) -> None:
    receiver = Receiver(fail_first=2)
    try:
        async with running(make_settings(webhook_url=receiver.url)) as client:
            user = await register(client)
            assert (await client.post("/auth/password-reset/request", json={"email": user["email"]})).status_code == 202
            await _until(lambda: asyncio.sleep(0, len(receiver.messages) == 1), "delivery after two failures")
            assert receiver.failures_left == 0
    finally:
        receiver.close()


@pytest.mark.parametrize("backend", ["sqlite"])  # no database or Redis involved
@pytest.mark.parametrize(
    "script, delivered, attempts",
    [
        ([400], False, 1),  # the receiver refuses the message: retrying will not help
        ([422], False, 1),
        ([408, 204], True, 2),  # request timeout and too many requests are worth another try
        ([429, 429, 204], True, 3),
        ([503, 500, 204], True, 3),
        (["hang", 204], True, 2),  # no answer within WEBHOOK_TIMEOUT: tried again
        ([503, "hang", 502], False, 3),  # MAIL_ATTEMPTS spent: gives up, and says so
    ],
)
async def test_webhook_delivery_failures(
    make_settings: Any, caplog: Any, script: list[Any], delivered: bool, attempts: int
) -> None:
    import logging

    receiver = Receiver(script=script)
    try:
        settings = make_settings(
            webhook_url=receiver.url, webhook_timeout=0.3, mail_attempts=3, mail_retry_seconds=0.01
        )
        async with running(settings) as client:
            with caplog.at_level(logging.WARNING, logger="gatehouse"):
                assert await service.deliver(
                    client.gatehouse,
                    kind="password_reset",
                    email="a@example.com",
                    link="http://app.test/reset?token=secret-link",
                )  # queued
                await wait_mail_done(client.gatehouse)
                [row] = await mail_audit(client.gatehouse)
    finally:
        receiver.close()
    assert (row.event == "mail.sent", receiver.attempts) == (delivered, attempts)
    assert json.loads(row.detail)["attempts"] == attempts
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == (0 if delivered else 1)
    assert delivered or f"failed for good after {attempts} attempt(s)" in errors[0]
    assert "secret-link" not in caplog.text


async def test_cli_reset_link(settings: Settings, client: httpx.AsyncClient) -> None:
    user = await register(client)
    result = await run_cli(settings, "reset-link", user["email"])
    assert result.exit_code == 0 and "token=" in result.output
    token = token_of(result.output.strip())
    assert (
        await client.post("/auth/password-reset/confirm", json={"token": token, "new_password": "chosen by cli"})
    ).status_code == 200
    await login(client, user["email"], "chosen by cli")
    assert (await run_cli(settings, "reset-link", "ghost@example.com")).exit_code == 1


async def test_email_verification(make_settings: Any, receiver: Receiver) -> None:
    settings = make_settings(webhook_url=receiver.url, require_verified_email=True)
    async with running(settings) as client:
        user = await register(client)
        r = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        assert r.status_code == 403 and error_code(r) == "email_not_verified"
        async with running(make_settings(webhook_url=receiver.url)) as lenient:  # to get a session
            tokens = await login(lenient, user["email"])
            assert (
                await lenient.post("/auth/verify/request", headers=bearer(tokens["access_token"]))
            ).status_code == 202
            await _until(lambda: asyncio.sleep(0, len(receiver.messages) == 1), "the verification message")
        message = receiver.messages[0]
        assert message["type"] == "email_verification" and message["email"] == user["email"]
        r = await client.post("/auth/verify/confirm", json={"token": token_of(message["link"])})
        assert r.status_code == 200 and r.json()["email_verified_at"] is not None
        r = await client.post("/auth/verify/confirm", json={"token": token_of(message["link"])})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"
        tokens = await login(client, user["email"])
        me = (await client.get("/users/me", headers=bearer(tokens["access_token"]))).json()
        assert me["email_verified_at"] is not None
        # an admin's change of address applies at once, and the new address must be verified again
        changed = await service.update_user(client.gatehouse, user_id=uuid.UUID(user["id"]), email="moved@example.com")
        assert changed.email_verified_at is None


# Audit log ###################################################################


async def test_audit_records_security_events_without_secrets(client: httpx.AsyncClient, settings: Settings) -> None:
    import json

    admin, admin_session = await admin_tokens(client, settings)
    auth = bearer(admin_session["access_token"])
    user, tokens = await new_user(client)
    await client.post("/auth/login", json={"email": user["email"], "password": "wrong password!"})
    key = await make_key(client, tokens["access_token"])
    await client.delete(f"/api-keys/{key['id']}", headers=bearer(tokens["access_token"]))
    await client.post(
        "/users/me/password",
        headers=bearer(tokens["access_token"]),
        json={"current_password": PASSWORD, "new_password": "second password"},
    )
    await client.patch(f"/users/{user['id']}", headers=auth, json={"role": "admin"})
    await service.rotate_signing_key(client.gatehouse)
    await client.post("/auth/logout", headers=bearer(tokens["access_token"]))

    r = await client.get("/audit", headers=auth, params={"user_id": user["id"], "limit": 200})
    assert r.status_code == 200
    events = r.json()["items"]
    kinds = [(e["event"], e["outcome"]) for e in events]
    for expected in [
        ("user.register", "success"),
        ("auth.login", "success"),
        ("auth.login", "failure"),
        ("key.create", "success"),
        ("key.revoke", "success"),
        ("user.password_change", "success"),
        ("user.update", "success"),
        ("auth.logout", "success"),
    ]:
        assert expected in kinds, expected
    times = [e["at"] for e in events]
    assert times == sorted(times, reverse=True)
    role_change = next(e for e in events if e["event"] == "user.update")
    assert role_change["actor_id"] == admin["id"] and role_change["detail"]["role"] == "admin"
    assert role_change["ip"] == "127.0.0.1"
    dump = json.dumps(events)
    for secret in (
        PASSWORD,
        "second password",
        "wrong password!",
        key["key"],
        tokens["access_token"],
        tokens["refresh_token"],
        user["email"],
    ):
        assert secret not in dump
    rotated = (await client.get("/audit", headers=auth, params={"event": "signing_key.rotate"})).json()["items"]
    assert len(rotated) == 2  # the first key, made on first use, and the explicit rotation
    later = (await client.get("/audit", headers=auth, params={"since": "2999-01-01T00:00:00Z"})).json()["items"]
    assert later == []
    page = (await client.get("/audit", headers=auth, params={"limit": 2})).json()
    following = (await client.get("/audit", headers=auth, params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert len(page["items"]) == len(following["items"]) == 2
    assert {e["id"] for e in page["items"]}.isdisjoint(e["id"] for e in following["items"])

    result = await run_cli(settings, "audit", "--user", user["email"], "--event", "auth.login", "--json")
    assert result.exit_code == 0
    assert {e["outcome"] for e in json.loads(result.output)} == {"success", "failure"}
    result = await run_cli(settings, "audit", "--since", "yesterday")
    assert result.exit_code == 2 and "Invalid value for '--since'" in result.output  # Typer's own parsing


async def test_queued_audit_rows_are_written_on_clean_shutdown(settings: Settings) -> None:
    async with running(settings) as client:
        user = await register(client)
        r = await client.post("/auth/login", json={"email": user["email"], "password": "wrong password!"})
        assert r.status_code == 401
    async with running(settings) as client:
        async with client.gatehouse.transaction() as db:
            failures = await db.scalar(
                sa.select(sa.func.count())
                .select_from(service.AuditEvent)
                .where(service.AuditEvent.event == "auth.login", service.AuditEvent.outcome == "failure")
            )
    assert failures == 1


async def test_a_flush_waits_for_the_flush_already_under_way(client: httpx.AsyncClient) -> None:
    """A reader that flushes first (as an admin's audit query or shutdown does) sees every row queued
    before it, even while the background flush that took them is still writing."""
    gh = client.gatehouse
    for i in range(3):
        gh.audit_later(service._audit("test.flush", service.CLI, detail=i))
    background = asyncio.create_task(gh.flush_audit())  # the batch's own flush, already holding the rows
    await asyncio.sleep(0)
    await gh.flush_audit()
    async with gh.transaction() as db:
        written = await db.scalar(
            sa.select(sa.func.count()).select_from(service.AuditEvent).where(service.AuditEvent.event == "test.flush")
        )
    await background
    assert written == 3


def _asserted_strings(source: str) -> set[str]:
    """Strings the tests check: in an assert, in the list a loop of asserts walks, or the event a query for
    audit rows names."""
    import ast

    found: set[str] = set()

    def strings(node: ast.AST) -> set[str]:
        return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert):
            found |= strings(node)
        elif isinstance(node, ast.For | ast.AsyncFor) and any(isinstance(n, ast.Assert) for n in ast.walk(node)):
            found |= strings(node.iter)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("audit_rows", "list_audit", "audited"):
                found |= strings(node)
            found |= {s for kw in node.keywords if kw.arg == "params" for s in strings(kw.value)}
    return found


def test_every_audit_event_is_asserted_by_some_test() -> None:
    with open(__file__) as fh:
        assert sorted(service.AUDIT_EVENTS - _asserted_strings(fh.read())) == []


async def test_each_account_security_action_writes_its_audit_row(make_settings: Any, receiver: "Receiver") -> None:
    import pyotp

    settings = make_settings(webhook_url=receiver.url, refresh_grace_seconds=0)
    async with running(settings) as client:
        user, tokens = await new_user(client)
        uid, auth = uuid.UUID(user["id"]), bearer(tokens["access_token"])

        async def audited(event: str, outcome: str = "success") -> dict[str, Any]:
            await settle(client.gatehouse)
            [row] = await audit_rows(client.gatehouse, event, outcome)
            assert row.subject_id == uid, event
            return json_detail(row)

        assert (await client.post("/auth/verify/request", headers=auth)).status_code == 202
        await audited("user.email_verify_request")
        [mail] = await messages_of(receiver, "email_verification")
        assert (await client.post("/auth/verify/confirm", json={"token": token_of(mail["link"])})).status_code == 200
        await audited("user.email_verified")
        r = await client.patch("/users/me", headers=auth, json={"email": "moved@example.com"})
        assert r.status_code == 200, r.text
        await audited("user.email_change_request")
        await audited("user.email_change_notice")
        assert (await client.post("/auth/password-reset/request", json={"email": user["email"]})).status_code == 202
        await audited("user.password_reset_request")

        others = await login(client, user["email"])
        assert (await client.post("/auth/logout-others", headers=auth)).status_code == 204
        assert (await audited("auth.logout_others"))["sessions"] == 1
        assert (await client.get("/users/me", headers=bearer(others["access_token"]))).status_code == 401
        assert (await client.post("/auth/logout-all", headers=auth)).status_code == 204
        await audited("auth.logout_all")

        tokens = await login(client, user["email"])
        rotated = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        await asyncio.sleep(0.01)
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "refresh_token_reused"
        reused = await audited("auth.refresh_reuse", "failure")
        assert reused["session"] == claims(rotated.json()["access_token"])["sid"]

        result = await run_cli(settings, "set-password", user["email"], "--password-stdin", input=PASSWORD)
        assert result.exit_code == 0, result.output
        await audited("user.password_set")

        tokens = await login(client, user["email"])
        access = tokens["access_token"]
        r = await client.post("/mfa/totp", headers=bearer(access), json={"password": PASSWORD})
        assert r.status_code == 200, r.text
        await audited("mfa.totp_enroll")
        totp = pyotp.TOTP(r.json()["secret"])
        wrong = f"{(int(totp.now()) + 1) % 10**6:06d}"
        r = await client.post("/mfa/totp/confirm", headers=bearer(access), json={"code": wrong})
        assert r.status_code == 401 and error_code(r) == "invalid_otp"
        await audited("mfa.totp_confirm", "failure")  # a success is mfa.totp_enabled
        r = await client.post("/mfa/totp/confirm", headers=bearer(access), json={"code": totp.now()})
        assert r.status_code == 200, r.text
        codes = r.json()["recovery_codes"]
        await audited("mfa.totp_enabled")
        await audited("mfa.undo_link_sent")
        r = await client.post("/mfa/recovery-codes", headers=bearer(access), json={"recovery_code": codes[0]})
        assert r.status_code == 200, r.text
        await audited("mfa.recovery_codes_replaced")
        key = SoftAuthenticator()
        r = await add_passkey(client, access, key, proof={"recovery_code": r.json()["recovery_codes"][0]})
        assert r.status_code == 201, r.text
        passkey_id = r.json()["id"]
        assert (await audited("mfa.passkey_added"))["passkey"] == passkey_id
        proof = await passkey_proof(client, access, key)
        r = await client.request("DELETE", f"/mfa/passkeys/{passkey_id}", headers=bearer(access), json=proof)
        assert r.status_code == 204, r.text
        assert (await audited("mfa.passkey_removed"))["passkey"] == passkey_id

        kid = jwt.get_unverified_header(access)["kid"]
        assert (await run_cli(settings, "signing-keys", "rotate")).exit_code == 0
        result = await run_cli(settings, "signing-keys", "retire", kid)
        assert result.exit_code == 0, result.output
        [retired] = await audit_rows(client.gatehouse, "signing_key.retire")
        assert json_detail(retired) == {"kid": kid}
        assert (await client.get("/users/me", headers=bearer(access))).status_code == 401


async def test_each_federated_action_writes_its_audit_row(
    make_settings: Any, provider: "OidcProvider", receiver: "Receiver"
) -> None:
    async with running(fed_settings(make_settings, provider, webhook_url=receiver.url)) as client:
        tokens = (await fed_sign_in(client)).json()
        uid = uuid.UUID(claims(tokens["access_token"])["sub"])
        [callback] = await audit_rows(client.gatehouse, "auth.oauth_callback")
        assert callback.subject_id == uid
        assert (await client.post("/auth/email-code", headers=bearer(tokens["access_token"]))).status_code == 202
        await settle(client.gatehouse)
        [sent] = await audit_rows(client.gatehouse, "auth.email_code_sent")
        assert sent.subject_id == uid

        victim = await register(client)
        provider.user.update(sub="another-subject", email=victim["email"], email_verified=True)
        link_token = (await fed_sign_in(client)).json()["error"]["details"][0]["link_token"]
        assert (await client.post("/auth/oauth/link/mail", json={"link_token": link_token})).status_code == 202
        await settle(client.gatehouse)
        [mailed] = await audit_rows(client.gatehouse, "identity.link_mail")
        assert str(mailed.subject_id) == victim["id"]


# Operations ##################################################################


@pytest.mark.live
def test_json_logs_carry_request_ids_and_never_a_secret(make_settings: Any, tmp_path: Any) -> None:
    import json

    hook = Receiver()
    log_path = tmp_path / "server.log"
    settings = make_settings(log_format="json", webhook_url=hook.url, slow_query_ms=0.001)
    server = Server(settings, log_path=log_path).start()
    secrets_used: list[str] = [PASSWORD, "a different password", "wrong password!!"]
    request_ids = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            email = "logged@example.com"
            c.post("/auth/register", json={"email": email, "password": PASSWORD})
            c.post("/auth/login", json={"email": email, "password": "wrong password!!"})
            tokens = c.post(
                "/auth/login", json={"email": email, "password": PASSWORD}, headers={"X-Request-ID": "trace-abc.123"}
            ).json()
            access = tokens["access_token"]
            r = c.get("/users/me", headers=bearer(access))
            request_ids.append(r.headers["x-request-id"])
            key = c.post("/api-keys", headers=bearer(access), json={"name": "k"}).json()["key"]
            c.get("/users/me", headers={"X-API-Key": key})
            refreshed = c.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
            c.post(
                "/users/me/password",
                headers=bearer(access),
                json={"current_password": PASSWORD, "new_password": "a different password"},
            )
            c.post("/auth/password-reset/request", json={"email": email})
            for _ in range(50):
                if hook.messages:
                    break
                time.sleep(0.1)
            secrets_used += [
                access,
                tokens["refresh_token"],
                key,
                refreshed["access_token"],
                refreshed["refresh_token"],
                token_of(hook.messages[0]["link"]),
            ]
    finally:
        server.stop()
        hook.close()
    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    access_lines = [r for r in records if r["logger"] == "gatehouse.access"]
    assert len(access_lines) >= 9
    for line in access_lines:
        assert {"time", "level", "request_id", "method", "route", "status", "duration_ms", "client_ip"} <= set(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"]), line["time"]
    stamps = [datetime.fromisoformat(r["time"]) for r in access_lines]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] < timedelta(minutes=5)  # in order, and now
    assert any(r["request_id"] == "trace-abc.123" and r["route"] == "/auth/login" for r in access_lines)
    me = next(r for r in access_lines if r["request_id"] == request_ids[0])
    assert me["route"] == "/users/me" and me["status"] == 200 and me["user_id"] and me["client_ip"] == "127.0.0.1"
    assert any(r.get("key_id") for r in access_lines)
    assert any(r["logger"] == "gatehouse.sql" and r["duration_ms"] >= 0 for r in records)  # every statement here
    text = log_path.read_text()
    for secret in secrets_used:
        assert secret not in text, f"a secret appeared in the logs: {secret[:12]}…"


async def test_request_ids_timing_and_security_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["server-timing"].startswith("app;dur=") and float(r.headers["x-process-time"]) >= 0
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store" and "strict-transport-security" not in r.headers
    for bad in ("has spaces", "x" * 200, "<script>", ""):
        r = await client.get("/nope", headers={"X-Request-ID": bad})
        assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) == 32
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    transport = httpx.ASGITransport(app=client._transport.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://gatehouse.test") as secure:
        r = await secure.get("/health/live")
        assert r.headers["strict-transport-security"].startswith("max-age=")


async def test_metrics_are_scraped_and_can_be_protected_or_disabled(make_settings: Any) -> None:
    async with running(
        make_settings(refresh_grace_seconds=0, rate_auth_ip="100/m", rate_login_failures_account_ip="1/h")
    ) as client:
        user, tokens = await new_user(client)
        await client.get("/users/me", headers=bearer(tokens["access_token"]))
        await client.post("/auth/login", json={"email": user["email"], "password": "nope nope"})
        await client.post("/auth/login", json={"email": user["email"], "password": "nope nope"})
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        await asyncio.sleep(0.01)
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        r = await client.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
    for needle in [
        'gatehouse_requests_total{method="GET",route="/users/me",status="200"}',
        'gatehouse_request_seconds_bucket{le="0.001",method="GET",route="/users/me"}',
        'gatehouse_logins_total{outcome="success"}',
        'gatehouse_logins_total{outcome="failure"}',
        'gatehouse_rate_limited_total{limit="login-fail"}',
        "gatehouse_refresh_reuse_total",
        'gatehouse_cache_total{result="hit"}',
        "gatehouse_db_pool_in_use",
        "gatehouse_bcrypt_queue",
    ]:
        assert needle in text, needle
    async with running(make_settings(metrics_token="scrape-me-please")) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=bearer("wrong"))).status_code == 401
        assert (await client.get("/metrics", headers=bearer("scrape-me-please"))).status_code == 200
    async with running(make_settings(metrics_enabled=False)) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_attack_made_up_methods_do_not_grow_the_metrics(client: httpx.AsyncClient) -> None:
    """An attacker sending a new HTTP method per request (some servers pass any token through;
    ASGI here) must not add a metrics series per request: such methods count together as OTHER."""
    import re

    def methods(text: str) -> set[str]:
        return set(re.findall(r'method="([^"]*)"', text))

    def other(text: str) -> float:
        found = re.search(
            r'^gatehouse_requests_total\{method="OTHER",route="/users/me",status="405"\} (\S+)$', text, re.M
        )
        return float(found[1]) if found else 0.0

    await client.get("/metrics")  # so that `before` already shows the scrape's own GET
    before = (await client.get("/metrics")).text
    invented = [f"M{uuid.uuid4().hex[:8].upper()}" for _ in range(25)]
    for method in invented:
        assert (await client.request(method, "/users/me")).status_code == 405
    after = (await client.get("/metrics")).text
    assert methods(after) - methods(before) <= {"OTHER"} and not set(invented) & methods(after)
    assert other(after) - other(before) == 25


async def test_request_metrics_count_every_request_and_its_bucket(settings: Settings) -> None:
    """Requests are tallied and added to the metrics in batches: a scrape still counts every
    request, and each latency lands in the bucket prometheus-client's own observe() would choose."""
    import re

    from prometheus_client import CollectorRegistry, Histogram

    async with running(settings) as client:

        def scraped(text: str, sample: str) -> float:
            found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
            return float(found[1]) if found else 0.0

        counted = 'gatehouse_requests_total{method="GET",route="/health/live",status="200"}'
        everything = 'gatehouse_request_seconds_bucket{le="+Inf",method="GET",route="/health/live"}'
        before = (await client.get("/metrics")).text
        for _ in range(37):
            assert (await client.get("/health/live")).status_code == 200
        after = (await client.get("/metrics")).text  # no wait: the scrape adds what is pending
        assert scraped(after, counted) - scraped(before, counted) == 37
        assert scraped(after, everything) - scraped(before, everything) == 37

    # The same latencies through the tally and through observe(): the same buckets, count and sum.
    metrics = service.metrics(settings)
    reference = Histogram(
        "reference_seconds", "", ["route", "method"], buckets=metrics.LATENCY_BUCKETS, registry=CollectorRegistry()
    )
    route = f"/tally-{uuid.uuid4().hex}"
    latencies = [0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.07, 0.1, 4.99, 5, 5.01, 60]
    for seconds in latencies:
        metrics.request_done(route, "GET", 200, seconds)
        reference.labels(route, "GET").observe(seconds)
    metrics.flush_requests()

    def samples(histogram: Any, prefix: str) -> dict[tuple[str, str], float]:
        return {
            (s.name.removeprefix(prefix), s.labels.get("le", "")): s.value
            for family in histogram.collect()
            for s in family.samples
            if s.labels.get("route") == route and not s.name.endswith("_created")
        }

    ours = samples(metrics.latency, "gatehouse_request_seconds")
    assert ours == samples(reference, "reference_seconds") and ours[("_count", "")] == len(latencies)
    assert metrics.requests.labels(route, "GET", "200")._value.get() == len(latencies)


def _served_by_each_worker(prom_dir: Any, route: str) -> list[float]:
    """Each worker's own count of `GET route` answered 200, read from its counter file alone."""
    import shutil

    from prometheus_client import CollectorRegistry, multiprocess

    counts = []
    for path in sorted(prom_dir.glob("counter_*.db")):
        alone = prom_dir.parent / f"alone-{path.stem}"
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        labels = {"route": route, "method": "GET", "status": "200"}
        counts.append(registry.get_sample_value("gatehouse_requests_total", labels) or 0.0)
    return counts


@pytest.mark.live
@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_add_up_across_uvicorn_workers(make_settings: Any, tmp_path: Any) -> None:
    import concurrent.futures
    import re

    prom = tmp_path / "prom"
    server = Server(make_settings(prometheus_multiproc_dir=str(prom)), "--workers", "2").start()
    sent = 0

    def one(_: int) -> int:
        # A fresh connection each time, 16 at once: whichever worker accepts first serves it.
        return httpx.get(f"{server.url}/health/ready", timeout=10).status_code  # nobody else calls this route

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for _ in range(25):  # until both workers have served some (the first round nearly always does)
                assert list(pool.map(one, range(40))) == [200] * 40
                sent += 40
                if sum(1 for n in _served_by_each_worker(prom, "/health/ready") if n) >= 2:
                    break
        for _ in range(50):  # each worker adds its tally to its file every second
            per_worker = _served_by_each_worker(prom, "/health/ready")
            if sum(per_worker) == sent:
                break
            time.sleep(0.1)
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker), per_worker  # both workers served
    served = re.search(r'gatehouse_requests_total\{method="GET",route="/health/ready",status="200"\} (\S+)', text)
    assert served and float(served[1]) == sum(per_worker) == sent  # the scrape sums every worker, exactly


async def test_cors_trusted_hosts_and_body_limit(make_settings: Any) -> None:
    settings = make_settings(
        cors_origins="https://app.example.com", allowed_hosts="gatehouse.test", max_body_bytes=2048
    )
    async with running(settings) as client:
        preflight = {
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        r = await client.options("/auth/login", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.com"
        r = await client.options("/auth/login", headers={**preflight, "Origin": "https://evil.example"})
        assert r.headers.get("access-control-allow-origin") is None
        r = await client.get("/health/live", headers={"Host": "evil.example"})
        assert r.status_code == 400 and error_code(r) == "invalid_host"
        big = {"email": "a@example.com", "password": PASSWORD, "full_name": "x" * 4000}
        r = await client.post("/auth/register", json=big)
        assert r.status_code == 413 and error_code(r) == "payload_too_large"

        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1000

        r = await client.post("/auth/login", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and error_code(r) == "payload_too_large"
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        Settings(cors_origins="*", cors_allow_credentials=True)


async def test_edge_reads_answer_exactly_as_their_routes(make_settings: Any) -> None:
    """The edge answers GET /users/me and /health/live without FastAPI; a CORS request (Origin set,
    CORS_ORIGINS configured) still takes the route. Both must give the same answer, errors included."""
    origin = "https://app.example.com"
    async with running(make_settings(cors_origins=origin)) as client:
        _, tokens = await new_user(client)
        reader = (await make_key(client, tokens["access_token"], scopes=["users:read"]))["key"]
        keys_only = (await make_key(client, tokens["access_token"], scopes=["keys:read"]))["key"]
        cases = [
            ("/users/me", bearer(tokens["access_token"]), 200),
            ("/users/me", {"X-API-Key": reader}, 200),
            ("/users/me", bearer(keys_only), 403),
            ("/users/me", {}, 401),
            ("/users/me", bearer("not.a.token"), 401),
            ("/users/me", bearer(tokens["refresh_token"]), 401),
            ("/health/live", {}, 200),
        ]
        before = (await client.get("/metrics")).text
        for path, headers, status in cases:
            edge = await client.get(path, headers=headers)
            route = await client.get(path, headers={**headers, "Origin": origin})
            assert route.headers["access-control-allow-origin"] == origin  # it did go through the app
            assert "access-control-allow-origin" not in edge.headers
            assert edge.status_code == route.status_code == status, (path, headers, edge.text, route.text)
            body, routed = edge.json(), route.json()
            if status != 200:
                assert body["error"].pop("request_id") == edge.headers["x-request-id"]
                routed["error"].pop("request_id")
            assert body == routed, path
            for name in ("content-type", "content-length", "cache-control", "www-authenticate", "retry-after"):
                assert edge.headers.get(name) == route.headers.get(name), (path, name)
            for name in ("x-content-type-options", "referrer-policy", "x-frame-options", "x-request-id"):
                assert edge.headers[name] and route.headers[name]
        after = (await client.get("/metrics")).text

    def served(text: str, status: str) -> float:
        sample = rf'gatehouse_requests_total\{{method="GET",route="/users/me",status="{status}"\}} (\S+)'
        found = re.search(sample, text)
        return float(found[1]) if found else 0.0

    for status, count in (("200", 4), ("401", 6), ("403", 2)):  # the edge's answers count under the route too
        assert served(after, status) - served(before, status) == count, status


async def test_docs_are_off_in_production_by_default(make_settings: Any) -> None:
    async with running(make_settings()) as client:
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
    async with running(make_settings(environment="production")) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404
    async with running(make_settings(environment="production", docs_enabled=True)) as client:
        assert (await client.get("/docs")).status_code == 200


@pytest.mark.live
def test_graceful_shutdown_finishes_requests_and_flushes_audit(make_settings: Any, tmp_path: Any) -> None:
    import concurrent.futures
    import signal

    settings = make_settings(bcrypt_rounds=13)  # a login takes a noticeable while
    server = Server(settings).start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/auth/register", json={"email": "slow@example.com", "password": PASSWORD}).status_code == 201
        assert c.post("/auth/login", json={"email": "slow@example.com", "password": "not it at all"}).status_code == 401
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            idle = _thread_cpu_ticks(server.proc.pid)
            pending = pool.submit(c.post, "/auth/login", json={"email": "slow@example.com", "password": PASSWORD})
            for _ in range(1000):  # until a bcrypt thread is busy with this login's password
                busy = _thread_cpu_ticks(server.proc.pid)
                if any(ticks - idle.get(tid, 0) >= 5 for tid, ticks in busy.items()):
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the login never reached the password check")
            assert not pending.done()
            server.proc.send_signal(signal.SIGTERM)
            assert pending.result().status_code == 200  # in flight when the signal came: finished
    assert server.proc.wait(timeout=30) == -signal.SIGTERM  # uvicorn re-raises the signal once done
    result = _cli_process(settings, "audit", "--event", "auth.login", "--json")
    import json

    outcomes = sorted(e["outcome"] for e in json.loads(result.stdout))
    assert outcomes == ["failure", "success"]  # the queued failure was written on the way out


async def test_check_config(make_settings: Any) -> None:
    settings = make_settings(secret_key="a-very-secret-value-that-is-long-enough")
    result = await run_cli(settings, "check-config")
    assert result.exit_code == 0, result.output
    assert "SECRET_KEY=********" in result.output and "a-very-secret-value" not in result.output
    assert result.output.strip().endswith("rules met")
    result = await run_cli(
        make_settings(database_url="postgresql://u:hunter2@127.0.0.1:1/x", db_pool_timeout=1), "check-config"
    )
    assert result.exit_code == 1 and "problem: DATABASE_URL: the database does not answer" in result.output
    assert "hunter2" not in result.output
    result = await run_cli(make_settings(redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2), "check-config")
    assert result.exit_code == 1 and "problem: REDIS_URL" in result.output
    env = {**settings_env(settings), "ENVIRONMENT": "production", "SECRET_KEY": "changethis"}
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["check-config"], env=env)
    assert result.exit_code == 1 and result.output.startswith("problem: SECRET_KEY is a placeholder"), result.output


@pytest.mark.live
async def test_changed_secret_key_with_sealed_signing_keys_is_a_startup_and_config_problem(
    make_settings: Any, backend: str
) -> None:
    import re

    async with running(make_settings(jwt_algorithm="EdDSA")) as client:
        user, tokens = await new_user(client)
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    changed = make_settings(jwt_algorithm="EdDSA", secret_key="another-secret-" + "z" * 40)
    problem = f"SECRET_KEY cannot unseal signing key(s) {kid}: was SECRET_KEY changed?"
    with pytest.raises(service.ConfigError) as refused:  # not a service that answers every login with 500
        async with running(changed):
            pass
    assert str(refused.value).startswith(problem)
    result = await run_cli(changed, "check-config")
    assert result.exit_code == 1 and f"problem: {problem}" in result.output, result.output
    if backend == "sqlite":  # the real process says so and exits
        with pytest.raises(AssertionError, match=re.escape(problem)):
            Server(changed).start()
    # what the message advises works: retire the key, and the service starts and signs with a new one
    assert (await run_cli(changed, "signing-keys", "retire", kid)).exit_code == 0
    assert (await run_cli(changed, "check-config")).exit_code == 0
    async with running(changed) as client:
        fresh = await login(client, user["email"])
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] != kid
        assert (await client.get("/users/me", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_embedding_in_a_host_app(settings: Settings) -> None:
    from typing import Annotated

    from fastapi import FastAPI

    host = FastAPI()
    service.mount_gatehouse(host, "/identity", settings)

    @host.get("/reports")
    async def reports(principal: service.CurrentUser) -> dict[str, str]:
        return {"for": principal.user["email"]}

    @host.get("/admin-report")
    async def admin_report(principal: Annotated[service.Principal, service.require_scope("admin")]) -> dict[str, str]:
        return {"ok": "yes"}

    async with host.router.lifespan_context(host):
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as c:
            email = "embedded@example.com"
            assert (
                await c.post("/identity/auth/register", json={"email": email, "password": PASSWORD})
            ).status_code == 201
            tokens = (await c.post("/identity/auth/login", json={"email": email, "password": PASSWORD})).json()
            assert (await c.get("/reports", headers=bearer(tokens["access_token"]))).json() == {"for": email}
            key = (
                await c.post("/identity/api-keys", headers=bearer(tokens["access_token"]), json={"name": "host"})
            ).json()["key"]
            assert (await c.get("/reports", headers={"X-API-Key": key})).status_code == 200
            r = await c.get("/reports")
            assert r.status_code == 401 and error_code(r) == "not_authenticated"
            r = await c.get("/admin-report", headers=bearer(tokens["access_token"]))
            assert r.status_code == 403 and error_code(r) == "insufficient_scope"
            await c.post("/identity/auth/logout", headers=bearer(tokens["access_token"]))
            assert (await c.get("/reports", headers=bearer(tokens["access_token"]))).status_code == 401


async def test_guarded_host_routes_answer_as_through_fastapi(settings: Settings) -> None:
    """mount_gatehouse runs a host route's Gatehouse guard itself when it is the route's only
    dependency; every answer is the one FastAPI's own dependency solving gives (which it takes while
    the host has dependency_overrides), refusals come before parameter errors as with FastAPI, and
    routes that do not qualify keep FastAPI's path."""
    from typing import Annotated

    from fastapi import Depends, FastAPI, Header, Request
    from pydantic import BaseModel

    host = FastAPI()
    service.mount_gatehouse(host, "/identity", settings)

    async def tenant(x_tenant: Annotated[str, Header()] = "none") -> str:
        return x_tenant

    class Note(BaseModel):
        text: str

    @host.get("/me")
    async def me(principal: service.CurrentUser) -> dict[str, Any]:
        return {"email": principal.user["email"], "scopes": sorted(principal.scopes), "key": bool(principal.key_id)}

    @host.get("/admin")
    async def admin(principal: Annotated[service.Principal, service.require_scope("admin")]) -> dict[str, bool]:
        return {"ok": True}

    @host.get("/items/{n}")
    async def item(n: int, q: int, principal: service.CurrentUser) -> dict[str, Any]:
        return {"n": n, "q": q, "by": principal.user["email"]}

    @host.post("/notes", status_code=201)
    async def note(body: Note, principal: service.CurrentUser) -> dict[str, str]:
        return {"text": body.text, "by": principal.user["email"]}

    @host.get("/with-request")
    async def with_request(request: Request, principal: service.CurrentUser) -> dict[str, Any]:
        return {"path": request.url.path, "logged": request.state.principal is principal}

    @host.get("/sync")
    def sync_route(principal: service.CurrentUser) -> dict[str, str]:
        return {"by": principal.user["email"]}

    @host.get("/two")
    async def two(principal: service.CurrentUser, name: Annotated[str, Depends(tenant)]) -> dict[str, str]:
        return {"by": principal.user["email"], "tenant": name}

    async with host.router.lifespan_context(host):
        guarded = {r.path for r in host.router.routes if isinstance(getattr(r, "app", None), service._GuardedHostRoute)}
        assert guarded == {"/me", "/admin", "/items/{n}", "/notes", "/with-request"}  # not sync, not two dependencies
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as c:
            email = "guarded@example.com"
            await c.post("/identity/auth/register", json={"email": email, "password": PASSWORD})
            tokens = (await c.post("/identity/auth/login", json={"email": email, "password": PASSWORD})).json()
            token = bearer(tokens["access_token"])
            key = (
                await c.post("/identity/api-keys", headers=token, json={"name": "h", "scopes": ["users:read"]})
            ).json()
            callers = {"token": token, "key": {"X-API-Key": key["key"]}, "none": {}, "forged": bearer("nope.nope.nope")}
            requests = [
                (method, path, {**headers, "X-Tenant": "acme"}, body)
                for headers in callers.values()
                for method, path, body in [
                    ("GET", "/me", None),
                    ("GET", "/admin", None),
                    ("GET", "/items/7?q=3", None),
                    ("GET", "/items/seven?q=x", None),
                    ("POST", "/notes", {"text": "hi"}),
                    ("POST", "/notes", {"wrong": 1}),
                    ("GET", "/with-request", None),
                    ("GET", "/sync", None),
                    ("GET", "/two", None),
                ]
            ]

            async def answers() -> list[tuple[int, list[tuple[str, str]], Any]]:
                out = []
                for method, path, headers, body in requests:
                    r = await c.request(method, path, headers=headers, json=body)
                    out.append((r.status_code, sorted(r.headers.multi_items()), r.json()))
                return out

            fast = await answers()
            host.dependency_overrides[tenant] = tenant  # any override: every route takes FastAPI's path
            assert await answers() == fast
            del host.dependency_overrides[tenant]
            statuses = [status for status, _, _ in fast]
            assert statuses[:9] == [200, 403, 200, 422, 201, 422, 200, 200, 200]  # the access token
            assert statuses[9:18] == [200, 403, 200, 422, 201, 422, 200, 200, 200]  # the API key
            assert set(statuses[18:]) == {401}  # no caller, a forged one: refused before any parameter error
            assert fast[0][2]["email"] == email and fast[0][2]["key"] is False and "users:read" in fast[0][2]["scopes"]
            assert fast[9][2]["key"] is True and fast[9][2]["scopes"] == ["users:read"]
            assert fast[6][2] == {"path": "/with-request", "logged": True} and fast[8][2]["tenant"] == "acme"

            # overriding the guard itself still works, as with any FastAPI dependency
            stand_in = service.Principal({"email": "stand-in@example.com"}, None, None, frozenset())
            host.dependency_overrides[service.CurrentUser.__metadata__[0].dependency] = lambda: stand_in
            assert (await c.get("/me")).json()["email"] == "stand-in@example.com"
            host.dependency_overrides.clear()
            assert (await c.get("/me")).status_code == 401
            # the docs still show the guarded routes' security
            assert host.openapi()["paths"]["/me"]["get"]["security"]
    async with host.router.lifespan_context(host):  # started again: the guards use the new Gatehouse
        assert {
            r.app.gatehouse for r in host.routes if isinstance(getattr(r, "app", None), service._GuardedHostRoute)
        } == {host.state.gatehouse}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://host.test") as c:
            assert (await c.get("/me", headers=token)).json()["email"] == email
            again = bearer(
                (await c.post("/identity/auth/login", json={"email": email, "password": PASSWORD})).json()[
                    "access_token"
                ]
            )
            assert (await c.get("/me", headers=again)).status_code == 200
            assert (await c.post("/identity/auth/logout", headers=again)).status_code == 204
            assert (await c.get("/me", headers=again)).status_code == 401


async def test_plain_mount_starts_gatehouse_on_first_use_instead_of_a_500(settings: Settings, caplog: Any) -> None:
    from fastapi import FastAPI

    host = FastAPI()
    inner = service.create_app(settings)
    host.mount("/auth-service", inner)  # no mount_gatehouse: Starlette never runs the inner lifespan
    async with host.router.lifespan_context(host):
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as c:
            answers = await asyncio.gather(
                *(
                    c.post(
                        "/auth-service/auth/register", json={"email": f"first-{n}@example.com", "password": PASSWORD}
                    )
                    for n in range(3)
                )
            )
            assert [r.status_code for r in answers] == [201, 201, 201]
    assert "mount_gatehouse" in caplog.text
    await inner.state.gatehouse.close()


def test_compose_file_matches_the_dockerfile() -> None:
    import yaml

    compose = yaml.safe_load(open(os.path.join(REPO, "docker-compose.yml")))
    dockerfile = open(os.path.join(REPO, "Dockerfile")).read()
    services = compose["services"]
    assert {"gatehouse", "db", "redis", "migrate"} <= set(services)
    for name in ("gatehouse", "db", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["command"] == ["python", "cli.py", "migrate"]
    app = services["gatehouse"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["depends_on"]["db"]["condition"] == app["depends_on"]["redis"]["condition"] == "service_healthy"
    env = {**compose["x-gatehouse-env"], **app["environment"]}
    assert env["ENVIRONMENT"] == "production" and env["AUTO_MIGRATE"] == "false"
    assert env["DATABASE_URL"].startswith("postgresql://") and env["REDIS_URL"].startswith("redis://")
    assert "/health/live" in " ".join(app["healthcheck"]["test"]) and "/health/live" in dockerfile
    assert app["ports"] == ["8000:8000"] and "EXPOSE 8000" in dockerfile
    assert "\nUSER gatehouse" in dockerfile and "HEALTHCHECK" in dockerfile
    # TRUSTED_PROXIES is the one rule for client addresses: uvicorn must not rewrite them first.
    assert "FORWARDED_ALLOW_IPS" not in env
    command = image_command()
    assert command[:2] == ["uvicorn", "service:app"] and "--no-proxy-headers" in command
    assert "--proxy-headers" not in command
    assert dockerfile.count("FROM ") >= 2  # build stage and runtime stage


def test_requirements_are_pinned() -> None:
    def lines(name: str) -> list[str]:
        return [line.strip() for line in open(os.path.join(REPO, name)) if line.strip() and not line.startswith("#")]

    everything, runtime = lines("requirements.txt"), lines("requirements-runtime.txt")
    assert everything[0] == "-r requirements-runtime.txt"  # the README's one file includes the runtime
    for line in everything[1:] + runtime:
        assert "==" in line, line
    assert any(line.startswith("uvicorn[standard]==") for line in runtime)
    assert not {"pytest", "schemathesis", "playwright", "aiosmtpd"} & {line.split("==")[0] for line in runtime}
    assert "requirements-runtime.txt" in open(os.path.join(REPO, "Dockerfile")).read()


# Fuzzing #####################################################################

import schemathesis  # noqa: E402
from schemathesis.config import OperationConfig  # noqa: E402
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES  # noqa: E402

POSITIVE_DEFAULT = tuple(POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES)


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory: Any) -> Any:
    """The app on SQLite, with a user and an admin each holding an API key with every scope they may have."""
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp}/fuzz.db",
        secret_key=SECRET,
        bcrypt_rounds=4,
        secret_key_file=str(tmp / "secret"),
        rate_auth_ip="off",
        rate_general_ip="off",
        rate_login_failures_account="off",
        rate_login_failures_account_ip="off",
        hash_workers=2,
    )

    async def setup() -> dict[str, str]:
        keys = {}
        async with await service.Gatehouse.open(settings) as gh:
            for role, scopes in (("user", service.SCOPES[:4]), ("admin", service.SCOPES)):
                user = await service.create_user(gh, email=f"fuzz-{role}@example.com", password=PASSWORD, role=role)
                _, keys[role] = await service.create_api_key(
                    gh, user_id=user.id, name="fuzz", scopes=list(scopes), aal=2
                )
        return keys

    keys = asyncio.run(setup())
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.create_app(settings))
    for name, (statuses, _why) in FUZZ_REFUSALS.items():  # this schema's config only; defaults stay as shipped
        schema.config.operations.operations.append(
            OperationConfig.from_dict(
                {
                    "include-name": name,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, *statuses]}},
                }
            )
        )
    return schema, keys


# Schema-valid input that a rule no JSON schema expresses still refuses: the operations that may
# answer so to the fuzzer's positive data, each with the status it may add and why. Nowhere else.
_RESERVED = "an email on a special-use domain (`.test`, `.invalid`): valid by `format: email`, not deliverable"
_NEVER_ISSUED = "a token the service never issued (the fuzzer cannot know one)"
FUZZ_REFUSALS: dict[str, tuple[list[str], str]] = {
    "POST /auth/register": (["422"], _RESERVED),
    "POST /users": (["422"], _RESERVED),
    "PATCH /users/me": (["422"], _RESERVED),
    "PATCH /users/{user_id}": (["422"], _RESERVED),
    "POST /users/me/password": (["400"], "wrong_password: the fuzzer does not know the current password"),
    "POST /auth/password-reset/confirm": (["400"], _NEVER_ISSUED),
    "POST /auth/verify/confirm": (["400"], _NEVER_ISSUED),
    "POST /auth/email-change/confirm": (["400"], _NEVER_ISSUED),
    "POST /auth/email-change/revert": (["400"], _NEVER_ISSUED),
    "POST /auth/password-reset/factors": (["400"], _NEVER_ISSUED),
    "POST /mfa/undo": (["400"], _NEVER_ISSUED),
    "POST /auth/oauth/exchange": (["400"], _NEVER_ISSUED),
    "POST /auth/oauth/link": (["400"], _NEVER_ISSUED),
    "POST /auth/oauth/link/mail": (["400"], _NEVER_ISSUED),
    "GET /users": (["422"], "invalid_cursor: " + _NEVER_ISSUED),
    "GET /audit": (["422"], "invalid_cursor: " + _NEVER_ISSUED),
    "POST /api-keys": (
        ["422"],
        "a name of spaces only (empty once stripped), or `expires_in_days: 2.0`, an "
        "integer to JSON Schema that the strict field refuses (`true` is not one day)",
    ),
}


@pytest.fixture(scope="session")
def fuzz_schema(fuzz_target: Any) -> Any:
    return fuzz_target[0]


fuzz = schemathesis.pytest.from_fixture("fuzz_schema")


def test_fuzz_relaxations_are_per_operation_and_leave_the_defaults(fuzz_schema: Any) -> None:
    from schemathesis.config import ChecksConfig

    assert tuple(POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES) == POSITIVE_DEFAULT  # never mutated
    assert "400" not in POSITIVE_DEFAULT and "422" not in POSITIVE_DEFAULT
    assert ChecksConfig().positive_data_acceptance.expected_statuses == list(POSITIVE_DEFAULT)
    labels = set()
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        labels.add(operation.label)
        config = fuzz_schema.config.checks_config_for(operation=operation).positive_data_acceptance
        added = FUZZ_REFUSALS.get(operation.label, ([], ""))[0]
        assert sorted(config.expected_statuses) == sorted([*POSITIVE_DEFAULT, *added]), operation.label
    assert set(FUZZ_REFUSALS) <= labels and len(labels) > len(FUZZ_REFUSALS)  # names real operations


class FuzzProgress:
    """A line on the terminal every `every` cases, past pytest's capture: each fuzz run is one test of
    minutes, which would otherwise show nothing until it ends."""

    def __init__(self, name: str, every: int = 500) -> None:
        self.name, self.every, self.cases, self.operations, self.started = name, every, 0, set[str](), 0.0

    def __call__(self, case: Any, config: pytest.Config) -> None:
        self.started = self.started or time.perf_counter()
        self.cases += 1
        self.operations.add(case.operation.label)
        if self.cases % self.every == 0:
            seconds = time.perf_counter() - self.started
            line = f"{self.name}: {self.cases} cases, {len(self.operations)} operations, {seconds:.0f} s"
            with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
                print(f"\n{line}", flush=True)


FUZZ_AS_USER, FUZZ_AS_ADMIN = FuzzProgress("fuzz as user"), FuzzProgress("fuzz as admin")


@pytest.mark.live
@fuzz.parametrize()
def test_fuzz_every_operation_as_user(case: Any, fuzz_target: Any, pytestconfig: pytest.Config) -> None:
    """Schema-driven inputs for every operation as a user: no 5xx, nothing off-schema."""
    FUZZ_AS_USER(case, pytestconfig)
    case.call_and_validate(headers={"X-API-Key": fuzz_target[1]["user"]})


@pytest.mark.live
@fuzz.parametrize()
def test_fuzz_every_operation_as_admin(case: Any, fuzz_target: Any, pytestconfig: pytest.Config) -> None:
    """The same as an admin, who reaches the admin operations."""
    FUZZ_AS_ADMIN(case, pytestconfig)
    case.call_and_validate(headers={"X-API-Key": fuzz_target[1]["admin"]})


# Security suite ##############################################################
#
# One place for the attacks a reviewer will try. Token forgery (alg none in every
# spelling, key confusion, kid tricks, expired and future tokens, wrong aud/iss, type
# confusion) is `test_bad_access_tokens_are_rejected_each_with_its_code` and
# `test_key_confusion_hs256_signed_with_public_key`; refresh replay is
# `test_refresh_reuse_after_grace_revokes_the_whole_session`; mass assignment is
# `test_register_rejects_bad_input` and `test_me_update_rejects_privileged_or_bad_fields`.


async def test_security_not_yet_valid_token(client: httpx.AsyncClient, settings: Settings) -> None:
    _, tokens = await new_user(client)
    now = int(time.time())
    for forged in (
        _forge(settings, tokens["access_token"], nbf=now + 600),
        _forge(settings, tokens["access_token"], iat=now + 600, exp=now + 1200),
    ):
        r = await client.get("/users/me", headers=bearer(forged))
        assert r.status_code == 401 and error_code(r) == "invalid_token"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_security_login_timing_does_not_enumerate(make_settings: Any) -> None:
    """Median time of a wrong password and of an unknown email, 200 samples each, interleaved."""
    async with running(
        make_settings(bcrypt_rounds=6, rate_login_failures_account="off", rate_login_failures_account_ip="off")
    ) as client:
        user = await register(client)
        cases = {
            "known": {"email": user["email"], "password": "not the password"},
            "unknown": {"email": "nobody-at-all@example.com", "password": "not the password"},
        }
        samples: dict[str, list[float]] = {"known": [], "unknown": []}
        for _ in range(200):
            for name, body in cases.items():
                started = time.perf_counter()
                r = await client.post("/auth/login", json=body)
                samples[name].append(time.perf_counter() - started)
                assert r.status_code == 401
    known, unknown = (sorted(v)[len(v) // 2] for v in samples.values())
    assert abs(known - unknown) / max(known, unknown) <= 0.10, (known, unknown)


async def test_security_no_idor_between_users(client: httpx.AsyncClient) -> None:
    alice, alice_tokens = await new_user(client)
    bob, bob_tokens = await new_user(client)
    alice_key = await make_key(client, alice_tokens["access_token"])
    as_bob = bearer(bob_tokens["access_token"])
    for method, path, body in [
        ("GET", f"/users/{alice['id']}", None),
        ("PATCH", f"/users/{alice['id']}", {"full_name": "owned"}),
        ("DELETE", f"/users/{alice['id']}", None),
        ("DELETE", f"/users/{alice['id']}/sessions", None),
        ("GET", f"/api-keys?user_id={alice['id']}", None),
        ("POST", "/api-keys", {"name": "x", "user_id": alice["id"]}),
        ("GET", f"/audit?user_id={alice['id']}", None),
    ]:
        r = await client.request(method, path, headers=as_bob, json=body)
        assert r.status_code == 403, (method, path)
    r = await client.delete(f"/api-keys/{alice_key['id']}", headers=as_bob)
    assert r.status_code == 404  # another user's key does not exist, as far as Bob can tell
    me = (await client.get("/users/me", headers=as_bob)).json()
    assert me["id"] == bob["id"]
    alice_now = (await client.get("/users/me", headers=bearer(alice_tokens["access_token"]))).json()
    assert alice_now == alice and (await client.get("/users/me", headers=bearer(alice_key["key"]))).status_code == 200


HOSTILE = [
    "Robert'); DROP TABLE users;--",
    "' OR '1'='1",
    '\\"; SELECT pg_sleep(5); --',
    "%_\\%",
    "名前 🗝️ Ünïcödé",
    "\u202eevil\u202c",
    "a\tb\nc",
    "<script>alert(1)</script>",
]


async def test_security_sql_metacharacters_and_unicode_in_every_string_field(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin_user, admin = await admin_tokens(client, settings)
    admin_email, auth = admin_user["email"], bearer(admin["access_token"])
    for i, text in enumerate(HOSTILE):
        email = f"o'brien+{i}@example.com"
        r = await client.post("/auth/register", json={"email": email, "password": text + "-pw-long", "full_name": text})
        assert r.status_code == 201, (text, r.text)
        assert r.json()["full_name"] == text.strip()
        tokens = await login(client, email, text + "-pw-long")
        me = bearer(tokens["access_token"])
        assert (await client.patch("/users/me", headers=me, json={"full_name": text})).json()[
            "full_name"
        ] == text.strip()
        key = await make_key(client, tokens["access_token"], name=text)
        assert key["name"] == text.strip()
        so_far = [f"o'brien+{j}@example.com" for j in range(i + 1)]
        for query, found in (({"email": text}, []), ({"email": "'"}, so_far), ({"role": "admin"}, [admin_email])):
            r = await client.get("/users", headers=auth, params=query)
            assert r.status_code == 200 and [u["email"] for u in r.json()["items"]] == found, query
        assert (await client.get("/audit", headers=auth, params={"event": text[:40]})).json()["items"] == []
        # each refused the way it refuses any wrong value: as data, never as SQL or a crash
        for path, body, status, code in [
            ("/auth/login", {"email": text, "password": text}, 401, "invalid_credentials"),
            ("/auth/password-reset/request", {"email": text}, 202, None),
            ("/auth/refresh", {"refresh_token": text}, 401, "invalid_token"),
            ("/auth/verify/confirm", {"token": text}, 400, "invalid_or_expired_token"),
        ]:
            r = await client.post(path, json=body)
            assert (r.status_code, code and error_code(r)) == (status, code), (path, text, r.text)
    async with client.gatehouse.transaction() as db:  # every table still there, every row intact
        count = await db.scalar(sa.select(sa.func.count()).select_from(service.User))
    assert count == len(HOSTILE) + 1


async def test_security_oversized_bodies_everywhere(make_settings: Any) -> None:
    async with running(make_settings(max_body_bytes=4096)) as client:
        _, tokens = await new_user(client)
        big = {"padding": "x" * 10_000}
        for method, path in [
            ("POST", "/auth/register"),
            ("POST", "/auth/login"),
            ("POST", "/auth/refresh"),
            ("PATCH", "/users/me"),
            ("POST", "/users/me/password"),
            ("POST", "/api-keys"),
            ("POST", "/auth/password-reset/request"),
            ("POST", "/users"),
        ]:
            r = await client.request(method, path, json=big, headers=bearer(tokens["access_token"]))
            assert r.status_code == 413 and error_code(r) == "payload_too_large", path


# Faults and load (live processes) ############################################


class Hammer:
    """Threads sending requests in a loop until stopped; every status code is kept."""

    def __init__(self, base_url: str, requests: list[tuple[str, str, Any, dict[str, str]]], threads: int = 4):
        import threading

        self.base_url, self.requests = base_url, requests
        self.results: list[tuple[str, int]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as c:
            i = offset
            while not self.stop.is_set():
                name, path, body, headers = self.requests[i % len(self.requests)]
                i += 1
                body = body() if callable(body) else body
                try:
                    r = c.post(path, json=body, headers=headers) if body is not None else c.get(path, headers=headers)
                    self.results.append((name, r.status_code))
                except httpx.HTTPError:
                    self.results.append((name, -1))
                    time.sleep(0.01)

    def __enter__(self) -> "Hammer":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)

    def statuses(self, name: str) -> set[int]:
        return {status for n, status in self.results if n == name}


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
def test_fault_redis_killed_under_load(make_settings: Any) -> None:
    redis_server = PrivateRedis().start_sync()
    settings = make_settings(
        redis_url=redis_server.url,
        redis_timeout=0.5,
        rate_login_failures_account="off",
        rate_login_failures_account_ip="off",
    )
    server = Server(settings).start()
    try:
        live, revoked = server.signup("load@example.com"), server.signup("load@example.com")
        with httpx.Client(base_url=server.url, timeout=10) as c:
            assert c.get("/users/me", headers=bearer(revoked["access_token"])).status_code == 200
            assert c.post("/auth/logout", headers=bearer(revoked["access_token"])).status_code == 204
        login_body = {"email": "load@example.com", "password": PASSWORD}
        plan = [
            ("read", "/users/me", None, bearer(live["access_token"])),
            ("revoked", "/users/me", None, bearer(revoked["access_token"])),
            ("login", "/auth/login", login_body, {}),
        ]
        with Hammer(server.url, plan) as hammer:
            time.sleep(1.0)
            redis_server.kill_sync()
            time.sleep(2.0)
            redis_server.start_sync()
            for _ in range(100):  # the service resubscribes on its own
                ready = httpx.get(f"{server.url}/health/ready").json()
                if ready["checks"]["cache"]["status"] == "ok":
                    break
                time.sleep(0.1)
            time.sleep(1.0)
        assert ready["checks"]["cache"]["status"] == "ok"
        assert hammer.statuses("read") == {200}, hammer.statuses("read")
        assert hammer.statuses("login") == {200}, hammer.statuses("login")
        assert hammer.statuses("revoked") == {401}  # never served, before, during or after
        assert len(hammer.results) > 100
    finally:
        server.stop()
        if redis_server.running:
            redis_server.kill_sync()


class ThreadedProxy:
    """TcpProxy on its own event loop in a thread, for tests that drive live servers from sync code."""

    def __init__(self, host: str, port: int):
        import threading

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.proxy = TcpProxy(host, port)
        self.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def start(self) -> None:
        self._call(self.proxy.start())

    def cut(self) -> None:
        self._call(self.proxy.cut())

    @property
    def port(self) -> int:
        return self.proxy.port


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
def test_fault_postgres_cut_under_load(make_settings: Any, pg_url: str) -> None:
    url = service.database_url(pg_url)
    proxy = ThreadedProxy(*postgres_address(pg_url))
    server = Server(through_proxy(make_settings, pg_url, proxy.port)).start()
    try:
        tokens = server.signup("pg@example.com")
        plan = [
            (
                "register",
                "/auth/register",
                lambda: {"email": f"w{uuid.uuid4().hex}@example.com", "password": PASSWORD},
                {},
            ),
            ("login", "/auth/login", {"email": "pg@example.com", "password": PASSWORD}, {}),
            ("read", "/users/me", None, bearer(tokens["access_token"])),
        ]
        with Hammer(server.url, plan, threads=3) as hammer:
            time.sleep(1.0)
            proxy.cut()
            time.sleep(2.5)  # longer than DB_POOL_TIMEOUT
            outage = len(hammer.results)
            proxy.start()
            asyncio.run(
                _pg_admin(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{url.database}' AND pid <> pg_backend_pid()"
                )
            )
            time.sleep(2.0)
        during, after = hammer.results[:outage], hammer.results[outage:]
        # 200/201 while the database answers, 503 while it does not: nothing else, ever
        assert {s for _, s in hammer.results} <= {200, 201, 503}, set(hammer.results)
        assert any(status == 503 for _, status in during)  # the outage was felt, and said so
        assert len(after) >= 30 and {s for _, s in after[-30:]} <= {200, 201}  # and recovered without a restart
        with httpx.Client(base_url=server.url) as c:
            assert c.get("/health/ready").status_code == 200
    finally:
        server.stop()
        proxy.cut()


@pytest.mark.live
def test_load_500_connections(make_settings: Any) -> None:
    """500 concurrent keep-alive connections for 20 s: no 5xx, no connection error, memory stable."""
    import json
    import subprocess
    import sys

    settings = make_settings(rate_general_ip="off")
    server = Server(settings).start()
    try:
        token = server.signup("load@example.com")["access_token"]

        def drive(seconds: int) -> dict[str, Any]:
            out = subprocess.run(
                [
                    sys.executable,
                    "dev/bench.py",
                    "--_load",
                    f"{server.url}/users/me",
                    "--_connections",
                    "500",
                    "--duration",
                    str(seconds),
                    "--_headers",
                    json.dumps({"Authorization": f"Bearer {token}"}),
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            return json.loads(out.stdout)

        drive(3)
        before = _rss_mb(server.proc.pid)
        result = drive(20)
        after = _rss_mb(server.proc.pid)
    finally:
        server.stop()
    assert result["errors"] == 0 and result["non_2xx"] == 0, result
    assert result["rps"] > 0
    assert after - before < 64, (before, after)


def _thread_cpu_ticks(pid: int) -> dict[int, int]:
    """CPU time (user + system, in clock ticks) of each thread of `pid` but its main one."""
    ticks = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        if int(task) == pid:
            continue
        try:
            fields = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        ticks[int(task)] = int(fields[11]) + int(fields[12])
    return ticks


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_log_writer_drops_instead_of_growing_when_stderr_stalls() -> None:
    import logging
    import threading

    release, stuck = threading.Event(), threading.Event()

    class StalledStream:
        written: list[str] = []

        def write(self, text: str) -> None:
            stuck.set()
            release.wait(10)  # stderr blocked, e.g. an unread pipe
            self.written.append(text)

        def flush(self) -> None:
            pass

    stream = StalledStream()
    writer = service.BatchWriter(stream, service.JsonFormatter())
    writer.handle(logging.LogRecord("gatehouse", logging.INFO, __file__, 0, "first", (), None))
    assert stuck.wait(10)  # the writer thread is now stuck in write()
    for i in range(writer.MAX_QUEUED + 500):
        writer.handle(logging.LogRecord("gatehouse", logging.INFO, __file__, 0, "line %d", (i,), None))
    assert len(writer._queue) <= writer.MAX_QUEUED and writer.dropped >= 500
    release.set()
    writer.close()
    assert any("log lines dropped" in chunk for chunk in stream.written)


async def test_numbers_and_booleans_are_not_coerced(client: httpx.AsyncClient, settings: Settings) -> None:
    """Found by the fuzzer: `expires_in_days: true` used to mean one day."""
    user, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    for body in ({"name": "k", "expires_in_days": True}, {"name": "k", "expires_in_days": "30"}):
        assert (await client.post("/api-keys", headers=auth, json=body)).status_code == 422
    other = await register(client)
    for value in ("false", 0, "no"):
        r = await client.patch(f"/users/{other['id']}", headers=auth, json={"is_active": value})
        assert r.status_code == 422
    assert (await client.get(f"/users/{other['id']}", headers=auth)).json()["is_active"] is True


@pytest.mark.live
@pytest.mark.parametrize("backend", ["postgres"])
async def test_queued_audit_rows_survive_a_database_outage_intact(make_settings: Any, pg_url: str) -> None:
    proxy = await TcpProxy(*postgres_address(pg_url)).start()
    async with running(through_proxy(make_settings, pg_url, proxy.port)) as client:
        gh = client.gatehouse
        gh.audit_later(
            service._audit("auth.login", service.Client("198.51.100.7", "probe"), outcome="failure", reason="kept")
        )
        await proxy.cut()
        await gh.flush_audit()  # the database is away: the row stays queued
        await proxy.start()
        await gh.flush_audit()
        rows, _ = await service.list_audit(gh, event="auth.login")
    await proxy.cut()
    assert [(r.ip, r.outcome, json_loads(r.detail)) for r in rows] == [("198.51.100.7", "failure", {"reason": "kept"})]


def json_loads(text: str) -> Any:
    import json

    return json.loads(text)


# Takeover resistance: step-up, email change, lockout, credential bounds ######


@asynccontextmanager
async def from_address(client: httpx.AsyncClient, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """Another client of the same app, connecting from `ip`."""
    transport = httpx.ASGITransport(app=client._transport.app, client=(ip, 5000))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse.test") as other:
        other.gatehouse = client.gatehouse  # type: ignore[attr-defined]
        yield other


async def age_proof(gh: service.Gatehouse, session_id: str, minutes: int) -> None:
    """Move a session's last proof of the password `minutes` into the past."""
    async with gh.transaction(write=True) as db:
        await db.execute(
            sa.update(service.LoginSession)
            .where(service.LoginSession.id == uuid.UUID(session_id))
            .values(authenticated_at=service.utcnow() - service.timedelta(minutes=minutes))
        )


async def stale_tokens(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    """The same session's tokens after its last sign-in has aged past REAUTH_MINUTES (as a stolen token would be)."""
    await age_proof(client.gatehouse, claims(tokens["access_token"])["sid"], 60)
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    return r.json()


async def settle(gh: service.Gatehouse) -> None:
    """Wait until the background work requests started (mail, bookkeeping) has finished."""
    while gh._tasks:
        await asyncio.wait(list(gh._tasks))
    assert await gh.mailer.join(seconds=30), "the mail queue did not drain"


async def messages_of(receiver: "Receiver", kind: str, count: int = 1) -> list[dict[str, Any]]:
    await _until(lambda: asyncio.sleep(0, sum(m["type"] == kind for m in receiver.messages) >= count), kind)
    return [m for m in receiver.messages if m["type"] == kind]


async def test_tokens_carry_auth_time_and_refresh_keeps_it(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    first = claims(tokens["access_token"])
    assert abs(first["auth_time"] - time.time()) < 60
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert claims(r.json()["access_token"])["auth_time"] == first["auth_time"]  # a refresh proves nothing


async def test_attack_api_key_with_users_write_cannot_take_over_the_account(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin, session = await admin_tokens(client, settings)
    await admin_tokens(client, settings)  # a second admin, so deleting would not hit the last-admin guard
    key = (await make_key(client, session["access_token"], scopes=["users:read", "users:write"]))["key"]
    attempts = [
        ("PATCH", "/users/me", {"email": "attacker@example.com"}),
        ("POST", "/users/me/password", {"current_password": PASSWORD, "new_password": "attacker pass 1"}),
        ("DELETE", "/users/me", {"password": PASSWORD}),
    ]
    for method, path, body in attempts:
        r = await client.request(method, path, headers=bearer(key), json=body)
        assert r.status_code == 403 and error_code(r) == "session_required", (path, r.text)
    assert (await client.patch("/users/me", headers=bearer(key), json={"full_name": "ok"})).status_code == 200
    row = await user_row(client.gatehouse, admin["email"])
    assert row.email == admin["email"] and row.full_name == "ok"
    await login(client, admin["email"])


async def test_attack_stolen_stale_access_token_cannot_change_email_or_delete(client: httpx.AsyncClient) -> None:
    user, fresh = await new_user(client)
    stolen = await stale_tokens(client, fresh)
    auth = bearer(stolen["access_token"])
    for method, path, body in [
        ("PATCH", "/users/me", {"email": "attacker@example.com"}),
        ("DELETE", "/users/me", None),
        ("POST", "/api-keys", {"name": "backdoor", "scopes": ["users:read"]}),
    ]:
        r = await client.request(method, path, headers=auth, json=body)
        assert r.status_code == 401 and error_code(r) == "reauthentication_required", (path, r.text)
        assert "POST /auth/reauthenticate" in r.json()["error"]["message"]
    r = await client.patch("/users/me", headers=auth, json={"email": "attacker@example.com", "password": "guess 1234"})
    assert r.status_code == 400 and error_code(r) == "wrong_password"
    assert (await user_row(client.gatehouse, user["email"])).email == user["email"]
    # the owner proves the password: once in the request, or once for REAUTH_MINUTES
    r = await client.patch("/users/me", headers=auth, json={"email": "mine@example.com", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["pending_email"] == "mine@example.com"
    r = await client.post("/auth/reauthenticate", headers=auth, json={"password": PASSWORD})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    stepped = r.json()
    assert claims(stepped["access_token"])["sid"] == claims(stolen["access_token"])["sid"]  # the same session
    assert claims(stepped["access_token"])["auth_time"] > claims(stolen["access_token"])["auth_time"]
    assert stepped["refresh_token"] == stolen["refresh_token"]  # nothing rotated
    assert (await make_key(client, stepped["access_token"]))["name"] == "ci"
    r = await client.post("/auth/reauthenticate", headers=auth, json={"password": "not it at all"})
    assert r.status_code == 401 and error_code(r) == "invalid_credentials"


async def test_attack_email_change_needs_the_new_mailbox_and_the_old_one_can_undo_it(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        key = (await make_key(client, tokens["access_token"]))["key"]
        r = await client.patch("/users/me", headers=auth, json={"email": "New@Example.com"})
        assert r.status_code == 200 and r.json()["email"] == user["email"]
        [confirm] = await messages_of(receiver, "email_change_confirm")
        [notice] = await messages_of(receiver, "email_change_notice")
        assert confirm["email"] == "new@example.com" and notice["email"] == user["email"]
        assert notice["new_email"] == "new@example.com"
        # until confirmed, login and reset use the old address
        await login(client, user["email"])
        r = await client.post("/auth/login", json={"email": "new@example.com", "password": PASSWORD})
        assert r.status_code == 401
        r = await client.post("/auth/email-change/confirm", json={"token": token_of(confirm["link"])})
        assert r.status_code == 200 and r.json()["email"] == "new@example.com" and r.json()["email_verified_at"]
        r = await client.post("/auth/email-change/confirm", json={"token": token_of(confirm["link"])})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"  # single use
        await login(client, "new@example.com")
        # "this wasn't me" from the old address undoes it and throws every credential out
        r = await client.post("/auth/email-change/revert", json={"token": token_of(notice["link"])})
        assert r.status_code == 200 and r.json() == {"sessions_ended": 3, "api_keys_revoked": 1, "factors_removed": []}
        assert (await client.get("/users/me", headers=auth)).status_code == 401
        assert (await client.get("/users/me", headers=bearer(key))).status_code == 401
        assert (await user_row(client.gatehouse, user["email"])).email == user["email"]
        await login(client, user["email"])
        r = await client.post("/auth/email-change/revert", json={"token": token_of(notice["link"])})
        assert r.status_code == 400
        events = [e.event for e in (await service.list_audit(client.gatehouse, user_id=uuid.UUID(user["id"])))[0]]
        assert {"user.email_change_request", "user.email_change", "user.email_change_revert"} <= set(events)


async def test_attack_pending_email_change_cancelled_before_confirmation(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        await client.patch("/users/me", headers=bearer(tokens["access_token"]), json={"email": "evil@example.com"})
        [confirm] = await messages_of(receiver, "email_change_confirm")
        [notice] = await messages_of(receiver, "email_change_notice")
        r = await client.post("/auth/email-change/revert", json={"token": token_of(notice["link"])})
        assert r.status_code == 200 and r.json()["sessions_ended"] == 1
        r = await client.post("/auth/email-change/confirm", json={"token": token_of(confirm["link"])})
        assert r.status_code == 400  # the pending change died with the revert
        assert (await user_row(client.gatehouse, user["email"])).email == user["email"]


async def test_old_verification_link_is_worthless_after_an_email_change(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        _, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        assert (await client.post("/auth/verify/request", headers=auth)).status_code == 202
        [verify] = await messages_of(receiver, "email_verification")
        await client.patch("/users/me", headers=auth, json={"email": "moved@example.com"})
        [confirm] = await messages_of(receiver, "email_change_confirm")
        assert (
            await client.post("/auth/email-change/confirm", json={"token": token_of(confirm["link"])})
        ).status_code == 200
        r = await client.post("/auth/verify/confirm", json={"token": token_of(verify["link"])})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"
        # an admin's change spends no link: the link is refused because it names an address since left
        user_id = uuid.UUID(claims(tokens["access_token"])["sub"])
        await service.update_user(client.gatehouse, user_id=user_id, email="assigned@example.com")
        assert (await client.post("/auth/verify/request", headers=auth)).status_code == 202
        [_, second] = await messages_of(receiver, "email_verification", 2)
        assert second["email"] == "assigned@example.com"
        await service.update_user(client.gatehouse, user_id=user_id, email="elsewhere@example.com")
        r = await client.post("/auth/verify/confirm", json={"token": token_of(second["link"])})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"
        assert (await user_row(client.gatehouse, "elsewhere@example.com")).email_verified_at is None


async def test_attack_one_reset_link_used_twice_at_once_works_once(client: httpx.AsyncClient) -> None:
    user = await register(client)
    link = await service.password_reset_link(client.gatehouse, user_id=uuid.UUID(user["id"]))
    body = {"token": token_of(link), "new_password": "only one of us"}
    answers = await asyncio.gather(*(client.post("/auth/password-reset/confirm", json=body) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 400, 400, 400]


async def test_attack_key_holding_scopes_above_its_owners_role_acts_at_the_role(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # A key minted while its owner was being demoted can hold a scope the owner no longer has
    # (the demotion revoked the keys it saw): it still acts no higher than the owner's role.
    user = await register(client)
    key, public_id, secret_hash = service.new_api_key()
    async with client.gatehouse.transaction(write=True) as db:
        db.add(
            service.ApiKey(
                user_id=uuid.UUID(user["id"]),
                public_id=public_id,
                secret_hash=secret_hash,
                name="minted during a demotion",
                scopes="admin users:read",
            )
        )
    r = await client.get("/users", headers=bearer(key))
    assert r.status_code == 403 and error_code(r) == "insufficient_scope"
    assert (await client.get("/users/me", headers=bearer(key))).status_code == 200


async def test_admin_email_change_applies_at_once_and_notifies_the_old_address(
    make_settings: Any, receiver: "Receiver"
) -> None:
    settings = make_settings(webhook_url=receiver.url)
    async with running(settings) as client:
        _, admin = await admin_tokens(client, settings)
        user = await register(client)
        r = await client.patch(
            f"/users/{user['id']}", headers=bearer(admin["access_token"]), json={"email": "assigned@example.com"}
        )
        assert r.status_code == 200 and r.json()["email"] == "assigned@example.com"
        [notice] = await messages_of(receiver, "email_changed")
        assert notice["email"] == user["email"] and notice["new_email"] == "assigned@example.com"


async def test_attack_reset_after_compromise_revokes_every_api_key(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    parent = await make_key(client, tokens["access_token"], scopes=["keys:write", "users:read"])
    child = await make_key(client, parent["key"], scopes=["users:read"])
    link = await service.password_reset_link(client.gatehouse, user_id=uuid.UUID(user["id"]))
    r = await client.post(
        "/auth/password-reset/confirm", json={"token": token_of(link), "new_password": "fresh start!"}
    )
    assert r.status_code == 200 and r.json() == {"sessions_ended": 1, "api_keys_revoked": 2, "factors_removed": []}
    for key in (parent["key"], child["key"]):
        assert (await client.get("/users/me", headers=bearer(key))).status_code == 401
    [row] = [e for e in (await service.list_audit(client.gatehouse, event="user.password_reset"))[0]]
    assert json_detail(row)["keys_revoked"] == 2


def json_detail(row: service.AuditEvent) -> dict[str, Any]:
    import json

    return json.loads(row.detail)


async def test_voluntary_password_change_keeps_keys_unless_asked(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    auth = bearer(tokens["access_token"])
    key = (await make_key(client, tokens["access_token"]))["key"]
    body = {"current_password": PASSWORD, "new_password": "second password"}
    assert (await client.post("/users/me/password", headers=auth, json=body)).status_code == 204
    assert (await client.get("/users/me", headers=bearer(key))).status_code == 200
    body = {"current_password": "second password", "new_password": "third password", "revoke_api_keys": True}
    assert (await client.post("/users/me/password", headers=auth, json=body)).status_code == 204
    assert (await client.get("/users/me", headers=bearer(key))).status_code == 401
    assert (await client.get("/users/me", headers=auth)).status_code == 200  # this session stays


async def test_owner_deletes_own_account_with_everything(client: httpx.AsyncClient, settings: Settings) -> None:
    user, tokens = await new_user(client)
    key = (await make_key(client, tokens["access_token"]))["key"]
    await service.password_reset_link(client.gatehouse, user_id=uuid.UUID(user["id"]))
    r = await client.request("DELETE", "/users/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 204
    for credential in (tokens["access_token"], key):
        assert (await client.get("/users/me", headers=bearer(credential))).status_code == 401
    assert (await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})).status_code == 401
    async with client.gatehouse.transaction() as db:
        for model in (service.LoginSession, service.ApiKey, service.ActionToken):
            assert (
                await db.scalar(
                    sa.select(sa.func.count()).select_from(model).where(model.user_id == uuid.UUID(user["id"]))
                )
                == 0
            )
    [row] = (await service.list_audit(client.gatehouse, event="user.delete"))[0]
    assert row.actor_id == row.subject_id == uuid.UUID(user["id"])
    # the last admin cannot leave the service without one
    admin, admin_session = await admin_tokens(client, settings)
    r = await client.request(
        "DELETE", "/users/me", headers=bearer(admin_session["access_token"]), json={"password": PASSWORD}
    )
    assert r.status_code == 409 and error_code(r) == "last_admin"


async def test_attack_strangers_failed_logins_cannot_lock_out_the_owner(
    make_settings: Any, receiver: "Receiver"
) -> None:
    settings = make_settings(
        webhook_url=receiver.url, rate_login_failures_account="6/h", rate_login_failures_account_ip="5/h"
    )
    async with running(settings) as client:
        user, _ = await new_user(client)
        wrong = {"email": user["email"], "password": "a wrong guess"}
        for n in range(4):  # four addresses, three guesses each: the account-wide limit trips
            async with from_address(client, f"198.51.100.{n}") as stranger:
                for _ in range(3):
                    await stranger.post("/auth/login", json=wrong)
        async with from_address(client, "203.0.113.50") as owner:
            right = {"email": user["email"], "password": PASSWORD}
            r = await owner.post("/auth/login", json=right)
            assert r.status_code == 401 and error_code(r) == "login_code_required"
            r_wrong = await owner.post("/auth/login", json=wrong)  # no oracle: a wrong password looks the same
            assert r_wrong.status_code == 401 and r_wrong.json()["error"]["message"] == r.json()["error"]["message"]
            [mail] = await messages_of(receiver, "login_code")  # only the right password sent a code
            assert mail["email"] == user["email"] and len(mail["code"]) == 8
            r = await owner.post("/auth/login", json={**wrong, "code": mail["code"]})
            assert r.status_code == 401  # a code does not stand in for the password
            r = await owner.post("/auth/login", json={**right, "code": mail["code"]})
            assert r.status_code == 200, r.text
            r = await owner.post("/auth/login", json={**right, "code": mail["code"]})
            assert r.status_code == 401  # single use
        # a completed reset clears the account's counters: the password alone works again
        link = await service.password_reset_link(client.gatehouse, user_id=uuid.UUID(user["id"]))
        await client.post("/auth/password-reset/confirm", json={"token": token_of(link), "new_password": PASSWORD})
        async with from_address(client, "203.0.113.51") as owner:
            assert (await owner.post("/auth/login", json=right)).status_code == 200


async def test_attack_fifty_parallel_wrong_logins_get_no_more_checks_than_the_limit(make_settings: Any) -> None:
    async with running(make_settings(rate_login_failures_account_ip="10/h")) as client:
        user = await register(client)
        hasher = client.gatehouse.hasher
        before = hasher.checks
        wrong = {"email": user["email"], "password": "a wrong guess"}
        answers = await asyncio.gather(*(client.post("/auth/login", json=wrong) for _ in range(50)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [401] * 10 + [429] * 40
        assert hasher.checks - before == 10


async def test_attack_wrong_current_passwords_count_toward_the_login_limits(make_settings: Any) -> None:
    async with running(make_settings(rate_login_failures_account_ip="4/h")) as client:
        user, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        body = {"current_password": "not my password", "new_password": "whatever it is"}
        for _ in range(2):
            r = await client.post("/users/me/password", headers=auth, json=body)
            assert r.status_code == 400 and error_code(r) == "wrong_password"
        for _ in range(2):
            r = await client.post("/auth/reauthenticate", headers=auth, json={"password": "not my password"})
            assert r.status_code == 401
        r = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        assert r.status_code == 429  # four wrong guesses through the session spent this address's budget
        failures = (await service.list_audit(client.gatehouse, user_id=uuid.UUID(user["id"])))[0]
        assert (
            sorted(e.event for e in failures if e.outcome == "failure")
            == ["auth.reauthenticate"] * 2 + ["auth.step_up"] * 2
        )


async def test_attack_strangers_cannot_spend_the_owners_reset_mail(make_settings: Any, receiver: "Receiver") -> None:
    settings = make_settings(webhook_url=receiver.url, rate_reset_email="4/h", rate_reset_email_ip="2/h")
    async with running(settings) as client:
        user = await register(client)
        async with from_address(client, "203.0.113.7") as owner:
            await login(owner, user["email"])  # the owner has signed in from here before
        for n in range(6):  # six strangers, three requests each
            async with from_address(client, f"198.51.100.{n}") as stranger:
                for _ in range(3):
                    r = await stranger.post("/auth/password-reset/request", json={"email": user["email"]})
                    assert r.status_code == 202
        await settle(client.gatehouse)
        assert len(receiver.messages) == 4  # the mailbox cap held against 18 requests from 6 addresses
        async with from_address(client, "203.0.113.7") as owner:
            assert (await owner.post("/auth/password-reset/request", json={"email": user["email"]})).status_code == 202
        await messages_of(receiver, "password_reset", 5)  # the owner's request still got through


async def test_attack_rotating_ipv6_addresses_in_one_64_shares_one_limit(make_settings: Any) -> None:
    async with running(make_settings(rate_auth_ip="3/h")) as client:
        answers = []
        for n in range(4):
            async with from_address(client, f"2001:db8:1:2::{n + 1:x}") as rotating:
                r = await rotating.post("/auth/register", json={"email": f"v6-{n}@example.com", "password": PASSWORD})
                answers.append(r.status_code)
        assert answers == [201, 201, 201, 429]
        async with from_address(client, "2001:db8:1:3::1") as neighbour:  # another /64
            r = await neighbour.post("/auth/register", json={"email": "v6-n@example.com", "password": PASSWORD})
            assert r.status_code == 201
    assert service.ip_group("::ffff:192.0.2.1") == "192.0.2.1"


async def test_attack_key_made_by_a_key_cannot_outlive_outrank_or_survive_its_parent(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    parent = await make_key(client, tokens["access_token"], scopes=["keys:write", "users:read"], expires_in_days=5)
    r = await client.post(
        "/api-keys",
        headers=bearer(parent["key"]),
        json={"name": "longer", "scopes": ["users:read"], "expires_in_days": 10},
    )
    assert r.status_code == 403 and error_code(r) == "key_outlives_parent"
    r = await client.post("/api-keys", headers=bearer(parent["key"]), json={"name": "up", "scopes": ["users:write"]})
    assert r.status_code == 403 and error_code(r) == "insufficient_scope"
    child = await make_key(client, parent["key"], scopes=["users:read", "keys:write"])
    assert child["expires_at"] == parent["expires_at"] and child["parent_id"] == parent["id"]
    grandchild = await make_key(client, child["key"], scopes=["users:read"])
    r = await client.delete(f"/api-keys/{parent['id']}", headers=bearer(tokens["access_token"]))
    assert r.status_code == 204
    for key in (parent, child, grandchild):
        assert (await client.get("/users/me", headers=bearer(key["key"]))).status_code == 401


async def test_attack_demoted_admins_keys_do_not_come_back_on_repromotion(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin, session = await admin_tokens(client, settings)
    await admin_tokens(client, settings)
    strong = (await make_key(client, session["access_token"], scopes=["admin", "users:read"]))["key"]
    plain = (await make_key(client, session["access_token"], scopes=["users:read"]))["key"]
    gh, admin_id = client.gatehouse, uuid.UUID(admin["id"])
    await service.update_user(gh, user_id=admin_id, role="user")
    await service.update_user(gh, user_id=admin_id, role="admin")
    assert (await client.get("/users", headers=bearer(strong))).status_code == 401
    assert (await client.get("/users/me", headers=bearer(plain))).status_code == 200  # held nothing above "user"


async def test_session_has_an_absolute_lifetime(make_settings: Any) -> None:
    async with running(make_settings(session_max_days=2, refresh_token_days=30)) as client:
        _, tokens = await new_user(client)
        sid = uuid.UUID(claims(tokens["access_token"])["sid"])
        row = await session_row(client.gatehouse, str(sid))
        assert row.expires_at - row.created_at == service.timedelta(days=2)
        async with client.gatehouse.transaction(write=True) as db:  # a session kept alive by refreshes for 3 days
            await db.execute(
                sa.update(service.LoginSession)
                .where(service.LoginSession.id == sid)
                .values(
                    created_at=service.utcnow() - service.timedelta(days=3),
                    expires_at=service.utcnow() + service.timedelta(days=20),
                )
            )
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "token_expired"


async def test_attack_bogus_reset_tokens_cost_no_hash_and_are_rate_limited(make_settings: Any) -> None:
    async with running(make_settings(rate_auth_ip="3/h")) as client:
        hasher = client.gatehouse.hasher
        before = hasher.hashes
        body = {"token": "x" * 43, "new_password": "whatever it is"}
        answers = [(await client.post("/auth/password-reset/confirm", json=body)).status_code for _ in range(4)]
        assert answers == [400, 400, 400, 429]
        assert hasher.hashes == before


@pytest.mark.parametrize("backend", ["postgres"])  # limits are shared through Redis; in-process ones are per process
async def test_attack_guesses_spread_over_two_instances_share_one_budget(
    make_settings: Any, receiver: "Receiver"
) -> None:
    settings = make_settings(
        webhook_url=receiver.url, rate_login_failures_account_ip="10/h", rate_login_failures_account="12/h"
    )
    async with running(settings) as a, running(settings) as b:
        user = await register(a)
        wrong = {"email": user["email"], "password": "a wrong guess"}
        checks = a.gatehouse.hasher.checks + b.gatehouse.hasher.checks
        answers = await asyncio.gather(*(c.post("/auth/login", json=wrong) for c in (a, b) * 25))
        assert sorted(r.status_code for r in answers) == [401] * 10 + [429] * 40
        assert a.gatehouse.hasher.checks + b.gatehouse.hasher.checks - checks == 10
        async with from_address(a, "198.51.100.1") as stranger:  # the account-wide limit fills up on A ...
            for _ in range(3):
                await stranger.post("/auth/login", json=wrong)
        async with from_address(b, "203.0.113.9") as owner:  # ... and B asks the owner for the mailed code
            right = {"email": user["email"], "password": PASSWORD}
            r = await owner.post("/auth/login", json=right)
            assert r.status_code == 401 and error_code(r) == "login_code_required"
            [mail] = await messages_of(receiver, "login_code")
        async with from_address(a, "203.0.113.9") as owner:  # the code works on either instance
            assert (await owner.post("/auth/login", json={**right, "code": mail["code"]})).status_code == 200


async def test_attack_strangers_on_sixteen_addresses_cannot_keep_the_owner_out_of_a_new_address(
    make_settings: Any, receiver: "Receiver"
) -> None:
    # The default limits: 12 addresses x 10 guesses fill RATE_LOGIN_FAILURES_ACCOUNT (100/h), then 4 x 3 reset
    # requests spend RATE_RESET_EMAIL (10/h); the owner comes from an address they never signed in from.
    async with running(make_settings(webhook_url=receiver.url, rate_auth_ip="30/m")) as client:
        user = await register(client)
        wrong = {"email": user["email"], "password": "a wrong guess"}
        answers = []
        for n in range(12):
            async with from_address(client, f"198.51.100.{n}") as stranger:
                answers += [error_code(await stranger.post("/auth/login", json=wrong)) for _ in range(10)]
        assert answers == ["invalid_credentials"] * 100 + ["login_code_required"] * 20
        for n in range(12, 16):
            async with from_address(client, f"198.51.100.{n}") as stranger:
                for _ in range(3):
                    r = await stranger.post("/auth/password-reset/request", json={"email": user["email"]})
                    assert r.status_code == 202
        await settle(client.gatehouse)
        assert len(await messages_of(receiver, "password_reset", 10)) == 10  # the mailbox's budget is spent
        right = {"email": user["email"], "password": PASSWORD}
        async with from_address(client, "203.0.113.80") as owner:
            r_wrong = await owner.post("/auth/login", json=wrong)
            r = await owner.post("/auth/login", json=right)
            assert r.status_code == r_wrong.status_code == 401 and error_code(r) == "login_code_required"
            assert r.json()["error"]["message"] == r_wrong.json()["error"]["message"]  # no oracle, and no mail
            [mail] = await messages_of(receiver, "login_code")
            assert mail["email"] == user["email"]
            r = await owner.post("/auth/login", json={**right, "code": mail["code"]})
            assert r.status_code == 200, r.text
            assert (await session_row(client.gatehouse, claims(r.json()["access_token"])["sid"])).ip == "203.0.113.80"
            for _ in range(4):  # whoever holds the password cannot flood the mailbox with codes
                r = await owner.post("/auth/login", json=right)
                assert r.status_code == 401 and error_code(r) == "login_code_required"
        await settle(client.gatehouse)
        assert len([m for m in receiver.messages if m["type"] == "login_code"]) == 3  # RATE_RESET_EMAIL_IP
        assert len(await audit_rows(client.gatehouse, "auth.login_code_sent")) == 3  # no code issued unsent


async def test_passkey_sign_in_from_a_new_address_is_not_held_by_a_full_password_limit(make_settings: Any) -> None:
    async with running(make_settings(rate_login_failures_account="3/h")) as client:
        user, tokens = await new_user(client)
        authenticator = SoftAuthenticator()
        assert (await add_passkey(client, tokens["access_token"], authenticator)).status_code == 201
        wrong = {"email": user["email"], "password": "a wrong guess"}
        async with from_address(client, "198.51.100.40") as stranger:
            answers = [error_code(await stranger.post("/auth/login", json=wrong)) for _ in range(4)]
        assert answers == ["invalid_credentials"] * 3 + ["login_code_required"]  # the password now needs a code
        async with from_address(client, "203.0.113.81") as owner:  # the passkey needs none: it is not guessable
            r = await passkey_sign_in(owner, authenticator)
            assert r.status_code == 200, r.text
            assert claims(r.json()["access_token"])["sub"] == user["id"]
            assert (await session_row(client.gatehouse, claims(r.json()["access_token"])["sid"])).ip == "203.0.113.81"


async def test_attack_a_session_holder_cannot_flood_addresses_with_email_change_requests(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url, rate_reset_email_ip="2/h")) as client:
        user, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        for n in (1, 2):
            r = await client.patch("/users/me", headers=auth, json={"email": f"new{n}@example.com"})
            assert r.status_code == 200, r.text
        r = await client.patch("/users/me", headers=auth, json={"email": "new3@example.com", "password": PASSWORD})
        assert r.status_code == 429 and error_code(r) == "rate_limited" and int(r.headers["retry-after"]) > 0
        await settle(client.gatehouse)
        confirms = [m["email"] for m in receiver.messages if m["type"] == "email_change_confirm"]
        assert confirms == ["new1@example.com", "new2@example.com"]
        assert len(await audit_rows(client.gatehouse, "user.email_change_request")) == 2
        assert (await user_row(client.gatehouse, user["email"])).email == user["email"]


async def test_attack_a_mailed_login_code_is_refused_after_its_allowed_wrong_tries(
    make_settings: Any, receiver: "Receiver"
) -> None:
    settings = make_settings(
        webhook_url=receiver.url, rate_login_failures_account="3/h", rate_login_failures_account_ip="50/h"
    )
    async with running(settings) as client:
        user = await register(client)
        wrong, right = (
            {"email": user["email"], "password": "a wrong guess"},
            {"email": user["email"], "password": PASSWORD},
        )
        async with from_address(client, "198.51.100.1") as stranger:  # fills the account-wide limit
            for _ in range(3):
                await stranger.post("/auth/login", json=wrong)
        async with from_address(client, "203.0.113.50") as holder:  # holds the password, not the mailbox
            r = await holder.post("/auth/login", json=right)
            assert r.status_code == 401 and error_code(r) == "login_code_required"
            [mail] = await messages_of(receiver, "login_code")
            guesses = [f"{(int(mail['code']) + n) % 10**8:08d}" for n in range(1, 6)]
            for guess in guesses:  # five wrong tries per code lifetime
                r = await holder.post("/auth/login", json={**right, "code": guess})
                assert r.status_code == 401 and error_code(r) == "login_code_required"
            r = await holder.post("/auth/login", json={**right, "code": mail["code"]})
            assert r.status_code == 401 and error_code(r) == "login_code_required"  # the right code, too late
        async with client.gatehouse.transaction() as db:
            [row] = await db.scalars(sa.select(service.ActionToken).where(service.ActionToken.purpose == "login_code"))
        assert row.used_at is None
        assert len(await audit_rows(client.gatehouse, "auth.login", "success")) == 0


async def age_proof_by(gh: service.Gatehouse, session_id: str, seconds: float) -> None:
    async with gh.transaction(write=True) as db:
        await db.execute(
            sa.update(service.LoginSession)
            .where(service.LoginSession.id == uuid.UUID(session_id))
            .values(authenticated_at=service.utcnow() - service.timedelta(seconds=seconds))
        )


async def test_attack_a_sign_in_just_past_reauth_minutes_is_stale_and_just_before_is_fresh(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, tokens = await new_user(client)
    sid, window = claims(tokens["access_token"])["sid"], settings.reauth_minutes * 60
    for age, status in ((window + 30, 401), (window - 30, 201)):
        await age_proof_by(client.gatehouse, sid, age)
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        tokens = r.json()
        assert abs(time.time() - claims(tokens["access_token"])["auth_time"] - age) < 5
        r = await client.post(
            "/api-keys", headers=bearer(tokens["access_token"]), json={"name": "k", "scopes": ["users:read"]}
        )
        assert r.status_code == status, (age, r.text)
        if status == 401:
            assert error_code(r) == "reauthentication_required"
    assert len((await client.get("/api-keys", headers=bearer(tokens["access_token"]))).json()) == 1


async def test_attack_strangers_cannot_spend_the_owners_mail_reserve_and_it_is_capped_across_addresses(
    make_settings: Any, receiver: "Receiver"
) -> None:
    settings = make_settings(webhook_url=receiver.url, rate_reset_email="2/h", rate_reset_email_ip="2/h")
    async with running(settings) as client:
        user = await register(client)
        for ip in ("198.51.100.1", "198.51.100.2"):  # the owner's two known addresses
            async with from_address(client, ip) as owner:
                await login(owner, user["email"])

        async def resets(ip: str, n: int) -> int:
            async with from_address(client, ip) as caller:
                for _ in range(n):
                    r = await caller.post("/auth/password-reset/request", json={"email": user["email"]})
                    assert r.status_code == 202
            await settle(client.gatehouse)
            return len([m for m in receiver.messages if m["type"] == "password_reset"])

        assert await resets("203.0.113.1", 3) == 2  # strangers spend the mailbox's budget
        assert await resets("198.51.100.1", 3) == 4  # the owner's reserve: RATE_RESET_EMAIL_IP more
        assert await resets("198.51.100.2", 2) == 4  # one reserve for the mailbox, not one per known address
        assert await resets("203.0.113.2", 1) == 4


# Takeover resistance: edge and input #########################################

# Hostile or malformed input gets a clear 4xx JSON answer, never a 500 or a leaky log line,
# and the shipped image takes the client address from the socket, not from a header.


def _b64(obj_or_text: Any) -> str:
    import base64
    import json

    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


NESTED_1000 = "[" * 1000 + "]" * 1000


async def test_attack_jwt_header_nested_1000_deep_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/users/me", headers=bearer(f"{_b64(NESTED_1000)}.e30.c2ln"))
    assert r.status_code == 401 and error_code(r) == "invalid_token"
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


async def test_attack_login_body_nested_1000_deep_is_400_malformed_json(client: httpx.AsyncClient) -> None:
    json_body = {"content-type": "application/json"}
    r = await client.post("/auth/login", content=NESTED_1000, headers=json_body)
    assert r.status_code == 400 and error_code(r) == "malformed_json"
    for path in ("/auth/register", "/auth/refresh"):  # FastAPI parses these bodies itself: 400 too
        r = await client.post(path, content=NESTED_1000, headers=json_body)
        assert r.status_code == 400 and error_code(r), path


@pytest.mark.parametrize(
    "decoded",
    [
        [[1], [2]],
        ["2026-01-01T00:00:00+00:00", [2]],
        ["2026-01-01T00:00:00+00:00", 5],
        ["2026-01-01T00:00:00+00:00"],
        {"at": "2026-01-01T00:00:00+00:00", "id": "0" * 32},
        ["0001-01-01T00:00:00+00:00", "0" * 32],
        ["0001-01-01T00:00:00+01:00", "0" * 32],
        ["9999-12-31T23:59:59+00:00", "0" * 32],
        ["9999-12-31T23:59:59-01:00", "0" * 32],
    ],
)
async def test_attack_admin_cursor_of_another_shape_or_at_the_calendar_edge_is_422(
    client: httpx.AsyncClient, settings: Settings, decoded: Any
) -> None:
    _, admin = await admin_tokens(client, settings)
    for path in ("/users", "/audit"):
        r = await client.get(path, headers=bearer(admin["access_token"]), params={"cursor": _b64(decoded)})
        assert r.status_code == 422 and error_code(r) == "invalid_cursor", (path, r.text)


@pytest.mark.parametrize(
    "value, lies",
    [
        ("0001-01-01T00:00:00Z", "before every row"),
        ("0001-01-01T00:00:00", "before every row"),  # no offset: UTC, as the CLI reads it
        ("0001-01-01T00:00:00-14:00", "before every row"),
        ("0001-01-01T00:00:00+14:00", "off the calendar in UTC"),
        ("9999-12-31T23:59:59Z", "after every row"),
        ("9999-12-31T23:59:59.999999Z", "after every row"),
        ("9999-12-31T23:59:59+14:00", "after every row"),
        ("9999-12-31T23:59:59-14:00", "off the calendar in UTC"),
    ],
)
async def test_attack_audit_since_until_at_the_calendar_edges_are_right_rows_or_422(
    client: httpx.AsyncClient, settings: Settings, value: str, lies: str
) -> None:
    _, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    every = [e["id"] for e in (await client.get("/audit", headers=auth, params={"limit": 200})).json()["items"]]
    assert every
    for bound in ("since", "until"):
        r = await client.get("/audit", headers=auth, params={bound: value, "limit": 200})
        if lies == "off the calendar in UTC":
            assert r.status_code == 422 and error_code(r) == "invalid_input", r.text
            assert bound in r.json()["error"]["message"]
            continue
        assert r.status_code == 200, r.text
        expect_all = (bound == "since") == (lies == "before every row")
        assert [e["id"] for e in r.json()["items"]] == (every if expect_all else [])
    result = await run_cli(settings, "audit", "--since", value)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if lies == "off the calendar in UTC":
        assert result.exit_code == 1 and result.output.startswith("error: since:"), result.output
    else:
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "path, params",
    [
        ("/users", {"email": "\x00"}),
        ("/users", {"email": "page\x00@example.com"}),
        ("/audit", {"event": "\x00"}),
        ("/audit", {"event": "auth.login\x00"}),
    ],
)
async def test_attack_nul_byte_in_admin_filters_is_422_on_every_backend(
    client: httpx.AsyncClient, settings: Settings, path: str, params: dict[str, str]
) -> None:
    _, admin = await admin_tokens(client, settings)
    r = await client.get(path, headers=bearer(admin["access_token"]), params=params)
    # PostgreSQL refuses NUL in text (was a 500); SQLite's LIKE stopped at it and matched everyone.
    assert r.status_code == 422 and error_code(r) == "validation_error", r.text
    assert r.json()["error"]["details"][0]["loc"] == ["query", *params]


async def test_attack_unexpected_database_error_logs_no_bound_parameters(
    client: httpx.AsyncClient, backend: str
) -> None:
    import io
    import logging

    # A trigger makes the users INSERT fail in a way no handler expects (neither a duplicate
    # nor an outage); its bound parameters are the new email and the password hash.
    if backend == "sqlite":
        setup = ["CREATE TRIGGER gh_boom BEFORE INSERT ON users BEGIN SELECT zeroblob(2000000000); END"]
        teardown = ["DROP TRIGGER gh_boom"]
    else:
        setup = [
            "CREATE FUNCTION gh_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
            "CREATE TRIGGER gh_boom BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION gh_boom()",
        ]
        teardown = ["DROP TRIGGER gh_boom ON users", "DROP FUNCTION gh_boom()"]

    async def run(statements: list[str]) -> None:
        async with client.gatehouse.transaction(write=True) as db:
            for statement in statements:
                await db.execute(sa.text(statement))

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(service.JsonFormatter())
    logger = logging.getLogger("gatehouse")
    logger.addHandler(handler)
    await run(setup)
    try:
        email = f"leak-{secrets.token_hex(4)}@example.com"
        r = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    finally:
        await run(teardown)
        logger.removeHandler(handler)
    assert r.status_code == 500 and error_code(r) == "internal_error"
    logged = stream.getvalue()
    assert "unhandled database error" in logged and "INSERT INTO users" in logged  # the error was logged...
    assert email not in logged and "$2b$" not in logged  # ...without the email or the hash


async def test_attack_timing_headers_are_off_in_production_unless_asked_for(make_settings: Any) -> None:
    for overrides, shown in [
        ({}, True),
        ({"timing_headers": False}, False),
        ({"environment": "production"}, False),
        ({"environment": "production", "timing_headers": True}, True),
    ]:
        async with running(make_settings(**overrides)) as client:
            for r in (await client.get("/health/live"), await client.post("/auth/login", json={})):
                assert ("server-timing" in r.headers) is shown, overrides
                assert ("x-process-time" in r.headers) is shown, overrides
                assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.live
def test_attack_spoofed_forwarded_for_with_the_image_command_changes_nothing(make_settings: Any, tmp_path: Any) -> None:
    import json

    log_path = tmp_path / "server.log"
    # FORWARDED_ALLOW_IPS=* is what the compose file used to set: the image must not care.
    server = Server.as_the_image(make_settings(rate_auth_ip="3/m"), log_path=log_path, FORWARDED_ALLOW_IPS="*").start()
    spoofed = [f"203.0.113.{i}" for i in range(1, 5)]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            codes = [
                c.post(
                    "/auth/login",
                    json={"email": "nobody@example.com", "password": PASSWORD},
                    headers={"X-Forwarded-For": ip},
                ).status_code
                for ip in spoofed
            ]
    finally:
        server.stop()
    assert codes == [401, 401, 401, 429]  # one budget: the real peer's
    text = log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    logins = [r for r in records if r["logger"] == "gatehouse.access" and r["route"] == "/auth/login"]
    assert [r["client_ip"] for r in logins] == ["127.0.0.1"] * 4
    assert not any(ip in text for ip in spoofed)


async def test_attack_admin_session_without_a_second_factor_uses_admin_power_outside_admin_routes(
    make_settings: Any,
) -> None:
    settings = make_settings(require_mfa_for_admins=True)
    async with running(settings) as client:
        victim, victim_session = await new_user(client)
        victim_key = await make_key(client, victim_session["access_token"], scopes=["users:read"])
        sid = claims(victim_session["access_token"])["sid"]
        admin, admin_session = await admin_tokens(client, settings)
        auth = bearer(admin_session["access_token"])  # password only: aal1
        attempts = [
            ("POST", "/api-keys", {"name": "x", "scopes": ["users:write"], "user_id": victim["id"]}, 403),
            ("GET", f"/api-keys?user_id={victim['id']}", None, 403),
            ("DELETE", f"/api-keys/{victim_key['id']}", None, 404),  # as for any user: not one of yours
            ("DELETE", f"/sessions/{sid}", None, 404),
            ("GET", f"/users/{victim['id']}/sessions", None, 403),
        ]
        codes = {403: "mfa_enrollment_required", 404: "api_key_not_found session_not_found"}
        for method, path, body, status in attempts:
            r = await client.request(method, path, headers=auth, json=body and {**body, "password": PASSWORD})
            assert r.status_code == status and error_code(r) in codes[status].split(), (method, path, r.text)
        assert (await client.get("/users/me", headers=bearer(victim_key["key"]))).status_code == 200
        assert (await client.get("/users/me", headers=bearer(victim_session["access_token"]))).status_code == 200
        assert [k.id for k in await service.list_api_keys(client.gatehouse, user_id=uuid.UUID(victim["id"]))] == [
            uuid.UUID(victim_key["id"])
        ]
        assert not await audit_rows(client.gatehouse, "auth.session_end")
        assert not await audit_rows(client.gatehouse, "key.revoke")
        # the admin's own account works as any user's: their keys, a key without the admin scope
        assert (await client.get("/api-keys", headers=auth)).json() == []
        assert (await make_key(client, admin_session["access_token"], scopes=["users:read"]))["user_id"] == admin["id"]
        # with a second factor behind the session, the admin power is back
        totp, _ = await enroll_totp(client, admin_session["access_token"])
        r = await client.post("/auth/reauthenticate", headers=auth, json={"otp": next_code(totp)})
        stepped = bearer(r.json()["access_token"])
        assert (await client.delete(f"/sessions/{sid}", headers=stepped)).status_code == 204
        r = await client.get("/users/me", headers=bearer(victim_session["access_token"]))
        assert r.status_code == 401 and error_code(r) == "session_revoked"


async def test_attack_admin_api_key_made_without_a_second_factor_keeps_admin_power(make_settings: Any) -> None:
    before = make_settings()  # the rule is off when the key is made from a password-only session
    async with running(before) as client:
        _, victim_session = await new_user(client)
        victim_id = claims(victim_session["access_token"])["sub"]
        admin, admin_session = await admin_tokens(client, before)
        old = await make_key(client, admin_session["access_token"], scopes=["admin", "keys:read", "users:read"])
    settings = make_settings(require_mfa_for_admins=True)
    async with running(settings) as client:
        auth = bearer(old["key"])
        for method, path in [
            ("GET", "/users"),
            ("GET", f"/api-keys?user_id={victim_id}"),
            ("GET", f"/users/{victim_id}/sessions"),
            ("DELETE", f"/users/{victim_id}/sessions"),
        ]:
            r = await client.request(method, path, headers=auth)
            assert r.status_code == 403 and error_code(r) == "mfa_enrollment_required", (path, r.text)
        assert (await client.get("/users/me", headers=bearer(victim_session["access_token"]))).status_code == 200
        assert (await client.get("/users/me", headers=auth)).json()["id"] == admin["id"]  # still the admin's key
        # keys made by a session with a second factor, or by the operator at the CLI, keep the admin scope
        session = await login(client, admin["email"])
        totp, _ = await enroll_totp(client, session["access_token"])
        r = await client.post(
            "/auth/reauthenticate", headers=bearer(session["access_token"]), json={"otp": next_code(totp)}
        )
        proven = await make_key(client, r.json()["access_token"], scopes=["admin", "users:read"])
        result = await run_cli(settings, "create-key", admin["email"], "--name", "ops", "--scope", "admin", "--json")
        assert result.exit_code == 0, result.output
        operators = json.loads(result.output)
        for key in (proven["key"], operators["key"]):
            r = await client.get(f"/users/{victim_id}/sessions", headers=bearer(key))
            assert r.status_code == 200 and len(r.json()) == 1, r.text
        result = await run_cli(settings, "check-config")
        assert result.exit_code == 1 and f"API key(s) {old['prefix']} hold the admin scope" in result.output
        assert proven["prefix"] not in result.output and operators["prefix"] not in result.output
        assert "hold the admin scope" not in (await run_cli(before, "check-config")).output  # the rule is off


async def test_require_mfa_refuses_an_api_key_even_one_made_with_a_second_factor(make_settings: Any) -> None:
    from fastapi import FastAPI

    host = FastAPI()
    service.mount_gatehouse(host, "/identity", make_settings())

    @host.get("/payouts")
    async def payouts(principal: Any = service.require_mfa()) -> dict[str, Any]:
        return {"aal": principal.aal}

    async with host.router.lifespan_context(host):
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test/identity") as client:
            _, tokens = await new_user(client)
            totp, _ = await enroll_totp(client, tokens["access_token"])
            r = await client.post(
                "/auth/reauthenticate", headers=bearer(tokens["access_token"]), json={"otp": next_code(totp)}
            )
            stepped = r.json()["access_token"]
            key = (await make_key(client, stepped, scopes=["users:read"]))["key"]  # made by an aal2 session
            assert (await client.get("http://host.test/payouts", headers=bearer(stepped))).json() == {"aal": 2}
            r = await client.get("http://host.test/payouts", headers=bearer(key))
            assert r.status_code == 403 and error_code(r) == "mfa_required"  # a key is no second factor


async def test_attack_api_key_lists_and_ends_its_owners_sessions(client: httpx.AsyncClient, settings: Settings) -> None:
    user, tokens = await new_user(client)
    other = await login(client, user["email"])
    sid = claims(other["access_token"])["sid"]
    key = bearer((await make_key(client, tokens["access_token"], scopes=["users:read", "users:write"]))["key"])
    r = await client.get("/sessions", headers=key)
    assert r.status_code == 403 and error_code(r) == "access_token_required"
    r = await client.delete(f"/sessions/{sid}", headers=key)
    assert r.status_code == 403 and error_code(r) == "access_token_required"
    assert (await client.get("/users/me", headers=bearer(other["access_token"]))).status_code == 200
    assert not await audit_rows(client.gatehouse, "auth.session_end")
    # the owner's sessions still see and end each other, as logout does
    r = await client.get("/sessions", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200 and sid in [s["id"] for s in r.json()]
    assert (await client.delete(f"/sessions/{sid}", headers=bearer(tokens["access_token"]))).status_code == 204
    assert (await client.get("/users/me", headers=bearer(other["access_token"]))).status_code == 401
    # an admin key keeps its admin power over sessions, through the admin routes
    admin, _ = await admin_tokens(client, settings)
    _, admin_key = await service.create_api_key(
        client.gatehouse, user_id=uuid.UUID(admin["id"]), name="ops", scopes=["admin"], aal=2
    )
    r = await client.get(f"/users/{user['id']}/sessions", headers=bearer(admin_key))
    assert r.status_code == 200 and [s["id"] for s in r.json()] == [claims(tokens["access_token"])["sid"]]


async def test_attack_old_mailbox_undoes_a_later_email_change(make_settings: Any, receiver: "Receiver") -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        for n, new in enumerate(["second@example.com", "third@example.com"], start=1):
            assert (await client.patch("/users/me", headers=auth, json={"email": new})).status_code == 200
            confirm = (await messages_of(receiver, "email_change_confirm", n))[-1]
            r = await client.post("/auth/email-change/confirm", json={"token": token_of(confirm["link"])})
            assert r.status_code == 200 and r.json()["email"] == new
        first, second = await messages_of(receiver, "email_change_notice", 2)
        assert [first["email"], second["email"]] == [user["email"], "second@example.com"]
        # the first address, left two moves ago, can no longer pull the account back
        r = await client.post("/auth/email-change/revert", json={"token": token_of(first["link"])})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"
        assert (await client.get("/users/me", headers=auth)).json()["email"] == "third@example.com"
        assert not await audit_rows(client.gatehouse, "user.email_change_revert")
        # the latest move's link still works in its window
        r = await client.post("/auth/email-change/revert", json={"token": token_of(second["link"])})
        assert r.status_code == 200 and r.json()["sessions_ended"] == 1
        assert (await user_row(client.gatehouse, "second@example.com")).id == uuid.UUID(user["id"])


async def test_attack_old_mailbox_undoes_a_move_its_owner_vouched_for(make_settings: Any, receiver: "Receiver") -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        assert (await client.patch("/users/me", headers=auth, json={"email": "new@example.com"})).status_code == 200
        [confirm] = await messages_of(receiver, "email_change_confirm")
        assert (await client.post("/auth/email-change/confirm", json={"token": token_of(confirm["link"])})).is_success
        key = (await make_key(client, tokens["access_token"], scopes=["users:read", "users:write"]))["key"]
        r = await client.post("/users/me/email-change/keep", headers=bearer(key), json={"password": PASSWORD})
        assert r.status_code == 403 and error_code(r) == "session_required"
        r = await client.post("/users/me/email-change/keep", headers=auth, json={"password": "not the password"})
        assert r.status_code == 400 and error_code(r) == "wrong_password"
        r = await client.post("/users/me/email-change/keep", headers=auth, json={"password": PASSWORD})
        assert r.status_code == 204
        [notice] = await messages_of(receiver, "email_change_notice")
        r = await client.post("/auth/email-change/revert", json={"token": token_of(notice["link"])})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"
        assert (await client.get("/users/me", headers=auth)).json()["email"] == "new@example.com"
        assert (await client.get("/users/me", headers=bearer(key))).status_code == 200
        [kept] = await audit_rows(client.gatehouse, "user.email_change_kept")
        assert str(kept.subject_id) == user["id"] and json.loads(kept.detail) == {"links": 1}


async def test_attack_a_stolen_session_with_the_password_cannot_move_an_mfa_account_or_spend_its_undo_links(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        _, tokens = await new_user(client)
        auth = bearer(tokens["access_token"])
        totp, _ = await enroll_totp(client, tokens["access_token"])
        r = await client.patch("/users/me", headers=auth, json={"email": "thief@example.com", "password": PASSWORD})
        assert r.status_code == 401 and error_code(r) == "factor_proof_required"  # fresh, and the password: not enough
        r = await client.post("/users/me/email-change/keep", headers=auth, json={"password": PASSWORD})
        assert r.status_code == 401 and error_code(r) == "factor_proof_required"
        r = await client.patch("/users/me", headers=auth, json={"email": "new@example.com", "otp": next_code(totp)})
        assert r.status_code == 200 and r.json()["pending_email"] == "new@example.com"  # the owner, with the factor


# Mail, pages and the first hour ##############################################


def _test_certificate(tmp_path: Any) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gatehouse test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free loopback port, in its own thread; keeps what it accepts."""

    def __init__(
        self,
        tmp_path: Any,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        refuse: str | None = None,
    ):
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[Any] = []
        self.sessions: list[dict[str, Any]] = []
        self.cert, key = _test_certificate(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        outer = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
                if refuse:
                    return refuse
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                import email

                outer.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
                tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
                outer.sessions.append(
                    {
                        "tls": tls,
                        "login": session.auth_data,
                        "mail_from": envelope.mail_from,
                        "rcpt_tos": list(envelope.rcpt_tos),
                    }
                )
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            ok = users is not None and users.get(auth_data.login.decode()) == auth_data.password.decode()
            # handled=False: aiosmtpd then answers a refusal with 535 itself
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

        self.port = _free_port()
        # aiosmtpd counts only STARTTLS as TLS for AUTH: with implicit TLS, AUTH is offered but not forced.
        options: dict[str, Any] = {
            "authenticator": authenticate,
            "auth_required": users is not None and not implicit_tls,
            "auth_require_tls": not implicit_tls,
        }
        if starttls:
            options.update(tls_context=context, require_starttls=True)
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, ssl_context=context if implicit_tls else None, **options
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class BrokenSmtp:
    """A loopback port whose server accepts connections and then hangs (never greets) or drops them."""

    def __init__(self, behaviour: str):
        self.behaviour, self.connections, self.port = behaviour, 0, 0
        self._server: Any = None
        self._held: list[Any] = []

    async def start(self) -> "BrokenSmtp":
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            if self.behaviour == "drop":
                writer.close()
            else:
                self._held.append(writer)

        self._server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for writer in self._held:
            writer.close()
        self._server.close()


def mail_count(kind: str, outcome: str) -> float:
    return service.metrics(Settings()).mail.labels(kind, outcome)._value.get()


async def mail_audit(gh: service.Gatehouse) -> list[service.AuditEvent]:
    rows, _ = await service.list_audit(gh, limit=200)
    return [r for r in rows if r.event.startswith("mail.")]


async def wait_mail_done(gh: service.Gatehouse) -> None:
    await asyncio.sleep(0.05)  # let spawned work enqueue first
    assert await gh.mailer.join(seconds=20), "mail queue never drained"


def _mail_parts(message: Any) -> tuple[str, str]:
    text = html_part = ""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode()
        elif part.get_content_type() == "text/html":
            html_part = part.get_payload(decode=True).decode()
    return text, html_part


async def test_mail_reset_over_smtp_with_starttls_and_auth(make_settings: Any, tmp_path: Any) -> None:
    smtp = SmtpServer(tmp_path, starttls=True, users={"mailer@example.com": "p@ss:word"})
    try:
        settings = make_settings(
            smtp_url=f"smtp://mailer%40example.com:p%40ss%3Aword@127.0.0.1:{smtp.port}",
            smtp_ca_file=smtp.cert,
            mail_from="Example Auth <auth@example.com>",
            public_url="https://auth.example.com",
        )
        sent_before = mail_count("password_reset", "sent")
        async with running(settings) as client:
            user = await register(client)
            r = await client.post("/auth/password-reset/request", json={"email": user["email"]})
            assert r.status_code == 202
            await _until(lambda: asyncio.sleep(0, len(smtp.messages) == 1), "the reset message over SMTP")
            message, session = smtp.messages[0], smtp.sessions[0]
            assert session["tls"] and session["login"] == b"mailer@example.com"  # STARTTLS before AUTH
            assert session["rcpt_tos"] == [user["email"]] and session["mail_from"] == "auth@example.com"
            assert message["From"] == "Example Auth <auth@example.com>" and message["To"] == user["email"]
            assert message["Subject"] == "Reset your password for auth.example.com"
            text, html_part = _mail_parts(message)
            link = re.search(r"https://auth\.example\.com/reset-password\?token=\S+", text).group(0)
            assert f'href="{link}"' in html_part and "<!doctype html>" in html_part
            r = await client.post(
                "/auth/password-reset/confirm", json={"token": token_of(link), "new_password": "from the mail"}
            )
            assert r.status_code == 200
            await wait_mail_done(client.gatehouse)
            rows = await mail_audit(client.gatehouse)
            assert [(r.event, r.outcome, str(r.subject_id)) for r in rows] == [("mail.sent", "success", user["id"])]
            detail = json.loads(rows[0].detail)
            assert detail == {"kind": "password_reset", "transport": "smtp", "attempts": 1}
            assert user["email"] not in rows[0].detail and "token" not in rows[0].detail
        assert mail_count("password_reset", "sent") == sent_before + 1
    finally:
        smtp.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_mail_smtps_and_credentials_from_settings(make_settings: Any, tmp_path: Any) -> None:
    smtp = SmtpServer(tmp_path, implicit_tls=True, users={"relay": "s3cret"})
    try:
        settings = make_settings(
            smtp_url=f"smtps://127.0.0.1:{smtp.port}",
            smtp_username="relay",
            smtp_password="s3cret",
            smtp_ca_file=smtp.cert,
            mail_from="auth@example.com",
        )
        async with running(settings) as client:
            gh = client.gatehouse
            assert await service.deliver(
                gh,
                kind="email_change_notice",
                email="old@example.com",
                link="https://x/revert?token=a&b=<c>",
                new_email="<new>@example.com",
            )
            await wait_mail_done(gh)
        assert smtp.sessions[0]["tls"] and smtp.sessions[0]["login"] == b"relay"
        text, html_part = _mail_parts(smtp.messages[0])
        assert "https://x/revert?token=a&b=<c>" in text and "<new>@example.com" in text
        assert 'href="https://x/revert?token=a&amp;b=&lt;c&gt;"' in html_part  # every value escaped in HTML
        assert "&lt;new&gt;@example.com" in html_part and "<new>" not in html_part
    finally:
        smtp.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("case", ["refused", "wrong_password"])
async def test_mail_a_permanent_refusal_is_not_retried_and_is_audited(
    make_settings: Any, tmp_path: Any, case: str
) -> None:
    smtp = SmtpServer(
        tmp_path,
        starttls=True,
        users={"relay": "right"},
        refuse="550 5.1.1 mailbox unavailable" if case == "refused" else None,
    )
    try:
        settings = make_settings(
            smtp_url=f"smtp://relay:{'right' if case == 'refused' else 'wrong'}@127.0.0.1:{smtp.port}",
            smtp_ca_file=smtp.cert,
            mail_attempts=4,
        )
        failed_before, retried_before = mail_count("login_code", "failed"), mail_count("login_code", "retried")
        async with running(settings) as client:
            user = await register(client)
            gh = client.gatehouse
            assert await service.deliver(
                gh, kind="login_code", email=user["email"], code="12345678", user_id=uuid.UUID(user["id"])
            )
            await wait_mail_done(gh)
            [row] = await mail_audit(gh)
        assert (row.event, row.outcome, str(row.subject_id)) == ("mail.failed", "failure", user["id"])
        detail = json.loads(row.detail)
        assert detail["attempts"] == 1 and detail["error"].startswith("SMTP 5"), detail
        assert user["email"] not in row.detail
        assert mail_count("login_code", "failed") == failed_before + 1
        assert mail_count("login_code", "retried") == retried_before
        assert smtp.messages == []
    finally:
        smtp.close()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("behaviour", ["hang", "drop"])
async def test_mail_a_hanging_or_dropping_server_is_retried_then_given_up(
    make_settings: Any, behaviour: str, caplog: Any
) -> None:
    broken = await BrokenSmtp(behaviour).start()
    try:
        settings = make_settings(
            smtp_url=f"smtp://127.0.0.1:{broken.port}", smtp_timeout=0.3, mail_attempts=3, mail_retry_seconds=0.01
        )
        failed_before, retried_before = mail_count("password_reset", "failed"), mail_count("password_reset", "retried")
        async with running(settings) as client:
            gh = client.gatehouse
            assert await service.deliver(gh, kind="password_reset", email="x@example.com", link="https://l")
            await wait_mail_done(gh)
            [row] = await mail_audit(gh)
        assert broken.connections == 3
        assert row.event == "mail.failed" and json.loads(row.detail)["attempts"] == 3
        assert mail_count("password_reset", "retried") == retried_before + 2
        assert mail_count("password_reset", "failed") == failed_before + 1
        assert "failed for good after 3 attempt(s)" in caplog.text and "x@example.com" not in caplog.text
    finally:
        await broken.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_mail_queue_full_says_so_and_counts_the_drop(make_settings: Any, caplog: Any) -> None:
    broken = await BrokenSmtp("hang").start()
    try:
        settings = make_settings(
            smtp_url=f"smtp://127.0.0.1:{broken.port}", smtp_timeout=0.5, mail_attempts=1, mail_queue_size=1
        )
        dropped_before = mail_count("email_verification", "dropped")
        async with running(settings) as client:
            gh = client.gatehouse
            queued = []
            for _ in range(service.Mailer.WORKERS + 2):
                queued.append(
                    await service.deliver(gh, kind="email_verification", email="q@example.com", link="https://l")
                )
                await asyncio.sleep(0.01)  # a worker takes each message before the next arrives
            assert queued == [True] * (service.Mailer.WORKERS + 1) + [False]
            assert "mail queue full" in caplog.text and "NOT sent" in caplog.text
            await wait_mail_done(gh)
            events = sorted(json.loads(r.detail).get("reason", "") for r in await mail_audit(gh))
        assert mail_count("email_verification", "dropped") == dropped_before + 1
        assert events.count("queue_full") == 1 and len(events) == service.Mailer.WORKERS + 2
    finally:
        await broken.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_mail_templates_every_kind_override_and_fallback(make_settings: Any, tmp_path: Any) -> None:
    kinds = [
        "password_reset",
        "email_verification",
        "email_change_confirm",
        "email_change_notice",
        "email_changed",
        "login_code",
        "mfa_enabled",
        "mfa_disabled",
        "mfa_reset",
        "passkey_added",
        "new_sign_in",
        "_generic",
    ]
    for kind in kinds:
        for part in ("subject.txt", "txt", "html"):
            assert f"{kind}.{part}" in service.BUILT_IN_TEMPLATES, (kind, part)
    overrides = tmp_path / "mail"
    overrides.mkdir()
    (overrides / "password_reset.subject.txt").write_text("Acme: reset for $email\n")
    settings = make_settings(mail_templates_dir=str(overrides))
    files = service.Templates(settings)
    mail = service.render_mail(settings, files, kind="password_reset", to="a@example.com", link="https://l/?token=t")
    assert mail.subject == "Acme: reset for a@example.com"  # the overridden file
    assert "https://l/?token=t" in mail.text and "30 minutes" in mail.text  # the built-in ones
    for kind in kinds[:-1]:
        rendered = service.render_mail(
            settings, files, kind=kind, to="a@example.com", link="https://l", new_email="b@example.com", code="12345678"
        )
        assert rendered.subject and "$" not in rendered.subject + rendered.text + rendered.html, kind
    unknown = service.render_mail(settings, files, kind="webauthn_rotated", to="a@example.com")
    assert unknown.subject == "Webauthn rotated: your account on localhost:8000" and "a@example.com" in unknown.text
    with pytest.raises(ValueError):
        service.render_mail(settings, files, kind="../secret", to="a@example.com")
    with pytest.raises(ValueError, match="MAIL_TEMPLATES_DIR"):
        make_settings(mail_templates_dir=str(tmp_path / "missing"))


def test_mail_settings_production_needs_a_transport_and_links_follow_public_url() -> None:
    base = {"environment": "production", "secret_key": SECRET}
    with pytest.raises(ValueError, match="no way to send mail: set SMTP_URL"):
        Settings(**base)
    with pytest.raises(ValueError, match="MAIL_FROM is not set"):
        Settings(**base, smtp_url="smtp://mail.example.com")
    with pytest.raises(ValueError, match="smtp://"):
        Settings(smtp_url="http://mail.example.com")
    assert Settings(**base, smtp_url="smtps://u:p@mail.example.com", mail_from="a@example.com")
    assert Settings(**base, webhook_url="https://hooks.example.com/mail")
    settings = Settings(public_url="https://auth.example.com:8443/")
    assert settings.password_reset_url == "https://auth.example.com:8443/reset-password?token={token}"
    assert settings.verify_email_url == "https://auth.example.com:8443/verify-email?token={token}"
    assert settings.email_change_url == "https://auth.example.com:8443/confirm-email-change?token={token}"
    assert settings.email_revert_url == "https://auth.example.com:8443/revert-email-change?token={token}"
    assert Settings(verify_email_url="https://app/v?t={token}").verify_email_url == "https://app/v?t={token}"
    shown = service.describe_settings(Settings(smtp_url="smtp://u:hunter2@mail.example.com:587"))
    assert "hunter2" not in shown["SMTP_URL"] and shown["SECRET_KEY"] == "generated (development)"
    assert shown["RATE_LOGIN_FAILURES_ACCOUNT"] == "100/h" and shown["RATE_LOGIN_FAILURES_ACCOUNT_IP"] == "10/15m"


def test_every_audit_event_in_the_code_is_known() -> None:
    source = open(os.path.join(REPO, "service.py")).read()
    used = set(re.findall(r'"((?:auth|user|key|signing_key|sessions|mail|mfa|passkey)\.[a-z_]+)"', source))
    assert used and used <= service.AUDIT_EVENTS, used - service.AUDIT_EVENTS


async def test_pages_reset_password_form_and_link_pages(make_settings: Any) -> None:
    async with running(make_settings()) as client:
        user, tokens = await new_user(client)
        gh = client.gatehouse
        link = await service.password_reset_link(gh, user_id=uuid.UUID(user["id"]))
        assert link.startswith("http://localhost:8000/reset-password?token=")
        r = await client.get(link.removeprefix("http://localhost:8000"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script" not in r.text and "style=" not in r.text
        assert f'name="token" value="{token_of(link)}"' in r.text
        form = {"token": token_of(link), "new_password": "via the page!", "confirm_password": "not the same"}
        r = await client.post("/reset-password", data=form)
        assert r.status_code == 422 and "The two passwords differ" in r.text
        r = await client.post("/reset-password", data={**form, "confirm_password": "via the page!"})
        assert r.status_code == 200 and "Your password is changed. 1 session(s) ended" in r.text
        await login(client, user["email"], "via the page!")
        r = await client.post("/reset-password", data={**form, "confirm_password": "via the page!"})
        assert r.status_code == 400 and "The link is invalid, used or expired." in r.text
        assert (await client.get("/reset-password")).status_code == 400

        token = await service._issue_action_token(
            gh,
            user=await user_row(gh, user["email"]),
            purpose="verify",
            event="user.email_verify_request",
            client=service.CLI,
            lifetime=service.timedelta(hours=1),
        )
        r = await client.get(f"/verify-email?token={token}")
        assert r.status_code == 200 and "Confirm my address" in r.text and 'action="verify-email"' in r.text
        assert (await user_row(gh, user["email"])).email_verified_at is None  # opening the link changes nothing
        r = await client.post("/verify-email", data={"token": token})
        assert r.status_code == 200 and "Your address is confirmed." in r.text
        assert (await user_row(gh, user["email"])).email_verified_at is not None
        for path in ("/confirm-email-change", "/revert-email-change"):
            assert (await client.get(f"{path}?token=abc")).status_code == 200
            r = await client.post(path, data={"token": "abc"})
            assert r.status_code == 400 and "invalid, used or expired" in r.text
        css = await client.get("/pages/gatehouse.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_form_login_validation_errors_name_username(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/login", data={"password": PASSWORD})
    assert r.status_code == 422 and [d["loc"] for d in r.json()["error"]["details"]] == [["username"]]
    r = await client.post("/auth/login", json={"password": PASSWORD})
    assert r.status_code == 422 and [d["loc"] for d in r.json()["error"]["details"]] == [["email"]]


async def test_root_and_offline_docs(make_settings: Any) -> None:
    async with running(make_settings()) as client:
        assert (await client.get("/")).json() == {"service": "gatehouse", "health": "/health/ready", "docs": "/docs"}
        for path in ("/docs", "/redoc"):
            page = (await client.get(path)).text
            assert "/docs/assets/" in page and "cdn." not in page and "googleapis" not in page, path
            for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page):
                r = await client.get(asset)
                assert r.status_code == 200 and len(r.content) > 1000, asset
        assert (await client.get("/docs/assets/../service.py")).status_code == 404
        assert (await client.get("/docs/assets/other.js")).status_code == 404
    async with running(make_settings(environment="production")) as client:
        assert (await client.get("/")).json() == {"service": "gatehouse", "health": "/health/ready"}


@pytest.mark.live
@pytest.mark.parametrize("backend", ["sqlite"])
def test_uvicorn_logs_each_request_once_and_migrations_before_startup(
    make_settings: Any, tmp_path: Any, backend: str
) -> None:
    server = Server(make_settings(), log_path=tmp_path / "server.log")
    server.command = ["uvicorn", "service:app", "--host", "127.0.0.1", "--port", str(server.port)]  # the README's
    server.start()
    try:
        for _ in range(2):
            assert httpx.get(f"{server.url}/", timeout=5).status_code == 200
        time.sleep(0.3)  # the log writer wakes every 50 ms
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert len([line for line in log.splitlines() if "GET /" in line and "/health/" not in line]) == 2, log
    assert log.index("applied migration 001") < log.index("Application startup complete"), log


async def test_cli_first_hour_traps(settings: Settings, tmp_path: Any, monkeypatch: Any) -> None:
    result = await run_cli(settings, "create-user", "piped@example.com", input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert result.output == "error: stdin is not a terminal: to read the password from it, add --password-stdin\n"
    result = await run_cli(settings, "create-user", "piped@example.com", "--password-stdin", input="")
    assert result.exit_code == 1 and result.output == "error: no password was read: stdin was empty\n"

    result = await run_cli(
        settings, "create-user", "json@example.com", "--password-stdin", "--json", input=PASSWORD + "\n"
    )
    created = json.loads(result.output)
    assert created["email"] == "json@example.com" and "email_verified_at" in created
    status = json.loads((await run_cli(settings, "migrate", "--status", "--json")).output)
    assert [m["version"] for m in status["applied"]] == [m.version for m in service.MIGRATIONS]
    assert status["pending"] == status["drift"] == []
    rotated = json.loads((await run_cli(settings, "signing-keys", "rotate", "--json")).output)
    listing = (await run_cli(settings, "signing-keys", "list")).output
    assert listing.startswith(f"* {rotated['kid']}") and "active, signs" in listing
    listed = json.loads((await run_cli(settings, "signing-keys", "list", "--json")).output)
    assert [k["signing"] for k in listed if k["kid"] == rotated["kid"]] == [True]
    config = await run_cli(settings, "check-config", "--json")
    report = json.loads(config.stdout)
    assert report["ok"] and report["problems"] == [] and report["settings"]["RATE_AUTH_IP"] == "off"

    key = json.loads((await run_cli(settings, "create-key", "json@example.com", "--name", "ci", "--json")).output)
    listing = (await run_cli(settings, "list-keys")).output
    assert "json@example.com" in listing and key["prefix"] in listing
    assert json.loads((await run_cli(settings, "list-keys", "--json")).output)[0]["owner"] == "json@example.com"
    result = await run_cli(settings, "revoke-key", key["prefix"])
    assert result.exit_code == 0 and f"revoked key {key['id']}" in result.output

    result = await run_cli(settings, "audit", "--event", "auth.logn")
    assert result.exit_code == 1 and result.output.startswith("error: --event 'auth.logn' is not an audit event")
    first = await run_cli(settings, "audit", "--limit", "2", "--json")
    assert first.exit_code == 0 and len(json.loads(first.stdout)) == 2
    assert first.stderr.startswith("more: add --cursor ")
    cursor = first.stderr.split()[-1]
    page = await run_cli(settings, "audit", "--limit", "200", "--cursor", cursor, "--json")
    everything = json.loads((await run_cli(settings, "audit", "--limit", "200", "--json")).stdout)
    assert page.stderr == "" and json.loads(page.stdout) == everything[2:]
    until = await run_cli(settings, "audit", "--until", "2000-01-01")
    assert until.exit_code == 0 and until.output == ""


def test_cli_warns_before_creating_a_database_in_the_wrong_directory(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"SECRET_KEY": SECRET, "DATABASE_URL": None}
    result = CliRunner().invoke(cli.app, ["list-users"], env=env)
    assert result.exit_code == 0
    assert f"warning: DATABASE_URL is not set and {tmp_path}/gatehouse.db does not exist" in result.output
    assert "warning" not in CliRunner().invoke(cli.app, ["list-users"], env=env).output  # now it exists


def _chromium() -> str:
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc})")
    return path


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.live
@pytest.mark.browser
@pytest.mark.parametrize("backend", ["sqlite"])
def test_browser_docs_authorize_try_it_out_and_the_reset_page(make_settings: Any, tmp_path: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium()
    port = _free_port()
    settings = make_settings(public_url=f"http://127.0.0.1:{port}", rate_auth_ip="off")
    server = Server(settings, log_path=tmp_path / "server.log", port=port).start()
    email = "browser@example.com"
    server.signup(email)
    foreign: list[str] = []
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on(
                "request",
                lambda req: (
                    None if req.url.startswith((server.url, "data:", f"blob:{server.url}")) else foreign.append(req.url)
                ),
            )
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

            page.goto(f"{server.url}/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Gatehouse", timeout=15_000)
            page.locator("button.authorize").first.click()
            page.locator("#oauth_username").fill(email)
            page.locator("#oauth_password").fill(PASSWORD)
            page.get_by_role("button", name="Apply given OAuth2 credentials").click()
            expect(page.locator(".auth-container").first).to_contain_text("Logout", timeout=10_000)
            page.locator("button.btn-done").first.click()
            operation = page.locator("#operations-users-read_me_users_me_get")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            body = operation.locator(".live-responses-table .response-col_description pre").first
            expect(body).to_contain_text(email, timeout=10_000)
            shot = tmp_path / "gatehouse-docs.png"
            page.screenshot(path=str(shot), full_page=False)
            print(f"\nscreenshot of /docs after 'Try it out': {shot} (kept if the test fails)")

            page.goto(f"{server.url}/redoc")
            expect(page.locator("h1").first).to_contain_text("Gatehouse", timeout=15_000)

            link = _cli_process(settings, "reset-link", email).stdout.strip()
            assert link.startswith(f"{server.url}/reset-password?token="), link
            page.goto(link)
            page.locator("#new_password").fill("changed in a browser")
            page.locator("#confirm_password").fill("changed in a browser")
            page.locator("button[type=submit]").click()
            expect(page.locator("main")).to_contain_text("Your password is changed", timeout=10_000)
            page.screenshot(path=str(tmp_path / "gatehouse-reset.png"))
            assert page.locator("main").evaluate("e => getComputedStyle(e).maxWidth") != "none"  # the CSS applied
            browser.close()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            r = http.post("/auth/login", json={"email": email, "password": "changed in a browser"})
            assert r.status_code == 200, r.text
            access = r.json()["access_token"]
            assert http.post("/auth/verify/request", headers=bearer(access)).status_code == 202
        for _ in range(50):  # development without a transport: the link is in the log
            found = re.search(r"email_verification for \S+: (\S+)", (tmp_path / "server.log").read_text())
            if found:
                break
            time.sleep(0.1)
        assert found and found.group(1).startswith(f"{server.url}/verify-email?token=")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(found.group(1))
            page.locator("button[type=submit]").click()
            expect(page.locator("main")).to_contain_text("Your address is confirmed", timeout=10_000)
            browser.close()
    finally:
        server.stop()
    assert foreign == [], foreign  # no CDN, no fonts: the pages work with no internet
    assert problems == [], problems  # no CSP violations, no script errors


_LINK_PAGES = (
    "/verify-email",
    "/confirm-email-change",
    "/revert-email-change",
    "/undo-factor",
    "/confirm-identity-link",
)


@pytest.mark.live
@pytest.mark.parametrize("backend", ["sqlite"])  # what is under test is the files beside service.py, not storage
def test_service_py_alone_serves_every_page_and_mail(make_settings: Any, tmp_path: Any, receiver: Receiver) -> None:
    import html
    import shutil

    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("service.py", "cli.py"):
        shutil.copy(os.path.join(REPO, name), alone / name)
    settings = make_settings(webhook_url=receiver.url)
    checked = _cli_process(settings, "check-config", cwd=alone)
    assert checked.returncode == 0 and "rules met" in checked.stdout, checked.stderr
    server = Server(settings, log_path=tmp_path / "server.log", cwd=alone).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            r = http.get("/reset-password?token=x")
            assert r.status_code == 200 and 'name="new_password"' in r.text and 'value="x"' in r.text
            for path in ("/reset-password", *_LINK_PAGES):
                r = http.get(path)
                assert r.status_code == 400 and "This link is incomplete" in r.text, path
            for path in _LINK_PAGES:
                r = http.get(f"{path}?token=x")
                assert r.status_code == 200 and 'value="x"' in r.text and "<button" in r.text, path
                r = http.post(path, data={"token": "x"})
                assert r.status_code == 400 and "<main>" in r.text, (path, r.text)
            css = http.get("/pages/gatehouse.css")
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert "main {" in css.text
            email = "alone@example.com"
            assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
            access = http.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
            assert http.post("/auth/verify/request", headers=bearer(access)).status_code == 202
            assert http.post("/auth/password-reset/request", json={"email": email}).status_code == 202
            for _ in range(100):
                if {"password_reset", "email_verification"} <= {m["type"] for m in receiver.messages}:
                    break
                time.sleep(0.1)
            for kind, path in (("password_reset", "/reset-password"), ("email_verification", "/verify-email")):
                [mail] = [m for m in receiver.messages if m["type"] == kind]
                message, link = mail["message"], mail["link"]
                assert link.startswith(f"http://localhost:8000{path}?token="), link
                assert message["subject"] and link in message["text"] and email in message["text"], message
                assert f'href="{html.escape(link)}"' in message["html"] and "<!doctype html>" in message["html"]
                assert http.get(link.removeprefix("http://localhost:8000")).status_code == 200
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "template" not in log and "Traceback" not in log, log


async def test_mail_templates_dir_overrides_a_mail_and_a_page(
    make_settings: Any, tmp_path: Any, receiver: Receiver
) -> None:
    overrides = tmp_path / "templates"
    (overrides / "pages").mkdir(parents=True)
    (overrides / "password_reset.subject.txt").write_text("Acme: a new password for $email\n")
    (overrides / "password_reset.txt").write_text("Acme says: $link\n")
    (overrides / "pages" / "gatehouse.css").write_text("main { color: rebeccapurple; }\n")
    async with running(make_settings(webhook_url=receiver.url, mail_templates_dir=str(overrides))) as client:
        user = await register(client)
        assert (await client.post("/auth/password-reset/request", json={"email": user["email"]})).status_code == 202
        [mail] = await messages_of(receiver, "password_reset")
        message = mail["message"]
        assert message["subject"] == f"Acme: a new password for {user['email']}"
        assert message["text"] == f"Acme says: {mail['link']}\n"
        assert "Acme" not in message["html"] and "30 minutes" in message["html"]  # the one not overridden
        assert (await client.get("/pages/gatehouse.css")).text == "main { color: rebeccapurple; }\n"
        r = await client.get("/verify-email?token=x")
        assert r.status_code == 200 and "Confirm my address" in r.text  # pages not overridden stay built in


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("password_reset.txt", b"Pay $5 now: $link", "Invalid placeholder"),
        ("pages/layout.html", b"<title>${title</title>", "Invalid placeholder"),
        ("email_verification.html", b"\xff\xfe not UTF-8", "cannot be read"),
        ("pasword_reset.txt", b"$link", "no built-in template has this name"),
    ],
)
async def test_a_template_that_cannot_be_rendered_is_a_startup_error_naming_it(
    make_settings: Any, tmp_path: Any, name: str, content: bytes, reason: str
) -> None:
    overrides = tmp_path / "templates"
    (overrides / "pages").mkdir(parents=True)
    (overrides / name).write_bytes(content)
    settings = make_settings(mail_templates_dir=str(overrides))
    with pytest.raises(service.ConfigError, match=re.escape(str(overrides / name))) as refused:
        async with running(settings):
            pass
    assert reason in str(refused.value)
    result = await run_cli(settings, "check-config")
    assert result.exit_code == 1 and f"problem: {overrides / name}" in result.output, result.output
    assert reason in result.output


# Sessions, TOTP and passkeys #################################################


class SoftAuthenticator:
    """A software passkey: an ES256 key that makes real attestation ("none", CBOR) and assertion
    objects, signed over authenticatorData || SHA-256(clientDataJSON) as a browser's would be."""

    def __init__(self, *, origin: str = "http://localhost:8000", rp_id: str = "localhost", uv: bool = True):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.origin, self.rp_id, self.uv = origin, rp_id, uv
        self.sign_count = 0
        self.user_handle: str | None = None

    @staticmethod
    def b64(data: bytes) -> str:
        import base64

        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def _cose_key(self) -> bytes:
        import cbor2

        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _authenticator_data(self, *, attested: bool) -> bytes:
        import hashlib

        flags = 0x01 | (0x04 if self.uv else 0) | (0x40 if attested else 0)
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + self.sign_count.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        return data

    def _client_data(self, kind: str, options: dict[str, Any]) -> bytes:
        import json

        return json.dumps(
            {"type": kind, "challenge": options["challenge"], "origin": self.origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """navigator.credentials.create() for these options."""
        import cbor2

        assert options["rp"]["id"] == self.rp_id
        self.user_handle = options["user"]["id"]
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": self._authenticator_data(attested=True)})
        return {
            "id": self.b64(self.credential_id),
            "rawId": self.b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": self.b64(self._client_data("webauthn.create", options)),
                "attestationObject": self.b64(attestation),
            },
            "clientExtensionResults": {},
        }

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        """navigator.credentials.get() for these options; the counter grows by one."""
        import hashlib

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        allowed = [c["id"] for c in options.get("allowCredentials", [])]
        assert not allowed or self.b64(self.credential_id) in allowed
        self.sign_count += 1
        client_data = self._client_data("webauthn.get", options)
        data = self._authenticator_data(attested=False)
        signature = self.key.sign(data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.b64(self.credential_id),
            "rawId": self.b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": self.b64(client_data),
                "authenticatorData": self.b64(data),
                "signature": self.b64(signature),
                "userHandle": self.user_handle,
            },
            "clientExtensionResults": {},
        }


async def enroll_totp(
    client: httpx.AsyncClient, access: str, proof: dict[str, Any] | None = None
) -> tuple[Any, list[str]]:
    """Enroll and confirm an authenticator app, proving the password (or `proof`); (pyotp.TOTP, recovery codes)."""
    import pyotp

    r = await client.post("/mfa/totp", headers=bearer(access), json=proof or {"password": PASSWORD})
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    assert r.json()["otpauth_uri"] == totp.provisioning_uri(
        name=(await client.get("/users/me", headers=bearer(access))).json()["email"], issuer_name="Gatehouse"
    )
    r = await client.post("/mfa/totp/confirm", headers=bearer(access), json={"code": totp.now()})
    assert r.status_code == 200, r.text
    return totp, r.json()["recovery_codes"]


def next_code(totp: Any, steps: int = 1) -> str:
    """The code of a later time step (the service takes one step of clock skew)."""
    return totp.at(time.time() + 30 * steps)


async def mfa_login(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200 and r.json()["mfa_required"] is True, r.text
    assert set(r.json()) == {"mfa_required", "mfa_token", "methods", "expires_in"}
    return r.json()


async def add_passkey(
    client: httpx.AsyncClient,
    access: str,
    authenticator: SoftAuthenticator,
    name: str = "laptop",
    proof: dict[str, Any] | None = None,
) -> httpx.Response:
    """Register a passkey; the options request proves the password (or `proof`, e.g. {"otp": …})."""
    r = await client.post("/mfa/passkeys/options", headers=bearer(access), json=proof or {"password": PASSWORD})
    assert r.status_code == 200, r.text
    return await client.post(
        "/mfa/passkeys", headers=bearer(access), json={"credential": authenticator.create(r.json()), "name": name}
    )


async def passkey_proof(client: httpx.AsyncClient, access: str, authenticator: SoftAuthenticator) -> dict[str, Any]:
    """A step-up proof with this passkey, for a factor change."""
    r = await client.post("/mfa/passkeys/challenge", headers=bearer(access))
    assert r.status_code == 200, r.text
    return {"passkey": authenticator.get(r.json())}


async def email_code_proof(
    client: httpx.AsyncClient, access: str, receiver: "Receiver", nth: int = 1
) -> dict[str, Any]:
    """A proof by a code mailed to the account (one with neither a password nor a factor)."""
    assert (await client.post("/auth/email-code", headers=bearer(access))).status_code == 202
    return {"email_code": (await messages_of(receiver, "email_code", nth))[nth - 1]["code"]}


async def passkey_sign_in(client: httpx.AsyncClient, authenticator: SoftAuthenticator) -> httpx.Response:
    options = (await client.post("/auth/webauthn/options")).json()
    return await client.post("/auth/webauthn", json={"credential": authenticator.get(options)})


async def audit_rows(gh: service.Gatehouse, event: str, outcome: str | None = None) -> list[service.AuditEvent]:
    await gh.flush_audit()
    stmt = sa.select(service.AuditEvent).where(service.AuditEvent.event == event)
    if outcome:
        stmt = stmt.where(service.AuditEvent.outcome == outcome)
    async with gh.transaction() as db:
        return list(await db.scalars(stmt))


async def test_sessions_are_listed_with_device_address_methods_and_current(client: httpx.AsyncClient) -> None:
    user = await register(client)
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.0 Mobile/15E148 Safari/604.1"
    )
    async with from_address(client, "203.0.113.7") as phone:
        r = await phone.post(
            "/auth/login", json={"email": user["email"], "password": PASSWORD}, headers={"user-agent": iphone}
        )
        on_phone = r.json()
    r = await client.post(
        "/auth/login", json={"email": user["email"], "password": PASSWORD}, headers={"user-agent": firefox}
    )
    here = r.json()
    r = await client.get("/sessions", headers=bearer(here["access_token"]))
    assert r.status_code == 200
    newest, older = r.json()
    assert newest["id"] == claims(here["access_token"])["sid"] and newest["current"] is True
    assert older["id"] == claims(on_phone["access_token"])["sid"] and older["current"] is False
    assert newest["device"] == "Firefox on Linux" and older["device"] == "Safari on iOS"
    assert older["ip"] == "203.0.113.7" and newest["amr"] == ["pwd"] and newest["aal"] == 1
    assert set(newest) == {"id", "created_at", "last_used_at", "ip", "last_ip", "device", "amr", "aal", "current"}


async def test_session_last_use_is_written_at_most_once_per_interval(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    sid, gh = claims(tokens["access_token"])["sid"], client.gatehouse
    writes: list[str] = []

    @sa.event.listens_for(gh.engine.sync_engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE sessions SET last_used_at"):
            writes.append(statement)

    async with from_address(client, "198.51.100.20") as elsewhere:
        for c in (client, elsewhere) * 10:
            assert (await c.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
    await settle(gh)
    sa.event.remove(gh.engine.sync_engine, "before_cursor_execute", count)
    row = await session_row(gh, sid)
    # signing in was the use of this interval: twenty requests from two addresses write nothing more
    assert len(writes) == 0 and row.last_used_at is not None and row.last_ip == "127.0.0.1"
    assert list(gh.session_touches) == [uuid.UUID(sid)]


async def test_session_last_use_follows_the_client_after_the_interval(make_settings: Any) -> None:
    async with running(make_settings(session_touch_seconds=1)) as client:
        _, tokens = await new_user(client)
        sid = claims(tokens["access_token"])["sid"]
        async with from_address(client, "198.51.100.21") as elsewhere:

            async def moved() -> bool:
                await elsewhere.get("/users/me", headers=bearer(tokens["access_token"]))
                await settle(client.gatehouse)
                return (await session_row(client.gatehouse, sid)).last_ip == "198.51.100.21"

            await _until(moved, "last_ip follows the client", attempts=300)


async def test_attack_another_users_session_is_404_and_admins_may_end_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, victim = await new_user(client)
    _, attacker = await new_user(client)
    sid = claims(victim["access_token"])["sid"]
    r = await client.delete(f"/sessions/{sid}", headers=bearer(attacker["access_token"]))
    assert r.status_code == 404 and error_code(r) == "session_not_found"
    assert sid not in [
        s["id"] for s in (await client.get("/sessions", headers=bearer(attacker["access_token"]))).json()
    ]
    assert (await client.get("/users/me", headers=bearer(victim["access_token"]))).status_code == 200
    _, admin = await admin_tokens(client, settings)
    victim_id = claims(victim["access_token"])["sub"]
    r = await client.get(f"/users/{victim_id}/sessions", headers=bearer(admin["access_token"]))
    assert r.status_code == 200 and [s["id"] for s in r.json()] == [sid]
    assert (await client.delete(f"/sessions/{sid}", headers=bearer(admin["access_token"]))).status_code == 204
    r = await client.get("/users/me", headers=bearer(victim["access_token"]))
    assert r.status_code == 401 and error_code(r) == "session_revoked"
    r = await client.delete(f"/sessions/{sid}", headers=bearer(admin["access_token"]))
    assert r.status_code == 404  # already ended
    [row] = await audit_rows(client.gatehouse, "auth.session_end")
    assert str(row.subject_id) == victim_id and row.actor_id is not None


async def test_end_one_session_and_logout_others_reach_every_instance(settings: Settings) -> None:
    async with running(settings) as a, running(settings) as b:
        user = await register(a)
        first, second, third = [await login(a, user["email"]) for _ in range(3)]
        for tokens in (first, second, third):  # B caches all three sessions
            assert (await b.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
        r = await a.delete(f"/sessions/{claims(third['access_token'])['sid']}", headers=bearer(first["access_token"]))
        assert r.status_code == 204
        assert (await a.post("/auth/logout-others", headers=bearer(second["access_token"]))).status_code == 204

        async def only_second_left() -> bool:
            codes = [
                (await b.get("/users/me", headers=bearer(t["access_token"]))).status_code
                for t in (first, second, third)
            ]
            return codes == [401, 200, 401]

        await _until(only_second_left, "the ended sessions are refused on B")
        r = await b.get("/sessions", headers=bearer(second["access_token"]))
        assert [s["current"] for s in r.json()] == [True]


async def test_cli_sessions_and_revoke_one_session(settings: Settings, client: httpx.AsyncClient) -> None:
    user = await register(client)
    one, two = await login(client, user["email"]), await login(client, user["email"])
    result = await run_cli(settings, "sessions", user["email"], "--json")
    assert result.exit_code == 0, result.output
    listed = json_loads(result.output)
    assert {s["id"] for s in listed} == {claims(t["access_token"])["sid"] for t in (one, two)}
    assert listed[0]["device"] == "httpx" and listed[0]["amr"] == ["pwd"]
    sid = claims(one["access_token"])["sid"]
    result = await run_cli(settings, "revoke-sessions", user["email"], "--session", sid)
    assert result.exit_code == 0 and "ended 1 session(s)" in result.output
    assert (await session_row(client.gatehouse, sid)).revoked_at is not None
    assert (await session_row(client.gatehouse, claims(two["access_token"])["sid"])).revoked_at is None
    result = await run_cli(settings, "revoke-sessions", user["email"], "--session", sid)
    assert result.exit_code == 1 and result.output.strip() == "error: No such session."
    result = await run_cli(settings, "revoke-sessions", user["email"], "--session", "not-an-id")
    assert result.exit_code == 2 and "Invalid value for '--session'" in result.output  # Typer's own parsing


async def test_totp_enrollment_and_two_step_login_with_amr_in_tokens(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    totp, codes = await enroll_totp(client, tokens["access_token"])
    assert len(codes) == 10 == len(set(codes)) and all(len(c) == 14 and c.count("-") == 2 for c in codes)
    async with client.gatehouse.transaction() as db:
        row = await db.get(service.TotpFactor, uuid.UUID(user["id"]))
        stored = list(await db.scalars(sa.select(service.RecoveryCode.code_hash)))
    assert row.confirmed_at is not None and totp.secret not in row.secret  # sealed, not stored as is
    assert not set(codes) & set(stored) and len(stored) == 10  # hashed
    sessions_before = len((await client.get("/sessions", headers=bearer(tokens["access_token"]))).json())
    challenge = await mfa_login(client, user["email"])
    assert challenge["methods"] == ["totp", "recovery_code"] and challenge["expires_in"] == 300
    assert len((await client.get("/sessions", headers=bearer(tokens["access_token"]))).json()) == sessions_before
    r = await client.post("/auth/mfa", json={"mfa_token": challenge["mfa_token"], "code": next_code(totp)})
    assert r.status_code == 200, r.text
    got = claims(r.json()["access_token"])
    assert got["amr"] == ["pwd", "otp"] and got["acr"] == "aal2"
    r = await client.post("/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert (
        claims(r.json()["access_token"])["amr"] == ["pwd", "otp"] and claims(r.json()["access_token"])["acr"] == "aal2"
    )
    assert claims(tokens["access_token"])["amr"] == ["pwd"] and claims(tokens["access_token"])["acr"] == "aal1"
    events = {row.event for row in await audit_rows(client.gatehouse, "mfa.totp_enabled")}
    events |= {row.event for row in await audit_rows(client.gatehouse, "auth.mfa_challenge")}
    assert events == {"mfa.totp_enabled", "auth.mfa_challenge"}


def test_totp_takes_one_step_of_clock_skew_and_no_more() -> None:
    import pyotp

    secret = pyotp.random_base32()
    totp, now = pyotp.TOTP(secret), 1_800_000_015.0
    step = int(now // 30)
    for offset, expected in ((-60, None), (-30, step - 1), (0, step), (30, step + 1), (60, None)):
        assert service.totp_step(totp.at(now + offset), secret, now=now) == expected, offset
    assert service.totp_step("000000" if totp.at(now) != "000000" else "111111", secret, now=now) is None


async def test_attack_replayed_totp_code_is_refused_across_instances(settings: Settings) -> None:
    async with running(settings) as a, running(settings) as b:
        user, tokens = await new_user(a)
        totp, _ = await enroll_totp(a, tokens["access_token"])
        on_a, on_b = await mfa_login(a, user["email"]), await mfa_login(b, user["email"])
        code = next_code(totp)
        assert (await a.post("/auth/mfa", json={"mfa_token": on_a["mfa_token"], "code": code})).status_code == 200
        r = await b.post("/auth/mfa", json={"mfa_token": on_b["mfa_token"], "code": code})
        assert r.status_code == 401 and error_code(r) == "invalid_otp"
        r = await b.post("/auth/mfa", json={"mfa_token": on_b["mfa_token"], "code": totp.now()})  # older step
        assert r.status_code == 401 and error_code(r) == "invalid_otp"
        r = await b.post("/auth/mfa", json={"mfa_token": on_b["mfa_token"], "code": next_code(totp, 2)})
        assert r.status_code == 401  # two steps ahead is beyond the skew allowed
        [row] = await audit_rows(a.gatehouse, "mfa.totp_enabled")
        assert len(await audit_rows(b.gatehouse, "auth.mfa", "failure")) == 3


async def test_attack_expired_reused_or_misused_mfa_token_is_refused(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    totp, _ = await enroll_totp(client, tokens["access_token"])
    challenge = await mfa_login(client, user["email"])
    token = challenge["mfa_token"]
    r = await client.get("/users/me", headers=bearer(token))  # not an access token anywhere
    assert r.status_code == 401 and error_code(r) == "invalid_token"
    assert (await client.post("/auth/refresh", json={"refresh_token": token})).status_code == 401
    assert (await client.post("/auth/mfa", json={"mfa_token": token, "code": next_code(totp)})).status_code == 200
    r = await client.post("/auth/mfa", json={"mfa_token": token, "code": next_code(totp)})
    assert r.status_code == 401 and error_code(r) == "invalid_mfa_token"
    stale = (await mfa_login(client, user["email"]))["mfa_token"]
    async with client.gatehouse.transaction(write=True) as db:
        await db.execute(
            sa.update(service.ActionToken)
            .where(service.ActionToken.token_hash == service.hash_secret(stale))
            .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
        )
    r = await client.post("/auth/mfa", json={"mfa_token": stale, "code": next_code(totp)})
    assert r.status_code == 401 and error_code(r) == "invalid_mfa_token"
    for body, status, code in (  # each with a live token of its own, refused for its own reason
        ({"mfa_token": "made-up", "code": "123456"}, 401, "invalid_mfa_token"),
        ({}, 422, "invalid_input"),
        ({"code": "12345"}, 422, "validation_error"),
        ({"code": "123456", "scope": "admin"}, 422, "validation_error"),
    ):
        live = (await mfa_login(client, user["email"]))["mfa_token"]
        r = await client.post("/auth/mfa", json={"mfa_token": live, **body})
        assert r.status_code == status and error_code(r) == code, (body, r.text)


async def test_attack_fifty_parallel_wrong_codes_get_no_more_checks_than_the_limit(make_settings: Any) -> None:
    async with running(make_settings(rate_mfa_failures="10/h")) as client:
        user, tokens = await new_user(client)
        totp, _ = await enroll_totp(client, tokens["access_token"])
        async with from_address(client, "203.0.113.50") as thief:  # holds the password, not the factor
            token = (await mfa_login(thief, user["email"]))["mfa_token"]
            right = next_code(totp)
            wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 51)]
            answers = await asyncio.gather(
                *(thief.post("/auth/mfa", json={"mfa_token": token, "code": c}) for c in wrong)
            )
            assert sorted(r.status_code for r in answers) == [401] * 10 + [429] * 40
            assert len(await audit_rows(client.gatehouse, "auth.mfa", "failure")) == 10  # ten checks, no more
            r = await thief.post("/auth/mfa", json={"mfa_token": token, "code": right})
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # even the right code waits there


async def test_attack_recovery_code_used_twice_is_refused(make_settings: Any, receiver: "Receiver") -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        _, codes = await enroll_totp(client, tokens["access_token"])
        spoken = f"  {codes[0].upper().replace('-', ' ')} "  # read aloud off paper: case and separators vary
        r = await client.post(
            "/auth/mfa",
            json={"mfa_token": (await mfa_login(client, user["email"]))["mfa_token"], "recovery_code": spoken},
        )
        assert r.status_code == 200, r.text
        assert claims(r.json()["access_token"])["amr"] == ["pwd", "recovery"]
        [mail] = await messages_of(receiver, "recovery_code_used")
        assert mail["email"] == user["email"] and mail["remaining"] == "9"
        r = await client.post(
            "/auth/mfa",
            json={"mfa_token": (await mfa_login(client, user["email"]))["mfa_token"], "recovery_code": codes[0]},
        )
        assert r.status_code == 401 and error_code(r) == "invalid_otp"
        proof = {"recovery_code": codes[2]}
        r = await client.post("/mfa/recovery-codes", headers=bearer(tokens["access_token"]), json=proof)
        fresh = r.json()["recovery_codes"]
        assert r.status_code == 200 and len(fresh) == 10 and not set(fresh) & set(codes)
        r = await client.post(
            "/auth/mfa",
            json={"mfa_token": (await mfa_login(client, user["email"]))["mfa_token"], "recovery_code": codes[1]},
        )
        assert r.status_code == 401  # the old set died with the new one
        r = await client.post(
            "/auth/mfa",
            json={"mfa_token": (await mfa_login(client, user["email"]))["mfa_token"], "recovery_code": fresh[1]},
        )
        assert r.status_code == 200
        await messages_of(receiver, "mfa_enabled")
        await messages_of(receiver, "recovery_codes_replaced")


async def test_attack_stale_token_cannot_remove_totp_but_a_fresh_code_proves_it(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        totp, _ = await enroll_totp(client, tokens["access_token"])
        stolen = await stale_tokens(client, tokens)
        for method, path in (
            ("DELETE", "/mfa/totp"),
            ("POST", "/mfa/recovery-codes"),
            ("POST", "/mfa/totp"),
            ("POST", "/mfa/passkeys/options"),
        ):
            r = await client.request(method, path, headers=bearer(stolen["access_token"]))
            assert r.status_code == 401 and error_code(r) == "factor_proof_required", path
        r = await client.request("DELETE", "/mfa/totp", headers=bearer(stolen["access_token"]), json={"otp": "000000"})
        assert r.status_code == 401 and error_code(r) == "invalid_otp"
        r = await client.request(
            "DELETE", "/mfa/totp", headers=bearer(stolen["access_token"]), json={"otp": next_code(totp)}
        )
        assert r.status_code == 204, r.text
        await messages_of(receiver, "mfa_disabled")
        r = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        assert r.status_code == 200 and "access_token" in r.json()  # no factor left: one step again
        async with client.gatehouse.transaction() as db:
            assert not list(await db.scalars(sa.select(service.RecoveryCode)))  # no back door left behind
        assert len(await audit_rows(client.gatehouse, "mfa.totp_disabled")) == 1


async def test_require_mfa_guards_host_routes_and_admins_must_enroll(make_settings: Any) -> None:
    from fastapi import FastAPI

    settings = make_settings(require_mfa_for_admins=True)
    host = FastAPI()
    service.mount_gatehouse(host, "/identity", settings)

    @host.get("/payouts")
    async def payouts(principal: Any = service.require_mfa()) -> dict[str, Any]:
        return {"amr": list(principal.amr), "aal": principal.aal}

    async with host.router.lifespan_context(host):
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as client:
            gh = host.state.gatehouse
            r = await client.post("/identity/auth/register", json={"email": "boss@example.com", "password": PASSWORD})
            await service.update_user(gh, user_id=uuid.UUID(r.json()["id"]), role="admin")
            tokens = (
                await client.post("/identity/auth/login", json={"email": "boss@example.com", "password": PASSWORD})
            ).json()
            auth = bearer(tokens["access_token"])
            r = await client.get("/payouts", headers=auth)
            assert r.status_code == 403 and r.json()["error"]["code"] == "mfa_required"
            r = await client.get("/identity/users", headers=auth)
            assert r.status_code == 403 and r.json()["error"]["code"] == "mfa_enrollment_required"
            r = await client.post("/identity/api-keys", headers=auth, json={"name": "x", "scopes": ["admin"]})
            assert r.status_code == 403 and r.json()["error"]["code"] == "mfa_enrollment_required"
            assert (await client.get("/identity/users/me", headers=auth)).status_code == 200  # only admin routes
            r = await client.post("/identity/mfa/totp", headers=auth, json={"password": PASSWORD})
            import pyotp

            totp = pyotp.TOTP(r.json()["secret"])
            await client.post("/identity/mfa/totp/confirm", headers=auth, json={"code": totp.now()})
            r = await client.post("/identity/auth/reauthenticate", headers=auth, json={"otp": next_code(totp)})
            assert r.status_code == 200, r.text
            stepped = bearer(r.json()["access_token"])  # the same session, now with a second factor
            assert claims(r.json()["access_token"])["amr"] == ["pwd", "otp"]
            assert (await client.get("/identity/users", headers=stepped)).status_code == 200
            assert (await client.get("/payouts", headers=stepped)).json() == {"amr": ["pwd", "otp"], "aal": 2}


async def test_mfa_reset_over_http_and_cli_is_audited_and_notifies(make_settings: Any, receiver: "Receiver") -> None:
    settings = make_settings(webhook_url=receiver.url)
    async with running(settings) as client:
        user, tokens = await new_user(client)
        totp, _ = await enroll_totp(client, tokens["access_token"])
        proof = {"otp": next_code(totp)}
        assert (await add_passkey(client, tokens["access_token"], SoftAuthenticator(), proof=proof)).status_code == 201
        await mfa_login(client, user["email"])
        result = await run_cli(settings, "mfa-reset", user["email"], "--yes")
        assert result.exit_code == 0, result.output
        assert f"removed 12 second factor record(s) of {user['email']}" in result.output  # app, passkey, 10 codes
        r = await client.post("/auth/login", json={"email": user["email"], "password": PASSWORD})
        assert "access_token" in r.json()
        [mail] = await messages_of(receiver, "mfa_reset")
        assert mail["email"] == user["email"]
        await enroll_totp(client, tokens["access_token"])
        _, admin = await admin_tokens(client, settings)
        r = await client.delete(f"/users/{user['id']}/mfa", headers=bearer(admin["access_token"]))
        assert r.status_code == 204
        rows = await audit_rows(client.gatehouse, "mfa.reset")
        assert len(rows) == 2 and {str(r.actor_id) for r in rows} == {"None", claims(admin["access_token"])["sub"]}
        await messages_of(receiver, "mfa_reset", 2)
        assert (await run_cli(settings, "mfa-reset", "nobody@example.com", "--yes")).exit_code == 1


async def test_passkey_register_list_and_sign_in_without_a_password(make_settings: Any, receiver: "Receiver") -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        authenticator = SoftAuthenticator()
        r = await add_passkey(client, tokens["access_token"], authenticator, name="YubiKey")
        assert r.status_code == 201 and r.json()["name"] == "YubiKey", r.text
        [listed] = (await client.get("/mfa/passkeys", headers=bearer(tokens["access_token"]))).json()
        assert listed["id"] == r.json()["id"] and listed["last_used_at"] is None
        await messages_of(receiver, "passkey_added")
        for expected_count in (1, 2):
            r = await passkey_sign_in(client, authenticator)
            assert r.status_code == 200, r.text
            got = claims(r.json()["access_token"])
            assert got["sub"] == user["id"] and got["amr"] == ["webauthn"] and got["acr"] == "aal2"
            async with client.gatehouse.transaction() as db:
                row = await db.scalar(sa.select(service.Passkey))
            assert row.sign_count == expected_count and row.last_used_at is not None
        presence_only = SoftAuthenticator(uv=False)  # a key that did not verify the user: one factor
        proof = await passkey_proof(client, tokens["access_token"], authenticator)
        assert (await add_passkey(client, tokens["access_token"], presence_only, proof=proof)).status_code == 201
        r = await passkey_sign_in(client, presence_only)
        assert claims(r.json()["access_token"])["acr"] == "aal1"
        challenge = await mfa_login(client, user["email"])  # a passkey makes the password one step of two
        assert challenge["methods"] == ["webauthn"]


async def test_passkey_as_second_factor_and_step_up(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    authenticator = SoftAuthenticator()
    assert (await add_passkey(client, tokens["access_token"], authenticator)).status_code == 201
    token = (await mfa_login(client, user["email"]))["mfa_token"]
    options = (await client.post("/auth/webauthn/options", json={"mfa_token": token})).json()
    assert [c["id"] for c in options["allowCredentials"]] == [authenticator.b64(authenticator.credential_id)]
    r = await client.post("/auth/mfa", json={"mfa_token": token, "webauthn": authenticator.get(options)})
    assert r.status_code == 200, r.text
    assert claims(r.json()["access_token"])["amr"] == ["pwd", "webauthn"]
    stolen = await stale_tokens(client, r.json())
    passkey_id = (await client.get("/mfa/passkeys", headers=bearer(stolen["access_token"]))).json()[0]["id"]
    r = await client.request("DELETE", f"/mfa/passkeys/{passkey_id}", headers=bearer(stolen["access_token"]))
    assert r.status_code == 401 and error_code(r) == "factor_proof_required"
    options = (await client.post("/mfa/passkeys/challenge", headers=bearer(stolen["access_token"]))).json()
    r = await client.request(
        "DELETE",
        f"/mfa/passkeys/{passkey_id}",
        headers=bearer(stolen["access_token"]),
        json={"passkey": authenticator.get(options)},
    )
    assert r.status_code == 204, r.text
    assert (await client.get("/mfa/passkeys", headers=bearer(stolen["access_token"]))).json() == []
    r = await client.request(
        "DELETE", f"/mfa/passkeys/{passkey_id}", headers=bearer(tokens["access_token"]), json={"password": PASSWORD}
    )
    assert r.status_code == 404 and error_code(r) == "passkey_not_found"


async def test_attack_passkey_from_another_origin_or_for_another_purpose_is_refused(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    phished = SoftAuthenticator(origin="https://gatehouse.example.evil")
    r = await add_passkey(client, tokens["access_token"], phished)
    assert r.status_code == 401 and error_code(r) == "passkey_rejected"
    other_rp = SoftAuthenticator(rp_id="localhost")
    r = await client.post("/mfa/passkeys/options", headers=bearer(tokens["access_token"]), json={"password": PASSWORD})
    options = r.json()
    other_rp.rp_id = "evil.example"
    r = await client.post(
        "/mfa/passkeys",
        headers=bearer(tokens["access_token"]),
        json={"credential": other_rp.create({**options, "rp": {"id": "evil.example"}})},
    )
    assert r.status_code == 401 and error_code(r) == "passkey_rejected"
    real = SoftAuthenticator()
    assert (await add_passkey(client, tokens["access_token"], real)).status_code == 201
    real.origin = "https://gatehouse.example.evil"
    r = await passkey_sign_in(client, real)
    assert r.status_code == 401 and error_code(r) == "passkey_rejected"
    real.origin = "http://localhost:8000"
    step_up = (await client.post("/mfa/passkeys/challenge", headers=bearer(tokens["access_token"]))).json()
    r = await client.post("/auth/webauthn", json={"credential": real.get(step_up)})  # a challenge for a step-up
    assert r.status_code == 401 and error_code(r) == "passkey_rejected"
    for junk in ({}, {"id": "x"}, {"id": real.b64(real.credential_id), "response": "nope"}, {"id": 5}):
        r = await client.post("/auth/webauthn", json={"credential": junk})
        assert r.status_code == 422 and error_code(r) == "validation_error", junk  # refused before any lookup
    assert (await passkey_sign_in(client, real)).status_code == 200


async def test_attack_replayed_passkey_assertion_is_refused(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    authenticator = SoftAuthenticator()
    await add_passkey(client, tokens["access_token"], authenticator)
    options = (await client.post("/auth/webauthn/options")).json()
    answer = authenticator.get(options)
    assert (await client.post("/auth/webauthn", json={"credential": answer})).status_code == 200
    r = await client.post("/auth/webauthn", json={"credential": answer})
    assert r.status_code == 401 and error_code(r) == "passkey_rejected"


async def test_attack_cloned_passkey_with_a_counter_going_backwards_is_refused_and_audited(
    client: httpx.AsyncClient,
) -> None:
    import copy

    user, tokens = await new_user(client)
    genuine = SoftAuthenticator()
    await add_passkey(client, tokens["access_token"], genuine)
    clone = copy.copy(genuine)  # same key and counter, as an extracted key would be
    for _ in range(3):
        assert (await passkey_sign_in(client, genuine)).status_code == 200
    r = await passkey_sign_in(client, clone)  # counter 1 after 3
    assert r.status_code == 401 and error_code(r) == "passkey_rejected" and "cloned" in r.json()["error"]["message"]
    [row] = await audit_rows(client.gatehouse, "mfa.passkey_clone_detected", "failure")
    assert str(row.subject_id) == user["id"] and json_detail(row)["stored"] == 3 and json_detail(row)["presented"] == 1
    async with client.gatehouse.transaction() as db:
        assert (await db.scalar(sa.select(service.Passkey.sign_count))) == 3  # not moved back


async def test_attack_login_code_path_still_asks_for_the_second_factor(
    make_settings: Any, receiver: "Receiver"
) -> None:
    settings = make_settings(webhook_url=receiver.url, rate_login_failures_account="3/h")
    async with running(settings) as client:
        user, tokens = await new_user(client)
        totp, _ = await enroll_totp(client, tokens["access_token"])
        async with from_address(client, "198.51.100.30") as stranger:
            for _ in range(3):
                await stranger.post("/auth/login", json={"email": user["email"], "password": "a wrong guess"})
        right = {"email": user["email"], "password": PASSWORD}
        r = await client.post("/auth/login", json=right)
        assert r.status_code == 401 and error_code(r) == "login_code_required"
        [mail] = await messages_of(receiver, "login_code")
        r = await client.post("/auth/login", json={**right, "code": mail["code"]})
        assert r.status_code == 200 and r.json()["mfa_required"] is True and "access_token" not in r.json()
        r = await client.post("/auth/mfa", json={"mfa_token": r.json()["mfa_token"], "code": next_code(totp)})
        assert r.status_code == 200 and claims(r.json()["access_token"])["amr"] == ["pwd", "otp"]


async def test_mfa_token_is_stored_to_expire_at_its_own_lifetime(client: httpx.AsyncClient) -> None:
    user, tokens = await new_user(client)
    await enroll_totp(client, tokens["access_token"])
    challenge = await mfa_login(client, user["email"])
    async with client.gatehouse.transaction() as db:
        row = await db.scalar(
            sa.select(service.ActionToken).where(
                service.ActionToken.token_hash == service.hash_secret(challenge["mfa_token"])
            )
        )
    # The stored expiry is what refuses the token; the answer's `expires_in` only reports it.
    assert row.purpose == "mfa" and row.expires_at - row.created_at == service.MFA_TOKEN_LIFETIME
    assert challenge["expires_in"] == service.MFA_TOKEN_LIFETIME.total_seconds() == 300


async def test_attack_expired_session_is_left_out_of_the_session_list(client: httpx.AsyncClient) -> None:
    user = await register(client)
    here, elsewhere = await login(client, user["email"]), await login(client, user["email"])
    async with client.gatehouse.transaction(write=True) as db:  # ended by time, never revoked
        await db.execute(
            sa.update(service.LoginSession)
            .where(service.LoginSession.id == uuid.UUID(claims(elsewhere["access_token"])["sid"]))
            .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
        )
    r = await client.get("/sessions", headers=bearer(here["access_token"]))
    assert r.status_code == 200 and [s["id"] for s in r.json()] == [claims(here["access_token"])["sid"]]
    assert (await session_row(client.gatehouse, claims(elsewhere["access_token"])["sid"])).revoked_at is None


class CounterlessAuthenticator(SoftAuthenticator):
    """A passkey that keeps no signature counter (as many platform passkeys): every answer says 0."""

    sign_count = property(lambda self: 0, lambda self, value: None)


async def test_attack_replayed_answer_of_a_counterless_passkey_is_a_spent_challenge(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    key = CounterlessAuthenticator()
    assert (await add_passkey(client, tokens["access_token"], key)).status_code == 201
    for _ in range(2):  # a counter that stays 0 is no clone: accepted every time
        assert (await passkey_sign_in(client, key)).status_code == 200
    answer = key.get((await client.post("/auth/webauthn/options")).json())
    assert (await client.post("/auth/webauthn", json={"credential": answer})).status_code == 200
    r = await client.post("/auth/webauthn", json={"credential": answer})  # the counter cannot tell: the challenge does
    assert r.status_code == 401 and error_code(r) == "passkey_rejected" and "already used" in r.text, r.text
    assert await audit_rows(client.gatehouse, "mfa.passkey_clone_detected") == []
    assert len(await audit_rows(client.gatehouse, "auth.login", "success")) == 1 + 3  # the password, the passkey
    async with client.gatehouse.transaction() as db:
        assert (await db.scalar(sa.select(service.Passkey.sign_count))) == 0


async def test_attack_a_genuine_and_a_cloned_passkey_answering_at_once_with_one_count_get_one_session(
    client: httpx.AsyncClient,
) -> None:
    import copy

    _, tokens = await new_user(client)
    genuine = SoftAuthenticator()
    assert (await add_passkey(client, tokens["access_token"], genuine)).status_code == 201
    clone = copy.copy(genuine)  # same key and counter: both next answer with the same count
    for count in (1, 2, 3):
        answers = [key.get((await client.post("/auth/webauthn/options")).json()) for key in (genuine, clone)]
        racing = await asyncio.gather(*(client.post("/auth/webauthn", json={"credential": a}) for a in answers))
        assert sorted(r.status_code for r in racing) == [200, 401], [r.text for r in racing]
        async with client.gatehouse.transaction() as db:
            assert (await db.scalar(sa.select(service.Passkey.sign_count))) == count
    assert len(await audit_rows(client.gatehouse, "mfa.passkey_clone_detected", "failure")) == 3


async def test_attack_passkey_challenge_for_one_purpose_is_refused_for_another_of_the_same_user(
    client: httpx.AsyncClient,
) -> None:
    user, tokens = await new_user(client)
    auth = bearer(tokens["access_token"])
    spare = await client.post("/mfa/passkeys/options", headers=auth, json={"password": PASSWORD})
    register_options = spare.json()  # a registration challenge of this user, never used
    key = SoftAuthenticator()
    assert (await add_passkey(client, tokens["access_token"], key)).status_code == 201
    mfa_token = (await mfa_login(client, user["email"]))["mfa_token"]
    challenges = {
        "register": register_options,
        "mfa": (await client.post("/auth/webauthn/options", json={"mfa_token": mfa_token})).json(),
        "proof": (await client.post("/mfa/passkeys/challenge", headers=auth)).json(),
    }
    uses = {
        "mfa": lambda answer: client.post("/auth/mfa", json={"mfa_token": mfa_token, "webauthn": answer}),
        "proof": lambda answer: client.post("/auth/reauthenticate", headers=auth, json={"passkey": answer}),
        "login": lambda answer: client.post("/auth/webauthn", json={"credential": answer}),
    }
    for issued, options in challenges.items():
        for purpose, use in uses.items():
            if purpose != issued:
                r = await use(key.get(options))
                assert r.status_code == 401 and error_code(r) == "passkey_rejected", (issued, purpose, r.text)
                assert "not one this service issued for this" in r.text, (issued, purpose, r.text)
    other = SoftAuthenticator()  # and a sign-in or step-up challenge registers nothing
    for issued in ("mfa", "proof"):
        options = {**challenges[issued], "rp": {"id": "localhost"}, "user": {"id": key.user_handle}}
        r = await client.post("/mfa/passkeys", headers=auth, json={"credential": other.create(options), "name": "x"})
        assert r.status_code == 401 and error_code(r) == "passkey_rejected", (issued, r.text)
    assert len((await client.get("/mfa/passkeys", headers=auth)).json()) == 1
    for purpose in ("mfa", "proof"):  # each challenge still works for what it was issued for
        r = await uses[purpose](key.get(challenges[purpose]))
        assert r.status_code == 200, (purpose, r.text)


# Second factors that cannot be turned against the owner (issue 25)

BAD_SIGNATURE = b"\x30\x06\x02\x01\x01\x02\x01\x01"


async def backdate(gh: service.Gatehouse, model: Any, column: Any, days: int, **where: Any) -> None:
    """Move a row's timestamp `days` into the past (a factor added long ago)."""
    async with gh.transaction(write=True) as db:
        stmt = sa.update(model).where(*(getattr(model, k) == v for k, v in where.items()))
        await db.execute(stmt.values({column: datetime.now(service.UTC) - timedelta(days=days)}))


async def test_attack_strangers_junk_passkey_answers_never_spend_the_owners_second_factor_budget(
    make_settings: Any,
) -> None:
    # A passkey's credential id is not secret (step-up options list it). Strangers on many addresses send
    # junk answers and forged signatures with it, far more than the budget; the owner's code, recovery
    # code and passkey all still work.
    async with running(make_settings(rate_mfa_failures="3/h")) as client:
        user, tokens = await new_user(client)
        totp, recovery = await enroll_totp(client, tokens["access_token"])
        key = SoftAuthenticator()
        r = await add_passkey(client, tokens["access_token"], key, proof={"recovery_code": recovery[1]})
        assert r.status_code == 201, r.text
        options = (await client.post("/mfa/passkeys/challenge", headers=bearer(tokens["access_token"]))).json()
        [listed] = options["allowCredentials"]
        junk = {"id": listed["id"], "response": {"clientDataJSON": "e30"}}
        forged = key.get((await client.post("/auth/webauthn/options")).json())  # a live sign-in challenge
        forged["response"]["signature"] = key.b64(BAD_SIGNATURE)
        for i in range(12):
            async with from_address(client, f"203.0.113.{i}") as stranger:
                for body in (junk, forged):
                    r = await stranger.post("/auth/webauthn", json={"credential": body})
                    assert r.status_code == 401 and error_code(r) == "passkey_rejected", r.text
                r = await stranger.post("/auth/mfa", json={"mfa_token": "x" * 43, "webauthn": junk})
                assert r.status_code == 401 and error_code(r) == "invalid_mfa_token"
        token = (await mfa_login(client, user["email"]))["mfa_token"]
        r = await client.post("/auth/mfa", json={"mfa_token": token, "code": next_code(totp)})
        assert r.status_code == 200, r.text
        token = (await mfa_login(client, user["email"]))["mfa_token"]
        r = await client.post("/auth/mfa", json={"mfa_token": token, "recovery_code": recovery[0]})
        assert r.status_code == 200, r.text
        assert (await passkey_sign_in(client, key)).status_code == 200
        token = (await mfa_login(client, user["email"]))["mfa_token"]
        options = (await client.post("/auth/webauthn/options", json={"mfa_token": token})).json()
        r = await client.post("/auth/mfa", json={"mfa_token": token, "webauthn": key.get(options)})
        assert r.status_code == 200, r.text
        # Forged signatures to a live challenge are audited; junk without one never reaches a lookup.
        assert len(await audit_rows(client.gatehouse, "auth.passkey_login", "failure")) == 12


async def test_attack_password_holders_guessing_codes_from_elsewhere_cannot_lock_the_owner_out(
    make_settings: Any,
) -> None:
    async with running(make_settings(rate_mfa_failures="3/h")) as client:
        async with from_address(client, "198.51.100.7") as home:
            user, tokens = await new_user(home)
            totp, _ = await enroll_totp(home, tokens["access_token"])

        async def guesses(ip: str, code: str = "000000", n: int = 3) -> list[int]:
            async with from_address(client, ip) as caller:
                token = (await mfa_login(caller, user["email"]))["mfa_token"]
                return [
                    (await caller.post("/auth/mfa", json={"mfa_token": token, "code": code})).status_code
                    for _ in range(n)
                ]

        assert await guesses("203.0.113.1") == [401, 401, 401]
        assert await guesses("203.0.113.2") == [429, 429, 429]  # the budget is the account's, not the address's
        assert await guesses("198.51.100.7", next_code(totp), n=1) == [200]  # the owner, from home
        assert await guesses("198.51.100.7", n=3) == [401, 401, 401]  # the reserve is bounded too
        assert await guesses("198.51.100.7", next_code(totp), n=1) == [429]


async def test_attack_stolen_fresh_access_token_cannot_plant_or_strip_a_factor(client: httpx.AsyncClient) -> None:
    _, tokens = await new_user(client)
    stolen = bearer(tokens["access_token"])  # a sign-in of a minute ago: within REAUTH_MINUTES
    for path in ("/mfa/totp", "/mfa/passkeys/options"):
        r = await client.post(path, headers=stolen)
        assert r.status_code == 401 and error_code(r) == "factor_proof_required", path
    totp, _ = await enroll_totp(client, tokens["access_token"])  # the owner, with the password
    # Once the account has a factor, even a phished password does not change factors: only a factor does.
    for method, path in (
        ("POST", "/mfa/passkeys/options"),
        ("DELETE", "/mfa/totp"),
        ("POST", "/mfa/recovery-codes"),
        ("POST", "/mfa/totp"),
    ):
        r = await client.request(method, path, headers=stolen, json={"password": PASSWORD})
        assert r.status_code == 401 and error_code(r) == "factor_proof_required", path
    assert (await client.get("/mfa/passkeys", headers=stolen)).json() == []
    r = await client.post("/mfa/passkeys/options", headers=stolen, json={"otp": next_code(totp)})
    assert r.status_code == 200, r.text


async def test_attack_a_planted_factor_is_removed_by_the_this_wasnt_me_link(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        planted = SoftAuthenticator()  # a thief with the access token and a phished password
        assert (await add_passkey(client, tokens["access_token"], planted, name="thief")).status_code == 201
        [mail] = await messages_of(receiver, "passkey_added")
        assert mail["email"] == user["email"] and mail["name"] == "thief" and "/undo-factor?token=" in mail["link"]
        thief = (await passkey_sign_in(client, planted)).json()
        page = await client.get("/undo-factor", params={"token": token_of(mail["link"])})
        assert page.status_code == 200 and "Remove it and sign out everywhere" in page.text  # opening spends nothing
        r = await client.post("/mfa/undo", json={"token": token_of(mail["link"])})
        assert r.status_code == 200, r.text
        assert r.json() == {"sessions_ended": 2, "api_keys_revoked": 0, "factors_removed": ["thief"]}
        assert (await passkey_sign_in(client, planted)).status_code == 401
        assert (await client.get("/users/me", headers=bearer(thief["access_token"]))).status_code == 401
        assert (await client.post("/mfa/undo", json={"token": token_of(mail["link"])})).status_code == 400
        [row] = await audit_rows(client.gatehouse, "mfa.factor_undone")
        assert str(row.subject_id) == user["id"] and json_detail(row)["removed"] == 1
        # An authenticator app: the link names the app enrolled then, not one enrolled again afterwards.
        access = (await login(client, user["email"]))["access_token"]
        first, _ = await enroll_totp(client, access)
        [enabled] = await messages_of(receiver, "mfa_enabled")
        r = await client.request("DELETE", "/mfa/totp", headers=bearer(access), json={"otp": next_code(first)})
        assert r.status_code == 204, r.text
        await enroll_totp(client, access)
        r = await client.post("/mfa/undo", json={"token": token_of(enabled["link"])})
        assert r.status_code == 200 and r.json()["factors_removed"] == [] and r.json()["sessions_ended"] == 1
        assert (await mfa_login(client, user["email"]))["methods"] == ["totp", "recovery_code"]
        [second] = (await messages_of(receiver, "mfa_enabled", 2))[1:]
        r = await client.post("/mfa/undo", json={"token": token_of(second["link"])})
        assert r.status_code == 200 and r.json()["factors_removed"] == ["app"]
        assert "access_token" in (await login(client, user["email"]))  # one step again, and no codes left behind
        async with client.gatehouse.transaction() as db:
            assert not list(await db.scalars(sa.select(service.RecoveryCode)))


async def test_attack_a_planted_passkey_does_not_survive_a_password_reset(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        access = tokens["access_token"]
        old, planted, mine = SoftAuthenticator(), SoftAuthenticator(), SoftAuthenticator()
        assert (await add_passkey(client, access, old, name="old")).status_code == 201
        gh = client.gatehouse
        await backdate(gh, service.Passkey, "created_at", 10, name="old")  # added long before the trouble
        for key, name in ((planted, "planted"), (mine, "mine")):
            r = await add_passkey(client, access, key, name=name, proof=await passkey_proof(client, access, old))
            assert r.status_code == 201, r.text
        ids = {p["name"]: p["id"] for p in (await client.get("/mfa/passkeys", headers=bearer(access))).json()}
        await client.post("/auth/password-reset/request", json={"email": user["email"]})
        [mail] = await messages_of(receiver, "password_reset")
        token = token_of(mail["link"])
        page = (await client.get("/reset-password", params={"token": token})).text  # what the mailed link opens
        assert f'name="keep" value="{ids["planted"]}"' in page and f'value="{ids["old"]}"' not in page
        assert "old (passkey, added" in page and ": stays" in page
        r = await client.post("/auth/password-reset/factors", json={"token": token})
        assert r.status_code == 200
        assert [(f["name"], f["recent"]) for f in r.json()] == [("old", False), ("planted", True), ("mine", True)]
        r = await client.post(
            "/auth/password-reset/confirm",
            json={"token": token, "new_password": "a new pass phrase", "keep_factors": [ids["mine"]]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["factors_removed"] == ["passkey planted"]
        assert (await passkey_sign_in(client, planted)).status_code == 401
        assert (await passkey_sign_in(client, old)).status_code == 200  # a mailbox alone strips no old factor
        assert (await passkey_sign_in(client, mine)).status_code == 200
        assert len(await audit_rows(gh, "mfa.recovery_removed")) == 1


async def test_attack_junk_keep_values_in_the_reset_form_are_ignored_not_a_500(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        user = await register(client)
        await client.post("/auth/password-reset/request", json={"email": user["email"]})
        [mail] = await messages_of(receiver, "password_reset")
        form = {
            "token": token_of(mail["link"]),
            "new_password": "a new pass phrase",
            "confirm_password": "a new pass phrase",
            "keep": ["not-a-factor", "zqx\u00e9", "' OR 1=1 --"],
        }
        r = await client.post("/reset-password", data=form)
        assert r.status_code == 200 and "Your password is changed" in r.text, r.text
        assert "access_token" in await login(client, user["email"], "a new pass phrase")


async def test_attack_a_double_submitted_passkey_answer_is_a_spent_challenge_not_a_clone(
    make_settings: Any, receiver: "Receiver"
) -> None:
    async with running(make_settings(webhook_url=receiver.url)) as client:
        _, tokens = await new_user(client)
        key = SoftAuthenticator()
        await add_passkey(client, tokens["access_token"], key)
        answer = key.get((await client.post("/auth/webauthn/options")).json())
        assert (await client.post("/auth/webauthn", json={"credential": answer})).status_code == 200
        retry = await client.post("/auth/webauthn", json={"credential": answer})  # a client's retry
        assert retry.status_code == 401 and "already used" in retry.json()["error"]["message"], retry.text
        answer = key.get((await client.post("/auth/webauthn/options")).json())
        racing = await asyncio.gather(*(client.post("/auth/webauthn", json={"credential": answer}) for _ in range(2)))
        assert sorted(r.status_code for r in racing) == [200, 401]
        assert all("already used" in r.text for r in racing if r.status_code == 401)
        assert await audit_rows(client.gatehouse, "mfa.passkey_clone_detected") == []
        assert (await passkey_sign_in(client, key)).status_code == 200  # the passkey is healthy
        await asyncio.sleep(0.2)
        assert not [m for m in receiver.messages if m["type"] == "passkey_clone_detected"]


async def test_attack_a_cloned_passkey_is_mailed_to_the_owner(make_settings: Any, receiver: "Receiver") -> None:
    import copy

    async with running(make_settings(webhook_url=receiver.url)) as client:
        user, tokens = await new_user(client)
        genuine = SoftAuthenticator()
        await add_passkey(client, tokens["access_token"], genuine, name="phone")
        clone = copy.copy(genuine)  # its counter stays behind the genuine one's
        for _ in range(3):
            assert (await passkey_sign_in(client, genuine)).status_code == 200
        for _ in range(3):  # the copy tries again and again: the owner is told once
            assert (await passkey_sign_in(client, clone)).status_code == 401
        [mail] = await messages_of(receiver, "passkey_clone_detected")
        assert mail["email"] == user["email"] and mail["name"] == "phone"
        assert len(await audit_rows(client.gatehouse, "mfa.passkey_clone_detected")) == 3


async def test_attack_a_failed_statement_never_logs_its_bound_values(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # PostgreSQL's own message quotes the value that broke a constraint ("Key (email)=(…) already exists").
    app = service.create_app(settings)

    async def clash() -> None:
        async with app.state.gatehouse.transaction(write=True) as db:
            for _ in range(2):
                db.add(service.User(id=uuid.uuid4(), email="zqx-secret@example.com", password_hash="zqx-hash"))
                await db.flush()

    app.add_api_route("/clash", clash, methods=["POST"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse.test") as client:
            r = await client.post("/clash")
    assert r.status_code == 500 and error_code(r) == "internal_error"
    assert "unhandled database error" in caplog.text and "INSERT INTO users" in caplog.text
    assert "zqx" not in caplog.text


async def test_attack_malformed_passkey_ids_are_refused_as_4xx_and_never_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    user, tokens = await new_user(client)
    auth = bearer(tokens["access_token"])
    totp, _ = await enroll_totp(client, tokens["access_token"])
    mfa_token = (await mfa_login(client, user["email"]))["mfa_token"]
    caplog.set_level(logging.DEBUG)
    for bad in ("zqx\ud800zqx", "zqx\x00zqx", "zqx" * 500, "zqx zqx", "zqx+/zqx", "", 5):
        answer = {"id": bad, "rawId": bad, "type": "public-key", "response": {"clientDataJSON": "e30"}}
        for method, path, body, headers in (
            ("POST", "/auth/webauthn", {"credential": answer}, {}),
            ("POST", "/auth/mfa", {"mfa_token": mfa_token, "webauthn": answer}, {}),
            ("POST", "/auth/reauthenticate", {"passkey": answer}, auth),
            ("DELETE", "/mfa/totp", {"passkey": answer}, auth),
            ("PATCH", "/users/me", {"full_name": "x", "passkey": answer}, auth),
        ):
            content = json.dumps(body).encode()  # ASCII escapes: a lone surrogate travels as \ud800
            r = await client.request(
                method, path, content=content, headers={**headers, "Content-Type": "application/json"}
            )
            assert r.status_code == 422 and error_code(r) == "validation_error", (path, bad, r.text)
    assert "zqx" not in caplog.text
    token = (await mfa_login(client, user["email"]))["mfa_token"]
    assert (await client.post("/auth/mfa", json={"mfa_token": token, "code": next_code(totp)})).status_code == 200


# Federated login #############################################################
#
# A real OpenID provider on loopback, not a mock that echoes the client: discovery, JWKS, an
# authorization endpoint (approving its test user at once, or through a one-button form for the
# browser), and a token endpoint that authenticates the client, checks the redirect URI and PKCE
# S256 with Authlib's server-side function, and spends each code once. Knobs make it misbehave.

APP_URL = "http://app.test/signed-in"
FED_CALLBACK = "http://localhost:8000/auth/oauth/acme/callback"


class OidcProvider:
    """An OpenID Connect provider served by uvicorn in a thread on 127.0.0.1."""

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey

        self.port = _free_port()
        self.url = self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id, self.client_secret = "gatehouse-client", "provider-secret"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig", "alg": "RS256"})
        self.imposter = RSAKey.generate_key(2048, parameters={"kid": "key-1"})  # another key, same kid
        self.rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2", "use": "sig", "alg": "RS256"})
        self.reset()
        self.server: Any = None

    def reset(self) -> None:
        self.user: dict[str, Any] = {
            "sub": f"sub-{secrets.token_hex(4)}",
            "email": f"fed-{secrets.token_hex(4)}@example.com",
            "email_verified": True,
            "name": "Fed User",
        }
        self.misbehave: set[str] = set()
        self.redirect_uris = {FED_CALLBACK}
        self.codes: dict[str, dict[str, Any]] = {}
        self.discovery: dict[str, Any] = {}
        self.form = False
        self.published = [self.key]
        self.signing = self.key
        # As a certified provider does by default (OpenID Connect Core 5.4): email claims only at UserInfo.
        self.userinfo_only = False
        self.access: dict[str, dict[str, Any]] = {}  # access token -> the user it was issued for

    def app(self) -> Any:
        from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
        from starlette.routing import Route

        async def discovery(request: Any) -> Any:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                    "userinfo_endpoint": f"{self.url}/userinfo",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                    **self.discovery,
                }
            )

        async def jwks(request: Any) -> Any:
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.published]})

        def approve(params: Any) -> Any:
            code = secrets.token_urlsafe(16)
            self.codes[code] = {**params, "user": dict(self.user)}
            return RedirectResponse(f"{params['redirect_uri']}?code={code}&state={params['state']}", status_code=302)

        async def authorize(request: Any) -> Any:
            params = dict(request.query_params if request.method == "GET" else await request.form())
            problems = [
                params.get("client_id") != self.client_id,
                params.get("redirect_uri") not in self.redirect_uris,
                params.get("response_type") != "code",
                params.get("code_challenge_method") != "S256",
                not params.get("code_challenge"),
                not params.get("state"),
                not params.get("nonce"),
            ]
            if any(problems):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            if self.form and request.method == "GET":
                hidden = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in params.items())
                return HTMLResponse(f'<form method="post">{hidden}<button id="approve">Approve</button></form>')
            return approve(params)

        async def token(request: Any) -> Any:
            import base64

            form = dict(await request.form())
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(form.get("code", ""), None)  # each code is spent once
            if (
                grant is None
                or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != grant["redirect_uri"]
                or not compare_s256_code_challenge(form.get("code_verifier", ""), grant["code_challenge"])
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            access = secrets.token_urlsafe(16)
            self.access[access] = grant["user"]
            return JSONResponse(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": self.id_token(grant),
                }
            )

        async def userinfo(request: Any) -> Any:
            user = self.access.get(request.headers.get("authorization", "").removeprefix("Bearer "))
            if user is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            if "userinfo_other_sub" in self.misbehave:
                user = {**user, "sub": "someone-else"}
            return JSONResponse(user)

        async def down(scope: Any, receive: Any, send: Any) -> None:
            await JSONResponse({"error": "temporarily_unavailable"}, status_code=503)(scope, receive, send)

        async def front_end(request: Any) -> Any:  # the page a sign-in lands on, for the browser test
            return HTMLResponse("<!doctype html><title>App</title><p id='landed'>Back in the app</p>")

        inner = Starlette(
            routes=[
                Route("/app", front_end),
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize, methods=["GET", "POST"]),
                Route("/token", token, methods=["POST"]),
                Route("/userinfo", userinfo),
            ]
        )

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await (down if "down" in self.misbehave and scope["type"] == "http" else inner)(scope, receive, send)

        return app

    def id_token(self, grant: dict[str, Any]) -> str:
        import base64

        from joserfc import jwt as jose_jwt

        now, user = int(time.time()), grant["user"]
        claims = {
            "iss": self.issuer,
            "sub": user["sub"],
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **{k: v for k, v in user.items() if k != "sub"},
        }
        if self.userinfo_only:
            for name in ("email", "email_verified", "name"):
                claims.pop(name, None)
        header, key = {"alg": "RS256", "kid": self.signing.kid}, self.signing
        if "expired" in self.misbehave:
            claims.update(iat=now - 7200, exp=now - 3600)
        if "wrong_nonce" in self.misbehave:
            claims["nonce"] = "not-the-nonce-we-were-given"
        if "wrong_audience" in self.misbehave:
            claims["aud"] = "another-client"
        if "wrong_issuer" in self.misbehave:
            claims["iss"] = "http://evil.test"
        if "other_key" in self.misbehave:
            key = self.imposter
        if "unknown_kid" in self.misbehave:
            header, key = {"alg": "RS256", "kid": "key-9"}, self.imposter
        if "alg_none" in self.misbehave:

            def part(data: dict[str, Any]) -> str:
                return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

            return f"{part({'alg': 'none', 'kid': 'key-1'})}.{part(claims)}."
        if "hs256" in self.misbehave:  # "signed" with the client secret, which the client also holds
            from joserfc.jwk import OctKey

            return jose_jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(self.client_secret))
        # PyJWT writes JSON with \u escapes: a claim may be any string JSON can hold (a lone surrogate too).
        return jwt.encode(claims, key.as_pem(private=True), algorithm="RS256", headers={"kid": header["kid"]})

    def start(self) -> "OidcProvider":
        import threading

        import uvicorn

        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        threading.Thread(target=self.server.run, daemon=True).start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.02)
        raise AssertionError("the test provider did not start")

    def stop(self) -> None:
        self.server.should_exit = True


@pytest.fixture(scope="session")
def _provider() -> Any:
    provider = OidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def provider(_provider: OidcProvider) -> OidcProvider:
    _provider.reset()
    return _provider


def fed_settings(make_settings: Any, provider: OidcProvider, **extra: Any) -> Settings:
    acme = {"issuer": provider.issuer, "client_id": provider.client_id, "client_secret": provider.client_secret}
    return make_settings(
        oidc_providers={"acme": acme}, oauth_redirect_allowlist=[APP_URL, "https://app.example.com"], **extra
    )


def query_of(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


async def at_provider(url: str) -> httpx.Response:
    """The browser's visit to the provider's authorization endpoint."""
    async with httpx.AsyncClient(timeout=10) as browser:
        return await browser.get(url)


async def fed_callback(client: httpx.AsyncClient, name: str = "acme", **params: str) -> httpx.Response:
    """Start a sign-in, pass the provider (which approves), and come back to the callback: its answer."""
    from urllib.parse import urlsplit

    r = await client.get(f"/auth/oauth/{name}/authorize", params=params)
    assert r.status_code == 302, r.text
    back = await at_provider(r.headers["location"])
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["location"])
    return await client.get(f"{target.path}?{target.query}")


async def fed_code(client: httpx.AsyncClient, name: str = "acme", **params: str) -> str:
    r = await fed_callback(client, name, **params)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(APP_URL + "?code=") and "token" not in r.headers["location"]
    return query_of(r.headers["location"])["code"]


async def fed_sign_in(client: httpx.AsyncClient, name: str = "acme") -> httpx.Response:
    return await client.post("/auth/oauth/exchange", json={"code": await fed_code(client, name)})


async def identities_of(gh: service.Gatehouse, email: str) -> list[service.Identity]:
    user = await user_row(gh, email)
    return await service.list_identities(gh, user_id=user.id)


async def verified_user(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register, verify the address (as its mailed link would) and log in; (user, tokens)."""
    user = await register(client)
    async with client.gatehouse.transaction(write=True) as db:
        await db.execute(
            sa.update(service.User)
            .where(service.User.email == user["email"])
            .values(email_verified_at=service.utcnow())
        )
    return user, await login(client, user["email"])


async def test_federated_sign_in_creates_a_passwordless_account_and_signs_in_again(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        assert (await client.get("/auth/oauth/providers")).json() == {"providers": ["acme"]}
        r = await client.get("/auth/oauth/acme/authorize", params={"redirect_to": APP_URL})
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/auth/oauth/acme/callback" in cookie
        sent = query_of(r.headers["location"])
        assert sent["code_challenge_method"] == "S256" and sent["state"] and sent["nonce"]
        assert sent["state"] not in cookie and sent["nonce"] not in cookie  # sealed, not readable
        r = await fed_sign_in(client)
        assert r.status_code == 200, r.text
        got = claims(r.json()["access_token"])
        assert got["amr"] == ["fed"] and got["acr"] == "aal1"
        me = (await client.get("/users/me", headers=bearer(r.json()["access_token"]))).json()
        assert me["email"] == provider.user["email"] and me["email_verified_at"] is not None
        row = await user_row(client.gatehouse, me["email"])
        assert row.password_hash == ""  # no password until one is set
        r = await client.post("/auth/login", json={"email": me["email"], "password": ""})
        assert r.status_code == 422 or error_code(r) == "invalid_credentials"
        r = await client.post("/auth/login", json={"email": me["email"], "password": "anything at all"})
        assert r.status_code == 401 and error_code(r) == "invalid_credentials"
        again = await fed_sign_in(client)
        assert again.status_code == 200 and claims(again.json()["access_token"])["sub"] == me["id"]
        [identity] = await identities_of(client.gatehouse, me["email"])
        assert identity.provider == "acme" and identity.subject == provider.user["sub"]
        assert identity.last_used_at is not None
        listed = (await client.get("/users/me/identities", headers=bearer(again.json()["access_token"]))).json()
        assert [i["provider"] for i in listed] == ["acme"]
        assert len(await audit_rows(client.gatehouse, "auth.federated_login")) == 2
        assert [r.detail for r in await audit_rows(client.gatehouse, "identity.linked")] == [
            json.dumps({"how": "signup", "identity": str(identity.id), "provider": "acme"}, sort_keys=True)
        ]
        r = await client.post("/auth/oauth/exchange", json={"code": "0" * 32 + ".nope"})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"


async def test_a_sign_in_started_on_one_instance_finishes_on_another(
    make_settings: Any, provider: OidcProvider, backend: str
) -> None:
    from urllib.parse import urlsplit

    settings = fed_settings(make_settings, provider)
    async with running(settings) as a, running(settings) as b:
        r = await a.get("/auth/oauth/acme/authorize")
        back = urlsplit((await at_provider(r.headers["location"])).headers["location"])
        b.cookies.update(a.cookies)  # the same browser, another instance behind the load balancer
        r = await b.get(f"{back.path}?{back.query}")
        assert r.status_code == 303, r.text
        replay = await a.get(f"{back.path}?{back.query}")
        # With Redis a finished flow is refused on every instance; in-process caches (one process is
        # the supported shape without Redis) leave it to the provider, which has spent the code.
        assert error_code(replay) == ("oauth_state_mismatch" if backend == "postgres" else "provider_rejected")
        r = await a.post("/auth/oauth/exchange", json={"code": query_of(r.headers["location"])["code"]})
        assert r.status_code == 200 and claims(r.json()["access_token"])["amr"] == ["fed"]


async def test_attack_wrong_state_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    from urllib.parse import urlsplit

    async with running(fed_settings(make_settings, provider)) as client:
        r = await client.get("/auth/oauth/acme/authorize")
        back = urlsplit((await at_provider(r.headers["location"])).headers["location"])
        code = query_of(back.geturl())["code"]
        r = await client.get(back.path, params={"code": code, "state": "attacker-state"})
        assert r.status_code == 400 and error_code(r) == "oauth_state_mismatch"
        client.cookies.clear()  # login CSRF: the victim's browser has no flow cookie for this state
        r = await client.get(f"{back.path}?{back.query}")
        assert r.status_code == 400 and error_code(r) == "oauth_state_mismatch"
        assert len(provider.codes) == 1  # the provider's code was never even spent


async def test_attack_replayed_provider_code_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    from urllib.parse import urlsplit

    async with running(fed_settings(make_settings, provider)) as client:
        r = await client.get("/auth/oauth/acme/authorize")
        back = urlsplit((await at_provider(r.headers["location"])).headers["location"])
        first = await client.get(f"{back.path}?{back.query}")
        assert first.status_code == 303
        r = await client.get(f"{back.path}?{back.query}")  # the same callback again: the flow is spent
        assert r.status_code == 400 and error_code(r) == "oauth_state_mismatch"
        r = await client.get("/auth/oauth/acme/authorize")  # a fresh flow, the old code
        state = query_of(r.headers["location"])["state"]
        r = await client.get(back.path, params={"code": query_of(back.geturl())["code"], "state": state})
        assert r.status_code == 401 and error_code(r) == "provider_rejected"


async def test_attack_replayed_exchange_code_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        code = await fed_code(client)
        async with client.gatehouse.transaction() as db:
            stored = list(await db.scalars(sa.select(service.ActionToken.token_hash)))
        assert code not in stored and service.hash_secret(code) in stored
        first, second = await asyncio.gather(
            *(client.post("/auth/oauth/exchange", json={"code": code}) for _ in range(2))
        )
        assert sorted([first.status_code, second.status_code]) == [200, 400]
        r = await client.post("/auth/oauth/exchange", json={"code": code})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"


async def test_attack_expired_exchange_code_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        code = await fed_code(client)
        async with client.gatehouse.transaction(write=True) as db:
            await db.execute(
                sa.update(service.ActionToken)
                .where(service.ActionToken.purpose == "oauth_code")
                .values(expires_at=service.utcnow() - service.timedelta(seconds=1))
            )
        r = await client.post("/auth/oauth/exchange", json={"code": code})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"


@pytest.mark.parametrize(
    "misbehave",
    ["wrong_nonce", "expired", "other_key", "unknown_kid", "alg_none", "hs256", "wrong_audience", "wrong_issuer"],
)
async def test_attack_forged_or_stale_id_token_is_refused(
    make_settings: Any, provider: OidcProvider, misbehave: str
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        provider.misbehave.add(misbehave)
        r = await fed_callback(client)
        assert r.status_code == 401 and error_code(r) == "id_token_rejected", r.text
        assert "location" not in r.headers
        async with client.gatehouse.transaction() as db:
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.User)) == 0
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.Identity)) == 0


async def test_attack_id_token_in_an_algorithm_the_provider_does_not_advertise_is_refused(
    make_settings: Any, provider: OidcProvider
) -> None:
    provider.discovery = {"id_token_signing_alg_values_supported": ["ES256", "none", "HS256"]}
    async with running(fed_settings(make_settings, provider)) as client:
        r = await fed_callback(client)  # an RS256 token: genuine key, but not what the provider says it uses
        assert r.status_code == 401 and error_code(r) == "id_token_rejected"
        provider.misbehave.add("alg_none")  # advertising `none` does not make it acceptable
        r = await fed_callback(client)
        assert r.status_code == 401 and error_code(r) == "id_token_rejected"


async def test_unknown_kid_fetches_the_jwks_again_after_a_rotation(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        assert (await fed_sign_in(client)).status_code == 200  # the JWKS with key-1 is now cached
        provider.published, provider.signing = [provider.key, provider.rotated], provider.rotated
        r = await fed_sign_in(client)
        assert r.status_code == 200, r.text


async def test_attack_provider_down_is_a_502_envelope(make_settings: Any, provider: OidcProvider) -> None:
    dead = {"issuer": f"http://127.0.0.1:{_free_port()}", "client_id": "x", "client_secret": "y"}
    settings = make_settings(
        oidc_providers={
            "dead": dead,
            "acme": {
                "issuer": provider.issuer,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
            },
        },
        oauth_redirect_allowlist=[APP_URL],
        oauth_timeout=2,
    )
    async with running(settings) as client:
        r = await client.get("/auth/oauth/dead/authorize")
        assert r.status_code == 502 and error_code(r) == "provider_unavailable"
        provider.misbehave.add("down")
        r = await client.get("/auth/oauth/acme/authorize")
        assert r.status_code == 502 and error_code(r) == "provider_unavailable"
        provider.misbehave.clear()
        r = await client.get("/auth/oauth/acme/authorize")
        assert r.status_code == 302
        back = await at_provider(r.headers["location"])
        provider.misbehave.add("down")  # goes down between the authorization and the callback
        from urllib.parse import urlsplit

        target = urlsplit(back.headers["location"])
        r = await client.get(f"{target.path}?{target.query}")
        assert r.status_code == 502 and error_code(r) == "provider_unavailable"
        r = await client.get("/auth/oauth/nope/authorize")
        assert r.status_code == 404 and error_code(r) == "unknown_provider"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/signed-in",
        "http://app.test.evil.test/signed-in",
        "http://app.test/signed-in/../../elsewhere",
        "http://app.test/other",
        "//evil.test/",
        "http://app.test@evil.test/signed-in",
        "javascript:alert(1)",
        "http://app.test/signed-in#x",
        "https://app.example.com\\@evil.test",
        "http://evil.test/?https://app.example.com",
        # Login CSRF: the attacker's own code planted where the victim's is added.
        "https://app.example.com/cb?code=attackers-code",
        "https://app.example.com/cb?x=1&code=attackers-code",
        "https://app.example.com/cb?%63ode=attackers-code",
        "https://app.example.com/cb?code",
        "https://app.example.com/cb?linked=acme",
    ],
)
async def test_attack_open_redirect_via_redirect_to_is_refused(
    make_settings: Any, provider: OidcProvider, target: str
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        r = await client.get("/auth/oauth/acme/authorize", params={"redirect_to": target})
        assert r.status_code == 400 and error_code(r) == "redirect_not_allowed", target
        assert "set-cookie" not in r.headers


async def test_redirect_allowlist_takes_exact_urls_and_whole_origins(
    make_settings: Any, provider: OidcProvider
) -> None:
    settings = fed_settings(make_settings, provider)
    assert service.allowed_redirect(settings, None) == APP_URL
    assert service.allowed_redirect(settings, APP_URL) == APP_URL
    assert (
        service.allowed_redirect(settings, "https://app.example.com/any/page?x=1")
        == "https://app.example.com/any/page?x=1"
    )
    async with running(fed_settings(make_settings, provider)) as client:
        r = await fed_callback(client, redirect_to="https://app.example.com/land?x=1")
        assert r.status_code == 303 and r.headers["location"].startswith("https://app.example.com/land?x=1&code=")
    async with running(make_settings(oidc_providers=settings.oidc_providers)) as client:
        r = await client.get("/auth/oauth/acme/authorize")
        assert r.status_code == 400 and error_code(r) == "redirect_not_allowed"


async def test_attack_unverified_provider_email_never_links(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        victim = await register(client)
        provider.user.update(email=victim["email"], email_verified=False)
        r = await fed_callback(client)
        assert r.status_code == 403 and error_code(r) == "provider_email_unverified"
        provider.user.update(email_verified="true")  # a string is not the provider vouching
        r = await fed_callback(client)
        assert r.status_code == 403 and error_code(r) == "provider_email_unverified"
        provider.user.update(email="new-" + victim["email"], email_verified=False)  # no account: none is made
        r = await fed_callback(client)
        assert r.status_code == 403 and error_code(r) == "provider_email_unverified"
        async with client.gatehouse.transaction() as db:
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.Identity)) == 0
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.User)) == 1
        assert (await user_row(client.gatehouse, victim["email"])).email_verified_at is None


async def test_attack_verified_email_match_does_not_auto_link(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        victim, tokens = await verified_user(client)
        provider.user.update(email=victim["email"].upper(), email_verified=True)
        r = await fed_sign_in(client)
        assert r.status_code == 409 and error_code(r) == "link_required"
        assert "access_token" not in r.text
        [details] = r.json()["error"]["details"]
        assert details["provider"] == "acme" and details["expires_in"] == 600
        assert await identities_of(client.gatehouse, victim["email"]) == []
        assert (await client.get("/users/me/identities", headers=bearer(tokens["access_token"]))).json() == []
        r = await client.post(
            "/auth/oauth/link", json={"link_token": details["link_token"], "password": "wrong password!"}
        )
        assert r.status_code == 400 and error_code(r) == "wrong_password"
        assert await identities_of(client.gatehouse, victim["email"]) == []
        again = await fed_sign_in(client)  # signing in again does not link either
        assert again.status_code == 409 and await identities_of(client.gatehouse, victim["email"]) == []
        r = await client.post("/auth/oauth/link", json={"link_token": details["link_token"], "password": PASSWORD})
        assert r.status_code == 200, r.text
        got = claims(r.json()["access_token"])
        assert got["sub"] == victim["id"] and got["amr"] == ["fed"]
        r = await client.post("/auth/oauth/link", json={"link_token": details["link_token"], "password": PASSWORD})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"  # single use
        [identity] = await identities_of(client.gatehouse, victim["email"])
        assert identity.subject == provider.user["sub"]
        r = await fed_sign_in(client)  # from now on the identity signs in directly
        assert r.status_code == 200 and claims(r.json()["access_token"])["sub"] == victim["id"]
        [linked] = await audit_rows(client.gatehouse, "identity.linked")
        assert json.loads(linked.detail)["how"] == "password"
        assert len(await audit_rows(client.gatehouse, "identity.link", "failure")) == 1


async def test_link_through_the_mailed_confirmation(make_settings: Any, provider: OidcProvider, receiver: Any) -> None:
    async with running(fed_settings(make_settings, provider, webhook_url=receiver.url)) as client:
        victim = await register(client)
        provider.user.update(email=victim["email"], email_verified=True)
        r = await fed_sign_in(client)
        link_token = r.json()["error"]["details"][0]["link_token"]
        r = await client.post("/auth/oauth/link/mail", json={"link_token": link_token})
        assert r.status_code == 202
        r = await client.post("/auth/oauth/link/mail", json={"link_token": link_token})
        assert r.status_code == 400 and error_code(r) == "invalid_or_expired_token"  # spent
        [mail] = await messages_of(receiver, "identity_link")
        assert mail["email"] == victim["email"] and "acme" in mail["message"]["subject"]
        assert mail["link"].startswith("http://localhost:8000/confirm-identity-link?token=")
        assert link_token not in mail["link"]
        assert await identities_of(client.gatehouse, victim["email"]) == []
        page = await client.get("/confirm-identity-link", params={"token": token_of(mail["link"])})
        assert (
            page.status_code == 200 and await identities_of(client.gatehouse, victim["email"]) == []
        )  # opening is not consent
        r = await client.post("/confirm-identity-link", data={"token": token_of(mail["link"])})
        assert r.status_code == 200 and "linked" in r.text
        [identity] = await identities_of(client.gatehouse, victim["email"])
        r = await fed_sign_in(client)
        assert r.status_code == 200 and claims(r.json()["access_token"])["sub"] == victim["id"]
        r = await client.post("/confirm-identity-link", data={"token": token_of(mail["link"])})
        assert r.status_code == 400


async def test_attack_removing_the_last_sign_in_method_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        tokens = (await fed_sign_in(client)).json()
        headers = bearer(tokens["access_token"])
        [identity] = (await client.get("/users/me/identities", headers=headers)).json()
        r = await client.request("DELETE", f"/users/me/identities/{identity['id']}", headers=headers)
        assert r.status_code == 409 and error_code(r) == "last_sign_in_method"
        r = await client.request("DELETE", f"/users/me/identities/{uuid.uuid4()}", headers=headers)
        assert r.status_code == 404 and error_code(r) == "identity_not_found"
        await age_proof(client.gatehouse, claims(tokens["access_token"])["sid"], 60)
        stale = (await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
        r = await client.request(
            "DELETE", f"/users/me/identities/{identity['id']}", headers=bearer(stale["access_token"])
        )
        assert r.status_code == 401 and error_code(r) == "reauthentication_required"  # sensitive
        user_id = uuid.UUID(claims(tokens["access_token"])["sub"])
        await service.set_password(client.gatehouse, user_id=user_id, new_password=PASSWORD)  # now a password exists
        fresh = await login(client, provider.user["email"])
        r = await client.request(
            "DELETE", f"/users/me/identities/{identity['id']}", headers=bearer(fresh["access_token"])
        )
        assert r.status_code == 204
        assert (await client.get("/users/me/identities", headers=bearer(fresh["access_token"]))).json() == []
        assert len(await audit_rows(client.gatehouse, "identity.unlinked")) == 1


async def test_a_federated_account_sets_its_first_password_through_the_reset_mail(
    make_settings: Any, provider: OidcProvider, receiver: Any
) -> None:
    async with running(fed_settings(make_settings, provider, webhook_url=receiver.url)) as client:
        tokens = (await fed_sign_in(client)).json()
        r = await client.post(
            "/users/me/password",
            headers=bearer(tokens["access_token"]),
            json={"current_password": "no password yet", "new_password": PASSWORD},
        )
        assert r.status_code == 400 and error_code(r) == "wrong_password"  # no password to prove
        await client.post("/auth/password-reset/request", json={"email": provider.user["email"]})
        [mail] = await messages_of(receiver, "password_reset")
        r = await client.post(
            "/auth/password-reset/confirm", json={"token": token_of(mail["link"]), "new_password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        assert claims((await login(client, provider.user["email"]))["access_token"])["amr"] == ["pwd"]
        assert (await fed_sign_in(client)).status_code == 200  # the identity still signs in too


async def test_attack_removing_the_last_passkey_of_a_passwordless_account_is_refused(
    make_settings: Any, provider: OidcProvider, receiver: "Receiver"
) -> None:
    async with running(fed_settings(make_settings, provider, webhook_url=receiver.url)) as client:
        access = (await fed_sign_in(client)).json()["access_token"]
        headers, key = bearer(access), SoftAuthenticator()
        r = await client.post("/mfa/passkeys/options", headers=headers, json={"password": PASSWORD})
        assert r.status_code == 401 and error_code(r) == "factor_proof_required"  # no password: a mailed code
        wrong = await client.post("/mfa/passkeys/options", headers=headers, json={"email_code": "12345678"})
        assert wrong.status_code == 401 and error_code(wrong) == "invalid_otp"
        proof = await email_code_proof(client, access, receiver)
        assert (await add_passkey(client, access, key, proof=proof)).status_code == 201
        [identity] = (await client.get("/users/me/identities", headers=headers)).json()
        r = await client.request("DELETE", f"/users/me/identities/{identity['id']}", headers=headers)
        assert r.status_code == 204  # the passkey is still a way in
        [passkey] = (await client.get("/mfa/passkeys", headers=headers)).json()
        r = await client.request(
            "DELETE", f"/mfa/passkeys/{passkey['id']}", headers=headers, json=await passkey_proof(client, access, key)
        )
        assert r.status_code == 409 and error_code(r) == "last_sign_in_method"
        r = await client.request(
            "DELETE", f"/mfa/passkeys/{uuid.uuid4()}", headers=headers, json=await passkey_proof(client, access, key)
        )
        assert r.status_code == 404 and error_code(r) == "passkey_not_found"
        assert len((await client.get("/mfa/passkeys", headers=headers)).json()) == 1


async def test_federated_sign_in_asks_for_the_second_factor(
    make_settings: Any, provider: OidcProvider, receiver: "Receiver"
) -> None:
    async with running(fed_settings(make_settings, provider, webhook_url=receiver.url)) as client:
        tokens = (await fed_sign_in(client)).json()
        proof = await email_code_proof(client, tokens["access_token"], receiver)  # no password: a mailed code
        totp, _ = await enroll_totp(client, tokens["access_token"], proof=proof)
        r = await fed_sign_in(client)
        assert r.status_code == 200 and r.json()["mfa_required"] is True and "access_token" not in r.json()
        assert r.json()["methods"] == ["totp", "recovery_code"]
        r = await client.post("/auth/mfa", json={"mfa_token": r.json()["mfa_token"], "code": next_code(totp)})
        assert r.status_code == 200, r.text
        got = claims(r.json()["access_token"])
        assert got["amr"] == ["fed", "otp"] and got["acr"] == "aal2"


async def test_federated_signup_respects_signup_disabled(make_settings: Any, provider: OidcProvider) -> None:
    async with running(fed_settings(make_settings, provider, signup_enabled=False)) as client:
        r = await fed_callback(client)
        assert r.status_code == 403 and error_code(r) == "signup_disabled"


async def test_admin_and_cli_list_and_unlink_identities(make_settings: Any, provider: OidcProvider) -> None:
    settings = fed_settings(make_settings, provider)
    async with running(settings) as client:
        _, admin = await admin_tokens(client, settings)
        user, _ = await verified_user(client)
        provider.user.update(email=user["email"])
        link_token = (await fed_sign_in(client)).json()["error"]["details"][0]["link_token"]
        await client.post("/auth/oauth/link", json={"link_token": link_token, "password": PASSWORD})
        r = await client.get(f"/users/{user['id']}/identities", headers=bearer(admin["access_token"]))
        [identity] = r.json()
        assert identity["provider"] == "acme" and identity["email"] == user["email"]
        result = await run_cli(settings, "identities", user["email"], "--json")
        assert result.exit_code == 0 and json.loads(result.output)[0]["id"] == identity["id"]
        result = await run_cli(settings, "identities", user["email"])
        assert identity["id"] in result.output and "acme" in result.output
        result = await run_cli(settings, "unlink-identity", user["email"], str(uuid.uuid4()))
        assert result.exit_code == 1 and "No such linked identity." in result.output
        result = await run_cli(settings, "unlink-identity", user["email"], identity["id"])
        assert result.exit_code == 0, result.output
        assert (await client.get(f"/users/{user['id']}/identities", headers=bearer(admin["access_token"]))).json() == []
        link_token = (await fed_sign_in(client)).json()["error"]["details"][0]["link_token"]  # links again
        await client.post("/auth/oauth/link", json={"link_token": link_token, "password": PASSWORD})
        r = await client.get(f"/users/{user['id']}/identities", headers=bearer(admin["access_token"]))
        [identity] = r.json()
        path = f"/users/{user['id']}/identities/{identity['id']}"
        assert (await client.delete(path, headers=bearer(admin["access_token"]))).status_code == 204
        r = await client.delete(path, headers=bearer(admin["access_token"]))
        assert r.status_code == 404 and error_code(r) == "identity_not_found"
        _, other = await new_user(client)
        r = await client.get(f"/users/{user['id']}/identities", headers=bearer(other["access_token"]))
        assert r.status_code == 403
        r = await client.delete(
            f"/users/{user['id']}/identities/{identity['id']}", headers=bearer(other["access_token"])
        )
        assert r.status_code == 403
        assert [
            json.loads(row.detail)["provider"] for row in await audit_rows(client.gatehouse, "identity.unlinked")
        ] == ["acme", "acme"]


def test_provider_settings_are_checked_and_secrets_never_shown() -> None:
    base = {"secret_key": SECRET, "database_url": "sqlite+aiosqlite:///:memory:"}
    acme = '{"acme": {"issuer": "https://id.example.com", "client_id": "c", "client_secret": "s3cret-value"}}'
    settings = Settings(**base, oidc_providers=acme, github_client_id="gh", github_client_secret="gh-s3cret")
    shown = service.describe_settings(settings)
    assert shown["OIDC_PROVIDERS"] == "acme=https://id.example.com" and shown["GITHUB_CLIENT_SECRET"] == "********"
    assert "s3cret" not in json.dumps(shown) and "s3cret" not in repr(service.configured_providers(settings))
    for bad in (
        '{"github": {"issuer": "https://x", "client_id": "c"}}',
        '{"Bad Name": {"issuer": "https://x", "client_id": "c"}}',
        '{"x": {"issuer": "ftp://x", "client_id": "c"}}',
    ):
        with pytest.raises(ValueError):
            Settings(**base, oidc_providers=bad)
    with pytest.raises(ValueError):
        Settings(**base, oauth_redirect_allowlist="https://app.example.com/#frag")


class RecordedGitHub:
    """GitHub's OAuth web flow and REST API on loopback, answering with the documented example responses
    (docs.github.com: "Authorizing OAuth apps", "Get the authenticated user", "List email addresses")."""

    USER = {  # GET /user, as documented (trimmed to the fields a client reads)
        "login": "octocat",
        "id": 1,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": "https://github.com/images/error/octocat_happy.gif",
        "type": "User",
        "site_admin": False,
        "name": "monalisa octocat",
        "company": "GitHub",
        "email": "octocat@github.com",
        "created_at": "2008-01-14T04:33:35Z",
    }
    EMAILS = [{"email": "octocat@github.com", "verified": True, "primary": True, "visibility": "public"}]

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id, self.client_secret = client_id, client_secret
        self.emails = [dict(e) for e in self.EMAILS]
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens: set[str] = set()
        self.server: Any = None

    def app(self) -> Any:
        from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, RedirectResponse
        from starlette.routing import Route

        async def authorize(request: Any) -> Any:
            params = dict(request.query_params)
            if params.get("client_id") != self.client_id or params.get("code_challenge_method") != "S256":
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            code = secrets.token_hex(10)
            self.codes[code] = params
            return RedirectResponse(f"{params['redirect_uri']}?code={code}&state={params['state']}", status_code=302)

        async def access_token(request: Any) -> Any:
            import base64

            form = dict(await request.form())
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            grant = self.codes.pop(form.get("code", ""), None)
            if request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "incorrect_client_credentials"})
            if grant is None or not compare_s256_code_challenge(form.get("code_verifier", ""), grant["code_challenge"]):
                # GitHub answers 200 with an error object for a bad code
                return JSONResponse(
                    {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
                )
            token = "gho_16C7e42F292c6912E7710c838347Ae178B4a"
            self.tokens.add(token)
            return JSONResponse({"access_token": token, "scope": "read:user,user:email", "token_type": "bearer"})

        def authorized(request: Any) -> bool:
            return request.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens

        async def user(request: Any) -> Any:
            if not authorized(request):
                return JSONResponse({"message": "Requires authentication"}, status_code=401)
            return JSONResponse(self.USER)

        async def emails(request: Any) -> Any:
            if not authorized(request):
                return JSONResponse({"message": "Requires authentication"}, status_code=401)
            return JSONResponse(self.emails)

        return Starlette(
            routes=[
                Route("/login/oauth/authorize", authorize),
                Route("/login/oauth/access_token", access_token, methods=["POST"]),
                Route("/api/user", user),
                Route("/api/user/emails", emails),
            ]
        )

    start = OidcProvider.start
    stop = OidcProvider.stop


@pytest.fixture
def github() -> Any:
    server = RecordedGitHub("Iv1.8a61f9b3a7aba766", "github-secret")
    server.start()
    yield server
    server.stop()


def github_settings(make_settings: Any, github: RecordedGitHub, **extra: Any) -> Settings:
    return make_settings(
        github_client_id=github.client_id,
        github_client_secret=github.client_secret,
        github_url=github.url,
        github_api_url=f"{github.url}/api",
        oauth_redirect_allowlist=[APP_URL],
        **extra,
    )


async def test_github_preset_against_its_documented_responses(make_settings: Any, github: RecordedGitHub) -> None:
    async with running(github_settings(make_settings, github)) as client:
        r = await client.get("/auth/oauth/github/authorize")
        sent = query_of(r.headers["location"])
        assert r.headers["location"].startswith(f"{github.url}/login/oauth/authorize?")
        assert sent["scope"] == "read:user user:email" and sent["code_challenge_method"] == "S256"
        assert sent["redirect_uri"] == "http://localhost:8000/auth/oauth/github/callback" and "nonce" not in sent
        r = await fed_sign_in(client, "github")
        assert r.status_code == 200, r.text
        assert claims(r.json()["access_token"])["amr"] == ["fed"]
        me = (await client.get("/users/me", headers=bearer(r.json()["access_token"]))).json()
        assert me["email"] == "octocat@github.com" and me["full_name"] == "monalisa octocat"
        [identity] = await identities_of(client.gatehouse, me["email"])
        assert identity.provider == "github" and identity.subject == "1"


async def test_github_unverified_primary_address_never_creates_or_links(
    make_settings: Any, github: RecordedGitHub
) -> None:
    github.emails = [
        {"email": "octocat@github.com", "verified": False, "primary": True, "visibility": "public"},
        {"email": "other@example.com", "verified": True, "primary": False, "visibility": None},
    ]
    async with running(github_settings(make_settings, github)) as client:
        r = await fed_callback(client, "github")
        assert r.status_code == 403 and error_code(r) == "provider_email_unverified"


async def test_github_refused_code_is_provider_rejected(make_settings: Any, github: RecordedGitHub) -> None:
    from urllib.parse import urlsplit

    async with running(github_settings(make_settings, github)) as client:
        r = await client.get("/auth/oauth/github/authorize")
        back = urlsplit((await at_provider(r.headers["location"])).headers["location"])
        r = await client.get(back.path, params={"code": "not-a-code", "state": query_of(back.geturl())["state"]})
        assert r.status_code == 401 and error_code(r) == "provider_rejected"
        assert "bad_verification_code" in r.json()["error"]["message"]


# Google's discovery document as published at https://accounts.google.com/.well-known/openid-configuration,
# with its endpoints moved to the loopback provider.
GOOGLE_DISCOVERY = {
    "device_authorization_endpoint": "https://oauth2.googleapis.com/device/code",
    "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
    "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
    "response_types_supported": [
        "code",
        "token",
        "id_token",
        "code token",
        "code id_token",
        "token id_token",
        "code token id_token",
        "none",
    ],
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "scopes_supported": ["openid", "email", "profile"],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    "claims_supported": [
        "aud",
        "email",
        "email_verified",
        "exp",
        "family_name",
        "given_name",
        "iat",
        "iss",
        "name",
        "picture",
        "sub",
    ],
    "code_challenge_methods_supported": ["plain", "S256"],
    "grant_types_supported": [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],
}


async def test_google_preset_is_openid_connect_with_googles_claims(make_settings: Any, provider: OidcProvider) -> None:
    provider.discovery = GOOGLE_DISCOVERY
    provider.redirect_uris = {"http://localhost:8000/auth/oauth/google/callback"}
    provider.user = {  # the claims of a Google ID token, as documented
        "sub": "110169484474386276334",
        "azp": provider.client_id,
        "email": "ada.lovelace@gmail.com",
        "email_verified": True,
        "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "picture": "https://lh3.googleusercontent.com/a/photo.jpg",
    }
    settings = make_settings(
        google_client_id=provider.client_id,
        google_client_secret=provider.client_secret,
        google_issuer=provider.issuer,
        oauth_redirect_allowlist=[APP_URL],
    )
    async with running(settings) as client:
        assert (await client.get("/auth/oauth/providers")).json() == {"providers": ["google"]}
        r = await client.get("/auth/oauth/google/authorize")
        assert query_of(r.headers["location"])["scope"] == "openid email profile"
        r = await fed_sign_in(client, "google")
        assert r.status_code == 200, r.text
        [identity] = await identities_of(client.gatehouse, "ada.lovelace@gmail.com")
        assert identity.provider == "google" and identity.subject == "110169484474386276334"


@pytest.mark.live
@pytest.mark.browser
@pytest.mark.parametrize("backend", ["sqlite"])
def test_browser_signs_in_through_the_provider(make_settings: Any, provider: OidcProvider, tmp_path: Any) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    port = _free_port()
    front_end = f"{provider.url}/app"
    settings = make_settings(
        public_url=f"http://127.0.0.1:{port}",
        oidc_providers={
            "acme": {
                "issuer": provider.issuer,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
            }
        },
        oauth_redirect_allowlist=[front_end],
    )
    provider.redirect_uris = {f"http://127.0.0.1:{port}/auth/oauth/acme/callback"}
    provider.form = True
    server = Server(settings, log_path=tmp_path / "server.log", port=port).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{server.url}/auth/oauth/acme/authorize?redirect_to={front_end}")
            assert page.url.startswith(f"{provider.url}/authorize?")
            page.click("#approve")
            page.wait_for_selector("#landed")
            landed = page.url
            cookies = {c["name"] for c in page.context.cookies(f"{server.url}/auth/oauth/acme/callback")}
            browser.close()
        assert landed.startswith(f"{front_end}?code=") and "token" not in landed
        assert service.OAUTH_FLOW_COOKIE not in cookies  # the callback spent and cleared the flow
        with httpx.Client(base_url=server.url, timeout=10) as http:
            r = http.post("/auth/oauth/exchange", json={"code": query_of(landed)["code"]})
            assert r.status_code == 200, r.text
            me = http.get("/users/me", headers=bearer(r.json()["access_token"]))
            assert me.status_code == 200 and me.json()["email"] == provider.user["email"]
            assert claims(r.json()["access_token"])["amr"] == ["fed"]
    finally:
        server.stop()


async def test_attack_pre_registered_account_keeps_nothing_once_the_owner_links_by_mail(
    make_settings: Any, provider: OidcProvider, receiver: Any
) -> None:
    async with running(fed_settings(make_settings, provider, webhook_url=receiver.url)) as client:
        # The attacker registers the victim's address (never verified) and sets up every way back in.
        squatter = await register(client, f"victim-{secrets.token_hex(4)}@example.com")
        email = squatter["email"]
        tokens = await login(client, email)
        key = (await make_key(client, tokens["access_token"]))["key"]
        await enroll_totp(client, tokens["access_token"])
        await client.post("/auth/password-reset/request", json={"email": email})
        await messages_of(receiver, "password_reset")
        # The owner of the mailbox signs in with the provider, which vouches for the address.
        provider.user.update(email=email, email_verified=True)
        r = await fed_sign_in(client)
        assert r.status_code == 409 and error_code(r) == "link_required"
        link_token = r.json()["error"]["details"][0]["link_token"]
        assert (await client.post("/auth/oauth/link/mail", json={"link_token": link_token})).status_code == 202
        [mail] = await messages_of(receiver, "identity_link")
        r = await client.post("/confirm-identity-link", data={"token": token_of(mail["link"])})
        assert r.status_code == 200 and "linked" in r.text
        # Nothing the pre-registrant set up still works.
        r = await client.get("/users/me", headers=bearer(tokens["access_token"]))
        assert r.status_code == 401
        r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401
        r = await client.get("/users/me", headers=bearer(key))
        assert r.status_code == 401 and error_code(r) == "invalid_api_key"
        r = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 401 and error_code(r) == "invalid_credentials"
        row = await user_row(client.gatehouse, email)
        assert row.password_hash == "" and row.email_verified_at is not None
        async with client.gatehouse.transaction() as db:
            for model in (service.TotpFactor, service.RecoveryCode, service.Passkey):
                assert await db.scalar(sa.select(sa.func.count()).select_from(model)) == 0, model
            live = sa.select(sa.func.count()).where(service.ActionToken.used_at.is_(None))
            assert await db.scalar(live) == 0  # the reset link the pre-registrant asked for is spent too
        # The owner signs in with the provider alone: no second factor of the attacker's stands in the way.
        r = await fed_sign_in(client)
        assert r.status_code == 200, r.text
        got = claims(r.json()["access_token"])
        assert got["sub"] == squatter["id"] and got["amr"] == ["fed"]
        [ended] = await audit_rows(client.gatehouse, "user.unverified_access_ended")
        assert json.loads(ended.detail) == {
            "factors_removed": 11,
            "identities_removed": 0,
            "keys_revoked": 1,
            "password_removed": True,
        }
        [linked] = await audit_rows(client.gatehouse, "identity.linked")
        assert json.loads(linked.detail)["how"] == "mail"


async def test_attack_password_link_to_an_unverified_account_is_refused(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        squatter = await register(client)  # its password proves who set it, not who owns the address
        provider.user.update(email=squatter["email"], email_verified=True)
        link_token = (await fed_sign_in(client)).json()["error"]["details"][0]["link_token"]
        r = await client.post("/auth/oauth/link", json={"link_token": link_token, "password": PASSWORD})
        assert r.status_code == 403 and error_code(r) == "mail_link_required", r.text
        assert "access_token" not in r.text
        assert await identities_of(client.gatehouse, squatter["email"]) == []
        assert (await user_row(client.gatehouse, squatter["email"])).email_verified_at is None
        [refused] = await audit_rows(client.gatehouse, "identity.link", "failure")
        assert json.loads(refused.detail) == {"reason": "address_unverified"}
        r = await client.post("/auth/oauth/link/mail", json={"link_token": link_token})
        assert r.status_code == 202  # the link token still serves the way that proves the mailbox


async def test_attack_login_csrf_through_redirect_to_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    # The refused targets (a query already holding `code` or `linked`) are in the open-redirect table above.
    async with running(fed_settings(make_settings, provider)) as client:
        r = await fed_callback(client, redirect_to="https://app.example.com/cb?next=%2Fhome")
        assert r.status_code == 303 and list(query_of(r.headers["location"])) == ["next", "code"]


async def test_attack_provider_name_that_cannot_be_stored_is_cleaned(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        for name, kept in [("Ada\ud800 Lovelace", "Ada Lovelace"), ("Ada\x00 Lovelace", "Ada Lovelace")]:
            provider.user.update(sub=f"sub-{secrets.token_hex(4)}", email=f"fed-{secrets.token_hex(4)}@example.com")
            provider.user["name"] = name
            r = await fed_sign_in(client)
            assert r.status_code == 200, r.text
            me = (await client.get("/users/me", headers=bearer(r.json()["access_token"]))).json()
            assert me["full_name"] == kept


async def test_attack_provider_subject_that_cannot_be_stored_whole_is_refused(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        long = "s" * 255  # OpenID Connect caps `sub` at 255 ASCII characters; cutting would merge two people
        for subject in ["bad\ud800sub", "bad\x00sub", long + "A", long + "B"]:
            provider.user.update(sub=subject, email=f"fed-{secrets.token_hex(4)}@example.com")
            r = await fed_callback(client)
            assert r.status_code == 401 and error_code(r) == "provider_rejected", (subject[-8:], r.text)
        async with client.gatehouse.transaction() as db:
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.User)) == 0
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.Identity)) == 0
        provider.user.update(sub=long, email=f"fed-{secrets.token_hex(4)}@example.com")  # 255 is fine
        assert (await fed_sign_in(client)).status_code == 200


async def test_email_from_userinfo_when_the_id_token_has_none(make_settings: Any, provider: OidcProvider) -> None:
    provider.userinfo_only = True
    async with running(fed_settings(make_settings, provider)) as client:
        r = await fed_sign_in(client)
        assert r.status_code == 200, r.text
        me = (await client.get("/users/me", headers=bearer(r.json()["access_token"]))).json()
        assert me["email"] == provider.user["email"] and me["full_name"] == "Fed User"
        assert me["email_verified_at"] is not None
        provider.user.update(sub=f"sub-{secrets.token_hex(4)}", email_verified=False)  # UserInfo does not vouch
        r = await fed_callback(client)
        assert r.status_code == 403 and error_code(r) == "provider_email_unverified"


async def test_attack_userinfo_for_another_subject_is_refused(make_settings: Any, provider: OidcProvider) -> None:
    provider.userinfo_only = True
    provider.misbehave.add("userinfo_other_sub")
    async with running(fed_settings(make_settings, provider)) as client:
        r = await fed_callback(client)
        assert r.status_code == 401 and error_code(r) == "provider_rejected", r.text
        assert "another subject" in r.json()["error"]["message"]
        async with client.gatehouse.transaction() as db:
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.User)) == 0


async def link_from_inside(
    client: httpx.AsyncClient, access: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    """Start linking the provider from inside the account, pass the provider, and come back: the callback's answer."""
    from urllib.parse import urlsplit

    body = {"provider": "acme", **(body or {"password": PASSWORD})}
    r = await client.post("/users/me/identities", headers=bearer(access), json=body)
    assert r.status_code == 200, r.text
    back = await at_provider(r.json()["authorization_url"])
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["location"])
    return await client.get(f"{target.path}?{target.query}")


async def test_a_signed_in_person_links_a_provider_from_inside_the_account(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        user, tokens = await verified_user(client)  # the provider knows this person by another address
        r = await client.post(
            "/users/me/identities",
            headers=bearer(tokens["access_token"]),
            json={"provider": "acme", "password": PASSWORD, "redirect_to": "https://app.example.com/settings"},
        )
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert "Path=/auth/oauth/acme/callback" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        sent = query_of(r.json()["authorization_url"])
        assert sent["code_challenge_method"] == "S256" and sent["redirect_uri"] == FED_CALLBACK
        from urllib.parse import urlsplit

        back = urlsplit((await at_provider(r.json()["authorization_url"])).headers["location"])
        r = await client.get(f"{back.path}?{back.query}")
        assert r.status_code == 303 and r.headers["location"] == "https://app.example.com/settings?linked=acme"
        [identity] = (await client.get("/users/me/identities", headers=bearer(tokens["access_token"]))).json()
        assert identity["provider"] == "acme" and identity["email"] == provider.user["email"]
        r = await fed_sign_in(client)  # from now on the provider signs in to this account
        assert r.status_code == 200 and claims(r.json()["access_token"])["sub"] == user["id"]
        [linked] = await audit_rows(client.gatehouse, "identity.linked")
        assert json.loads(linked.detail) == {"how": "account", "identity": identity["id"], "provider": "acme"}
        r = await link_from_inside(client, tokens["access_token"])  # the same identity again: nothing changes
        assert r.status_code == 303 and len(await identities_of(client.gatehouse, user["email"])) == 1


async def test_attack_linking_from_inside_needs_a_proof_in_the_request(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        _, tokens = await verified_user(client)  # signed in a moment ago: still not enough for this
        headers = bearer(tokens["access_token"])
        for body in ({"provider": "acme"}, {"provider": "acme", "redirect_to": APP_URL}):
            r = await client.post("/users/me/identities", headers=headers, json=body)
            assert r.status_code == 401 and error_code(r) == "factor_proof_required"
            assert "set-cookie" not in r.headers
        r = await client.post(
            "/users/me/identities", headers=headers, json={"provider": "acme", "password": "bad pass!"}
        )
        assert r.status_code == 400 and error_code(r) == "wrong_password"
        key = (await make_key(client, tokens["access_token"], scopes=["users:read", "users:write"]))["key"]
        r = await client.post(
            "/users/me/identities", headers=bearer(key), json={"provider": "acme", "password": PASSWORD}
        )
        assert r.status_code == 403 and error_code(r) == "session_required"
        _, squatter = await new_user(client)  # an unverified address: a link would outlive its owner's reset
        r = await client.post(
            "/users/me/identities",
            headers=bearer(squatter["access_token"]),
            json={"provider": "acme", "password": PASSWORD},
        )
        assert r.status_code == 403 and error_code(r) == "email_not_verified"
        async with client.gatehouse.transaction() as db:
            assert await db.scalar(sa.select(sa.func.count()).select_from(service.Identity)) == 0


async def test_attack_linking_an_identity_of_another_account_from_inside_is_refused(
    make_settings: Any, provider: OidcProvider
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:
        owner = claims((await fed_sign_in(client)).json()["access_token"])["sub"]
        _, tokens = await verified_user(client)
        r = await link_from_inside(client, tokens["access_token"])
        assert r.status_code == 409 and error_code(r) == "identity_in_use", r.text
        assert (await client.get("/users/me/identities", headers=bearer(tokens["access_token"]))).json() == []
        r = await fed_sign_in(client)
        assert r.status_code == 200 and claims(r.json()["access_token"])["sub"] == owner


@pytest.mark.parametrize(
    "target",
    [
        "https://app.example.com.evil.test/signed-in",
        "https://app.example.comevil.test/",
        "https://app.example.com-evil.test/",
        "https://app.example.com:8443/signed-in",
        "http://app.example.com/signed-in",
    ],
)
async def test_attack_look_alike_of_an_allowed_origin_is_refused_as_redirect_to(
    make_settings: Any, provider: OidcProvider, target: str
) -> None:
    async with running(fed_settings(make_settings, provider)) as client:  # lists the origin https://app.example.com
        r = await client.get("/auth/oauth/acme/authorize", params={"redirect_to": target})
        assert r.status_code == 400 and error_code(r) == "redirect_not_allowed", target
        assert "set-cookie" not in r.headers


# Retention and search at scale ###############################################


def _days_ago(days: float) -> datetime:
    return service.utcnow() - timedelta(days=days)


async def _seed_retention_rows(gh: service.Gatehouse, user_id: uuid.UUID) -> dict[str, set[uuid.UUID]]:
    """Rows on each side of every retention rule (defaults: 7 days after the end, audit 365 days)."""
    tables = ("sessions", "action_tokens", "identities", "audit_events")
    kept: dict[str, set[uuid.UUID]] = {table: set() for table in tables}
    gone: dict[str, set[uuid.UUID]] = {table: set() for table in tables}

    def session(expires: float, revoked: float | None = None) -> service.LoginSession:
        return service.LoginSession(
            id=uuid.uuid4(),
            user_id=user_id,
            created_at=_days_ago(60),
            refreshed_at=_days_ago(60),
            expires_at=_days_ago(expires),
            revoked_at=None if revoked is None else _days_ago(revoked),
        )

    def token(expires: float, used: float | None = None) -> service.ActionToken:
        return service.ActionToken(
            id=uuid.uuid4(),
            user_id=user_id,
            purpose="reset",
            token_hash=secrets.token_hex(32),
            email="x@example.com",
            created_at=_days_ago(30),
            expires_at=_days_ago(expires),
            used_at=None if used is None else _days_ago(used),
        )

    def audit(age: float) -> service.AuditEvent:
        return service.AuditEvent(id=uuid.uuid4(), at=_days_ago(age), event="auth.login")

    def identity(seen: float, linked: bool) -> service.Identity:
        return service.Identity(
            id=uuid.uuid4(),
            user_id=user_id,
            provider="acme",
            subject=secrets.token_hex(8),
            email="x@example.com",
            created_at=_days_ago(seen),
            linked_at=_days_ago(seen) if linked else None,
        )

    rows = {
        "sessions": (
            [session(8), session(-20, revoked=8), session(30, revoked=40)],  # gone
            [session(6), session(-20), session(-20, revoked=6)],  # within the grace period, or live
        ),
        "action_tokens": (
            [token(8), token(7.5, used=20), token(0.01, used=8)],  # spent or expired over 7 days ago
            [token(6), token(-1), token(-1, used=20)],  # a spent token outlives its expiry
        ),
        "identities": ([identity(8, linked=False)], [identity(6, linked=False), identity(100, linked=True)]),
        "audit_events": ([audit(366), audit(1000)], [audit(364), audit(0)]),
    }
    async with gh.transaction(write=True) as db:
        for table, (old, new) in rows.items():
            db.add_all(old + new)
            gone[table] = {r.id for r in old}
            kept[table] = {r.id for r in new}
    return {**{f"gone:{t}": ids for t, ids in gone.items()}, **{f"kept:{t}": ids for t, ids in kept.items()}}


async def _ids(gh: service.Gatehouse, model: Any) -> set[uuid.UUID]:
    async with gh.transaction() as db:
        return set(await db.scalars(sa.select(model.id)))


async def test_purge_removes_exactly_the_rows_past_retention(client: httpx.AsyncClient) -> None:
    gh = client.gatehouse
    user, tokens = await new_user(client)
    live = claims(tokens["access_token"])["sid"]
    seeded = await _seed_retention_rows(gh, uuid.UUID(user["id"]))
    models = {
        "sessions": service.LoginSession,
        "action_tokens": service.ActionToken,
        "identities": service.Identity,
        "audit_events": service.AuditEvent,
    }
    before = {table: await _ids(gh, model) for table, model in models.items()}
    purged = service.metrics(gh.settings).purged

    dry = await service.purge(gh, dry_run=True)
    assert dry == {"sessions": 3, "action_tokens": 3, "identities": 1, "audit_events": 2}
    assert {table: await _ids(gh, model) for table, model in models.items()} == before  # a dry run removes nothing
    counted = {table: purged.labels(table)._value.get() for table in models}

    assert await service.purge(gh) == dry
    for table, model in models.items():
        assert await _ids(gh, model) == before[table] - seeded[f"gone:{table}"], table
        assert seeded[f"kept:{table}"] <= await _ids(gh, model)
        assert purged.labels(table)._value.get() == counted[table] + dry[table]
    assert uuid.UUID(live) in await _ids(gh, service.LoginSession)
    assert (await client.get("/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
    assert await service.purge(gh) == {"sessions": 0, "action_tokens": 0, "identities": 0, "audit_events": 0}


async def test_audit_retention_zero_keeps_every_event(make_settings: Any) -> None:
    async with running(make_settings(audit_retention_days=0, session_retention_days=0)) as client:
        user, _ = await new_user(client)
        seeded = await _seed_retention_rows(client.gatehouse, uuid.UUID(user["id"]))
        counts = await service.purge(client.gatehouse)
        assert counts["audit_events"] == 0 and counts["sessions"] >= 3
        assert seeded["gone:audit_events"] | seeded["kept:audit_events"] <= await _ids(
            client.gatehouse, service.AuditEvent
        )


async def test_background_purge_runs_by_itself(make_settings: Any) -> None:
    async with running(make_settings(purge_interval_seconds=0.1)) as client:
        user, _ = await new_user(client)
        seeded = await _seed_retention_rows(client.gatehouse, uuid.UUID(user["id"]))

        async def purged() -> bool:
            return not seeded["gone:sessions"] & await _ids(client.gatehouse, service.LoginSession)

        await _until(purged, "the background purge removed the expired sessions")
        assert seeded["kept:sessions"] <= await _ids(client.gatehouse, service.LoginSession)


async def _age_session(gh: service.Gatehouse, session_id: str, *, days: float, revoke: bool = False) -> None:
    async with gh.transaction(write=True) as db:
        row = await db.get(service.LoginSession, uuid.UUID(session_id))
        assert row is not None
        if revoke:
            row.revoked_at = _days_ago(days)
        else:
            row.expires_at = _days_ago(days)


async def test_attack_replayed_refresh_token_after_purge(make_settings: Any) -> None:
    async with running(make_settings(refresh_grace_seconds=0)) as client:
        gh = client.gatehouse
        user, first = await new_user(client)
        r = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200
        newest = r.json()
        await client.post("/auth/logout", headers=bearer(newest["access_token"]))
        expired = await login(client, user["email"])
        live = await login(client, user["email"])
        rotated = (await client.post("/auth/refresh", json={"refresh_token": live["refresh_token"]})).json()
        await _age_session(gh, claims(first["access_token"])["sid"], days=8, revoke=True)
        await _age_session(gh, claims(expired["access_token"])["sid"], days=8)
        assert (await service.purge(gh))["sessions"] == 2
        # Every generation of a purged session is refused, as it was before the purge.
        for stolen in (first["refresh_token"], newest["refresh_token"], expired["refresh_token"]):
            r = await client.post("/auth/refresh", json={"refresh_token": stolen})
            assert r.status_code == 401 and error_code(r) == "session_revoked"
        # A live session kept its row, so replaying its older generation is still caught as reuse.
        r = await client.post("/auth/refresh", json={"refresh_token": live["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "refresh_token_reused"
        r = await client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
        assert r.status_code == 401 and error_code(r) == "session_revoked"


async def test_cli_purge_prints_counts_and_audit_export_writes_json_lines(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Any
) -> None:
    gh = client.gatehouse
    user, _ = await new_user(client)
    seeded = await _seed_retention_rows(gh, uuid.UUID(user["id"]))
    await gh.flush_audit()
    cut = _days_ago(365)
    async with gh.transaction() as db:
        before_cut = list(
            await db.scalars(
                sa.select(service.AuditEvent.id)
                .where(service.AuditEvent.at < sa.literal(cut, service.UTCDateTime()))
                .order_by(service.AuditEvent.at, service.AuditEvent.id)
            )
        )
    assert set(before_cut) == seeded["gone:audit_events"]

    out = tmp_path / "audit.jsonl"
    result = await run_cli(settings, "audit", "--export", str(out), "--until", cut.strftime("%Y-%m-%dT%H:%M:%S%z"))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [uuid.UUID(line["id"]) for line in lines] == before_cut  # oldest first, exactly those
    assert {line["event"] for line in lines} == {
        "auth.login"
    } and f"exported {len(lines)} audit events" in result.output

    result = await run_cli(settings, "audit", "--export", str(out), "--event", "auth.login")
    assert result.exit_code == 1 and "--export takes only --until" in result.output

    result = await run_cli(settings, "purge", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "sessions       would remove 3",
        "action_tokens  would remove 3",
        "identities     would remove 1",
        "audit_events   would remove 2",
    ]
    result = await run_cli(settings, "purge")
    assert result.exit_code == 0 and "sessions       removed 3" in result.output
    result = await run_cli(settings, "purge", "--json")
    assert json.loads(result.output) == {"sessions": 0, "action_tokens": 0, "identities": 0, "audit_events": 0}


async def test_admin_email_search_kinds_say_which_match_ran(client: httpx.AsyncClient, settings: Settings) -> None:
    admin_user, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    for email in ("ann@example.com", "anna@example.com", "bob.ann@example.com", "a_n%n@example.com", "annx@test.org"):
        await register(client, email)

    async def search(email: str, match: str | None = None, **extra: Any) -> tuple[list[str], Any]:
        params = {"email": email, **({"match": match} if match else {}), **extra}
        r = await client.get("/users", headers=auth, params=params)
        assert r.status_code == 200, r.text
        return [u["email"] for u in r.json()["items"]], r.json()["match"]

    assert await search("Ann@Example.com", "exact") == (["ann@example.com"], "exact")
    assert await search("ann@", "exact") == ([], "exact")
    assert await search("ANN", "prefix") == (["ann@example.com", "anna@example.com", "annx@test.org"], "prefix")
    assert await search("ann", "contains") == (
        ["ann@example.com", "anna@example.com", "bob.ann@example.com", "annx@test.org"],
        "contains",
    )
    assert (await search("ann"))[1] == "contains"  # the default, as before
    # LIKE wildcards in a search are literal characters, in every kind
    assert await search("a_n%", "prefix") == (["a_n%n@example.com"], "prefix")
    assert await search("_n%n", "contains") == (["a_n%n@example.com"], "contains")
    assert await search("a_n", "prefix") == (["a_n%n@example.com"], "prefix")
    assert await search("%", "exact") == ([], "exact")
    # filters combine, and cursors page through the matches
    await service.update_user(
        client.gatehouse, user_id=(await user_row(client.gatehouse, "anna@example.com")).id, role="admin"
    )
    assert await search("ann", "prefix", role="admin") == (["anna@example.com"], "prefix")
    seen, cursor = [], None
    while True:
        r = await client.get(
            "/users",
            headers=auth,
            params={"email": "example.com", "limit": 2, **({"cursor": cursor} if cursor else {})},
        )
        seen += [u["email"] for u in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        admin_user["email"],
        "ann@example.com",
        "anna@example.com",
        "bob.ann@example.com",
        "a_n%n@example.com",
    ]
    r = await client.get("/users", headers=auth)
    assert r.json()["match"] is None
    r = await client.get("/users", headers=auth, params={"email": "a", "match": "fuzzy"})
    assert r.status_code == 422


async def test_substring_search_without_an_index_scans_bounded_windows(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    emails = [f"w{i}-{'hit' if i % 3 == 0 else 'miss'}@example.com" for i in range(9)]
    for email in emails:
        await register(client, email)
    monkeypatch.setattr(service, "CONTAINS_SCAN_ROWS", 4)
    client.gatehouse.trigram_search = False  # as on SQLite, or PostgreSQL without pg_trgm
    pages, cursor = [], None
    while True:
        params = {"email": "hit", "limit": 50, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/users", headers=auth, params=params)).json()
        pages.append([u["email"] for u in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # ten users (admin first), windows of four: each page saw at most four users
    assert pages == [["w0-hit@example.com"], ["w3-hit@example.com", "w6-hit@example.com"], []]


async def test_migration_7_makes_the_filter_indexes_and_the_filters_use_them(client: httpx.AsyncClient) -> None:
    gh = client.gatehouse
    pg = gh.engine.dialect.name == "postgresql"
    actor = uuid.UUID(int=1) if pg else uuid.UUID(int=1).hex
    queries = {
        "ix_users_role_created_at_id": "SELECT id FROM users WHERE role = 'admin' ORDER BY created_at, id LIMIT 51",
        "ix_users_is_active_created_at_id": (
            "SELECT id FROM users WHERE is_active = false ORDER BY created_at, id LIMIT 51"
        ),
        "ix_audit_events_event_at_id": (
            "SELECT id FROM audit_events WHERE event = 'user.delete' ORDER BY at DESC, id DESC LIMIT 51"
        ),
        "ix_audit_events_actor_id_at_id": (
            f"SELECT id FROM audit_events WHERE actor_id = '{actor}' ORDER BY at DESC, id DESC LIMIT 51"
        ),
        "ix_sessions_user_id_created_at_id": (
            f"SELECT id FROM sessions WHERE user_id = '{actor}' ORDER BY created_at DESC, id DESC LIMIT 200"
        ),
    }
    async with gh.engine.connect() as conn:
        if pg:
            indexes = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            names = set(await conn.scalars(sa.text(indexes)))
            assert {"ix_users_email_pattern", "ix_users_email_trgm", *queries} <= names
            await conn.execute(sa.text("SET enable_seqscan = off"))  # tiny tables: which index would it use
            plans = {
                **queries,
                "ix_users_email_pattern": "SELECT id FROM users WHERE email LIKE 'ann%'",
                "ix_users_email_trgm": "SELECT id FROM users WHERE email LIKE '%nna%'",
            }
            for index, query in plans.items():
                plan = "\n".join(await conn.scalars(sa.text("EXPLAIN " + query)))
                assert index in plan, plan
        else:
            names = set(await conn.scalars(sa.text("SELECT name FROM sqlite_master WHERE type = 'index'")))
            assert set(queries) <= names
            plans = {
                **queries,
                "uq_users_email": "SELECT id FROM users WHERE email >= 'ann' AND email < 'ann\U0010ffff'",
            }
            for index, query in plans.items():
                plan = " ".join(str(row[-1]) for row in await conn.execute(sa.text("EXPLAIN QUERY PLAN " + query)))
                assert index in plan or (index == "uq_users_email" and "autoindex_users" in plan), plan
    status = await service.migration_status(gh.engine)
    assert status.drift == [] and 7 in [v for v, _, _ in status.applied]


async def test_audit_user_filter_pages_through_subject_and_actor_events(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin_user, admin = await admin_tokens(client, settings)
    auth = bearer(admin["access_token"])
    target, _ = await new_user(client)
    for name in ("a", "b", "c"):  # the admin acts on the target: the target is the subject
        assert (await client.patch(f"/users/{target['id']}", headers=auth, json={"full_name": name})).status_code == 200
    await client.gatehouse.flush_audit()
    everything = (await client.get("/audit", headers=auth, params={"user_id": admin_user["id"], "limit": 200})).json()
    expected = [e["id"] for e in everything["items"]]
    assert everything["next_cursor"] is None and len(expected) >= 5
    assert all(admin_user["id"] in (e["subject_id"], e["actor_id"]) for e in everything["items"])
    seen, cursor = [], None
    while True:
        params = {"user_id": admin_user["id"], "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/audit", headers=auth, params=params)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


@pytest.mark.parametrize("backend", ["postgres"])
async def test_without_pg_trgm_the_migration_says_how_and_substring_search_scans_bounded_windows(
    make_settings: Any, caplog: Any
) -> None:
    url = await new_pg_database()
    role = f"gh_limited_{secrets.token_hex(4)}"
    await _pg_admin(f'CREATE ROLE "{role}" LOGIN')  # no CREATE on the database: no extensions
    await _pg_admin(f'GRANT CREATE ON SCHEMA public TO "{role}"', url)
    limited = service.database_url(url).set(username=role).render_as_string(hide_password=False)
    try:
        with caplog.at_level(logging.WARNING, logger="gatehouse"):
            async with running(make_settings(database_url=limited)) as client:
                gh = client.gatehouse
                async with gh.engine.connect() as conn:
                    names = set(await conn.scalars(sa.text("SELECT indexname FROM pg_indexes")))
                assert "ix_users_email_pattern" in names and "ix_users_email_trgm" not in names
                assert (await service.migration_status(gh.engine)).drift == []
                for email in ("ann@example.com", "bob@example.com", "joanna@example.com"):
                    await register(client, email)
                users, cursor = await service.list_users(gh, email="ann", match="contains")
                assert [u.email for u in users] == ["ann@example.com", "joanna@example.com"] and cursor is None
                assert gh.trigram_search is False
        warning = next(r.getMessage() for r in caplog.records if "pg_trgm" in r.getMessage())
        assert "scans a bounded window of 10000 users" in warning and "CREATE EXTENSION pg_trgm" in warning
    finally:
        await drop_pg_database(url)
        await _pg_admin(f'DROP ROLE IF EXISTS "{role}"')


# The memo of resolved callers ################################################


@pytest.mark.parametrize("backend", ["sqlite"])  # with Redis, a near-cache miss is answered by Redis first
async def test_attack_a_request_after_a_logout_never_joins_a_read_begun_before_it(
    settings: Settings, monkeypatch: Any
) -> None:
    """Concurrent cache misses share one database read, but a read that began before a logout
    saw the session live: a request arriving after the logout must make its own read (401),
    not take that one's answer. The real session read is held open with a gate to widen the race."""
    async with running(settings) as first:
        user, tokens = await new_user(first)
    async with running(settings) as cold:  # a fresh instance: its first request reads the database
        real, read, gate = service._load_session_entry, asyncio.Event(), asyncio.Event()

        async def held(gh: service.Gatehouse, session_id: uuid.UUID) -> Any:
            entry = await real(gh, session_id)  # the session is live as this read sees it
            read.set()
            await gate.wait()
            return entry

        monkeypatch.setattr(service, "_load_session_entry", held)
        early = asyncio.create_task(cold.get("/users/me", headers=bearer(tokens["access_token"])))
        await asyncio.wait_for(read.wait(), 10)
        monkeypatch.setattr(service, "_load_session_entry", real)
        await service.revoke_sessions(cold.gatehouse, user_id=uuid.UUID(user["id"]), reason="logout_all")
        late = asyncio.create_task(cold.get("/users/me", headers=bearer(tokens["access_token"])))
        done, _ = await asyncio.wait({late}, timeout=5)  # it must not be waiting on the held read
        gate.set()
        await early
        assert done and late.result().status_code == 401, "answered from a read begun before the logout"


async def test_attack_a_memoised_caller_is_refused_the_moment_anything_changes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The memo of resolved callers stands for the cache reads it skips: a role lowered, a key
    revoked, an account deactivated each take effect on the very next request it answers."""
    _, admin = await admin_tokens(client, settings)
    user, tokens = await new_user(client)
    key = (await make_key(client, tokens["access_token"], scopes=["users:read"]))["key"]
    session, by_key, by_admin = bearer(tokens["access_token"]), bearer(key), bearer(admin["access_token"])
    r = await client.patch(f"/users/{user['id']}", headers=by_admin, json={"role": "admin"})
    assert r.status_code == 200
    for _ in range(3):  # resolved once, then answered from the memo
        assert (await client.get("/users", headers=session)).status_code == 200
        assert (await client.get("/users/me", headers=by_key)).status_code == 200
    assert {tokens["access_token"], key} <= set(client.gatehouse.principals)

    r = await client.patch(f"/users/{user['id']}", headers=by_admin, json={"role": "user"})
    assert r.status_code == 200
    r = await client.get("/users", headers=session)
    assert r.status_code == 403 and error_code(r) == "insufficient_scope"  # the lowered role, at once

    key_id = (await client.get("/api-keys", headers=session)).json()[0]["id"]
    assert (await client.delete(f"/api-keys/{key_id}", headers=session)).status_code == 204
    assert (await client.get("/users/me", headers=by_key)).status_code == 401  # the revoked key, at once

    assert (await client.get("/users/me", headers=session)).status_code == 200
    r = await client.patch(f"/users/{user['id']}", headers=by_admin, json={"is_active": False})
    assert r.status_code == 200
    r = await client.get("/users/me", headers=session)
    assert r.status_code == 401 and error_code(r) == "session_revoked"  # the deactivated account, at once


async def test_attack_stolen_api_key_cannot_unlink_an_identity(make_settings: Any, provider: OidcProvider) -> None:
    """Unlinking is sensitive: a key with `users:write`, stolen, cannot cut the owner off from a provider."""
    async with running(fed_settings(make_settings, provider)) as client:
        tokens = (await fed_sign_in(client)).json()
        user_id = uuid.UUID(claims(tokens["access_token"])["sub"])
        await service.set_password(client.gatehouse, user_id=user_id, new_password=PASSWORD)  # not the last method
        fresh = await login(client, provider.user["email"])
        key = (await make_key(client, fresh["access_token"], scopes=["users:read", "users:write"]))["key"]
        [identity] = (await client.get("/users/me/identities", headers=bearer(key))).json()
        for body in (None, {"password": PASSWORD}):  # not even with the password beside it
            r = await client.request("DELETE", f"/users/me/identities/{identity['id']}", headers=bearer(key), json=body)
            assert r.status_code == 403 and error_code(r) == "session_required"
        still = await identities_of(client.gatehouse, provider.user["email"])
        assert [i.id for i in still] == [uuid.UUID(identity["id"])]
