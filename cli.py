"""Gatehouse admin CLI: a thin adapter over the service functions in service.py.

    python cli.py --help

Settings come from the environment or `.env`, exactly as for the service. Every
failure prints one line on stderr and exits 1.
"""

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

import service
from service import Gatehouse, Settings

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True, add_completion=False, help="Administer a Gatehouse deployment.")


def _fail(message: str) -> typer.Exit:
    for line in message.splitlines() or [""]:
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(1)


def _settings() -> Settings:
    try:
        return service.load_settings()
    except service.ConfigError as exc:
        raise _fail(str(exc)) from None


def _run(work: Callable[[Gatehouse], Awaitable[T]], *, auto_migrate: bool | None = None) -> T:
    """Start a Gatehouse from the settings, run one piece of work, map errors to exit 1."""
    settings = _settings()

    async def main() -> T:
        gh = Gatehouse(settings)
        try:
            await gh.start(auto_migrate=auto_migrate)
            return await work(gh)
        finally:
            await gh.close()

    try:
        return asyncio.run(main())
    except service.ServiceError as exc:
        raise _fail(exc.message) from None
    except service.ConfigError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:
        if (mapped := service.as_service_error(exc)) is not None:
            raise _fail(mapped.message) from None
        raise


def _read_password(from_stdin: bool, prompt: str = "Password") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


def _user_row(user: service.User) -> dict[str, Any]:
    return service.to_public(user).model_dump(mode="json")


async def _user_id(gh: Gatehouse, email: str) -> Any:
    return (await service.find_user(gh, email=email)).id


@app.command()
def migrate(status: Annotated[bool, typer.Option("--status", help="List applied and pending migrations and drift.")]
            = False) -> None:
    """Apply pending database migrations (or show their status)."""
    if status:
        state = _run(lambda gh: service.migration_status(gh.engine), auto_migrate=False)
        for version, name, applied_at in state.applied:
            typer.echo(f"applied  {version:03d}  {name}  ({applied_at:%Y-%m-%d %H:%M:%S} UTC)")
        for migration in state.pending:
            typer.echo(f"pending  {migration.version:03d}  {migration.name}")
        for diff in state.drift:
            typer.echo(f"drift    {diff}")
        if state.drift:
            raise _fail("the database schema differs from the models")
        return
    done = _run(lambda gh: service.migrate(gh.engine), auto_migrate=False)
    for migration in done:
        typer.echo(f"applied  {migration.version:03d}  {migration.name}")
    typer.echo(f"{len(done)} migration(s) applied" if done else "database is up to date")


@app.command("check-config")
def check_config() -> None:
    """Print the effective settings (secrets masked), check the database, Redis and the rules."""
    try:
        settings = service.load_settings()
    except service.ConfigError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"problem: {line}", err=True)
        raise typer.Exit(1) from None
    for name, value in service.describe_settings(settings).items():
        typer.echo(f"{name}={value}")
    problems = _run(service.check_config, auto_migrate=False)
    for note in settings.advice():
        typer.echo(f"warning: {note}", err=True)
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: database answers" + (", redis answers" if settings.redis_url else "") + ", rules met")


