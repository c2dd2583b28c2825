//! `boot_server` of a `provider: redfish` spec: where loko serves the network boot during a run.

use std::net::SocketAddr;

use super::values::{http_url, one_of};
use crate::document::{Errors, Node};
use crate::rack::{BootServerSettings, DEFAULT_FLATCAR_MIRROR, RetirePolicy};

/// Reads `boot_server`: `listen` required, `url` required when `listen` is every address,
/// `mirror` an http(s) URL (Flatcar's stable release by default), `kernel_args` strings,
/// `retire` `power-off` (the default) or `wipe`.
pub(super) fn boot_server(n: &Node<'_, '_>, errors: &mut Errors) -> Option<BootServerSettings> {
    let mut f = n.fields(errors)?;
    let listen = f.required(errors, "listen").and_then(|at| {
        let text = at.string(errors)?;
        let addr = text
            .parse::<SocketAddr>()
            .map_err(|_| {
                errors.at(
                    &at,
                    format!("{text:?} is not an address and port (like 0.0.0.0:8080)"),
                );
            })
            .ok()?;
        Some((addr, at))
    });
    let url = match f.optional("url") {
        Some(at) => at
            .string(errors)
            .and_then(|text| http_url(&at, &text, errors))
            .map(Some),
        None => Some(None),
    };
    let mirror = match f.optional("mirror") {
        Some(at) => at
            .string(errors)
            .and_then(|text| http_url(&at, &text, errors)),
        None => Some(DEFAULT_FLATCAR_MIRROR.to_owned()),
    };
    let kernel_args = match f.optional("kernel_args") {
        Some(at) => at.list(errors).and_then(|items| {
            items
                .iter()
                .map(|item| {
                    let text = item.string(errors)?;
                    if text.is_empty() || text.chars().any(char::is_whitespace) {
                        errors.at(item, format!("{text:?} is not one kernel argument (no spaces; one list item each)"));
                        return None;
                    }
                    Some(text)
                })
                .collect::<Option<Vec<_>>>()
        }),
        None => Some(Vec::new()),
    };
    let retire = match f.optional("retire") {
        Some(at) => one_of(&at, errors, RetirePolicy::NAMES, RetirePolicy::from_name),
        None => Some(RetirePolicy::default()),
    };
    f.finish(errors);
    let ((listen, at), url) = (listen?, url?);
    if listen.ip().is_unspecified() && url.is_none() {
        errors.at(
            &at,
            format!("listen {listen} is every address: add url, the server's URL as the machines reach it (like http://10.0.9.1:{})", listen.port()),
        );
        return None;
    }
    Some(BootServerSettings {
        listen,
        url,
        mirror: mirror?,
        kernel_args: kernel_args?,
        retire: retire?,
    })
}
