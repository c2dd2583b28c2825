# journalctl for an emulated node: `-u UNIT` prints that unit's log as written by the systemctl shim.
JOURNAL="$NODE_ROOT/.sim/journal"
units=""
while [ $# -gt 0 ]; do
  case "$1" in
    -u|--unit) units="$units $2"; shift 2 ;;
    --unit=*) units="$units ${1#--unit=}"; shift ;;
    -u*) units="$units ${1#-u}"; shift ;;
    *) shift ;;
  esac
done
found=no
for unit in $units; do
  case "$unit" in *.*) ;; *) unit="$unit.service" ;; esac
  if [ -s "$JOURNAL/$unit.log" ]; then
    cat "$JOURNAL/$unit.log"
    found=yes
  fi
done
if [ $found = no ]; then echo "-- No entries --"; fi
exit 0
