//! The PKI as openssl sees it: every chain verifies, names, SANs, usages and expiry are what
//! Lokomotive's were (with loko's documented differences), and keys belong to their certificates.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::pki_support::{Pki, full_cluster, output, text};
use loko_tests::run;

fn openssl(args: &[&str], pki: &Pki) -> String {
    run(Command::new("openssl")
        .args(args)
        .current_dir(pki.dir.root()))
}

/// `openssl verify` of `leaf` against `ca` for `purpose` (`sslserver` / `sslclient`).
fn verifies(pki: &Pki, ca: &str, leaf: &str, purpose: &str) -> bool {
    let out = output(
        Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile", ca, leaf])
            .current_dir(pki.dir.root()),
    );
    out.status.success() && text(&out).contains(&format!("{leaf}: OK"))
}

/// `now`, truncated to seconds.
fn whole_seconds_now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `notAfter=` as `openssl x509 -enddate -dateopt iso_8601` prints it.
fn iso_8601(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
}

#[test]
fn every_chain_verifies_for_its_purposes_and_not_across_cas() {
    let pki = Pki::issue(&full_cluster(), SystemTime::now());
    for (ca, leaf, server) in [
        ("tls/ca.crt", "tls/apiserver.crt", true),
        ("tls/ca.crt", "tls/admin.crt", false),
        ("tls/etcd-client-ca.crt", "tls/etcd-client.crt", true),
        ("tls/etcd/server-ca.crt", "tls/etcd/server.crt", true),
        ("tls/etcd/peer-ca.crt", "tls/etcd/peer.crt", true),
        (
            "tls/aggregation-ca.crt",
            "tls/aggregation-client.crt",
            false,
        ),
    ] {
        assert!(
            verifies(&pki, ca, leaf, "sslclient"),
            "{leaf} as a client of {ca}"
        );
        assert_eq!(
            verifies(&pki, ca, leaf, "sslserver"),
            server,
            "{leaf} as a server of {ca}"
        );
    }
    for (ca, leaf) in [
        ("tls/etcd-ca.crt", "tls/admin.crt"),
        ("tls/ca.crt", "tls/etcd-client.crt"),
        ("tls/ca.crt", "tls/aggregation-client.crt"),
    ] {
        assert!(
            !verifies(&pki, ca, leaf, "sslclient"),
            "{leaf} verified by {ca}"
        );
    }
    for ca in ["tls/ca.crt", "tls/etcd-ca.crt", "tls/aggregation-ca.crt"] {
        let out = openssl(
            &[
                "x509",
                "-noout",
                "-ext",
                "basicConstraints,keyUsage",
                "-in",
                ca,
            ],
            &pki,
        );
        assert!(
            out.contains("CA:TRUE") && out.contains("Certificate Sign"),
            "{ca}: {out}"
        );
        assert!(verifies(&pki, ca, ca, "any"), "{ca} is not self-signed");
    }
}

