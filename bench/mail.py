#!/usr/bin/env python3
"""gatehouse's mail benchmark: `make bench-mail`, part of `make bench` (or `bench/mail.py --help`).

For each backend (SQLite, then Postgres): seeds users, starts an SMTP sink
(bench/smtp_sink.py, which accepts and discards, optionally holding every DATA) and a
release server that mails through it, then measures:

1. **Answers before SMTP.** POST /auth/v1/recover one request at a time, alternating a known
   address (which queues a message) and an unknown one (which does not), while the sink
   holds every DATA for 2 s; then again with the SMTP port closed. Both kinds answer as
   fast, in about a millisecond: the lookup and the outbox write come after the answer.
2. **Outbox intake.** A burst of N POST /auth/v1/recover (then POST /auth/v1/otp) for N
   distinct known addresses, each sent once (bench/wrk/once.lua), with the sink holding
   every DATA so that the courier stays out of the way; the clock runs from the first
   request until N new messages are in the outbox (rows in mail_outbox, plus any the sink
   received), or until nothing more is queued (the rest is counted lost, with the errors
   the server logged). Server (and Postgres) CPU over that time ÷ N is one request's cost.
3. **Courier drain.** The sink then answers at once: the courier's delivery rate, from its
   first delivery until the outbox is empty or --drain-seconds have passed (what is left
   is then deleted, so that the next scenario starts from an empty outbox).
4. **POST /auth/v1/verify with a code.** N users get a code each from
   POST /auth/v1/admin/generate_link (the service-role key; no mail), then wrk redeems each
   code once (a new session each).

Rates, latencies and CPU per message are printed as a table; a full run (not --smoke) also
rewrites the mail part of bench/RESULTS.md. --smoke fails on any non-2xx answer or any
message that does not arrive. Uses bench/run.py's harness; Python's standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED: bench/mail.py rewrites this part -->"
END = "<!-- END GENERATED: bench/mail.py -->"
# How long the sink holds each DATA while the courier must stay out of the way.
HOLD_SECONDS = 2.0
# A burst is over when nothing more was queued for this long after the last answer.
STALL_SECONDS = 3.0
EMAIL = "user{}@bench.example.com"


# --- the SMTP sink and the database, seen from outside the server ----------------------


class Sink:
    """bench/smtp_sink.py in a process of its own, driven over its control port."""

    def __init__(self, hold: float, quickack: bool = False):
        self.port, self.control_port = bench.free_port(), bench.free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(bench.BENCH / "smtp_sink.py"), "--port", str(self.port),
             "--control-port", str(self.control_port), "--delay", str(hold)]
            + (["--quickack"] if quickack else []),
            stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit("the SMTP sink did not start")
        self.control = socket.create_connection(("127.0.0.1", self.control_port)).makefile("rw")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def ask(self, command: str) -> str:
        self.control.write(command + "\n")
        self.control.flush()
        return self.control.readline().strip()

    def count(self) -> int:
        return int(self.ask("count"))

    def hold(self, seconds: float) -> None:
        assert self.ask(f"delay {seconds}") == "ok"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / bench.CLK_TCK

    def stop(self) -> None:
        try:
            self.ask("quit")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Database:
    """Counts rows beside the server: sqlite3 read-only, or one psql process kept open."""

    def __init__(self, backend: str, url: str):
        self.backend = backend
        if backend == "sqlite":
            path = url.removeprefix("sqlite://").split("?", 1)[0]
            self.sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            self.psql = subprocess.Popen(["psql", "-X", "-q", "-At", url], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)

    def scalar(self, sql: str) -> int:
        if self.backend == "sqlite":
            return int(self.sqlite.execute(sql).fetchone()[0])
        self.psql.stdin.write(sql + ";\n")
        self.psql.stdin.flush()
        return int(self.psql.stdout.readline())

    def backend_cpu_seconds(self) -> float:
        """CPU seconds of the Postgres backends connected to this database now (others'
        work on the same Postgres, and its shared background processes, are not counted;
        a backend that exits in between takes its time with it)."""
        if self.backend == "sqlite":
            return 0.0
        self.psql.stdin.write("SELECT string_agg(pid::text, ' ') FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid();\n")
        self.psql.stdin.flush()
        total = 0
        for pid in self.psql.stdout.readline().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / bench.CLK_TCK

    def outbox(self) -> int:
        return self.scalar("SELECT count(*) FROM mail_outbox")

    def purge_outbox(self) -> int:
        """Deletes what is left in the outbox (what a drain did not wait for)."""
        if self.backend == "sqlite":
            path = self.sqlite.execute("PRAGMA database_list").fetchone()[2]
            with sqlite3.connect(path, timeout=30, isolation_level=None) as rw:
                return rw.execute("DELETE FROM mail_outbox").rowcount
        return self.scalar("WITH gone AS (DELETE FROM mail_outbox RETURNING 1) "
                           "SELECT count(*) FROM gone")

    def close(self) -> None:
        if self.backend == "sqlite":
            self.sqlite.close()
        else:
            self.psql.stdin.close()
            self.psql.wait()


# --- measuring -------------------------------------------------------------------------


def cpu_now(server: bench.Server, db: "Database") -> tuple[float, float, float]:
    """The server's CPU seconds, those of the Postgres backends serving its database (0 on
    SQLite), and the time."""
    return server.cpu_seconds(), db.backend_cpu_seconds(), time.perf_counter()


def once(server: bench.Server, wrk_bin: str, requests: Path, connections: int,
         bound_s: float, save: Path | None = None) -> subprocess.Popen:
    """Starts wrk sending each request of the file once (bench/wrk/once.lua)."""
    env = dict(os.environ, BENCH_DIR=str(bench.BENCH / "wrk"), BENCH_REQUESTS=str(requests))
    if save:
        env["BENCH_SAVE"] = str(save)
    cmd = [wrk_bin, "-t1", f"-c{connections}", f"-d{int(bound_s)}s", "--timeout", "10s",
           "-s", str(bench.BENCH / "wrk" / "once.lua"), server.origin]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def once_result(proc: subprocess.Popen, expected: int, what: str) -> dict:
    out, err = proc.communicate()
    result: dict = {}
    for line in out.splitlines():
        for tag in ("BENCH_RESULT ", "BENCH_ONCE "):
            if line.startswith(tag):
                result.update(json.loads(line.removeprefix(tag)))
    if "answered" not in result:
        sys.exit(f"{what}: wrk printed no result:\n{out}\n{err}")
    errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    result["errors"] = errors + result["non_2xx"] + (expected - result["answered"])
    elapsed = result["elapsed_us"] / 1e6
    result["rps"] = result["answered"] / elapsed if elapsed > 0 else 0.0
    return result


class PeakRss:
    """The server's peak RSS over a stretch: VmHWM after a reset, or sampled."""

    def __init__(self, server: bench.Server):
        self.server = server
        self.exact = server.reset_peak_rss()
        self.peak = server.status_kib("VmRSS")
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while not self.done.wait(0.05) and self.server.proc:
            self.peak = max(self.peak, self.server.status_kib("VmRSS"))

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return (self.server.status_kib("VmHWM") if self.exact else self.peak) / 1024


