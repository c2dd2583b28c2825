//! Route53's hosted zones, record sets and changes, without XML.
//!
//! The semantics are AWS's, since loko's DNS step relies on them (peer lesson: `CREATE` of an
//! existing record set fails): a change batch is applied all or nothing; `CREATE` of an existing
//! set, `DELETE` of a missing set and `DELETE` whose TTL or values differ are `InvalidChangeBatch`;
//! record sets list in AWS's order (names compared label by label from the right, then type).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Timings;

/// Everything the Route53 side holds; persisted as is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Route53 {
    pub(crate) zones: BTreeMap<String, Zone>,
    pub(crate) changes: BTreeMap<String, Change>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Zone {
    /// Bare id, e.g. `Z0123456789ABCDEFGHIJ` (the API shows `/hostedzone/` + id).
    pub(crate) id: String,
    /// Fully qualified, lower case, with the trailing dot.
    pub(crate) name: String,
    pub(crate) caller_reference: String,
    pub(crate) comment: Option<String>,
    /// Keyed by [`RecordKey`], which sorts as AWS lists; persisted as a list since JSON keys
    /// are strings.
    #[serde(with = "record_sets_as_list")]
    pub(crate) record_sets: BTreeMap<RecordKey, RecordSet>,
}

mod record_sets_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{RecordKey, RecordSet};

    pub(super) fn serialize<S: Serializer>(
        sets: &BTreeMap<RecordKey, RecordSet>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(sets.values())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<RecordKey, RecordSet>, D::Error> {
        let sets = Vec::<RecordSet>::deserialize(deserializer)?;
        Ok(sets.into_iter().map(|s| (s.key(), s)).collect())
    }
}

/// A record set's identity: reversed name labels, type and set identifier.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RecordKey {
    reversed_name: String,
    rtype: String,
    set_identifier: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordSet {
    pub(crate) name: String,
    pub(crate) rtype: String,
    pub(crate) ttl: Option<u64>,
    pub(crate) values: Vec<String>,
    pub(crate) set_identifier: Option<String>,
    pub(crate) weight: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Change {
    /// Bare id, e.g. `C0123456789ABCDEFGHIJ`.
    pub(crate) id: String,
    pub(crate) submitted_at: DateTime<Utc>,
    pub(crate) comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Upsert,
    Delete,
}

/// Why a Route53 operation was refused, with the AWS error code it maps to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route53Error {
    NoSuchHostedZone(String),
    NoSuchChange(String),
    HostedZoneAlreadyExists(String),
    InvalidChangeBatch(Vec<String>),
    InvalidInput(String),
}

impl Route53Error {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Route53Error::NoSuchHostedZone(_) => "NoSuchHostedZone",
            Route53Error::NoSuchChange(_) => "NoSuchChange",
            Route53Error::HostedZoneAlreadyExists(_) => "HostedZoneAlreadyExists",
            Route53Error::InvalidChangeBatch(_) => "InvalidChangeBatch",
            Route53Error::InvalidInput(_) => "InvalidInput",
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Route53Error::NoSuchHostedZone(id) => format!("No hosted zone found with ID: {id}"),
            Route53Error::NoSuchChange(id) => format!("Could not find resource with ID: {id}"),
            Route53Error::HostedZoneAlreadyExists(r) => format!(
                "A hosted zone has already been created with the specified caller reference: {r}"
            ),
            Route53Error::InvalidChangeBatch(messages) => messages.join("; "),
            Route53Error::InvalidInput(m) => m.clone(),
        }
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            Route53Error::NoSuchHostedZone(_) | Route53Error::NoSuchChange(_) => 404,
            Route53Error::HostedZoneAlreadyExists(_) => 409,
            Route53Error::InvalidChangeBatch(_) | Route53Error::InvalidInput(_) => 400,
        }
    }
}

/// Lower case with a trailing dot; `\052` (how AWS escapes `*`) becomes `*`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut name = name.replace("\\052", "*").to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// The name as AWS prints it: `*` escaped as `\052`.
pub(crate) fn display_name(name: &str) -> String {
    name.replace('*', "\\052")
}

impl RecordKey {
    pub(crate) fn new(name: &str, rtype: &str, set_identifier: Option<&str>) -> Self {
        let labels: Vec<&str> = name.trim_end_matches('.').split('.').rev().collect();
        RecordKey {
            reversed_name: labels.join("."),
            rtype: rtype.to_owned(),
            set_identifier: set_identifier.map(str::to_owned),
        }
    }
}

impl RecordSet {
    fn key(&self) -> RecordKey {
        RecordKey::new(&self.name, &self.rtype, self.set_identifier.as_deref())
    }