#[test]
fn subjects_sans_usages_and_expiry() {
    let now = whole_seconds_now();
    let cluster = full_cluster();
    let pki = Pki::issue(&cluster, now);
    let hours = u64::from(cluster.settings.certs_validity_period_hours);
    let leaf_end = iso_8601(now + Duration::from_secs(hours * 3600));
    let ca_end = iso_8601(now + Duration::from_secs(10 * 8760 * 3600));
    let x509 = |file: &str| {
        openssl(
            &[
                "x509",
                "-noout",
                "-subject",
                "-enddate",
                "-dateopt",
                "iso_8601",
                "-nameopt",
                "sep_comma_plus",
                "-ext",
                "subjectAltName,keyUsage,extendedKeyUsage",
                "-in",
                file,
            ],
            &pki,
        )
    };
    let etcd_names = "DNS:supernova-etcd0.packet.example.com, DNS:supernova-etcd1.packet.example.com, \
                      DNS:supernova-etcd2.packet.example.com";
    let server_client = "TLS Web Server Authentication, TLS Web Client Authentication";
    let cases: &[(&str, &str, Option<String>, &str, &str)] = &[
        (
            "tls/apiserver.crt",
            "subject=O=system:masters,CN=kube-apiserver",
            Some(
                "DNS:supernova.packet.example.com, DNS:supernova-private.packet.example.com, \
                 DNS:supernova-controller-0, DNS:supernova-controller-1, DNS:supernova-controller-2, \
                 DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
                 DNS:kubernetes.default.svc.cluster.local, IP Address:10.3.0.1, IP Address:127.0.0.1"
                    .into(),
            ),
            server_client,
            &leaf_end,
        ),
        ("tls/admin.crt", "subject=O=system:masters,CN=kubernetes-admin", None, "TLS Web Client Authentication", &leaf_end),
        (
            "tls/etcd-client.crt",
            "subject=O=etcd,CN=etcd-client",
            Some(format!("{etcd_names}, DNS:localhost, IP Address:127.0.0.1")),
            server_client,
            &leaf_end,
        ),
        (
            "tls/etcd/server.crt",
            "subject=O=etcd,CN=etcd-server",
            Some(format!("{etcd_names}, DNS:localhost, IP Address:127.0.0.1")),
            server_client,
            &leaf_end,
        ),
        (
            "tls/etcd/peer.crt",
            "subject=O=etcd,CN=etcd-peer",
            Some(format!("{etcd_names}, IP Address:127.0.0.1")),
            server_client,
            &leaf_end,
        ),
        ("tls/aggregation-client.crt", "subject=CN=kube-apiserver", None, "TLS Web Client Authentication", &leaf_end),
        ("tls/ca.crt", "subject=O=bootkube,CN=kubernetes-ca", None, "", &ca_end),
        ("tls/etcd-ca.crt", "subject=O=etcd,CN=etcd-ca", None, "", &ca_end),
        ("tls/aggregation-ca.crt", "subject=CN=kubernetes-front-proxy-ca", None, "", &ca_end),
    ];
    for (file, subject, sans, eku, end) in cases {
        let out = x509(file);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert!(lines.contains(subject), "{file}: {out}");
        assert!(
            lines.contains(&format!("notAfter={end}").as_str()),
            "{file}: want {end}: {out}"
        );
        match sans {
            Some(sans) => assert!(lines.contains(&sans.as_str()), "{file}: want {sans}: {out}"),
            None => assert!(!out.contains("Subject Alternative Name"), "{file}: {out}"),
        }
        if eku.is_empty() {
            assert!(!out.contains("Extended Key Usage"), "{file}: {out}");
            assert!(
                lines.contains(&"Digital Signature, Certificate Sign, CRL Sign"),
                "{file}: {out}"
            );
        } else {
            assert!(lines.contains(eku), "{file}: want {eku}: {out}");
            assert!(lines.contains(&"Digital Signature"), "{file}: {out}");
        }
    }
    // The report says the same expiry, in RFC 3339.
    let apiserver = pki
        .report
        .files
        .iter()
        .find(|f| f.path == "tls/apiserver.crt")
        .unwrap();
    assert_eq!(
        apiserver.not_after.as_deref().map(|t| t.replace('T', " ")),
        Some(leaf_end.clone())
    );
}

#[test]
fn keys_belong_to_their_certificates_and_are_ecdsa_p256() {
    let pki = Pki::issue(&full_cluster(), SystemTime::now());
    for name in [
        "ca",
        "apiserver",
        "admin",
        "etcd-ca",
        "etcd-client",
        "etcd/server",
        "etcd/peer",
        "aggregation-ca",
        "aggregation-client",
    ] {
        let from_cert = openssl(
            &[
                "x509",
                "-noout",
                "-pubkey",
                "-in",
                &format!("tls/{name}.crt"),
            ],
            &pki,
        );
        let from_key = openssl(
            &["pkey", "-pubout", "-in", &format!("tls/{name}.key")],
            &pki,
        );
        assert_eq!(
            from_cert, from_key,
            "tls/{name}.key does not match tls/{name}.crt"
        );
        let details = openssl(
            &["pkey", "-noout", "-text", "-in", &format!("tls/{name}.key")],
            &pki,
        );
        assert!(
            details.contains("NIST CURVE: P-256"),
            "tls/{name}.key: {details}"
        );
    }
    let public = openssl(&["pkey", "-pubout", "-in", "tls/service-account.key"], &pki);
    let written = std::fs::read_to_string(pki.path("tls/service-account.pub")).unwrap();
    assert_eq!(public, written);
    // The public key openssl reads back as a SubjectPublicKeyInfo.
    openssl(
        &["pkey", "-pubin", "-noout", "-in", "tls/service-account.pub"],
        &pki,
    );
}

#[test]
fn the_journaled_fingerprints_are_those_openssl_computes() {
    let pki = Pki::issue(&full_cluster(), SystemTime::now());
    for file in pki.report.files.iter().filter(|f| f.path.ends_with(".crt")) {
        let out = openssl(
            &[
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-in",
                &file.path,
            ],
            &pki,
        );
        let hex: String = out
            .trim()
            .trim_start_matches("sha256 Fingerprint=")
            .trim_start_matches("SHA256 Fingerprint=")
            .replace(':', "")
            .to_lowercase();
        assert_eq!(hex, file.sha256, "{}", file.path);
    }
}
