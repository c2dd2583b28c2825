# systemctl for an emulated Flatcar node. A unit exists when its state file exists under
# .sim/units (written from the Ignition's units at boot) and holds active, inactive or failed.
UNITS="$NODE_ROOT/.sim/units"
JOURNAL="$NODE_ROOT/.sim/journal"

unit_name() { case "$1" in *.*) printf '%s' "$1" ;; *) printf '%s.service' "$1" ;; esac; }
state_of() { if [ -f "$UNITS/$1" ]; then cat "$UNITS/$1"; else echo inactive; fi; }
log() {
  printf '%s %s %s[%s]: %s\n' "$(date '+%b %d %H:%M:%S')" "$NODE_HOSTNAME" "${1%.service}" "$$" "$2" \
    >> "$JOURNAL/$1.log"
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
  is-active|is-failed)
    # Each prints every unit's state; the exit status says whether all are in the one asked.
    if [ "$verb" = is-active ]; then want=active; otherwise=3; else want=failed; otherwise=1; fi
    for u in $units; do
      s=$(state_of "$(unit_name "$u")")
      echo "$s"
      [ "$s" = "$want" ] || rc=$otherwise
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
