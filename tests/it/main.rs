//! The `loko` binary's tests, one test binary (ripgrep's layout): they run the built `loko`
//! (`CARGO_BIN_EXE_loko`) against the simulator and real peers, and link once. Their shared
//! starters and worlds are the `loko-tests` crate in `testkit/`. A new test file is a module
//! declared here.

mod bad_input;
mod binary;
mod cli;
mod crash_suite;
mod demo;
mod drain;
mod drift;
mod fault_suite;
mod fidelity;
mod follow;
mod hints;
mod journal_cmd;
mod journal_store;
mod rack_commands;
mod rack_no_dns;
mod rack_run;
mod redaction;
mod run_e2e;
mod run_in_progress;
mod setup_problems;
mod shell;
mod team;
