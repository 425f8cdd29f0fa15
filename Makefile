# mproc - the front door. CMake is the build; this file only drives it.
#
#   make demo    build and run the examples
#   make check   build and run every test, then the whole suite again under ASan+UBSan
#   make bench   run the benchmarks against their anchors (ONLY=group for one group)
#   make install install the release build (PREFIX=/usr/local)
#
# On a fresh Debian 12 machine as root, each target installs the Debian packages it
# needs first (see deps).

BUILD      ?= build
CHECKBUILD ?= build-check
ASANBUILD  ?= build-asan
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_GEN  := -DCMAKE_EXPORT_COMPILE_COMMANDS=ON

.PHONY: all build demo check check-plain check-asan bench install deps deps-bench clean format

all: build

# Packages: the build needs a compiler, cmake and pkg-config, SQLite for the task graph,
# OpenSSL's libcrypto for Listener/Client and Open MPI for the MPI backend
# (libmproc-graph, libmproc-net and libmproc-mpi are built only where these are found);
# the tests need cmocka, a few
# everyday tools (taskset, unshare, strace, tmux, time), clang-format (the format check)
# and GNU parallel (the reference the CLI tests compare with); the benchmarks need python3
# and GNU parallel as anchors, make, ninja, Snakemake and Ruffus for the task graph,
# mpi4py for the MPI backend; Slurm
# and munge, when they can be installed, give the --slurm tests a one-node cluster. Installed only when
# missing, and only as root.
DEPS_BUILD := gcc cmake pkg-config make libsqlite3-dev libssl-dev openmpi-bin libopenmpi-dev
DEPS_TEST  := libcmocka-dev util-linux procps strace tmux python3 parallel time clang-format
DEPS_BENCH := python3 parallel findutils make ninja-build python3-ruffus snakemake python3-mpi4py
# Optional: a one-node Slurm for the --slurm tests (skipped where it cannot be installed).
DEPS_SLURM := slurm-wlm munge

deps:
	@./scripts/ensure-packages $(DEPS_BUILD) $(DEPS_TEST)
	@./scripts/ensure-packages $(DEPS_SLURM) || echo "mproc: no Slurm here: the --slurm tests will be skipped" >&2

deps-bench:
	@./scripts/ensure-packages $(DEPS_BUILD) $(DEPS_BENCH)
	@./scripts/ensure-packages $(DEPS_SLURM) || echo "mproc: no Slurm here: the slurm group will be skipped" >&2

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_TESTS=OFF

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

demo: deps build
	./examples/run-all $(BUILD)/examples

check: deps check-plain check-asan
	@echo "make check: all tests passed, plain and under ASan+UBSan"

check-plain:
	cmake -S . -B $(CHECKBUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_FAULT_INJECTION=ON
	cmake --build $(CHECKBUILD) -j $(JOBS)
	cd $(CHECKBUILD) && ctest --output-on-failure --no-tests=error

check-asan:
	cmake -S . -B $(ASANBUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DMPROC_FAULT_INJECTION=ON \
	      -DMPROC_SANITIZE=ON -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF
	cmake --build $(ASANBUILD) -j $(JOBS)
	cd $(ASANBUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure --no-tests=error

bench: deps-bench build
	./bench/run $(BUILD) $(ONLY)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(CHECKBUILD) $(ASANBUILD)
