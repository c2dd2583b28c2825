//! The static pod judge (`sim::judge::pod`): a pod runs only if its program takes its flags
//! and the files they name are on the host.

use serde_json::{Value, json};
use sim::judge::pod::judge_static_pod;

use crate::static_pods::static_pod;

fn apiserver(host_dir: &str) -> Value {
    let flags = [
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".to_owned(),
        "--secure-port=6443".to_owned(),
    ];
    static_pod("kube-apiserver", &flags, host_dir)
}

#[test]
fn a_static_apiserver_starts_when_its_files_are_on_the_host() {
    let pod = judge_static_pod("m", &apiserver("/etc/kubernetes/pki"), &|path| {
        path == "/etc/kubernetes/pki/apiserver.crt"
    })
    .expect("starts");
    assert_eq!(pod.args.component, "kube-apiserver");
    assert_eq!(
        pod.files["tls-cert-file"],
        "/etc/kubernetes/pki/apiserver.crt"
    );
}

#[test]
fn a_missing_file_or_network_stops_it() {
    let problems =
        judge_static_pod("m", &apiserver("/etc/kubernetes/secrets"), &|_| false).unwrap_err();
    assert!(
        problems[0]
            .message
            .contains("/etc/kubernetes/secrets/apiserver.crt"),
        "{problems:?}"
    );
    let mut pod = apiserver("/etc/kubernetes/pki");
    pod["spec"]["hostNetwork"] = json!(false);
    let problems = judge_static_pod("m", &pod, &|_| true).unwrap_err();
    assert!(problems[0].message.contains("hostNetwork"), "{problems:?}");
}
