# Sourced by .ci/run and scripts/test.sh: `phase NAME` prints the wall-clock time, the seconds
# since the run began and the phase that starts now, so a slow cold run shows which phase took
# the time (the difference between two lines). Printed before each phase, never after the last
# one: the test runner's summary stays the run's closing line.
IG_RUN_START="${IG_RUN_START:-$(date +%s)}"
export IG_RUN_START
phase() {
  echo "== $(date -u +%H:%M:%S) +$(($(date +%s) - IG_RUN_START)) s: $*" >&2
}