def request_file(path: Path, target: str, bodies: list[dict], headers: dict) -> Path:
    return bench.write_requests(path, [("POST", target, body, headers) for body in bodies])


def latency_probe(server: bench.Server, apikey: str, known: list[str], label: str) -> dict:
    """One request at a time, known and unknown addresses in turn, on one kept-alive
    connection; milliseconds from sending to the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": "application/json", "apikey": apikey}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for i, email in enumerate(known):
        unknown = f"nobody{i}-{label}@bench.example.com"
        for kind, address in (("known", email), ("unknown", unknown)):
            body = json.dumps({"email": address})
            started = time.perf_counter()
            conn.request("POST", "/auth/v1/recover", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200 or raw != b"{}":
                sys.exit(f"POST /auth/v1/recover ({kind}) answered {response.status}: {raw!r}")
            times[kind].append(elapsed)
    conn.close()

    def summary(samples: list[float]) -> dict:
        ordered = sorted(samples)
        return {"p50_ms": statistics.median(ordered),
                "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                "max_ms": ordered[-1], "samples": len(ordered)}

    return {"scenario": label, "known": summary(times["known"]),
            "unknown": summary(times["unknown"])}


def intake(server: bench.Server, db: Database, sink: Sink, wrk_bin: str, workdir: Path,
           target: str, emails: list[str], apikey: str, connections: int, name: str) -> dict:
    """A burst of mail-sending requests, one per address; until every message is queued,
    or nothing more is queued for STALL_SECONDS once every answer is in (then the rest
    were lost: the server logs each flow that failed after its answer)."""
    n = len(emails)
    body = (lambda e: {"email": e, "create_user": False}) if target.endswith("/otp") else (
        lambda e: {"email": e})
    requests = request_file(workdir / f"{target.rsplit('/', 1)[-1]}.tsv", target,
                            [body(e) for e in emails],
                            {"Content-Type": "application/json", "apikey": apikey})
    base = db.outbox() + sink.count()
    log_offset = server.log_path.stat().st_size
    bound = max(60.0, n / 100)
    rss = PeakRss(server)
    cpu0, db0, t0 = cpu_now(server, db)
    proc = once(server, wrk_bin, requests, connections, bound)
    queued, samples = 0, [(0.0, 0)]
    last_change = (0.0, 0)
    try:
        while queued < n:
            time.sleep(0.02)
            queued = db.outbox() + sink.count() - base
            now = time.perf_counter() - t0
            samples.append((now, queued))
            if queued != last_change[1]:
                last_change = (now, queued)
            elif proc.poll() is not None and now - last_change[0] > STALL_SECONDS:
                break
            if now > bound + 60:
                proc.kill()
                sys.exit(f"{name}: {queued} of {n} messages queued after {now:.0f} s")
    finally:
        peak = rss.stop()
    cpu1, db1, _ = cpu_now(server, db)
    http = once_result(proc, n, name)
    # Until the last message was queued (a stall's wait is not counted).
    seconds = max(last_change[0], 1e-6)
    failures = flow_failures(server.log_path, log_offset)
    refused = http["non_2xx"]
    result = {
        "scenario": name, "messages": n, "queued": queued, "refused": refused,
        "refused_statuses": http["other_statuses"].strip(),
        # Answered 200 and never queued: the client was told nothing went wrong.
        "lost": max(0, n - refused - queued),
        "failures": failures, "connections": connections,
        "http_rps": http["rps"], "http_p50_ms": http["p50_us"] / 1000,
        "http_p99_ms": http["p99_us"] / 1000,
        "errors": http["errors"] + max(0, n - refused - queued),
        "seconds": seconds, "rows_per_s": queued / seconds,
        # Per message queued (a refused request costs little, and queues nothing).
        "cpu_us": 1e6 * (cpu1 - cpu0) / max(queued, 1),
        "db_cpu_us": 1e6 * (db1 - db0) / max(queued, 1),
        "peak_rss_mib": peak,
        # The rate once the answers are all out: the outbox alone.
        "rows_per_s_after_answers": rate_after(samples, http["elapsed_us"] / 1e6,
                                               last_change[0]),
    }
    lost = (f"; {refused} refused ({result['refused_statuses']})" if refused else "") + (
        f"; {result['lost']} LOST after a 200 ({failures})" if result["lost"] else "")
    bench.log(f"  {name}: {n} answered at {http['rps']:.0f}/s, {queued} queued at "
              f"{result['rows_per_s']:.0f} messages/s ({result['cpu_us']:.0f} µs of server CPU "
              f"per message), {http['errors']} errors{lost}")
    return result


def flow_failures(log: Path, offset: int) -> str:
    """The server's "mail flow failed" warnings since `offset`, counted by error."""
    counts: dict[str, int] = {}
    with open(log, "rb") as f:
        f.seek(offset)
        for line in f:
            if b"mail flow failed" not in line:
                continue
            try:
                error = json.loads(line).get("error", "?")
            except ValueError:
                error = "?"
            counts[error] = counts.get(error, 0) + 1
    return ", ".join(f"{count} × {error}" for error, count in
                     sorted(counts.items(), key=lambda kv: -kv[1])) or "none logged"


