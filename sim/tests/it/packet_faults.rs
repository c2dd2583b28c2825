//! Contract tests of the simulated Packet API under its rate limit and the fault plan: 429s and
//! their headers, injected bursts, 5xx and broken bodies, and the devices' fates (failed, 403,
//! unknown states). The cloud and its helpers are `packet.rs`'s.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim::{DeviceFate, FaultPlan, OperationFaults, Timings};

use crate::openapi::{assert_rejects, component};
use crate::packet::{Cloud, fast, json_of, rate_limited};

#[tokio::test]
async fn rate_limit_headers_and_429_with_retry_after() {
    let (cloud, path) = rate_limited(3).await;
    for remaining in [2, 1, 0] {
        let reply = cloud.get(&path).await;
        reply.expect(200, "Project");
        assert_eq!(reply.header("x-ratelimit-limit"), Some(3));
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
        // Simulated seconds: ten real minutes at time scale 0.001, a few real seconds gone.
        assert!(
            reply
                .header("x-ratelimit-reset")
                .is_some_and(|s| (590_000..=600_000).contains(&s))
        );
    }
    let limited = cloud.get(&path).await;
    limited.expect_error(429, "Too Many Requests");
    assert!(
        limited
            .header("retry-after")
            .is_some_and(|s| (590_000..=600_000).contains(&s))
    );
    assert_eq!(cloud.sim.state().rate_limited_responses, 1);
    cloud.sim.shutdown().await.unwrap();
}

