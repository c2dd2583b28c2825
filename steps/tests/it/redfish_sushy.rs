//! loko's Redfish client against a Redfish service it did not write: sushy-tools' emulator with
//! its fake driver, behind basic authentication (sushy has no session service).

use std::time::Duration;

use loko_tests::sushy::{FakeSystem, Sushy};
use steps::packet::Timeouts;
use steps::redfish::{BmcCredentials, Polling, PowerState, RedfishClient, RedfishErrorKind, Reset};

const UUID: &str = "c9b7a4f2-0000-4000-8000-000000000001";
const MAC: &str = "52:54:00:a1:00:01";
const PASSWORD: &str = "bmc-test-pass-7f3a9c";

fn system_path() -> String {
    format!("/redfish/v1/Systems/{UUID}")
}

fn start(dir: &std::path::Path) -> Sushy {
    Sushy::start(
        dir,
        &[FakeSystem {
            uuid: UUID.into(),
            name: "rack-a1".into(),
            power_state: "Off",
            macs: vec![MAC.into()],
        }],
        "admin",
        PASSWORD,
    )
}

async fn connect(sushy: &Sushy) -> RedfishClient {
    RedfishClient::connect(
        &sushy.url,
        &BmcCredentials::new(&sushy.username, &sushy.password, &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The fake driver applies a reset 1 to 11 seconds after it accepts it.
fn polling() -> Polling {
    Polling {
        every: Duration::from_millis(500),
        within: Duration::from_secs(30),
    }
}

fn mac() -> specs::MacAddress {
    specs::MacAddress::parse(MAC).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boot_override_is_set_to_pxe_once_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = start(dir.path());
    let client = connect(&sushy).await;
    assert!(!client.has_session(), "sushy links no session service");
    let system = client.machine(&system_path(), &mac()).await.unwrap();
    let boot = system.boot.clone().unwrap_or_default();
    assert_eq!(
        boot.override_target.as_deref(),
        Some("Hdd"),
        "sushy's default"
    );
    let set = client.boot_pxe_once(&system, &polling()).await.unwrap();
    let read = client.system(&system_path()).await.unwrap();
    for boot in [set.boot.unwrap_or_default(), read.boot.unwrap_or_default()] {
        assert_eq!(boot.override_target.as_deref(), Some("Pxe"));
        // sushy ignores BootSourceOverrideEnabled (emulator/main.py: "we always set the boot
        // device frequency to continuous"); the request's `Once` is held in redfish_protocol.
        assert_eq!(boot.override_enabled.as_deref(), Some("Continuous"));
    }
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reset_is_sent_as_a_type_the_system_allows_and_its_power_state_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = start(dir.path());
    let client = connect(&sushy).await;
    let path = system_path();
    for (reset, sent) in [
        (Reset::On, "On"),
        (Reset::ForceRestart, "ForceRestart"),
        (Reset::ForceOff, "ForceOff"),
    ] {
        let system = client.system(&path).await.unwrap();
        let reset_type = client.reset(&system, reset, &polling()).await.unwrap();
        assert_eq!(reset_type, sent);
        let read = client
            .wait_for_power(&path, &reset.ends_in(), &polling())
            .await
            .unwrap_or_else(|e| panic!("{reset:?}: {e}"));
        assert_eq!(read.power_state, Some(reset.ends_in()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_state_that_does_not_come_is_named_and_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = start(dir.path());
    let client = connect(&sushy).await;
    let quick = Polling {
        every: Duration::from_millis(100),
        within: Duration::from_millis(300),
    };
    // Nothing asked it to power on: it stays Off.
    let err = client
        .wait_for_power(&system_path(), &PowerState::On, &quick)
        .await
        .unwrap_err();
    assert!(
        matches!(&*err.kind, RedfishErrorKind::PowerStateNotReached { last, .. } if last == "Off"),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&sushy.url), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_naming_the_bmc_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = start(dir.path());
    let wrong = "not-the-bmc-pass-51e0";
    let err = RedfishClient::connect(
        &sushy.url,
        &BmcCredentials::new("admin", wrong, &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(*err.kind, RedfishErrorKind::Unauthorized);
    assert!(!err.is_retryable(), "a refusal is permanent");
    let text = err.to_string();
    assert!(text.contains(&sushy.url) && text.contains("401"), "{text}");
    assert!(text.contains("LOKO_BMC_USERNAME"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(PASSWORD), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_system_and_a_wrong_machine_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let sushy = start(dir.path());
    let client = connect(&sushy).await;
    let err = client
        .system("/redfish/v1/Systems/no-such-system")
        .await
        .unwrap_err();
    assert_eq!(*err.kind, RedfishErrorKind::NotFound);
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}/redfish/v1/Systems/no-such-system", sushy.url)),
        "{text}"
    );
    assert!(text.contains("was not found"), "sushy's own words: {text}");

    let other = specs::MacAddress::parse("52:54:00:ff:00:09").unwrap();
    let err = client.machine(&system_path(), &other).await.unwrap_err();
    assert!(
        matches!(&*err.kind, RedfishErrorKind::WrongMachine { found, .. } if found == &vec![MAC.to_owned()]),
        "{err}"
    );
    assert!(err.to_string().contains("52:54:00:ff:00:09"), "{err}");
}
