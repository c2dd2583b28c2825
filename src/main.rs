//! The `loko` command line. Its subcommands arrive with issue #8.

fn main() {
    eprintln!("loko {}: no commands yet", env!("CARGO_PKG_VERSION"));
    std::process::exit(2);
}
