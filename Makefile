# Granule: build, test and demo entry points.
#
#   make deps    install the Debian packages Granule needs (only the missing ones; python3 for the
#                demo's data generator when there is none)
#   make build   build the granule command-line tool (release)
#   make test    build, run every Swift test target, then the IR FileCheck tests, then runtime-test
#   make runtime-test  build and test the C runtime (Runtime/), then again with ASan + UBSan
#   make demo    build and run scripts/demo
#   make clean   remove build products
#
# SCRATCH picks the SwiftPM build directory, e.g. `make test SCRATCH=.build-ci`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

SCRATCH ?= .build
SWIFT ?= swift
SWIFT_FLAGS := --scratch-path $(SCRATCH)

# The toolchain lives in /opt/swift on our machines; use it when swift is not on PATH.
ifeq ($(shell command -v $(SWIFT) 2>/dev/null),)
  ifneq ($(wildcard /opt/swift/usr/bin/swift),)
    export PATH := /opt/swift/usr/bin:$(PATH)
  endif
endif

DEB_PACKAGES := llvm-19-dev llvm-19-tools libopenblas-dev zlib1g-dev graphviz

RELEASE_GRANULE = $(SCRATCH)/release/granule
DEBUG_GRANULE = $(SCRATCH)/debug/granule

.PHONY: deps build build-debug test runtime-test demo clean

deps:
	@missing=""; \
	for package in $(DEB_PACKAGES); do \
	    status=$$(dpkg -s "$$package" 2>/dev/null || true); \
	    case "$$status" in *"Status: install ok installed"*) ;; *) missing="$$missing $$package" ;; esac; \
	done; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	if [ -z "$$missing" ]; then \
	    echo "==> deps: all Debian packages present"; \
	else \
	    echo "==> deps: installing$$missing"; \
	    sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq; \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	@echo "==> build: granule (release)"
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product granule
	@echo "==> built $(RELEASE_GRANULE)"

# Tests use the debug build: it compiles much faster than release and `swift test` needs it anyway.
build-debug: deps
	@echo "==> build: everything including tests (debug)"
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests

test: build-debug
	@echo "==> test: Swift test targets"
	@# Hide Swift Testing's per-test "started" lines; results and failures stay.
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build 2>&1 | sed -u '/^◇ .* started\.$$/d'
	@echo "==> test: IR FileCheck tests"
	scripts/run-ir-tests $(DEBUG_GRANULE)
	@$(MAKE) --no-print-directory runtime-test

