"""Gatehouse admin CLI: a thin adapter over the service functions in service.py.

    python cli.py --help

Settings come from the environment or `.env`, exactly as for the service. Every
failure prints one line on stderr and exits 1.
"""

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
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


def _warn_if_new_database(settings: Settings) -> None:
    # Run from the wrong directory, the default relative SQLite path would quietly make an empty
    # database there, and the command would report on that instead of the service's.
    if "database_url" in settings.model_fields_set or not settings.is_sqlite:
        return
    path = Path(service.database_url(settings.database_url).database or "")
    if not path.exists():
        typer.echo(
            f"warning: DATABASE_URL is not set and {path.resolve()} does not exist: creating a new, empty "
            f"database there (run from the service's directory or set DATABASE_URL)",
            err=True,
        )


def _run(work: Callable[[Gatehouse], Awaitable[T]], *, auto_migrate: bool | None = None) -> T:
    """Start a Gatehouse from the settings, run one piece of work, map errors to exit 1."""
    settings = _settings()
    _warn_if_new_database(settings)

    async def main() -> T:
        gatehouse = await Gatehouse.open(settings, auto_migrate=auto_migrate)
        try:
            return await work(gatehouse)
        finally:
            await gatehouse.close()

    try:
        return asyncio.run(main())
    except service.ServiceError as exc:
        raise _fail(exc.message) from None
    except service.ConfigError as exc:
        raise _fail(str(exc)) from None


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _read_password(from_stdin: bool, prompt: str = "Password") -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("no password was read: stdin was empty")
        return password
    if not _stdin_is_terminal():
        # A prompt would read the piped password with a warning and then fail on the confirmation.
        raise _fail("stdin is not a terminal: to read the password from it, add --password-stdin")
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _user_row(user: service.UserPublic) -> dict[str, Any]:
    return user.model_dump(mode="json")


