//! Errors of a spec, each with the place in the file a user must edit.
//!
//! Validation never stops at the first problem: a user fixing a spec should see every mistake
//! in one run, so errors are collected into [`SpecErrors`] and returned together.

use std::fmt;

/// One problem in a spec: the field path, where it is in the file, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The field path, like `worker_pools[1].count`; empty for the document itself.
    pub path: String,
    /// 1-based line in the spec file; 0 when the problem has no place (the file is unreadable).
    pub line: usize,
    /// 1-based column in the spec file; 0 when the problem has no place.
    pub column: usize,
    /// What is wrong, and what to write instead when that is known.
    pub message: String,
}

/// Every problem found in one spec file.
///
/// Displays one line per error, `spec.yaml:12:5: worker_pools[1].count: must be >= 0 (got -1)`,
/// sorted by position in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors {
    /// The name the spec was loaded under, as given to [`crate::parse`] or [`crate::load`].
    pub origin: String,
    /// The errors, in file order.
    pub errors: Vec<SpecError>,
}

impl SpecErrors {
    pub(crate) fn new(origin: &str, mut errors: Vec<SpecError>) -> Self {
        errors.sort_by(|a, b| (a.line, a.column, &a.path).cmp(&(b.line, b.column, &b.path)));
        errors.dedup();
        SpecErrors {
            origin: origin.to_owned(),
            errors,
        }
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.origin)?;
            if e.line > 0 {
                write!(f, ":{}:{}", e.line, e.column)?;
            }
            if e.path.is_empty() {
                write!(f, ": {}", e.message)?;
            } else {
                write!(f, ": {}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_line_per_error_in_file_order() {
        let errors = SpecErrors::new(
            "spec.yaml",
            vec![
                SpecError {
                    path: "worker_pools[1].count".into(),
                    line: 12,
                    column: 5,
                    message: "must be >= 0 (got -1)".into(),
                },
                SpecError {
                    path: String::new(),
                    line: 2,
                    column: 1,
                    message: "bad".into(),
                },
            ],
        );
        assert_eq!(
            errors.to_string(),
            "spec.yaml:2:1: bad\nspec.yaml:12:5: worker_pools[1].count: must be >= 0 (got -1)"
        );
    }
}
