//! What the judge reports.

use std::fmt;

/// One reason a unit or pod would not run as intended on a real node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// What is judged: a unit (`kubelet.service`), a pod container
    /// (`manifests/kube-proxy.yaml: container kube-proxy`), a file.
    pub subject: String,
    /// Why, in the words of the component where it has them.
    pub message: String,
}

impl Problem {
    /// A problem of `subject`.
    pub fn new(subject: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            subject: subject.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// The problems as one line each, for logs and assertion messages.
pub fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
