#!/usr/bin/env bash
# Regenerates screenshots/*.png from the real binary running the demo in a real terminal:
# xterm under Xvfb, driven through tmux (keys), captured with ImageMagick's `import`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(pwd)/${REDIS_OPS_BIN:-.build/release/redis-ops}"
OUT="$(pwd)/screenshots"
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
mkdir -p "$OUT"
DISPLAY_NUM=":$((90 + RANDOM % 9))"
SOCK="redis-ops-shots-$$"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
Xvfb "$DISPLAY_NUM" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
cleanup() {
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    kill "$XTERM" 2>/dev/null || true
    kill "$XVFB" 2>/dev/null || true
    rm -rf "${AUDIT_DIR:-/nonexistent}"
}
trap cleanup EXIT
sleep 1
export DISPLAY="$DISPLAY_NUM"
# The demo runs inside tmux (so keys can be sent) inside xterm (so it is a real terminal to capture).
# A private audit log, so the Audit screenshot shows this run's records only.
AUDIT_DIR="$(mktemp -d)"
tmux -L "$SOCK" -f /dev/null new-session -d -x 132 -y 38 -s shots \
    "env LANG=C.UTF-8 TERM=xterm-256color REDIS_OPS_AUDIT_LOG=$AUDIT_DIR/audit.log $BIN demo --port $PORT --seed 11"
tmux -L "$SOCK" set -g status off
xterm -geometry 132x38+0+0 -fa 'DejaVu Sans Mono' -fs 10 -bg '#1e1e1e' -fg '#dcdcdc' -T redis-ops \
    -e tmux -L "$SOCK" attach -t shots >/dev/null 2>&1 &
XTERM=$!
sleep 4
send() { tmux -L "$SOCK" send-keys -t shots "$@"; }
WIN="$(xwininfo -root -tree | awk '/"redis-ops"/ {print $1; exit}')"
[ -n "$WIN" ] || { echo "xterm window not found" >&2; exit 1; }
shot() { sleep "${2:-1.5}"; import -window "$WIN" "$OUT/$1.png"; echo "wrote screenshots/$1.png"; }
shot 01-events 3
# Start counting keyspace events now, so the Activity view has minutes of history at the end.
send '6'
sleep 1
send '1'
send '/' ; tmux -L "$SOCK" send-keys -t shots -l 'type=member.added'; send Enter
shot 02-events-filter
send Enter
shot 03-events-detail
send Escape Escape
send '2'
sleep 3
send '/' ; tmux -L "$SOCK" send-keys -t shots -l 'workspace:*'; send Enter
send Enter
shot 04-keys-inspector 2
send Escape Escape 'M'
shot 05-keys-namespaces 1
send 'M' 'D'
tmux -L "$SOCK" send-keys -t shots -l 'workspace:2*'; send Enter
shot 06-invalidate-dry-run 3
send Escape '4'
shot 07-locks 3
send '3'
shot 08-ratelimits 3
send Enter
shot 09-ratelimits-detail 2
send Escape 'r'
shot 10-ratelimit-reset-confirm 1
send 'n'
sleep 1
# The audit log overlay: the dry run above is in it, with its keys.
send 'A'
shot 13-audit 1.5
send Escape
# The command line, completing a key name from a SCAN.
send ':'
tmux -L "$SOCK" send-keys -t shots -l 'workspace:1'
send Tab
shot 14-command-line 1.5
send Escape Escape '1' 'c'
# Channels with who is listening (PUBSUB NUMSUB) and the channels under the patterns.
shot 15-events-channels 2.5
send Escape '2' '?'
shot 12-help 1.5
send Escape '5'
# The Server view after a minute of history, so the sparklines and the hit ratio of the
# last minute are real.
shot 11-server 65
# The Activity view: the demo's keyspace events per namespace, a minute of history.
send '6'
shot 16-activity 3
send ':'
tmux -L "$SOCK" send-keys -t shots -l 'ttl workspace:1'
send Enter
shot 17-ttl-age 1.5
send Escape 'q'
sleep 1