def rate_after(samples: list[tuple[float, int]], after_s: float, until_s: float) -> float:
    """Messages per second from the first sample after `after_s` to `until_s`."""
    later = [s for s in samples if after_s <= s[0] <= until_s]
    if len(later) < 2 or later[-1][0] - later[0][0] < 0.2:
        return float("nan")
    return (later[-1][1] - later[0][1]) / (later[-1][0] - later[0][0])


def drain(server: bench.Server, db: Database, sink: Sink, name: str, seconds: float) -> dict:
    """Lets the sink answer at once; times the courier from its first delivery until the
    outbox is empty or `seconds` have passed, then deletes what is left (and holds the
    sink again)."""
    backlog = db.outbox()
    start_count = sink.count()
    sink.hold(0)
    # A message already held finishes its HOLD_SECONDS first: start at the next delivery.
    deadline = time.perf_counter() + HOLD_SECONDS + 5
    while sink.count() <= start_count + 1:
        if time.perf_counter() > deadline:
            sys.exit(f"{name}: the courier delivered nothing within {HOLD_SECONDS + 5:.0f} s")
        time.sleep(0.005)
    first = sink.count()
    cpu0, db0, t0 = cpu_now(server, db)
    sink0 = sink.cpu_seconds()
    while db.outbox() > 0 and time.perf_counter() - t0 < seconds:
        time.sleep(0.02)
    cpu1, db1, t1 = cpu_now(server, db)
    sink1 = sink.cpu_seconds()
    delivered = sink.count() - first
    left = db.purge_outbox()
    # The courier still sends what it had claimed: let it, before holding the sink again,
    # so that the next burst counts only its own messages.
    while True:
        before = sink.count()
        time.sleep(0.5)
        if sink.count() == before:
            break
    sink.hold(HOLD_SECONDS)
    if not delivered:
        sys.exit(f"{name}: the courier delivered nothing in {seconds:.0f} s")
    seconds = t1 - t0
    result = {
        "scenario": name, "messages": delivered, "backlog": backlog, "left": left,
        "seconds": seconds,
        "per_s": delivered / seconds,
        "cpu_us": 1e6 * (cpu1 - cpu0) / max(delivered, 1),
        "cpu_percent": 100 * (cpu1 - cpu0) / seconds,
        "db_cpu_us": 1e6 * (db1 - db0) / max(delivered, 1),
        "sink_cpu_us": 1e6 * (sink1 - sink0) / max(delivered, 1),
        "sink_cpu_percent": 100 * (sink1 - sink0) / seconds,
    }
    bench.log(f"  {name}: {delivered} delivered at {result['per_s']:.0f}/s "
              f"({result['cpu_us']:.0f} µs of server CPU each); {left} left, deleted")
    return result


