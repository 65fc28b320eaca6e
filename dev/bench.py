"""Gatehouse benchmark: figures as ratios against a floor measured in the same run.

    python dev/bench.py                 # every scenario, SQLite + memory and PostgreSQL + Redis
    python dev/bench.py --backend sqlite --duration 5
    python dev/bench.py --markdown      # also print the results as a Markdown table
    python dev/bench.py --scale         # only the scale scenario: 1M users, 10M audit events and sessions
    python dev/bench.py --scale --scale-users 100000 --scale-rows 1000000 --scale-expired 100000

Gatehouse runs as one uvicorn worker; the floor is a bare FastAPI app on the same uvicorn
settings whose endpoint returns the same user JSON with no auth. Compared figures are taken in
alternating one-second loads (floor, Gatehouse, floor, ...), so both see the same machine, and
every second also records the CPU time the hypervisor stole from this VM. Load comes from `wrk`
(apt-get install wrk) in a separate process, or, with a warning, from the built-in asyncio
client below, also in a separate process. Nothing here is a unit test: it prints figures.
"""

import argparse
import asyncio
import collections
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Response

HERE = Path(__file__).resolve().parent
REPO = HERE.parent  # service.py and cli.py live there; every process the bench starts runs there
sys.path.insert(0, str(REPO))  # `import service` when run as `python dev/bench.py`
PASSWORD = "bench password 123"
FLOOR_USER = {
    "id": "8573e5db-ae6e-4198-9b7c-2cb3757037e7",
    "email": "bench@example.com",
    "full_name": "Bench",
    "role": "user",
    "is_active": True,
    "created_at": "2026-11-25T22:50:23.753746Z",
    "updated_at": "2026-11-25T22:50:23.753749Z",
    "email_verified_at": None,
}

floor_app = FastAPI()


@floor_app.get("/users/me")
async def floor_me() -> dict[str, Any]:
    return FLOOR_USER


async def _nothing() -> None:
    return None


@floor_app.get("/with-dependency")
async def floor_with_dependency(_: Annotated[None, Depends(_nothing)]) -> Response:
    """What any route behind a FastAPI dependency starts from (CurrentUser is one): the same JSON,
    already serialised as Gatehouse sends it, behind a dependency that does nothing."""
    return Response(orjson.dumps(FLOOR_USER), media_type="application/json")


def host_app() -> FastAPI:
    """A host application that embeds Gatehouse with `mount_gatehouse` (settings from the
    environment): `/open` answers a user's JSON to anyone, `/protected` the caller's, behind
    `CurrentUser`. Served with `uvicorn --factory bench:host_app`."""
    import service

    host = FastAPI()

    @host.get("/open")
    async def open_route() -> Response:
        return Response(orjson.dumps(FLOOR_USER), media_type="application/json")

    @host.get("/protected")
    async def protected_route(principal: service.CurrentUser) -> Response:
        return Response(orjson.dumps(principal.user), media_type="application/json")

    service.mount_gatehouse(host, "/auth", service.load_settings())
    return host


# Load generation #############################################################


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    non_2xx: int = 0
    max_ms: float = 0.0
    client_cpu: float = 0.0  # CPU seconds the load generator itself used (it shares the machine's cores)
    latencies: tuple[tuple[int, int], ...] = ()  # wrk's histogram: (latency in µs, requests), to merge runs


def percentile_ms(latencies: Iterable[tuple[int, int]], pct: float) -> float:
    """The `pct` percentile of merged (µs, count) histograms, in ms (wrk's own rule: the first
    value at or past that share of the requests)."""
    merged = collections.Counter[int]()
    for value, count in latencies:
        merged[value] += count
    wanted, seen = sum(merged.values()) * pct / 100, 0
    for value in sorted(merged):
        seen += merged[value]
        if seen >= wanted:
            return value / 1000
    return 0.0


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


_WRK_ROTATE = """
local tokens, i = {}, 0
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


_WRK_PACE = """
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
function delay() return pause end
"""

_WRK_HISTOGRAM = """
done = function(summary, latency, requests)
  local out = {}
  for i = 1, #latency do
    local value, count = latency(i)
    out[#out + 1] = string.format("%d:%d", value, count)
  end
  io.write("HISTOGRAM " .. table.concat(out, ",") .. "\\n")
end
"""


def run_load(
    url: str,
    *,
    connections: int,
    duration: float,
    headers: dict[str, str] | None = None,
    tokens_file: str | None = None,
    requests: int | None = None,
    rate: float | None = None,
) -> Load:
    """Drive `url` from a separate process: wrk if installed, else the built-in client.
    With `rate`, each connection pauses between requests so the total is about `rate`/s."""
    if shutil.which("wrk") and requests is None:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(duration))}s", "--latency", url]
        for name, value in (headers or {}).items():
            cmd[1:1] = ["-H", f"{name}: {value}"]
        env = dict(os.environ)
        script = Path(tempfile.mkdtemp()) / "script.lua"
        script.write_text((_WRK_ROTATE if tokens_file else _WRK_PACE if rate else "") + _WRK_HISTOGRAM)
        cmd[1:1] = ["-s", str(script)]
        env["BENCH_TOKENS"] = tokens_file or ""
        env["BENCH_DELAY_MS"] = str(max(1, round(connections * 1000 / rate))) if rate else "0"
        used = _children_cpu()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        finally:
            shutil.rmtree(script.parent, ignore_errors=True)
        used = _children_cpu() - used
        percent = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
        latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", out, re.MULTILINE)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        histogram = re.search(r"^HISTOGRAM (.*)$", out, re.MULTILINE)
        return Load(
            rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
            p50_ms=_ms(percent["50"]),
            p99_ms=_ms(percent["99"]),
            errors=sum(int(g) for g in errors.groups()) if errors else 0,
            non_2xx=int(non_2xx[1]) if non_2xx else 0,
            max_ms=_ms(latency[1]) if latency else 0.0,
            client_cpu=used,
            latencies=tuple((int(v), int(c)) for v, c in (pair.split(":") for pair in histogram[1].split(",") if pair))
            if histogram
            else (),
        )
    cmd = [
        sys.executable,
        __file__,
        "--_load",
        url,
        "--_connections",
        str(connections),
        "--duration",
        str(duration),
        "--_headers",
        json.dumps(headers or {}),
    ]
    if tokens_file:
        cmd += ["--_tokens", tokens_file]
    if rate:
        cmd += ["--_pause", str(connections / rate)]
    if requests:
        cmd += ["--_requests", str(requests)]
    result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return Load(**result)


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def login_load_command(url: str, email: str, *, connections: int, duration: float) -> list[str]:
    """The built-in client, in its own process, logging in as `email` over and over (prints a Load as JSON)."""
    return [
        sys.executable,
        __file__,
        "--_load",
        f"{url}/auth/login",
        "--_connections",
        str(connections),
        "--duration",
        str(duration),
        "--_method",
        "POST",
        "--_body",
        json.dumps({"email": email, "password": PASSWORD}),
        "--_headers",
        json.dumps({"Content-Type": "application/json"}),
    ]


async def _builtin_load(
    url: str,
    connections: int,
    duration: float,
    headers: dict[str, str],
    tokens: list[str],
    total: int | None,
    method: str = "GET",
    body: bytes = b"",
    pause: float = 0.0,
) -> dict[str, Any]:
    """A keep-alive HTTP/1.1 client: `connections` loops, each one request at a time."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    host, port, path = match[1], int(match[2]), match[3]  # type: ignore[index]
    latencies: list[float] = []
    counts = {"errors": 0, "non_2xx": 0, "sent": 0}
    deadline = time.perf_counter() + duration

    async def loop() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline and (total is None or counts["sent"] < total):
            counts["sent"] += 1
            extra = dict(headers)
            if tokens:
                extra["Authorization"] = f"Bearer {tokens[counts['sent'] % len(tokens)]}"
            head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
            started = time.perf_counter()
            try:
                writer.write(head.encode() + body)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - started)
            if not status_line.split(b" ")[1].startswith(b"2"):
                counts["non_2xx"] += 1
            if pause:
                await asyncio.sleep(pause)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*[loop() for _ in range(connections)])
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = (
        (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else (lambda q: 0.0)
    )
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "errors": counts["errors"],
        "non_2xx": counts["non_2xx"],
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
    }


