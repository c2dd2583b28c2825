//! Typed kinds: a step built from its kind's params, its action bound by kind, its outputs
//! read through the kind that wrote them.

use std::sync::Arc;

use engine::{
    Actions, CancellationToken, Dag, Engine, EngineError, Outcome, ResourceClass, RunReport,
    StepContext, StepDef, StepError, StepKind,
};
use journal::{Digest, StepId};
use serde::{Deserialize, Serialize};

use crate::runs::{id, request, run_to_end, temp_journal};

/// Greets the name its params hold.
struct Greet;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Greeting {
    greeting: String,
}

impl StepKind for Greet {
    const KIND: engine::ActionKind = engine::ActionKind::new("greet");
    type Params = String;
    type Outputs = Greeting;
}

/// Repeats the greeting of the `greet` step it depends on.
struct Echo;

impl StepKind for Echo {
    const KIND: engine::ActionKind = engine::ActionKind::new("echo");
    type Params = StepId;
    type Outputs = Greeting;
}

fn typed_actions() -> Actions {
    Actions::new()
        .bind::<Greet, _, _>(|_ctx: StepContext, name: String| async move {
            Ok(Greeting {
                greeting: format!("hello {name}"),
            })
        })
        .bind::<Echo, _, _>(|ctx: StepContext, from: StepId| async move {
            let Greeting { greeting } = ctx.outputs_of::<Greet>(&from)?;
            Ok(Greeting {
                greeting: format!("{greeting} again"),
            })
        })
}

/// A dependent reads the outputs of the step it depends on through that step's kind.
#[tokio::test]
async fn a_step_reads_its_dependency_typed_through_the_kind_that_wrote_it() {
    let (_dir, journal) = temp_journal();
    let greet = StepDef::of::<Greet>(id("greet"), &"ada".to_owned(), Digest::of(b"g")).unwrap();
    let echo = StepDef::of::<Echo>(id("echo"), &id("greet"), Digest::of(b"e"))
        .unwrap()
        .after([id("greet")]);
    let dag = Dag::new(vec![greet, echo]).unwrap();
    let report = run_to_end(
        &Engine::new(Arc::clone(&journal)),
        &(dag, typed_actions()),
        "s",
    )
    .await;
    assert_eq!(report.outcome, Outcome::Succeeded);
    let ledger = journal.state().ledger;
    assert_eq!(
        engine::decode_outputs::<Echo>(&ledger[&id("echo")].outputs).unwrap(),
        Greeting {
            greeting: "hello ada again".into()
        }
    );
    // The journal keeps JSON, one key per field.
    assert_eq!(
        ledger[&id("greet")]
            .outputs
            .get::<String>("greeting")
            .unwrap(),
        "hello ada"
    );
}

/// Params of another shape than the kind's are a permanent error naming the step and the kind,
/// and so is a dependent reading its dependency as a kind it is not.
#[tokio::test]
async fn params_or_outputs_of_another_shape_fail_naming_step_and_kind() {
    let (_dir, journal) = temp_journal();
    let wrong = StepDef::new(id("greet"), Greet::KIND, Digest::of(b"g"))
        .params(&42)
        .unwrap();
    let dag = Dag::new(vec![wrong]).unwrap();
    let report = run_to_end(
        &Engine::new(Arc::clone(&journal)),
        &(dag, typed_actions()),
        "s",
    )
    .await;
    let error = error_of(&report, "greet");
    assert!(
        error.contains("greet") && error.contains("kind greet"),
        "{error}"
    );

    // `echo` reads its dependency as `greet`'s outputs, but the DAG gave it a `shout`.
    struct Shout;
    #[derive(Serialize, Deserialize)]
    struct Loud {
        shout: String,
    }
    impl StepKind for Shout {
        const KIND: engine::ActionKind = engine::ActionKind::new("shout");
        type Params = ();
        type Outputs = Loud;
    }
    let (_dir, journal) = temp_journal();
    let shout = StepDef::of::<Shout>(id("shout"), &(), Digest::of(b"s")).unwrap();
    let echo = StepDef::of::<Echo>(id("echo"), &id("shout"), Digest::of(b"e"))
        .unwrap()
        .after([id("shout")]);
    let actions = typed_actions().bind::<Shout, _, _>(|_ctx: StepContext, ()| async move {
        Ok(Loud {
            shout: "HEY".into(),
        })
    });
    let dag = Dag::new(vec![shout, echo]).unwrap();
    let report = run_to_end(&Engine::new(Arc::clone(&journal)), &(dag, actions), "s").await;
    let error = error_of(&report, "echo");
    assert!(
        error.contains("step echo read the outputs of shout") && error.contains("kind greet"),
        "{error}"
    );
}

/// The error of `step` in a failed run's report.
fn error_of(report: &RunReport, step: &str) -> String {
    match &report.outcome {
        Outcome::Failed { failed, .. } => failed
            .iter()
            .find(|(s, _)| *s == id(step))
            .map(|(_, e)| e.clone())
            .unwrap_or_default(),
        other => panic!("{step}: the run did not fail: {other:?}"),
    }
}

/// The DAG is data: it serializes, comes back equal, and runs only once its kinds are bound,
/// the action reading each step's params.
#[tokio::test]
async fn a_dag_is_data_and_runs_with_the_actions_bound_when_the_run_starts() {
    let (_dir, journal) = temp_journal();
    let greet = |name: &str| {
        StepDef::of::<Greet>(
            id(&format!("greet/{name}")),
            &name.to_owned(),
            Digest::of(name.as_bytes()),
        )
        .unwrap()
        .class(ResourceClass::new("local"))
    };
    let dag = Dag::new(vec![greet("ada"), greet("bob").after([id("greet/ada")])]).unwrap();
    let json = serde_json::to_string(&dag).unwrap();
    let back: Dag = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.declared().collect::<Vec<_>>(),
        dag.declared().collect::<Vec<_>>()
    );
    assert_eq!(back.to_dot(), dag.to_dot());

    let engine = Engine::new(Arc::clone(&journal));
    let unbound = engine
        .run(
            &back,
            &Actions::new(),
            request("s"),
            CancellationToken::new(),
        )
        .await;
    assert!(
        matches!(&unbound, Err(EngineError::Unbound { step, kind }) if step == &id("greet/ada") && kind.as_str() == "greet"),
        "{unbound:?}"
    );
    assert!(journal.state().runs.is_empty(), "nothing is journaled");

    let actions =
        Actions::new().bind::<Greet, _, _>(|_ctx: StepContext, name: String| async move {
            Ok::<_, StepError>(Greeting {
                greeting: format!("hello {name}"),
            })
        });
    let report = engine
        .run(&back, &actions, request("s"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let ledger = journal.state().ledger;
    assert_eq!(
        ledger[&id("greet/bob")]
            .outputs
            .get::<String>("greeting")
            .unwrap(),
        "hello bob"
    );
}
