//! Hardware reservations of the cluster's controllers and of each pool: `reservation_ids` keys
//! checked against the node count, ids in Packet's full form.

use std::collections::BTreeMap;

use crate::document::{Errors, Fields, Node};
use crate::spec::{HardwareReservation, Reservations, Role};

/// `reservation_ids` and `reservation_ids_default` of the cluster (keys `controller-<i>`) or of a
/// pool (keys `worker-<i>`), with keys checked against the number of nodes.
pub(super) fn reservations(
    f: &mut Fields<'_, '_>,
    role: Role,
    count: Option<u32>,
    errors: &mut Errors,
) -> Option<Reservations> {
    let mut ok = true;
    let mut reservation_ids = BTreeMap::new();
    if let Some(n) = f.optional("reservation_ids") {
        match n.entries(errors) {
            Some(entries) => {
                for (key, key_node, value) in entries {
                    let index = key
                        .strip_prefix(role.key_prefix())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .and_then(|i| i.parse::<u32>().ok())
                        .filter(|i| i.to_string() == key[role.key_prefix().len() + 1..]);
                    let other = match role {
                        Role::Controller => "worker",
                        Role::Worker => "controller",
                    };
                    match index {
                        None if key.starts_with(other) => {
                            let place = match role {
                                Role::Controller => "a worker pool's reservation_ids",
                                Role::Worker => "the cluster's reservation_ids (top level)",
                            };
                            errors.at(
                                &key_node,
                                format!(
                                    "{key:?} is not a {} node; it belongs in {place}",
                                    role.key_prefix()
                                ),
                            );
                            ok = false;
                        }
                        None => {
                            errors.at(
                                &key_node,
                                format!(
                                    "{key:?} does not name a node; keys are {}-<index> like {}-0",
                                    role.key_prefix(),
                                    role.key_prefix()
                                ),
                            );
                            ok = false;
                        }
                        Some(i) if count.is_some_and(|c| i >= c) => {
                            let c = count.unwrap_or_default();
                            let (field, p) = match role {
                                Role::Controller => ("controller_count", role.key_prefix()),
                                Role::Worker => ("count", role.key_prefix()),
                            };
                            let keys = if c == 0 {
                                "no node has a reservation".to_owned()
                            } else {
                                format!("the keys are {p}-0 to {p}-{}", c - 1)
                            };
                            errors.at(
                                &key_node,
                                format!("{key:?} names no node: {field} is {c}, so {keys}"),
                            );
                            ok = false;
                        }
                        Some(_) => match reservation(&value, errors, false) {
                            Some(r) => {
                                reservation_ids.insert(key, r);
                            }
                            None => ok = false,
                        },
                    }
                }
            }
            None => ok = false,
        }
    }
    let reservation_ids_default = match f.optional("reservation_ids_default") {
        Some(n) => reservation(&n, errors, true),
        None => Some(HardwareReservation::None),
    };
    (ok && count.is_some()).then_some(())?;
    Some(Reservations {
        reservation_ids,
        reservation_ids_default: reservation_ids_default?,
    })
}

pub(super) fn reservation(
    n: &Node<'_, '_>,
    errors: &mut Errors,
    allow_empty: bool,
) -> Option<HardwareReservation> {
    let text = n.string(errors)?;
    if text == "next-available" {
        Some(HardwareReservation::NextAvailable)
    } else if text.is_empty() && allow_empty {
        Some(HardwareReservation::None)
    } else if is_full_uuid(&text) {
        Some(HardwareReservation::Id(text.to_ascii_lowercase()))
    } else {
        errors.at(n, format!("{text:?} is not a hardware reservation id: write its full UUID (like 55555f20-a1fb-55bd-1e11-11af11d11111) or \"next-available\""));
        None
    }
}

/// A UUID in its full hyphenated form, as Packet shows ids; a shortened id is a likely paste error.
pub(super) fn is_full_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uuids_only() {
        assert!(is_full_uuid("55555f20-a1fb-55bd-1e11-11af11d11111"));
        assert!(!is_full_uuid("55555f20a1fb55bd1e1111af11d11111"));
        assert!(!is_full_uuid("55555f20"));
    }
}
