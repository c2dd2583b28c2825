//! The simulated Packet cloud's own state: the state file a new simulator resumes, the
//! `/_sim/state` endpoint, the node side it asks to start and stop machines, and its shutdown.
//! The cloud and its helpers are `packet.rs`'s.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sim::{DeviceFate, FaultPlan, OperationFaults};

use crate::packet::{Cloud, fast, json_of};

#[tokio::test]
async fn state_file_lets_a_new_simulator_resume_the_same_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("sim-state.json");
    let mut config = fast();
    config.state_file = Some(state_file.clone());
    let first = Cloud::start(config).await;
    let device = first.create_ok("survivor", json!({"tags": ["keep"]})).await;
    let id = device["id"].as_str().unwrap().to_owned();
    let zone = first.sim.hosted_zone_id().to_owned();
    let change = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes><Change><Action>CREATE</Action><ResourceRecordSet><Name>k8s.example.com</Name><Type>A</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>{}</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#,
        "127.10.0.1"
    );
    let r = first
        .http
        .post(format!("{}/2013-04-01/hostedzone/{zone}/rrset", first.sim.route53_url()))
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/route53/aws4_request, SignedHeaders=host, Signature=0")
        .body(change)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The file is written before the answers: a copy taken now, with the first simulator still
    // running (as if it were killed), holds both.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "userdata may hold secrets");
    }
    let copy = dir.path().join("copy.json");
    std::fs::copy(&state_file, &copy).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut config = fast();
    config.state_file = Some(copy);
    let second = Cloud::start(config).await;
    // The project and token come back from the file: clients keep their configuration.
    assert_eq!(second.sim.project_id(), first.sim.project_id());
    assert_eq!(second.sim.token(), first.sim.token());
    assert_eq!(second.sim.hosted_zone_id(), zone);
    // 400 ms of real time while "down" are 400 simulated seconds, past the 310 s a device needs
    // to be active: the restored clock accounts for the time the simulator was away.
    let resumed = second
        .get(&format!("/devices/{id}"))
        .await
        .expect(200, "Device");
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["tags"], json!(["keep"]));
    assert_eq!(resumed["ip_addresses"], device["ip_addresses"]);
    let state = second.sim.state();
    let zone_state = state.hosted_zones.iter().find(|z| z.id == zone).unwrap();
    assert!(
        zone_state
            .record_sets
            .iter()
            .any(|s| s.name == "k8s.example.com." && s.values == ["127.10.0.1"])
    );
    // New devices do not reuse addresses of the old ones.
    let newer = second.create_ok("newer", json!({})).await;
    assert_ne!(
        newer["ip_addresses"][0]["address"],
        device["ip_addresses"][0]["address"]
    );
    second.sim.shutdown().await.unwrap();
    first.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn sim_state_endpoint_counts_requests() {
    let cloud = Cloud::start(fast()).await;
    cloud.create_ok("counted", json!({})).await;
    cloud
        .get(&cloud.devices_path())
        .await
        .expect(200, "DeviceList");
    cloud
        .get(&cloud.devices_path())
        .await
        .expect(200, "DeviceList");
    let state: sim::SimState = json_of(
        cloud
            .http
            .get(format!("{}/_sim/state", cloud.sim.route53_url())),
    )
    .await;
    assert_eq!(state.requests["packet.devices.list"], 2);
    assert_eq!(state.requests["packet.devices.create"], 1);
    assert_eq!(state.devices.len(), 1);
    assert_eq!(
        state.hosted_zones.len(),
        1,
        "the configured zone exists from the start"
    );
    let mut printed = Vec::new();
    cloud.sim.write_endpoints(&mut printed).unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(printed.contains(&cloud.sim.packet_url()) && printed.contains(cloud.sim.token()));
    assert!(
        !format!("{:?}", cloud.sim).contains(cloud.sim.token()),
        "Debug hides the token"
    );
    cloud.sim.shutdown().await.unwrap();
}

