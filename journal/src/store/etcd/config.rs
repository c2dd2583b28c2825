//! Where an etcd journal is (`etcd://HOST:PORT[,HOST:PORT...]/PREFIX`, with TLS files and the
//! lease's TTL), the keys under its prefix, and who holds its lock.

use std::path::PathBuf;
use std::time::Duration;

use super::limits::DEFAULT_TTL;

/// How to reach a cluster's journal in etcd: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` of each member; requests go to the first that answers.
    pub endpoints: Vec<String>,
    /// The journal's name under `/loko/v1/`.
    pub prefix: String,
    /// TLS files; plain HTTP without them.
    pub tls: Option<EtcdTls>,
    /// The lease's time to live.
    pub ttl: Duration,
}

/// PEM files for TLS to etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificate.
    pub ca: Option<PathBuf>,
    /// A client certificate (with `key`), when etcd asks for one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

impl EtcdConfig {
    /// Parses `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=SECONDS]`; the error says what is
    /// wrong. `ttl` sets the lease (default 20 s): longer for an etcd far away, shorter to
    /// free a crashed holder's journal sooner.
    pub fn parse(url: &str) -> Result<EtcdConfig, String> {
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{url:?} does not start with etcd://"))?;
        let (rest, ttl) = match rest.split_once('?') {
            None => (rest, DEFAULT_TTL),
            Some((rest, query)) => {
                let secs = query
                    .strip_prefix("ttl=")
                    .and_then(|t| t.parse::<u64>().ok())
                    .filter(|t| (2..=3600).contains(t))
                    .ok_or_else(|| {
                        format!("{url:?}: the only option is ttl=SECONDS, from 2 to 3600")
                    })?;
                (rest, Duration::from_secs(secs))
            }
        };
        let (hosts, prefix) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url:?} has no /PREFIX after its endpoints"))?;
        let endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for e in &endpoints {
            let port = e.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p > 0) {
                return Err(format!("{url:?}: endpoint {e:?} is not HOST:PORT"));
            }
        }
        let prefix = prefix.trim_end_matches('/');
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if prefix.is_empty()
            || prefix
                .split('/')
                .any(|part| part.is_empty() || part == ".." || !part.chars().all(valid))
        {
            return Err(format!(
                "{url:?}: the prefix {prefix:?} must be one or more names of letters, digits, '-', '_' and '.', separated by '/'"
            ));
        }
        Ok(EtcdConfig {
            endpoints,
            prefix: prefix.to_owned(),
            tls: None,
            ttl,
        })
    }

    /// The URL, as the user wrote it (normalized).
    pub fn url(&self) -> String {
        let url = format!("etcd://{}/{}", self.endpoints.join(","), self.prefix);
        if self.ttl == DEFAULT_TTL {
            url
        } else {
            format!("{url}?ttl={}", self.ttl.as_secs())
        }
    }

    pub(super) fn key(&self, name: &[u8]) -> Vec<u8> {
        let mut k = format!("/loko/v1/{}/", self.prefix).into_bytes();
        k.extend_from_slice(name);
        k
    }
}

/// Who holds an etcd journal's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// `pid N on host, since T`.
    pub holder: String,
    /// The lease the lock is bound to.
    pub lease: i64,
    /// Seconds the lease has left unless renewed; `None` when etcd no longer knows it.
    pub ttl_left: Option<i64>,
    /// The lock's fence (its creation revision).
    pub fence: u64,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; lease {:x}", self.holder, self.lease)?;
        match self.ttl_left {
            Some(s) => write!(f, ", expires in {s}s unless renewed"),
            None => write!(f, ", expired"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_what_is_wrong() {
        let c = EtcdConfig::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/team/supernova").unwrap();
        assert_eq!(c.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(c.prefix, "team/supernova");
        assert_eq!(c.key(b"lock"), b"/loko/v1/team/supernova/lock");
        assert_eq!(c.url(), "etcd://10.0.0.1:2379,10.0.0.2:2379/team/supernova");
        assert_eq!(c.ttl, DEFAULT_TTL);
        let c = EtcdConfig::parse("etcd://h:1/x?ttl=5").unwrap();
        assert_eq!((c.prefix.as_str(), c.ttl), ("x", Duration::from_secs(5)));
        assert_eq!(c.url(), "etcd://h:1/x?ttl=5");
        for (bad, says) in [
            ("http://h:1/x", "does not start with etcd://"),
            ("etcd://h:1", "no /PREFIX"),
            ("etcd://h/x", "is not HOST:PORT"),
            ("etcd://h:0/x", "is not HOST:PORT"),
            ("etcd://h:1/", "the prefix"),
            ("etcd://h:1/a/../b", "the prefix"),
            ("etcd://h:1/a b", "the prefix"),
            ("etcd://h:1/a?ttl=1", "ttl=SECONDS"),
            ("etcd://h:1/a?lease=5", "ttl=SECONDS"),
        ] {
            let err = EtcdConfig::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
