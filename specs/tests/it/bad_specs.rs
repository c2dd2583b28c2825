//! Every spec of `tests/specs/bad/` must be refused with exactly the errors its header lists.
//!
//! Each file starts with a description line and one `# expect: <path> | <line> | <words>` line per
//! error (`(document)` for errors about the whole document); the file is refused with exactly that
//! many errors, each at that path and line, its message containing those words.

use std::path::{Path, PathBuf};

struct Expected {
    path: String,
    line: usize,
    words: String,
}

fn expectations(text: &str) -> Vec<Expected> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let parts: Vec<&str> = e.splitn(3, " | ").collect();
            assert_eq!(parts.len(), 3, "malformed expectation {e:?}");
            Expected {
                path: if parts[0] == "(document)" {
                    String::new()
                } else {
                    parts[0].to_owned()
                },
                line: parts[1].parse().expect("expectation line is a number"),
                words: parts[2].to_owned(),
            }
        })
        .collect()
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/specs/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the bad spec corpus exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(corpus().len() >= 40, "only {} bad specs", corpus().len());
}

#[test]
fn every_bad_spec_is_refused_with_its_errors() {
    let mut failures = Vec::new();
    for file in corpus() {
        let text = std::fs::read_to_string(&file).expect("readable corpus file");
        let expected = expectations(&text);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if expected.is_empty() {
            failures.push(format!("{name}: no `# expect:` line"));
            continue;
        }
        let errors = match specs::load(&file) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(errors) => errors,
        };
        let shown = errors.to_string();
        if errors.errors.len() != expected.len() {
            failures.push(format!(
                "{name}: expected {} error(s), got:\n{shown}",
                expected.len()
            ));
            continue;
        }
        for e in &expected {
            let found = errors.errors.iter().any(|got| {
                got.path == e.path && got.line == e.line && got.message.contains(&e.words)
            });
            if !found {
                failures.push(format!(
                    "{name}: no error at {} line {} with {:?}; got:\n{shown}",
                    e.path, e.line, e.words
                ));
            }
        }
        // Every error is printed with the file and its place.
        assert!(
            shown
                .lines()
                .all(|l| l.starts_with(&file.display().to_string())),
            "{shown}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_of_a_spec_is_reported_at_once() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml"),
    )
    .expect("tutorial example")
    .replace("controller_count: 1", "controller_count: 0")
    .replace("facility: ams1", "facilty: ams1")
    .replace("    count: 2", "    count: -1");
    let errors = specs::parse(&text, "spec.yaml").expect_err("three mistakes");
    let paths: Vec<&str> = errors.errors.iter().map(|e| e.path.as_str()).collect();
    // In file order: `facility` is missing from the mapping that starts at the first key.
    assert_eq!(
        paths,
        [
            "facility",
            "facilty",
            "controller_count",
            "worker_pools[0].count"
        ],
        "{errors}"
    );
    assert!(
        errors.to_string().contains("did you mean `facility`?"),
        "{errors}"
    );
}

#[test]
fn credentials_are_never_echoed() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml"),
    )
    .expect("tutorial example")
    .replace(
        "facility: ams1",
        "facility: ams1\nauth_token: s3cr3t-t0ken-value",
    );
    let errors = specs::parse(&text, "spec.yaml").expect_err("a token in the spec");
    assert!(
        !format!("{errors} {errors:?}").contains("s3cr3t"),
        "{errors}"
    );
}
