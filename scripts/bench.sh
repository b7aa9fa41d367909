#!/usr/bin/env bash
# Benchmarks redis-ops side by side with redis-cli on the same private server, in one run.
#   keys:    listing 1,000,000 keys (time, peak RSS, and wall time against the server's own CPU time)
#   console: the console itself (headless) on 1M keys + 20k counters with 20 events/s:
#            first rows, filter, freshness, key press to frame, CPU and server commands/s per view
#   invalidate: deleting 800,000 keys: redis-ops invalidate vs redis-cli --scan | xargs redis-cli unlink,
#            with a PING probe measuring the latency the application sees during each
#   tail:    a 10 s pub/sub flood consumed by the console's tail vs redis-cli SUBSCRIBE
#   soak:    10 minutes of traffic on 1,000,000 distinct channels, the channels pane open: RSS and frame time
#   activity: the console's Activity view at 20,000 keyspace events/s: its CPU (% of one core) and
#            the events it counted against the server's own count of the writes (INFO commandstats)
#   tunnel:  the same jobs through a proxy adding 25 ms each way (an operator's SSH/SSM tunnel), side
#            by side with the same host and redis-cli: listing, a filter (and SLOWLOG against the
#            budget), invalidation (with the application's p99 from a server-side PING loop), a
#            3-primary cluster against its slowest shard alone, and the tail
# Usage: scripts/bench.sh [keys|console|invalidate|tail|soak|tunnel|cluster|activity|all]   (KEYS_N=1000000 COUNTERS_N=20000 INVALIDATE_N=800000 FLOOD_SECONDS=10 SOAK_MINUTES=10)
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-all}"
BIN="${REDIS_OPS_BIN:-.build/release/redis-ops}"
KEYS_N="${KEYS_N:-1000000}"
COUNTERS_N="${COUNTERS_N:-20000}"
INVALIDATE_N="${INVALIDATE_N:-800000}"
FILL="$(cd "$(dirname "$0")/../.." && pwd)/shared/tools/fill_keyspace.py"
FLOOD_SECONDS="${FLOOD_SECONDS:-10}"
[ -x "$BIN" ] || { echo "build first: make release" >&2; exit 1; }
TMP="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command local \
    --dir "$TMP" --logfile "$TMP/redis.log" --daemonize no &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

# CPU seconds the server has used (utime + stime from /proc/PID/stat).
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$SERVER/stat"; }

# Runs a command, prints "seconds peak_rss_kb".
measure() {
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || true
    cat "$TMP/time" | tail -1
}
ratio() { python3 -c "a,b=float('$1'),float('$2'); print(f'{a/b:.2f}x' if b>0 else 'n/a')"; }

if [ "$WHAT" = keys ] || [ "$WHAT" = all ]; then
    echo "== keys: $KEYS_N keys under app:bench: (DEBUG POPULATE, 64-byte values) =="
    redis-cli -p "$PORT" DEBUG POPULATE "$KEYS_N" app:bench 64 >/dev/null
    redis-cli -p "$PORT" DBSIZE | sed 's/^/dbsize: /'
    cpu0=$(server_cpu)
    read -r ro_t ro_m < <(measure "$BIN" --port "$PORT" keys --match 'bench:*' --json)
    cpu1=$(server_cpu)
    ro_n=$(wc -l <"$TMP/out")
    read -r cli_t cli_m < <(measure redis-cli -p "$PORT" --scan --pattern 'app:bench:*')
    cli_n=$(wc -l <"$TMP/out")
    read -r ron_t ron_m < <(measure "$BIN" --port "$PORT" keys --match 'bench:*')
    printf '%-46s %8s s %9s KB peak RSS %8s lines\n' "redis-ops keys --json (type+PTTL+MEMORY USAGE)" "$ro_t" "$ro_m" "$ro_n"
    printf '%-46s %8s s %9s KB peak RSS\n' "redis-ops keys (table)" "$ron_t" "$ron_m"
    printf '%-46s %8s s %9s KB peak RSS %8s lines\n' "redis-cli --scan (names only)" "$cli_t" "$cli_m" "$cli_n"
    echo "ratio time redis-ops/redis-cli: $(ratio "$ro_t" "$cli_t")  (redis-ops also fetches 3 fields per key)"
    srv=$(python3 -c "print(f'{$cpu1 - $cpu0:.2f}')")
    echo "server CPU during the redis-ops listing: ${srv} s; wall / server CPU: $(ratio "$ro_t" "$srv")  (goal <= 1.3x: the server kept busy)"
    redis-cli -p "$PORT" FLUSHALL >/dev/null
