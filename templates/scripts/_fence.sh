# ---- the leader's fence, rendered by o4o-operator; runs before every host script --------------
# The operator that sends this script leads in epoch $O4O_EPOCH: "<revision>.<transitions>", the
# resourceVersion of the write that won its Lease and the Lease's leaseTransitions, compared in that
# order (o4o_operator/pipeline/epoch.py); an older operator's plain "<transitions>" is revision 0,
# older than any of these. Under root's lock on this server: an epoch older than the newest one
# recorded here is refused (and the refusal recorded); a newer one is recorded, and the scripts older
# epochs still run here are stopped (each script registers its process group, the one the operator's
# own timeout kills, with its epoch). A deposed leader can then change nothing more here, not even
# with a script it started before.
o4o_fence_dir="${O4O_ROOT:-}"{{ state_root | shquote }}
[ -d "$o4o_fence_dir" ] || install -d -m 0755 "$o4o_fence_dir"
(
  umask 077
  if ! flock -w 60 9; then
    printf '::o4o::transient reason=FenceBusy The fence lock %s stayed held for 60 s\n' "$o4o_fence_dir/fence.lock"
    exit 1
  fi
  # an epoch: digits, or digits.digits, at most 18 digits a part (the shell's arithmetic is 64-bit)
  is_epoch() {
    case "$1" in ''|.*|*.|*.*.*|*[!0-9.]*) return 1 ;; esac
    head="${1%.*}" tail="${1#*.}"
    [ "${#head}" -le 18 ] && [ "${#tail}" -le 18 ]
  }
  # is epoch $1 older than epoch $2? revisions first, then transitions; a plain number is revision 0
  older() {
    case "$1" in *.*) this="$1" ;; *) this="0.$1" ;; esac
    case "$2" in *.*) that="$2" ;; *) that="0.$2" ;; esac
    [ "${this%.*}" -lt "${that%.*}" ] || { [ "${this%.*}" -eq "${that%.*}" ] && [ "${this#*.}" -lt "${that#*.}" ]; }
  }
  # a process's start time (clock ticks since boot): with its pid, it names one process, whatever reuses the pid
  started() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
  if ! is_epoch "${O4O_EPOCH:-}"; then
    printf 'Refused: O4O_EPOCH=%s is no fencing epoch\n' "${O4O_EPOCH:-}" >&2
    exit 1
  fi
  recorded=$(cat "$o4o_fence_dir/fence-epoch" 2>/dev/null || true)
  is_epoch "$recorded" || recorded=0
  if older "$O4O_EPOCH" "$recorded"; then
    printf '%s refused epoch %s: epoch %s is recorded\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$O4O_EPOCH" \
      "$recorded" >>"$o4o_fence_dir/fence-refused"
    printf 'Refused: this operator leads in epoch %s, older than epoch %s recorded on this server\n' \
      "$O4O_EPOCH" "$recorded" >&2
    printf '::o4o::fenced epoch=%s recorded=%s\n' "$O4O_EPOCH" "$recorded"
    exit {{ fenced_exit_status }}
  fi
  running="$o4o_fence_dir/fence-running"
  [ -d "$running" ] || install -d -m 0700 "$running"
  for entry in "$running"/*; do
    [ -f "$entry" ] || continue
    group="${entry##*/}" epoch=0 since=""
    read -r epoch since <"$entry" || true
    is_epoch "$epoch" || epoch=0
    if [ -z "$since" ] || [ "$(started "$group")" != "$since" ]; then
      rm -f "$entry"  # that script ended
    elif older "$epoch" "$O4O_EPOCH"; then
      printf 'Stopping process group %s, still running for epoch %s\n' "$group" "$epoch" >&2
      printf '%s stopped process group %s of epoch %s for epoch %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$group" "$epoch" "$O4O_EPOCH" >>"$o4o_fence_dir/fence-refused"
      kill -TERM -- "-$group" 2>/dev/null || true
      for _ in $(seq 30); do [ "$(started "$group")" = "$since" ] || break; sleep 0.1; done
      kill -KILL -- "-$group" 2>/dev/null || true
      rm -f "$entry"
    fi
  done
  if older "$recorded" "$O4O_EPOCH"; then
    printf '%s\n' "$O4O_EPOCH" >"$o4o_fence_dir/fence-epoch.tmp"
    mv -f "$o4o_fence_dir/fence-epoch.tmp" "$o4o_fence_dir/fence-epoch"
  fi
  printf '%s %s\n' "$O4O_EPOCH" "$(started "$PPID")" >"$running/$PPID"
) 9>>"$o4o_fence_dir/fence.lock" || exit $?
# ------------------------------------------------------------------------------
