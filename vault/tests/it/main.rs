//! The vault's tests: one test binary (see ARCHITECTURE.md), a module per concern. Keys are
//! made by the real `age-keygen` and `ssh-keygen`, and the real `age` program reads and writes
//! what the crate does.

mod age_program;
mod identities;
mod keys;
mod recipients;
mod seal_open;