fi

if [ "$WHAT" = console ] || [ "$WHAT" = all ]; then
    echo "== console: ${KEYS_N} keys + ${COUNTERS_N} rate-limit counters (fill_keyspace.py), 20 events/s, headless 120x40 =="
    redis-cli -p "$PORT" FLUSHALL >/dev/null
    python3 "$FILL" --keys "$KEYS_N" --counters "$COUNTERS_N" | redis-cli -p "$PORT" --pipe | tail -1
    /usr/bin/time -f "%M" -o "$TMP/console.time" "$BIN" bench-console --port "$PORT" --seconds 10 >"$TMP/console.json" 2>"$TMP/console.err" || true
    python3 - "$TMP/console.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {r["measure"]: r for r in rows}
def show(label, value, goal): print(f"  {label:<52} {value:>14}   goal {goal}")
k = by.get("keys first rows", {})
show(f"first rows of {k.get('dbsize', 0):,} keys (ms)", k.get("first_rows_ms"), "<= 1000")
show("whole scan with type/TTL/size (ms)", k.get("full_scan_ms"), "(streams; the list is usable meanwhile)")
f = by.get("filter on the server", {})
show(f"filter '{f.get('filter')}': found / on the server", f"{f.get('found')} / {f.get('on_the_server')}", "all")
show("  ...in (ms)", f.get("ms"), "<= 3000")
show("freshness: an EXPIRE elsewhere seen on screen (ms)", by.get("freshness: EXPIRE elsewhere, seen on screen", {}).get("ms"), "<= 5000")
p = by.get("key press to frame (j/k in Keys)", {})
show("key press to frame p50 / max (ms)", f"{p.get('p50_ms')} / {p.get('max_ms')}", "<= 50")
show("typing in the filter prompt, max (ms)", f.get("typing_max_ms"), "<= 50")
for r in rows:
    if r["measure"] == "idle view":
        show(f"{r['view']} idle: CPU % at {r['events_per_s']:.0f} events/s", r["cpu_percent"], "<= 3")
        show(f"{r['view']} idle: server commands/s (rows on screen + full readings)", f"{r['server_commands_per_s_on_screen']:.0f} + {r['server_commands_per_s_total'] - r['server_commands_per_s_on_screen']:.0f}", "<= 2000")
e = by.get("Esc during an invalidation", {})
if e:
    show(f"Esc during an invalidation of {e['keys']:,} keys: stopped after (ms)", e.get("stopped_after_ms"), "<= 100")
    show("  keys the server deleted after Esc / batch size", f"{e.get('deleted_after_esc')} / {e.get('batch_at_esc')}", "about one batch")
show("console peak RSS (MB)", round(by.get("memory", {}).get("peak_rss_mb", 0), 1), "")
PY
    redis-cli -p "$PORT" FLUSHALL >/dev/null
fi

