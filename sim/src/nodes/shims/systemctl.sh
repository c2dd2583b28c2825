# systemctl for an emulated Flatcar node. A unit exists when its state file exists under
# .sim/units (written from the Ignition's units at boot) and holds active, inactive or failed.
# `start bootkube` checks the assets as the real unit's bootkube-start would; the simulator
# watches for init_bootkube.done and starts the apiserver emulator.
UNITS="$NODE_ROOT/.sim/units"
JOURNAL="$NODE_ROOT/.sim/journal"
BOOTKUBE="$NODE_ROOT/opt/bootkube"

unit_name() { case "$1" in *.*) printf '%s' "$1" ;; *) printf '%s.service' "$1" ;; esac; }
state_of() { if [ -f "$UNITS/$1" ]; then cat "$UNITS/$1"; else echo inactive; fi; }
log() {
  printf '%s %s %s[%s]: %s\n' "$(date '+%b %d %H:%M:%S')" "$NODE_HOSTNAME" "${1%.service}" "$$" "$2" \
    >> "$JOURNAL/$1.log"
}

start_bootkube() {
  printf 'start %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" >> "$BOOTKUBE_STARTS"
  if [ -e "$BOOTKUBE/init_bootkube.done" ]; then
    log bootkube.service "Condition check resulted in Bootstrap a Kubernetes cluster being skipped (ConditionPathExists=!/opt/bootkube/init_bootkube.done)."
    return 0
  fi
  log bootkube.service "Starting Bootstrap a Kubernetes cluster..."
  missing=""
  for f in auth/kubeconfig tls/ca.crt tls/apiserver.crt tls/apiserver.key; do
    [ -s "$BOOTKUBE/assets/$f" ] || missing="$missing /opt/bootkube/assets/$f"
  done
  if [ -z "$(ls -A "$BOOTKUBE/assets/manifests" 2>/dev/null)" ]; then
    missing="$missing /opt/bootkube/assets/manifests/"
  fi
  if [ -n "$missing" ]; then
    for m in $missing; do log bootkube.service "Error: missing or empty bootkube asset $m"; done
    log bootkube.service "bootkube.service: Main process exited, code=exited, status=1/FAILURE"
    log bootkube.service "bootkube.service: Failed with result 'exit-code'."
    log bootkube.service "Failed to start Bootstrap a Kubernetes cluster."
    echo failed > "$UNITS/bootkube.service"
    echo "Job for bootkube.service failed because the control process exited with error code." >&2
    echo "See \"systemctl status bootkube.service\" and \"journalctl -xe\" for details." >&2
    return 1
  fi
  log bootkube.service "All self-hosted control plane components successfully started"
  touch "$BOOTKUBE/init_bootkube.done"
  echo active > "$UNITS/bootkube.service"
  log bootkube.service "Started Bootstrap a Kubernetes cluster."
}

verb=""
units=""
for arg in "$@"; do
  case "$arg" in
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$arg; else units="$units $arg"; fi ;;
  esac
done

rc=0
case "$verb" in
  start|restart)
    for u in $units; do
      u=$(unit_name "$u")
      if [ ! -f "$UNITS/$u" ]; then
        echo "Failed to start $u: Unit $u not found." >&2
        rc=5
      elif [ "$u" = bootkube.service ]; then
        start_bootkube || rc=1
      else
        echo active > "$UNITS/$u"
        log "$u" "Started $u."
      fi
    done ;;
  stop)
    for u in $units; do
      u=$(unit_name "$u")
      if [ -f "$UNITS/$u" ]; then echo inactive > "$UNITS/$u"; log "$u" "Stopped $u."; fi
    done ;;
  is-active)
    for u in $units; do
      s=$(state_of "$(unit_name "$u")")
      echo "$s"
      [ "$s" = active ] || rc=3
    done ;;
  is-failed)
    for u in $units; do
      s=$(state_of "$(unit_name "$u")")
      echo "$s"
      [ "$s" = failed ] || rc=1
    done ;;
  status)
    for u in $units; do
      u=$(unit_name "$u")
      if [ ! -f "$UNITS/$u" ]; then
        echo "Unit $u could not be found." >&2
        rc=4
        continue
      fi
      s=$(state_of "$u")
      printf '* %s\n     Loaded: loaded (/etc/systemd/system/%s; enabled)\n     Active: %s\n\n' "$u" "$u" "$s"
      [ -s "$JOURNAL/$u.log" ] && tail -n 10 "$JOURNAL/$u.log"
      [ "$s" = active ] || rc=3
    done ;;
  daemon-reload|enable|disable|mask|unmask|reset-failed|list-units) ;;
  *)
    echo "systemctl (emulated node): unsupported command '$verb'" >&2
    rc=1 ;;
esac
exit $rc
