//! What every HTTP client of loko (Packet, Redfish) reads the same way: `Retry-After`, a failed
//! exchange, the start of an unexpected body.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The start of a body, for a message.
pub(crate) fn body_start(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_owned()
}

/// A `Retry-After` header: seconds, or an HTTP-date (`None` when absent, unparseable or past).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .ok()
        .or_else(|| {
            let when = httpdate_seconds(value)?;
            Some(Duration::from_secs(when))
        })
}

/// Seconds from now until an HTTP-date `Retry-After`; `None` when unparseable or past.
fn httpdate_seconds(value: &str) -> Option<u64> {
    let when = humantime::parse_rfc3339_weak(value).ok().or_else(|| {
        // RFC 7231 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
        let rest = value.split_once(", ")?.1.strip_suffix(" GMT")?;
        let mut parts = rest.split(' ');
        let (day, month, year, time) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS.iter().position(|m| *m == month)? + 1;
        humantime::parse_rfc3339(&format!("{year}-{month:02}-{day:0>2}T{time}Z")).ok()
    })?;
    when.duration_since(std::time::SystemTime::now())
        .ok()
        .map(|d| d.as_secs().max(1))
}

/// Why a request did not complete, for an error message (never a header: no credential).
pub(crate) fn transport_detail(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // reqwest's Display includes the URL, never headers, so the token cannot appear.
    format!("{what}: {}", crate::error_chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        let future = std::time::SystemTime::now() + Duration::from_secs(120);
        let date = humantime::format_rfc3339_seconds(future).to_string();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let got = parse_retry_after(&h).unwrap();
        assert!(
            got >= Duration::from_secs(100) && got <= Duration::from_secs(121),
            "{got:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(parse_retry_after(&h), None, "a past date means no wait");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }
}
