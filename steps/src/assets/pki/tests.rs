use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::cert::{parse_cert, signed_by};
use super::clock::hours;
use super::*;
use crate::assets::Sensitivity;

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// The tutorial's cluster, with `edit` applied to the spec text.
fn cluster(edit: impl Fn(String) -> String) -> specs::DesiredCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    specs::parse(&edit(text), &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

fn inputs(edit: impl Fn(String) -> String) -> PkiInputs {
    PkiInputs::from_desired(&cluster(edit))
}

fn tutorial() -> PkiInputs {
    inputs(|t| t)
}

fn three_controllers() -> PkiInputs {
    inputs(|t| t.replace("controller_count: 1", "controller_count: 3"))
}

fn new_dir() -> (tempfile::TempDir, AssetDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = AssetDir::create(tmp.path().join("assets")).unwrap();
    (tmp, dir)
}

/// Every file under the asset directory, relative path → bytes.
fn snapshot(dir: &AssetDir) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir.root(), dir.root(), &mut out);
    out
}

fn status<'a>(report: &'a PkiReport, path: &str) -> &'a FileStatus {
    &report
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("{path} not in {report:#?}"))
        .status
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn lays_out_lokomotives_files_with_secret_modes() {
    let (_tmp, dir) = new_dir();
    let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
    let files = snapshot(&dir);
    for name in [
        "ca",
        "apiserver",
        "admin",
        "kube-scheduler",
        "kube-controller-manager",
        "etcd-ca",
        "etcd-client",
        "etcd/server",
        "etcd/peer",
    ] {
        for ext in ["crt", "key"] {
            assert!(
                files.contains_key(&format!("tls/{name}.{ext}")),
                "tls/{name}.{ext}"
            );
        }
        assert_eq!(
            mode(&dir.path(format!("tls/{name}.key"))),
            0o600,
            "{name}.key"
        );
        assert_eq!(
            mode(&dir.path(format!("tls/{name}.crt"))),
            0o644,
            "{name}.crt"
        );
    }
    for copy in [
        "tls/etcd-client-ca.crt",
        "tls/etcd/server-ca.crt",
        "tls/etcd/peer-ca.crt",
    ] {
        assert_eq!(files[copy], files["tls/etcd-ca.crt"], "{copy}");
    }
    assert_eq!(mode(&dir.path("tls/service-account.key")), 0o600);
    assert!(
        String::from_utf8_lossy(&files["tls/service-account.pub"])
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    assert_eq!(mode(&dir.path("tls")), 0o700);
    assert_eq!(mode(&dir.path("tls/etcd")), 0o700);
    // The tutorial leaves aggregation off.
    assert!(!files.keys().any(|k| k.contains("aggregation")));
    assert!(report.files.iter().all(|f| f.status == FileStatus::Created));
    // The report is journaled: no key in it.
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !json.contains("PRIVATE KEY") && !json.contains(".key\""),
        "{json}"
    );
    assert!(report.warnings.is_empty());
}

#[test]
fn a_second_run_changes_no_byte_and_retightens_modes() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    let before = snapshot(&dir);
    std::fs::set_permissions(
        dir.path("tls/ca.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let report = ensure_pki(&dir, &tutorial(), now() + 40 * DAY).unwrap();
    assert_eq!(snapshot(&dir), before);
    assert!(
        report.files.iter().all(|f| f.status == FileStatus::Kept),
        "{report:#?}"
    );
    assert_eq!(mode(&dir.path("tls/ca.key")), 0o600);
}

#[test]
fn adding_a_controller_reissues_the_leaves_that_name_it_with_their_keys() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    let before = snapshot(&dir);
    let report = ensure_pki(&dir, &three_controllers(), now() + DAY).unwrap();
    let after = snapshot(&dir);
    for same in [
        "tls/ca.crt",
        "tls/ca.key",
        "tls/etcd-ca.crt",
        "tls/etcd-ca.key",
        "tls/apiserver.key",
        "tls/etcd/server.key",
        "tls/admin.crt",
        "tls/kube-scheduler.crt",
        "tls/service-account.key",
    ] {
        assert_eq!(before[same], after[same], "{same} changed");
    }
    for changed in [
        "tls/apiserver.crt",
        "tls/etcd-client.crt",
        "tls/etcd/server.crt",
        "tls/etcd/peer.crt",
    ] {
        assert_ne!(before[changed], after[changed], "{changed} kept");
        assert!(
            matches!(status(&report, changed), FileStatus::Reissued { reason } if reason.contains("inputs changed")),
            "{changed}: {report:#?}"
        );
    }
    assert_eq!(status(&report, "tls/ca.crt"), &FileStatus::Kept);
    assert_eq!(status(&report, "tls/admin.crt"), &FileStatus::Kept);
}

