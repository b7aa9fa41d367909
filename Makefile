# redis-ops: `make demo` and `make test` work on a fresh machine (they install what is missing).
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
DEB_PACKAGES := libhiredis-dev libncurses-dev libssl-dev pkg-config redis-server redis-tools tmux openssl ca-certificates procps
SCREENSHOT_PACKAGES := xterm xvfb imagemagick x11-utils fonts-dejavu-core
SWIFT_FLAGS ?=
RELEASE_BIN := .build/release/redis-ops

.PHONY: deps screenshot-deps build release test demo bench screenshots clean

deps:
	@bash scripts/install-deps.sh $(DEB_PACKAGES)

screenshot-deps: deps
	@bash scripts/install-deps.sh $(SCREENSHOT_PACKAGES)

build: deps
	swift build $(SWIFT_FLAGS)

release: deps
	swift build -c release --static-swift-stdlib $(SWIFT_FLAGS)

# The full suite: unit, integration (real redis-server processes) and end-to-end (tmux).
test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift test --skip-build --disable-swift-testing $(SWIFT_FLAGS)

demo: release
	$(RELEASE_BIN) demo $(DEMO_ARGS)

bench: release
	bash scripts/bench.sh

screenshots: screenshot-deps release
	bash scripts/screenshots.sh

clean:
	rm -rf .build
