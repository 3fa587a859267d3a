# One-line targets; the logic lives in scripts/ and in the code.
.PHONY: run demo test test-fast lint deny setup fixtures bench bench-http

run: setup ; cargo run --release -p export-server -- --seed-demo
demo: setup ; scripts/demo
test: setup ; scripts/test
test-fast: ; cargo test --workspace
lint:      ; cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings
deny:      ; scripts/deny
setup:     ; scripts/setup-machine
fixtures:  ; python3 fixtures/generate.py
bench:      ; scripts/bench
bench-http: ; scripts/bench-http
