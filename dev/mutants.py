"""Would a test notice? Break one security-critical behaviour at a time and run the tests that must catch it.

Each mutant is an exact snippet of a source file and its replacement: the snippet must occur exactly once
(a mutant never silently stops applying), the change is made in a throwaway copy of the repository, and
only the paired tests run there (`-x`, on SQLite unless the behaviour needs Redis). A mutant is killed when
those tests fail; one that survives is a behaviour the suite does not check. A mutant that names its
`function` (a top-level def or class, or `Class.method`) is looked for only inside it, so the same lines
elsewhere, or other code moved or reformatted, do not stop it applying.

    python dev/mutants.py            # every mutant, two at a time; exit 1 if any survives
    python dev/mutants.py -k refresh # only mutants whose name contains "refresh"
    python dev/mutants.py -v -k NAME # matching mutants, with the failing test's output (evidence)

Before the mutants, the paired tests run once on the unmutated code: a test that already fails kills
nothing.
"""

import argparse
import ast
import concurrent.futures
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root, above dev/
IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.db", "*.db-*", "*.secret", "*-signal")


@dataclass(frozen=True)
class Mutant:
    name: str
    find: str
    replace: str
    tests: str  # a pytest -k expression
    backend: str = "sqlite"  # "postgres" where the behaviour needs PostgreSQL and Redis
    file: str = "service.py"
    function: str = ""  # where `find` must occur exactly once: a top-level def or class, or Class.method

    @property
    def selection(self) -> str:
        return f"({self.tests}) and {self.backend}"


