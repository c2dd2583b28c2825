//! The integration tests of `engine`, one test binary (ripgrep's layout): the engine's tests link once,
//! not once per file. A new test file is a module declared here.

mod crash;
mod drift;
mod kinds;
mod runs;
mod secrets;
mod toys;