if [ "$WHAT" = invalidate ] || [ "$WHAT" = all ]; then
    echo "== invalidate: ${INVALIDATE_N} keys under app:inv: (DEBUG POPULATE), PING probe for the application's latency =="
    probe() {   # runs "$@" with the probe alongside; prints "seconds p99_ms max_ms"
        python3 scripts/pingprobe.py "$PORT" >"$TMP/probe.json" &
        local pp=$!
        sleep 0.3
        local t0 t1
        t0=$(date +%s.%N)
        "$@" >"$TMP/inv.out" 2>"$TMP/inv.err" || true
        t1=$(date +%s.%N)
        kill -TERM "$pp"; wait "$pp" 2>/dev/null || true
        python3 -c "import json; p=json.load(open('$TMP/probe.json')); print(f'{$t1-$t0:.2f} {p[\"p99_ms\"]:.2f} {p[\"max_ms\"]:.2f}')"
    }
    read -r idle_t idle_p99 idle_max < <(probe sleep 2)
    redis-cli -p "$PORT" DEBUG POPULATE "$INVALIDATE_N" app:inv 16 >/dev/null
    read -r ro_t ro_p99 ro_max < <(probe "$BIN" --port "$PORT" invalidate --match 'inv:*' --yes --json --audit-log "$TMP/audit.log")
    ro_left=$(redis-cli -p "$PORT" DBSIZE)
    redis-cli -p "$PORT" FLUSHALL >/dev/null
    redis-cli -p "$PORT" DEBUG POPULATE "$INVALIDATE_N" app:inv 16 >/dev/null
    unlink_all() { redis-cli -p "$PORT" --scan --pattern 'app:inv:*' | xargs -n 1000 redis-cli -p "$PORT" unlink >/dev/null; }
    read -r x_t x_p99 x_max < <(probe unlink_all)
    x_left=$(redis-cli -p "$PORT" DBSIZE)
    printf '%-52s %8s s %12s ms p99 %10s ms max   left %s\n' "idle server (probe alone)" "" "$idle_p99" "$idle_max" "-"
    printf '%-52s %8s s %12s ms p99 %10s ms max   left %s\n' "redis-ops invalidate (dry run + paced UNLINK)" "$ro_t" "$ro_p99" "$ro_max" "$ro_left"
    printf '%-52s %8s s %12s ms p99 %10s ms max   left %s\n' "redis-cli --scan | xargs -n 1000 redis-cli unlink" "$x_t" "$x_p99" "$x_max" "$x_left"
    python3 -c "print(f'throughput redis-ops / xargs: {($INVALIDATE_N/$ro_t)/($INVALIDATE_N/$x_t):.2f}x ({$INVALIDATE_N/$ro_t:,.0f} vs {$INVALIDATE_N/$x_t:,.0f} keys/s; goal >= 2x)'); print(f'p99 added for the application: redis-ops +{$ro_p99-$idle_p99:.2f} ms (budget 2 ms), xargs +{$x_p99-$idle_p99:.2f} ms')"
    redis-cli -p "$PORT" FLUSHALL >/dev/null
fi

if [ "$WHAT" = tail ] || [ "$WHAT" = all ]; then
    echo "== tail: ${FLOOD_SECONDS} s flood of PUBLISH on one channel (redis-benchmark, pipelined) =="
    "$BIN" bench-tail --port "$PORT" --channel bench:flood --seconds "$((FLOOD_SECONDS + 2))" >"$TMP/ro.json" 2>"$TMP/ro.err" &
    RO=$!
    /usr/bin/time -f "%M" -o "$TMP/cli.time" timeout "$((FLOOD_SECONDS + 2))" redis-cli -p "$PORT" subscribe bench:flood >"$TMP/cli.out" 2>/dev/null &
    CLI=$!
    sleep 1
    PAYLOAD='{"type":"member.added","workspaceId":123,"userId":"u-42","at":"2026-11-26T16:00:00.123Z"}'
    timeout "$FLOOD_SECONDS" redis-benchmark -p "$PORT" -c 4 -P 64 -n 2000000000 -q PUBLISH bench:flood "$PAYLOAD" >/dev/null 2>&1 || true
    wait "$RO" || true
    wait "$CLI" || true
    cli_lines=$(wc -l <"$TMP/cli.out")
    cli_msgs=$(( (cli_lines - 3) / 3 ))
    cli_rss=$(tail -1 "$TMP/cli.time")
    published=$(redis-cli -p "$PORT" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p')
    python3 - "$TMP/ro.json" "$cli_msgs" "$cli_rss" "$FLOOD_SECONDS" "$TMP/redis.log" "${published:-0}" <<'PY'
import json, sys
ro = json.load(open(sys.argv[1]))
cli_msgs, cli_rss, secs = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
log = open(sys.argv[5], errors="replace").read()
published = int(sys.argv[6])
disc = "for overcoming of output buffer limits" in log
print(f"published: {published} messages in {secs:.0f} s ({published/secs:.0f}/s)")
print(f"{'':26} {'received':>10} {'msg/s':>10} {'dropped':>9} {'peak RSS':>10} {'disconnected':>13}")
print(f"{'redis-ops console tail':26} {ro['received']:>10} {ro['received']/secs:>10.0f} {published-ro['received']:>9} {ro['peak_rss_kb']/1024:>8.1f}MB {str(ro['disconnects']>0):>13}")
print(f"{'redis-cli subscribe':26} {cli_msgs:>10} {cli_msgs/secs:>10.0f} {published-cli_msgs:>9} {cli_rss/1024:>8.1f}MB {'':>13}")
print(f"ratio received redis-ops/redis-cli: {ro['received']/max(cli_msgs,1):.2f}x; RSS ratio: {ro['peak_rss_kb']/max(cli_rss,1):.2f}x")
print(f"server log mentions a client closed for output-buffer limits: {disc}; console frames rendered: {ro['frames']}")
PY
fi

if [ "$WHAT" = soak ] || [ "$WHAT" = all ]; then
    echo "== soak: ${SOAK_MINUTES:-10} min of traffic on ${SOAK_CHANNELS:-1000000} distinct channels (soak:*:events), console headless, channels pane open =="
    "$BIN" bench-channels --port "$PORT" --channels "${SOAK_CHANNELS:-1000000}" --minutes "${SOAK_MINUTES:-10}" --rate "${SOAK_RATE:-5000}" \
        --every "${SOAK_EVERY:-60}" >"$TMP/soak.json" 2>"$TMP/soak.err" || true
    python3 - "$TMP/soak.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'minutes':>8} {'published':>11} {'RSS MB':>8} {'pane frames':>12} {'frame ms avg':>13} {'frame ms max':>13}")
