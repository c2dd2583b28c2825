//! Writing like a Unix tool: a reader of stdout that goes away (`loko journal --json | head`)
//! ends the command quietly with the status of a process killed by SIGPIPE, instead of the panic
//! of `println!`; a stderr whose reader went away (`loko run … 2>&1 | head`) loses what was
//! said there, and the command ends with the status it would have had, instead of the panic of
//! `eprintln!` (exit 101).

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
            write_err(format_args!("error: cannot write to stdout: {e}"), true);
            std::process::exit(1)
        }
    }
}

/// Writes `args` and a newline to stderr. A stderr that cannot be written leaves nobody to tell:
/// the message is dropped and the command goes on to its own exit status.
pub fn write_err(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| {
        if newline {
            err.write_all(b"\n")
        } else {
            err.flush()
        }
    });
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

/// `eprintln!` that never panics: see [`write_err`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*), true) };
}

/// `eprint!` that never panics, flushed (a question before reading the answer).
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*), false) };
}

pub(crate) use {err, errln, out, outln};
