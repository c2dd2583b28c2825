//! A node's host firewall as the kernel applies it: the `filter` table's `INPUT` chain of the
//! `iptables-restore` file Flatcar's `iptables-restore.service` loads at boot
//! (`/var/lib/iptables/rules-save`), evaluated for a new connection to the node.
//!
//! The evaluation is netfilter's (iptables(8), iptables-extensions(8)): rules in order, the
//! first whose every match holds decides by its target; a jump to a user chain evaluates that
//! chain and comes back on `RETURN` or at its end; the built-in chain's policy decides when no
//! rule did. Matches read: `-i` (with the `+` wildcard), `-s`/`--source` (comma lists), `-p`,
//! `--dport`/`--dports` (of `-m tcp`, `-m udp`, `-m multiport`), `--ctstate`/`--state` (a new
//! connection is `NEW`). A rule with a match this reader does not know makes the whole file
//! unreadable rather than guessed at: the judge then says so instead of deciding.
//!
//! The file's syntax itself is checked by the real `iptables-restore --test` in loko's tests
//! (`steps/tests/it/node_artifacts.rs`); this module only decides what the loaded rules do.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::ignition::NodeIgnition;

/// Where Flatcar's `iptables-restore.service` reads the IPv4 rules it loads at boot.
pub const RULES_V4: &str = "/var/lib/iptables/rules-save";
/// The unit that loads them (enabled, or the node boots with no firewall).
pub const RESTORE_UNIT: &str = "iptables-restore.service";

/// The `filter` table of a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    chains: BTreeMap<String, Chain>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Chain {
    /// A built-in chain's policy (`ACCEPT`, `DROP`); `None` for a user chain.
    policy: Option<String>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rule {
    text: String,
    interface: Option<String>,
    sources: Vec<(Ipv4Addr, u8)>,
    protocol: Option<String>,
    ports: Vec<(u16, u16)>,
    states: Vec<String>,
    target: String,
}

/// A new connection (or datagram) arriving at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The interface it arrives on (`bond0` for another machine's traffic).
    pub interface: &'a str,
    pub source: Ipv4Addr,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: &'a str,
    pub port: u16,
}

/// What the firewall does with a packet, and which rule (or policy) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept(String),
    Drop(String),
}

/// The firewall a node boots with, from its Ignition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeFirewall {
    /// `iptables-restore.service` is not enabled, or has no file to load: nothing filters.
    #[default]
    Open,
    /// The rules it loads.
    Rules(Firewall),
    /// Rules this reader cannot judge.
    Unreadable(FirewallError),
}

impl NodeFirewall {
    /// What a node booting `ignition` filters with: Flatcar's `iptables-restore.service` loads
    /// [`RULES_V4`] when the Ignition enables it.
    pub fn of(ignition: &NodeIgnition) -> NodeFirewall {
        let enabled = ignition
            .units
            .iter()
            .any(|unit| unit.name == RESTORE_UNIT && unit.enabled);
        match ignition.file(RULES_V4) {
            Some(file) if enabled => {
                match Firewall::parse(&String::from_utf8_lossy(&file.contents)) {
                    Ok(firewall) => NodeFirewall::Rules(firewall),
                    Err(error) => NodeFirewall::Unreadable(error),
                }
            }
            _ => NodeFirewall::Open,
        }
    }

    /// Whether a new connection gets in: `Err` names the rule (or policy) that drops it, or
    /// why the rules cannot be judged.
    pub fn admits(&self, packet: &Packet<'_>) -> Result<(), String> {
        match self {
            NodeFirewall::Open => Ok(()),
            NodeFirewall::Rules(firewall) => match firewall.input(packet) {
                Verdict::Accept(_) => Ok(()),
                Verdict::Drop(rule) => Err(rule),
            },
            NodeFirewall::Unreadable(error) => Err(error.to_string()),
        }
    }
}

/// Why a rules file cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{RULES_V4} line {line}: {reason}")]
pub struct FirewallError {
    pub line: usize,
    pub reason: String,
}

