"""Instructions per SCIM request, counted by valgrind's callgrind: repeatable where wall-clock
figures on a shared 2-core machine are not (a change is measured in instructions, then in wrk).

    python3 tests/bench/instructions.py BIN_DIR OP N     # OP: GET | filter | PATCH | POST | DELETE

BIN_DIR holds a `deprov` binary (target/release). Starts `deprov serve` under callgrind on a
fresh SQLite database (or, with INSTR_PG_URL=postgres://…, a new schema there, dropped after;
deprov's instructions only, and one read per batch since the requests come one at a time), creates users, warms up, zeroes the counters, sends N requests of OP
one after another, dumps, and prints instructions per request (all threads, user space).
"""
import base64, http.client, json, os, subprocess, sys, tempfile, time, glob
bindir, op, n = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
BIN = os.path.join(bindir, "deprov")
work = tempfile.mkdtemp(prefix="cg-")
port = int(os.environ.get("BENCH_PORT", "28555"))
env = {k: v for k, v in os.environ.items() if not k.startswith("DEPROV_") and k != "RUST_LOG"}
pg_url, schema = os.environ.get("INSTR_PG_URL"), f"deprov_instr_{os.getpid()}"
def psql(sql):
    subprocess.run(["psql", pg_url, "-qc", sql], check=True, capture_output=True)
if pg_url:
    psql(f"CREATE SCHEMA {schema}")
    db_url = f"{pg_url}{'&' if '?' in pg_url else '?'}options=-c%20search_path%3D{schema}"
else:
    db_url = f"sqlite://{work}/d.db"
env.update({"DEPROV_LISTEN": f"127.0.0.1:{port}", "DEPROV_DATABASE_URL": db_url,
            "DEPROV_LOG_LEVEL": "warn", "DEPROV_ALLOW_INSECURE_TARGETS": "true",
            "DEPROV_KEY_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode()})
def cli(*a):
    return subprocess.run([BIN, *a], env=env, cwd=work, capture_output=True, text=True, check=True).stdout
cli("migrate")
t = json.loads(cli("tenant", "create", "bench", "--json"))
tok = t["scim_token"]; base = "/scim/v2/bench"
out = f"{work}/cg.out"
p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", BIN, "serve"], env=env, cwd=work,
                     stdout=open(f"{work}/serve.log", "w"), stderr=subprocess.STDOUT)
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/readyz"); r = c.getresponse(); r.read()
        if r.status == 200: break
    except Exception: time.sleep(0.5)
H = {"Authorization": f"Bearer {tok}", "Content-Type": "application/scim+json"}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def req(m, path, body=None):
    c.request(m, base + path, body=json.dumps(body) if body is not None else None, headers=H)
    r = c.getresponse(); d = r.read(); return r.status, d
ids = []
for i in range(max(200, n if op in ("PATCH", "DELETE") else 0)):
    s, d = req("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"u{i}@example.com",
            "externalId": f"ext-{i}", "name": {"givenName": "G", "familyName": "F"}, "emails": [{"value": f"u{i}@example.com", "type": "work", "primary": True}], "active": True})
    ids.append(json.loads(d)["id"])
for i in range(50): req("GET", f"/Users/{ids[i % len(ids)]}")
subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True)
import urllib.parse
for i in range(n):
    if op == "GET": s, _ = req("GET", f"/Users/{ids[i % len(ids)]}")
    elif op == "filter": s, _ = req("GET", "/Users?filter=" + urllib.parse.quote(f'userName eq "u{i % len(ids)}@example.com"'))
    elif op == "PATCH": s, _ = req("PATCH", f"/Users/{ids[i]}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    elif op == "DELETE": s, _ = req("DELETE", f"/Users/{ids[i]}")
    elif op == "POST": s, _ = req("POST", "/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"new{i}@example.com", "active": True})
    assert s < 300, s
subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True)
time.sleep(1)
p.terminate(); p.wait(timeout=120)
if pg_url:
    psql(f"DROP SCHEMA {schema} CASCADE")
dumps = sorted(glob.glob(out + "*"))
tot = 0
for f in dumps:
    if f.endswith(".1") or "-" in os.path.basename(f).split("cg.out")[-1]:
        for line in open(f):
            if line.startswith("summary:") or line.startswith("totals:"):
                tot = max(tot, int(line.split()[1]))
print(f"{op} {bindir}: {tot/n:,.0f} instructions/request over {n} ({dumps})")