for r in rows:
    print(f"{r['minutes']:>8} {r['published']:>11} {r['rss_mb']:>8.1f} {r['pane_frames']:>12} {r['pane_frame_ms_avg']:>13} {r['pane_frame_ms_max']:>13}")
if rows:
    first, last = rows[0], rows[-1]
    print(f"RSS from the first report to the last: {first['rss_mb']:.1f} -> {last['rss_mb']:.1f} MB (bounded: the busiest 2,000 channels counted, the rest estimated)")
PY
fi

if [ "$WHAT" = tunnel ] || [ "$WHAT" = all ]; then
    TDELAY="${TUNNEL_DELAY:-0.025}"
    TPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    cc -O2 -o "$TMP/delayproxy" scripts/delayproxy.c
    "$TMP/delayproxy" "$TPORT" "$PORT" "$TDELAY" >"$TMP/proxy.log" 2>&1 &
    PROXY=$!
    trap 'kill $PROXY 2>/dev/null || true; cleanup' EXIT
    for _ in $(seq 100); do grep -q ready "$TMP/proxy.log" 2>/dev/null && break; sleep 0.05; done
    echo "== tunnel: a proxy adding ${TDELAY} s each way (RTT $(python3 -c "print(f'{2*$TDELAY*1000:.0f}')") ms), ${KEYS_N} keys =="
    redis-cli -p "$PORT" FLUSHALL >/dev/null
    redis-cli -p "$PORT" DEBUG POPULATE "$KEYS_N" app:bench 64 >/dev/null
    row() { printf '%-58s %10s %10s %8s\n' "$1" "$2" "$3" "$4"; }
    row "job" "same host" "tunnel" "ratio"
    read -r a _ < <(measure "$BIN" --port "$PORT" keys --json); an=$(wc -l <"$TMP/out")
    read -r b _ < <(measure "$BIN" --port "$TPORT" keys --json); bn=$(wc -l <"$TMP/out")
    row "redis-ops keys --json ($an / $bn keys; goal <= 3x)" "$a s" "$b s" "$(ratio "$b" "$a")"
    read -r c _ < <(measure timeout 60 redis-cli -p "$PORT" --scan); cn=$(wc -l <"$TMP/out")
    read -r d _ < <(measure timeout 60 redis-cli -p "$TPORT" --scan); dn=$(wc -l <"$TMP/out")
    row "redis-cli --scan, names only ($cn / $dn keys listed, 60 s cap)" "$c s" "$d s" "$(ratio "$d" "$c")"
    redis-cli -p "$PORT" CONFIG SET slowlog-log-slower-than 2000 >/dev/null
    redis-cli -p "$PORT" CONFIG SET slowlog-max-len 100000 >/dev/null
    redis-cli -p "$PORT" SLOWLOG RESET >/dev/null
    read -r e _ < <(measure "$BIN" --port "$PORT" keys --json --match 'bench:77777*'); en=$(wc -l <"$TMP/out")
    read -r f _ < <(measure "$BIN" --port "$TPORT" keys --json --match 'bench:77777*'); fn=$(wc -l <"$TMP/out")
    row "filter bench:77777* ($en / $fn keys found; goal <= 5 s through the tunnel)" "$e s" "$f s" "$(ratio "$f" "$e")"
    redis-cli -p "$PORT" --json SLOWLOG GET 100000 | python3 -c '
