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
session_done() {
    .venv/bin/python - "$work/sessions.db" <<'PY'
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute("SELECT status FROM sessions ORDER BY id DESC LIMIT 1").fetchone()
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
xdotool key --window "$win" F11 ctrl+q
wait "$app" || true
echo "wrote $OUT/dashboard.png and $OUT/presentation.png"
