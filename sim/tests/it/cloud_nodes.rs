//! The seam between the cloud and the node side, end to end: a device created over the Packet
//! API gets an SSH server on its public IPv4 once active, and loses it when deleted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::node_world::loopback_nodes;
use crate::packet::json_of;

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_active_device_answers_ssh_on_its_public_address_until_deleted() {
    let (roots, ssh_port, nodes) = loopback_nodes();
    let mut config = sim::SimConfig::new(roots.path().to_owned());
    config.time_scale = 0.001;
    config.ssh_port = ssh_port;
    config.nodes = Arc::new(nodes);
    let handle = sim::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let devices = format!(
        "{}/projects/{}/devices",
        handle.packet_url(),
        handle.project_id()
    );
    let created: Value = json_of(
        http.post(&devices)
            .header("X-Auth-Token", handle.token())
            .json(&json!({
                "hostname": "worker-0",
                "plan": "c3.small.x86",
                "operating_system": "flatcar_stable",
                "metro": "sv",
                "userdata": "{\"ignition\":{\"version\":\"3.3.0\"}}",
            })),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let device_url = format!("{}/devices/{id}", handle.packet_url());
    let start = Instant::now();
    let device = loop {
        let device: Value =
            json_of(http.get(&device_url).header("X-Auth-Token", handle.token())).await;
        if device["state"] == "active" {
            break device;
        }
        assert!(start.elapsed() < DEADLINE, "never active: {device}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let public = device["ip_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ip| ip["public"] == true && ip["address_family"] == 4)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = format!("{public}:{ssh_port}");

    let mut banner = [0u8; 8];
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-", "an SSH server answers on {addr}");
    drop(stream);

    let deleted = http
        .delete(&device_url)
        .header("X-Auth-Token", handle.token())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), reqwest::StatusCode::NO_CONTENT);
    let start = Instant::now();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(start.elapsed() < DEADLINE, "SSH still answers after delete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown().await.unwrap();
}