@dataclass
class Trace:
    """One run as back-to-back one-second loads, so a stall shows up as one bad second in the
    timeline. Its p99 is over all the run's requests (the seconds' histograms merged)."""

    seconds: list[Load]
    steal: list[float] = field(default_factory=list)  # % of this VM's CPU time the hypervisor took, per second
    server_cpu: list[list[float]] = field(default_factory=list)  # per second, the cores each server process used

    @property
    def rps(self) -> float:
        return statistics.mean(s.rps for s in self.seconds)

    @property
    def p50_ms(self) -> float:
        return statistics.median(s.p50_ms for s in self.seconds)

    @property
    def p99_ms(self) -> float:
        if all(s.latencies for s in self.seconds):
            return percentile_ms((pair for s in self.seconds for pair in s.latencies), 99)
        return self.worst_second_ms  # the built-in client keeps no histogram: the stricter figure

    @property
    def worst_second_ms(self) -> float:
        return max(s.p99_ms for s in self.seconds)

    @property
    def max_ms(self) -> float:
        return max(s.max_ms for s in self.seconds)

    @property
    def errors(self) -> int:
        return sum(s.errors + s.non_2xx for s in self.seconds)

    @property
    def client_cores(self) -> float:
        """How many cores the load generator kept busy, on average."""
        return sum(s.client_cpu for s in self.seconds) / max(1, len(self.seconds))

    @property
    def server_cores(self) -> float:
        """How many cores the server's processes kept busy, on average (when their pids were given)."""
        return sum(map(sum, self.server_cpu)) / max(1, len(self.server_cpu))

    def cpu_timeline(self) -> str:
        """Per second, each server process's cores: an uneven split shows whose connections were whose."""
        return "cores per second: " + " ".join("+".join(f"{c:.2f}" for c in second) for second in self.server_cpu)

    def timeline(self) -> str:
        line = "p99 per second: " + " ".join(f"{s.p99_ms:.1f}" for s in self.seconds) + " ms"
        return line + ("; steal " + " ".join(f"{s:.0f}" for s in self.steal) + " %" if self.steal else "")


def _cpu_clock() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return ticks[7], sum(ticks)


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used; 0 when it is gone or off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one_second(
    trace: Trace, url: str, connections: int, headers: dict[str, str] | None, pids: list[int] | None = None
) -> None:
    """Add a one-second load to `trace`, with the share of CPU time the hypervisor stole meanwhile
    (a bad second with high steal is the machine's, not the server's) and, given `pids`, the
    cores each of those processes used."""
    before, used = _cpu_clock(), [_process_cpu(pid) for pid in pids or ()]
    started = time.perf_counter()
    trace.seconds.append(run_load(url, connections=connections, duration=1, headers=headers))
    after, elapsed = _cpu_clock(), time.perf_counter() - started
    if before and after and after[1] > before[1]:
        trace.steal.append(100 * (after[0] - before[0]) / (after[1] - before[1]))
    if pids:
        trace.server_cpu.append([(_process_cpu(pid) - u) / elapsed for pid, u in zip(pids, used, strict=True)])


def run_alternating(
    loads: list[tuple[str, dict[str, str] | None]], *, seconds: float, pids: list[list[int]] | None = None
) -> list[Trace]:
    """Endpoints (url, headers) measured in turn, a one-second load each, so all see the same
    machine: on a virtual machine whose speed drifts from minute to minute, a ratio of two runs
    taken one after the other measures the drift as much as the servers. `pids`: per endpoint,
    the server processes whose cores to record each second."""
    traces = [Trace([]) for _ in loads]
    for _ in range(max(1, round(seconds))):
        for i, (trace, (url, headers)) in enumerate(zip(traces, loads, strict=True)):
            _one_second(trace, url, 32, headers, pids[i] if pids else None)
    return traces


def run_pair(
    a: str,
    b: str,
    *,
    seconds: float,
    headers_a: dict[str, str] | None = None,
    headers_b: dict[str, str] | None = None,
    pids: list[list[int]] | None = None,
) -> tuple[Trace, Trace]:
    first, second = run_alternating([(a, headers_a), (b, headers_b)], seconds=seconds, pids=pids)
    return first, second


