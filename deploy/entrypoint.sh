#!/bin/sh
# Entry point of the desk image: SERVICE=intake|evaluation|monitoring|worker|migrate picks the process.
# Secrets may come as files (compose secrets, Kubernetes volumes): VAR_FILE=/path sets VAR from the file.
set -eu

for var in DESK_SIGNING_KEY DESK_DATABASE_URL PGPASSWORD; do
  eval "file=\${${var}_FILE:-}"
  if [ -n "$file" ]; then
    [ -r "$file" ] || { echo "desk-entrypoint: ${var}_FILE=$file is not readable" >&2; exit 66; }
    eval "export $var=\"\$(cat \"\$file\")\""
  fi
done

# a command given to the container runs instead, with the secrets loaded (e.g. `python -m desk.cli create-client …`)
if [ "$#" -gt 0 ]; then exec "$@"; fi

case "${SERVICE:-}" in
  intake|evaluation|monitoring)
    # uvicorn with the desk's guards against slow clients (DESK_HTTP_HEADER_TIMEOUT_SECONDS,
    # DESK_HTTP_BODY_TIMEOUT_SECONDS, DESK_HTTP_MAX_CONNECTIONS per process, open-file limit raised);
    # --proxy-headers: client address and scheme from the reverse proxy's X-Forwarded-* headers;
    # the graceful timeout lets in-flight requests finish on SIGTERM (keep it under the orchestrator's grace period)
    exec python -m desk.cli serve "${SERVICE}" \
      --host 0.0.0.0 --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-1}" \
      --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" --root-path "${ROOT_PATH:-}" \
      --graceful-timeout "${GRACEFUL_TIMEOUT:-20}"
    ;;
  worker)
    exec python -m desk.cli worker
    ;;
  migrate)
    # schema to head, the call as published, then every draft's pre-check against the rules now in force
    # (all idempotent): once per release, before the rollout; run `desk precheck` again before a window opens
    python -m desk.cli migrate
    python -m desk.cli seed --no-open-now
    exec python -m desk.cli precheck
    ;;
  *)
    echo "desk-entrypoint: SERVICE must be intake, evaluation, monitoring, worker or migrate (got '${SERVICE:-}')" >&2
    exit 64
    ;;
esac
