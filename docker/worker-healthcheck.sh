#!/bin/sh
# Healthy when at least one Celery worker of THIS container answers a ping through
# the broker (node names are <prefix>-<role>@<hostname>, see grader/queue/gpu.py).
set -eu
host=$(hostname)
out=$(celery -A grader.queue.worker_app inspect ping --timeout "${1:-10}" 2>/dev/null) || exit 1
printf '%s\n' "$out" | grep -q "@${host}: OK"
