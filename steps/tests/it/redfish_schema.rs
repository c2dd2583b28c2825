//! The Redfish client's view of the resources it reads, held against the DMTF schemas: it
//! needs exactly the properties each schema requires (a conforming BMC that leaves out an
//! optional one is understood; one missing a required one is refused as malformed), and the
//! values it sends and waits for are the schemas' own.
//!
//! `tests/fixtures/redfish-schema-facts.json` holds the `required` lists and enumerations,
//! taken from DMTF's Redfish-Publications 2025.4 (`json-schema/ComputerSystem.v1_20_0.json`,
//! `ServiceRoot.v1_15_0.json`, `EthernetInterface.v1_10_0.json`, `Task.v1_7_0.json`,
//! `Resource.json`, `ComputerSystem.json`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use steps::redfish::{ComputerSystem, EthernetInterface, PowerState, Reset, ServiceRoot, Task};

fn facts() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/redfish-schema-facts.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// An object of the required properties only, each a string.
fn only(required: &[String]) -> Map<String, Value> {
    required
        .iter()
        .map(|name| (name.clone(), json!(format!("x-{name}"))))
        .collect()
}

/// The client reads an object of the required properties, and refuses one missing any of them.
fn holds<T: DeserializeOwned>(definition: &str, exempt: &[&str]) {
    let facts = facts();
    let required: Vec<String> = strings(&facts["required"][definition])
        .into_iter()
        .filter(|name| !exempt.contains(&name.as_str()))
        .collect();
    assert!(required.len() >= 4, "{definition}: {required:?}");
    serde_json::from_value::<T>(Value::Object(only(&required)))
        .unwrap_or_else(|e| panic!("{definition}: only the required properties: {e}"));
    for missing in &required {
        let mut object = only(&required);
        object.remove(missing);
        assert!(
            serde_json::from_value::<T>(Value::Object(object)).is_err(),
            "{definition}: read without the required {missing}"
        );
    }
}

#[test]
fn the_client_needs_exactly_what_the_schemas_require() {
    holds::<ComputerSystem>(
        "ComputerSystem.v1_20_0.json#/definitions/ComputerSystem",
        &[],
    );
    holds::<EthernetInterface>(
        "EthernetInterface.v1_10_0.json#/definitions/EthernetInterface",
        &[],
    );
    holds::<Task>("Task.v1_7_0.json#/definitions/Task", &[]);
    // `Links` is required by the schema but sushy-tools' root leaves it out; without it the
    // client signs in with basic authentication.
    holds::<ServiceRoot>(
        "ServiceRoot.v1_15_0.json#/definitions/ServiceRoot",
        &["Links"],
    );
    let facts = facts();
    assert_eq!(
        strings(&facts["required"]["ServiceRoot.v1_15_0.json#/definitions/Links"]),
        ["Sessions"],
        "a conforming root always links its sessions, which the client then uses"
    );
}

#[test]
fn the_values_sent_and_awaited_are_the_schemas() {
    let facts = facts();
    let enums = &facts["enums"];
    let power = strings(&enums["Resource.json#/definitions/PowerState"]);
    for state in &power {
        let read: PowerState = serde_json::from_value(json!(state)).unwrap();
        assert!(!matches!(read, PowerState::Other(_)), "{state} is known");
        assert_eq!(&read.to_string(), state);
    }
    for reset in [Reset::On, Reset::ForceRestart, Reset::ForceOff] {
        assert!(power.contains(&reset.ends_in().to_string()));
        for t in reset.types() {
            assert!(
                strings(&enums["Resource.json#/definitions/ResetType"]).contains(&t.to_string()),
                "{t} is no ResetType"
            );
        }
    }
    assert!(strings(&enums["ComputerSystem.json#/definitions/BootSource"]).contains(&"Pxe".into()));
    assert!(
        strings(&enums["ComputerSystem.v1_20_0.json#/definitions/BootSourceOverrideEnabled"])
            .contains(&"Once".into())
    );
    assert!(
        strings(&enums["Task.v1_7_0.json#/definitions/TaskState"]).contains(&"Completed".into())
    );
    // A state a later schema adds is kept, not refused.
    let later: PowerState = serde_json::from_value(json!("Hibernating")).unwrap();
    assert_eq!(later, PowerState::Other("Hibernating".into()));
}