def mint_codes(server: bench.Server, wrk_bin: str, workdir: Path, emails: list[str],
               service_key: str, connections: int) -> tuple[list[tuple[str, str]], dict]:
    """A code for each address from admin/generate_link (nothing is mailed)."""
    requests = request_file(
        workdir / "generate_link.tsv", "/auth/v1/admin/generate_link",
        [{"type": "magiclink", "email": e} for e in emails],
        {"Content-Type": "application/json", "apikey": service_key,
         "Authorization": f"Bearer {service_key}"})
    saved = workdir / "generate_link.out"
    result = once_result(once(server, wrk_bin, requests, connections, max(60.0, len(emails) / 100),
                              save=saved), len(emails), "generate_link")
    if result["errors"]:
        sys.exit(f"admin/generate_link: {result['errors']} errors")
    codes = []
    for line in saved.read_text().splitlines():
        link = json.loads(line)
        codes.append((link["email"], link["email_otp"]))
    if sorted(e for e, _ in codes) != sorted(emails):
        sys.exit("admin/generate_link did not answer once for each address")
    return codes, result


def verify(server: bench.Server, db: Database, wrk_bin: str, workdir: Path,
           codes: list[tuple[str, str]], apikey: str, connections: int) -> dict:
    requests = request_file(
        workdir / "verify.tsv", "/auth/v1/verify",
        [{"type": "email", "email": e, "token": code} for e, code in codes],
        {"Content-Type": "application/json", "apikey": apikey})
    rss = PeakRss(server)
    cpu0, db0, t0 = cpu_now(server, db)
    result = once_result(once(server, wrk_bin, requests, connections,
                              max(60.0, len(codes) / 100)), len(codes), "verify")
    cpu1, db1, t1 = cpu_now(server, db)
    seconds = result["elapsed_us"] / 1e6
    n = result["answered"]
    result.update(
        scenario="POST /auth/v1/verify (code)", connections=connections, requests=n,
        cpu_us=1e6 * (cpu1 - cpu0) / max(n, 1), cpu_percent=100 * (cpu1 - cpu0) / seconds,
        db_cpu_us=1e6 * (db1 - db0) / max(n, 1), db_cpu_percent=100 * (db1 - db0) / seconds,
        peak_rss_mib=rss.stop())
    bench.log(f"  verify: {result['rps']:.0f}/s, p99 {result['p99_us'] / 1000:.2f} ms, "
              f"{result['errors']} errors")
    return result


