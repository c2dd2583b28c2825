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

/// `rows` under `header` as columns as wide as their widest cell, two spaces apart, the last
/// one unpadded: the tables of `loko run` and `loko status` fit 80 columns for a cluster of
/// ordinary names, instead of padding every column to the widest it could ever be.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A device's id as a table shows it: its first eight characters, Packet's short id (the
/// console's), where it is a UUID; the journal and `--json` keep the whole id.
pub fn short_id(id: &str) -> String {
    match id.get(..8) {
        Some(short) if id.len() == 36 && id.as_bytes()[8] == b'-' => short.to_owned(),
        _ => id.to_owned(),
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

/// `eprintln!` that never panics: see [`write_err`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*), true) };
}

/// `eprint!` that never panics, flushed (a question before reading the answer).
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*), false) };
}

pub(crate) use {err, errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_as_wide_as_its_cells_and_ids_are_short() {
        let rows = vec![
            vec![
                "supernova-controller-0".to_owned(),
                short_id("d085e83b-a2d7-490e-af1e-8fe5be19bd6a"),
            ],
            vec!["w".to_owned(), "-".to_owned()],
        ];
        assert_eq!(
            table(&["NODE", "DEVICE"], &rows),
            "NODE                    DEVICE\nsupernova-controller-0  d085e83b\nw                       -"
        );
        assert_eq!(short_id("not-a-uuid"), "not-a-uuid");
    }
}
