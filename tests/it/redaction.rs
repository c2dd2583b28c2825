//! The secrets the binary reads are redacted wherever it prints them: one redactor per process,
//! told the token when `loko` reads it, and used by the error report.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use crate::binary::{LOKO, text};

const TOKEN: &str = "tok-read-from-the-environment-7f3a";

/// An HTTP server on 127.0.0.1 that answers every request with a web page quoting the request's
/// `X-Auth-Token` (as a misconfigured proxy might); its URL.
fn echoing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metal/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 8192];
            let n = stream.read(&mut request).unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]);
            let token = request
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("x-auth-token")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            let body = format!("<html><body>no API here for {token}</body></html>");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A token from `PACKET_AUTH_TOKEN` that an endpoint echoes is printed as `[redacted]` in the
/// setup problem that quotes the endpoint's answer.
#[test]
fn the_token_read_from_the_environment_is_redacted_where_an_answer_echoes_it() {
    let (dir, spec) = loko_tests::example_copy("tutorial.yaml");
    let url = echoing_server();
    let mut text_of_spec = std::fs::read_to_string(&spec).unwrap();
    text_of_spec.push_str(&format!(
        "\nendpoints:\n  packet_api_url: {url}\n  route53_endpoint_url: {url}\n"
    ));
    std::fs::write(&spec, text_of_spec).unwrap();
    let out = std::process::Command::new(LOKO)
        .args(["run", spec.to_str().unwrap(), "-v"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL")
        .env_remove("SSH_AUTH_SOCK")
        .env("PACKET_AUTH_TOKEN", TOKEN)
        .env("AWS_ACCESS_KEY_ID", "AKIDREDACTIONTEST")
        .env("AWS_SECRET_ACCESS_KEY", "redaction-test-secret-key")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("no API here for [redacted]"),
        "the echoed answer is not quoted: {stderr}"
    );
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token was printed: {stdout}{stderr}"
    );
}