    fn describe(&self) -> String {
        let mut s = format!("[name='{}', type='{}'", self.name, self.rtype);
        if let Some(id) = &self.set_identifier {
            s.push_str(&format!(", set-identifier='{id}'"));
        }
        s.push(']');
        s
    }
}

/// A random AWS-style id: a letter then 20 upper-case letters and digits.
pub(crate) fn aws_id(prefix: char) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let bytes: [u8; 20] = rand::random();
    let mut id = String::with_capacity(21);
    id.push(prefix);
    id.extend(
        bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char),
    );
    id
}

impl Route53 {
    /// Creates a zone with AWS's default NS and SOA record sets, with a fresh id unless `id`
    /// is given (a simulator seeded with the id a spec names).
    pub(crate) fn create_zone(
        &mut self,
        name: &str,
        caller_reference: &str,
        comment: Option<String>,
        id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(String, String), Route53Error> {
        if self
            .zones
            .values()
            .any(|z| z.caller_reference == caller_reference)
        {
            return Err(Route53Error::HostedZoneAlreadyExists(
                caller_reference.to_owned(),
            ));
        }
        let name = normalize_name(name);
        if name == "." || name.contains("..") {
            return Err(Route53Error::InvalidInput(format!(
                "invalid domain name {name:?}"
            )));
        }
        let id = id.unwrap_or_else(|| aws_id('Z'));
        if self.zones.contains_key(&id) {
            return Err(Route53Error::InvalidInput(format!(
                "hosted zone id {id} exists already"
            )));
        }
        let mut zone = Zone {
            id: id.clone(),
            name: name.clone(),
            caller_reference: caller_reference.to_owned(),
            comment,
            record_sets: BTreeMap::new(),
        };
        for set in [
            RecordSet {
                name: name.clone(),
                rtype: "NS".to_owned(),
                ttl: Some(172_800),
                values: name_servers(),
                set_identifier: None,
                weight: None,
            },
            RecordSet {
                name: name.clone(),
                rtype: "SOA".to_owned(),
                ttl: Some(900),
                values: vec![format!(
                    "ns-2048.awsdns-64.com. hostmaster.{name} 1 7200 900 1209600 86400"
                )],
                set_identifier: None,
                weight: None,
            },
        ] {
            zone.record_sets.insert(set.key(), set);
        }
        self.zones.insert(id.clone(), zone);
        let change = self.record_change(None, now);
        Ok((id, change))
    }

    /// The zone with this id; `/hostedzone/` prefixes are accepted as the SDKs send them.
    pub(crate) fn zone(&self, id: &str) -> Result<&Zone, Route53Error> {
        let bare = id.trim_start_matches("/hostedzone/");
        self.zones
            .get(bare)
            .ok_or_else(|| Route53Error::NoSuchHostedZone(bare.to_owned()))
    }

    /// Zones in `ListHostedZonesByName` order: by name with labels reversed.
    pub(crate) fn zones_by_name(&self) -> Vec<&Zone> {
        let mut zones: Vec<&Zone> = self.zones.values().collect();
        zones.sort_by_key(|z| (RecordKey::new(&z.name, "", None), z.id.clone()));
        zones
    }

    /// Applies a change batch all or nothing and returns the change id.
    pub(crate) fn change(
        &mut self,
        zone_id: &str,
        changes: Vec<(Action, RecordSet)>,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String, Route53Error> {
        let zone = self.zone(zone_id)?;
        if changes.is_empty() {
            return Err(Route53Error::InvalidInput(
                "ChangeBatch must contain at least one change".to_owned(),
            ));
        }
        let mut sets = zone.record_sets.clone();
        let mut errors = Vec::new();
        for (action, mut set) in changes {
            set.name = normalize_name(&set.name);
            if set.name != zone.name && !set.name.ends_with(&format!(".{}", zone.name)) {
                errors.push(format!(
                    "RRSet with DNS name {} is not permitted in zone {}",
                    set.name, zone.name
                ));
                continue;
            }
            if set.ttl.is_none() || set.values.is_empty() {
                return Err(Route53Error::InvalidInput(format!(
                    "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action={action:?}, Name={}, Type={}, SetIdentifier={}]",
                    set.name,
                    set.rtype,
                    set.set_identifier.as_deref().unwrap_or("null")
                )));
            }
            let key = set.key();
            match action {
                Action::Create => match sets.entry(key) {
                    std::collections::btree_map::Entry::Occupied(_) => errors.push(format!(
                        "Tried to create resource record set {} but it already exists",
                        set.describe()
                    )),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(set);
                    }
                },
                Action::Upsert => {
                    sets.insert(key, set);
                }
                Action::Delete => match sets.get(&key) {
                    None => errors.push(format!(
                        "Tried to delete resource record set {} but it was not found",
                        set.describe()
                    )),
                    Some(existing) if !same_values(existing, &set) => errors.push(format!(
                        "Tried to delete resource record set {} but the values provided do not match the current values",
                        set.describe()
                    )),
                    Some(_) => {
                        sets.remove(&key);
                    }
                },
            }
        }
        if !errors.is_empty() {
            return Err(Route53Error::InvalidChangeBatch(errors));
        }
        let bare = zone.id.clone();
        if let Some(zone) = self.zones.get_mut(&bare) {
            zone.record_sets = sets;
        }
        Ok(self.record_change(comment, now))
    }

    fn record_change(&mut self, comment: Option<String>, now: DateTime<Utc>) -> String {
        let id = aws_id('C');
        self.changes.insert(
            id.clone(),
            Change {
                id: id.clone(),
                submitted_at: now,
                comment,
            },
        );
        id
    }

    /// The change with this id; `/change/` prefixes are accepted.
    pub(crate) fn get_change(&self, id: &str) -> Result<&Change, Route53Error> {
        let bare = id.trim_start_matches("/change/");
        self.changes
            .get(bare)
            .ok_or_else(|| Route53Error::NoSuchChange(bare.to_owned()))
    }
}

impl Change {
    /// `PENDING` until the (simulated) propagation time has passed, then `INSYNC`.
    pub(crate) fn status(&self, now: DateTime<Utc>, t: &Timings) -> &'static str {
        if now >= self.submitted_at + t.dns_propagation() {
            "INSYNC"
        } else {
            "PENDING"
        }
    }
}

