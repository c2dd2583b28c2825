//! The fixed catalog: metros, facilities, plans and operating systems.
//!
//! Slugs are the real ones loko's specs name, so a spec that works here names things that exist
//! on Equinix Metal. Ids are fixed UUIDs so that they are stable across restarts.

use serde_json::{Value, json};

/// A CPU architecture, decided by the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

pub(crate) struct Metro {
    pub(crate) id: &'static str,
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) country: &'static str,
}

pub(crate) struct Facility {
    pub(crate) id: &'static str,
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) metro: &'static str,
}

/// A machine type of the catalog (Packet calls them plans), as `/plans` lists it.
pub(crate) struct PlanEntry {
    pub(crate) id: &'static str,
    pub(crate) slug: &'static str,
    pub(crate) cpu: &'static str,
}

pub(crate) struct OperatingSystem {
    pub(crate) id: &'static str,
    pub(crate) slug: &'static str,
    pub(crate) name: &'static str,
    pub(crate) distro: &'static str,
    pub(crate) version: &'static str,
}

pub(crate) const METROS: &[Metro] = &[
    Metro {
        id: "108b2cfb-246b-45e3-885a-bf3e82fce1a0",
        code: "sv",
        name: "Silicon Valley",
        country: "US",
    },
    Metro {
        id: "d3d6b29f-042d-43b7-b3ce-0bf53d5754ca",
        code: "da",
        name: "Dallas",
        country: "US",
    },
    Metro {
        id: "96a57b6d-c62c-41b5-ab8e-f8d63a7f9887",
        code: "ny",
        name: "New York",
        country: "US",
    },
    Metro {
        id: "5f72cbf6-96e4-44f2-ae60-213888fa2b9a",
        code: "am",
        name: "Amsterdam",
        country: "NL",
    },
];

pub(crate) const FACILITIES: &[Facility] = &[
    Facility {
        id: "2b70eb8f-fa18-47c0-aba7-222a842362fd",
        code: "sv15",
        name: "Silicon Valley, CA",
        metro: "sv",
    },
    Facility {
        id: "3bc8a214-b807-4fc2-9ac7-2e0f8e7b3d2b",
        code: "da11",
        name: "Dallas, TX",
        metro: "da",
    },
    Facility {
        id: "8ea03255-89f9-4e62-9d3f-8817db82ceed",
        code: "ny5",
        name: "New York, NY",
        metro: "ny",
    },
    Facility {
        id: "8e6470b3-b75e-47d1-bb93-45b225750975",
        code: "am6",
        name: "Amsterdam, NL",
        metro: "am",
    },
    // The 2019 facilities of the Lokomotive tutorial and its examples.
    Facility {
        id: "8e6470b3-b75e-47d1-bb93-45b225750976",
        code: "ams1",
        name: "Amsterdam, NL (legacy)",
        metro: "am",
    },
    Facility {
        id: "e1e9c52e-a0bc-4117-b996-0fc94843ea09",
        code: "ewr1",
        name: "Parsippany, NJ (legacy)",
        metro: "ny",
    },
    Facility {
        id: "2b70eb8f-fa18-47c0-aba7-222a842362fe",
        code: "sjc1",
        name: "Sunnyvale, CA (legacy)",
        metro: "sv",
    },
];

pub(crate) const PLANS: &[PlanEntry] = &[
    PlanEntry {
        id: "e69c0169-4726-46ea-98f1-939c9e8a3607",
        slug: "c3.small.x86",
        cpu: "Intel Xeon E-2278G 8-Core Processor @ 3.40GHz",
    },
    PlanEntry {
        id: "a9b5a5b1-5d59-4a4d-9a3e-6ea1e0b8d3c4",
        slug: "c3.medium.x86",
        cpu: "AMD EPYC 7402P 24-Core Processor @ 2.8GHz",
    },
    PlanEntry {
        id: "6d1f1ffa-7912-4b78-b50d-88cc7c8ab40f",
        slug: "m3.large.x86",
        cpu: "AMD EPYC 7502P 32-Core Processor @ 2.5GHz",
    },
    PlanEntry {
        id: "4b8a0ac2-4a8f-4e3a-8f5c-5f0d4bcf1c34",
        slug: "c2.large.arm",
        cpu: "Ampere eMAG 8180 32-core @ 3.0GHz",
    },
    PlanEntry {
        id: "e3a0e0a9-0b4e-4d6e-a7f3-9f3c0a1c2b3d",
        slug: "c3.large.arm64",
        cpu: "Ampere Altra Q80-30 80-core processor @ 2.8GHz",
    },
    // The 2019 plans of the Lokomotive tutorial and its examples.
    PlanEntry {
        id: "e829a3e6-4c5d-4b3e-9ba6-3f1e0c5d7a01",
        slug: "t1.small.x86",
        cpu: "Intel Atom C2550 @ 2.4GHz",
    },
    PlanEntry {
        id: "e829a3e6-4c5d-4b3e-9ba6-3f1e0c5d7a02",
        slug: "c1.small.x86",
        cpu: "Intel Xeon E3-1240 v3 @ 3.40GHz",
    },
    PlanEntry {
        id: "e829a3e6-4c5d-4b3e-9ba6-3f1e0c5d7a03",
        slug: "m1.xlarge.x86",
        cpu: "2 x Intel Xeon E5-2650 v4 @ 2.20GHz",
    },
    PlanEntry {
        id: "e829a3e6-4c5d-4b3e-9ba6-3f1e0c5d7a04",
        slug: "s1.large.x86",
        cpu: "2 x Intel Xeon E5-2620 v4 @ 2.10GHz",
    },
];