/// Records what the cloud asks of the node side.
#[derive(Default)]
struct RecordingNodes {
    started: std::sync::Mutex<Vec<sim::NodeSpec>>,
    stopped: std::sync::Mutex<Vec<String>>,
}

impl sim::NodeLifecycle for RecordingNodes {
    fn start_node(&self, spec: sim::NodeSpec) -> sim::NodeFuture<'_, Result<(), String>> {
        self.started.lock().unwrap().push(spec);
        Box::pin(async { Ok(()) })
    }

    fn stop_node<'a>(&'a self, device_id: &'a str) -> sim::NodeFuture<'a, ()> {
        self.stopped.lock().unwrap().push(device_id.to_owned());
        Box::pin(async {})
    }

    fn static_pods(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, sim::StaticPodStatus>>
    {
        self.started
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.hostname.clone(), std::collections::BTreeMap::new()))
            .collect()
    }
}

#[tokio::test]
async fn active_devices_get_a_node_and_deleted_ones_lose_it() {
    let nodes = std::sync::Arc::new(RecordingNodes::default());
    let mut config = fast();
    config.nodes = nodes.clone();
    config.faults = FaultPlan::seeded(2)
        .ssh_refused_for(Duration::from_secs(30))
        .device_fate("never", DeviceFate::Failed);
    let cloud = Cloud::start(config).await;
    let device = cloud
        .create_ok("controller-0", json!({"userdata": "ignition-config"}))
        .await;
    cloud.create_ok("never", json!({})).await;
    let id = device["id"].as_str().unwrap();
    let active = cloud.wait_state(id, "active").await;
    // The node is up by the time any client sees the device active.
    let spec = nodes.started.lock().unwrap()[0].clone();
    assert_eq!(spec.device_id, id);
    assert_eq!(spec.hostname, "controller-0");
    assert_eq!(spec.user_data, "ignition-config");
    assert_eq!(
        spec.public_ip.to_string(),
        active["ip_addresses"][0]["address"]
    );
    // 30 s scaled by 0.001, counted from the device turning active: the machine boots up to
    // 20 simulated seconds before, and refuses SSH for that much longer.
    assert!(
        spec.ssh_refused_for >= Duration::from_millis(30)
            && spec.ssh_refused_for <= Duration::from_millis(50),
        "{:?}",
        spec.ssh_refused_for
    );
    // The state reports what the node side reports.
    assert!(cloud.sim.state().static_pods.contains_key("controller-0"));

    cloud
        .call(Method::DELETE, &format!("/devices/{id}"), None)
        .await;
    assert_eq!(
        *nodes.stopped.lock().unwrap(),
        [id.to_owned()],
        "stopped on delete"
    );
    let never = cloud
        .sim
        .state()
        .devices
        .into_iter()
        .find(|d| d.hostname == "never")
        .unwrap();
    cloud.wait_state(&never.id, "failed").await;
    assert_eq!(
        nodes.started.lock().unwrap().len(),
        1,
        "a failed device gets no node"
    );
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_hung_request() {
    let mut config = fast();
    config.faults = FaultPlan::seeded(4).operation(
        "packet.projects.get",
        OperationFaults::default().latency(Duration::from_secs(3600)),
    );
    let cloud = Cloud::start(config).await;
    let url = format!(
        "{}/projects/{}",
        cloud.sim.packet_url(),
        cloud.sim.project_id()
    );
    let token = cloud.sim.token().to_owned();
    let http = cloud.http.clone();
    let hung =
        tokio::spawn(async move { http.get(url).header("X-Auth-Token", token).send().await });
    while !cloud
        .sim
        .state()
        .requests
        .contains_key("packet.projects.get")
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shutdown = tokio::time::timeout(Duration::from_secs(120), cloud.sim.shutdown()).await;
    assert!(matches!(shutdown, Ok(Ok(()))), "shutdown returned");
    let cut = hung
        .await
        .unwrap()
        .expect("an answer, not the client's timeout");
    assert_eq!(cut.status(), StatusCode::SERVICE_UNAVAILABLE);
}
