# chown that tolerates owners unknown to the host (Flatcar's etcd user does not exist there):
# ownership is then not emulated, but missing files still fail as with the real chown.
owner=""
for arg in "$@"; do
  case "$arg" in
    -*) ;;
    *) owner=$arg; break ;;
  esac
done
user=${owner%%:*}
group=""
case "$owner" in *:*) group=${owner#*:} ;; esac
known=yes
if [ -n "$user" ] && ! getent passwd "$user" >/dev/null 2>&1; then known=no; fi
if [ -n "$group" ] && ! getent group "$group" >/dev/null 2>&1; then known=no; fi
if [ $known = yes ]; then exec /bin/chown "$@"; fi
seen_owner=no
rc=0
for arg in "$@"; do
  case "$arg" in -*) continue ;; esac
  if [ $seen_owner = no ]; then seen_owner=yes; continue; fi
  if [ ! -e "$arg" ]; then
    echo "chown: cannot access '$arg': No such file or directory" >&2
    rc=1
  fi
done
exit $rc
