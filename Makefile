# Thin wrapper: the build is CMake's, the package list is scripts/install-deps.sh's.
#   make run   install missing packages, build, run the daemon (reads .env if present)
#   make test  install missing packages, build (ASan+UBSan), run every test
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD := build/release
TBUILD := build/test
FBUILD := build/fuzz
# make fuzz runs each libFuzzer target this long; make test, TEST_FUZZ_SECONDS (at most 10).
FUZZ_SECONDS ?= 60
TEST_FUZZ_SECONDS ?= 10

.PHONY: all deps test-deps build build-test build-fuzz run test unit integration fuzz fuzz-run bench image soak clean format

all: build

deps:
	@scripts/install-deps.sh all

test-deps:
	@scripts/install-deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVA_TESTS=OFF

$(TBUILD)/CMakeCache.txt:
	cmake -S . -B $(TBUILD) -DCMAKE_BUILD_TYPE=Debug -DVA_SANITIZE=ON -DVA_WERROR=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-test: test-deps $(TBUILD)/CMakeCache.txt
	cmake --build $(TBUILD) -j $(JOBS)

$(FBUILD)/CMakeCache.txt:
	CC=clang-14 cmake -S . -B $(FBUILD) -DVA_FUZZ=ON -DVA_TESTS=OFF

build-fuzz: test-deps $(FBUILD)/CMakeCache.txt
	cmake --build $(FBUILD) -j $(JOBS) --target fuzz_targets

run: build
	exec $(BUILD)/voice-agent

test: deps build build-test build-fuzz
	cd $(TBUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

unit: build-test
	cd $(TBUILD) && ctest --output-on-failure -j $(JOBS) -L unit

integration: build-test
	cd $(TBUILD) && ctest --output-on-failure -j $(JOBS) -L integration

# Each libFuzzer target for FUZZ_SECONDS on a scratch copy of its corpus (tests/fuzz/run.sh);
# a crash fails, naming the input to copy into tests/fuzz/regressions/<name>/.
fuzz: build-fuzz
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run:
	@cd $(FBUILD) && rm -f run/*/summary && st=0 && \
	FUZZ_SECONDS=$(FUZZ_SECONDS) ctest -j $(JOBS) -L fuzz --timeout $$(($(FUZZ_SECONDS) + 300)) --output-on-failure || st=$$?; \
	cat run/*/summary 2>/dev/null; exit $$st

# N concurrent calls through the daemon and a Realtime peer over TLS, both sides the C load
# generator build/release/va-loadgen (BENCH_CALLS, BENCH_SECONDS); figures in
# docs/performance.md.
bench: build test-deps
	bench/bench.sh

# The container image, built and probed with podman (no Docker engine needed; slow, so not
# part of `make test`): scripts/image.sh, README "Run with Docker".
image:
	scripts/image.sh

# The release daemon for SOAK_SECONDS (default 600) under waves of calls, hostile clients
# and a Realtime service and Edge Function that keep failing (tests/soak/soak.sh); the
# samples and the summary land in build/release/soak; figures in docs/soak.md.
SOAK_SECONDS ?= 600
soak: build test-deps
	VA_BIN=$(CURDIR)/$(BUILD)/voice-agent SOAK_SECONDS=$(SOAK_SECONDS) \
		SOAK_OUT=$(CURDIR)/$(BUILD)/soak tests/soak/soak.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'include/*.h' 'tests/*.c')

clean:
	rm -rf build