MUTANTS = [
    # What the suite missed (issue 26)
    Mutant(
        "second factor: the failure limit is per address, not per user",
        "rate, key = gatehouse.settings.rate_mfa_failures, Keys.mfa_failures(user.id)",
        'rate, key = gatehouse.settings.rate_mfa_failures, f"mfa-fail:{user.id}|{ip_group(client.ip)}"',
        "test_attack_password_holders_guessing_codes_from_elsewhere_cannot_lock_the_owner_out",
    ),
    Mutant(
        "mfa_token: outlives its own lifetime",
        '            purpose="mfa",\n            lifetime=MFA_TOKEN_LIFETIME,',
        '            purpose="mfa",\n            lifetime=MFA_TOKEN_LIFETIME * 12,',
        "test_mfa_token_is_stored_to_expire_at_its_own_lifetime",
    ),
    Mutant(
        "passkey: a sign count that stays 0 is taken for a clone",
        "grows = Passkey.sign_count < count if count else Passkey.sign_count == 0",
        "grows = Passkey.sign_count < count",
        "test_attack_replayed_answer_of_a_counterless_passkey_is_a_spent_challenge",
    ),
    Mutant(
        "passkey: a zero-count answer does not spend its challenge",
        "            _spend_challenge(db, user, challenge, expires)\n            await db.flush()  # a second",
        "            if count:\n                _spend_challenge(db, user, challenge, expires)\n            await db.flush()  # a second",
        "test_attack_replayed_answer_of_a_counterless_passkey_is_a_spent_challenge",
    ),
    Mutant(
        "passkey: the counter is compared on the row read before, not in the update",
        "grows = Passkey.sign_count < count if count else Passkey.sign_count == 0",
        "grows = sa.true() if (passkey.sign_count < count if count else passkey.sign_count == 0) else sa.false()",
        "test_attack_a_genuine_and_a_cloned_passkey_answering_at_once_with_one_count_get_one_session",
    ),
    Mutant(
        "passkey challenge: the purpose is not bound",
        "bound = f\"{purpose}|{user_id.hex if user_id else '-'}|\".encode() + body",
        "bound = f\"{user_id.hex if user_id else '-'}|\".encode() + body",
        "test_attack_passkey_challenge_for_one_purpose_is_refused_for_another_of_the_same_user",
    ),
    Mutant(
        "sessions: an expired session is listed",
        "                    LoginSession.expires_at > sa.literal(utcnow(), UTCDateTime()),\n                )\n"
        "                .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())",
        "                )\n                .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())",
        "test_attack_expired_session_is_left_out_of_the_session_list",
    ),
    Mutant(
        "email change: requests are not rate limited",
        "    await _check_rate(gatehouse, Keys.email_change(user.id), gatehouse.settings.rate_reset_email_ip)\n",
        "",
        "test_attack_a_session_holder_cannot_flood_addresses_with_email_change_requests",
    ),
    Mutant(
        "login code: no limit on wrong tries",
        "    tries = Rate(5, gatehouse.settings.login_code_minutes * 60)",
        "    tries = Rate(500, gatehouse.settings.login_code_minutes * 60)",
        "test_attack_a_mailed_login_code_is_refused_after_its_allowed_wrong_tries",
    ),
    Mutant(
        "federated: a verified address links a verified account by itself",
        "        linked_at = None\n        if user is None:",
        "        linked_at = now if user is not None and user.email_verified_at else None\n        if user is None:",
        "test_attack_verified_email_match_does_not_auto_link",
    ),
    Mutant(
        "redirect allowlist: a look-alike host passes for a listed origin",
        'and origin == f"{listed.scheme}://{listed.netloc}".lower():',
        'and origin.startswith(f"{listed.scheme}://{listed.netloc}".lower()):',
        "test_attack_look_alike_of_an_allowed_origin_is_refused_as_redirect_to",
    ),
    Mutant(
        "step-up: the window is longer than REAUTH_MINUTES",
        "    elif time.time() - principal.auth_time > gatehouse.settings.reauth_minutes * 60:",
        "    elif time.time() - principal.auth_time > (gatehouse.settings.reauth_minutes + 1) * 60:",
        "test_attack_a_sign_in_just_past_reauth_minutes_is_stale_and_just_before_is_fresh",
    ),
    Mutant(
        "step-up: the window is shorter than REAUTH_MINUTES",
        "    elif time.time() - principal.auth_time > gatehouse.settings.reauth_minutes * 60:",
        "    elif time.time() - principal.auth_time > (gatehouse.settings.reauth_minutes - 1) * 60:",
        "test_attack_a_sign_in_just_past_reauth_minutes_is_stale_and_just_before_is_fresh",
    ),
    Mutant(
        "caller memo: outlives the credential's own expiry",
        "memos[credential] = (epoch, min(principal.valid_until, now + gatehouse.settings.local_cache_seconds), principal)",
        "memos[credential] = (epoch, now + gatehouse.settings.local_cache_seconds, principal)",
        "test_attack_a_memoised_key_or_token_stops_at_its_own_expiry",
    ),
    Mutant(
        "mail budget: the owner's reserve is per known address, not per mailbox",
        "await gatehouse.cache.hit(Keys.mail_known(address), settings.rate_reset_email_ip) == 0",
        'await gatehouse.cache.hit(f"mail-known:{address}|{group}", settings.rate_reset_email_ip) == 0',
        "test_attack_strangers_cannot_spend_the_owners_mail_reserve_and_it_is_capped_across_addresses",
    ),
    Mutant(
        "audit: a passkey removal is not audited",
        '        db.add(_audit("mfa.passkey_removed", client, subject=user.id, passkey=str(passkey_id)))\n',
        "",
        "test_each_account_security_action_writes_its_audit_row",
    ),
    Mutant(
        "audit: a refresh-token reuse is not audited",
        '            db.add(\n                _audit("auth.refresh_reuse", client, subject=row.user_id, outcome="failure", '
        "session=str(session_id))\n            )\n",
        "",
        "test_each_account_security_action_writes_its_audit_row",
    ),
    Mutant(
        "api keys: revoking a key leaves its children's cache entries",
        '    await _publish_revoked_keys(gatehouse, revoked)\n    log.info("api key revoked',
        '    await _publish_revoked_keys(gatehouse, revoked[:1])\n    log.info("api key revoked',
        "test_attack_children_of_a_revoked_key_stop_even_when_a_shared_cache_holds_them",
    ),
    Mutant(
        "user search: LIKE wildcards in a prefix are wildcards",
        "stmt = stmt.where(User.email.startswith(key, autoescape=True))",
        "stmt = stmt.where(User.email.startswith(key))",
        "test_admin_email_search_kinds_say_which_match_ran",
        backend="postgres",  # on SQLite the index range beside the LIKE bounds the match to the literal prefix
    ),
    # Login
    Mutant(
        "login: no dummy hash for an unknown email",
        "            await self._run(self._verify_sync, password, self._dummy)\n            return False",
        "            return False",
        "test_login_failures_are_indistinguishable",
        function="PasswordHasher.verify",
    ),
    Mutant(
        "caller memo: answers across an invalidation",
        "    if memo is not None and memo[0] == gatehouse.cache.epoch() and memo[1] > time.time():",
        "    if memo is not None and memo[1] > time.time():",
        "test_attack_a_memoised_caller_is_refused_the_moment_anything_changes",
        function="remembered_principal",
    ),
    Mutant(
        "edge read: answers a CORS request itself (no CORS headers)",
        ' and path in EDGE_READS and not (self.cors and b"origin" in header):',
        " and path in EDGE_READS:",
        "test_edge_reads_answer_exactly_as_their_routes",
        function="EdgeMiddleware.__call__",
    ),
    Mutant(
        "edge read: an error loses its headers (WWW-Authenticate, Retry-After)",
        "                await service_error_response(exc)(scope, receive, send)",
        "                await _error_response(exc.status_code, exc.code, exc.message)(scope, receive, send)",
        "test_edge_reads_answer_exactly_as_their_routes",
        function="EdgeMiddleware._read",
    ),
    Mutant(
        "host guard: the route's own scopes go unchecked",
        "            route.app = cls(host, guard.call, route.app, request_response(handler))",
        "            route.app = cls(host, Authenticated(), route.app, request_response(handler))",
        "test_guarded_host_routes_answer_as_through_fastapi",
        function="_GuardedHostRoute.install",
    ),
    Mutant(
        "host guard: a route's other dependency dropped",
        '            if len(dependant.dependencies) != 1 or getattr(route, "max_body_size", None) is not None:',
        '            if not dependant.dependencies or getattr(route, "max_body_size", None) is not None:',
        "test_guarded_host_routes_answer_as_through_fastapi",
        function="_GuardedHostRoute.install",
    ),
    Mutant(
        "host guard: dependency_overrides ignored",
        "        if self.host.dependency_overrides:\n            return await self.fastapi_app(scope, receive, send)\n",
        "",
        "test_guarded_host_routes_answer_as_through_fastapi",
        function="_GuardedHostRoute.__call__",
    ),
    Mutant(
        "host guard: a restarted host keeps guarding with the old Gatehouse",
        "                route.app.gatehouse = host.state.gatehouse  # the host started again: a new Gatehouse\n",
        "",
        "test_guarded_host_routes_answer_as_through_fastapi",
        function="_GuardedHostRoute.install",
    ),
    Mutant(
        "metrics: a latency on a bucket's bound counted in the next bucket",
        "        tally[1 + bisect.bisect_left(self.LATENCY_BUCKETS, seconds)] += 1",
        "        tally[1 + bisect.bisect_right(self.LATENCY_BUCKETS, seconds)] += 1",
        "test_request_metrics_count_every_request_and_its_bucket",
        function="Metrics.request_done",
    ),
    Mutant(
        "near cache: a request joins a read begun before an invalidation",
        "    if started is None or started[0] != epoch:",
        "    if started is None:",
        "test_attack_a_request_after_a_logout_never_joins_a_read_begun_before_it",
        function="_cached",
    ),
    Mutant(
        "near cache: every concurrent miss reads the database itself",
        "    started = gatehouse.loading.get(key)\n",
        "    started = None\n",
        "test_a_stampede_of_misses_makes_one_database_read_per_entry",
        function="_cached",
    ),
    Mutant(
        "login: an inactive account may log in",
        "    if ok and user is not None and user.is_active:",
        "    if ok and user is not None:",
        "test_login_failures_are_indistinguishable",
        function="_check_password",
    ),
    Mutant(
        "login: an unverified email may log in",
        "    if settings.require_verified_email and user.email_verified_at is None:",
        "    if False:",
        "test_email_verification",
        function="authenticate",
    ),
    Mutant(
        "rate limit: a failed login is not counted per account and address",
        "    await _check_rate(gatehouse, pair_key, settings.rate_login_failures_account_ip)\n",
        "",
        "test_failed_logins_per_account_and_ip_are_limited",
        function="_check_password",
    ),
    Mutant(
        "rate limit: registration is not limited per address",
        '        await _check_auth_ip(gatehouse, client)\n    email = _validated(normalize_email, email, "email")',
        '    email = _validated(normalize_email, email, "email")',
        "test_register_attempts_per_ip_are_limited",
        function="create_user",
    ),
    Mutant(
        "rate limit: the general per-address limit never refuses",
        "            elif (wait := await self._general_limit(gatehouse, path, ip)) > 0:",
        "            elif (wait := await self._general_limit(gatehouse, path, ip)) > 1e9:",
        "test_general_limit_per_client_and_health_is_exempt",
        function="EdgeMiddleware.__call__",
    ),
    Mutant(
        "rate limit: the general limit does not add up across instances",
        "                self._gl_known[key] = (window, int(total))",
        "                self._gl_known[key] = (window, 0)",
        "test_general_limit_adds_up_across_instances",
        backend="postgres",
        function="RedisCache._sync_general",
    ),
    # Refresh
    Mutant(
        "refresh: no compare-and-swap on the generation (an old token rotates again)",
        "        if generation == row.generation:\n            row.generation += 1",
        "        if generation in (row.generation, row.generation - 1):\n            row.generation += 1",
        "test_refresh_rotates_and_old_token_in_grace_gets_current_pair or test_parallel_refreshes_rotate_exactly_once",
        function="refresh_session",
    ),
    Mutant(
        "refresh: a rotated token replayed after the grace window is accepted",
        "        elif not (generation == row.generation - 1 and row.rotated_at and now - row.rotated_at <= grace):",
        "        elif False:",
        "test_refresh_reuse_after_grace_revokes_the_whole_session",
        function="refresh_session",
    ),
    Mutant(
        "refresh: an ended session refreshes",
        "        if row is None or row.revoked_at is not None:\n"
        "            raise SessionRevoked()\n"
        "        if min(row.expires_at",
        "        if row is None:\n            raise SessionRevoked()\n        if min(row.expires_at",
        "test_logout_revokes_this_session_only",
        function="refresh_session",
    ),
    Mutant(
        "refresh: an expired session refreshes",
        "        if min(row.expires_at, _session_expiry(gatehouse, row.created_at, now)) <= now:",
        "        if False:",
        "test_refresh_of_an_expired_session_is_token_expired",
        function="refresh_session",
    ),
    Mutant(
        "refresh: the token's MAC is not checked",
        "        if not hmac.compare_digest(match[3], self._refresh_mac(session_id, generation)):",
        "        if False:",
        "test_refresh_of_tampered_generation_is_invalid",
        function="TokenIssuer.parse_refresh",
    ),
    # Access tokens
    Mutant(
        "access: session liveness not checked",
        '    if session is None or session["uid"] != str(claims.user_id):',
        '    if session is not None and session["uid"] != str(claims.user_id):',
        "test_logout_revokes_this_session_only",
        function="resolve_access_token",
    ),
    Mutant(
        "access: the session's owner not checked",
        '    if session is None or session["uid"] != str(claims.user_id):',
        "    if session is None:",
        "test_token_for_deleted_user_or_foreign_session_is_rejected",
        function="resolve_access_token",
    ),
    Mutant(
        "access: a passed cached session expiry is not read again",
        "        session = (await _load_session_entry(gatehouse, claims.session_id))[1]  # cached copy predates a refresh?",
        "        pass",
        "test_access_path_rereads_a_cached_session_expiry_that_has_passed",
        function="resolve_access_token",
    ),
    Mutant(
        "access: session expiry not checked",
        '    if session is not None and session["exp"] <= time.time():\n        session = (await',
        "    if False:\n        session = (await",
        "test_access_path_rereads_a_cached_session_expiry_that_has_passed",
        function="resolve_access_token",
    ),
    Mutant(
        "access: key retirement not checked for a token verified before",
        "        if known is None:\n            raise UnknownKey()\n    else:",
        "        if False:\n            raise UnknownKey()\n    else:",
        "test_rotate_and_retire_signing_keys_under_a_running_service",
        function="resolve_access_token",
    ),
    Mutant(
        "access: the token's algorithm not matched to its key",
        '        if key["alg"] != algorithm:  # e.g. HS256 "signed" with a published public key',
        "        if False:",
        "test_key_confusion_hs256_signed_with_public_key",
        function="resolve_access_token",
    ),
    Mutant(
        "access: aud not checked",
        'options={"require": ["exp", "iat", "sub", "sid", "jti", "iss", "aud", "typ"]},',
        'options={"require": ["exp", "iat", "sub", "sid", "jti", "iss", "aud", "typ"], "verify_aud": False},',
        "test_bad_access_tokens_are_rejected_each_with_its_code",
        function="TokenIssuer._decode",
    ),
    Mutant(
        "access: iss not checked",
        'options={"require": ["exp", "iat", "sub", "sid", "jti", "iss", "aud", "typ"]},',
        'options={"require": ["exp", "iat", "sub", "sid", "jti", "iss", "aud", "typ"], "verify_iss": False},',
        "test_bad_access_tokens_are_rejected_each_with_its_code",
        function="TokenIssuer._decode",
    ),
    Mutant(
        "access: exp not required",
        'options={"require": ["exp", "iat",',
        'options={"require": ["iat",',
        "test_bad_access_tokens_are_rejected_each_with_its_code",
        function="TokenIssuer._decode",
    ),
    Mutant(
        "access: the token type not checked",
        '        if claims["typ"] != "access":',
        "        if False:",
        "test_bad_access_tokens_are_rejected_each_with_its_code",
        function="TokenIssuer._decode",
    ),
    Mutant(
        "access: logout not announced to the caches",
        "    if ended:\n        await gatehouse.cache.publish({Keys.session(sid): _session_entry(None) for sid in ended})",
        "    if False:\n        await gatehouse.cache.publish({Keys.session(sid): _session_entry(None) for sid in ended})",
        "test_logout_revokes_this_session_only",
        function="_end_sessions",
    ),
    Mutant(
        "access: a failing Redis GET quietly falls back to the database",
        "            raw = await self.redis.get(self._key(key))",
        '            raise ConnectionError("mutant: every Redis GET fails")',
        "test_many_concurrent_requests_share_a_small_pool",
        backend="postgres",
        function="RedisCache.get",
    ),
    # Federated sign-in
    Mutant(
        "federated link: a mailed link to an unverified account leaves the pre-registrant's access",
        "            revoked = await _end_unverified_access(db, user, keep=identity.id, client=client)",
        "            revoked = []",
        "test_attack_pre_registered_account_keeps_nothing_once_the_owner_links_by_mail",
        function="_link",
    ),
    Mutant(
        "federated link: a password links an account whose address was never verified",
        "    if user.email_verified_at is None:\n        # The password proves only whoever set it",
        "    if False:\n        # The password proves only whoever set it",
        "test_attack_password_link_to_an_unverified_account_is_refused",
        function="link_with_password",
    ),
    Mutant(
        "federated redirect: redirect_to may already hold code",
        "    if _ADDED_QUERY_NAMES.intersection(",
        "    if False and _ADDED_QUERY_NAMES.intersection(",
        "test_attack_open_redirect_via_redirect_to_is_refused",
        function="allowed_redirect",
    ),
    Mutant(
        "provider text: a long sub is cut, not refused",
        "    if not 0 < len(subject) <= _SUBJECT_MAX:\n",
        "    subject = subject[:_SUBJECT_MAX]\n    if not subject:\n",
        "test_attack_provider_subject_that_cannot_be_stored_whole_is_refused",
        function="_provider_identity",
    ),
    Mutant(
        "provider text: a sub that cannot be stored is taken",
        "        _no_bad_text(subject)\n",
        "        pass\n",
        "test_attack_provider_subject_that_cannot_be_stored_whole_is_refused",
        function="_provider_identity",
    ),
    Mutant(
        "provider text: the name is not cleaned",
        '    return ProviderIdentity(subject, email, email_verified, " ".join(cleaned.split())[:200])',
        "    return ProviderIdentity(subject, email, email_verified, text[:200])",
        "test_attack_provider_name_that_cannot_be_stored_is_cleaned",
        function="_provider_identity",
    ),
    Mutant(
        "userinfo: never called when the ID token has no email",
        '        if "email" not in claims:',
        "        if False:",
        "test_email_from_userinfo_when_the_id_token_has_none",
        function="Federation.identity",
    ),
    Mutant(
        "userinfo: an answer about another subject is used",
        '        if info.get("sub") != subject:',
        "        if False:",
        "test_attack_userinfo_for_another_subject_is_refused",
        function="Federation._userinfo",
    ),
    Mutant(
        "link from inside: a recent sign-in stands in for a proof in the request",
        "    await _prove_in_request(gatehouse, principal, body, client)\n    start = await start_identity_link(",
        "    await _prove(gatehouse, principal, body, client)\n    start = await start_identity_link(",
        "test_attack_linking_from_inside_needs_a_proof_in_the_request",
        function="link_my_identity",
    ),
    Mutant(
        "link from inside: an account whose address was never verified may link",
        "    if user.email_verified_at is None:\n        # Whoever registered an address",
        "    if False:\n        # Whoever registered an address",
        "test_attack_linking_from_inside_needs_a_proof_in_the_request",
        function="start_identity_link",
    ),
    Mutant(
        "link from inside: an identity linked to another account is answered as linked",
        "            if row.user_id != user.id:\n                raise IdentityInUse()",
        "            if False:\n                raise IdentityInUse()",
        "test_attack_linking_an_identity_of_another_account_from_inside_is_refused",
        function="_attach_identity",
    ),
    # API keys and scopes
    Mutant(
        "api key: the secret not compared",
        '    if not hmac.compare_digest(hash_secret(match[2]), entry["hash"] if entry else _NO_KEY_HASH) or not entry:',
        "    if not entry:",
        "test_api_key_with_wrong_secret_is_rejected",
        function="resolve_api_key",
    ),
    Mutant(
        "api key: expiry ignored",
        '    if entry["exp"] is not None and entry["exp"] <= time.time():',
        "    if False:",
        "test_expired_and_owner_deactivated_keys_stop_at_once",
        function="resolve_api_key",
    ),
    Mutant(
        "api key: scopes not capped at the owner's current role",
        '    scopes = frozenset(entry["scopes"]) & ROLE_SCOPES.get(user["role"], frozenset())  # never above the owner',
        '    scopes = frozenset(entry["scopes"])',
        "test_api_key_cannot_exceed_owner_or_creator or test_attack_key_holding_scopes_above_its_owners_role_acts_at_the_role",
        function="resolve_api_key",
    ),
    Mutant(
        "api key: scopes not capped at creation",
        "    if excess := sorted(set(scopes) - allowed):",
        "    if excess := []:",
        "test_api_key_cannot_exceed_owner_or_creator",
        function="create_api_key",
    ),
    Mutant(
        "api key: revocation not announced to the caches",
        "async def _publish_revoked_keys(gatehouse: Gatehouse, rows: list[ApiKey]) -> None:\n    if rows:",
        "async def _publish_revoked_keys(gatehouse: Gatehouse, rows: list[ApiKey]) -> None:\n    if False:",
        "test_api_key_lifecycle",
        function="_publish_revoked_keys",
    ),
    Mutant(
        "api key: last_used_at not claimed across instances",
        "        if await gatehouse.cache.claim(Keys.api_key_touch(key_id), interval):",
        "        if True:",
        "test_api_key_last_used_is_recorded_without_a_write_per_request",
        backend="postgres",
        function="_touch_api_key",
    ),
    Mutant(
        "scopes: a route's scopes not enforced",
        "        if self.scopes and (missing := [scope for scope in self.scopes if scope not in principal.scopes]):",
        "        if self.scopes and (missing := []):",
        "test_api_key_scopes_are_enforced_on_every_route",
        function="Authenticated.admit",
    ),
    Mutant(
        "scopes: an API key accepted where a session is required",
        "        if self.session and principal.session_id is None:",
        "        if False:",
        "test_api_key_scopes_are_enforced_on_every_route",
        function="Authenticated.admit",
    ),
    Mutant(
        "admin: acting on another user without the admin scope",
        '    if "admin" not in principal.scopes:\n'
        '        raise _scope_error(principal, ["admin"], "Acting on another user needs the admin scope.")',
        '    if False:\n        raise _scope_error(principal, ["admin"], "Acting on another user needs the admin scope.")',
        "test_security_no_idor_between_users",
        function="_acting_for",
    ),
    Mutant(
        "admin: another user's key may be revoked",
        "        if row is None or row.revoked_at is not None or (owner_id is not None and row.user_id != owner_id):\n            raise ApiKeyNotFound()",
        "        if row is None or row.revoked_at is not None:\n            raise ApiKeyNotFound()",
        "test_security_no_idor_between_users",
        function="revoke_api_key",
    ),
    Mutant(
        "admin: the last admin may be removed",
        "    if admins == [user.id]:",
        "    if False:",
        "test_last_admin_cannot_be_removed",
        function="_guard_last_admin",
    ),
    # Limited credentials and undo links
    Mutant(
        "admin power: an aal1 session or key keeps the admin scope under REQUIRE_MFA_FOR_ADMINS",
        '    if "admin" in principal.scopes and principal.aal < 2 and gatehouse.settings.require_mfa_for_admins:',
        "    if False:",
        "test_attack_admin_session_without_a_second_factor_uses_admin_power_outside_admin_routes",
        function="resolve_credential",
    ),
    Mutant(
        "admin power: a key records no assurance from the session that made it",
        "        aal=principal.aal,\n        granted=principal.scopes,",
        "        aal=2,\n        granted=principal.scopes,",
        "test_attack_admin_api_key_made_without_a_second_factor_keeps_admin_power",
        function="create_key",
    ),
    Mutant(
        "require_mfa: an API key made by an aal2 session passes",
        "        if self.mfa and (principal.aal < 2 or principal.session_id is None):",
        "        if self.mfa and principal.aal < 2:",
        "test_require_mfa_refuses_an_api_key_even_one_made_with_a_second_factor",
        function="Authenticated.admit",
    ),
    Mutant(
        "sessions: an API key lists its owner's sessions",
        "async def my_sessions(principal: SessionReader, gatehouse: GatehouseDep)",
        "async def my_sessions(principal: Reader, gatehouse: GatehouseDep)",
        "test_attack_api_key_lists_and_ends_its_owners_sessions",
        function="my_sessions",
    ),
    Mutant(
        "sessions: an API key ends its owner's sessions",
        "    session_id: uuid.UUID, principal: SessionWriter, gatehouse: GatehouseDep, client: ClientDep\n) -> None:",
        "    session_id: uuid.UUID, principal: Writer, gatehouse: GatehouseDep, client: ClientDep\n) -> None:",
        "test_attack_api_key_lists_and_ends_its_owners_sessions",
        function="delete_session",
    ),
    Mutant(
        "email change: a later move leaves the undo links of older moves alive",
        '            await _spend_user_tokens(db, user.id, "email_revert", sparing=user.email)\n',
        "",
        "test_attack_old_mailbox_undoes_a_later_email_change",
        function="confirm_email_change",
    ),
    Mutant(
        "email change: a later move spends its own undo link too",
        '"email_revert", sparing=user.email)',
        '"email_revert")',
        "test_attack_old_mailbox_undoes_a_later_email_change",
        function="confirm_email_change",
    ),
    Mutant(
        "email change: the owner's keep spends no undo link",
        '        spent = await _spend_user_tokens(db, user_id, "email_revert")',
        "        spent = 0",
        "test_attack_old_mailbox_undoes_a_move_its_owner_vouched_for",
        function="keep_email_change",
    ),
    # Passwords, reset and verification
    Mutant(
        "password: other sessions survive a password change",
        '    ended = await _end_sessions(gatehouse, user_id=user.id, keep=keep_session, reason="password_changed")',
        "    ended = 0",
        "test_change_password_ends_other_sessions",
        function="_after_password_stored",
    ),
    Mutant(
        "reset: a link works twice",
        "        ActionToken.used_at.is_(None),\n        ActionToken.expires_at > sa.literal(now, UTCDateTime()),\n    )",
        "        ActionToken.expires_at > sa.literal(now, UTCDateTime()),\n    )",
        "test_password_reset_end_to_end or test_attack_one_reset_link_used_twice_at_once_works_once",
        function="_spendable",
    ),
    Mutant(
        "reset: an expired link works",
        "        ActionToken.used_at.is_(None),\n        ActionToken.expires_at > sa.literal(now, UTCDateTime()),\n    )",
        "        ActionToken.used_at.is_(None),\n    )",
        "test_reset_tokens_expire_and_die_with_the_password",
        function="_spendable",
    ),
    Mutant(
        "reset: outstanding links outlive the old password",
        '    await _spend_user_tokens(db, user.id, "reset", "login_code")',
        "    pass",
        "test_reset_tokens_expire_and_die_with_the_password",
        function="_store_password",
    ),
    Mutant(
        "verify: a link is not bound to the address it was sent to",
        "        if user is None or user.email != row.email:\n"
        "            raise InvalidActionToken()  # the address changed since the link was sent",
        "        if user is None:\n"
        "            raise InvalidActionToken()  # the address changed since the link was sent",
        "test_email_verification or test_old_verification_link_is_worthless_after_an_email_change",
        function="confirm_email_verification",
    ),
    Mutant(
        "verify: a changed email stays verified",
        "                    user.email_verified_at = None  # the new address is not verified yet",
        "                    pass",
        "test_email_verification",
        function="update_user",
    ),
    Mutant(
        "webhook: a 4xx is retried",
        '        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):\n            raise MailRefused(f"webhook answered {response.status_code}")',
        '        if False:\n            raise MailRefused(f"webhook answered {response.status_code}")',
        "test_webhook_delivery_failures",
        function="WebhookTransport.send",
    ),
    Mutant(
        "webhook: 408 and 429 are not retried",
        "if 400 <= response.status_code < 500 and response.status_code not in (408, 429):",
        "if 400 <= response.status_code < 500:",
        "test_webhook_delivery_failures",
        function="WebhookTransport.send",
    ),
    Mutant(
        "webhook: giving up is not logged",
        '        log.error(\n            "%s delivery of %s for user=%s failed for good after %d attempt(s): %s",',
        '        log.debug(\n            "%s delivery of %s for user=%s failed for good after %d attempt(s): %s",',
        "test_webhook_delivery_failures",
        function="Mailer._send",
    ),
    # The owner on a new network
    Mutant(
        "new network: a login code spends the mailbox's budget, which strangers can empty",
        "    if await gatehouse.cache.hit(Keys.mail_code(user.id), gatehouse.settings.rate_reset_email_ip) > 0:",
        "    if not await _mail_allowed(gatehouse, user.email, client, user.id):",
        "test_attack_strangers_on_sixteen_addresses_cannot_keep_the_owner_out_of_a_new_address",
        function="_send_login_code",
    ),
    Mutant(
        "new network: the login code budget never refuses, so a password holder floods the mailbox",
        "    if await gatehouse.cache.hit(Keys.mail_code(user.id), gatehouse.settings.rate_reset_email_ip) > 0:",
        "    if await gatehouse.cache.hit(Keys.mail_code(user.id), gatehouse.settings.rate_reset_email_ip) > 3600:",
        "test_attack_strangers_on_sixteen_addresses_cannot_keep_the_owner_out_of_a_new_address",
        function="_send_login_code",
    ),
    Mutant(
        "new network: a full password limit also holds up passwordless passkey sign-in",
        "        raise EmailNotVerified()\n    pair = await _start_session(\n",
        "        raise EmailNotVerified()\n"
        '    if await gatehouse.cache.hit(f"login-fail:{user.email}", gatehouse.settings.rate_login_failures_account, 0) > 0:\n'
        "        raise LoginCodeRequired()\n"
        "    pair = await _start_session(\n",
        "test_passkey_sign_in_from_a_new_address_is_not_held_by_a_full_password_limit",
        function="sign_in_with_passkey",
    ),
    # Service runs alone
    Mutant(
        "templates: a file that cannot be used does not stop the server starting",
        "    if gatehouse.templates.problems:\n        await gatehouse.close()",
        "    if False:\n        await gatehouse.close()",
        "test_a_template_that_cannot_be_rendered_is_a_startup_error_naming_it",
    ),
    Mutant(
        "templates: check-config does not list a file that cannot be used",
        "    problems = [*gatehouse.settings.problems(), *gatehouse.templates.problems]",
        "    problems = list(gatehouse.settings.problems())",
        "test_a_template_that_cannot_be_rendered_is_a_startup_error_naming_it",
    ),
    Mutant(
        "templates: not rendered at startup (a lone $ waits for the first mail)",
        "                self.render(name, {}, as_html=False)",
        "                pass",
        "test_a_template_that_cannot_be_rendered_is_a_startup_error_naming_it",
    ),
    Mutant(
        "templates: an override with no built-in of its name is accepted",
        "            if name not in self.texts:\n",
        "            if False:\n",
        "test_a_template_that_cannot_be_rendered_is_a_startup_error_naming_it",
    ),
    Mutant(
        "templates: an override file is read but not used",
        '                self.texts[name] = path.read_text(encoding="utf-8")',
        '                path.read_text(encoding="utf-8")',
        "test_mail_templates_dir_overrides_a_mail_and_a_page",
    ),
    Mutant(
        "templates: the style sheet is read from a file beside service.py",
        '    css = gatehouse.templates.texts["pages/gatehouse.css"]',
        '    css = (Path(__file__).parent / "templates" / "pages" / "gatehouse.css").read_text()',
        "test_service_py_alone_serves_every_page_and_mail",
    ),
    # Operations, storage and configuration
    Mutant(
        "metrics: a scrape reports one worker, not the sum",
        '    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):\n        registry = CollectorRegistry()',
        "    if False:\n        registry = CollectorRegistry()",
        "test_metrics_add_up_across_uvicorn_workers",
        function="render_metrics",
    ),
    Mutant(
        "sqlite: synchronous=OFF",
        'cursor.execute("PRAGMA synchronous=FULL")',
        'cursor.execute("PRAGMA synchronous=OFF")',
        "test_sqlite_connections_are_durable_and_wait_for_the_write_lock",
        function="_sqlite_connect",
    ),
    Mutant(
        "migrations: each migration commits on its own",
        "        done.append(migration)\n    return done",
        "        done.append(migration)\n        conn.commit()\n    return done",
        "test_a_failing_migration_rolls_back_whole",
        function="_apply_pending",
    ),
    Mutant(
        "config: a changed SECRET_KEY with sealed signing keys goes unnoticed",
        "    return [row.kid for row in rows if not gatehouse.tokens.unseals(_material(row))]",
        "    return []",
        "test_changed_secret_key_with_sealed_signing_keys_is_a_startup_and_config_problem",
        function="sealed_keys_not_opened",
    ),
    Mutant(
        "fuzz finding: a 405's Allow names one route's method",
        '        headers["Allow"] = ", ".join(_allowed_methods(request))',
        "        pass",
        "test_fuzz_findings_stay_fixed",
        function="_on_http_error",
    ),
    Mutant(
        "fuzz finding: DELETE /users/me reaches /users/{user_id}",
        '@users_router.delete("/{user_id:uuid}", status_code=204)',
        '@users_router.delete("/{user_id}", status_code=204)',
        "test_fuzz_findings_stay_fixed",
        function="admin_delete_user",
    ),
    Mutant(
        "fuzz finding: Unix-number timestamps accepted",
        '        raise ValueError("an ISO 8601 date-time is expected, e.g. 2026-01-31T12:00:00Z")',
        "        pass",
        "test_fuzz_findings_stay_fixed",
        function="_iso_time_only",
    ),
    Mutant(
        "settings: print(Settings()) shows the passwords in URL settings",
        "            yield name, hide_password(value) if isinstance(value, str) else value",
        "            yield name, value",
        "test_attack_printing_settings_shows_no_secret",
    ),
    Mutant(
        "settings doc: a default shown otherwise than Settings holds it",
        '        value = f"{value:g}"',
        "        value = str(value)",
        "test_the_configuration_doc_is_generated_from_settings",
    ),
    # Takeover resistance (step-up, email change, lockout, credential bounds)
    Mutant(
        "step-up: an API key may do sensitive actions",
        "    if principal.session_id is None:\n        raise SessionRequired()\n    if factor_if_enrolled and",
        "    if factor_if_enrolled and",
        "test_attack_api_key_with_users_write_cannot_take_over_the_account",
        function="require_recent_proof",
    ),
    Mutant(
        "step-up: a stale sign-in counts as proof",
        "    elif time.time() - principal.auth_time > gatehouse.settings.reauth_minutes * 60:",
        "    elif False:",
        "test_attack_stolen_stale_access_token_cannot_change_email_or_delete",
        function="require_recent_proof",
    ),
    Mutant(
        "email change: undoing it leaves the API keys",
        '            revoked = await _revoke_user_keys(db, user.id)\n            db.add(_audit("user.email_change_revert"',
        '            revoked = []\n            db.add(_audit("user.email_change_revert"',
        "test_attack_email_change_needs_the_new_mailbox_and_the_old_one_can_undo_it",
        function="revert_email_change",
    ),
    Mutant(
        "email change: the confirmation link works twice",
        '            row = await _consume_action_token(db, token=token, purpose="email_change")',
        "            row = await db.scalar(sa.select(ActionToken).where(ActionToken.token_hash == hash_secret(token)))",
        "test_attack_email_change_needs_the_new_mailbox_and_the_old_one_can_undo_it",
        function="confirm_email_change",
    ),
    Mutant(
        "reset: API keys survive a reset by link",
        'event="user.password_reset", client=client, revoke_keys=True\n',
        'event="user.password_reset", client=client, revoke_keys=False\n',
        "test_attack_reset_after_compromise_revokes_every_api_key",
        function="reset_password",
    ),
    Mutant(
        "reset: a bogus token costs a bcrypt hash",
        '    await _peek_action_token(gatehouse, token=token, purpose="reset")  # a bogus token costs no bcrypt',
        "    pass",
        "test_attack_bogus_reset_tokens_cost_no_hash",
        function="reset_password",
    ),
    Mutant(
        "lockout: a full account-wide limit lets the password alone in",
        "        if not protected:\n",
        "        if True:\n",
        "test_attack_strangers_failed_logins_cannot_lock_out_the_owner",
        function="_check_password",
    ),
    Mutant(
        "lockout: any login code is accepted",
        "        if code is not None and await _spend_login_code(gatehouse, user=user, code=code):",
        "        if code is not None:",
        "test_attack_strangers_failed_logins_cannot_lock_out_the_owner",
        function="_check_password",
    ),
    Mutant(
        "lockout: a password check is only looked up, not reserved, before bcrypt",
        "    await _check_rate(gatehouse, pair_key, settings.rate_login_failures_account_ip)\n",
        "    await _check_rate(gatehouse, pair_key, settings.rate_login_failures_account_ip, cost=0)\n",
        "test_attack_fifty_parallel_wrong_logins_get_no_more_checks_than_the_limit",
        function="_check_password",
    ),
    Mutant(
        "rate limit: IPv6 addresses are not grouped by /64",
        "        return str(ipaddress.IPv6Network((addr, 64), strict=False))",
        "        return ip",
        "test_attack_rotating_ipv6_addresses_in_one_64_shares_one_limit",
        function="ip_group",
    ),
    Mutant(
        "mail: no per-requester budget",
        "    allowed = await gatehouse.cache.hit(Keys.mail_from(address, group), settings.rate_reset_email_ip) == 0 and (",
        "    allowed = True or (",
        "test_attack_strangers_cannot_spend_the_owners_reset_mail",
        function="_mail_allowed",
    ),
    Mutant(
        "mail: no reserve for the owner's known addresses",
        "            user_id is not None\n            and await _is_known_address(gatehouse, user_id, group)",
        "            False\n            and await _is_known_address(gatehouse, user_id, group)",
        "test_attack_strangers_cannot_spend_the_owners_reset_mail",
        function="_mail_allowed",
    ),
    Mutant(
        "api key: a key's child may outlive it",
        "                elif expires_at > parent.expires_at:",
        "                elif False:",
        "test_attack_key_made_by_a_key_cannot_outlive_outrank_or_survive_its_parent",
        function="create_api_key",
    ),
    Mutant(
        "api key: children survive their parent",
        "ApiKey.parent_id.in_([r.id for r in rows]), ApiKey.revoked_at.is_(None))\n                )\n            )\n            if rows",
        "ApiKey.parent_id.in_([r.id for r in rows]), ApiKey.revoked_at.is_(None))\n                )\n            )\n            if False",
        "test_attack_key_made_by_a_key_cannot_outlive_outrank_or_survive_its_parent",
        function="_revoke_key_rows",
    ),
    Mutant(
        "api key: a demotion leaves keys with the lost scopes",
        '                if "role" in changes:  # nothing dormant may come back on a later promotion',
        "                if False:",
        "test_attack_demoted_admins_keys_do_not_come_back_on_repromotion",
        function="update_user",
    ),
    Mutant(
        "metrics: a label per made-up method",
        'key = (route, method if method in self.METHODS else "OTHER", status)',
        "key = (route, method, status)",
        "test_attack_made_up_methods_do_not_grow_the_metrics",
        function="Metrics.request_done",
    ),
    Mutant(
        "session: no absolute lifetime",
        "    return min(\n        now + timedelta(days=settings.refresh_token_days), created_at + timedelta(days=settings.session_max_days)\n    )",
        "    return now + timedelta(days=settings.refresh_token_days)",
        "test_session_has_an_absolute_lifetime",
        function="_session_expiry",
    ),
    # Second factors and passkeys (issue 25)
    Mutant(
        "passkeys: a stranger's answer spends the owner's budget",
        "    challenge, expires = _client_challenge(gatehouse, answer, purpose, user.id if user else None)\n"
        "    passkey = await _find_passkey(gatehouse, answer)",
        "    passkey = await _find_passkey(gatehouse, answer)\n"
        "    if passkey is not None:\n"
        "        await _check_rate(gatehouse, Keys.mfa_failures(passkey.user_id), gatehouse.settings.rate_mfa_failures)\n"
        "    challenge, expires = _client_challenge(gatehouse, answer, purpose, user.id if user else None)",
        "test_attack_strangers_junk_passkey_answers_never_spend_the_owners_second_factor_budget",
        function="_prove_passkey",
    ),
    Mutant(
        "codes: the owner's reserve is open to every address",
        "        if not await _is_known_address(gatehouse, user.id, ip_group(client.ip)):",
        "        if False:",
        "test_attack_password_holders_guessing_codes_from_elsewhere_cannot_lock_the_owner_out",
        function="_guarded_check",
    ),
    Mutant(
        "codes: no reserve for the owner",
        "        key = Keys.mfa_failures_known(user.id)\n        await _check_rate(gatehouse, key, rate)",
        "        raise RateLimited(wait)",
        "test_attack_password_holders_guessing_codes_from_elsewhere_cannot_lock_the_owner_out",
        function="_guarded_check",
    ),
    Mutant(
        "factor change: a recent sign-in is proof enough",
        "    else:\n        raise FactorProofRequired()",
        "    elif time.time() - principal.auth_time > gatehouse.settings.reauth_minutes * 60:\n        raise FactorProofRequired()",
        "test_attack_stolen_fresh_access_token_cannot_plant_or_strip_a_factor",
        function="require_factor_proof",
    ),
    Mutant(
        "factor change: the password proves it on an account with a factor",
        "    elif not has_factor and password is not None and user.password_hash:",
        "    elif password is not None and user.password_hash:",
        "test_attack_stolen_fresh_access_token_cannot_plant_or_strip_a_factor",
        function="require_factor_proof",
    ),
    Mutant(
        "factor change: any mailed code proves it",
        '        if not await _spend_login_code(gatehouse, user=user, code=email_code, purpose="email_code"):',
        "        if False:",
        "test_attack_removing_the_last_passkey_of_a_passwordless_account_is_refused",
        function="require_factor_proof",
    ),
    Mutant(
        "undo link: removes nothing",
        "        removed = tuple(await db.scalars(stmt))",
        "        removed = ()",
        "test_attack_a_planted_factor_is_removed_by_the_this_wasnt_me_link",
        function="undo_factor",
    ),
    Mutant(
        "undo link: removes an app enrolled after it",
        "named = TotpFactor.confirmed_at <= sa.literal(spent.created_at, UTCDateTime())",
        "named = sa.true()",
        "test_attack_a_planted_factor_is_removed_by_the_this_wasnt_me_link",
        function="undo_factor",
    ),
    Mutant(
        "undo link: the planter's sessions survive",
        '    ended = await _end_sessions(gatehouse, user_id=user.id, reason="factor_undo")',
        "    ended = 0",
        "test_attack_a_planted_factor_is_removed_by_the_this_wasnt_me_link",
        function="undo_factor",
    ),
    Mutant(
        "reset: a recently planted factor survives",
        "        removed = await _drop_recent_factors(gatehouse, db, user.id, keep_factors)",
        "        removed = []",
        "test_attack_a_planted_passkey_does_not_survive_a_password_reset",
        function="reset_password",
    ),
    Mutant(
        "reset: a mailbox strips established factors too",
        "Passkey.user_id == user_id, Passkey.created_at > since, Passkey.id.not_in(kept)",
        "Passkey.user_id == user_id, Passkey.id.not_in(kept)",
        "test_attack_a_planted_passkey_does_not_survive_a_password_reset",
        function="_drop_recent_factors",
    ),
    Mutant(
        "reset: the factors the owner keeps are removed",
        '    kept = [uuid.UUID(k) for k in keep if k != "totp"]',
        "    kept = []",
        "test_attack_a_planted_passkey_does_not_survive_a_password_reset",
        function="_drop_recent_factors",
    ),
    Mutant(
        "email change: a stolen session with the password moves an account with a factor",
        "    if factor_if_enrolled and await _has_second_factor(gatehouse, principal.user_id):",
        "    if False:",
        "test_attack_a_stolen_session_with_the_password_cannot_move_an_mfa_account_or_spend_its_undo_links",
        function="require_recent_proof",
    ),
    Mutant(
        "email change: keeping needs only a recent sign-in",
        "    await _prove_in_request(gatehouse, principal, body, client)\n    await keep_email_change(",
        "    await _prove(gatehouse, principal, body, client)\n    await keep_email_change(",
        "test_attack_a_stolen_session_with_the_password_cannot_move_an_mfa_account_or_spend_its_undo_links",
        function="keep_email_change_route",
    ),
    Mutant(
        "passkey: the counter is compared before the challenge is spent",
        "    count = verified.new_sign_count\n    try:",
        "    count = verified.new_sign_count\n"
        "    if (count or passkey.sign_count) and count <= passkey.sign_count:\n"
        "        await _refuse_clone(gatehouse, passkey, user, count, client)\n"
        "    try:",
        "test_attack_a_double_submitted_passkey_answer_is_a_spent_challenge_not_a_clone",
        function="_check_assertion",
    ),
    Mutant(
        "passkey clone: not mailed",
        "    if await gatehouse.cache.claim(Keys.clone_mail(passkey.id), 3600):",
        "    if False:",
        "test_attack_a_cloned_passkey_is_mailed_to_the_owner",
        function="_refuse_clone",
    ),
    Mutant(
        "passkey clone: mailed on every try",
        "    if await gatehouse.cache.claim(Keys.clone_mail(passkey.id), 3600):",
        "    if True:",
        "test_attack_a_cloned_passkey_is_mailed_to_the_owner",
        function="_refuse_clone",
    ),
    Mutant(
        "passkey answer: an untyped dict again",
        "WebauthnCredential = Annotated[\n    PasskeyAnswer,",
        "WebauthnCredential = Annotated[\n    dict[str, Any],",
        "test_attack_malformed_passkey_ids_are_refused_as_4xx_and_never_logged",
    ),
    Mutant(
        "log: a failed statement logs the driver's message and its values",
        '        log.error("unhandled database error %s in: %s", type(exc.orig).__name__, exc.statement)',
        '        log.exception("unhandled error", exc_info=exc)',
        "test_attack_a_failed_statement_never_logs_its_bound_values",
        backend="postgres",
        function="log_unhandled",
    ),
]


