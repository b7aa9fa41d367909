# redis-ops: `make demo` and `make test` work on a fresh machine (they install what is missing).
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
DEB_PACKAGES := libhiredis-dev libncurses-dev libssl-dev pkg-config redis-server redis-tools tmux openssl ca-certificates procps openssh-client openssh-server iproute2
SCREENSHOT_PACKAGES := xterm xvfb imagemagick x11-utils fonts-dejavu-core
SWIFT_FLAGS ?=
RELEASE_BIN := .build/release/redis-ops
PREFIX ?= /usr/local
DESTDIR ?=
MAN_PAGE := docs/redis-ops.1
MAN_OUT := .build/plugins/GenerateManual/outputs/redis-ops/redis-ops.1

.PHONY: deps screenshot-deps build release test man man-check install install-check demo bench screenshots clean

deps:
	@bash scripts/install-deps.sh $(DEB_PACKAGES)

screenshot-deps: deps
	@bash scripts/install-deps.sh $(SCREENSHOT_PACKAGES)

build: deps
	swift build $(SWIFT_FLAGS)

release: deps
	swift build -c release --static-swift-stdlib $(SWIFT_FLAGS)

# The full suite: unit, integration (real redis-server processes) and end-to-end (tmux),
# and a check that the committed man page matches the argument definitions. The end-to-end
# tests drive the release binary (REDIS_OPS_BIN), as operators run it: their timing does not
# depend on how slow a debug build is.
test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift build -c release --static-swift-stdlib $(SWIFT_FLAGS)
	REDIS_OPS_BIN=$(CURDIR)/$(RELEASE_BIN) swift test --skip-build --disable-swift-testing $(SWIFT_FLAGS)
	$(MAKE) --no-print-directory man-check

# The man page, generated from the argument definitions (swift-argument-parser's
# generate-manual plugin) and committed, so `make install` needs no extra build.
man: build
	swift package plugin generate-manual --configuration debug --date 2026-11-27 --authors "the redis-ops developers"
	mkdir -p docs && cp $(MAN_OUT) $(MAN_PAGE)

man-check:
	swift package plugin generate-manual --configuration debug --date 2026-11-27 --authors "the redis-ops developers" >/dev/null
	@diff -u $(MAN_PAGE) $(MAN_OUT) >/dev/null || { diff -u $(MAN_PAGE) $(MAN_OUT) | head -40; \
		echo "$(MAN_PAGE) is out of date with the options: run 'make man' and commit it"; exit 1; }
	@echo "man page up to date"

# bin/redis-ops (stripped), share/man/man1/redis-ops.1, and bash/zsh/fish completions.
install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(RELEASE_BIN) $(DESTDIR)$(PREFIX)/bin/redis-ops
	strip $(DESTDIR)$(PREFIX)/bin/redis-ops
	install -m 0644 $(MAN_PAGE) $(DESTDIR)$(PREFIX)/share/man/man1/redis-ops.1
	$(RELEASE_BIN) --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/redis-ops
	$(RELEASE_BIN) --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_redis-ops
	$(RELEASE_BIN) --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/redis-ops.fish
	@echo "installed $$($(DESTDIR)$(PREFIX)/bin/redis-ops --version) under $(DESTDIR)$(PREFIX)"

# make install into a temporary prefix, and check what it installed (CI runs this).
install-check:
	bash scripts/check-install.sh

demo: release
	$(RELEASE_BIN) demo $(DEMO_ARGS)

bench: release
	bash scripts/bench.sh

screenshots: screenshot-deps release
	bash scripts/screenshots.sh

clean:
	rm -rf .build