import json, sys
log = json.load(sys.stdin)
scans = [e[2] for e in log if e[3][0].upper() == "SCAN"]
o1 = [e[2] for e in log if e[3][0].upper() in ("TYPE", "PTTL", "GET", "PING", "EXISTS")]
print(f"SLOWLOG over 2 ms during the listings and filters: {len(scans)} SCAN (longest {max(scans) if scans else 0} us), {len(o1)} O(1) commands (longest {max(o1) if o1 else 0} us: the machine'"'"'s own noise)")'
    redis-cli -p "$PORT" CONFIG SET slowlog-log-slower-than 10000 >/dev/null
    N100=100000
    inval() {   # port -> "seconds p99_ms"
        redis-cli -p "$PORT" DEBUG POPULATE "$N100" app:inv 16 >/dev/null
        python3 scripts/pingprobe.py "$PORT" >"$TMP/probe.json" &
        local pp=$!
        sleep 0.5
        local t; t=$(measure "$BIN" --port "$1" invalidate --match 'inv:*' --yes --json --audit-log "$TMP/audit.log" | awk '{print $1}')
        kill "$pp"; wait "$pp" 2>/dev/null || true
        echo "$t $(python3 -c 'import json; print(json.load(open("'"$TMP/probe.json"'"))["p99_ms"])')"
    }
    python3 scripts/pingprobe.py "$PORT" >"$TMP/probe.json" & pp=$!; sleep 2; kill $pp; wait $pp 2>/dev/null || true
    idle=$(python3 -c 'import json; print(json.load(open("'"$TMP/probe.json"'"))["p99_ms"])')
    read -r g gp < <(inval "$PORT")
    read -r h hp < <(inval "$TPORT")
    row "invalidate ${N100} keys of $((KEYS_N + N100)) (dry run + UNLINK; goal <= 3x)" "$g s" "$h s" "$(ratio "$h" "$g")"
    python3 -c "print(f'application p99 (PING on the server side): idle {$idle:.2f} ms; same host +{$gp-$idle:.2f} ms, tunnel +{$hp-$idle:.2f} ms (budget 2 ms)')"
    # The tail at a steady 50,000 msg/s, direct and through the tunnel.
    tailrun() {
        "$BIN" bench-tail --port "$1" --channel bench:t --seconds 8 >"$TMP/t.json" 2>/dev/null &
        local tp=$!
        sleep 1.5
        timeout 5 redis-benchmark -p "$PORT" -c 2 -P 16 -n 250000 -q PUBLISH bench:t '{"type":"member.added","workspaceId":7}' >/dev/null 2>&1 || true
        wait "$tp" || true
        python3 -c 'import json; print(json.load(open("'"$TMP/t.json"'"))["received"])'
    }
    ta=$(tailrun "$PORT"); tb=$(tailrun "$TPORT")
    row "tail: messages received of 250,000 published (no loss)" "$ta" "$tb" "$(ratio "$tb" "$ta")"
    kill $PROXY 2>/dev/null || true
fi

