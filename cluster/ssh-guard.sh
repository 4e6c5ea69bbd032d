#!/usr/bin/env bash
# Refuses to set up a node whose security groups let the whole internet reach SSH: a rule for
# port 22 (TCP, or all traffic) from 0.0.0.0/0 or ::/0. The first thing `ray up` runs on the
# head (cluster.yaml, head_setup_commands), so `ray up` stops there; docs/cluster.md, step 3.
#   RAYSWEEP_ALLOW_WORLD_SSH=1  accept it anyway: an explicit, visible choice in cluster.yaml
#   RAYSWEEP_PYTHON             the Python with boto3 (default: the repository's .venv)
#   extra arguments             go to `head_aws.py ssh-sources` (--rules FILE: check offline)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${RAYSWEEP_PYTHON:-$here/../.venv/bin/python}"

sources="$("$python" "$here/head_aws.py" ssh-sources "$@")" # fails (and so refuses) on error
world="$(grep -xE '0\.0\.0\.0/0|::/0' <<<"$sources" | tr '\n' ' ' || true)"
if [ -z "$world" ]; then
  echo "ssh-guard: SSH reachable only from: $(tr '\n' ' ' <<<"$sources")"
elif [ "${RAYSWEEP_ALLOW_WORLD_SSH:-0}" = 1 ]; then
  echo "ssh-guard: WARNING: SSH open to $world(RAYSWEEP_ALLOW_WORLD_SSH=1)" >&2
else
  cat >&2 <<MSG
ssh-guard: refusing: this node's security group lets ${world}reach SSH (port 22).
ssh-guard: allow only your CIDR (docs/cluster.md, step 3); remove the open rule, e.g. with
  aws ec2 revoke-security-group-ingress --group-id SG --protocol tcp --port 22 --cidr 0.0.0.0/0
ssh-guard: then run 'ray up cluster.yaml' again (or set RAYSWEEP_ALLOW_WORLD_SSH=1 there).
MSG
  exit 1
fi