# --- a backend -------------------------------------------------------------------------


def run_backend(backend: str, database_url: str, args, wrk_bin: str, workdir: Path) -> dict:
    n, probes, c = args.messages, args.probes, args.connections
    # Address ranges, each used by one scenario: a new token of the same user and purpose
    # voids the last one, and the history of one user's tokens is not what is measured.
    ranges = {name: range(i * n + probes, (i + 1) * n + probes)
              for i, name in enumerate(("recover", "otp", "verify"))}
    users = 3 * n + 2 * probes
    bench.log(f"{backend}: seeding {users} users")
    bench.run([str(bench.RELEASE / "gatehouse-bench"), "seed", "--database-url", database_url,
               "--users", str(users), "--password", bench.PASSWORD], capture_output=True)

    sink = Sink(hold=HOLD_SECONDS, quickack=args.sink_quickack)
    try:
        return measure_backend(backend, database_url, args, wrk_bin, workdir, sink, ranges,
                               {"backend": backend, "users": users})
    finally:
        sink.stop()


def measure_backend(backend: str, database_url: str, args, wrk_bin: str, workdir: Path,
                    sink: Sink, ranges: dict, results: dict) -> dict:
    n, probes, c = args.messages, args.probes, args.connections
    server = bench.Server(database_url, workdir)
    server.env.update({"GATEHOUSE_SMTP_URL": sink.url,
                       "GATEHOUSE_MAIL_FROM": "bench@bench.example.com"})
    keys = json.loads(server.cli("keys", "api-keys", "--json"))
    anon, service = keys["anon_key"], keys["service_role_key"]
    server.start()
    db = Database(backend, database_url)
    try:
        bench.log(f"{backend}: POST /auth/v1/recover one at a time, the sink holding DATA "
                  f"{HOLD_SECONDS:.0f} s")
        delivered0, queued0 = sink.count(), db.outbox()
        probe = latency_probe(server, anon, [EMAIL.format(i) for i in range(probes)], "held")
        probe["delivered_meanwhile"] = sink.count() - delivered0
        # The last ones are still being written: wait for them before the next scenario.
        deadline = time.perf_counter() + 30
        while db.outbox() - queued0 + sink.count() - delivered0 < probes:
            if time.perf_counter() > deadline:
                sys.exit("the probes' messages were not all queued within 30 s")
            time.sleep(0.02)
        probe["queued"] = probes
        results["probe_held"] = probe

        results["intake"] = [intake(server, db, sink, wrk_bin, workdir, "/auth/v1/recover",
                                    [EMAIL.format(i) for i in ranges["recover"]], anon, c,
                                    "POST /auth/v1/recover")]
        results["drain"] = [drain(server, db, sink, "courier, after /recover",
                                  args.drain_seconds)]
        results["intake"].append(intake(server, db, sink, wrk_bin, workdir, "/auth/v1/otp",
                                         [EMAIL.format(i) for i in ranges["otp"]], anon, c,
                                         "POST /auth/v1/otp"))
        results["drain"].append(drain(server, db, sink, "courier, after /otp",
                                      args.drain_seconds))

        bench.log(f"{backend}: minting {n} codes with admin/generate_link")
        codes, minted = mint_codes(server, wrk_bin, workdir,
                                   [EMAIL.format(i) for i in ranges["verify"]], service, c)
        results["generate_link_rps"] = minted["rps"]
        results["verify"] = verify(server, db, wrk_bin, workdir, codes, anon, c)
        server.stop()

        # The SMTP port closed: nothing listens on it.
        server.env["GATEHOUSE_SMTP_URL"] = f"smtp://127.0.0.1:{bench.free_port()}"
        server.start()
        bench.log(f"{backend}: POST /auth/v1/recover one at a time, the SMTP port closed")
        probe = latency_probe(server, anon, [EMAIL.format(probes + i) for i in range(probes)],
                              "closed")
        probe["queued"] = probes
        results["probe_closed"] = probe
    finally:
        server.stop()
        db.close()
    return results


