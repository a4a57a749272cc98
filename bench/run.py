#!/usr/bin/env python3
"""gatehouse's load benchmark: `make bench` (or `bench/run.py --help`).

Builds the release binary, and for each backend (SQLite, then Postgres): seeds users fast,
measures this machine's limits (`gatehouse-bench limits`), starts the server, and drives
each scenario with wrk for a fixed time at a fixed concurrency, reading the server's CPU
time and peak RSS from /proc around each one. Prints one table; a full run (not --smoke)
also rewrites the generated part of bench/RESULTS.md.

The server runs as in production (JSON access log to a file, info level) except that rate
limits are off (GATEHOUSE_RATE_LIMITS=false): the benchmark measures what the server can
do, not how fast it refuses. Python's standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "RESULTS.md"
# Where cargo puts the release binaries: $CARGO_TARGET_DIR if set (relative to the
# checkout, where build() runs cargo), as cargo does.
RELEASE = ROOT / (os.environ.get("CARGO_TARGET_DIR") or "target") / "release"
BEGIN, END = "<!-- BEGIN GENERATED: bench/run.py rewrites this part -->", "<!-- END GENERATED -->"

# Passwords that pass the default policy; not secrets, only benchmark data.
PASSWORD = "Bench-quartz-Lantern-47!"
SIGNUP_PASSWORD = "Signup-copper-Kettle-58!"
ORIGIN_HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Above the server's verified-token cache (VERIFIED_CACHE_ENTRIES = 4096).
FRESH_TOKENS = 6000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


# --- tools -----------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk from Debian's packages")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "wrk"], env=env).returncode != 0:
        run(sudo + ["apt-get", "update", "-q"], env=env)
        run(sudo + ["apt-get", "install", "-y", "-q", "wrk"], env=env)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed and could not be installed")
    return found


def build() -> None:
    log("cargo build --release (gatehouse, gatehouse-bench)")
    run(["cargo", "build", "--release", "--locked", "-p", "gatehouse", "-p", "gatehouse-bench"],
        cwd=ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server ------------------------------------------------------------------------


class Server:
    """A release gatehouse on an ephemeral port, with its /proc counters."""

    def __init__(self, database_url: str, workdir: Path):
        self.port = free_port()
        self.origin = f"http://{ORIGIN_HOST}:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DATABASE_URL": database_url,
            "GATEHOUSE_ADDR": f"127.0.0.1:{self.port}",
            "GATEHOUSE_PUBLIC_URL": self.origin,
            "GATEHOUSE_RATE_LIMITS": "false",
            "GATEHOUSE_INSECURE_COOKIES": "true",
            "GATEHOUSE_LOG_FORMAT": "json",
            "GATEHOUSE_LOG": "info,sqlx=warn",
        }
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> str:
        out = subprocess.run([str(RELEASE / "gatehouse"), *args], env=self.env, cwd=self.workdir,
                             check=True, capture_output=True, text=True)
        return out.stdout

    def start(self) -> float:
        """Starts the server; returns milliseconds from spawn to the first healthy answer."""
        log_file = open(self.log_path, "ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen([str(RELEASE / "gatehouse"), "serve"], env=self.env,
                                     cwd=self.workdir, stdout=log_file, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"gatehouse exited with {self.proc.returncode}; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return (time.perf_counter() - started) * 1000
            except OSError:
                pass
            if time.perf_counter() - started > 30:
                sys.exit("gatehouse did not answer /health within 30 s")
            time.sleep(0.001)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cpu_seconds(self) -> float:
        assert self.proc
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kib(self, field: str) -> int:
        assert self.proc
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak_rss(self) -> bool:
        assert self.proc
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json"} if data else {}
        all_headers.update(headers or {})
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        cookies = {}
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                cookies[key] = rest.split(";", 1)[0]
        return response.status, (json.loads(raw) if raw else {}), cookies


# --- scenarios -------------------------------------------------------------------------


def write_requests(path: Path, requests: list[tuple]) -> Path:
    """One request per line for requests.lua: method, path, body or "-", headers."""
    with open(path, "w") as f:
        for method, target, body, headers in requests:
            fields = [method, target, json.dumps(body, separators=(",", ":")) if body else "-"]
            fields += [f"{k}: {v}" for k, v in headers.items()]
            assert not any("\t" in x or "\n" in x for x in fields)
            f.write("\t".join(fields) + "\n")
    return path


def wrk(server: Server, wrk_bin: str, script: str, connections: int, seconds: float,
        env: dict) -> dict:
    cmd = [wrk_bin, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
           "-s", str(BENCH / "wrk" / script), server.origin]
    out = subprocess.run(cmd, env=dict(os.environ, BENCH_DIR=str(BENCH / "wrk"), **env),
                         check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
            result["command"] = " ".join(cmd[:-1] + ["$URL"])
            return result
    sys.exit(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def postgres_cpu_seconds() -> float:
    """CPU time of every process named postgres on this machine (the database's share)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(" (")[2].rpartition(")")
        if name == "postgres":
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def measure(server: Server, name: str, load) -> dict:
    """Runs `load()` (which returns wrk's result) with the server's CPU and peak RSS read."""
    exact_peak = server.reset_peak_rss()
    peak = [server.status_kib("VmRSS")]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], server.status_kib("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, db0, t0 = server.cpu_seconds(), postgres_cpu_seconds(), time.perf_counter()
    result = load()
    cpu1, db1, t1 = server.cpu_seconds(), postgres_cpu_seconds(), time.perf_counter()
    stop.set()
    sampler.join()
    seconds = result["duration_us"] / 1e6
    errors = sum(result[k] for k in
                 ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    result.update(
        scenario=name,
        rps=result["requests"] / seconds if seconds else 0.0,
        errors=errors,
        cpu_percent=100 * (cpu1 - cpu0) / (t1 - t0),
        db_cpu_percent=100 * (db1 - db0) / (t1 - t0),
        peak_rss_mib=(server.status_kib("VmHWM") if exact_peak else peak[0]) / 1024,
    )
    log(f"  {name}: {result['rps']:.0f} req/s, p99 {result['p99_us'] / 1000:.2f} ms, "
        f"{errors} errors")
    return result


def sign_in(server: Server, csrf: str, email: str) -> tuple[str, str]:
    status, body, cookies = server.request(
        "POST", "/auth/signin", {"email": email, "password": PASSWORD},
        {"X-CSRF-Token": csrf, "Cookie": f"csrf_token={csrf}", "Origin": server.origin})
    if status != 200:
        sys.exit(f"sign-in of {email} answered {status}: {body}")
    return body["accessToken"], cookies["sb_refresh_token"]


def mint_access_tokens(server: Server, csrf: str, refresh_tokens: list[str],
                       count: int) -> list[str]:
    """`count` distinct access tokens, by rotating these sessions' refresh tokens."""
    from concurrent.futures import ThreadPoolExecutor

    def chain(refresh: str, n: int) -> list[str]:
        minted = []
        for _ in range(n):
            status, body, cookies = server.request(
                "POST", "/auth/refresh", None,
                {"X-CSRF-Token": csrf, "Cookie": f"csrf_token={csrf}; sb_refresh_token={refresh}",
                 "Origin": server.origin})
            if status != 200:
                sys.exit(f"refresh answered {status}: {body}")
            minted.append(body["accessToken"])
            refresh = cookies["sb_refresh_token"]
        return minted

    per_chain = -(-count // len(refresh_tokens))
    with ThreadPoolExecutor(len(refresh_tokens)) as pool:
        chains = pool.map(chain, refresh_tokens, [per_chain] * len(refresh_tokens))
    return [token for minted in chains for token in minted][:count]


def run_backend(backend: str, database_url: str, args, wrk_bin: str, workdir: Path) -> dict:
    seconds = args.seconds
    log(f"{backend}: seeding {args.users} users")
    seeded = json.loads(run([str(RELEASE / "gatehouse-bench"), "seed", "--database-url",
                             database_url, "--users", str(args.users), "--password", PASSWORD],
                            capture_output=True, text=True).stdout)
    log(f"{backend}: seeded in {seeded['seconds']:.1f} s; measuring the limits")
    limits = json.loads(run([str(RELEASE / "gatehouse-bench"), "limits", "--database-url",
                             database_url, "--password", SIGNUP_PASSWORD],
                            capture_output=True, text=True).stdout)

    server = Server(database_url, workdir)
    keys = json.loads(server.cli("keys", "api-keys", "--json"))
    server.start()  # the first start on this database makes the signing key
    server.stop()
    startup_ms = server.start()
    time.sleep(1)
    idle_rss = server.status_kib("VmRSS") / 1024
    results: dict = {"backend": backend, "seeded": seeded, "limits": limits,
                     "startup_ms": startup_ms, "idle_rss_mib": idle_rss, "scenarios": []}
    try:
        status, body, cookies = server.request("GET", "/auth/csrf")
        csrf = body["csrfToken"]
        # One more than connections: wrk renders one request up front that it never sends.
        sessions = args.connections + 1
        log(f"{backend}: signing in {sessions} users for tokens")
        grants = [sign_in(server, csrf, f"user{i}@bench.example.com") for i in range(sessions)]
        admin_token, _ = sign_in(server, csrf, seeded["admin_email"])
        tokens = [access for access, _ in grants]
        # More distinct tokens than the verified-token cache holds, each used once per
        # cycle: every request pays for a full signature verification.
        minters = [sign_in(server, csrf, f"user{i}@bench.example.com")[1]
                   for i in range(sessions, sessions + 8)]
        fresh = mint_access_tokens(server, csrf, minters, FRESH_TOKENS)
        csrf_headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf,
                        "Cookie": f"csrf_token={csrf}", "Origin": server.origin}
        apikey = keys["anon_key"]

        def requests_env(name: str, requests: list[tuple]) -> dict:
            return {"BENCH_REQUESTS": str(write_requests(workdir / f"{name}.tsv", requests))}

        me = requests_env("me", [("GET", "/auth/me", None, {"Authorization": f"Bearer {t}"})
                                 for t in tokens])
        me_fresh = requests_env("me_fresh", [
            ("GET", "/auth/me", None, {"Authorization": f"Bearer {t}"}) for t in fresh])
        v1_user = requests_env("v1_user", [("GET", "/auth/v1/user", None,
                                            {"Authorization": f"Bearer {t}", "apikey": apikey})
                                           for t in tokens])
        population = min(args.users, 1000)
        signin = requests_env("signin", [
            ("POST", "/auth/signin", {"email": f"user{i}@bench.example.com",
                                      "password": PASSWORD}, csrf_headers)
            for i in range(population)])
        v1_token = requests_env("v1_token", [
            ("POST", "/auth/v1/token?grant_type=password",
             {"email": f"user{i}@bench.example.com", "password": PASSWORD},
             {"Content-Type": "application/json", "apikey": apikey})
            for i in range(population)])
        admin = {"Authorization": f"Bearer {admin_token}"}
        users_first = requests_env("users_first", [("GET", "/users?limit=50", None, admin)])
        users_deep = requests_env("users_deep", [
            ("GET", f"/users?limit=50&cursor={seeded['deep_cursor']}", None, admin)])
        health = dict(requests_env("health", [("GET", "/health", None, {})]),
                      BENCH_DELAY_MS="10")
        refresh_tokens = workdir / "refresh_tokens.txt"
        refresh_tokens.write_text("\n".join(r for _, r in grants) + "\n")
        refresh = {"BENCH_TOKENS": str(refresh_tokens), "BENCH_CSRF": csrf,
                   "BENCH_ORIGIN": server.origin}
        signup = {"BENCH_RUN_ID": f"{os.getpid()}{backend[0]}",
                  "BENCH_SIGNUP_PASSWORD": SIGNUP_PASSWORD}

        c, hc = args.connections, args.hash_connections
        plan = [
            ("GET /auth/me", "requests.lua", c, me),
            ("GET /auth/me (uncached tokens)", "requests.lua", c, me_fresh),
            ("GET /auth/v1/user", "requests.lua", c, v1_user),
            ("POST /auth/refresh", "refresh.lua", c, refresh),
            ("GET /users (first page)", "requests.lua", c, users_first),
            ("GET /users (deep cursor)", "requests.lua", c, users_deep),
            ("POST /auth/signin", "requests.lua", hc, signin),
            ("POST /auth/v1/token (password)", "requests.lua", hc, v1_token),
            ("POST /auth/signup", "signup.lua", hc, signup),
        ]
        for name, script, conns, env in plan:
            result = measure(server, name,
                             lambda: wrk(server, wrk_bin, script, conns, seconds, env))
            result["connections"] = conns
            results["scenarios"].append(result)

        # GET /health, paced at ~100/s on one connection, while sign-in saturates hashing.
        probe: dict = {}

        def health_probe() -> None:
            time.sleep(min(1.0, seconds / 4))
            probe.update(wrk(server, wrk_bin, "requests.lua", 1, max(1, int(seconds) - 2), health))

        thread = threading.Thread(target=health_probe)
        thread.start()
        saturated = measure(server, "POST /auth/signin + GET /health probe",
                            lambda: wrk(server, wrk_bin, "requests.lua", hc, seconds, signin))
        thread.join()
        saturated["connections"] = hc
        results["scenarios"].append(saturated)
        probe_errors = sum(probe[k] for k in ("connect_errors", "read_errors", "write_errors",
                                              "status_errors", "timeouts"))
        results["health_probe"] = dict(probe, errors=probe_errors, scenario="GET /health probe",
                                       rps=probe["requests"] / (probe["duration_us"] / 1e6))
        time.sleep(2)
        results["idle_rss_after_mib"] = server.status_kib("VmRSS") / 1024
        results["peak_rss_mib"] = server.status_kib("VmHWM") / 1024
    finally:
        server.stop()
    return results


# --- the report ------------------------------------------------------------------------


def db_cpu(backend: str, r: dict) -> str:
    if backend != "postgres" or "db_cpu_percent" not in r:
        return "–"
    return f"{r['db_cpu_percent']:.0f}"


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def table(all_results: list[dict]) -> str:
    head = ("| backend | scenario | conns | req/s | p50 ms | p99 ms | max ms | errors "
            "| server CPU % | Postgres CPU % | peak RSS MiB |")
    lines = [head, "|" + "---|" * 11]
    for results in all_results:
        rows = results["scenarios"] + [results["health_probe"]]
        for r in rows:
            lines.append(
                f"| {results['backend']} | {r['scenario']} | {r.get('connections', 1)} "
                f"| {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {ms(r['max_us'])} "
                f"| {r['errors']} | {r.get('cpu_percent', float('nan')):.0f} "
                f"| {db_cpu(results['backend'], r)} "
                f"| {r.get('peak_rss_mib', float('nan')):.1f} |")
    return "\n".join(lines)


def limits_table(all_results: list[dict]) -> str:
    lines = ["| backend | Argon2id hash ms | verify ms | verifies/s, all cores | policy ms "
             "| ES256 sign / verify / cached verify µs | EdDSA | RS256 | HS256 | user read µs "
             "| start-up ms | idle RSS MiB (start / after) |", "|" + "---|" * 12]
    for r in all_results:
        lim, tok = r["limits"], r["limits"]["tokens"]
        pair = lambda alg: (f"{tok[alg]['sign_us']:.0f} / {tok[alg]['verify_us']:.0f} / "
                            f"{tok[alg]['cached_verify_us']:.1f}")
        lines.append(
            f"| {r['backend']} | {lim['argon2id_hash_us'] / 1000:.1f} "
            f"| {lim['argon2id_verify_us'] / 1000:.1f} "
            f"| {lim['argon2id_parallel_verifies_per_s']:.0f} "
            f"| {lim['password_policy_us'] / 1000:.2f} | {pair('ES256')} | {pair('EdDSA')} "
            f"| {pair('RS256')} | {pair('HS256')} | {lim['user_read_us']:.0f} "
            f"| {r['startup_ms']:.0f} | {r['idle_rss_mib']:.1f} / {r['idle_rss_after_mib']:.1f} |")
    return "\n".join(lines)


def budget(all_results: list[dict]) -> list[tuple[str, bool, str]]:
    checks = []
    by = {r["backend"]: r for r in all_results}

    def scenario(r: dict, name: str) -> dict:
        return next(s for s in r["scenarios"] if s["scenario"] == name)

    for r in all_results:
        b, lim = r["backend"], r["limits"]
        signin_bound, signup_bound = lim["signin_bound_per_s"], lim["signup_bound_per_s"]
        parallel = lim["argon2id_parallel_verifies_per_s"]
        for name, bound in (("POST /auth/signin", signin_bound),
                            ("POST /auth/v1/token (password)", signin_bound),
                            ("POST /auth/signup", signup_bound)):
            got = scenario(r, name)["rps"]
            checks.append((f"{b}: {name} ≥ 85% of the hash bound (cores ÷ one hash)",
                           got >= 0.85 * bound,
                           f"{got:.0f}/s = {100 * got / bound:.0f}% of {bound:.0f}/s; "
                           f"{100 * got / parallel:.0f}% of the {parallel:.0f}/s every core "
                           "gives hashing at once, measured"))
        probe = r["health_probe"]
        checks.append((f"{b}: GET /health p99 < 5 ms while sign-in is saturated",
                       probe["p99_us"] < 5000, f"p99 {ms(probe['p99_us'])} ms"))
        s, bound = scenario(r, "GET /auth/me (uncached tokens)"), lim["me_bound_per_s"]
        checks.append((f"{b}: GET /auth/me with a signature verification every request, "
                       "vs cores ÷ (ES256 verify + user read) (informational)", True,
                       f"{s['rps']:.0f}/s = {100 * s['rps'] / bound:.0f}% of {bound:.0f}/s, "
                       f"p99 {ms(s['p99_us'])} ms"))
        for name in ("GET /auth/me", "GET /auth/v1/user"):
            s = scenario(r, name)
            if b == "sqlite":
                checks.append((f"sqlite: {name} ≥ 10,000/s, p99 < 10 ms",
                               s["rps"] >= 10_000 and s["p99_us"] < 10_000,
                               f"{s['rps']:.0f}/s, p99 {ms(s['p99_us'])} ms"))
            elif "sqlite" in by:
                ref = scenario(by["sqlite"], name)["rps"]
                ours = 1e4 * s["cpu_percent"] / s["rps"]
                theirs = 1e4 * s["db_cpu_percent"] / s["rps"]
                checks.append((f"{b}: {name} within 20% of SQLite", s["rps"] >= 0.8 * ref,
                               f"{s['rps']:.0f}/s = {100 * s['rps'] / ref:.0f}% of {ref:.0f}/s; "
                               f"per request {ours:.0f} µs of gatehouse CPU and {theirs:.0f} µs "
                               "of Postgres CPU on the same cores"))
        s = scenario(r, "POST /auth/refresh")
        checks.append((f"{b}: POST /auth/refresh ≥ 2,000/s", s["rps"] >= 2000,
                       f"{s['rps']:.0f}/s"))
        first, deep = scenario(r, "GET /users (first page)"), scenario(r, "GET /users (deep cursor)")
        checks.append((f"{b}: GET /users deep cursor ≥ 80% of the first page's rate",
                       deep["rps"] >= 0.8 * first["rps"],
                       f"{deep['rps']:.0f}/s vs {first['rps']:.0f}/s over {r['seeded']['users']} users"))
        checks.append((f"{b}: idle RSS < 30 MB", r["idle_rss_mib"] * 1.048576 < 30,
                       f"{r['idle_rss_mib']:.1f} MiB at start, {r['idle_rss_after_mib']:.1f} after the run"))
        if b == "sqlite":
            checks.append(("sqlite: start to first healthy response < 100 ms",
                           r["startup_ms"] < 100, f"{r['startup_ms']:.0f} ms"))
    return checks


def versions() -> dict:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "not found"

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "commit": out(["git", "rev-parse", "--short", "HEAD"]) +
                  (" (with uncommitted changes)" if out(["git", "status", "--porcelain",
                                                          "--untracked-files=no"]) else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} × {cpu}, {int(mem) // 1024 // 1024} GiB, "
                   f"{platform.system()} {platform.release()}",
        "rustc": out(["rustc", "--version"]),
        "wrk": out(["sh", "-c", "wrk --version 2>&1 | head -1"]),
        "postgres": out(["psql", "--version"]),
        "sqlite": "bundled with sqlx (libsqlite3-sys)",
    }


def report(all_results: list[dict], args, info: dict) -> str:
    lines = [
        f"Run {info['date']} on commit `{info['commit']}`.",
        "",
        f"- Machine: {info['machine']}; load generator on the same machine.",
        f"- Versions: {info['rustc']}; {info['wrk']}; {info['postgres']}; SQLite {info['sqlite']}.",
        f"- Command: `{' '.join(['bench/run.py'] + sys.argv[1:])}` — {args.users} users, "
        f"{args.seconds} s per scenario, {args.connections} connections "
        f"({args.hash_connections} for the hashing scenarios), one wrk thread.",
        "- wrk command per scenario: " + ", ".join(sorted({f"`{s['command']}`" for r in all_results for s in r["scenarios"]})),
        "",
        "### Load",
        "",
        table(all_results),
        "",
        "### Limits measured in the same run",
        "",
        limits_table(all_results),
        "",
        "Bounds (cores ÷ cost): " + "; ".join(
            f"{r['backend']}: sign-in {r['limits']['signin_bound_per_s']:.0f}/s, sign-up "
            f"{r['limits']['signup_bound_per_s']:.0f}/s, /auth/me "
            f"{r['limits']['me_bound_per_s']:.0f}/s (ES256 verify + one user read; "
            f"{r['limits']['me_cached_bound_per_s']:.0f}/s with the verification cached); "
            f"all cores verifying at once {r['limits']['argon2id_parallel_verifies_per_s']:.0f}/s"
            for r in all_results) + ".",
        "",
        "### Budget",
        "",
    ]
    for name, ok, detail in budget(all_results):
        lines.append(f"- {'✅' if ok else '❌'} {name}: {detail}")
    return "\n".join(lines) + "\n"


def record(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replaces the part of RESULTS.md between the markers `begin` and `end` (appended
    if missing) with `text`."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if begin not in current or end not in current:
        current += f"\n{begin}\n{end}\n"
    head, rest = current.split(begin, 1)
    _, tail = rest.split(end, 1)
    RESULTS.write_text(f"{head}{begin}\n{text}{end}{tail}")


# --- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds per scenario and 1,000 users, to prove it runs "
                             "(CI); fails on any error; does not touch RESULTS.md")
    parser.add_argument("--users", type=int, default=None,
                        help="users to seed (default 10,000; 1,000 with --smoke)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per scenario (default 10; 2 with --smoke)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--hash-connections", type=int, default=16,
                        help="connections for sign-in, sign-up and the password grant")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "GATEHOUSE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="an administrative connection; the run creates and drops its own database")
    parser.add_argument("--no-build", action="store_true", help="use target/release as it is")
    parser.add_argument("--no-record", action="store_true", help="do not rewrite RESULTS.md")
    args = parser.parse_args()
    args.users = args.users if args.users is not None else (1000 if args.smoke else 10_000)
    args.seconds = args.seconds if args.seconds is not None else (2 if args.smoke else 10)

    wrk_bin = ensure_wrk()
    if not args.no_build:
        build()
    info = versions()
    all_results = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"gatehouse-bench-{backend}-") as tmp:
            workdir = Path(tmp)
            if backend == "sqlite":
                url = f"sqlite://{workdir / 'bench.db'}"
                all_results.append(run_backend(backend, url, args, wrk_bin, workdir))
            elif backend == "postgres":
                run([str(ROOT / "scripts" / "ensure-services.sh")])
                name = f"gatehouse_bench_{os.getpid()}"
                admin = args.postgres_url
                run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"])
                try:
                    url = admin.rsplit("/", 1)[0] + "/" + name
                    all_results.append(run_backend(backend, url, args, wrk_bin, workdir))
                finally:
                    run(["psql", admin, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
            else:
                sys.exit(f"unknown backend {backend}: sqlite or postgres")

    text = report(all_results, args, info)
    print()
    print(text)
    if args.smoke:
        bad = [(r["backend"], s["scenario"], s["errors"], s["requests"])
               for r in all_results for s in r["scenarios"] + [r["health_probe"]]
               if s["errors"] or not s["requests"]]
        if bad:
            sys.exit(f"smoke run failed: scenarios with errors or no requests: {bad}")
        print("smoke run: every scenario answered without errors (speed is not judged here)")
    elif not args.no_record:
        record(text)
        log(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
