#!/usr/bin/env bash
# How long `visrag demo` takes to be ready, from a fresh empty directory: wall time from the start
# until /ready answers 200, and the CPU time the demo process had used by then (Linux /proc).
#   bash bench/demo_ready.sh [WORKDIR] [PORT]      (WORKDIR: an empty directory; default: a new one)
# Run it twice on the same WORKDIR for the second start (the index is reused).
set -euo pipefail
python=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
dir=${1:-$(mktemp -d)}
port=${2:-18765}
cd "$dir"
start=$(date +%s.%N)
"$python" -m app.cli demo --port "$port" > demo.log 2>&1 &
pid=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready")" = 200 ]; do
  kill -0 "$pid" 2> /dev/null || { echo "the demo exited; see $dir/demo.log" >&2; exit 1; }
  sleep 0.2
done
end=$(date +%s.%N)
read -r utime stime <<< "$(awk '{print $14, $15}' "/proc/$pid/stat")"
cpu=$(echo "($utime + $stime) / $(getconf CLK_TCK)" | bc -l)
printf 'ready after %.1f s wall, %.1f s CPU (load average %s) in %s\n' \
  "$(echo "$end - $start" | bc)" "$cpu" "$(cut -d' ' -f1-3 /proc/loadavg)" "$dir"
kill -INT "$pid"
wait "$pid" || true
