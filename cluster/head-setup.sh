#!/usr/bin/env bash
# The head's own setup, run by `ray up` (cluster.yaml, head_setup_commands) after the setup
# every node gets. Idempotent: a second run with the same inputs changes nothing and restarts
# nothing. It never touches Ray, so re-running `ray up` leaves a running sweep alone.
#
#   1. ~/.raysweep-env: what every shell on the head needs for `raysweep run` without flags
#   2. /etc/raysweep/mlflow.env (root only): the tracking database URI, with its password
#   3. the MLflow server as a systemd service (cluster/raysweep-mlflow.service): starts at
#      boot, restarts on failure; restarted here only when its unit or environment changed
#
# Inputs (environment):
#   RAYSWEEP_BUCKET            the S3 bucket: checkpoints under ray_results/, MLflow's
#                              artifacts under mlflow/ (cluster/iam/*.json grant exactly these)
#   RAYSWEEP_DB_URI_PARAMETER  SSM SecureString parameter holding postgresql://... (on AWS), or
#   RAYSWEEP_DB_URI_FILE       a file on this machine holding it (on your own machines)
#   RAYSWEEP_STORAGE, MLFLOW_ARTIFACTS_DESTINATION   instead of the bucket (e.g. NFS paths)
#   RAYSWEEP_PYTHON            the environment's Python (default: the repository's .venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${RAYSWEEP_PYTHON:-$here/../.venv/bin/python}"
etc="${RAYSWEEP_ETC:-/etc/raysweep}"
units="${RAYSWEEP_SYSTEMD_DIR:-/etc/systemd/system}"
service=raysweep-mlflow
say() { echo "head-setup: $*"; }
die() {
  echo "head-setup: $*" >&2
  exit 1
}
tmp="$(mktemp -d)" # mode 700: the database URI passes through here
trap 'rm -rf "$tmp"' EXIT

# --- inputs ---------------------------------------------------------------------------------
bucket="${RAYSWEEP_BUCKET:-}"
[ "$bucket" != YOUR-BUCKET ] || die "replace YOUR-BUCKET in cluster.yaml (head_setup_commands)"
storage="${RAYSWEEP_STORAGE:-${bucket:+s3://$bucket/ray_results}}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-${bucket:+s3://$bucket/mlflow}}"
[ -n "$storage" ] && [ -n "$artifacts" ] ||
  die "set RAYSWEEP_BUCKET (or RAYSWEEP_STORAGE and MLFLOW_ARTIFACTS_DESTINATION)"

if [ -n "${RAYSWEEP_DB_URI_PARAMETER:-}" ]; then
  db_uri="$("$python" "$here/head_aws.py" parameter "$RAYSWEEP_DB_URI_PARAMETER")"
elif [ -n "${RAYSWEEP_DB_URI_FILE:-}" ]; then
  db_uri="$(cat "$RAYSWEEP_DB_URI_FILE")"
else
  die "set RAYSWEEP_DB_URI_PARAMETER (AWS) or RAYSWEEP_DB_URI_FILE: where the database URI is"
fi
case "$db_uri" in
  postgresql://* | postgresql+*://*) ;;
  *) die "the tracking database must be PostgreSQL (postgresql://...), not '${db_uri%%:*}:...'" ;;
esac
# systemd reads the environment file literally: no quotes, backslashes, dollars or spaces.
case "$db_uri" in
  *[[:space:]\'\"\\\$]*) die "the database URI has a quote, backslash, \$ or space" ;;
esac
# The driver SQLAlchemy picks for this URI must be installed (the URI goes by environment,
# never on a command line).
RAYSWEEP_DB_URI="$db_uri" "$python" -c 'import os, sqlalchemy
sqlalchemy.engine.make_url(os.environ["RAYSWEEP_DB_URI"]).get_dialect().import_dbapi()' ||
  die "no driver for ${db_uri%%://*}:// in the environment (psycopg: the 'cluster' group)"

# --- put DEST MODE [sudo]: install $tmp/new as DEST unless identical; true if it changed -----
put() {
  local dest="$1" mode="$2" as="${3:-}"
  if $as cmp -s "$tmp/new" "$dest"; then
    return 1
  fi
  $as install -D -m "$mode" "$tmp/new" "$dest" || die "cannot write $dest"
  say "updated $dest"
}

# 1. The head's shell environment (sourced from ~/.bashrc, once).
printf '%s\n' 'export RAY_ADDRESS=auto' 'export RAY_AUTH_MODE=token' \
  'export MLFLOW_TRACKING_URI=http://127.0.0.1:5000' "export RAYSWEEP_STORAGE=$storage" >"$tmp/new"
put "$HOME/.raysweep-env" 644 || true
grep -qxF '. ~/.raysweep-env' ~/.bashrc 2>/dev/null || echo '. ~/.raysweep-env' >>~/.bashrc

# 2 and 3. The MLflow server's environment and unit; restart it only if one of them changed.
restart=0
printf '%s\n' "MLFLOW_BACKEND_STORE_URI=$db_uri" \
  "MLFLOW_ARTIFACTS_DESTINATION=$artifacts" >"$tmp/new"
put "$etc/mlflow.env" 600 sudo && restart=1
sed -e "s|@USER@|$(id -un)|g" -e "s|@HOME@|$HOME|g" "$here/$service.service" >"$tmp/new"
if put "$units/$service.service" 644 sudo; then
  sudo systemctl daemon-reload
  restart=1
fi

# Before this setup, MLflow ran under nohup with SQLite (~/mlflow/server.pid): stop that one.
if [ -f ~/mlflow/server.pid ]; then
  kill "$(cat ~/mlflow/server.pid)" 2>/dev/null || true
  rm -f ~/mlflow/server.pid
  say "stopped the old nohup MLflow server (its SQLite database stays in ~/mlflow)"
  sleep 2
fi

sudo systemctl enable --quiet "$service"
if [ "$restart" = 1 ]; then
  sudo systemctl restart "$service"
  say "(re)started $service"
else
  sudo systemctl start "$service" # no-op when it is running
fi

for _ in $(seq 60); do
  if curl -fs -o /dev/null http://127.0.0.1:5000/health; then
    say "MLflow answers on 127.0.0.1:5000 (runs in PostgreSQL, artifacts in $artifacts)"
    exit 0
  fi
  sleep 2
done
sudo journalctl -u "$service" -n 40 --no-pager >&2 || true
die "MLflow did not answer on 127.0.0.1:5000 within 2 minutes (its log is above)"
