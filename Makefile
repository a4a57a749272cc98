# gatehouse — the two commands of the README are `make run` and `make test`.
.PHONY: run dev test lint fmt fuzz bench bench-smoke bench-mail bench-supabase microbench openapi help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: ## release build, then serve on GATEHOUSE_ADDR (default 127.0.0.1:8080)
	cargo run --release --locked -p gatehouse -- serve

dev: ## debug build, debug logs, insecure cookies for local http
	GATEHOUSE_LOG=debug,sqlx=info,hyper=info GATEHOUSE_INSECURE_COOKIES=true cargo run -p gatehouse -- serve

test: ## the whole test suite, on SQLite and Postgres (starts the local Postgres if it is down)
	scripts/test.sh

lint: ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## format the code
	cargo fmt --all

openapi: ## regenerate docs/openapi.json after changing a route
	GATEHOUSE_BLESS=1 cargo nextest run -p gatehouse-http the_committed_openapi_document_matches_the_routes

fuzz: ## fuzz every target (FUZZ_SECONDS each, default 20; nightly + cargo-fuzz)
	fuzz/run.sh

bench: ## load benchmark on SQLite and Postgres (release build, wrk), then the mail one; prints the tables, rewrites bench/RESULTS.md
	bench/run.py $(BENCH_ARGS)
	bench/mail.py --no-build $(MAIL_BENCH_ARGS)

bench-smoke: ## the load and mail benchmarks for a few seconds per scenario (CI): must run without errors
	bench/run.py --smoke
	bench/mail.py --smoke --no-build

bench-mail: ## mail only: outbox intake, courier drain, POST /auth/v1/verify, answers before SMTP (release build); rewrites its part of bench/RESULTS.md
	bench/mail.py $(MAIL_BENCH_ARGS)

bench-supabase: ## GET /auth/me in Supabase mode against standalone, A/B in one run (release build)
	cargo build --release --locked -p gatehouse
	bench/run.py --help >/dev/null && bench/supabase_mode.py

microbench: ## criterion micro-benchmarks: Argon2id, tokens per algorithm, refresh rotation per store
	scripts/ensure-services.sh
	cargo bench --locked -p gatehouse-core --bench core