impl Firewall {
    /// The `filter` table of `text` (other tables are skipped: they do not filter).
    pub fn parse(text: &str) -> Result<Firewall, FirewallError> {
        let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
        let mut in_filter = false;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let error = |reason: String| FirewallError {
                line: index + 1,
                reason,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(table) = line.strip_prefix('*') {
                in_filter = table == "filter";
                continue;
            }
            if !in_filter || line == "COMMIT" {
                continue;
            }
            if let Some(declaration) = line.strip_prefix(':') {
                let mut words = declaration.split_whitespace();
                let name = words.next().unwrap_or_default().to_owned();
                let policy = words.next().filter(|p| *p != "-").map(str::to_owned);
                chains.entry(name).or_default().policy = policy;
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["-A", chain, rest @ ..] = words.as_slice() else {
                return Err(error(format!("not a rule of the filter table: {line}")));
            };
            let rule = Rule::parse(rest, line).map_err(error)?;
            chains
                .entry((*chain).to_owned())
                .or_default()
                .rules
                .push(rule);
        }
        Ok(Firewall { chains })
    }

    /// What the `INPUT` chain does with a new connection.
    pub fn input(&self, packet: &Packet<'_>) -> Verdict {
        match self.chain("INPUT", packet, 0) {
            Some(verdict) => verdict,
            None => match self.chains.get("INPUT").and_then(|c| c.policy.as_deref()) {
                Some("DROP" | "REJECT") => {
                    Verdict::Drop("the INPUT chain's policy DROP".to_owned())
                }
                // No INPUT chain, or its policy ACCEPT: nothing filters.
                _ => Verdict::Accept("the INPUT chain's policy ACCEPT".to_owned()),
            },
        }
    }

    /// The verdict of chain `name`, or `None` when it ends (or returns) without one.
    fn chain(&self, name: &str, packet: &Packet<'_>, depth: usize) -> Option<Verdict> {
        // The kernel refuses loops when the rules are loaded; a bound keeps this total anyway.
        if depth > 16 {
            return Some(Verdict::Drop(format!(
                "chain {name}: jumps nested too deep"
            )));
        }
        for rule in &self.chains.get(name)?.rules {
            if !rule.matches(packet) {
                continue;
            }
            match rule.target.as_str() {
                "ACCEPT" => return Some(Verdict::Accept(rule.text.clone())),
                "DROP" | "REJECT" => return Some(Verdict::Drop(rule.text.clone())),
                "RETURN" => return None,
                // Non-terminating targets: the next rule is evaluated.
                "LOG" | "" => {}
                user => {
                    if let Some(verdict) = self.chain(user, packet, depth + 1) {
                        return Some(verdict);
                    }
                }
            }
        }
        None
    }
}

impl Rule {
    fn parse(words: &[&str], text: &str) -> Result<Rule, String> {
        let mut rule = Rule {
            text: text.to_owned(),
            ..Rule::default()
        };
        let mut i = 0;
        let value = |i: usize| {
            words
                .get(i + 1)
                .copied()
                .ok_or_else(|| format!("{} without a value", words[i]))
        };
        while i < words.len() {
            match words[i] {
                "!" => return Err(format!("a negated match is not read: {text}")),
                "-i" | "--in-interface" => rule.interface = Some(value(i)?.to_owned()),
                "-s" | "--source" => {
                    for source in value(i)?.split(',') {
                        rule.sources.push(cidr(source)?);
                    }
                }
                "-p" | "--protocol" => rule.protocol = Some(value(i)?.to_ascii_lowercase()),
                // Loading a match module changes nothing by itself; its options below do.
                "-m" | "--match" => match value(i)? {
                    "tcp" | "udp" | "multiport" | "conntrack" | "state" | "icmp" | "comment" => {}
                    other => return Err(format!("match module {other} is not read: {text}")),
                },
                "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                    for range in value(i)?.split(',') {
                        rule.ports.push(port_range(range)?);
                    }
                }
                "--ctstate" | "--state" => {
                    rule.states = value(i)?.split(',').map(str::to_owned).collect();
                }
                "--comment" => {}
                "-j" | "--jump" => rule.target = value(i)?.to_owned(),
                other => return Err(format!("option {other} is not read: {text}")),
            }
            i += 2;
        }
        Ok(rule)
    }

    fn matches(&self, packet: &Packet<'_>) -> bool {
        let interface =
            self.interface
                .as_deref()
                .is_none_or(|wanted| match wanted.strip_suffix('+') {
                    Some(prefix) => packet.interface.starts_with(prefix),
                    None => packet.interface == wanted,
                });
        let source = self.sources.is_empty()
            || self.sources.iter().any(|(network, prefix)| {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(packet.source) & mask == u32::from(*network) & mask
            });
        let protocol = self
            .protocol
            .as_deref()
            .is_none_or(|p| p == "all" || p == packet.protocol);
        let port = self.ports.is_empty()
            || self
                .ports
                .iter()
                .any(|(low, high)| (*low..=*high).contains(&packet.port));
        // A new connection is in state NEW, never RELATED or ESTABLISHED.
        let state = self.states.is_empty() || self.states.iter().any(|s| s == "NEW");
        interface && source && protocol && port && state
    }
}

fn cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (address, prefix) = text.split_once('/').unwrap_or((text, "32"));
    let address = address
        .parse()
        .map_err(|_| format!("{text} is not an IPv4 address or network"))?;
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("{text} has no valid prefix length"))?;
    Ok((address, prefix))
}

fn port_range(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{text} is not a port"))
    };
    match text.split_once(':') {
        Some((low, high)) => Ok((port(low)?, port(high)?)),
        None => port(text).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CLUSTER - [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p icmp -j ACCEPT\n# SSH\n-A INPUT -p tcp -s 0.0.0.0/0 -m multiport --dports 22 -j ACCEPT\n-A INPUT -s 10.128.156.0/25,10.2.0.0/16 -j CLUSTER\n-A CLUSTER -p tcp -m multiport --dports 179,2379:2381 -j ACCEPT\nCOMMIT\n";

    fn tcp(source: [u8; 4], port: u16) -> Packet<'static> {
        Packet {
            interface: "bond0",
            source: Ipv4Addr::from(source),
            protocol: "tcp",
            port,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_the_policy_when_none_does() {
        let firewall = Firewall::parse(RULES).unwrap();
        assert!(matches!(
            firewall.input(&tcp([1, 2, 3, 4], 22)),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            firewall.input(&tcp([10, 128, 156, 3], 179)),
            Verdict::Accept(rule) if rule.contains("CLUSTER")
        ));
        assert!(matches!(
            firewall.input(&tcp([10, 128, 156, 3], 2380)),
            Verdict::Accept(_)
        ));
        assert_eq!(
            firewall.input(&tcp([10, 64, 0, 3], 179)),
            Verdict::Drop("the INPUT chain's policy DROP".to_owned())
        );
        let mut lo = tcp([10, 64, 0, 3], 179);
        lo.interface = "lo";
        assert!(matches!(firewall.input(&lo), Verdict::Accept(_)));
    }

    #[test]
    fn what_it_cannot_read_is_an_error_not_a_guess() {
        let text = "*filter\n:INPUT DROP [0:0]\n-A INPUT ! -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n";
        let error = Firewall::parse(text).unwrap_err();
        assert_eq!(error.line, 3);
        let text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -m recent --rcheck -j ACCEPT\nCOMMIT\n";
        assert!(Firewall::parse(text).unwrap_err().reason.contains("recent"));
    }
}