# The C runtime linked into every compiled program. Each variant builds the unit tests, a
# `fake_model` (main/*.c + a hand-written "generated" program) and the CLI tests, the train tests
# and a `fake_trainer` (main/*.c + a hand-written train step; `fake_trainer_wide`: one with a checkpoint
# of megabytes, for the SIGKILL test), then runs them.
RT_CC ?= cc
RT_BUILD ?= .build-runtime
RT_CFLAGS := -std=c11 -Wall -Wextra -Wpedantic -Werror -IRuntime/include
RT_LIBS := -lopenblas -lz -lm -lpthread
RT_SOURCES := $(sort $(wildcard Runtime/src/*.c))
RT_MAIN := $(sort $(wildcard Runtime/main/*.c))
RT_UNIT_TESTS := $(filter-out Runtime/tests/cli_test.c Runtime/tests/fake_program.c Runtime/tests/train_%.c,$(sort $(wildcard Runtime/tests/*.c))) \
    Runtime/tests/fake_program.c
# The parts of main/ that the unit tests call directly (the suites search, metrics, tokenizer).
RT_MAIN_UNITS := Runtime/main/search.c Runtime/main/metrics.c Runtime/main/tokenizer.c
RT_TRAIN_TESTS := Runtime/tests/train_test.c Runtime/tests/train_fake_program.c Runtime/tests/test_support.c
RT_SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# What a compiled program may link dynamically: libc, libm, libpthread, libz, OpenBLAS and the
# Fortran runtime Debian's OpenBLAS pulls in.
RT_ALLOWED_LIBS := linux-vdso.so.1 /lib64/ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libz.so.1 \
    libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libgcc_s.so.1

# $(call rt_variant,NAME,EXTRA_CFLAGS,ENVIRONMENT): build and run one variant, timed.
define rt_variant
	@echo "==> runtime-test: $(1): $(RT_CC) $(RT_CFLAGS) $(2)"
	@mkdir -p $(RT_BUILD)/$(1)
	@start=$$(date +%s.%N); \
	$(RT_CC) $(RT_CFLAGS) $(2) -o $(RT_BUILD)/$(1)/runtime_tests $(RT_SOURCES) $(RT_MAIN_UNITS) $(RT_UNIT_TESTS) $(RT_LIBS); \
	$(RT_CC) $(RT_CFLAGS) $(2) -o $(RT_BUILD)/$(1)/fake_model $(RT_SOURCES) $(RT_MAIN) Runtime/tests/fake_program.c $(RT_LIBS); \
	$(RT_CC) $(RT_CFLAGS) $(2) -o $(RT_BUILD)/$(1)/cli_tests $(RT_SOURCES) Runtime/tests/cli_test.c Runtime/tests/test_support.c $(RT_LIBS); \
	$(RT_CC) $(RT_CFLAGS) $(2) -o $(RT_BUILD)/$(1)/fake_trainer $(RT_SOURCES) $(RT_MAIN) Runtime/tests/train_fake_program.c $(RT_LIBS); \
	$(RT_CC) $(RT_CFLAGS) $(2) -o $(RT_BUILD)/$(1)/fake_trainer_wide $(RT_SOURCES) $(RT_MAIN) Runtime/tests/train_wide_fake_program.c $(RT_LIBS); \
	$(RT_CC) $(RT_CFLAGS) $(2) -o $(RT_BUILD)/$(1)/train_tests $(RT_SOURCES) $(filter-out Runtime/main/main.c,$(RT_MAIN)) \
	    $(RT_TRAIN_TESTS) $(RT_LIBS); \
	built=$$(date +%s.%N); \
	$(3) $(RT_BUILD)/$(1)/runtime_tests; \
	$(3) $(RT_BUILD)/$(1)/cli_tests $(RT_BUILD)/$(1)/fake_model; \
	$(3) $(RT_BUILD)/$(1)/train_tests $(RT_BUILD)/$(1)/fake_trainer $(RT_BUILD)/$(1)/fake_trainer_wide; \
	done=$$(date +%s.%N); \
	awk -v s=$$start -v b=$$built -v d=$$done 'BEGIN { printf "==> runtime-test: $(1): built in %.1f s, tests ran in %.1f s\n", b - s, d - b }'
endef

runtime-test: deps
	$(call rt_variant,release,-O2,)
	@echo "==> runtime-test: shared libraries of fake_model"
	@ldd $(RT_BUILD)/release/fake_model | sed 's/^/    /'
	@for lib in $$(ldd $(RT_BUILD)/release/fake_model | awk '{print $$1}'); do \
	    case " $(RT_ALLOWED_LIBS) " in *" $$lib "*) ;; *) echo "error: fake_model links $$lib, which is not allowed"; exit 1 ;; esac; \
	done
	$(call rt_variant,sanitize,-O1 -g $(RT_SANITIZE),ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1)
	@echo "==> runtime-test: tsan: the thread pool and error suites under ThreadSanitizer"
	@mkdir -p $(RT_BUILD)/tsan
	$(RT_CC) $(RT_CFLAGS) -O1 -g -fsanitize=thread -o $(RT_BUILD)/tsan/runtime_tests $(RT_SOURCES) $(RT_MAIN_UNITS) $(RT_UNIT_TESTS) $(RT_LIBS)
	TSAN_OPTIONS=halt_on_error=1 $(RT_BUILD)/tsan/runtime_tests threadpool errors

demo: build
	@echo "==> demo"
	GRANULE=$(RELEASE_GRANULE) scripts/demo

clean:
	rm -rf $(SCRATCH)