#[test]
fn the_same_keys_and_now_give_the_same_bytes() {
    let (_a, first) = new_dir();
    ensure_pki(&first, &three_controllers(), now()).unwrap();
    let (_b, second) = new_dir();
    for (rel, bytes) in snapshot(&first) {
        if rel.ends_with(".key") {
            second.write(&rel, &bytes, Sensitivity::Secret).unwrap();
        }
    }
    ensure_pki(&second, &three_controllers(), now()).unwrap();
    assert_eq!(snapshot(&first), snapshot(&second));
}

#[test]
fn leaves_are_renewed_before_they_expire_and_the_ca_is_not() {
    let (_tmp, dir) = new_dir();
    let inputs = tutorial();
    ensure_pki(&dir, &inputs, now()).unwrap();
    let before = snapshot(&dir);
    let later = now() + hours(u64::from(inputs.validity_hours)) - 20 * DAY;
    let report = ensure_pki(&dir, &inputs, later).unwrap();
    let after = snapshot(&dir);
    assert!(
        matches!(status(&report, "tls/admin.crt"), FileStatus::Reissued { reason } if reason.contains("renewal window of 30 days")),
        "{report:#?}"
    );
    assert_ne!(before["tls/admin.crt"], after["tls/admin.crt"]);
    assert_eq!(before["tls/admin.key"], after["tls/admin.key"]);
    assert_eq!(before["tls/ca.crt"], after["tls/ca.crt"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Near the end of the CA's ten years: a warning, never a new CA.
    let much_later = now() + hours(CA_MIN_VALIDITY_HOURS) - 10 * DAY;
    let report = ensure_pki(&dir, &inputs, much_later).unwrap();
    assert_eq!(snapshot(&dir)["tls/ca.crt"], before["tls/ca.crt"]);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("tls/ca.crt expires on")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_validity_change_reissues_every_leaf_and_no_ca() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    let mut inputs = tutorial();
    inputs.validity_hours = 24 * 90;
    let report = ensure_pki(&dir, &inputs, now()).unwrap();
    assert!(matches!(
        status(&report, "tls/admin.crt"),
        FileStatus::Reissued { .. }
    ));
    assert_eq!(status(&report, "tls/etcd-ca.crt"), &FileStatus::Kept);
    let admin = report
        .files
        .iter()
        .find(|f| f.path == "tls/admin.crt")
        .unwrap();
    assert_eq!(
        admin.not_after.as_deref(),
        Some(UnixTime::new(now() + 90 * DAY).unwrap().rfc3339().as_str())
    );
}

#[test]
fn aggregation_adds_its_ca_and_client() {
    let (_tmp, dir) = new_dir();
    let inputs = inputs(|t| format!("{t}\nenable_aggregation: true\n"));
    let report = ensure_pki(&dir, &inputs, now()).unwrap();
    assert_eq!(
        status(&report, "tls/aggregation-ca.crt"),
        &FileStatus::Created
    );
    assert_eq!(
        status(&report, "tls/aggregation-client.crt"),
        &FileStatus::Created
    );
    assert_eq!(mode(&dir.path("tls/aggregation-client.key")), 0o600);
}

#[test]
fn a_corrupt_ca_key_is_an_error_naming_it() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    dir.write(
        "tls/ca.key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        Sensitivity::Secret,
    )
    .unwrap();
    let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
    assert!(
        matches!(&err, AssetError::Invalid { path, .. } if path == &dir.path("tls/ca.key")),
        "{err}"
    );
    assert!(err.to_string().contains("tls/ca.key"), "{err}");
}

#[test]
fn a_ca_certificate_of_another_key_is_refused() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    let etcd_ca = dir.read("tls/etcd-ca.crt").unwrap().unwrap();
    dir.write("tls/ca.crt", &etcd_ca, Sensitivity::Public)
        .unwrap();
    let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
    assert!(
        matches!(&err, AssetError::Invalid { path, reason } if path == &dir.path("tls/ca.crt") && reason.contains("does not belong to tls/ca.key")),
        "{err}"
    );
}