pub(crate) const OPERATING_SYSTEMS: &[OperatingSystem] = &[
    OperatingSystem {
        id: "ef8a4b6f-5a36-4ad4-b2b7-c5dc7d8cd6ae",
        slug: "flatcar_stable",
        name: "Flatcar Container Linux (Stable)",
        distro: "flatcar",
        version: "stable",
    },
    OperatingSystem {
        id: "0a0b7d3d-7a2f-4b51-9f2a-3f2e2c1d0e9f",
        slug: "flatcar_beta",
        name: "Flatcar Container Linux (Beta)",
        distro: "flatcar",
        version: "beta",
    },
    OperatingSystem {
        id: "5b4c3d2e-1f0a-4b9c-8d7e-6f5a4b3c2d1e",
        slug: "flatcar_alpha",
        name: "Flatcar Container Linux (Alpha)",
        distro: "flatcar",
        version: "alpha",
    },
    OperatingSystem {
        id: "9c1e2d3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
        slug: "custom_ipxe",
        name: "Custom iPXE",
        distro: "custom_ipxe",
        version: "1",
    },
    OperatingSystem {
        id: "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b",
        slug: "ubuntu_22_04",
        name: "Ubuntu 22.04 LTS",
        distro: "ubuntu",
        version: "22.04",
    },
];

impl PlanEntry {
    /// `*.arm` and `*.arm64` plans are ARM machines; everything else is x86-64.
    pub(crate) fn arch(&self) -> Arch {
        if self.slug.ends_with(".arm") || self.slug.ends_with(".arm64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let line = self.slug.split('.').next().unwrap_or(self.slug);
        json!({
            "id": self.id,
            "slug": self.slug,
            "name": self.slug,
            "class": self.slug,
            "line": "baremetal",
            "description": format!("{} ({line}) {}", self.slug, self.cpu),
            "legacy": false,
            "type": "standard",
            "categories": ["compute"],
            "deployment_types": ["on_demand", "spot_market"],
            "specs": {"cpus": [{"count": 1, "type": self.cpu}]},
            "available_in_metros": METROS.iter().map(|m| json!({"href": format!("/metal/v1/locations/metros/{}", m.id)})).collect::<Vec<_>>(),
            "available_in": FACILITIES.iter().map(|f| json!({"href": format!("/metal/v1/facilities/{}", f.id)})).collect::<Vec<_>>(),
        })
    }
}

impl Metro {
    pub(crate) fn to_json(&self) -> Value {
        json!({"id": self.id, "code": self.code, "name": self.name, "country": self.country})
    }
}

impl Facility {
    pub(crate) fn metro(&self) -> &'static Metro {
        metro(self.metro).unwrap_or(&METROS[0])
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "features": ["baremetal", "backend_transfer", "global_ipv4"],
            "ip_ranges": [],
            "metro": self.metro().to_json(),
        })
    }
}

impl OperatingSystem {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "distro": self.distro,
            "version": self.version,
            "preinstallable": false,
            "licensed": false,
            "provisionable_on": PLANS.iter().map(|p| p.slug).collect::<Vec<_>>(),
        })
    }
}

pub(crate) fn metro(code: &str) -> Option<&'static Metro> {
    METROS.iter().find(|m| m.code == code)
}

pub(crate) fn facility(code: &str) -> Option<&'static Facility> {
    FACILITIES.iter().find(|f| f.code == code)
}

/// The first facility of a metro: where devices created "in a metro" land.
pub(crate) fn facility_in(metro: &str) -> Option<&'static Facility> {
    FACILITIES.iter().find(|f| f.metro == metro)
}

pub(crate) fn plan(slug: &str) -> Option<&'static PlanEntry> {
    PLANS.iter().find(|p| p.slug == slug)
}

pub(crate) fn operating_system(slug: &str) -> Option<&'static OperatingSystem> {
    OPERATING_SYSTEMS.iter().find(|o| o.slug == slug)
}

/// The billing cycles the API documents.
pub(crate) fn check_billing_cycle(cycle: Option<&str>) -> Result<(), String> {
    const CYCLES: [&str; 4] = ["hourly", "daily", "monthly", "yearly"];
    match cycle {
        Some(c) if !CYCLES.contains(&c) => Err(format!(
            "billing_cycle {c:?} is not one of {}",
            CYCLES.join(", ")
        )),
        _ => Ok(()),
    }
}
