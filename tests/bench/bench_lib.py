"""Shared pieces of the deprov benchmarks (tests/bench/scim.sh, tests/bench/delivery.sh).

Standard library only. Everything listens on and talks to 127.0.0.1; every wait and every
loop is bounded in time and in count; every process started here is stopped here, by its
own pid.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
PROFILE = os.environ.get("BENCH_PROFILE", "release")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / PROFILE
# BENCH_BIN_DIR: a directory holding deprov and the three examples (a saved build, to
# compare builds); by default the cargo target directory.
_BIN_DIR = os.environ.get("BENCH_BIN_DIR")
BIN = Path(os.environ.get("DEPROV_BIN", Path(_BIN_DIR) / "deprov" if _BIN_DIR else TARGET / "deprov"))
EXAMPLES = Path(_BIN_DIR) if _BIN_DIR else TARGET / "examples"
# No TLS on loopback (sqlx would negotiate it: the server offers it), as a co-located
# PostgreSQL is run; README "Benchmarks".
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
HOST = "127.0.0.1"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine state


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "crates"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": os.uname().release,
        "git": git + (" (with uncommitted changes in crates/)" if dirty else ""),
        "profile": PROFILE,
        "uptime": uptime(),
    }


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_cpu_seconds() -> float:
    """CPU used so far by PostgreSQL's processes, including the backends that have exited
    (their time is in the postmaster's cutime and cstime once it has reaped them), so that
    the delta over a pgbench run counts that run's backends too."""
    total = 0.0
    for pid in pids_named("postgres"):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def pids_named(comm: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == comm:
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all CPUs since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


class CpuMeter:
    """CPU used by named groups of processes over an interval, in cores (1.0 = one core busy),
    and how busy the whole machine was."""

    def __init__(self, groups: dict):
        # groups: name -> callable returning the pids to count
        self.groups = groups

    def __enter__(self):
        self.t0 = time.monotonic()
        self.m0 = machine_busy()
        self.c0 = {name: self._sum(f()) for name, f in self.groups.items()}
        return self

    @staticmethod
    def _sum(pids):
        return {pid: proc_cpu_seconds(pid) for pid in pids}

    def __exit__(self, *exc):
        dt = time.monotonic() - self.t0
        m1 = machine_busy()
        self.result = {}
        for name, f in self.groups.items():
            now = self._sum(f())
            before = self.c0[name]
            used = sum(v - before.get(pid, 0.0) for pid, v in now.items())
            self.result[name] = round(used / dt, 2) if dt > 0 else 0.0
        busy = m1[0] - self.m0[0]
        total = m1[1] - self.m0[1]
        self.result["machine_busy_pct"] = round(100.0 * busy / total, 1) if total else 0.0
        return False


# ---------------------------------------------------------------- fsync


def fsync_rate(directory: Path, seconds: float = 3.0, mode: str = "append") -> dict:
    """Single stream: write 4 KiB then fdatasync, in a loop, for `seconds` (at most 1e6
    times). `append` grows a new file (as a WAL does); `overwrite` rewrites one block."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".fsync-probe-{os.getpid()}-{secrets.token_hex(4)}"
    block = os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        n = 0
        start = time.monotonic()
        deadline = start + seconds
        while time.monotonic() < deadline and n < 1_000_000:
            if mode == "overwrite":
                os.pwrite(fd, block, 0)
            else:
                os.write(fd, block)
            os.fdatasync(fd)
            n += 1
        elapsed = time.monotonic() - start
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"dir": str(directory), "mode": mode, "ops": n, "per_sec": round(n / elapsed, 1)}


def pg_data_directory() -> Path | None:
    try:
        out = subprocess.run(
            ["psql", PG_URL, "-Atc", "SHOW data_directory"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def pgbench_rate(seconds: float, clients: int, threads: int, script: str = "simple-update") -> dict | None:
    """PostgreSQL's own rate on this machine, from a C client with no HTTP, at `clients`
    connections, in a scratch database that is dropped afterwards. `simple-update` is a small
    write transaction (BEGIN; UPDATE; SELECT; INSERT; END, prepared, five round trips: the
    shape of a SCIM deactivation); `select-only` one prepared single-row SELECT by primary
    key (the shape of a GET by id). None when pgbench is missing."""
    if shutil.which("pgbench") is None:
        return None
    u = urllib.parse.urlparse(PG_URL)
    url = urllib.parse.urlunparse(u._replace(path="/deprov_pgbench"))
    psql("DROP DATABASE IF EXISTS deprov_pgbench")
    psql("CREATE DATABASE deprov_pgbench")
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", url], capture_output=True, text=True, timeout=120, check=True)
        cpu0, t0 = postgres_cpu_seconds(), time.monotonic()
        r = subprocess.run(
            ["pgbench", "-M", "prepared", "-b", script, "-c", str(clients), "-j", str(threads), "-T", str(int(seconds)), url],
            capture_output=True, text=True, timeout=seconds + 120, check=True,
        )
        cores = (postgres_cpu_seconds() - cpu0) / (time.monotonic() - t0)
        tps = next(float(line.split("=")[1].split()[0]) for line in r.stdout.splitlines() if line.startswith("tps"))
        # PostgreSQL's own CPU per transaction, the kernel's share of its sockets included:
        # what a server in front of it cannot do without, whatever its own cost.
        return {"transactions_per_sec": round(tps, 1), "clients": clients, "script": script,
                "postgres_cores": round(cores, 2), "postgres_us_per_txn": round(cores / tps * 1e6, 1) if tps else None}
    finally:
        psql("DROP DATABASE IF EXISTS deprov_pgbench")


def pg_settings() -> dict:
    names = ["synchronous_commit", "fsync", "wal_sync_method", "commit_delay", "shared_buffers", "max_connections"]
    out = {}
    for n in names:
        r = subprocess.run(["psql", PG_URL, "-Atc", f"SHOW {n}"], capture_output=True, text=True, timeout=10)
        out[n] = r.stdout.strip()
    return out


# ---------------------------------------------------------------- processes


class Proc:
    """A child process we own; stopped by its pid (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, env=None, log_path=None, cwd=None):
        self.log_path = log_path
        self.log_file = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.p = subprocess.Popen(
            [str(a) for a in argv],
            env=env,
            cwd=cwd,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 30.0):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {self.pid} did not stop in {timeout}s; killing it")
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
        if self.log_file is not subprocess.DEVNULL:
            self.log_file.close()

    def vm_hwm_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


def wait_http(port: int, path: str = "/healthz", timeout: float = 60.0, proc: Proc | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"process {proc.pid} exited; see {proc.log_path}")
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status < 500:
                return
            last = r.status
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port}{path} not up after {timeout}s: {last}")


# ---------------------------------------------------------------- deprov


class Deprov:
    """One deprov instance with a fresh database (a SQLite file, or a new PostgreSQL schema)."""

    counter = 0

    def __init__(self, backend: str, workdir: Path, port: int, extra_env: dict | None = None):
        Deprov.counter += 1
        self.backend = backend
        self.workdir = workdir
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        self.schema = None
        if backend == "sqlite":
            db_url = f"sqlite://{workdir / 'deprov.db'}"
        elif backend == "postgres":
            self.schema = f"deprov_bench_{os.getpid()}_{Deprov.counter}"
            psql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE; CREATE SCHEMA {self.schema}")
            sep = "&" if "?" in PG_URL else "?"
            db_url = f"{PG_URL}{sep}options=-c%20search_path%3D{self.schema}"
        else:
            raise ValueError(backend)
        self.env = dict(os.environ)
        for k in list(self.env):
            # Settings under test (DEPROV_DELIVERY__*, DEPROV_SCIM__*, DEPROV_HTTP_WORKERS) pass;
            # nothing else.
            if k.startswith("DEPROV_") and not k.startswith(
                ("DEPROV_DELIVERY__", "DEPROV_SCIM__", "DEPROV_HTTP_WORKERS")
            ):
                del self.env[k]
        self.env.update(
            {
                "DEPROV_LISTEN": f"{HOST}:{port}",
                "DEPROV_DATABASE_URL": db_url,
                "DEPROV_ALLOW_INSECURE_TARGETS": "true",
                "DEPROV_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warn"),
                "DEPROV_KEY_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            }
        )
        self.env.pop("RUST_LOG", None)
        self.env.update(extra_env or {})
        self.proc: Proc | None = None
        self.cli("migrate")
        t = json.loads(self.cli("tenant", "create", "bench", "--json"))
        self.token = t["scim_token"]
        self.base_path = urllib.parse.urlparse(t["scim_base_url"]).path  # /scim/v2/bench

    def cli(self, *args, timeout=120) -> str:
        r = subprocess.run(
            [str(BIN), *args], env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout
        )
        if r.returncode != 0:
            raise RuntimeError(f"deprov {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self, extra_env: dict | None = None):
        env = dict(self.env)
        env.update(extra_env or {})
        self.proc = Proc([BIN, "serve"], env=env, log_path=self.workdir / "serve.log", cwd=self.workdir)
        wait_http(self.port, "/readyz", timeout=120, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def drop(self):
        self.stop()
        if self.schema and not os.environ.get("BENCH_KEEP"):
            psql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def auth_header(self) -> str:
        return f"Authorization: Bearer {self.token}"

    def deliveries_total(self, status: str) -> int:
        return json.loads(self.cli("deliveries", "list", "--status", status, "--limit", "1", "--json"))["total"]


def psql(sql: str):
    r = subprocess.run(["psql", PG_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.strip()}")


def postgres_pids() -> list[int]:
    return pids_named("postgres")


# ---------------------------------------------------------------- SCIM client (Python)


def user_body(name: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": f"{name}@example.com",
        "externalId": f"ext-{name}",
        "name": {"givenName": "Given", "familyName": name, "formatted": f"Given {name}"},
        "displayName": f"Given {name}",
        "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}],
        "active": True,
    }


class Scim:
    """A keep-alive SCIM client (one connection per thread)."""

    def __init__(self, port: int, token: str, base_path: str):
        self.port = port
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/scim+json",
            "Accept": "application/scim+json",
        }
        self.base = base_path
        self.local = threading.local()

    def conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "c", None)
        if c is None:
            c = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self.local.c = c
        return c

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            c = self.conn()
            try:
                c.request(method, self.base + path, body=data, headers=self.headers)
                r = c.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.c = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def create(self, name: str) -> str:
        status, body = self.call("POST", "/Users", user_body(name))
        if status != 201:
            raise RuntimeError(f"POST /Users {name}: {status} {body}")
        return body["id"]

    def list_all(self, filter_: str | None = None, attributes: str = "id,userName,active", limit: int = 200_000):
        out = []
        start = 1
        for _ in range(limit // 1000 + 2):
            q = {"startIndex": start, "count": 1000, "attributes": attributes}
            if filter_:
                q["filter"] = filter_
            status, body = self.call("GET", "/Users?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote))
            if status != 200:
                raise RuntimeError(f"list: {status} {body}")
            res = body.get("Resources", [])
            out.extend(res)
            start += len(res)
            if not res or start > body["totalResults"] or len(out) >= limit:
                break
        return out


def parallel(n_items: int, concurrency: int, fn, timeout: float = 900.0):
    """Runs fn(i) for i in range(n_items) on `concurrency` threads; returns the results in
    order. Bounded by `timeout` overall."""
    results = [None] * n_items
    errors = []
    next_i = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def worker():
        while time.monotonic() < deadline:
            with lock:
                i = next_i[0]
                if i >= n_items or errors:
                    return
                next_i[0] += 1
            try:
                results[i] = fn(i)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    if next_i[0] < n_items:
        raise RuntimeError(f"parallel: only {next_i[0]} of {n_items} done in {timeout}s")
    return results


# ---------------------------------------------------------------- wrk


def ensure_wrk():
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (tests/bench/*.sh install it with apt-get)")


def wrk(url: str, script: str, args: list, connections: int, threads: int, seconds: float, headers: list[str], workdir: Path, meter_groups: dict | None = None) -> dict:
    """Runs wrk with tests/bench/wrk/common.lua + SCRIPT and returns its WRKJSON figures plus
    the requests per second and the CPU used by each group of processes meanwhile."""
    lua = workdir / f"wrk-{script}"
    lua.write_text((BENCH / "wrk" / "common.lua").read_text() + "\n" + (BENCH / "wrk" / script).read_text())
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, int(seconds))}s", "--timeout", "10s", "-s", str(lua)]
    for h in headers:
        argv += ["-H", h]
    argv += [url, "--", *[str(a) for a in args]]
    meter = CpuMeter(dict(meter_groups or {}))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with meter:
        try:
            out, err = p.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
            raise RuntimeError(f"wrk did not finish: {err}")
    # wrk's own CPU: from the rusage of reaped children (wrk is the only one meanwhile).
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - t0
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
    line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({p.returncode}): {err.strip()} {out[-500:]}")
    res = json.loads(line[len("WRKJSON "):])
    res["rps"] = round(res["requests"] / (res["duration_us"] / 1e6), 1)
    res["cpu"] = dict(meter.result, wrk=round(wrk_cpu, 2))
    return res


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def fmt_ms(us: float) -> str:
    return f"{us / 1000:.2f}"


@contextmanager
def step(name: str):
    t = time.monotonic()
    log(f"-- {name} (load {loadavg()})")
    yield
    log(f"   {name}: {time.monotonic() - t:.1f}s")
