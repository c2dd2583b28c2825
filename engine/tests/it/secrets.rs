//! The run's secrets stay out of what the engine records and reports: the values its journal's
//! redactor knows are refused as outputs and removed from errors.

use std::sync::Arc;

use engine::{CancellationToken, Engine, Outcome, RunRequest, StepContext, StepError};
use journal::{Digest, Journal, Location, Outputs, Redactor, RunKind, StepId};

use crate::toys::{dag, toy};

const TOKEN: &str = "tok-engine-secret-0123456789";

fn request() -> RunRequest {
    RunRequest {
        kind: RunKind::Apply,
        spec_digest: Digest::of(b"secrets"),
        spec: serde_json::json!({}),
    }
}

/// A step that publishes a value the run knows as a secret fails for good (a retry would
/// publish it again), naming the output and not the value; another step's error that echoes
/// the secret is reported without it.
#[tokio::test]
async fn known_secrets_are_refused_as_outputs_and_removed_from_errors() {
    let dir = tempfile::tempdir().unwrap();
    let redactor = Redactor::new();
    let location = Location::Dir(dir.path().to_owned());
    let journal = Arc::new(Journal::open_redacting(&location, redactor.clone()).unwrap());
    // Learned once the journal is open, as a client learns its credentials.
    redactor.add(TOKEN);
    let leaky = toy(
        StepId::new("leaky").unwrap(),
        Digest::of(b"l"),
        |_ctx: StepContext| async move { Ok(Outputs::new().with("auth", format!("Bearer {TOKEN}"))?) },
    );
    let echo = toy(
        StepId::new("echo").unwrap(),
        Digest::of(b"e"),
        |_ctx: StepContext| async move {
            Err::<Outputs, _>(StepError::permanent(format!("401 for {TOKEN}")))
        },
    );
    let (plan, actions) = dag(vec![leaky, echo]).unwrap();
    let report = Engine::new(Arc::clone(&journal))
        .run(&plan, &actions, request(), CancellationToken::new())
        .await
        .unwrap();
    let Outcome::Failed { failed, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    let errors: std::collections::BTreeMap<&str, &str> = failed
        .iter()
        .map(|(step, error)| (step.as_str(), error.as_str()))
        .collect();
    assert!(errors["leaky"].contains("\"auth\""), "{errors:?}");
    assert_eq!(errors["echo"], "401 for [redacted]", "{errors:?}");
    let state = journal.state();
    let run = state.last_run().unwrap();
    assert_eq!(run.steps[&StepId::new("leaky").unwrap()].attempts.len(), 1);
    assert!(
        !format!("{errors:?}{state:?}").contains(TOKEN),
        "the secret got out"
    );
}