async def _user_id(gatehouse: Gatehouse, email: str) -> Any:
    return (await service.find_user(gatehouse, email=email)).id


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command()
def migrate(
    status: Annotated[bool, typer.Option("--status", help="List applied and pending migrations and drift.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply pending database migrations (or show their status)."""
    if status:
        state = _run(lambda gatehouse: service.migration_status(gatehouse.engine), auto_migrate=False)
        if as_json:
            _echo_json(
                {
                    "applied": [{"version": v, "name": n, "applied_at": at.isoformat()} for v, n, at in state.applied],
                    "pending": [{"version": m.version, "name": m.name} for m in state.pending],
                    "drift": list(state.drift),
                }
            )
        else:
            for version, name, applied_at in state.applied:
                typer.echo(f"applied  {version:03d}  {name}  ({applied_at:%Y-%m-%d %H:%M:%S} UTC)")
            for migration in state.pending:
                typer.echo(f"pending  {migration.version:03d}  {migration.name}")
            for diff in state.drift:
                typer.echo(f"drift    {diff}")
        if state.drift:
            raise _fail("the database schema differs from the models")
        return
    done = _run(lambda gatehouse: service.migrate(gatehouse.engine), auto_migrate=False)
    if as_json:
        _echo_json({"applied": [{"version": m.version, "name": m.name} for m in done]})
        return
    for migration in done:
        typer.echo(f"applied  {migration.version:03d}  {migration.name}")
    typer.echo(f"{len(done)} migration(s) applied" if done else "database is up to date")


@app.command("check-config")
def check_config(as_json: JsonOption = False) -> None:
    """Print the effective settings (secrets masked), check the database, Redis and the rules."""
    try:
        settings = service.load_settings()
    except service.ConfigError as exc:
        if as_json:
            _echo_json({"ok": False, "problems": str(exc).splitlines(), "warnings": [], "settings": {}})
        else:
            for line in str(exc).splitlines():
                typer.echo(f"problem: {line}", err=True)
        raise typer.Exit(1) from None
    shown = service.describe_settings(settings)
    problems = _run(service.check_config, auto_migrate=False)
    if as_json:
        _echo_json({"ok": not problems, "problems": problems, "warnings": settings.advice(), "settings": shown})
        raise typer.Exit(1 if problems else 0)
    for name, value in shown.items():
        typer.echo(f"{name}={value}")
    for note in settings.advice():
        typer.echo(f"warning: {note}", err=True)
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: database answers" + (", redis answers" if settings.redis_url else "") + ", rules met")


@app.command("settings-doc")
def settings_doc() -> None:
    """Print the settings reference, generated from `Settings` (docs/configuration.md is this output)."""
    typer.echo(service.settings_reference(), nl=False)


@app.command("create-user")
def create_user(
    email: str,
    admin: Annotated[bool, typer.Option("--admin", help="Give the user the admin role.")] = False,
    full_name: Annotated[str, typer.Option("--full-name")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a user (prompts for the password)."""
    password = _read_password(password_stdin)
    user = _run(
        lambda gatehouse: service.create_user(
            gatehouse, email=email, password=password, full_name=full_name, role="admin" if admin else "user"
        )
    )
    if as_json:
        _echo_json(_user_row(user))
        return
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@app.command("list-users")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every user."""

    async def work(gatehouse: Gatehouse) -> list[service.UserPublic]:
        rows, cursor = await service.list_users(gatehouse, limit=200)
        while cursor:
            page, cursor = await service.list_users(gatehouse, cursor=cursor, limit=200)
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

    async def work(gatehouse: Gatehouse) -> None:
        await service.set_password(gatehouse, user_id=await _user_id(gatehouse, email), new_password=password)

    _run(work)
    typer.echo(f"password set for {email}; sessions ended")


@app.command("set-role")
def set_role(email: str, role: Annotated[str, typer.Argument(help="user or admin")]) -> None:
    """Change a user's role."""

    async def work(gatehouse: Gatehouse) -> service.UserPublic:
        return await service.update_user(gatehouse, user_id=await _user_id(gatehouse, email), role=role)

    user = _run(work)
    typer.echo(f"{user.email} is now {user.role}")


def _set_active(email: str, active: bool) -> service.UserPublic:
    async def work(gatehouse: Gatehouse) -> service.UserPublic:
        return await service.update_user(gatehouse, user_id=await _user_id(gatehouse, email), is_active=active)

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

    async def work(gatehouse: Gatehouse) -> None:
        await service.delete_user(gatehouse, user_id=await _user_id(gatehouse, email))

    _run(work)
    typer.echo(f"deleted {email}")


@app.command("revoke-sessions")
def revoke_sessions(
    email: str,
    session_id: Annotated[
        uuid.UUID | None, typer.Option("--session", help="End only this session (its id, from `sessions`).")
    ] = None,
) -> None:
    """End every session of a user, or one with --session."""

    async def work(gatehouse: Gatehouse) -> int:
        user_id = await _user_id(gatehouse, email)
        if session_id is not None:
            await service.end_session(gatehouse, session_id=session_id, owner_id=user_id)
            return 1
        return await service.revoke_sessions(gatehouse, user_id=user_id, reason="admin")

    count = _run(work)
    typer.echo(f"ended {count} session(s) of {email}")


@app.command()
def sessions(email: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List a user's live sessions, newest first."""

    async def work(gatehouse: Gatehouse) -> list[service.LoginSession]:
        return await service.list_sessions(gatehouse, user_id=await _user_id(gatehouse, email))

    rows = [service.SessionPublic.of(row, None).model_dump(mode="json", exclude={"current"}) for row in _run(work)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(
            f"{r['id']}  {r['device']:<24} {','.join(r['amr']):<12} created {r['created_at']}  "
            f"last used {r['last_used_at'] or '-'}  ip {r['last_ip']}"
        )


@app.command("mfa-reset")
def mfa_reset(email: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Remove every second factor of a user (lost device); audited, and the user is notified."""
    if not yes:
        typer.confirm(f"Remove every second factor of {email}?", abort=True)

    async def work(gatehouse: Gatehouse) -> int:
        return await service.reset_mfa(gatehouse, user_id=await _user_id(gatehouse, email))

    removed = _run(work)
    typer.echo(f"removed {removed} second factor record(s) of {email}; they were notified")


@app.command()
def identities(email: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List a user's linked sign-ins at other providers (OpenID Connect, GitHub, Google)."""

    async def work(gatehouse: Gatehouse) -> list[service.Identity]:
        return await service.list_identities(gatehouse, user_id=await _user_id(gatehouse, email))

    rows = [service.IdentityPublic.model_validate(row).model_dump(mode="json") for row in _run(work)]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        used = r["last_used_at"] or "-"
        typer.echo(f"{r['id']}  {r['provider']:<12} {r['email']:<32} linked {r['linked_at']}  last used {used}")


@app.command("unlink-identity")
def unlink_identity(
    email: str,
    identity_id: Annotated[uuid.UUID, typer.Argument(help="The identity's id (as `identities` prints it).")],
) -> None:
    """Remove one of a user's linked sign-ins (never their last way to sign in); audited."""

    async def work(gatehouse: Gatehouse) -> None:
        await service.unlink_identity(gatehouse, user_id=await _user_id(gatehouse, email), identity_id=identity_id)

    _run(work)
    typer.echo(f"unlinked identity {identity_id} of {email}")


@app.command("reset-link")
def reset_link(email: str) -> None:
    """Print a one-time password reset link for an operator to hand over."""

    async def work(gatehouse: Gatehouse) -> str:
        return await service.password_reset_link(gatehouse, user_id=await _user_id(gatehouse, email))

    typer.echo(_run(work))


_ISO_FORMATS = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
]


@app.command()
def audit(
    user: Annotated[str | None, typer.Option("--user", help="Events about or by this user (email).")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            formats=_ISO_FORMATS,
            help="ISO time, e.g. 2026-01-31 or 2026-01-31T12:00Z (UTC unless an offset is given).",
        ),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option("--until", formats=_ISO_FORMATS, help="ISO time: only events before it.")
    ] = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event type, e.g. auth.login.")] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next page, as printed after the last one.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 50,
    as_json: JsonOption = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            dir_okay=False,
            help="Write every event before --until (all, without it) to this file as JSON lines, oldest first.",
        ),
    ] = None,
) -> None:
    """Show security events, newest first, a page at a time (a last line on stderr says how to get the next)."""
    if event and event not in service.AUDIT_EVENTS:
        raise _fail(f"--event {event!r} is not an audit event; known: {', '.join(sorted(service.AUDIT_EVENTS))}")
    if export is not None:
        if user or since or event or cursor:
            raise _fail("--export takes only --until: it archives the whole log before that time")
        _export_audit(export, until)
        return

    async def work(gatehouse: Gatehouse) -> tuple[list[service.AuditEvent], str | None]:
        user_id = await _user_id(gatehouse, user) if user else None
        return await service.list_audit(
            gatehouse, user_id=user_id, event=event, since=since, until=until, cursor=cursor, limit=limit
        )

    page, next_cursor = _run(work)
    rows = [service.AuditPublic.of(r).model_dump(mode="json") for r in page]
    if as_json:
        _echo_json(rows)
    for r in [] if as_json else rows:
        who = r["actor_id"] or "-"
        typer.echo(
            f"{r['at']}  {r['event']:<28} {r['outcome']:<8} subject={r['subject_id'] or '-'} actor={who} ip={r['ip']}"
        )
    if next_cursor:  # on stderr: --json output stays the list it always was
        typer.echo(f"more: add --cursor {next_cursor}", err=True)


def _export_audit(path: Path, until: datetime | None) -> None:
    async def work(gatehouse: Gatehouse) -> int:
        count = 0
        with path.open("w", encoding="utf-8") as out:  # streamed: a page in memory at a time
            async for row in service.iter_audit(gatehouse, until=until):
                out.write(json.dumps(service.AuditPublic.of(row).model_dump(mode="json"), sort_keys=True) + "\n")
                count += 1
        return count

    try:
        count = _run(work)
    except OSError as exc:
        raise _fail(f"--export: cannot write {path}: {exc.strerror}") from None
    typer.echo(f"exported {count} audit events to {path}")


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete expired and revoked sessions, spent tokens and old audit events now (as the service does hourly)."""
    counts = _run(lambda gatehouse: service.purge(gatehouse, dry_run=dry_run))
    if any(count is None for count in counts.values()):
        raise _fail("another instance is purging right now; try again when it has finished")
    if as_json:
        _echo_json(counts)
        return
    verb = "would remove" if dry_run else "removed"
    for table, count in counts.items():
        typer.echo(f"{table:<14} {verb} {count}")


def _key_row(row: service.ApiKey) -> dict[str, Any]:
    return service.ApiKeyPublic.of(row).model_dump(mode="json")


@app.command("create-key")
def create_key(
    email: str,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help=f"Repeatable: {', '.join(service.SCOPES)}.")
    ] = None,
    expires_days: Annotated[int | None, typer.Option("--expires-days", help="Expire after N days.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key for a user and print it (the only time it is shown)."""

    async def work(gatehouse: Gatehouse) -> tuple[service.ApiKey, str]:
        return await service.create_api_key(
            gatehouse,
            user_id=await _user_id(gatehouse, email),
            name=name,
            scopes=scope or ["users:read"],
            expires_days=expires_days,
            aal=2,  # the operator at the server needs no second factor to be trusted with an admin key
        )

    row, key = _run(work)
    if as_json:
        typer.echo(json.dumps({**_key_row(row), "key": key}, indent=2))
    else:
        typer.echo(f"created key {row.id} for {email} scopes={row.scopes.replace(' ', ',')}")
        typer.echo(key)


@app.command("list-keys")
def list_keys(
    email: Annotated[str | None, typer.Argument(help="Only this user's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List unrevoked API keys (never their secrets)."""

    async def work(gatehouse: Gatehouse) -> list[dict[str, Any]]:
        rows = await service.list_api_keys(gatehouse, user_id=await _user_id(gatehouse, email) if email else None)
        owners = {uid: (await service.get_user(gatehouse, user_id=uid)).email for uid in {r.user_id for r in rows}}
        return [{**_key_row(row), "owner": owners[row.user_id]} for row in rows]

    rows = _run(work)
    if as_json:
        _echo_json(rows)
        return
    for k in rows:
        expires = k["expires_at"] or "never"
        typer.echo(
            f"{k['id']}  {k['prefix']}  {k['owner']:<32} {k['name']:<24} {','.join(k['scopes']):<30} expires={expires}"
        )


@app.command("revoke-key")
def revoke_key(key: Annotated[str, typer.Argument(help="The key's id or prefix (as list-keys prints them).")]) -> None:
    """Revoke an API key (and the keys it made); they stop working everywhere at once."""

    async def work(gatehouse: Gatehouse) -> service.ApiKey:
        return await service.revoke_api_key(gatehouse, key_id=(await service.find_api_key(gatehouse, ref=key)).id)

    row = _run(work)
    typer.echo(f"revoked key {row.id} ({row.name})")


signing = typer.Typer(no_args_is_help=True, help="Token signing keys: list, rotate, retire.")
app.add_typer(signing, name="signing-keys")


@signing.command("list")
def signing_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List signing keys, newest first; `*` marks the one that signs new tokens."""

    keys, algorithm = _run(service.list_signing_keys), _settings().jwt_algorithm
    signing_kid = next((r.kid for r in keys if r.algorithm == algorithm and r.retired_at is None), None)
    rows = [
        {
            "kid": r.kid,
            "algorithm": r.algorithm,
            "created_at": r.created_at.isoformat(),
            "retired_at": r.retired_at.isoformat() if r.retired_at else None,
            "signing": r.kid == signing_kid,
        }
        for r in keys
    ]
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        state = f"retired {r['retired_at']}" if r["retired_at"] else "active, signs" if r["signing"] else "active"
        typer.echo(f"{'*' if r['signing'] else ' '} {r['kid']}  {r['algorithm']:<6} created {r['created_at']}  {state}")


@signing.command("rotate")
def signing_rotate(as_json: JsonOption = False) -> None:
    """Make a new signing key; tokens signed with older keys keep working."""
    row = _run(service.rotate_signing_key)
    if as_json:
        _echo_json({"kid": row.kid, "algorithm": row.algorithm, "created_at": row.created_at.isoformat()})
        return
    typer.echo(f"new signing key {row.kid} ({row.algorithm}); older keys still verify until retired")


@signing.command("retire")
def signing_retire(kid: str) -> None:
    """Retire a signing key: tokens signed with it stop working everywhere."""
    row = _run(lambda gatehouse: service.retire_signing_key(gatehouse, kid=kid))
    typer.echo(f"retired signing key {row.kid}")


if __name__ == "__main__":
    app()
