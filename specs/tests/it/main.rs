//! The integration tests of `specs`, one test binary (ripgrep's layout): the crate's tests
//! link once, not once per file. A new test file is a module declared here.

mod api_address;
mod bad_specs;
mod classify;
mod desired;
mod docs;
mod examples;
mod rack;
mod recipients;