impl Zone {
    /// One page of `ListResourceRecordSets` starting at (`name`, `rtype`), and the next start.
    pub(crate) fn list(
        &self,
        start_name: Option<&str>,
        start_type: Option<&str>,
        max_items: usize,
    ) -> (Vec<&RecordSet>, Option<&RecordSet>) {
        let start =
            start_name.map(|n| RecordKey::new(&normalize_name(n), start_type.unwrap_or(""), None));
        let mut iter = self
            .record_sets
            .iter()
            .filter(|(key, _)| start.as_ref().is_none_or(|s| *key >= s))
            .map(|(_, set)| set);
        let page: Vec<&RecordSet> = iter.by_ref().take(max_items).collect();
        (page, iter.next())
    }
}

/// AWS compares TTL and the values as a set.
fn same_values(a: &RecordSet, b: &RecordSet) -> bool {
    let mut av = a.values.clone();
    let mut bv = b.values.clone();
    av.sort();
    bv.sort();
    a.ttl == b.ttl && av == bv && a.weight == b.weight
}

pub(crate) fn name_servers() -> Vec<String> {
    vec![
        "ns-1.awsdns-01.org.".to_owned(),
        "ns-2.awsdns-02.co.uk.".to_owned(),
        "ns-3.awsdns-03.net.".to_owned(),
        "ns-4.awsdns-04.com.".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.to_owned(),
            rtype: "A".to_owned(),
            ttl: Some(300),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            set_identifier: None,
            weight: None,
        }
    }

    #[test]
    fn a_failing_batch_changes_nothing() {
        let mut r = Route53::default();
        let now = Utc::now();
        let (zone, _) = r
            .create_zone("example.com", "ref", None, None, now)
            .unwrap();
        r.change(
            &zone,
            vec![(Action::Create, a("a.example.com", &["1.1.1.1"]))],
            None,
            now,
        )
        .unwrap();
        let err = r
            .change(
                &zone,
                vec![
                    (Action::Create, a("b.example.com", &["2.2.2.2"])),
                    (Action::Create, a("a.example.com", &["1.1.1.1"])),
                ],
                None,
                now,
            )
            .unwrap_err();
        assert_eq!(err.code(), "InvalidChangeBatch");
        assert_eq!(
            r.zone(&zone).unwrap().record_sets.len(),
            3,
            "NS, SOA and a only"
        );
    }

    #[test]
    fn sets_sort_by_reversed_labels() {
        let mut keys = [
            RecordKey::new("b.example.com.", "A", None),
            RecordKey::new("a.b.example.com.", "A", None),
            RecordKey::new("example.com.", "NS", None),
            RecordKey::new("a.example.com.", "A", None),
        ];
        keys.sort();
        let names: Vec<&str> = keys.iter().map(|k| k.reversed_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "com.example",
                "com.example.a",
                "com.example.b",
                "com.example.b.a"
            ]
        );
    }
}
