//! Which hosts a serving certificate is valid for, as a Go TLS client decides it: the
//! apiserver's clients (kubelets, kubectl) and the apiserver as etcd's client check the host
//! they dial against the certificate the server presents (`crypto/x509/verify.go`,
//! `Certificate.VerifyHostname`): an IP address against the IP address SANs only, a name
//! against the DNS name SANs only (case-insensitively, a `*` standing for one whole leftmost
//! label). A refusal reads as Go's `HostnameError` does.

use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use x509_parser::extensions::GeneralName;

/// The SANs of a serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingNames {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl ServingNames {
    /// The SANs of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<ServingNames, String> {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("not X.509: {e}"))?;
        let mut names = ServingNames {
            dns: Vec::new(),
            ips: Vec::new(),
        };
        let sans = parsed.subject_alternative_name().ok().flatten();
        for name in sans.iter().flat_map(|san| san.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => names.dns.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
                    Ok(v4) => names.ips.push(IpAddr::from(v4)),
                    Err(_) => {
                        if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                            names.ips.push(IpAddr::from(v6));
                        }
                    }
                },
                _ => {}
            }
        }
        Ok(names)
    }

    /// The SANs of the first certificate of a PEM file.
    pub fn from_pem_file(path: &Path) -> Result<ServingNames, String> {
        let der =
            CertificateDer::from_pem_file(path).map_err(|e| format!("no PEM certificate: {e}"))?;
        ServingNames::from_der(der.as_ref())
    }

    /// Whether it names nothing a client could check.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    /// Whether a client dialing `host` accepts the certificate (Go's `VerifyHostname`).
    pub fn covers(&self, host: &str) -> bool {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = host.to_ascii_lowercase();
        self.dns
            .iter()
            .any(|pattern| matches_name(&pattern.to_ascii_lowercase(), &host))
    }

    /// Go's refusal of `host`: `x509: certificate is valid for a, b, not host`.
    pub fn refusal(&self, host: &str) -> String {
        let valid: Vec<String> = match host.parse::<IpAddr>() {
            Ok(_) => self.ips.iter().map(ToString::to_string).collect(),
            Err(_) => self.dns.clone(),
        };
        match valid.is_empty() {
            true => {
                format!("x509: certificate is not valid for any names, but wanted to match {host}")
            }
            false => format!(
                "x509: certificate is valid for {}, not {host}",
                valid.join(", ")
            ),
        }
    }
}

/// Why a client of every URL of `urls` (comma-separated, as `--etcd-servers`) refuses the
/// server certificate `names` describes: the first URL whose host it does not cover, in the
/// words of etcd's client (gRPC's handshake over Go's TLS), or `None`.
pub fn refused_url(urls: &str, names: &ServingNames) -> Option<String> {
    urls.split(',').map(str::trim).find_map(|url| {
        let host = url_host(url)?;
        (!names.covers(host)).then(|| {
            format!(
                "{url}: transport: authentication handshake failed: tls: failed to verify \
                 certificate: {}",
                names.refusal(host)
            )
        })
    })
}

/// A DNS SAN against a host name, both lowercase: equal, or a `*.` pattern whose `*` is one
/// whole label (`matchHostnames`).
fn matches_name(pattern: &str, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

/// The host of an `https://host:port/path` URL (a kubeconfig's `server:`, an
/// `--etcd-servers` entry).
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dns: &[&str], ips: &[&str]) -> ServingNames {
        ServingNames {
            dns: dns.iter().map(|d| (*d).to_owned()).collect(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn an_address_is_checked_against_the_ip_sans_only() {
        let sans = names(&["10.0.1.100", "k8s.example.net"], &["10.3.0.1"]);
        assert!(sans.covers("10.3.0.1"));
        // A DNS SAN spelling an address is no IP SAN (Go ignores it for an IP host).
        assert!(!sans.covers("10.0.1.100"));
        assert_eq!(
            sans.refusal("10.0.1.100"),
            "x509: certificate is valid for 10.3.0.1, not 10.0.1.100"
        );
    }

    #[test]
    fn a_name_is_checked_against_the_dns_sans_with_one_label_wildcards() {
        let sans = names(&["K8s.Example.net", "*.etcd.example.net"], &["10.3.0.1"]);
        assert!(sans.covers("k8s.example.net"));
        assert!(sans.covers("a.etcd.example.net"));
        assert!(!sans.covers("a.b.etcd.example.net"));
        assert!(!sans.covers("etcd.example.net"));
        assert_eq!(
            sans.refusal("api.example.net"),
            "x509: certificate is valid for K8s.Example.net, *.etcd.example.net, not api.example.net"
        );
    }

    #[test]
    fn an_etcd_url_the_certificate_does_not_name_is_refused() {
        let sans = names(&["c-etcd0.example.com", "localhost"], &["127.0.0.1"]);
        assert_eq!(refused_url("https://c-etcd0.example.com:2379", &sans), None);
        let refusal = refused_url(
            "https://c-etcd0.example.com:2379,https://10.10.0.12:2379",
            &sans,
        );
        assert_eq!(
            refusal.as_deref(),
            Some(
                "https://10.10.0.12:2379: transport: authentication handshake failed: tls: \
                 failed to verify certificate: x509: certificate is valid for 127.0.0.1, not \
                 10.10.0.12"
            )
        );
    }

    #[test]
    fn url_host_strips_scheme_port_and_path() {
        assert_eq!(
            url_host("https://c.example.com:6443"),
            Some("c.example.com")
        );
        assert_eq!(url_host("https://c.example.com/"), Some("c.example.com"));
        assert_eq!(url_host("https://10.10.0.11:2379"), Some("10.10.0.11"));
        assert_eq!(url_host("https://:6443"), None);
    }
}
