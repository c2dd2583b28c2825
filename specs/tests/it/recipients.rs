//! The spec's `recipients`: what the desired cluster holds, and that a change of them is
//! allowed on a built cluster (it re-encrypts; no node changes).

use specs::{DesiredCluster, classify};

const TUTORIAL_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILBFOv+5Cf+zeH4Q+2jCR/BWmqn9Sf8bJT/mazdZk9Jl core@loko-example-1";
/// From `ssh-keygen -t rsa -b 1024`: OpenSSH logs in with it, age refuses RSA under 2048 bits.
const SHORT_RSA_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC3KHgWUDwI2CDZTcE0FanhaB6ALpyAnaxk+ndcEzj/exgpv+0xQOAspuxD1HiQWA4zG8Ga2ECL+lDBYzgG8op3JeS8LX+HX6CYDIAmrWnfxL1u/T9xn/sORlGAKZza4m9DuYYbtpJc2ioZiU/O7vLU1hbkyLH8N+xEuzE10yhgWw== old@laptop";
/// The X25519 recipient of age's test vectors (its identity is 32 bytes of 0x42).
const AGE_RECIPIENT: &str = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

fn tutorial() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tutorial.yaml"
    ))
    .expect("the tutorial's spec")
}

/// The tutorial's desired cluster with its `ssh_keys` and, if given, `recipients` replaced.
fn desired(ssh_keys: &[&str], recipients: Option<&[&str]>) -> DesiredCluster {
    let mut text: String = tutorial()
        .lines()
        .filter(|l| !l.starts_with("ssh_keys:") && !l.trim_start().starts_with("- \"ssh-"))
        .map(|l| format!("{l}\n"))
        .collect();
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("  - {i:?}\n"))
            .collect::<String>()
    };
    text.push_str(&format!("ssh_keys:\n{}", list(ssh_keys)));
    if let Some(recipients) = recipients {
        text.push_str(&format!("recipients:\n{}", list(recipients)));
    }
    specs::parse(&text, "spec.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .desired()
}

#[test]
fn without_recipients_the_ssh_keys_age_takes_serve() {
    let desired = desired(&[SHORT_RSA_KEY, TUTORIAL_KEY], None);
    assert_eq!(
        desired.recipients(),
        [TUTORIAL_KEY],
        "a short RSA key cannot be an age recipient"
    );
    vault::Recipients::parse(&desired.recipients()).expect("the vault takes them");
}

#[test]
fn recipients_given_are_the_recipients() {
    let desired = desired(&[TUTORIAL_KEY], Some(&[AGE_RECIPIENT, TUTORIAL_KEY]));
    assert_eq!(desired.recipients(), [AGE_RECIPIENT, TUTORIAL_KEY]);
}

#[test]
fn adding_or_removing_a_recipient_is_an_allowed_change() {
    let before = desired(&[TUTORIAL_KEY], None);
    let after = desired(&[TUTORIAL_KEY], Some(&[TUTORIAL_KEY, AGE_RECIPIENT]));

    let added = classify(&before, &after).expect("an allowed change");
    assert!(!added.is_empty(), "the next run must re-encrypt");
    let change = added.recipients_changed.expect("recipients changed");
    assert_eq!(change.added, [AGE_RECIPIENT]);
    assert!(change.removed.is_empty());
    assert!(added.nodes_to_create.is_empty() && added.nodes_to_delete.is_empty());

    let removed = classify(&after, &before).expect("an allowed change");
    let change = removed.recipients_changed.expect("recipients changed");
    assert_eq!(change.removed, [AGE_RECIPIENT]);
    assert!(change.added.is_empty());
}

#[test]
fn a_comment_or_the_order_of_recipients_is_no_change() {
    let bare = TUTORIAL_KEY.rsplit_once(' ').unwrap().0;
    let before = desired(&[TUTORIAL_KEY], Some(&[TUTORIAL_KEY, AGE_RECIPIENT]));
    let after = desired(&[TUTORIAL_KEY], Some(&[AGE_RECIPIENT, bare]));
    assert!(classify(&before, &after).expect("allowed").is_empty());
    // Naming the ssh_keys explicitly is what leaving recipients out meant.
    let implicit = desired(&[TUTORIAL_KEY], None);
    let explicit = desired(&[TUTORIAL_KEY], Some(&[TUTORIAL_KEY]));
    assert!(classify(&implicit, &explicit).expect("allowed").is_empty());
}

#[test]
fn a_record_from_before_recipients_reads_as_its_ssh_keys() {
    let desired = desired(&[TUTORIAL_KEY], None);
    let mut record = desired.to_record().expect("a record");
    record
        .as_object_mut()
        .expect("an object")
        .remove("recipients");

    let read = DesiredCluster::from_record(&record).expect("readable");

    assert_eq!(read.recipients(), [TUTORIAL_KEY]);
    assert!(classify(&read, &desired).expect("allowed").is_empty());
}

#[test]
fn an_identity_pasted_as_a_recipient_is_refused_without_echoing_it() {
    let secret = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
    let text = format!("{}recipients:\n  - {secret}\n", tutorial());
    let errors = specs::parse(&text, "spec.yaml").expect_err("a private key");
    let shown = format!("{errors} {errors:?}");
    assert!(shown.contains("recipients[0]"), "{shown}");
    assert!(!shown.contains("GFPYYSJZ"), "{shown}");
}
