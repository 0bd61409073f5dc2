#!/bin/sh
# Worker entrypoint: refuse to start when the sandbox cannot confine a model here
# (missing capabilities, Docker's default seccomp/AppArmor profile, no bwrap), so a
# misconfigured container fails loudly instead of marking every submission "error".
# GRADER_REQUIRE_SANDBOX=0 skips the check (never do that with untrusted uploads).
set -eu
if [ "${GRADER_REQUIRE_SANDBOX:-1}" != "0" ]; then
    python -c '
import sys
from grader.sandbox.runner import sandbox_status
ok, why = sandbox_status()
print(f"sandbox check: {why}", file=sys.stderr)
sys.exit(0 if ok else 1)
' || {
        echo "grader worker: the sandbox does not work in this container; see the" \
             "worker's cap_add/security_opt in docker-compose.yml" >&2
        exit 78
    }
fi
exec "$@"