/// A benchmark's run starts with a whole window, whatever ran before it.
#[tokio::test]
async fn a_restarted_rate_window_lets_a_whole_window_through() {
    let (cloud, path) = rate_limited(2).await;
    cloud.get(&path).await.expect(200, "Project");
    cloud.get(&path).await.expect(200, "Project");
    cloud
        .get(&path)
        .await
        .expect_error(429, "Too Many Requests");
    cloud.sim.restart_rate_window();
    for remaining in [1, 0] {
        let reply = cloud.get(&path).await;
        reply.expect(200, "Project");
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
    }
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_429_bursts_5xx_and_broken_bodies_can_be_set_and_lifted_at_runtime() {
    let cloud = Cloud::start(fast()).await;
    let device = cloud.create_ok("target", json!({})).await;
    let device_path = format!("/devices/{}", device["id"].as_str().unwrap());
    let faults_url = format!("{}/_sim/faults", cloud.sim.route53_url());
    let put_faults = |plan: FaultPlan| {
        let http = cloud.http.clone();
        let url = faults_url.clone();
        async move {
            let r = http.put(url).json(&plan).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
    };

    put_faults(FaultPlan::seeded(3).operation(
        "packet.devices.get",
        OperationFaults::default().rate_limited_burst(2, 7),
    ))
    .await;
    for _ in 0..2 {
        let reply = cloud.get(&device_path).await;
        reply.expect_error(429, "Too Many Requests");
        assert_eq!(reply.header("retry-after"), Some(7));
    }
    cloud.get(&device_path).await.expect(200, "Device");

    put_faults(FaultPlan::seeded(3).operation("*", OperationFaults::default().server_errors(1.0)))
        .await;
    cloud
        .get(&device_path)
        .await
        .expect_error(500, "Internal Server Error");

    put_faults(FaultPlan::seeded(3).operation(
        "packet.devices.get",
        OperationFaults::default().malformed_json(1.0),
    ))
    .await;
    let malformed = cloud.get(&device_path).await;
    assert_eq!(malformed.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&malformed.text).is_err(),
        "{}",
        malformed.text
    );

    put_faults(FaultPlan::seeded(3).operation(
        "packet.devices.get",
        OperationFaults::default().truncated_json(1.0),
    ))
    .await;
    let truncated = cloud.get(&device_path).await;
    assert_eq!(truncated.status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&truncated.text).is_err());
    assert!(!truncated.text.is_empty(), "half a body, not none");

    // A lost answer: the device exists although the client got a 502 (how orphans are made).
    put_faults(FaultPlan::seeded(3).operation(
        "packet.devices.create",
        OperationFaults::default().lost_responses(1.0),
    ))
    .await;
    let lost = cloud
        .create(json!({"hostname": "orphan", "plan": "c3.small.x86", "operating_system": "flatcar_stable", "metro": "sv"}))
        .await;
    assert_eq!(lost.status, StatusCode::BAD_GATEWAY);
    assert!(
        cloud
            .sim
            .state()
            .devices
            .iter()
            .any(|d| d.hostname == "orphan")
    );

    // Latency: only a lower bound is asserted, which no slow machine can break.
    put_faults(FaultPlan::seeded(3).operation(
        "packet.devices.get",
        OperationFaults::default().latency(Duration::from_millis(300)),
    ))
    .await;
    let started = Instant::now();
    cloud.get(&device_path).await.expect(200, "Device");
    assert!(started.elapsed() >= Duration::from_millis(300));

    put_faults(FaultPlan::default()).await;
    cloud.get(&device_path).await.expect(200, "Device");
    let plan: Value = json_of(cloud.http.get(&faults_url)).await;
    assert_eq!(plan["operations"], json!({}));

    let typo = cloud
        .http
        .put(&faults_url)
        .json(&json!({"operations": {"packet.device.get": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), StatusCode::UNPROCESSABLE_ENTITY);
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_device_can_answer_403_and_leave_the_list() {
    let mut config = fast();
    config.faults = FaultPlan::seeded(9)
        .device_fate("doomed", DeviceFate::FailedThenForbidden)
        .device_fate("broken", DeviceFate::Failed)
        .device_fate("stuck", DeviceFate::StuckProvisioning);
    let cloud = Cloud::start(config).await;
    let doomed = cloud.create_ok("doomed", json!({})).await;
    let broken = cloud.create_ok("broken", json!({})).await;
    let stuck = cloud.create_ok("stuck", json!({})).await;
    let fine = cloud.create_ok("fine", json!({})).await;
    let doomed_id = doomed["id"].as_str().unwrap();

    let forbidden = cloud
        .poll_device(doomed_id, "forbidden", |r| {
            r.status == StatusCode::FORBIDDEN
        })
        .await;
    forbidden.expect_error(403, "You are not authorized to view this device");
    cloud
        .call(Method::DELETE, &format!("/devices/{doomed_id}"), None)
        .await
        .expect_error(403, "not authorized");
    cloud
        .wait_state(broken["id"].as_str().unwrap(), "failed")
        .await;
    cloud
        .wait_state(fine["id"].as_str().unwrap(), "active")
        .await;
    // Created before `fine` became active, and still provisioning after it did.
    let stuck_now = cloud
        .get(&format!("/devices/{}", stuck["id"].as_str().unwrap()))
        .await
        .expect(200, "Device");
    assert_eq!(stuck_now["state"], "provisioning");

    let list = cloud
        .get(&cloud.devices_path())
        .await
        .expect(200, "DeviceList");
    let names: BTreeSet<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["broken", "stuck", "fine"]));
    let state = cloud.sim.state();
    let record = state
        .devices
        .iter()
        .find(|d| d.hostname == "doomed")
        .unwrap();
    assert_eq!(record.state, "failed_moved_out_of_project");
    assert_eq!(record.fate, DeviceFate::FailedThenForbidden);
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_states_are_reported_before_active() {
    let mut config = fast();
    config.faults = FaultPlan::seeded(1).device_fate("odd", DeviceFate::PassesUnknownState);
    // A long provisioning keeps the unknown state visible for seconds, not milliseconds.
    config.timings = Timings {
        provisioning: Duration::from_secs(3000),
        ..Timings::default()
    };
    let cloud = Cloud::start(config).await;
    let odd = cloud.create_ok("odd", json!({})).await;
    let id = odd["id"].as_str().unwrap();
    let reply = cloud
        .poll_device(id, "post_provisioning", |r| {
            r.text.contains("\"post_provisioning\"")
        })
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Outside the documented enum on purpose: the schema rejects it, clients must not.
    let body: Value = serde_json::from_str(&reply.text).unwrap();
    assert_rejects(&component("Device"), &body);
    cloud.wait_state(id, "active").await;
    cloud.sim.shutdown().await.unwrap();
}
