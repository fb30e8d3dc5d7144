#!/usr/bin/env bash
# Screenshots for the README, taken from the real app on a virtual display:
# starts Xvfb, launches `tpw-desktop` on the bundled model, presses Start
# (Ctrl+Enter) like a user, waits for the saved session, then captures the
# screen in normal and presentation (F11) mode.
#
# Needs Debian's xvfb, openbox (F11 full screen needs a window manager), xdotool
# and imagemagick plus Qt's xcb libraries:
#   apt-get install xvfb openbox xdotool imagemagick libxcb-cursor0 libxkbcommon-x11-0 \
#     libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libegl1 libgl1
# Usage: scripts/screenshots.sh [OUTDIR]   (default docs/screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/screenshots}
mkdir -p "$OUT"
work=$(mktemp -d)
DISPLAY_NUM=${DISPLAY_NUM:-:97}

Xvfb "$DISPLAY_NUM" -screen 0 1600x1000x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $app $wm $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
export DISPLAY=$DISPLAY_NUM QT_QPA_PLATFORM=xcb
sleep 1
openbox >"$work/openbox.log" 2>&1 &
wm=$!
sleep 0.5

# A sweep of two quantizations in the database, for the History and Compare views.
bundled=$(.venv/bin/python -c "from tpw_desktop.paths import bundled_model_path as b; print(b())")
cp "$bundled" "$work/smollm2-135m-Q4_1.gguf"
.venv/bin/tpw quantize "$work/smollm2-135m-Q4_1.gguf" --type Q8_0 --allow-requantize >/dev/null
.venv/bin/tpw --db "$work/sessions.db" sweep "$work/smollm2-135m-Q4_1.gguf" "$work/smollm2-135m-Q8_0.gguf" \
    -r 3 -p 128 -n 64 --idle-s 2 --settle-s 1 --settle-timeout 5 -q >/dev/null

# A first launch with a workload whose chart shows both phases well.
cat > "$work/settings.ini" <<INI
[workload]
choice=long-summary
repetitions=2
[power]
idle_s=3
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
xdotool windowsize "$win" 1600 1000 windowmove "$win" 0 0 windowfocus "$win"
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
xdotool key --window "$win" ctrl+q
wait "$app" || true
echo "wrote $OUT/dashboard.png, presentation.png, history.png and compare.png"
