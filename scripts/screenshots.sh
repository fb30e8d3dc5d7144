#!/usr/bin/env bash
# Screenshots for the README, taken from the real app on a virtual display:
# starts Xvfb, launches `tpw-desktop` on the bundled model, presses Start
# (Ctrl+Enter) like a user, waits for the saved session, then captures the
# screen in normal and presentation (F11) mode, History and Compare. Then, as
# an operator would: `python -m llama_cpp.server` serves the bundled model on
# loopback, the window measures it (Run > Measure a server) while serving
# Prometheus metrics, a real Prometheus scrapes the window, and the Fleet view
# reads tokens/J back from Prometheus.
#
# Needs Debian's xvfb, openbox (F11 full screen needs a window manager), xdotool,
# imagemagick, prometheus and curl plus Qt's xcb libraries, and llama-cpp-python's
# server extra (make test installs it):
#   apt-get install xvfb openbox xdotool imagemagick prometheus curl libxcb-cursor0 libxkbcommon-x11-0 \
#     libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libegl1 libgl1
# Usage: scripts/screenshots.sh [OUTDIR] [WIDTHxHEIGHT]   (default docs/screenshots 1600x1000)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/screenshots}
SIZE=${2:-1600x1000}
WIDTH=${SIZE%x*} HEIGHT=${SIZE#*x}
mkdir -p "$OUT"
work=$(mktemp -d)
DISPLAY_NUM=${DISPLAY_NUM:-:97}

Xvfb "$DISPLAY_NUM" -screen 0 "${SIZE}x24" -nolisten tcp -r >"$work/xvfb.log" 2>&1 &
xvfb=$!  # -r: no key autorepeat, so a key pressed on a busy machine is typed once
app= server= prom=
trap 'kill $app $server $prom $wm $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
export DISPLAY=$DISPLAY_NUM QT_QPA_PLATFORM=xcb
sleep 1
openbox >"$work/openbox.log" 2>&1 &
wm=$!
sleep 0.5

# A sweep of three quantizations whose file names differ only there, for the History and Compare views.
bundled=$(.venv/bin/python -c "from tpw_desktop.paths import bundled_model_path as b; print(b())")
name="$work/SmolLM2-135M-Instruct"
cp "$bundled" "$name-Q4_1.gguf"
for type in Q8_0 Q4_K_M; do
    .venv/bin/tpw quantize "$name-Q4_1.gguf" --type "$type" --allow-requantize >/dev/null
done
.venv/bin/tpw --db "$work/sessions.db" sweep "$name-Q4_1.gguf" "$name-Q4_K_M.gguf" "$name-Q8_0.gguf" \
    -r 2 -p 128 -n 64 --idle-s 2 --settle-s 1 --settle-timeout 5 -q >/dev/null

# A server tpw didn't start, and a Prometheus that scrapes the window's metrics, all on loopback.
SERVER_PORT=${SERVER_PORT:-18089} METRICS_PORT=${METRICS_PORT:-19464} PROM_PORT=${PROM_PORT:-19090}
.venv/bin/python -m llama_cpp.server --model "$bundled" --host 127.0.0.1 --port "$SERVER_PORT" \
    --n_ctx 2048 --interrupt_requests False >"$work/server.log" 2>&1 &
server=$!
cat > "$work/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$PWD/packaging/prometheus/tpw-rules.yml]
scrape_configs:
  - job_name: tpw
    static_configs: [{targets: ["127.0.0.1:$METRICS_PORT"], labels: {node: this-workstation}}]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$work/prometheus.log" 2>&1 &
prom=$!

# A first launch with a workload whose chart shows both phases well.
cat > "$work/settings.ini" <<INI
[workload]
choice=long-summary
repetitions=2
[power]
idle_s=3
[metrics]
on=true
port=$METRICS_PORT
[endpoint]
url=http://127.0.0.1:$SERVER_PORT
concurrency=4
[fleet]
url=http://127.0.0.1:$PROM_PORT
INI
.venv/bin/tpw-desktop --settings "$work/settings.ini" --db "$work/sessions.db" >"$work/app.log" 2>&1 &
app=$!

wait_for() {  # wait_for SECONDS COMMAND...: retry until it succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "screenshots: timed out waiting for: $*" >&2; cat "$work/app.log" >&2; exit 1; }
        sleep 0.5
    done
}
last_session() {
    .venv/bin/python - "$work/sessions.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT coalesce(max(id), 0) FROM sessions").fetchone()[0])
PY
}
before=$(last_session)  # the sweep's sessions: the run pressed below comes after them
session_done() {
    .venv/bin/python - "$work/sessions.db" "$before" <<'PY'
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute(
    "SELECT status FROM sessions WHERE id > ? ORDER BY id DESC LIMIT 1", [int(sys.argv[2])]).fetchone()
sys.exit(0 if row and row[0] != "running" else 1)
PY
}

wait_for 60 xdotool search --onlyvisible --name "tpw-desktop"
win=$(xdotool search --onlyvisible --name "tpw-desktop" | head -1)
xdotool windowsize "$win" "$WIDTH" "$HEIGHT" windowmove "$win" 0 0 windowfocus "$win"
sleep 3                            # let the bundled model load (~0.3 s) and the idle chart fill
xdotool key --window "$win" ctrl+Return
wait_for 180 session_done
sleep 1
import -window root "$OUT/dashboard.png"
xdotool key --window "$win" F11
sleep 2
import -window root "$OUT/presentation.png"
xdotool key --window "$win" F11
sleep 2
xdotool key --window "$win" ctrl+2              # History, the newest session (the run just made) selected
sleep 2
xdotool key --window "$win" Return              # open it: its charts again, its summary, what it ran on
sleep 2
import -window root "$OUT/history.png"
xdotool key --window "$win" ctrl+3              # Compare: the newest sweep
sleep 2
import -window root "$OUT/compare.png"

# The server: measured from the window, watched through Prometheus in the Fleet view meanwhile.
server_up() { curl -sf "http://127.0.0.1:$SERVER_PORT/v1/models"; }
wait_for 120 server_up
xdotool key --window "$win" ctrl+1
sleep 1
before=$(last_session)
xdotool key --window "$win" ctrl+shift+e        # Run > Measure a server: url and clients from the settings
sleep 2
xdotool key Return                              # Start (the model name is listed from the server)
sleep 10                                        # idle baseline; the first clients stream
xdotool key --window "$win" ctrl+4              # Fleet: the window's own metrics, read back from Prometheus
sleep 1
xdotool key Return                              # watch (the Prometheus URL is in the settings)
sleep 15
import -window root "$OUT/fleet.png"
xdotool key --window "$win" ctrl+1
wait_for 400 session_done
sleep 1
import -window root "$OUT/endpoint.png"
xdotool key --window "$win" ctrl+q
wait "$app" || true
echo "wrote $OUT/dashboard.png, presentation.png, history.png, compare.png, endpoint.png and fleet.png"
