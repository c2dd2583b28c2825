//! The spec's names and identifiers: strings that passed their check, each its own type so that
//! a pool name is never taken for a cluster name. Both the spec and the rack's machines use them,
//! so they live below both.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub(crate) String);

        impl $name {
            /// The value as written in the spec.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// A cluster name: a DNS label, the prefix of every hostname and DNS record of the cluster.
    ClusterName
);
string_newtype!(
    /// A worker pool name: a DNS label, part of the pool's hostnames.
    PoolName
);
string_newtype!(
    /// A Packet plan (a machine type), like `t1.small.x86` or `c2.large.arm`. Named
    /// `MachinePlan` so that it is not taken for a plan of changes (`loko plan`) or the DAG.
    MachinePlan
);
string_newtype!(
    /// A Packet facility code, like `ams1`.
    Facility
);
string_newtype!(
    /// A Route53 hosted zone name, without the trailing dot (`packet.example.com`).
    DnsZone
);
string_newtype!(
    /// A Route53 hosted zone id (`Z3PAABBCFAKEC0`).
    DnsZoneId
);
string_newtype!(
    /// The address every client reaches the cluster's API at when the spec names it itself
    /// (`api_address`): a DNS name the user's own DNS serves, or an IPv4 address (a VIP, a load
    /// balancer), lowercase, without a port.
    ApiAddress
);

impl ApiAddress {
    /// The address when it is an IPv4 address rather than a name: a certificate names it as an
    /// IP address, and a client dials it as it is.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.0.parse().ok()
    }
}

impl DnsZone {
    /// No zone (see [`DnsZone::is_unset`]).
    pub(crate) fn unset() -> DnsZone {
        DnsZone(String::new())
    }

    /// Whether this is a zone at all: a cluster whose spec names its API address itself has
    /// none (see `ClusterSettings::route53`).
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }
}

impl DnsZoneId {
    /// No zone id (see [`DnsZone::is_unset`]).
    pub(crate) fn unset() -> DnsZoneId {
        DnsZoneId(String::new())
    }

    /// Whether this is a zone id at all (see [`DnsZone::is_unset`]).
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }
}

string_newtype!(
    /// A Packet project id (a UUID).
    ProjectId
);
string_newtype!(
    /// A machine's name in a rack (`provider: redfish`): a DNS label, unique among the machines.
    MachineName
);
string_newtype!(
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`) that has been parsed.
    SshPublicKey
);

impl SshPublicKey {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`), checked like a spec's.
    /// The error never echoes the text: a pasted private key must not end up in logs.
    pub fn parse(line: &str) -> Result<SshPublicKey, String> {
        let line = line.trim();
        if line.contains("PRIVATE KEY") {
            return Err("this is a private key, not a public key".into());
        }
        ssh_key::PublicKey::from_openssh(line)
            .map(|_| SshPublicKey(line.to_owned()))
            .map_err(|e| format!("not an OpenSSH public key ({e})"))
    }
}