@app.command("create-user")
def create_user(
    email: str,
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role.")] = False,
    full_name: Annotated[str, typer.Option("--full-name")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a user (prompts for the password)."""
    password = _read_password(password_stdin)
    user = _run(lambda gh: service.create_user(gh, email=email, password=password, full_name=full_name,
                                               role="admin" if admin else "user"))
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@app.command("list-users")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every user."""
    async def work(gh: Gatehouse) -> list[service.User]:
        rows, cursor = await service.list_users(gh, limit=200)
        while cursor:
            page, cursor = await service.list_users(gh, cursor=cursor, limit=200)
            rows += page
        return rows

    users = [_user_row(u) for u in _run(work)]
    if as_json:
        typer.echo(json.dumps(users, indent=2))
        return
    for u in users:
        state = "active" if u["is_active"] else "inactive"
        typer.echo(f"{u['id']}  {u['email']:<40} {u['role']:<6} {state:<8} {u['full_name']}")


@app.command("set-password")
def set_password(
    email: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set a user's password; all their sessions end."""
    password = _read_password(password_stdin, "New password")

    async def work(gh: Gatehouse) -> None:
        await service.set_password(gh, user_id=await _user_id(gh, email), new_password=password)

    _run(work)
    typer.echo(f"password set for {email}; sessions ended")


@app.command("set-role")
def set_role(email: str, role: Annotated[str, typer.Argument(help="user or admin")]) -> None:
    """Change a user's role."""

    async def work(gh: Gatehouse) -> service.User:
        return await service.update_user(gh, user_id=await _user_id(gh, email), role=role)

    user = _run(work)
    typer.echo(f"{user.email} is now {user.role}")


def _set_active(email: str, active: bool) -> service.User:
    async def work(gh: Gatehouse) -> service.User:
        return await service.update_user(gh, user_id=await _user_id(gh, email), is_active=active)

    return _run(work)


@app.command()
def deactivate(email: str) -> None:
    """Deactivate a user; their sessions end at once."""
    user = _set_active(email, False)
    typer.echo(f"{user.email} deactivated; sessions ended")


@app.command()
def activate(email: str) -> None:
    """Re-activate a user."""
    user = _set_active(email, True)
    typer.echo(f"{user.email} activated")


@app.command("delete-user")
def delete_user(email: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete a user and their sessions."""
    if not yes:
        typer.confirm(f"Delete {email} and all their sessions?", abort=True)

    async def work(gh: Gatehouse) -> None:
        await service.delete_user(gh, user_id=await _user_id(gh, email))

    _run(work)
    typer.echo(f"deleted {email}")


@app.command("revoke-sessions")
def revoke_sessions(
    email: str,
    session: Annotated[str | None, typer.Option("--session", help="End only this session (its id, from "
                                                "`sessions`).")] = None,
) -> None:
    """End every session of a user, or one with --session."""
    try:
        session_id = uuid.UUID(session) if session else None
    except ValueError:
        raise _fail(f"{session!r} is not a session id") from None

    async def work(gh: Gatehouse) -> int:
        user_id = await _user_id(gh, email)
        if session_id is not None:
            await service.end_session(gh, session_id=session_id, owner_id=user_id)
            return 1
        return await service.revoke_sessions(gh, user_id=user_id, reason="admin", event="sessions.revoke")

    count = _run(work)
    typer.echo(f"ended {count} session(s) of {email}")


@app.command()
def sessions(email: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List a user's live sessions, newest first."""

    async def work(gh: Gatehouse) -> list[service.LoginSession]:
        return await service.list_sessions(gh, user_id=await _user_id(gh, email))

    rows = [service.SessionPublic.of(row, None).model_dump(mode="json", exclude={"current"}) for row in _run(work)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['id']}  {r['device']:<24} {','.join(r['amr']):<12} created {r['created_at']}  "
                   f"last used {r['last_used_at'] or '-'}  ip {r['last_ip']}")


@app.command("mfa-reset")
def mfa_reset(email: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Remove every second factor of a user (lost device); audited, and the user is notified."""
    if not yes:
        typer.confirm(f"Remove every second factor of {email}?", abort=True)

    async def work(gh: Gatehouse) -> int:
        return await service.reset_mfa(gh, user_id=await _user_id(gh, email))

    removed = _run(work)
    typer.echo(f"removed {removed} second factor record(s) of {email}; they were notified")


@app.command("reset-link")
def reset_link(email: str) -> None:
    """Print a one-time password reset link for an operator to hand over."""

    async def work(gh: Gatehouse) -> str:
        return await service.password_reset_link(gh, user_id=await _user_id(gh, email))

    typer.echo(_run(work))


@app.command()
def audit(
    user: Annotated[str | None, typer.Option("--user", help="Events about or by this user (email).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, e.g. 2026-01-31 or 2026-01-31T12:00Z.")]
    = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event type, e.g. auth.login.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the newest security events."""
    try:
        since_at = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    except ValueError:
        raise _fail(f"--since {since!r} is not an ISO date or time") from None
    if since_at is not None and since_at.tzinfo is None:
        since_at = since_at.replace(tzinfo=UTC)

    async def work(gh: Gatehouse) -> list[service.AuditEvent]:
        user_id = await _user_id(gh, user) if user else None
        rows, _ = await service.list_audit(gh, user_id=user_id, event=event, since=since_at, limit=limit)
        return rows

    rows = [service.AuditPublic.of(r).model_dump(mode="json") for r in _run(work)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        who = r["actor_id"] or "-"
        typer.echo(f"{r['at']}  {r['event']:<28} {r['outcome']:<8} subject={r['subject_id'] or '-'} "
                   f"actor={who} ip={r['ip']}")


def _key_row(row: service.ApiKey) -> dict[str, Any]:
    return service.ApiKeyPublic.of(row).model_dump(mode="json")


@app.command("create-key")
def create_key(
    email: str,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scope: Annotated[list[str] | None, typer.Option("--scope", help=f"Repeatable: {', '.join(service.SCOPES)}.")]
    = None,
    expires_days: Annotated[int | None, typer.Option("--expires-days", help="Expire after N days.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key for a user and print it (the only time it is shown)."""

    async def work(gh: Gatehouse) -> tuple[service.ApiKey, str]:
        return await service.create_api_key(gh, user_id=await _user_id(gh, email), name=name,
                                            scopes=scope or ["users:read"], expires_days=expires_days)

    row, key = _run(work)
    if as_json:
        typer.echo(json.dumps({**_key_row(row), "key": key}, indent=2))
    else:
        typer.echo(f"created key {row.id} for {email} scopes={row.scopes.replace(' ', ',')}")
        typer.echo(key)


@app.command("list-keys")
def list_keys(email: Annotated[str | None, typer.Argument(help="Only this user's keys.")] = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List unrevoked API keys (never their secrets)."""

    async def work(gh: Gatehouse) -> list[service.ApiKey]:
        return await service.list_api_keys(gh, user_id=await _user_id(gh, email) if email else None)

    rows = [_key_row(row) for row in _run(work)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for k in rows:
        expires = k["expires_at"] or "never"
        typer.echo(f"{k['id']}  {k['prefix']}  {k['name']:<24} {','.join(k['scopes']):<30} expires={expires}")


@app.command("revoke-key")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key's id (from list-keys).")]) -> None:
    """Revoke an API key; it stops working everywhere at once."""
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise _fail(f"{key_id!r} is not a key id") from None
    row = _run(lambda gh: service.revoke_api_key(gh, key_id=parsed))
    typer.echo(f"revoked key {row.id} ({row.name})")


signing = typer.Typer(no_args_is_help=True, help="Token signing keys: list, rotate, retire.")
app.add_typer(signing, name="signing-keys")


@signing.command("list")
def signing_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List signing keys, newest first (the newest unretired key of JWT_ALGORITHM signs)."""
    rows = [{"kid": r.kid, "algorithm": r.algorithm, "created_at": r.created_at.isoformat(),
             "retired_at": r.retired_at.isoformat() if r.retired_at else None}
            for r in _run(service.list_signing_keys)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = f"retired {r['retired_at']}" if r["retired_at"] else "active"
        typer.echo(f"{r['kid']}  {r['algorithm']:<6} created {r['created_at']}  {state}")


@signing.command("rotate")
def signing_rotate() -> None:
    """Make a new signing key; tokens signed with older keys keep working."""
    row = _run(service.rotate_signing_key)
    typer.echo(f"new signing key {row.kid} ({row.algorithm}); older keys still verify until retired")


@signing.command("retire")
def signing_retire(kid: str) -> None:
    """Retire a signing key: tokens signed with it stop working everywhere."""
    row = _run(lambda gh: service.retire_signing_key(gh, kid=kid))
    typer.echo(f"retired signing key {row.kid}")


if __name__ == "__main__":
    app()