# --- the report ------------------------------------------------------------------------


def report(all_results: list[dict], args, info: dict) -> str:
    f0 = lambda x: f"{x:,.0f}"
    lines = [
        f"Run {info['date']} on commit `{info['commit']}`.",
        "",
        f"- Machine: {info['machine']}; load generator and SMTP sink on the same machine.",
        f"- Versions: {info['rustc']}; {info['wrk']}; {info['postgres']}; SQLite {info['sqlite']}.",
        f"- Command: `{' '.join(['bench/mail.py'] + sys.argv[1:])}` — {args.messages} messages "
        f"(or codes) per burst, {args.connections} connections, one wrk thread "
        f"(`bench/wrk/once.lua`: each request sent once); {args.probes} probes of each kind.",
        "- CPU: the server's user + system time over the scenario, per request or message; "
        "Postgres CPU is that of the backends connected to the benchmark's database (not "
        "other databases' load, nor the WAL writer, checkpointer or autovacuum).",
        "",
        "### Answering before SMTP: POST /auth/v1/recover, one request at a time",
        "",
        "| backend | SMTP | known address p50 / p99 / max ms | unknown address p50 / p99 / max ms "
        "| messages queued / delivered meanwhile |",
        "|---|---|---|---|---|",
    ]
    for r in all_results:
        for key, label in (("probe_held", f"sink holds each DATA {HOLD_SECONDS:.0f} s"),
                           ("probe_closed", "port closed")):
            p = r[key]
            k, u = p["known"], p["unknown"]
            delivered = p.get("delivered_meanwhile", 0)
            lines.append(
                f"| {r['backend']} | {label} | {k['p50_ms']:.2f} / {k['p99_ms']:.2f} / "
                f"{k['max_ms']:.2f} | {u['p50_ms']:.2f} / {u['p99_ms']:.2f} / {u['max_ms']:.2f} "
                f"| {p['queued']} / {delivered} |")
    lines += [
        "",
        "### Outbox intake: a burst of requests for distinct known addresses until every "
        "message is queued",
        "",
        "| backend | requests | sent | answered/s | answer p99 ms | messages queued "
        "| queued/s | queued/s once answered | server CPU µs/message "
        "| Postgres CPU µs/message | peak RSS MiB | refused (status:count) "
        "| lost after a 200: the server's log |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in all_results:
        for s in r["intake"]:
            db = f0(s["db_cpu_us"]) if r["backend"] == "postgres" else "–"
            lost = f"**{s['lost']}**: {s['failures']}" if s["lost"] else "0"
            refused = f"{s['refused']} ({s['refused_statuses']})" if s["refused"] else "0"
            lines.append(
                f"| {r['backend']} | {s['scenario']} | {s['messages']} | {f0(s['http_rps'])} "
                f"| {s['http_p99_ms']:.1f} | {s['queued']} | **{f0(s['rows_per_s'])}** "
                f"| {f0(s['rows_per_s_after_answers'])} | {f0(s['cpu_us'])} | {db} "
                f"| {s['peak_rss_mib']:.0f} | {refused} | {lost} |")
    lines += [
        "",
        "### Courier: draining that backlog to a sink that answers at once",
        "",
        "| backend | after | backlog | delivered in s | delivered/s | server CPU µs/message "
        "| Postgres CPU µs/message | sink CPU µs/message | left, deleted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in all_results:
        for s in r["drain"]:
            db = f0(s["db_cpu_us"]) if r["backend"] == "postgres" else "–"
            lines.append(
                f"| {r['backend']} | {s['scenario'].split(', ')[-1]} | {s['backlog']} "
                f"| {s['messages']} in {s['seconds']:.1f} | **{f0(s['per_s'])}** "
                f"| {f0(s['cpu_us'])} | {db} | {f0(s['sink_cpu_us'])} | {s['left']} |")
    lines += [
        "",
        "### POST /auth/v1/verify with a 6-digit code (a session each)",
        "",
        "| backend | codes | conns | verifies/s | p50 ms | p99 ms | max ms | server CPU µs/request "
        "| Postgres CPU µs/request | server CPU % | peak RSS MiB | errors "
        "| admin/generate_link/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in all_results:
        v = r["verify"]
        db = f0(v["db_cpu_us"]) if r["backend"] == "postgres" else "–"
        lines.append(
            f"| {r['backend']} | {v['requests']} | {v['connections']} | **{f0(v['rps'])}** "
            f"| {bench.ms(v['p50_us'])} | {bench.ms(v['p99_us'])} | {bench.ms(v['max_us'])} "
            f"| {f0(v['cpu_us'])} | {db} | {v['cpu_percent']:.0f} | {v['peak_rss_mib']:.0f} "
            f"| {v['errors']} | {f0(r['generate_link_rps'])} |")
    lines += ["", "### Targets", ""]
    for name, ok, detail in targets(all_results):
        lines.append(f"- {'✅' if ok else '❌'} {name}: {detail}")
    return "\n".join(lines) + "\n"


def targets(all_results: list[dict]) -> list[tuple[str, bool, str]]:
    checks = []
    for r in all_results:
        b = r["backend"]
        for key, label in (("probe_held", f"the sink holding each DATA {HOLD_SECONDS:.0f} s"),
                           ("probe_closed", "the SMTP port closed")):
            k, u = r[key]["known"], r[key]["unknown"]
            checks.append((f"{b}: POST /auth/v1/recover answers before SMTP is contacted, "
                           f"{label} (known-address p99 < 100 ms)",
                           k["p99_ms"] < 100,
                           f"known p50 {k['p50_ms']:.2f} / p99 {k['p99_ms']:.2f} ms, unknown "
                           f"p50 {u['p50_ms']:.2f} / p99 {u['p99_ms']:.2f} ms"))
        for s in r["intake"]:
            checks.append((f"{b}: the outbox accepts ≥ 1,000 messages/s ({s['scenario']})"
                           + ("" if b == "sqlite" else "; the target is SQLite's, reported"),
                           s["rows_per_s"] >= 1000,
                           f"{s['rows_per_s']:,.0f}/s over {s['queued']} messages, "
                           f"{s['cpu_us']:,.0f} µs of server CPU each"))
            checks.append((f"{b}: no message lost after a 200 answer ({s['scenario']}, "
                           f"{s['messages']} at once)", not s["lost"],
                           (f"{s['lost']} lost: {s['failures']}" if s["lost"] else "none lost")
                           + (f"; {s['refused']} refused ({s['refused_statuses']})"
                              if s["refused"] else "")))
        v = r["verify"]
        checks.append((f"{b}: POST /auth/v1/verify with a code ≥ 2,000/s", v["rps"] >= 2000,
                       f"{v['rps']:,.0f}/s, p99 {v['p99_us'] / 1000:.1f} ms, "
                       f"{v['cpu_us']:,.0f} µs of server CPU each"))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="small bursts, to prove it runs (CI); fails on any error; "
                             "does not touch RESULTS.md")
    parser.add_argument("--messages", type=int, default=None,
                        help="requests per burst, and codes to verify (default 20,000; "
                             "500 with --smoke)")
    parser.add_argument("--probes", type=int, default=None,
                        help="latency probes of each kind (default 200; 20 with --smoke)")
    parser.add_argument("--drain-seconds", type=float, default=None,
                        help="how long to time the courier at most (default 10; 3 with "
                             "--smoke); what it has not delivered by then is deleted")
    parser.add_argument("--sink-quickack", action="store_true",
                        help="the sink acknowledges every TCP segment at once (a diagnosis "
                             "of the courier's rate; not what mail servers do)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "GATEHOUSE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="an administrative connection; the run creates and drops its own database")
    parser.add_argument("--no-build", action="store_true", help="use the release build as it is")
    parser.add_argument("--no-record", action="store_true", help="do not rewrite RESULTS.md")
    args = parser.parse_args()
    args.messages = args.messages if args.messages is not None else (500 if args.smoke else 20_000)
    args.probes = args.probes if args.probes is not None else (20 if args.smoke else 200)
    if args.drain_seconds is None:
        args.drain_seconds = 3 if args.smoke else 10
    if args.messages < args.connections:
        sys.exit("--messages must be at least --connections")

    wrk_bin = bench.ensure_wrk()
    if not args.no_build:
        bench.build()
    info = bench.versions()
    all_results = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"gatehouse-mail-bench-{backend}-") as tmp:
            workdir = Path(tmp)
            if backend == "sqlite":
                url = f"sqlite://{workdir / 'bench.db'}"
                all_results.append(run_backend(backend, url, args, wrk_bin, workdir))
            elif backend == "postgres":
                bench.run([str(bench.ROOT / "scripts" / "ensure-services.sh")])
                name = f"gatehouse_mail_bench_{os.getpid()}"
                admin = args.postgres_url
                bench.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {name}"])
                try:
                    url = admin.rsplit("/", 1)[0] + "/" + name
                    all_results.append(run_backend(backend, url, args, wrk_bin, workdir))
                finally:
                    bench.run(["psql", admin, "-q", "-c",
                               f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
            else:
                sys.exit(f"unknown backend {backend}: sqlite or postgres")

    text = report(all_results, args, info)
    print()
    print(text)
    if args.smoke:
        bad = [(r["backend"], s["scenario"], s["errors"])
               for r in all_results for s in r["intake"] + [r["verify"]] if s["errors"]]
        if bad:
            sys.exit(f"smoke run failed: scenarios with errors: {bad}")
        print("smoke run: every request answered 2xx and every message arrived "
              "(speed is not judged here)")
    elif not args.no_record:
        bench.record(text, BEGIN, END)
        bench.log(f"wrote {bench.RESULTS.relative_to(bench.ROOT)}")


if __name__ == "__main__":
    main()
