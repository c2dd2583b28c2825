//! A NIC's MAC address, as machines send it and specs list it.

use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address. Parsed from six hex pairs separated by `:` or `-` (iPXE's
/// `${netX/mac}` and `${mac:hexhyp}`, in either case); shown lowercase with `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr([u8; 6]);

/// A text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a MAC address (six hex pairs separated by ':' or '-')")]
pub struct MacAddrError {
    /// The text, cut to 40 characters: it may come from any client of the boot network.
    pub text: String,
}

impl MacAddr {
    /// The address of these six octets.
    pub fn from_octets(octets: [u8; 6]) -> MacAddr {
        MacAddr(octets)
    }

    /// The address's six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || MacAddrError {
            text: text.chars().take(40).collect(),
        };
        // One separator throughout: `aa:bb-cc...` is a typo, not an address.
        let separator = match text.as_bytes().get(2) {
            Some(b':') => ':',
            Some(b'-') => '-',
            _ => return Err(error()),
        };
        let mut octets = [0u8; 6];
        let mut parts = text.split(separator);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(error)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| error())?;
        }
        match parts.next() {
            Some(_) => Err(error()),
            None => Ok(MacAddr(octets)),
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colons_hyphens_and_case_name_the_same_address() {
        let a: MacAddr = "52:54:00:AB:cd:0F".parse().unwrap();
        let b: MacAddr = "52-54-00-ab-CD-0f".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "52:54:00:ab:cd:0f");
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:11",
            "52:54-00:ab:cd:0f",
            "5254.00ab.cd0f",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:+f",
            "${net0/mac}",
        ] {
            assert!(text.parse::<MacAddr>().is_err(), "{text:?}");
        }
    }
}
