# shellcheck shell=bash
# Sourced by .ci/run and scripts/test.sh: `phase NAME` prints the wall-clock time, the seconds
# since the run began, the machine's busy CPU-seconds since then (all cores, every process:
# /proc/stat) and the phase that starts now, so a slow cold run shows which phase took the time
# (the difference between two lines) and whether the cores were the limit. Printed before each
# phase, never after the last one: the test runner's summary stays the run's closing line.
busy_cpu_seconds() {
  # user nice system idle iowait irq softirq steal, in USER_HZ (100 per second).
  awk '/^cpu / { print int(($2 + $3 + $4 + $7 + $8 + $9) / 100) }' /proc/stat
}
IG_RUN_START="${IG_RUN_START:-$(date +%s)}"
IG_RUN_CPU_START="${IG_RUN_CPU_START:-$(busy_cpu_seconds)}"
export IG_RUN_START IG_RUN_CPU_START
phase() {
  echo "== $(date -u +%H:%M:%S) +$(($(date +%s) - IG_RUN_START)) s, $(($(busy_cpu_seconds) - IG_RUN_CPU_START)) CPU-s: $*" >&2
}
