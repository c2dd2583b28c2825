# sudo for an emulated node: the simulator's OS user owns the node root, so the command simply
# runs as that user. Options are accepted and ignored.
while [ $# -gt 0 ]; do
  case "$1" in
    -u|-g|-C|-p|-U) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: sudo command" >&2
  exit 1
fi
exec "$@"
