# Prefixes absolute node paths in a shell command line with the node root, so that commands such as
# `sudo mkdir -p /etc/ssl/etcd` act on the node and never on the host. A path counts when it starts a
# word (start of line, after blank, quote, `=`, `:`, or a shell operator); paths already under the
# node root are left alone.
my $root = $ENV{NODE_ROOT};
while (my $line = <STDIN>) {
    $line =~ s{(?:^|(?<=[\s"'=;(|&<>:`]))(?!\Q$root\E(?:/|$))/(opt|etc|var|run|mnt|srv|home)(?=/|[\s"';|&)<>`]|$)}{$root/$1}gm;
    print $line;
}
