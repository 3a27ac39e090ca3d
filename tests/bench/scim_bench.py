"""SCIM benchmark (issue 3, "Performance"): run through tests/bench/scim.sh.

Seeds BENCH_USERS (10,000) users through SCIM, then measures with wrk on 127.0.0.1, at
concurrency 1 and 32: GET by id, filter userName eq, PATCH active (every request a change of
state), PATCH-name (displayName: an attribute sync, no event), POST, DELETE; on SQLite
and/or PostgreSQL. In the same run: the HTTP ceiling (the
http_ceiling example: actix-web answering the same JSON from memory) and the single-stream
fsync rate of the data directories, and with PostgreSQL, pgbench's simple-update (PostgreSQL's own
rate for a write transaction of the same shape) and select-only (its rate for a GET's one
SELECT by key). The ceiling is measured right before and right after each backend's reads,
and each read is judged against the mean of those two: on a machine whose speed drifts
within a run, a ceiling measured minutes earlier would judge the drift. The same holds for
the writes: the fsync rate of the backend's data directory (and on PostgreSQL pgbench's
simple-update) is measured right before and right after its writes, and each write is
judged against the mean; pgbench's select-only runs right after PostgreSQL's reads. Also the in-memory
SCIM servers the issue compares deprov with, scim2-server (Python) and scimmy (node), seeded
with the same users before deprov's runs and measured with the same GET and filter right
after each backend's reads, for the same reason (tests/bench/reference; BENCH_REFERENCES=0
skips them).
Prints a Markdown table and the ratios the issue asks for; writes everything as JSON to
$BENCH_DIR/scim-results.json.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from bench_lib import (
    EXAMPLES,
    HOST,
    Deprov,
    Proc,
    Scim,
    ensure_wrk,
    fmt_ms,
    fsync_rate,
    loadavg,
    log,
    machine,
    parallel,
    pg_data_directory,
    pg_settings,
    pgbench_rate,
    postgres_pids,
    step,
    uptime,
    wait_http,
    wrk,
)

SECS = float(os.environ.get("BENCH_SECS", "6"))
USERS = int(os.environ.get("BENCH_USERS", "10000"))
C_HIGH = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WRK_THREADS = int(os.environ.get("WRK_THREADS", "2"))
PORT = int(os.environ.get("BENCH_PORT", "28080"))
CEILING_PORT = int(os.environ.get("BENCH_CEILING_PORT", "28099"))
SEED_CONCURRENCY = 32
# A/B runs of one change: BENCH_OPS=GET,PATCH measures only those; BENCH_HIGH_ONLY=1 skips c=1.
OPS = set(os.environ.get("BENCH_OPS", "GET,filter,PATCH,PATCH-name,POST,DELETE").split(","))
WRITES = ("PATCH", "PATCH-name", "POST", "DELETE")
CONNS = (C_HIGH,) if os.environ.get("BENCH_HIGH_ONLY") else (1, C_HIGH)
REFERENCE = Path(__file__).resolve().parent / "reference"
REFERENCES = os.environ.get("BENCH_REFERENCES", "1") != "0" and bool(OPS & {"GET", "filter"})
REFERENCE_PORT = int(os.environ.get("BENCH_REFERENCE_PORT", "28098"))


def run(backends: list[str]):
    ensure_wrk()
    root = Path(os.environ.get("BENCH_DIR", f"/tmp/deprov-bench-scim-{time.strftime('%Y%m%d-%H%M%S')}"))
    root.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "settings": {"secs": SECS, "users": USERS, "c_high": C_HIGH, "wrk_threads_at_c_high": WRK_THREADS}, "rows": [], "fsync": {}, "seed": {}}
    log(f"bench dir {root}; {results['machine']}")

    with step("fsync rate"):
        results["fsync"]["sqlite_dir"] = fsync_rate(root, 3.0, "append")
        results["fsync"]["sqlite_dir_overwrite"] = fsync_rate(root, 3.0, "overwrite")
        if "postgres" in backends:
            pgdir = pg_data_directory()
            if pgdir is not None and pgdir.exists():
                results["fsync"]["postgres_dir"] = fsync_rate(pgdir, 3.0, "append")
            results["pg_settings"] = pg_settings()
        log(f"   {results['fsync']}")

    refs = start_references(root, results) if REFERENCES else []
    try:
        for backend in backends:
            run_backend(backend, root, results, refs)
    finally:
        for ref in refs:
            ref["proc"].stop()

    with step("fsync rate again, after the runs (how much it drifted)"):
        results["fsync"]["sqlite_dir_after"] = fsync_rate(root, 3.0, "append")
        if "postgres_dir" in results["fsync"]:
            results["fsync"]["postgres_dir_after"] = fsync_rate(Path(results["fsync"]["postgres_dir"]["dir"]), 3.0, "append")

    (root / "scim-results.json").write_text(json.dumps(results, indent=2))
    report(results)
    log(f"results: {root / 'scim-results.json'}")


def measure(results, label, backend, conns, d: Deprov | None, url, script, args, headers, work, server_pid=None):
    threads = 1 if conns == 1 else min(WRK_THREADS, conns)
    groups = {}
    if server_pid is not None:
        groups["server"] = lambda: [server_pid]
    elif d is not None:
        groups["server"] = lambda: [d.proc.pid]
    if backend == "postgres":
        groups["postgres"] = postgres_pids
    load = loadavg()
    before = sqlite_write_counts() if backend == "sqlite" else None
    res = wrk(url, script, args, conns, threads, SECS, headers, work, groups)
    row = {"op": label, "backend": backend, "c": conns, "wrk_threads": threads, "load_before": load, **res}
    after = sqlite_write_counts() if before else None
    if before and after and label in ("PATCH", "PATCH-name", "POST", "DELETE"):
        n = {k: after[k] - before[k] for k in after}
        row["sqlite_group_commit"] = {**n, "writes_per_batch": round(n["writes"] / max(n["batches"], 1), 1),
                                      "writes_per_fsync": round(n["writes"] / max(n["fsyncs"], 1), 1)}
    results["rows"].append(row)
    log(
        f"   {label:<8} {backend:<8} c={conns:<3} {res['rps']:>9.1f} req/s  p50 {fmt_ms(res['p50_us'])} ms"
        f"  p99 {fmt_ms(res['p99_us'])} ms  errors {res['status_errors'] + res['connect_errors'] + res['read_errors'] + res['timeouts']}"
        f"  cpu {res['cpu']}" + (f"  group commit {row['sqlite_group_commit']}" if "sqlite_group_commit" in row else "")
    )
    return row


def write_limits(backend: str, root: Path, results: dict, when: str):
    """What bounds `backend`'s durable writes, measured right `when` ("before" or "after")
    its writes: the single-stream fsync rate of its data directory and, on PostgreSQL,
    pgbench's simple-update. Each write is judged against the mean of the two
    measurements, as each read is against the ceiling beside it."""
    beside = results.setdefault("beside_writes", {}).setdefault(backend, {"fsync": {}, "pgbench": {}})
    directory = root if backend == "sqlite" else pg_data_directory()
    with step(f"fsync rate of {backend}'s data directory, {when} its writes"):
        if directory is not None and directory.exists():
            beside["fsync"][when] = fsync_rate(directory, 3.0, "append")
            log(f"   {beside['fsync'][when]['per_sec']:.0f}/s")
    if backend == "postgres":
        with step(f"pgbench simple-update at c={C_HIGH} (PostgreSQL's own write ceiling), {when} postgres's writes"):
            beside["pgbench"][when] = pgbench_rate(SECS, C_HIGH, WRK_THREADS)
            log(f"   {beside['pgbench'][when]}")


def around_writes(results: dict, backend: str, kind: str, key: str) -> tuple[float, str] | None:
    """The mean of `kind` ("fsync" or "pgbench") measured before and after `backend`'s
    writes, and how each measured."""
    seen = {when: m for when, m in results.get("beside_writes", {}).get(backend, {}).get(kind, {}).items() if m}
    if not seen:
        return None
    each = ", ".join(f"{when} {m[key]:.0f}" for when, m in seen.items())
    return statistics.mean(m[key] for m in seen.values()), each


def sqlite_write_counts() -> dict | None:
    """deprov's SQLite write counters from /metrics (writes, batches, WAL fsyncs)."""
    try:
        c = http.client.HTTPConnection(HOST, PORT, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    except OSError:
        return None
    names = {"writes": "deprov_sqlite_writes_total", "batches": "deprov_sqlite_write_batches_total",
             "fsyncs": "deprov_sqlite_wal_fsyncs_total"}
    values = {}
    for line in text.splitlines():
        for key, name in names.items():
            if line.startswith(name + " "):
                values[key] = float(line.split()[1])
    return values if len(values) == len(names) else None


def run_backend(backend: str, root: Path, results: dict, refs: list[dict]):
    work = root / backend
    d = Deprov(backend, work, PORT)
    try:
        d.start()
        scim = Scim(PORT, d.token, d.base_path)
        url = f"http://{HOST}:{PORT}"
        users_path = d.base_path + "/Users"
        auth = d.auth_header()
        json_h = "Content-Type: application/scim+json"

        with step(f"{backend}: seed {USERS} users (POST, {SEED_CONCURRENCY} threads of a Python client)"):
            t = time.monotonic()
            ids = parallel(USERS, SEED_CONCURRENCY, lambda i: scim.create(f"bench-u{i:05d}"))
            dt = time.monotonic() - t
            results["seed"][backend] = {"users": USERS, "secs": round(dt, 2), "per_sec": round(USERS / dt, 1), "threads": SEED_CONCURRENCY}
            log(f"   {USERS / dt:.0f} users/s")
        (work / "ids.txt").write_text("\n".join(ids) + "\n")
        names = [urllib.parse.quote(f"bench-u{i:05d}@example.com", safe="") for i in range(USERS)]
        (work / "names.txt").write_text("\n".join(names) + "\n")

        # The body the HTTP ceiling answers with: a real GET /Users/{id} of this run.
        c = http.client.HTTPConnection(HOST, PORT, timeout=10)
        c.request("GET", f"{users_path}/{ids[0]}", headers={"Authorization": f"Bearer {d.token}"})
        body = c.getresponse().read()
        c.close()
        (work / "user.json").write_bytes(body)

        # The HTTP ceiling, right before and right after this backend's reads: on a machine
        # whose speed drifts within a run, each read is judged against the ceiling measured
        # beside it (the mean of the two), not minutes away. c=1 only the first time.
        reads = bool(OPS & {"GET", "filter"})

        def ceiling(when: str):
            conns_list = CONNS if "ceiling" not in results else (C_HIGH,)
            results["ceiling"] = True
            with step(f"HTTP ceiling (http_ceiling example, same body), {when} {backend}'s reads"):
                ceil = Proc([EXAMPLES / "http_ceiling", f"{HOST}:{CEILING_PORT}", work / "user.json"], log_path=root / "ceiling.log")
                try:
                    wait_http(CEILING_PORT, f"{users_path}/{ids[0]}", 30, ceil)
                    for conns in conns_list:
                        row = measure(results, "ceiling", "memory", conns, None, f"http://{HOST}:{CEILING_PORT}", "get_by_id.lua", [users_path + "/", work / "ids.txt"], [auth], work, server_pid=ceil.pid)
                        row["around"] = {"reads_of": backend, "when": when}
                finally:
                    ceil.stop()

        if reads or "ceiling" not in results:
            ceiling("before")

        if "GET" in OPS:
            with step(f"{backend}: GET by id"):
                # Warm-up: connection pools, page cache.
                wrk(url, "get_by_id.lua", [users_path + "/", work / "ids.txt"], C_HIGH, WRK_THREADS, 1, [auth], work)
                for conns in CONNS:
                    measure(results, "GET", backend, conns, d, url, "get_by_id.lua", [users_path + "/", work / "ids.txt"], [auth], work)
        if "filter" in OPS:
            with step(f"{backend}: filter userName eq"):
                for conns in CONNS:
                    measure(results, "filter", backend, conns, d, url, "filter.lua", [users_path, work / "names.txt"], [auth], work)
        if reads:
            ceiling("after")
            if backend == "postgres":
                with step(f"pgbench select-only at c={C_HIGH} (PostgreSQL's own read ceiling), after postgres's reads"):
                    results["pgbench_select"] = pgbench_rate(SECS, C_HIGH, WRK_THREADS, "select-only")
                    log(f"   {results['pgbench_select']}")
            measure_references(refs, results, backend)
        writes = bool(OPS.intersection(WRITES))
        if writes:
            write_limits(backend, root, results, "before")
        if "PATCH" in OPS:
            with step(f"{backend}: PATCH active"):
                for conns in CONNS:
                    # The current state of every seeded user, so that each PATCH is a change.
                    state = {u["id"]: u["active"] for u in scim.list_all(attributes="id,active")}
                    lines = [f"{i},{'true' if state.get(i, True) else 'false'}" for i in ids]
                    (work / "state.txt").write_text("\n".join(lines) + "\n")
                    threads = 1 if conns == 1 else WRK_THREADS
                    measure(results, "PATCH", backend, conns, d, url, "patch.lua", [users_path + "/", work / "state.txt", threads], [auth, json_h], work)
                    time.sleep(0.5)
        if "PATCH-name" in OPS:
            with step(f"{backend}: PATCH displayName (no event)"):
                for conns in CONNS:
                    measure(results, "PATCH-name", backend, conns, d, url, "patch_name.lua", [users_path + "/", work / "ids.txt"], [auth, json_h], work)
                    time.sleep(0.5)
        if "POST" in OPS:
            with step(f"{backend}: POST"):
                for conns in CONNS:
                    measure(results, "POST", backend, conns, d, url + users_path, "post.lua", [users_path, f"post{conns}"], [auth, json_h], work)
                time.sleep(0.5)
        if "DELETE" in OPS:
            with step(f"{backend}: DELETE"):
                posted = [u["id"] for u in scim.list_all(filter_='userName sw "post"', attributes="id", limit=500_000)]
                pool = posted + ids
                log(f"   {len(pool)} users to delete from ({len(posted)} created by the POST runs)")
                offset = 0
                for conns in CONNS:
                    part = pool[offset:]
                    (work / "delete.txt").write_text("\n".join(part) + "\n")
                    threads = 1 if conns == 1 else WRK_THREADS
                    row = measure(results, "DELETE", backend, conns, d, url, "delete.lua", [users_path + "/", work / "delete.txt", threads], [auth], work)
                    if row["sent"] > len(part):
                        # Past the end the ids start over and answer 404: count deletions only.
                        row["rps_with_404"] = row["rps"]
                        row["rps"] = round(row["rps"] * (row["requests"] - row["status_errors"]) / max(row["requests"], 1), 1)
                        log(f"   WARNING: DELETE c={conns} sent {row['sent']} requests for {len(part)} users: the rest answered 404;"
                            f" {row['rps']} deletions/s counted")
                    offset += row["sent"] + conns
                    time.sleep(0.5)
        if writes:
            write_limits(backend, root, results, "after")
        if d.proc is not None:
            results.setdefault("rss_kib", {})[backend] = d.proc.vm_hwm_kib()
    finally:
        d.drop()


def start_references(root: Path, results: dict) -> list[dict]:
    """scim2-server and scimmy, in memory, seeded with the users deprov gets: the reads the
    issue asks deprov to beat by 20×. They are seeded first and left idle, and measured
    right after each backend's reads (`measure_references`), so that each of deprov's reads
    is compared with references measured beside it, as the ceiling is, not minutes away on
    a machine whose speed drifts."""
    with step("reference servers: install (tests/bench/reference/setup.sh)"):
        subprocess.run([str(REFERENCE / "setup.sh")], check=True)
    token = "bench-reference"
    servers = {
        "scim2-server": (lambda port: [REFERENCE / ".venv/bin/scim2-server", "--bearer-token", token, "--hostname", HOST, "--port", str(port)], "/v2"),
        "scimmy": (lambda port: ["node", REFERENCE / "scimmy-server.mjs", str(port), token], "/scim/v2"),
    }
    refs = []
    try:
        for i, (name, (argv, base)) in enumerate(servers.items()):
            port = REFERENCE_PORT - i
            work = root / name
            work.mkdir(parents=True, exist_ok=True)
            proc = Proc(argv(port), log_path=work / "server.log", cwd=REFERENCE)
            refs.append({"name": name, "proc": proc, "port": port, "base": base, "work": work,
                         "auth": f"Authorization: Bearer {token}"})
            wait_http(port, base + "/ServiceProviderConfig", 60, proc)
            scim = Scim(port, token, base)
            # Fewer seeding threads than for deprov: scim2-server's development server resets
            # connections under 32 concurrent POSTs.
            with step(f"{name}: seed {USERS} users (POST, 8 threads)"):
                t = time.monotonic()
                ids = parallel(USERS, 8, lambda i: scim.create(f"bench-u{i:05d}"))
                dt = time.monotonic() - t
                results["seed"][name] = {"users": USERS, "secs": round(dt, 2), "per_sec": round(USERS / dt, 1), "threads": 8}
                log(f"   {USERS / dt:.0f} users/s")
            (work / "ids.txt").write_text("\n".join(ids) + "\n")
            names = [urllib.parse.quote(f"bench-u{i:05d}@example.com", safe="") for i in range(USERS)]
            (work / "names.txt").write_text("\n".join(names) + "\n")
    except BaseException:
        for ref in refs:
            ref["proc"].stop()
        raise
    return refs


def measure_references(refs: list[dict], results: dict, backend: str):
    """The reference servers' GET and filter at c=C_HIGH, right after `backend`'s reads."""
    for ref in refs:
        name, base, work = ref["name"], ref["base"], ref["work"]
        url = f"http://{HOST}:{ref['port']}"
        for op, script, args in (("GET", "get_by_id.lua", [base + "/Users/", work / "ids.txt"]),
                                 ("filter", "filter.lua", [base + "/Users", work / "names.txt"])):
            if op in OPS:
                with step(f"{name}: {op}, after {backend}'s reads"):
                    row = measure(results, op, name, C_HIGH, None, url, script, args, [ref["auth"]], work, server_pid=ref["proc"].pid)
                    row["around"] = {"reads_of": backend, "when": "after"}


def report(results: dict):
    m = results["machine"]
    out = []
    out.append(f"\n## SCIM benchmark — {m['date']}, {m['cpus']} × {m['cpu']}, deprov {m['git']} ({m['profile']})")
    out.append(f"uptime at start: {m['uptime']}; now: {uptime()}")
    out.append(f"{results['settings']['secs']:.0f} s per measurement, {results['settings']['users']} seeded users, wrk threads at c={C_HIGH}: {WRK_THREADS}\n")
    out.append("| op | backend | c | req/s | p50 ms | p99 ms | errors | server cores | wrk cores | postgres cores | machine busy % | load before |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results["rows"]:
        errs = r["status_errors"] + r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        cpu = r["cpu"]
        around = r.get("around")
        where = f"{r['backend']}, {around['when']} {around['reads_of']}'s reads" if around else r["backend"]
        out.append(
            f"| {r['op']} | {where} | {r['c']} | {r['rps']:.0f} | {fmt_ms(r['p50_us'])} | {fmt_ms(r['p99_us'])} | {errs} |"
            f" {cpu.get('server', '')} | {cpu.get('wrk', '')} | {cpu.get('postgres', '')} | {cpu.get('machine_busy_pct', '')} | {r['load_before']} |"
        )
    f = results["fsync"]
    out.append("")
    for k, v in f.items():
        out.append(f"fsync ({k}): {v['per_sec']:.0f}/s ({v['mode']}, 4 KiB + fdatasync, {v['dir']})")
    for backend, beside in results.get("beside_writes", {}).items():
        for when, m in beside["fsync"].items():
            out.append(f"fsync ({backend}'s data directory, {when} its writes): {m['per_sec']:.0f}/s")
        for when, pgb in beside["pgbench"].items():
            if pgb:
                out.append(f"pgbench {pgb['script']} at c={pgb['clients']}, {when} {backend}'s writes (prepared, same PostgreSQL, no TLS): {pgb['transactions_per_sec']:.0f} transactions/s{pg_cpu(pgb)}")
    if results.get("pgbench_select"):
        pgs = results["pgbench_select"]
        out.append(f"pgbench {pgs['script']} at c={pgs['clients']} (prepared, same PostgreSQL, no TLS): {pgs['transactions_per_sec']:.0f} transactions/s{pg_cpu(pgs)}")
    for b, s in results.get("seed", {}).items():
        out.append(f"seeding {b}: {s['users']} users in {s['secs']} s = {s['per_sec']:.0f}/s (Python client, {s.get('threads', SEED_CONCURRENCY)} threads)")
    for b, kib in results.get("rss_kib", {}).items():
        out.append(f"deprov peak RSS ({b}): {kib / 1024:.0f} MiB")

    rows = {(r["op"], r["backend"], r["c"]): r for r in results["rows"]}
    out.append(f"\n### Targets at c={C_HIGH}")
    for backend in ("sqlite", "postgres"):
        fs = around_writes(results, backend, "fsync", "per_sec")
        pgb = around_writes(results, backend, "pgbench", "transactions_per_sec")
        if fs and any((op, backend, C_HIGH) in rows for op in WRITES):
            vs = f"; pgbench simple-update {pgb[0]:.0f}/s ({pgb[1]}) = {pgb[0] / fs[0]:.2f}× fsync" if pgb else ""
            out.append(f"fsync around {backend}'s writes: {fs[0]:.0f}/s ({fs[1]}; 1.5× = {1.5 * fs[0]:.0f}){vs}")
        # The ceiling beside this backend's reads: the mean of the runs before and after.
        beside = [r for r in results["rows"] if r["op"] == "ceiling" and r["c"] == C_HIGH
                  and r.get("around", {}).get("reads_of") == backend]
        ceil = {"rps": statistics.mean(r["rps"] for r in beside)} if beside else None
        if ceil and any((op, backend, C_HIGH) in rows for op in ("GET", "filter")):
            each = ", ".join(f"{r['around']['when']} {r['rps']:.0f}" for r in beside)
            out.append(f"HTTP ceiling around {backend}'s reads: {ceil['rps']:.0f} req/s ({each}; 40 % = {0.4 * ceil['rps']:.0f})")
        for op in ("GET", "filter"):
            r = rows.get((op, backend, C_HIGH))
            if r and ceil:
                ratio = r["rps"] / ceil["rps"]
                pgs = results.get("pgbench_select") if backend == "postgres" else None
                # PostgreSQL answering a C client, with no HTTP served: a read that asks it
                # cannot go faster here.
                bound = (f" (pgbench select-only: {pgs['transactions_per_sec']:.0f}/s = "
                         f"{100 * pgs['transactions_per_sec'] / ceil['rps']:.0f} % of the ceiling)") if pgs else ""
                out.append(f"- {backend} {op}: {r['rps']:.0f} req/s = {100 * ratio:.0f} % of the ceiling (target ≥ 40 %{bound}): {'MET' if ratio >= 0.4 else 'NOT MET'}; "
                           + references(results["rows"], op, backend, r["rps"]) + cpu_per_request(r))
        for op in WRITES:
            r = rows.get((op, backend, C_HIGH))
            if r and fs:
                ratio = r["rps"] / fs[0]
                p99 = r["p99_us"] / 1000
                ok = ratio >= 1.5 and p99 < 50
                beside = f"; {r['rps'] / pgb[0]:.2f}× pgbench simple-update" if pgb else ""
                gc = r.get("sqlite_group_commit")
                shared = f"; {gc['writes_per_batch']} writes per transaction, {gc['writes_per_fsync']} per fsync" if gc else ""
                out.append(f"- {backend} {op}: {r['rps']:.0f} req/s = {ratio:.2f}× fsync ({fs[0]:.0f}/s; target ≥ 1.5×){beside}, p99 {p99:.1f} ms (target < 50){shared}: {'MET' if ok else 'NOT MET'}{cpu_per_request(r)}")
    text = "\n".join(out)
    print(text, flush=True)


def cpu_per_request(r: dict) -> str:
    """The CPU a request took of each process group, in µs (cores over req/s)."""
    cpu = r.get("cpu") or {}
    parts = [f"{name} {cpu[name] / r['rps'] * 1e6:.0f}" for name in ("server", "postgres", "wrk") if cpu.get(name) and r["rps"]]
    return f"; CPU per request µs: {', '.join(parts)}" if parts else ""


def pg_cpu(pgb: dict) -> str:
    """PostgreSQL's CPU per pgbench transaction, beside what deprov's requests ask of it (the
    postgres cores column over req/s)."""
    us = pgb.get("postgres_us_per_txn")
    return f"; PostgreSQL used {pgb['postgres_cores']} cores = {us:.0f} µs per transaction" if us else ""


def references(all_rows: list, op: str, backend: str, rps: float) -> str:
    """deprov's `rps` beside the in-memory servers measured right after `backend`'s reads
    (target ≥ 20×)."""
    parts = []
    for name in ("scim2-server", "scimmy"):
        ref = next((r for r in all_rows if (r["op"], r["backend"], r["c"]) == (op, name, C_HIGH)
                    and r.get("around", {}).get("reads_of") == backend), None)
        if ref is None:
            continue
        errs = ref["status_errors"] + ref["connect_errors"] + ref["read_errors"] + ref["write_errors"] + ref["timeouts"]
        if ref["rps"] <= 0 or errs:
            parts.append(f"{name}: {ref['rps']:.0f} req/s with {errs} errors, no ratio")
            continue
        ratio = rps / ref["rps"]
        parts.append(f"{ratio:.0f}× {name} ({ref['rps']:.0f} req/s here; target ≥ 20×: {'MET' if ratio >= 20 else 'NOT MET'})")
    if not parts:
        return f"{rps / 1800:.0f}× / {rps / 500:.0f}× the 1,800 / 500 req/s quoted for scim2-server/scimmy (target ≥ 20×; not measured in this run)"
    return "; ".join(parts)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    backends = {"sqlite": ["sqlite"], "postgres": ["postgres"], "both": ["sqlite", "postgres"]}.get(which)
    if backends is None:
        raise SystemExit("usage: scim.sh [sqlite|postgres|both]")
    run(backends)
