#!/bin/sh
# Runs trace_timeline into OUT.json, draws OUT.svg with cojob-trace-svg, and checks the drawing
# has a worker process track and task boxes.
# Usage: trace_timeline.sh TRACE_TIMELINE COJOB_TRACE_SVG OUT
set -eu
"$1" "$3.json" --tasks 12
"$2" "$3.json" "$3.svg" --title "seed generator example, 12 tasks, backend::processes, n_jobs=2"
grep -q '>worker process [0-9]*<' "$3.svg"
test "$(grep -c '<title>ones_times' "$3.svg")" -eq 12
