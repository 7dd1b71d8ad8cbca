# Granule: build, test and demo entry points.
#
#   make deps    install the Debian packages Granule needs (only the missing ones)
#   make build   build the granule command-line tool (release)
#   make test    build, run every Swift test target, then the IR FileCheck tests
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

.PHONY: deps build build-debug test demo clean

deps:
	@missing=""; \
	for package in $(DEB_PACKAGES); do \
	    status=$$(dpkg -s "$$package" 2>/dev/null || true); \
	    case "$$status" in *"Status: install ok installed"*) ;; *) missing="$$missing $$package" ;; esac; \
	done; \
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

demo: build
	@echo "==> demo"
	GRANULE=$(RELEASE_GRANULE) scripts/demo

clean:
	rm -rf $(SCRATCH)