#[test]
fn a_ca_certificate_without_its_key_is_refused() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    std::fs::remove_file(dir.path("tls/etcd-ca.key")).unwrap();
    let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
    assert!(
        matches!(&err, AssetError::Invalid { path, .. } if path == &dir.path("tls/etcd-ca.key")),
        "{err}"
    );
}

#[test]
fn a_lost_ca_certificate_is_reissued_for_its_key_and_leaves_still_chain() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    let before = snapshot(&dir);
    std::fs::remove_file(dir.path("tls/ca.crt")).unwrap();
    let report = ensure_pki(&dir, &tutorial(), now() + DAY).unwrap();
    assert!(matches!(
        status(&report, "tls/ca.crt"),
        FileStatus::Reissued { .. }
    ));
    let after = snapshot(&dir);
    assert_eq!(before["tls/ca.key"], after["tls/ca.key"]);
    let ca = parse_cert(&after["tls/ca.crt"]).unwrap();
    let old_admin = parse_cert(&before["tls/admin.crt"]).unwrap();
    assert!(signed_by(&old_admin.der, &ca.der));
}

#[test]
fn a_leaf_without_a_record_or_with_a_foreign_certificate_is_reissued() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    std::fs::remove_file(dir.path(STATE_FILE)).unwrap();
    let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
    assert!(
        matches!(status(&report, "tls/admin.crt"), FileStatus::Reissued { reason } if reason.contains("no record")),
        "{report:#?}"
    );
    let scheduler = dir.read("tls/kube-scheduler.crt").unwrap().unwrap();
    dir.write("tls/admin.crt", &scheduler, Sensitivity::Public)
        .unwrap();
    let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
    assert!(
        matches!(status(&report, "tls/admin.crt"), FileStatus::Reissued { reason } if reason.contains("did not match tls/admin.key")),
        "{report:#?}"
    );
    let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
    assert!(report.files.iter().all(|f| f.status == FileStatus::Kept));
}

#[test]
fn a_service_account_public_key_without_its_key_is_refused() {
    let (_tmp, dir) = new_dir();
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    std::fs::remove_file(dir.path("tls/service-account.key")).unwrap();
    let err = ensure_pki(&dir, &tutorial(), now()).unwrap_err();
    assert!(err.to_string().contains("tls/service-account.key"), "{err}");
}

#[test]
fn inputs_of_the_tutorial() {
    let inputs = three_controllers();
    assert_eq!(inputs.apiserver_public_name, "supernova.packet.example.com");
    assert_eq!(
        inputs.apiserver_private_name,
        "supernova-private.packet.example.com"
    );
    assert_eq!(
        inputs.etcd_names,
        [0, 1, 2].map(|i| format!("supernova-etcd{i}.packet.example.com"))
    );
    assert_eq!(inputs.controller_hostnames[2], "supernova-controller-2");
    assert_eq!(inputs.apiserver_service_ip, Ipv4Addr::new(10, 3, 0, 1));
    assert_eq!(renewal_window(hours(8760)), RENEWAL_WINDOW_MAX);
    assert_eq!(renewal_window(hours(24)), hours(8));
}

#[test]
fn the_cluster_id_is_the_journaled_ca_fingerprint_and_another_ca_has_another() {
    let (_tmp, dir) = new_dir();
    assert_eq!(cluster_id(&dir).unwrap(), None, "no CA yet");
    let report = ensure_pki(&dir, &tutorial(), now()).unwrap();
    let ca = report
        .files
        .iter()
        .find(|f| f.path == "tls/ca.crt")
        .unwrap();
    let id = cluster_id(&dir).unwrap().unwrap();
    assert_eq!(id, ca.sha256[..16]);
    ensure_pki(&dir, &tutorial(), now()).unwrap();
    assert_eq!(
        cluster_id(&dir).unwrap().as_deref(),
        Some(id.as_str()),
        "kept"
    );
    let (_other_tmp, other) = new_dir();
    ensure_pki(&other, &tutorial(), now()).unwrap();
    assert_ne!(cluster_id(&other).unwrap(), Some(id), "a copy's own CA");
}