def _copy_repo() -> str:
    root = tempfile.mkdtemp(prefix="gatehouse-mutant-")
    target = os.path.join(root, "repo")
    shutil.copytree(REPO, target, ignore=IGNORED)
    return target


def _pytest(cwd: str, selection: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-k",
        selection,
    ]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


@functools.cache
def _definitions(source: str) -> dict[str, list[tuple[int, int]]]:
    """Each top-level def or class, and each method as `Class.method`: the character ranges it spans
    (decorators included; a list, so that a name defined twice is noticed rather than guessed)."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans: dict[str, list[tuple[int, int]]] = {}

    def add(name: str, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        spans.setdefault(name, []).append((starts[first - 1], starts[node.end_lineno or node.lineno]))

    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in ast.parse(source).body:
        if isinstance(node, kinds):
            add(node.name, node)
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, kinds):
                        add(f"{node.name}.{member.name}", member)
    return spans


def locate(mutant: Mutant, source: str) -> int:
    """Where `mutant.find` starts in `source`; ValueError unless it occurs exactly once where it must."""
    where, start, end = mutant.file, 0, len(source)
    if mutant.function:
        spans = _definitions(source).get(mutant.function, [])
        if len(spans) != 1:
            raise ValueError(f"{mutant.name}: {mutant.function} is defined {len(spans)} times in {mutant.file}")
        (start, end), where = spans[0], f"{mutant.function} in {mutant.file}"
    found = source.count(mutant.find, start, end)
    if found != 1:
        raise ValueError(f"{mutant.name}: snippet found {found} times in {where}, expected exactly once")
    return source.index(mutant.find, start, end)


def apply(mutant: Mutant, repo: str) -> None:
    """Make the change in `repo`; the snippet must occur exactly once (within `function` if given)."""
    path = os.path.join(repo, mutant.file)
    with open(path) as fh:
        source = fh.read()
    at = locate(mutant, source)
    with open(path, "w") as fh:
        fh.write(source[:at] + mutant.replace + source[at + len(mutant.find) :])


def run(mutant: Mutant) -> tuple[Mutant, str, float, str]:
    """(mutant, 'killed' | 'survived' | 'error', seconds, pytest's output)."""
    started = time.perf_counter()
    repo = _copy_repo()
    try:
        apply(mutant, repo)
        result = _pytest(repo, mutant.selection)
    finally:
        shutil.rmtree(os.path.dirname(repo), ignore_errors=True)
    # 1: a test failed (killed); 0: every test passed (survived); anything else: nothing ran as meant
    verdict = {1: "killed", 0: "survived"}.get(result.returncode, "error")
    if verdict == "killed" and " passed" not in result.stdout and " failed" not in result.stdout:
        verdict = "error"
    return mutant, verdict, time.perf_counter() - started, result.stdout + result.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", dest="match", default="", help="only mutants whose name contains this")
    parser.add_argument("-v", dest="verbose", action="store_true", help="print each mutant's pytest output")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="skip running the tests unmutated first")
    args = parser.parse_args()
    unplaced = []
    for mutant in MUTANTS:  # every snippet applies before anything runs
        with open(os.path.join(REPO, mutant.file)) as fh:
            try:
                locate(mutant, fh.read())
            except ValueError as exc:
                unplaced.append(str(exc))
    if unplaced:
        print("\n".join(unplaced))
        return 1
    chosen = [m for m in MUTANTS if args.match.lower() in m.name.lower()]
    started = time.perf_counter()
    if not args.no_baseline:
        union = " or ".join(f"({m.selection})" for m in chosen)
        baseline = _pytest(REPO, union)
        if baseline.returncode != 0:
            print(baseline.stdout[-4000:] + baseline.stderr[-2000:])
            print("the paired tests fail without any mutant: fix them first")
            return 1
        print(f"baseline: the paired tests pass unmutated ({baseline.stdout.strip().splitlines()[-1]})")
    results = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for mutant, verdict, seconds, output in pool.map(run, chosen):
            results.append((mutant, verdict))
            print(f"{verdict.upper():9} {seconds:5.1f}s  {mutant.name}  [{mutant.backend}: {mutant.tests}]", flush=True)
            if args.verbose or verdict == "error":
                print("\n".join("    " + line for line in output.strip().splitlines()[-25:]))
    killed = sum(1 for _, v in results if v == "killed")
    survived = [m.name for m, v in results if v == "survived"]
    errors = [m.name for m, v in results if v == "error"]
    print(
        f"\n{killed} killed, {len(survived)} survived, {len(errors)} errors "
        f"({len(results)} mutants in {time.perf_counter() - started:.0f} s)"
    )
    for name in survived:
        print(f"survived: {name}")
    return 1 if survived or errors else 0


if __name__ == "__main__":
    sys.exit(main())