if [ "$WHAT" = cluster ] || [ "$WHAT" = tunnel ] || [ "$WHAT" = all ]; then
    TDELAY="${TUNNEL_DELAY:-0.025}"
    [ -x "$TMP/delayproxy" ] || cc -O2 -o "$TMP/delayproxy" scripts/delayproxy.c
    row() { printf '%-58s %10s %10s %8s\n' "$1" "$2" "$3" "$4"; }
    # A cluster of 3 primaries reached through the tunnel: each node behind its own delaying
    # proxy, announcing the proxy's port (as nodes behind a bastion are reached). Listed at
    # once, against its slowest shard listed alone.
    echo "== cluster: 3 primaries, $((KEYS_N / 3)) keys each, every node behind a ${TDELAY} s-each-way proxy =="
    CPORTS=""; PPORTS=""; PPIDS=""
    freeport2() { python3 -c 'import socket,random
while True:
    p=random.randint(20000,29999); ok=True
    for q in (p,p+10000):
        s=socket.socket()
        try: s.bind(("127.0.0.1",q))
        except OSError: ok=False
        s.close()
    if ok: print(p); break'; }
    for i in 1 2 3; do
        cp=$(freeport2)
        pp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        mkdir -p "$TMP/c$cp"
        redis-server --port "$cp" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$TMP/c$cp/nodes.conf" --save '' --appendonly no \
            --enable-debug-command local --dir "$TMP/c$cp" --logfile "$TMP/c$cp/log" --daemonize yes
        "$TMP/delayproxy" "$pp" "$cp" "$TDELAY" >/dev/null 2>&1 &
        PPIDS="$PPIDS $!"
        CPORTS="$CPORTS $cp"; PPORTS="$PPORTS $pp"
    done
    trap 'kill $PPIDS 2>/dev/null || true; cleanup' EXIT
    sleep 0.5
    redis-cli --cluster create $(for p in $CPORTS; do echo "127.0.0.1:$p"; done) --cluster-replicas 0 --cluster-yes >/dev/null 2>&1
    for _ in $(seq 100); do [ "$(redis-cli -p "${CPORTS# }" CLUSTER INFO | tr -d '\r' | grep cluster_state)" = "cluster_state:ok" ] && break; sleep 0.1; done
    set -- $PPORTS
    for cp in $CPORTS; do
        # Keys in a slot this node owns (a hash tag), a third on each shard.
        tag=$(python3 - "$cp" <<'PY'
import subprocess, sys
port = sys.argv[1]
def crc16(s):
    crc = 0
    for ch in s.encode():
        crc ^= ch << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc
mine = subprocess.run(["redis-cli", "-p", port, "CLUSTER", "MYID"], capture_output=True, text=True).stdout.strip()
ranges = []
for line in subprocess.run(["redis-cli", "-p", port, "CLUSTER", "NODES"], capture_output=True, text=True).stdout.splitlines():
    f = line.split()
    if f[0] == mine:
        for r in f[8:]:
            if "-" in r and not r.startswith("["):
                a, b = r.split("-"); ranges.append((int(a), int(b)))
for i in range(100000):
    if any(a <= crc16(f"t{i}") % 16384 <= b for a, b in ranges):
        print(f"t{i}"); break
PY
)
        redis-cli -p "$cp" DEBUG POPULATE "$((KEYS_N / 3))" "app:{$tag}" 64 >/dev/null
        redis-cli -p "$cp" CONFIG SET cluster-announce-bus-port "$((cp + 10000))" >/dev/null   # the bus stays direct
        redis-cli -p "$cp" CONFIG SET cluster-announce-port "$1" >/dev/null   # clients reach it through its proxy
        shift
    done
    sleep 1
    first="${PPORTS# }"; first="${first%% *}"
    read -r all _ < <(measure "$BIN" --port "$first" keys --json); alln=$(wc -l <"$TMP/out")
    slowest=0
    for pp in $PPORTS; do
        read -r one _ < <(measure "$BIN" --port "$first" keys --json --only-node "127.0.0.1:$pp")
        slowest=$(python3 -c "print(max($slowest, $one))")
    done
    row "cluster listing of $alln keys (goal <= 1.5x the slowest shard)" "shard $slowest s" "all $all s" "$(ratio "$all" "$slowest")"
    # Where the time goes: the CPU the listing needs (the client, the three servers and their
    # proxies, which share this machine's cores; in production each shard has its own), and
    # the wall time that CPU alone forces on this machine. Listed at once, the client does
    # three times the work of one shard, and so do the servers together.
    cluster_cpu() {   # servers + proxies, in clock ticks
        local t=0 pid p
        for p in $CPORTS; do pid=$(pgrep -f "redis-server 127.0.0.1:$p" | head -1); t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
        for pid in $PPIDS; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
        echo "$t"
    }
    cpu0=$(awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8 }' /proc/stat); sc0=$(cluster_cpu)
    /usr/bin/time -f "%e %U %S" -o "$TMP/time" "$BIN" --port "$first" keys --json >/dev/null 2>&1 || true
    cpu1=$(awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8 }' /proc/stat); sc1=$(cluster_cpu)
    read -r all2 cu cs < <(tail -1 "$TMP/time")
    python3 - "$(getconf CLK_TCK)" "$cpu0" "$cpu1" "$sc0" "$sc1" "$all2" "$cu" "$cs" "$(nproc)" "$slowest" <<'PY'
import sys
hz, c0, c1, s0, s1, wall, cu, cs, cores, slowest = sys.argv[1:]
hz = int(hz); wall = float(wall); cores = int(cores); slowest = float(slowest)
busy = (int(c1) - int(c0)) / hz
client = float(cu) + float(cs)
rest = (int(s1) - int(s0)) / hz
floor = (client + rest) / cores
print(f"machine CPU busy during the cluster listing: {busy:.2f} s of {wall:.2f} s x {cores} cores = {busy / (wall * cores) * 100:.0f} %")
print(f"CPU it needs: client {client:.2f} s + servers and proxies {rest:.2f} s; on {cores} cores that alone takes >= {floor:.2f} s"
      f" = {floor / slowest:.2f}x the slowest shard (the listing took {wall / max(floor, slowest):.2f}x that floor)")
PY
    kill $PPIDS 2>/dev/null || true
    for p in $CPORTS; do redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; done
    redis-cli -p "$PORT" FLUSHALL >/dev/null
fi

if [ "$WHAT" = all ] || [ "$WHAT" = activity ]; then
    echo
    echo "== activity: the console's Activity view at ${ACTIVITY_RATE:-20000} keyspace events/s =="
    redis-cli -p "$PORT" FLUSHALL >/dev/null
    redis-cli -p "$PORT" CONFIG SET notify-keyspace-events Eg\$xe >/dev/null
    SOCK="redis-ops-bench-$$"
    tmux -L "$SOCK" -f /dev/null new-session -d -x 140 -y 40 "REDIS_OPS_AUDIT_LOG=$TMP/audit.log $BIN --port $PORT"
    sleep 2
    tmux -L "$SOCK" send-keys 6
    sleep 2
    CPID=$(pgrep -f -n "$BIN --port $PORT" || true)
    [ -n "$CPID" ] || { echo "the console did not start"; tmux -L "$SOCK" kill-server; exit 1; }
    before=$(tmux -L "$SOCK" capture-pane -p | grep -o '[0-9,]* counted' | tr -d ', counted' || true)
    before=${before:-0}
    set0=$(redis-cli -p "$PORT" INFO commandstats | grep -o 'cmdstat_set:calls=[0-9]*' | cut -d= -f2 || true); set0=${set0:-0}
    hz=$(getconf CLK_TCK)
    c0=$(awk '{ print $14 + $15 }' "/proc/$CPID/stat"); t0=$(date +%s.%N)
    sent=$(python3 scripts/keyevents_load.py "$PORT" "${ACTIVITY_RATE:-20000}" "${ACTIVITY_SECONDS:-20}")
    sleep 2   # the last second's counts reach the screen
    c1=$(awk '{ print $14 + $15 }' "/proc/$CPID/stat"); t1=$(date +%s.%N)
    set1=$(redis-cli -p "$PORT" INFO commandstats | grep -o 'cmdstat_set:calls=[0-9]*' | cut -d= -f2 || true)
    after=$(tmux -L "$SOCK" capture-pane -p | grep -o '[0-9,]* counted' | tr -d ', counted' || true)
    tmux -L "$SOCK" send-keys q; sleep 1; tmux -L "$SOCK" kill-server 2>/dev/null || true
    python3 - "$c0" "$c1" "$t0" "$t1" "$hz" "$sent" "$set0" "$set1" "$before" "$after" <<'PY'
import sys
c0, c1, t0, t1, hz, sent, s0, s1, b, a = sys.argv[1:]
cpu = (float(c1) - float(c0)) / float(hz) / (float(t1) - float(t0)) * 100
writes = int(s1) - int(s0)
# Each SET ... EX publishes two keyevents (set, expire).
events = 2 * writes
counted = int(a or 0) - int(b or 0)
print(f"SETs sent {int(sent):,}, the server ran {writes:,}: {events:,} keyspace events at {events / (float(t1) - float(t0) - 2):,.0f}/s")
print(f"console CPU with the Activity view: {cpu:.1f} % of one core  (goal <= 15 %)")
print(f"events counted by the console: {counted:,} of {events:,}, lost {events - counted:,}  (goal 0)")
PY
fi
