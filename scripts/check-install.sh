#!/usr/bin/env bash
# `make install` into a temporary prefix, then check each installed file does its job.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
make --no-print-directory install PREFIX="$prefix"
fail() { echo "install-check: $*" >&2; exit 1; }
bin="$prefix/bin/redis-ops"
[ -x "$bin" ] || fail "no executable at bin/redis-ops"
[ "$("$bin" --version)" = "$(.build/release/redis-ops --version)" ] || fail "the installed binary is not the one built"
"$bin" --version | grep -Eq '^redis-ops [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version does not print 'redis-ops X.Y.Z'"
# Stripped: no symbol table left, and far smaller than the build.
if readelf -S "$bin" | grep -q '\.symtab'; then fail "bin/redis-ops is not stripped"; fi
size=$(stat -c %s "$bin"); built=$(stat -c %s .build/release/redis-ops)
[ "$size" -lt "$built" ] || fail "stripped binary ($size bytes) is not smaller than the build ($built)"
# It runs on its own (static Swift runtime): no libswift* among its libraries.
if ldd "$bin" | grep -q libswift; then fail "bin/redis-ops needs the Swift runtime at run time"; fi
man="$prefix/share/man/man1/redis-ops.1"
[ -s "$man" ] || fail "no man page"
if command -v groff >/dev/null; then
    text="$(groff -mandoc -Tutf8 "$man" 2>/dev/null | col -b 2>/dev/null || groff -mandoc -Tascii "$man")"
    for want in invalidate --read-only "EXIT STATUS" REDIS_AUTH_TOKEN; do
        grep -q -- "$want" <<<"$text" || fail "the man page does not render '$want'"
    done
fi
bash_c="$prefix/share/bash-completion/completions/redis-ops"
bash -n "$bash_c" || fail "bash completion has a syntax error"
# The bash completion offers the subcommands.
out="$(bash -c "source '$bash_c'; COMP_WORDS=(redis-ops inv); COMP_CWORD=1; COMP_LINE='redis-ops inv'; COMP_POINT=\${#COMP_LINE}; _redis-ops 2>/dev/null; printf '%s\n' \"\${COMPREPLY[@]}\"" 2>/dev/null || true)"
grep -qx invalidate <<<"$out" || fail "bash completion does not complete 'inv' to 'invalidate' (got: $out)"
grep -q '^#compdef redis-ops' "$prefix/share/zsh/site-functions/_redis-ops" || fail "zsh completion missing its #compdef line"
if command -v zsh >/dev/null; then zsh -n "$prefix/share/zsh/site-functions/_redis-ops" || fail "zsh completion has a syntax error"; fi
grep -q "complete -c 'redis-ops'" "$prefix/share/fish/vendor_completions.d/redis-ops.fish" || fail "fish completion missing"
if command -v fish >/dev/null; then fish -n "$prefix/share/fish/vendor_completions.d/redis-ops.fish" || fail "fish completion has a syntax error"; fi
echo "install-check: bin (stripped, $((size / 1048576)) MB, was $((built / 1048576)) MB), man page, bash/zsh/fish completions: OK"
