#!/usr/bin/env python3
"""GET /auth/me in Supabase mode against standalone mode, in one run (issue 13's budget).

A standalone gatehouse plays the Supabase project; a second gatehouse runs in Supabase mode
in front of it (SUPABASE_URL, the anon and service-role keys). Users sign up and sign in
through the second one, so each access token is the project's, valid on both servers. Then
wrk drives GET /auth/me at each server in turn (A/B interleaved, `--rounds` times), and the
script prints requests per second and the server's CPU time per request for each, with the
ratio. In Supabase mode the upstream sees no request during the measurement: the project's
JWKS is cached and each token's claims are reused, as standalone caches its own.

Uses bench/run.py's server harness; release binaries from `cargo build --release`
(`--build` to build them). Python's standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def sign_up_and_in(server: bench.Server, csrf: str, email: str) -> str:
    status, body, _ = server.request("POST", "/auth/signup",
                                     {"email": email, "password": bench.PASSWORD})
    if status != 201:
        sys.exit(f"sign-up of {email} answered {status}: {body}")
    access, _ = bench.sign_in(server, csrf, email)
    return access


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--build", action="store_true")
    args = parser.parse_args()
    if args.build:
        bench.build()
    wrk_bin = bench.ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="gatehouse-supabase-bench-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "project").mkdir()
        (tmp_path / "front").mkdir()
        project = bench.Server(f"sqlite://{tmp_path}/project.db", tmp_path / "project")
        keys = json.loads(project.cli("keys", "api-keys", "--json"))
        project.start()
        front = bench.Server(f"sqlite://{tmp_path}/front.db", tmp_path / "front")
        front.env.update({
            "SUPABASE_URL": project.origin,
            "SUPABASE_ANON_KEY": keys["anon_key"],
            "SUPABASE_SERVICE_ROLE_KEY": keys["service_role_key"],
        })
        front.start()
        try:
            _, body, _ = front.request("GET", "/auth/csrf")
            csrf = body["csrfToken"]
            users = args.connections + 1
            bench.log(f"signing up and in {users} users through Supabase mode")
            tokens = [sign_up_and_in(front, csrf, f"user{i}@bench.example.com")
                      for i in range(users)]
            requests = bench.write_requests(tmp_path / "me.tsv", [
                ("GET", "/auth/me", None, {"Authorization": f"Bearer {t}"}) for t in tokens])
            env = {"BENCH_REQUESTS": str(requests)}
            runs: dict[str, list[dict]] = {"standalone": [], "supabase": []}
            for round_ in range(args.rounds):
                for mode, server in (("standalone", project), ("supabase", front)):
                    bench.log(f"round {round_ + 1}: {mode}")
                    runs[mode].append(bench.measure(server, f"{mode} GET /auth/me", lambda: bench.wrk(
                        server, wrk_bin, "requests.lua", args.connections, args.seconds, env)))
        finally:
            front.stop()
            project.stop()

    def cpu_us(r: dict) -> float:
        return 1e6 * (r["cpu_percent"] / 100) * (r["duration_us"] / 1e6) / max(r["requests"], 1)

    summary = {}
    for mode, results in runs.items():
        errors = sum(r["errors"] for r in results)
        if errors:
            sys.exit(f"{mode}: {errors} errors")
        summary[mode] = {
            "rps": statistics.median(r["rps"] for r in results),
            "p99_ms": statistics.median(r["p99_us"] for r in results) / 1000,
            "cpu_us_per_request": statistics.median(cpu_us(r) for r in results),
        }
    s, f = summary["standalone"], summary["supabase"]
    print(f"GET /auth/me, SQLite, {args.connections} connections, {args.seconds:.0f} s x "
          f"{args.rounds} rounds, A/B interleaved (medians)")
    print("| mode | req/s | p99 | server CPU per request |")
    print("|---|---:|---:|---:|")
    for mode, r in summary.items():
        print(f"| {mode} | {r['rps']:,.0f} | {r['p99_ms']:.2f} ms | {r['cpu_us_per_request']:.0f} µs |")
    print(f"Supabase mode / standalone: {f['rps'] / s['rps']:.2f} of the throughput, "
          f"{f['cpu_us_per_request'] / s['cpu_us_per_request']:.2f} of the CPU per request")


if __name__ == "__main__":
    main()
