//! The integration tests of `journal`, one test binary (ripgrep's layout): the journal's tests link once,
//! not once per file. A new test file is a module declared here.

mod guarantees;
mod read_state;
