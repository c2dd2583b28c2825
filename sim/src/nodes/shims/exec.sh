# Runs one SSH request (exec, shell or sftp subsystem) inside this emulated node: HOME is the
# node's /home/core, the shims come first in PATH, and absolute node paths in the command line
# (/opt, /etc, /var, /run, /mnt, /srv, /home) are rewritten to live under the node root.
export NODE_ROOT
HOME="$NODE_ROOT/home/core"
USER=core
LOGNAME=core
PATH="$NODE_ROOT/.sim/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export HOME USER LOGNAME PATH
cd "$HOME" || exit 1
command=${SSH_ORIGINAL_COMMAND-}
unset SSH_ORIGINAL_COMMAND
case "$command" in
  "") exec /bin/sh ;;
  sftp|internal-sftp|*/sftp-server*) exec /usr/lib/openssh/sftp-server -d "$HOME" ;;
esac
command=$(printf '%s\n' "$command" | /usr/bin/perl "$NODE_ROOT/.sim/rewrite.pl") || exit 1
exec /bin/sh -c "$command"
