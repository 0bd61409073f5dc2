#!/bin/sh
# Validate docker-compose.yml without a Docker engine (CI): `docker-compose config -q`
# with .env.example as the env file. The secrets are deliberately empty there (compose
# refuses to start until they are set), so placeholders are exported just for this check.
set -eu
cd "$(dirname "$0")/.."
for var in $(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=$/\1/p' .env.example); do
    eval "[ -n \"\${$var:-}\" ] || export $var=placeholder-for-config-check"
done
exec docker-compose --env-file .env.example -f docker-compose.yml config -q "$@"
