# gatehouse — the two commands of the README are `make run` and `make test`.
.PHONY: run dev test lint fmt fuzz bench openapi help

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

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

bench: ## benchmarks (criterion micro-benchmarks in the crates; load benchmarks arrive in bench/)
	cargo bench --workspace --locked
