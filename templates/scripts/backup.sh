#!/usr/bin/env bash
# On request (annotation deploy.o4o.io/backup-request): one backup of {{ ctx.slug }}'s database, now, uploaded to
# the presigned URL the operator made for it (O4O_BACKUP_PUT_URL). Rendered by o4o-operator. The password and the
# URL arrive in the environment, never in this script. Changes nothing but root's backup directory.
set -euo pipefail
{% include "scripts/_common.sh" %}
{% include "scripts/_database.sh" %}
{% include "scripts/_backup.sh" %}

[ -n "$BACKUP_ID" ] || o4o_permanent BackupFailed "The operator named no backup (BACKUP_ID)"
backup_take "$BACKUP_DIR/$BACKUP_ID.record" "on request"
rm -f -- "$BACKUP_DIR/$BACKUP_ID.record"
