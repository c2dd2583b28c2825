//! Creating a device as `POST /projects/{id}/devices` does: the request's checks (plan,
//! location, operating system, billing cycle, reservation), the reservation taken
//! (`next-available` or a named one), the addresses given and the device's fault-plan fate.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    CreateDevice, Device, FacilityField, IPV6_BASE, PUBLIC_BASE, PUBLIC_END, PacketCloud,
    PacketError, Status, new_id,
};
use crate::clock::Timings;
use crate::faults::{DeviceFate, DeviceFaults};
use crate::packet::catalog::{self, check_billing_cycle};

impl PacketCloud {
    /// The `/31` of the project's private block a new device takes: the next never used, and
    /// once the block is used up, the lowest whose device is gone (a small block, a /25 of 64
    /// devices, would otherwise run out after a few pools were recreated).
    fn private_index(
        &self,
        project_id: Uuid,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<u32, PacketError> {
        let project = self.project(project_id)?;
        let capacity = project.private_capacity();
        if project.next_private_block < capacity {
            return Ok(project.next_private_block);
        }
        let base = u32::from(project.private_block);
        let held: std::collections::BTreeSet<u32> = self
            .devices
            .values()
            .filter(|d| d.project_id == project_id && d.status(now, t) != Status::Gone)
            .map(|d| u32::from(d.private_block).wrapping_sub(base) / 2)
            .collect();
        (0..capacity).find(|i| !held.contains(i)).ok_or_else(|| {
            PacketError::Unprocessable(vec![format!(
                "project {project_id} has no private IPv4 addresses left in {}/{}",
                project.private_block, project.private_prefix
            )])
        })
    }

    /// Creates a device as `POST /projects/{id}/devices` does.
    pub(crate) fn create_device(
        &mut self,
        project_id: Uuid,
        input: CreateDevice,
        faults: &DeviceFaults,
        roll: f64,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<Uuid, PacketError> {
        self.project(project_id)?;
        let mut errors = Vec::new();
        let plan = match input.plan.as_deref() {
            None | Some("") => {
                errors.push("plan is required".to_owned());
                None
            }
            Some(slug) => {
                let plan = catalog::plan(slug);
                if plan.is_none() {
                    errors.push(format!("plan {slug:?} is not a valid plan"));
                }
                plan
            }
        };
        let os = match input.operating_system.as_deref() {
            None | Some("") => {
                errors.push("operating_system is required".to_owned());
                None
            }
            Some(slug) => {
                let os = catalog::operating_system(slug);
                if os.is_none() {
                    errors.push(format!(
                        "operating_system {slug:?} is not a valid operating system"
                    ));
                }
                os
            }
        };
        if os.is_some_and(|o| o.slug == "custom_ipxe")
            && input.ipxe_script_url.as_deref().unwrap_or("").is_empty()
        {
            errors.push(
                "ipxe_script_url is required when operating_system is custom_ipxe".to_owned(),
            );
        }
        if let Err(e) = check_billing_cycle(input.billing_cycle.as_deref()) {
            errors.push(e);
        }
        let requested_facility = match resolve_location(&input) {
            Ok(f) => f,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let (Some(plan), Some(os), true) = (plan, os, errors.is_empty()) else {
            return Err(PacketError::Unprocessable(errors));
        };

        let reservation = match input.hardware_reservation_id.as_deref() {
            None | Some("") => None,
            Some("next-available") => Some(
                self.next_available(project_id, plan.slug, requested_facility, now, t)
                    .ok_or_else(|| {
                        PacketError::Unprocessable(vec![format!(
                            "no available hardware reservations for plan {} in {}",
                            plan.slug,
                            requested_facility.map_or("any location", |f| f.code)
                        )])
                    })?,
            ),
            Some(id) => Some(self.explicit_reservation(project_id, id, plan.slug, now, t)?),
        };
        let facility = match reservation {
            Some(r) => catalog::facility(&self.reservations[&r].facility),
            None => requested_facility,
        }
        .unwrap_or(&catalog::FACILITIES[0]);
        if let (Some(r), Some(wanted)) = (reservation, requested_facility)
            && wanted.metro != facility.metro
        {
            return Err(PacketError::Unprocessable(vec![format!(
                "hardware reservation {r} is in {}, not in {}",
                facility.code, wanted.code
            )]));
        }

        let public_index = self.next_public_block;
        let public_network = PUBLIC_BASE
            .checked_add(public_index.saturating_mul(2))
            .filter(|n| *n < PUBLIC_END)
            .ok_or_else(|| {
                PacketError::Unprocessable(vec!["no public IPv4 addresses left".to_owned()])
            })?;
        let private_index = self.private_index(project_id, now, t)?;
        let project = self
            .projects
            .get_mut(&project_id)
            .ok_or_else(|| PacketError::NotFound("Not found".to_owned()))?;
        let private_network = u32::from(project.private_block) + private_index * 2;
        project.next_private_block = project.next_private_block.max(private_index + 1);
        self.next_public_block += 1;

        let hostname = input
            .hostname
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("{}-{public_index}", plan.slug.replace('.', "-")));
        let fate = faults
            .by_hostname
            .get(&hostname)
            .copied()
            .unwrap_or_else(|| fate_for_roll(faults, roll));
        let id = new_id();
        let device = Device {
            id,
            project_id,
            hostname,
            plan: plan.slug.to_owned(),
            operating_system: os.slug.to_owned(),
            facility: facility.code.to_owned(),
            tags: input.tags,
            userdata: input.userdata.unwrap_or_default(),
            customdata: input
                .customdata
                .unwrap_or_else(|| Value::Object(Default::default())),
            description: input.description,
            locked: input.locked,
            billing_cycle: input.billing_cycle.unwrap_or_else(|| "hourly".to_owned()),
            ipxe_script_url: input.ipxe_script_url.filter(|u| !u.is_empty()),
            always_pxe: input.always_pxe,
            hardware_reservation_id: reservation,
            public_ipv4: Ipv4Addr::from(public_network + 1),
            public_ipv6: Ipv6Addr::from(IPV6_BASE + u128::from(public_index) * 2 + 1),
            private_ipv4: Ipv4Addr::from(private_network + 1),
            private_block: Ipv4Addr::from(private_network),
            created_at: now,
            updated_at: now,
            fate,
            unknown_state: faults.unknown_state.clone(),
            delete_requested_at: None,
        };
        if let Some(r) = reservation.and_then(|r| self.reservations.get_mut(&r)) {
            r.device_id = Some(id);
        }
        self.devices.insert(id, device);
        Ok(id)
    }

    fn next_available(
        &self,
        project_id: Uuid,
        plan: &str,
        facility: Option<&catalog::Facility>,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Option<Uuid> {
        self.reservations
            .values()
            .filter(|r| r.project_id == project_id && r.plan == plan)
            .filter(|r| {
                facility.is_none_or(|f| {
                    catalog::facility(&r.facility).is_some_and(|rf| rf.metro == f.metro)
                })
            })
            .filter(|r| r.provisionable(&self.devices, now, t))
            .min_by_key(|r| (r.created_at, r.id))
            .map(|r| r.id)
    }

    fn explicit_reservation(
        &self,
        project_id: Uuid,
        id: &str,
        plan: &str,
        now: DateTime<Utc>,
        t: &Timings,
    ) -> Result<Uuid, PacketError> {
        let not_found = || {
            PacketError::Unprocessable(vec![format!(
                "hardware reservation {id} was not found in this project"
            )])
        };
        let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
        let r = self
            .reservations
            .get(&uuid)
            .filter(|r| r.project_id == project_id)
            .ok_or_else(not_found)?;
        if r.plan != plan {
            return Err(PacketError::Unprocessable(vec![format!(
                "hardware reservation {id} is for plan {}, not {plan}",
                r.plan
            )]));
        }
        if !r.provisionable(&self.devices, now, t) {
            return Err(PacketError::Unprocessable(vec![format!(
                "hardware reservation {id} is not provisionable"
            )]));
        }
        Ok(uuid)
    }
}

/// The facility a create request asks for: `None` for "any", an error for none or an unknown one.
fn resolve_location(input: &CreateDevice) -> Result<Option<&'static catalog::Facility>, String> {
    if let Some(field) = &input.facility {
        let codes = match field {
            FacilityField::One(code) => vec![code.clone()],
            FacilityField::Many(codes) => codes.clone(),
        };
        for code in &codes {
            if code == "any" {
                return Ok(None);
            }
            if let Some(f) = catalog::facility(code) {
                return Ok(Some(f));
            }
        }
        return Err(format!("facility {codes:?} is not a valid facility"));
    }
    match input.metro.as_deref() {
        Some("any") => Ok(None),
        Some(code) => catalog::facility_in(code)
            .map(Some)
            .ok_or_else(|| format!("metro {code:?} is not a valid metro")),
        None => Err("metro or facility is required".to_owned()),
    }
}

/// Picks a fate from the shares with a uniform `roll` in `[0, 1)`.
fn fate_for_roll(faults: &DeviceFaults, roll: f64) -> DeviceFate {
    let mut threshold = 0.0;
    for (share, fate) in [
        (faults.failed_share, DeviceFate::Failed),
        (
            faults.forbidden_after_failure_share,
            DeviceFate::FailedThenForbidden,
        ),
        (
            faults.stuck_provisioning_share,
            DeviceFate::StuckProvisioning,
        ),
        (faults.unknown_state_share, DeviceFate::PassesUnknownState),
    ] {
        threshold += share;
        if roll < threshold {
            return fate;
        }
    }
    DeviceFate::Active
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_follow_the_shares_in_order() {
        let faults = DeviceFaults {
            failed_share: 0.25,
            forbidden_after_failure_share: 0.25,
            ..DeviceFaults::default()
        };
        assert_eq!(fate_for_roll(&faults, 0.1), DeviceFate::Failed);
        assert_eq!(fate_for_roll(&faults, 0.3), DeviceFate::FailedThenForbidden);
        assert_eq!(fate_for_roll(&faults, 0.6), DeviceFate::Active);
    }
}
