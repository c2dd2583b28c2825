//! Event-sourced journal. Being written (issue #3).
