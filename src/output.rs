//! Writing to stdout like a Unix tool: a reader that goes away (`loko journal --json | head`)
//! ends the command quietly with the status of a process killed by SIGPIPE, instead of the panic
//! of `println!`.

use std::io::Write as _;

/// Exit status after stdout was closed by its reader: 128 + SIGPIPE, what a shell shows for a
/// `cat` cut off by `head`.
pub const EXIT_CLOSED_PIPE: i32 = 141;

/// Writes `args` (and a newline when `newline`) to stdout.
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(EXIT_CLOSED_PIPE)
        }
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` to stdout, ending the command quietly when the reader has gone.
macro_rules! outln {
    () => { $crate::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), true) };
}

/// `print!` to stdout, ending the command quietly when the reader has gone.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), false) };
}

pub(crate) use {out, outln};