# Servers #####################################################################


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    app: str
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: Any = None
    workers: int = 1
    factory: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        import httpx

        log = open(Path(tempfile.gettempdir()) / f"bench-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.app,
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
                *(["--workers", str(self.workers)] if self.workers > 1 else []),
                *(["--factory"] if self.factory else []),
            ],
            cwd=REPO,
            # `bench:floor_app` and `bench:host_app` are found next to this file, `service:app` in the repo
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
                **self.env,
            },
            stdout=log,
            stderr=log,
        )
        for _ in range(300):
            try:
                probe = {"bench:floor_app": "/users/me", "bench:host_app": "/open"}.get(self.app, "/health/live")
                if httpx.get(self.url + probe, timeout=1).status_code == 200:
                    if self.workers > 1:
                        time.sleep(2)  # the other workers finish starting too
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.app} did not start; see {log.name}")

    def worker_pids(self) -> list[int]:
        """The processes serving requests: uvicorn's worker processes with --workers, else the one."""
        if self.workers == 1:
            return [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            # the spawn start method leaves one helper besides the workers: the resource tracker
            return [
                int(pid) for pid in children if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
        except OSError:  # off Linux, or a process gone meanwhile: no per-worker figures
            return []

    def rss_mb(self) -> float:
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# Scenarios ###################################################################


@dataclass
class Row:
    backend: str
    scenario: str
    figure: str
    target: str
    passed: bool | None


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rows: list[Row] = []
        self.floor: Trace | None = None

    def record(self, backend: str, scenario: str, figure: str, target: str = "", passed: bool | None = None) -> None:
        row = Row(backend, scenario, figure, target, passed)
        self.rows.append(row)
        verdict = "" if passed is None else ("PASS" if passed else "FAIL")
        print(f"  {scenario:<34} {figure:<58} {target:<28} {verdict}", flush=True)

    def measure_floor(self) -> Trace:
        """The floor, alternating seconds with the same app's route behind a no-op dependency. The
        floor's server keeps running: every /users/me run alternates its seconds with it."""
        self.floor_server = Server("bench:floor_app").start()
        url = self.floor_server.url
        run_load(f"{url}/users/me", connections=32, duration=1)  # warm-up
        self.floor, dependency = run_pair(f"{url}/users/me", f"{url}/with-dependency", seconds=self.args.duration)
        f = self.floor
        self.record(
            "-",
            "floor: bare FastAPI /users/me",
            f"{f.rps:,.0f} rps  p50 {f.p50_ms:.2f} ms  p99 {f.p99_ms:.2f} ms  max {f.max_ms:.1f} ms",
        )
        print(f"    {f.timeline()}")
        self.record(
            "-",
            "floor + one no-op dependency",
            f"{dependency.rps:,.0f} rps ({dependency.rps / f.rps:.2f}x)  p99 {dependency.p99_ms:.2f} ms",
        )
        return f

    def stop_floor(self) -> None:
        if server := getattr(self, "floor_server", None):
            server.stop()

    def env_for(self, backend: str, database: str, redis_prefix: str) -> dict[str, str]:
        env = {
            "SECRET_KEY": "bench-" + "s" * 40,
            "RATE_GENERAL_IP": "1000000000/m",
            "RATE_AUTH_IP": "off",
            "RATE_LOGIN_FAILURES_ACCOUNT": "off",
            "RATE_LOGIN_FAILURES_ACCOUNT_IP": "off",
            "DATABASE_URL": database,
            "LOG_FORMAT": "json",
        }
        if backend == "postgres":
            env.update(REDIS_URL=self.args.redis_url, REDIS_PREFIX=redis_prefix)
        return env

    async def seed(self, env: dict[str, str], users: int) -> None:
        """Insert `users` plain users directly (all with one known password hash)."""
        import sqlalchemy as sa

        import service

        settings = service.Settings(**{k.lower(): v for k, v in env.items()})
        async with await service.Gatehouse.open(settings) as gatehouse:
            async with gatehouse.transaction() as db:
                have = await db.scalar(sa.select(sa.func.count()).select_from(service.User))
            template = await gatehouse.hasher.hash(PASSWORD)
            now = service.utcnow()
            rows = [
                {
                    "id": uuid.uuid4(),
                    "email": f"seed{i}@example.com",
                    "password_hash": template,
                    "full_name": "",
                    "role": "user",
                    "is_active": True,
                    "version": 1,
                    "created_at": now + timedelta(milliseconds=i),
                    "updated_at": now,
                }
                for i in range(have, users)
            ]
            for start in range(0, len(rows), 5000):
                async with gatehouse.transaction(write=True) as db:
                    await db.execute(sa.insert(service.User), rows[start : start + 5000])

    def run_backend(self, backend: str) -> None:
        import httpx

        print(f"\n== {backend}", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
        prefix = f"gatehouse-bench-{secrets.token_hex(3)}:"
        if backend == "sqlite":
            database = f"sqlite+aiosqlite:///{tmp}/bench.db"
        else:
            database = self._pg_database()
        env = self.env_for(backend, database, prefix)
        asyncio.run(self.seed(env, 1))  # migrate, and a first user
        server = Server("service:app", {**env, "BCRYPT_ROUNDS": "4"}).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                c.post("/auth/register", json={"email": "bench@example.com", "password": PASSWORD})
                tokens = c.post("/auth/login", json={"email": "bench@example.com", "password": PASSWORD}).json()
                access = tokens["access_token"]
                key = c.post(
                    "/api-keys",
                    headers={"Authorization": f"Bearer {access}"},
                    json={"name": "bench", "scopes": ["users:read"]},
                ).json()["key"]
            self.scenario_me(
                backend, server, {"access token": {"Authorization": f"Bearer {access}"}, "API key": {"X-API-Key": key}}
            )
            self.scenario_memory(backend, server, env)
        finally:
            server.stop()
        self.scenario_workers(backend, env)
        self.scenario_embedded(backend, env)
        self.scenario_login_storm(backend, env)
        self.scenario_pages(backend, env)
        if backend == "postgres":
            self.scenario_revocation(env)
            self._drop(database, prefix)

    def scenario_me(self, backend: str, server: Server, credentials: dict[str, dict[str, str]]) -> None:
        """RUNS consecutive runs of --duration seconds with production defaults (a JSON access
        line per request, metrics, the per-address limit counted). In each second of a run the
        floor and each credential take turns, a one-second load each. Per credential: rps against
        the floor's, and each run's p99 (all its requests) against the floor's p99 over the whole
        series; the floor's p99 in the same run is printed too. The per-second lines show where
        a bad second falls."""
        assert self.floor is not None
        url, floor_url = f"{server.url}/users/me", f"{self.floor_server.url}/users/me"
        loads: list[tuple[str, dict[str, str] | None]] = [(floor_url, None)]
        for headers in credentials.values():
            run_load(url, connections=32, duration=1, headers=headers)
            loads.append((url, headers))
        runs = [run_alternating(loads, seconds=self.args.duration) for _ in range(self.args.runs)]
        floors = [run[0] for run in runs]
        floor = Trace([second for f in floors for second in f.seconds])
        for column, name in enumerate(credentials, 1):
            ours = [run[column] for run in runs]
            rps = statistics.mean(g.rps for g in ours)
            ratio = rps / floor.rps
            p99_ratios = [g.p99_ms / floor.p99_ms for g in ours]
            same_run = [g.p99_ms / f.p99_ms for f, g in zip(floors, ours, strict=True)]
            ok = ratio >= 0.8 and max(p99_ratios) <= 2.0 and not any(g.errors for g in ours)
            self.record(
                backend,
                f"GET /users/me, {name}",
                f"{rps:,.0f} rps ({ratio:.2f}x); {len(ours)} runs p99 {min(p99_ratios):.2f}-{max(p99_ratios):.2f}x "
                f"the floor's {floor.p99_ms:.1f} ms ({min(same_run):.2f}-{max(same_run):.2f}x its same-run p99), "
                f"max {max(g.max_ms for g in ours):.1f} ms",
                ">=0.8x rps, every run p99 <=2x",
                ok,
            )
            for i, (f, g) in enumerate(zip(floors, ours, strict=True), 1):
                print(
                    f"    {name} run {i}: {g.rps:,.0f} rps (floor {f.rps:,.0f}), p99 {g.p99_ms:.1f} ms "
                    f"(floor {f.p99_ms:.1f}), max {g.max_ms:.1f} ms, {g.timeline()}"
                )
        for i, f in enumerate(floors, 1):
            print(f"    floor run {i}: {f.timeline()}")

    def scenario_memory(self, backend: str, server: Server, env: dict[str, str]) -> None:
        """RSS after --memory-requests requests with distinct valid tokens vs after warm-up."""
        import jwt

        import service

        settings = service.Settings(**{k.lower(): v for k, v in env.items()})
        issuer = service.TokenIssuer(settings, settings.secret_key.get_secret_value().encode())  # type: ignore[union-attr]
        import httpx

        with httpx.Client(base_url=server.url) as c:
            pair = c.post("/auth/login", json={"email": "bench@example.com", "password": PASSWORD}).json()
        header, claims = (
            jwt.get_unverified_header(pair["access_token"]),
            jwt.decode(pair["access_token"], options={"verify_signature": False}),
        )
        key = issuer._hmac_key(header["kid"])
        count = self.args.memory_requests
        path = Path(tempfile.gettempdir()) / f"bench-tokens-{os.getpid()}.txt"
        with open(path, "w") as fh:  # distinct tokens (jti) for one live session
            for i in range(count):
                fh.write(jwt.encode({**claims, "jti": f"bench-{i}"}, key, algorithm="HS256", headers=header) + "\n")
        url = f"{server.url}/users/me"
        run_load(url, connections=32, duration=2, tokens_file=str(path))
        warm = server.rss_mb()
        load = run_load(url, connections=32, duration=max(5.0, count / 3000), tokens_file=str(path))
        after = server.rss_mb()
        ok = after - warm <= 64 and load.errors == 0 and load.non_2xx == 0
        self.record(
            backend,
            f"memory, {count:,} distinct tokens",
            f"RSS {warm:.0f} -> {after:.0f} MB (+{after - warm:.1f}) at {load.rps:,.0f} rps",
            "<= +64 MB",
            ok,
        )
        path.unlink()

    def scenario_login_storm(self, backend: str, env: dict[str, str]) -> None:
        """16 concurrent logins at production bcrypt cost while /health/live is probed."""
        import bcrypt

        rounds = 12
        sample = bcrypt.hashpw(b"x" * 44, bcrypt.gensalt(rounds))
        times = []
        for _ in range(3):
            started = time.perf_counter()
            bcrypt.checkpw(b"x" * 44, sample)
            times.append(time.perf_counter() - started)
        one_check = statistics.median(times)
        server = Server("service:app", {**env, "BCRYPT_ROUNDS": str(rounds)}).start()
        try:
            import httpx

            email = f"storm-{secrets.token_hex(3)}@example.com"
            httpx.post(f"{server.url}/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
            health = f"{server.url}/health/live"
            idle = run_load(health, connections=4, duration=2)  # the reference for the flood's rps only
            cmd = login_load_command(server.url, email, connections=16, duration=self.args.duration + 2)
            storm = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            time.sleep(1.0)
            during = run_load(health, connections=4, duration=self.args.duration)  # a flood, not paced
            logins = Load(**json.loads(storm.communicate()[0]))
        finally:
            server.stop()
        cores = os.cpu_count() or 1
        target = 0.8 * cores / one_check
        ok_health = during.p99_ms <= 25 and during.errors == 0
        self.record(
            backend,
            "login storm: /health/live, 4 conns",
            f"p99 {during.p99_ms:.1f} ms, max {during.max_ms:.0f} ms, {during.rps:,.0f} rps "
            f"({during.rps / idle.rps:.2f}x idle {idle.rps:,.0f}; not paced)",
            "p99 <=25 ms",
            ok_health,
        )
        self.record(
            backend,
            "login storm: logins",
            f"{logins.rps:.1f}/s (one check {one_check * 1000:.0f} ms, {cores} cores) non-2xx {logins.non_2xx}",
            f">= {target:.1f}/s",
            logins.rps >= target and logins.non_2xx == 0,
        )

    def scenario_pages(self, backend: str, env: dict[str, str]) -> None:
        """An admin page of 50 users, deep in the list, at 1,000 and at --page-users users (1M: --scale)."""
        import httpx

        results = {}
        for users in (1_000, self.args.page_users):
            asyncio.run(self.seed(env, users))
            server = Server("service:app", {**env, "BCRYPT_ROUNDS": "4"}).start()
            try:
                with httpx.Client(base_url=server.url, timeout=30) as c:
                    email = f"admin-{secrets.token_hex(3)}@example.com"
                    asyncio.run(self._admin(env, email))
                    token = c.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
                    auth = {"Authorization": f"Bearer {token}"}
                    cursor = None
                    for _ in range(users // 2 // 200):  # walk to the middle of the list
                        cursor = c.get(
                            "/users", headers=auth, params={"limit": 200, **({"cursor": cursor} if cursor else {})}
                        ).json()["next_cursor"]
                url = f"{server.url}/users?limit=50" + (f"&cursor={cursor}" if cursor else "")
                run_load(url, connections=4, duration=1, headers=auth)
                results[users] = run_load(url, connections=4, duration=3, headers=auth)  # p50s: steady in 3 s
            finally:
                server.stop()
        small, big = results[1_000], results[self.args.page_users]
        ratio = big.p50_ms / small.p50_ms
        self.record(
            backend,
            "admin GET /users page (50)",
            f"p50 {small.p50_ms:.2f} ms @1k, {big.p50_ms:.2f} ms @{self.args.page_users // 1000}k ({ratio:.2f}x)",
            "<= 1.5x",
            ratio <= 1.5,
        )

    async def _admin(self, env: dict[str, str], email: str) -> None:
        import service

        settings = service.Settings(**{k.lower(): v for k, v in env.items()}, bcrypt_rounds=4)
        async with await service.Gatehouse.open(settings) as gatehouse:
            await service.create_user(gatehouse, email=email, password=PASSWORD, role="admin")

    def scenario_revocation(self, env: dict[str, str]) -> None:
        """Logout on A, then poll B until it refuses the token: the propagation time."""
        import httpx

        a = Server("service:app", {**env, "BCRYPT_ROUNDS": "4"}).start()
        b = Server("service:app", {**env, "BCRYPT_ROUNDS": "4"}).start()
        delays = []
        try:
            with httpx.Client(base_url=a.url) as on_a, httpx.Client(base_url=b.url) as on_b:
                for _ in range(self.args.revocations):
                    token = on_a.post("/auth/login", json={"email": "bench@example.com", "password": PASSWORD}).json()[
                        "access_token"
                    ]
                    auth = {"Authorization": f"Bearer {token}"}
                    assert on_b.get("/users/me", headers=auth).status_code == 200  # B holds it in cache
                    on_a.post("/auth/logout", headers=auth)
                    done = time.perf_counter()
                    while on_b.get("/users/me", headers=auth).status_code == 200:
                        if time.perf_counter() - done > 5:
                            break
                    delays.append((time.perf_counter() - done) * 1000)
        finally:
            a.stop()
            b.stop()
        delays.sort()
        p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
        self.record(
            "postgres",
            "revocation A -> B",
            f"p50 {statistics.median(delays):.1f} ms, p99 {p99:.1f} ms over {len(delays)}",
            "p99 <= 100 ms",
            p99 <= 100,
        )

    def _login(self, url: str, email: str = "bench@example.com") -> str:
        import httpx

        response = httpx.post(f"{url}/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
        return response.json()["access_token"]

    def scenario_workers(self, backend: str, env: dict[str, str]) -> None:
        """`uvicorn --workers 2` (PROMETHEUS_MULTIPROC_DIR set): rps against one worker's on the same
        database, seconds alternating, and how long a logout takes to be refused by every worker
        (fresh connections land on either)."""
        import httpx

        metrics_dir = tempfile.mkdtemp(prefix="gatehouse-bench-metrics-")
        server = Server(
            "service:app", {**env, "BCRYPT_ROUNDS": "4", "PROMETHEUS_MULTIPROC_DIR": metrics_dir}, workers=2
        ).start()
        single = Server("service:app", {**env, "BCRYPT_ROUNDS": "4"}).start()
        delays: list[float] = []
        try:
            auth = {"Authorization": f"Bearer {self._login(server.url)}"}
            run_load(f"{server.url}/users/me", connections=32, duration=1, headers=auth)
            run_load(f"{single.url}/users/me", connections=32, duration=1, headers=auth)
            one_trace, trace = run_pair(
                f"{single.url}/users/me",
                f"{server.url}/users/me",
                seconds=self.args.duration,
                headers_a=auth,
                headers_b=auth,
                pids=[single.worker_pids(), server.worker_pids()],
            )
            single.stop()
            fresh = httpx.Limits(max_keepalive_connections=0)  # every request a new connection: any worker
            with httpx.Client(base_url=server.url, limits=fresh, timeout=10) as c:
                for _ in range(20):
                    auth = {"Authorization": f"Bearer {self._login(server.url)}"}
                    for _ in range(8):  # both workers hold the session in their caches
                        assert c.get("/users/me", headers=auth).status_code == 200
                    c.post("/auth/logout", headers=auth)
                    done, refused_since = time.perf_counter(), None
                    refused = 0
                    while refused < 10 and time.perf_counter() - done < 5:
                        if c.get("/users/me", headers=auth).status_code == 401:
                            refused_since = refused_since or time.perf_counter()
                            refused += 1
                        else:
                            refused_since, refused = None, 0
                    delays.append(((refused_since or time.perf_counter()) - done) * 1000)
        finally:
            single.stop()
            server.stop()
            shutil.rmtree(metrics_dir, ignore_errors=True)
        one = one_trace.rps
        ratio = trace.rps / one
        self.record(
            backend,
            "2 workers: GET /users/me",
            f"{trace.rps:,.0f} rps ({ratio:.2f}x one worker's {one:,.0f}), p99 {trace.p99_ms:.1f} ms; cores: "
            f"workers {trace.server_cores:.2f} (one worker {one_trace.server_cores:.2f}), "
            f"wrk {trace.client_cores:.2f} ({one_trace.client_cores:.2f})",
            ">= 1.6x one worker",
            ratio >= 1.6 and trace.errors == 0,
        )
        print(f"    2 workers {trace.cpu_timeline()}\n    1 worker  {one_trace.cpu_timeline()}")
        self.record(
            backend,
            "2 workers: logout refused by both",
            f"max {max(delays):.1f} ms, median {statistics.median(delays):.1f} ms over {len(delays)} logouts",
            "<= 100 ms",
            max(delays) <= 100,
        )

    def scenario_embedded(self, backend: str, env: dict[str, str]) -> None:
        """A host app's route behind Gatehouse's `CurrentUser` (`mount_gatehouse`) against the same
        route with no protection, in the same process."""
        server = Server("bench:host_app", {**env, "BCRYPT_ROUNDS": "4"}, factory=True).start()
        try:
            import httpx

            httpx.post(
                f"{server.url}/auth/auth/register", json={"email": "host@example.com", "password": PASSWORD}, timeout=30
            )
            token = httpx.post(
                f"{server.url}/auth/auth/login", json={"email": "host@example.com", "password": PASSWORD}, timeout=30
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            run_load(f"{server.url}/protected", connections=32, duration=1, headers=auth)
            open_, protected = run_pair(
                f"{server.url}/open", f"{server.url}/protected", seconds=self.args.duration, headers_b=auth
            )
        finally:
            server.stop()
        ratio = protected.rps / open_.rps
        self.record(
            backend,
            "embedded: host route + CurrentUser",
            f"{protected.rps:,.0f} rps vs {open_.rps:,.0f} unprotected ({ratio:.2f}x), "
            f"p99 {protected.p99_ms:.1f} vs {open_.p99_ms:.1f} ms",
            ">= 0.8x",
            ratio >= 0.8 and protected.errors == 0,
        )

    def _pg_database(self) -> str:
        name = f"gatehouse_bench_{secrets.token_hex(3)}"
        subprocess.run(["psql", self.args.pg_admin_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
        return self.args.pg_admin_url.rsplit("/", 1)[0] + "/" + name

    def _drop(self, database: str, prefix: str) -> None:
        import redis

        name = database.rsplit("/", 1)[1]
        subprocess.run(
            ["psql", self.args.pg_admin_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False
        )
        client = redis.Redis.from_url(self.args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)

    def markdown(self) -> str:
        lines = ["| backend | scenario | figure | target | result |", "| --- | --- | --- | --- | --- |"]
        for r in self.rows:
            verdict = "" if r.passed is None else ("PASS" if r.passed else "FAIL")
            lines.append(f"| {r.backend} | {r.scenario} | {r.figure} | {r.target} | {verdict} |")
        return "\n".join(lines)


# Scale #######################################################################

# `--scale`: the same requests against a small and a big database, bulk-seeded straight into the
# tables (not through the API): every admin list filter, GET /users/{id}, an admin page in the
# middle of the list, login (bcrypt cost 4, so the hash does not hide the lookup), the serving
# process's RSS, and /users/me while one purge pass removes a million expired sessions.

SCALE_SMALL = 1_000
_SQLITE_TIME = "strftime('%Y-%m-%d %H:%M:%f', :base, '+' || ({ms}) || ' seconds') || '000'"


def _seed_id(table: int, i: int) -> uuid.UUID:
    """The id bulk seeding gives row `i` of table 1 (users), 2 (audit events) or 3 (sessions)."""
    return uuid.UUID(f"{table:08x}{i:024x}")


@dataclass
class ScaleSize:
    users: int
    audit: int
    sessions: int
    expired: int  # of the sessions beyond the first SCALE_SMALL, about this many expired long ago


class Scale:
    """Bulk seeding and the measurements at two sizes, for one backend."""

    # Exists at both sizes, with the same one audit event and one session at both (the rows added
    # for the big size go to other users), so each list answers the same page at both sizes.
    TARGET_USER = 500
    LOGIN_USER = 600  # logs in over and over: its sessions would change the target's lists

    def __init__(self, bench: "Bench", backend: str):
        self.bench, self.backend, self.args = bench, backend, bench.args
        self.now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        self.have = ScaleSize(0, 0, 0, 0)

    def _vars(self, size: ScaleSize) -> dict[str, Any]:
        every = -(-(size.sessions - SCALE_SMALL) // size.expired) if size.expired else 0  # ceiling
        have = self.have
        return {
            "u0": have.users,
            "u1": size.users,
            "a0": have.audit,
            "a1": size.audit,
            "s0": have.sessions,
            "s1": size.sessions,
            "n": size.users,
            "every": every,
            "base_users": (self.now - timedelta(days=400)).isoformat(sep=" "),
            "base_audit": (self.now - timedelta(days=10)).isoformat(sep=" "),
            "base_sessions": (self.now - timedelta(days=5)).isoformat(sep=" "),
            "live": (self.now + timedelta(days=20)).isoformat(sep=" "),
            "dead": (self.now - timedelta(days=30)).isoformat(sep=" "),
        }

    def seed(self, database: str, size: ScaleSize) -> float:
        """Grow users, audit events and sessions to `size`, then refresh planner statistics; seconds."""
        import service

        started = time.perf_counter()
        hasher = service.PasswordHasher(rounds=4, workers=1)
        password_hash = hasher._hash_sync(PASSWORD)  # one hash for every seeded user
        hasher.close()
        values = {**self._vars(size), "hash": password_hash}
        if self.backend == "postgres":
            self._seed_postgres(database, values)
        else:
            self._seed_sqlite(database, values)
        self.have = size
        return time.perf_counter() - started

    def _seed_postgres(self, database: str, v: dict[str, Any]) -> None:
        def uid(table: int, expr: str) -> str:
            return f"('{table:08x}' || lpad(to_hex({expr}), 24, '0'))::uuid"

        # The times are UTC without an offset (as SQLite stores them): say so to PostgreSQL.
        times = ("base_users", "base_audit", "base_sessions", "live", "dead")
        q = {k: (f"'{x}{'+00' if k in times else ''}'" if isinstance(x, str) else x) for k, x in v.items()}
        every = f"(i >= {SCALE_SMALL} AND {q['every']} > 0 AND i % greatest({q['every']}, 1) = 0)"
        owner = f"i % {q['n']} + (CASE WHEN i >= {SCALE_SMALL} AND i % {q['n']} = {self.TARGET_USER} THEN 1 ELSE 0 END)"
        statements = [
            f"""INSERT INTO users (id, email, password_hash, full_name, role, is_active, version,
                created_at, updated_at)
            SELECT {uid(1, "i")}, 'user' || i || '@example.com', {q["hash"]}, '',
                CASE WHEN i = 7 THEN 'admin' ELSE 'user' END, i <> 3, 1,
                {q["base_users"]}::timestamptz + i * interval '1 millisecond',
                {q["base_users"]}::timestamptz + i * interval '1 millisecond'
            FROM generate_series({q["u0"]}, {q["u1"]} - 1) AS i""",
            f"""INSERT INTO audit_events (id, at, event, outcome, subject_id, ip, user_agent, detail)
            SELECT {uid(2, "i")}, {q["base_audit"]}::timestamptz + i * interval '50 milliseconds',
                CASE WHEN i = 11 THEN 'user.delete' ELSE 'auth.login' END, 'success',
                {uid(1, owner)}, '', '', '{{}}'
            FROM generate_series({q["a0"]}, {q["a1"]} - 1) AS i""",
            f"""INSERT INTO sessions (id, user_id, generation, created_at, refreshed_at, expires_at,
                user_agent, ip, amr, aal, last_ip)
            SELECT {uid(3, "i")}, {uid(1, owner)}, 0,
                {q["base_sessions"]}::timestamptz + i * interval '10 milliseconds',
                {q["base_sessions"]}::timestamptz + i * interval '10 milliseconds',
                CASE WHEN {every} THEN {q["dead"]}::timestamptz ELSE {q["live"]}::timestamptz END,
                '', '', 'pwd', 1, ''
            FROM generate_series({q["s0"]}, {q["s1"]} - 1) AS i""",
            # Statistics, hint bits and the visibility map now, so autovacuum does not start on
            # the new rows in the middle of the measurements.
            "VACUUM ANALYZE",
        ]
        for sql in statements:
            subprocess.run(["psql", database, "-qc", sql], check=True)

    def _seed_sqlite(self, database: str, v: dict[str, Any]) -> None:
        import sqlite3

        def uid(table: int, expr: str) -> str:
            return f"printf('{table:08x}%024x', {expr})"

        def at(base: str, seconds: str) -> str:
            return _SQLITE_TIME.replace(":base", f":{base}").format(ms=seconds)

        def series(lo: str, hi: str) -> str:
            return f"WITH RECURSIVE s(i) AS (SELECT :{lo} UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :{hi}) "

        every = f"(i >= {SCALE_SMALL} AND :every > 0 AND i % max(:every, 1) = 0)"
        owner = f"i % :n + (CASE WHEN i >= {SCALE_SMALL} AND i % :n = {self.TARGET_USER} THEN 1 ELSE 0 END)"
        statements = [
            series("u0", "u1")
            + f"""INSERT INTO users (id, email, password_hash, full_name, role, is_active, version,
                created_at, updated_at)
            SELECT {uid(1, "i")}, 'user' || i || '@example.com', :hash, '',
                CASE WHEN i = 7 THEN 'admin' ELSE 'user' END, i <> 3, 1,
                {at("base_users", "i / 1000.0")}, {at("base_users", "i / 1000.0")}
            FROM s WHERE :u0 < :u1""",
            series("a0", "a1")
            + f"""INSERT INTO audit_events (id, at, event, outcome, subject_id, ip, user_agent, detail)
            SELECT {uid(2, "i")}, {at("base_audit", "i / 20.0")},
                CASE WHEN i = 11 THEN 'user.delete' ELSE 'auth.login' END, 'success',
                {uid(1, owner)}, '', '', '{{}}'
            FROM s WHERE :a0 < :a1""",
            series("s0", "s1")
            + f"""INSERT INTO sessions (id, user_id, generation, created_at, refreshed_at, expires_at,
                user_agent, ip, amr, aal, last_ip)
            SELECT {uid(3, "i")}, {uid(1, owner)}, 0,
                {at("base_sessions", "i / 100.0")}, {at("base_sessions", "i / 100.0")},
                CASE WHEN {every} THEN :dead ELSE :live END, '', '', 'pwd', 1, ''
            FROM s WHERE :s0 < :s1""",
        ]
        path = database.split("///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=OFF")  # seeding only: the service sets its own
            conn.execute("PRAGMA cache_size=-262144")
            for sql in statements:
                names = set(re.findall(r":(\w+)", sql))
                conn.execute("BEGIN")
                conn.execute(sql, {k: x for k, x in v.items() if k in names})
                conn.execute("COMMIT")
            conn.execute("ANALYZE")
        finally:
            conn.close()

    # measuring ----------------------------------------------------------------

    def _requests(self, admin: dict[str, str], server: Server) -> dict[str, str]:
        """Each list filter (and GET /users/{id}, the sessions list) as a URL to load."""
        from urllib.parse import quote

        target = self.TARGET_USER
        user_id = _seed_id(1, target)
        window = [self.have.audit // 2, self.have.audit // 2 + 100]
        base = self.now - timedelta(days=10)
        since, until = (quote((base + timedelta(milliseconds=50 * j)).isoformat() + "Z") for j in window)
        return {
            "users ?email= exact": f"/users?email=user{target}@example.com&match=exact",
            "users ?email= prefix": f"/users?email=user{target}@&match=prefix",
            # A substring whose trigrams few addresses share (every seeded address has "user" and
            # "@example.com": a substring made only of those costs in proportion to the table).
            "users ?email= contains": f"/users?email=r{target}@&match=contains",
            "users ?role=admin": "/users?role=admin",
            "users ?active=false": "/users?active=false",
            "audit ?user_id=": f"/audit?user_id={user_id}",
            "audit ?event= (rare)": "/audit?event=user.delete",
            "audit ?since=&until=": f"/audit?since={since}&until={until}",
            "user's sessions": f"/users/{user_id}/sessions",
            "GET /users/{id}": f"/users/{user_id}",
        }

    async def _make_admin(self, env: dict[str, str]) -> str:
        import service

        settings = service.Settings(**{k.lower(): x for k, x in env.items()}, bcrypt_rounds=4)
        email = f"scale-admin-{secrets.token_hex(3)}@example.com"
        async with await service.Gatehouse.open(settings) as gatehouse:
            await service.create_user(gatehouse, email=email, password=PASSWORD, role="admin")
        return email

    def _middle_cursor(self, server: Server, auth: dict[str, str]) -> str:
        import service

        middle = self.have.users // 2
        created = (self.now - timedelta(days=400) + timedelta(milliseconds=middle)).replace(tzinfo=UTC)
        return service._encode_cursor(created, _seed_id(1, middle))

    def _login_load(self, server: Server, email: str) -> Load:
        cmd = login_load_command(server.url, email, connections=2, duration=self.args.duration)
        return Load(**json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout))

    def measure(self, env: dict[str, str]) -> dict[str, Any]:
        """p50 of every request at the current size, login p50, and the server's RSS afterwards."""
        import httpx

        server = Server("service:app", {**env, "BCRYPT_ROUNDS": "4", "PURGE_INTERVAL_SECONDS": "0"}).start()
        try:
            email = asyncio.run(self._make_admin(env))
            with httpx.Client(base_url=server.url, timeout=60) as c:
                token = c.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            urls = self._requests(auth, server)
            urls["admin page in the middle"] = "/users?limit=50&cursor=" + self._middle_cursor(server, auth)
            figures: dict[str, Any] = {}
            for name, path in urls.items():
                with httpx.Client(base_url=server.url, timeout=60) as c:
                    r = c.get(path, headers=auth)
                    assert r.status_code == 200, (name, r.status_code, r.text[:300])
                run_load(server.url + path, connections=2, duration=1, headers=auth)
                figures[name] = run_load(server.url + path, connections=2, duration=self.args.duration, headers=auth)
            figures["login"] = self._login_load(server, f"user{self.LOGIN_USER}@example.com")
            figures["rss"] = server.rss_mb()
            return figures
        finally:
            server.stop()

    def purge_under_load(self, env: dict[str, str]) -> tuple[Load, Load, float, str]:
        """/users/me idle, then while `cli.py purge` runs in its own process; its time and output."""
        import httpx

        server = Server("service:app", {**env, "BCRYPT_ROUNDS": "4", "PURGE_INTERVAL_SECONDS": "0"}).start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                login = {"email": f"user{self.TARGET_USER}@example.com", "password": PASSWORD}
                token = c.post("/auth/login", json=login).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            url = f"{server.url}/users/me"
            run_load(url, connections=4, duration=1, headers=auth, rate=400)
            idle = run_load(url, connections=4, duration=self.args.duration, headers=auth, rate=400)
            started = time.perf_counter()
            purge = subprocess.Popen(
                [sys.executable, "cli.py", "purge"],
                cwd=REPO,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            time.sleep(1.0)
            during = run_load(url, connections=4, duration=self.args.duration, headers=auth, rate=400)
            still_running = purge.poll() is None
            output = purge.communicate()[0]
            elapsed = time.perf_counter() - started
            if not still_running:
                output += "\n(note: the purge finished before the load did)"
            return idle, during, elapsed, output
        finally:
            server.stop()

    def run(self) -> None:
        big = ScaleSize(self.args.scale_users, self.args.scale_rows, self.args.scale_rows, self.args.scale_expired)
        print(
            f"\n== {self.backend}: scale, {SCALE_SMALL:,} rows vs {big.users:,} users, {big.audit:,} audit "
            f"events, {big.sessions:,} sessions ({big.expired:,} expired)",
            flush=True,
        )
        tmp = Path(tempfile.mkdtemp(prefix="gatehouse-scale-"))
        prefix = f"gatehouse-scale-{secrets.token_hex(3)}:"
        database = f"sqlite+aiosqlite:///{tmp}/scale.db" if self.backend == "sqlite" else self.bench._pg_database()
        env = self.bench.env_for(self.backend, database, prefix)
        try:
            asyncio.run(self.bench.seed(env, 0))  # migrate
            seconds = self.seed(database, ScaleSize(SCALE_SMALL, SCALE_SMALL, SCALE_SMALL, 0))
            small = self.measure(env)
            seconds = self.seed(database, big)
            self.bench.record(self.backend, "scale: bulk seed", f"{seconds:,.0f} s to grow to the big size")
            large = self.measure(env)
            self._report(small, large, big)
            idle, during, elapsed, output = self.purge_under_load(env)
            removed = re.search(r"sessions\s+removed (\d+)", output)
            ratio = during.p99_ms / idle.p99_ms
            self.bench.record(
                self.backend,
                "scale: /users/me during a purge",
                f"p99 {idle.p99_ms:.2f} ms idle, {during.p99_ms:.2f} ms purging ({ratio:.2f}x); "
                f"{removed[1] if removed else '?'} sessions in {elapsed:.0f} s",
                "p99 <= 2x idle",
                ratio <= 2.0 and during.errors == 0 and during.non_2xx == 0,
            )
            if not removed or "finished before" in output:
                print("    purge output: " + " | ".join(output.split("\n")), flush=True)
        finally:
            if self.backend == "postgres":
                self.bench._drop(database, prefix)
            shutil.rmtree(tmp, ignore_errors=True)

    def _report(self, small: dict[str, Any], large: dict[str, Any], big: ScaleSize) -> None:
        limits = {"GET /users/{id}": 1.2, "login": 1.2, "admin page in the middle": 1.5}
        size = f"@{big.users // 1000:,}k users, {big.audit / 1e6:g}M rows"
        for name, load in small.items():
            if name == "rss":
                continue
            limit = limits.get(name, 2.0)
            ratio = large[name].p50_ms / load.p50_ms
            ok = ratio <= limit and large[name].errors == 0 and large[name].non_2xx == 0
            self.bench.record(
                self.backend,
                f"scale: {name}",
                f"p50 {load.p50_ms:.2f} ms @1k, {large[name].p50_ms:.2f} ms {size} ({ratio:.2f}x)",
                f"<= {limit:g}x",
                ok,
            )
        grown = large["rss"] - small["rss"]
        self.bench.record(
            self.backend,
            "scale: serving process RSS",
            f"{small['rss']:.0f} MB @1k, {large['rss']:.0f} MB {size} (+{grown:.0f})",
            "<= +32 MB",
            grown <= 32,
        )


def _servers_reachable(args: argparse.Namespace) -> str | None:
    import redis

    if shutil.which("psql") is None:
        return "psql is not installed"
    if subprocess.run(["psql", args.pg_admin_url, "-qc", "SELECT 1"], capture_output=True).returncode != 0:
        return f"PostgreSQL is not reachable at {args.pg_admin_url}"
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis is not reachable at {args.redis_url} ({exc})"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--runs", type=int, default=5, help="consecutive runs of each /users/me measurement")
    parser.add_argument("--page-users", type=int, default=10_000)
    parser.add_argument("--memory-requests", type=int, default=20_000)
    parser.add_argument("--revocations", type=int, default=100)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--scale", action="store_true", help="run only the scale scenario (bulk-seeded; long: tens of minutes)"
    )
    parser.add_argument("--scale-users", type=int, default=1_000_000)
    parser.add_argument("--scale-rows", type=int, default=10_000_000, help="audit events and sessions each")
    parser.add_argument("--scale-expired", type=int, default=1_000_000, help="expired sessions for the purge")
    for hidden in (
        "--_load",
        "--_connections",
        "--_headers",
        "--_tokens",
        "--_requests",
        "--_method",
        "--_body",
        "--_pause",
    ):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._load:  # the built-in load generator, in its own process
        tokens = Path(args._tokens).read_text().split() if args._tokens else []
        result = asyncio.run(
            _builtin_load(
                args._load,
                int(args._connections),
                args.duration,
                json.loads(args._headers or "{}"),
                tokens,
                int(args._requests) if args._requests else None,
                args._method or "GET",
                (args._body or "").encode(),
                float(args._pause or 0),
            )
        )
        print(json.dumps(result))
        return
    if not shutil.which("wrk"):
        print(
            "warning: wrk is not installed (apt-get install wrk); using the built-in asyncio client, "
            "which saturates sooner and understates every server alike",
            file=sys.stderr,
        )
    bench = Bench(args)
    print(
        f"Gatehouse benchmark — {os.cpu_count()} cores, {args.duration:g} s per measurement, "
        f"load from {'wrk' if shutil.which('wrk') else 'the built-in client'}"
    )
    if not args.scale:
        bench.measure_floor()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    try:
        for backend in backends:
            if backend == "postgres" and (reason := _servers_reachable(args)):
                print(f"\n== postgres: skipped ({reason})")
                continue
            if args.scale:
                Scale(bench, backend).run()
            else:
                bench.run_backend(backend)
    finally:
        bench.stop_floor()
    failed = [r for r in bench.rows if r.passed is False]
    print(f"\n{sum(r.passed is True for r in bench.rows)} targets met, {len(failed)} missed")
    if args.markdown:
        print("\n" + bench.markdown())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
