# The README's two commands: `make run` and `make test`. Both do all set-up first
# (scripts/setup.sh is idempotent: a second run only checks what is there).
.PHONY: setup build run test lint fmt

setup:
	bash scripts/setup.sh

build: setup
	cargo build --release

# Sets up, builds and starts the workbench on configs/default.ron with the embedded default model.
run: build
	./target/release/coe

# Sets up, then format check, clippy and the whole test suite.
test: setup
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo test

fmt:
	cargo fmt
