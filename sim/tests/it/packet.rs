//! Contract tests of the simulated Packet API, over the wire with a plain HTTP client.
//!
//! Every response is checked against the OpenAPI document (and every request body before it is
//! sent), so the simulator cannot drift from the real API's shapes. Waits poll with generous
//! deadlines: the machine running them may be slow and busy.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim::{
    DeviceFate, FaultPlan, OperationFaults, RateLimit, ReservationSeed, SimConfig, SimHandle,
    Timings,
};

use crate::openapi::{assert_rejects, assert_valid, component, device_create_body};

/// Generous: a busy 2-core machine may run several test binaries at once.
const DEADLINE: Duration = Duration::from_secs(60);

struct Cloud {
    sim: SimHandle,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
    context: String,
}

impl Reply {
    /// Asserts the status and that the body matches the named component schema.
    fn expect(&self, status: u16, schema: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: unexpected status, body {}",
            self.context,
            self.text
        );
        let body: Value = serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.context, self.text));
        assert_valid(&component(schema), &body, &self.context);
        body
    }

    /// Asserts an error status whose `errors` mention `needle`.
    fn expect_error(&self, status: u16, needle: &str) -> Value {
        let body = self.expect(status, "Error");
        let errors = body["errors"].as_array().expect("errors is a list");
        assert!(
            errors
                .iter()
                .any(|e| e.as_str().unwrap_or("").contains(needle)),
            "{}: no error mentions {needle:?}: {body}",
            self.context
        );
        body
    }

    fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
}

impl Cloud {
    async fn start(config: SimConfig) -> Cloud {
        let sim = sim::start(config).await.expect("start the simulator");
        Cloud {
            sim,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_as(Some(self.sim.token()), method, path, body)
            .await
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.sim.packet_url());
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("send the request");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
            context: format!("{method} {path}"),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    fn devices_path(&self) -> String {
        format!("/projects/{}/devices", self.sim.project_id())
    }

    /// Creates a device with a body validated against the API's request schema.
    async fn create(&self, body: Value) -> Reply {
        assert_valid(&device_create_body(), &body, "create request");
        self.call(Method::POST, &self.devices_path(), Some(&body))
            .await
    }

    async fn create_ok(&self, hostname: &str, extra: Value) -> Value {
        let mut body = json!({
            "hostname": hostname,
            "plan": "c3.small.x86",
            "operating_system": "flatcar_stable",
            "metro": "sv",
            "billing_cycle": "hourly",
            "tags": ["loko:test"],
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.create(body).await.expect(201, "Device")
    }

    /// Polls the device until `done` holds for its reply, and returns that reply.
    async fn poll_device(&self, id: &str, what: &str, done: impl Fn(&Reply) -> bool) -> Reply {
        let start = Instant::now();
        loop {
            let reply = self.get(&format!("/devices/{id}")).await;
            if done(&reply) {
                return reply;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "device {id} never became {what}; last reply {} {}",
                reply.status,
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_state(&self, id: &str, state: &str) -> Value {
        self.poll_device(id, state, |r| {
            r.status == StatusCode::OK
                && serde_json::from_str::<Value>(&r.text).is_ok_and(|b| b["state"] == state)
        })
        .await
        .expect(200, "Device")
    }
}

/// Sends `request` and reads its answer as JSON.
pub async fn json_of<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    request
        .send()
        .await
        .expect("send the request")
        .json()
        .await
        .expect("a JSON answer")
}

/// A cloud that answers `requests` requests in a window of ten real minutes (the window is
/// simulated time, at `fast()`'s scale); a project's path.
async fn rate_limited(requests: u32) -> (Cloud, String) {
    let mut config = fast();
    config.rate_limit = RateLimit {
        requests,
        window: Duration::from_secs(600).div_f64(config.time_scale),
    };
    let cloud = Cloud::start(config).await;
    let path = format!("/projects/{}", cloud.sim.project_id());
    (cloud, path)
}

fn fast() -> SimConfig {
    let mut config = SimConfig::new(std::env::temp_dir());
    config.time_scale = 0.001;
    // Polling tests make many requests; only the rate-limit test wants a tight limit.
    config.rate_limit.requests = 1_000_000;
    config
}

#[tokio::test]
async fn devices_go_queued_provisioning_active_then_deprovisioning_and_gone() {
    let cloud = Cloud::start(fast()).await;
    let created = cloud
        .create_ok(
            "controller-0",
            json!({"userdata": "{\"ignition\":{\"version\":\"3.3.0\"}}"}),
        )
        .await;
    assert_eq!(created["state"], "queued", "a new device is queued");
    assert_eq!(
        created["userdata"],
        "{\"ignition\":{\"version\":\"3.3.0\"}}"
    );
    assert_eq!(created["tags"], json!(["loko:test"]));
    let id = created["id"].as_str().unwrap().to_owned();
    // `exclude` drops a plain attribute and reduces an object to its href.
    let lean = cloud
        .get(&format!("/devices/{id}?exclude=userdata,project"))
        .await
        .expect(200, "Device");
    assert!(lean.get("userdata").is_none(), "{lean}");
    assert_eq!(lean["project"].as_object().map(|o| o.len()), Some(1));
    assert_eq!(lean["hostname"], "controller-0");

    let mut seen = Vec::new();
    let active = cloud
        .poll_device(&id, "active", |r| {
            let state = serde_json::from_str::<Value>(&r.text).map(|b| b["state"].clone());
            state.is_ok_and(|s| s == "active")
        })
        .await
        .expect(200, "Device");
    // Every intermediate reply was one of the documented states, in order.
    for _ in 0..3 {
        let body = cloud
            .get(&format!("/devices/{id}"))
            .await
            .expect(200, "Device");
        seen.push(body["state"].as_str().unwrap().to_owned());
    }
    assert!(
        seen.iter().all(|s| s == "active"),
        "active is final: {seen:?}"
    );
    assert_eq!(active["hostname"], "controller-0");
    assert_eq!(active["plan"]["slug"], "c3.small.x86");
    assert_eq!(active["metro"]["code"], "sv");

    let deleted = cloud
        .call(Method::DELETE, &format!("/devices/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = cloud
        .poll_device(&id, "gone", |r| r.status == StatusCode::NOT_FOUND)
        .await;
    gone.expect_error(404, "Not found");

    let state = cloud.sim.state();
    let record = state
        .devices
        .iter()
        .find(|d| d.id == id)
        .expect("deleted device is kept");
    assert_eq!(record.state, "deleted");
    assert!(record.deleted_at.is_some() && record.delete_requested_at.is_some());
    assert_eq!(state.requests["packet.devices.delete"], 1);
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn addresses_are_distinct_loopback_and_project_private() {
    let cloud = Cloud::start(fast()).await;
    let mut addresses = BTreeSet::new();
    for i in 0..4 {
        let device = cloud.create_ok(&format!("worker-{i}"), json!({})).await;
        let ips = device["ip_addresses"].as_array().unwrap();
        let v4 = |public: bool| {
            let ip = ips
                .iter()
                .find(|ip| ip["address_family"] == 4 && ip["public"] == public)
                .expect("an IPv4 of each kind");
            assert_eq!(ip["management"], true);
            assert_eq!(ip["cidr"], 31);
            assert!(ip["gateway"].is_string() && ip["network"].is_string());
            ip["address"].as_str().unwrap().parse::<Ipv4Addr>().unwrap()
        };
        let (public, private) = (v4(true), v4(false));
        assert!(
            public.is_loopback() && public != Ipv4Addr::LOCALHOST,
            "{public}"
        );
        assert!(private.is_private(), "{private}");
        assert!(addresses.insert(public) && addresses.insert(private));
        assert!(ips.iter().any(|ip| ip["address_family"] == 6));
    }
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn lists_page_and_filter() {
    let cloud = Cloud::start(fast()).await;
    for i in 0..5 {
        let tag = if i % 2 == 0 { "role:even" } else { "role:odd" };
        cloud
            .create_ok(&format!("node-{i}"), json!({"tags": ["cluster:demo", tag]}))
            .await;
    }
    let path = cloud.devices_path();
    let mut hostnames = Vec::new();
    let mut page = 1;
    loop {
        let body = cloud
            .get(&format!("{path}?per_page=2&page={page}"))
            .await
            .expect(200, "DeviceList");
        let meta = &body["meta"];
        assert_eq!(meta["total"], 5);
        assert_eq!(meta["last_page"], 3);
        assert_eq!(meta["current_page"], page);
        let href = |n: u32| json!({ "href": format!("/metal/v1{path}?page={n}&per_page=2") });
        assert_eq!(meta["first"], href(1));
        assert_eq!(meta["last"], href(3));
        assert_eq!(meta["self"], href(page));
        // `next` and `previous` are always there, null where there is no such page.
        let meta_keys = meta.as_object().unwrap();
        assert!(meta_keys.contains_key("next") && meta_keys.contains_key("previous"));
        assert_eq!(
            meta["previous"],
            if page > 1 {
                href(page - 1)
            } else {
                Value::Null
            }
        );
        assert_eq!(
            meta["next"],
            if page < 3 {
                href(page + 1)
            } else {
                Value::Null
            }
        );
        for d in body["devices"].as_array().unwrap() {
            hostnames.push(d["hostname"].as_str().unwrap().to_owned());
        }
        if !meta["next"].is_object() {
            break;
        }
        page += 1;
    }
    assert_eq!(
        hostnames,
        ["node-0", "node-1", "node-2", "node-3", "node-4"]
    );

    let even = cloud
        .get(&format!("{path}?tag=role:even"))
        .await
        .expect(200, "DeviceList");
    let even: Vec<&str> = even["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(even, ["node-0", "node-2", "node-4"]);
    // Following `meta.next` keeps the filter, as a client walking pages relies on.
    let mut href = format!("{path}?tag=role:even&per_page=1");
    let mut walked = Vec::new();
    loop {
        let body = cloud.get(&href).await.expect(200, "DeviceList");
        assert_eq!(body["meta"]["total"], 3);
        walked.extend(
            body["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["hostname"].clone()),
        );
        match body["meta"]["next"]["href"].as_str() {
            Some(next) => href = next.trim_start_matches("/metal/v1").to_owned(),
            None => break,
        }
    }
    assert_eq!(walked, ["node-0", "node-2", "node-4"]);
    let by_name = cloud
        .get(&format!("{path}?hostname=ode-3"))
        .await
        .expect(200, "DeviceList");
    assert_eq!(
        by_name["devices"].as_array().unwrap().len(),
        1,
        "hostname filters by substring"
    );
    let beyond = cloud
        .get(&format!("{path}?page=9&per_page=2"))
        .await
        .expect(200, "DeviceList");
    assert!(beyond["devices"].as_array().unwrap().is_empty());
    cloud.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_are_401_404_422_with_an_errors_list() {
    let cloud = Cloud::start(fast()).await;
    let path = cloud.devices_path();
    cloud
        .call_as(None, Method::GET, &path, None)
        .await
        .expect_error(401, "authentication");
    cloud
        .call_as(Some("wrong"), Method::GET, &path, None)
        .await
        .expect_error(401, "authentication");
    cloud
        .get("/projects/00000000-0000-4000-8000-000000000000/devices")
        .await
        .expect_error(404, "Not found");
    cloud
        .get("/devices/00000000-0000-4000-8000-000000000000")
        .await
        .expect_error(404, "Not found");

    // Valid per the schema, refused by the API's rules.
    cloud
        .create(json!({"plan": "c3.small.x86", "operating_system": "custom_ipxe", "metro": "sv"}))
        .await
        .expect_error(422, "ipxe_script_url");
    cloud
        .create(json!({"plan": "c9.huge.x86", "operating_system": "flatcar_stable", "metro": "sv"}))
        .await
        .expect_error(422, "plan");
    // Invalid per the schema: the API refuses them too.
    let missing_plan = json!({"operating_system": "flatcar_stable", "metro": "sv"});
    assert_rejects(&device_create_body(), &missing_plan);
    cloud
        .call(Method::POST, &path, Some(&missing_plan))
        .await
        .expect_error(422, "plan is required");
    let not_json = cloud
        .http
        .post(format!("{}{path}", cloud.sim.packet_url()))
        .header("X-Auth-Token", cloud.sim.token())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let wrong_type = json!({"plan": "c3.small.x86", "operating_system": "flatcar_stable", "metro": "sv", "tags": "one"});
    assert_rejects(&device_create_body(), &wrong_type);
    cloud
        .call(Method::POST, &path, Some(&wrong_type))
        .await
        .expect_error(422, "invalid request body");
    cloud
        .get(&format!("{path}?per_page=0"))
        .await
        .expect_error(422, "per_page");

    let with_ipxe = cloud
        .create_ok(
            "pxe",
            json!({"operating_system": "custom_ipxe", "ipxe_script_url": "http://127.0.0.1/boot.ipxe"}),
        )
        .await;
    assert_eq!(with_ipxe["ipxe_script_url"], "http://127.0.0.1/boot.ipxe");
    cloud.sim.shutdown().await.unwrap();
}

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
async fn reservations_next_available_none_free_and_cooldown() {
    let mut config = fast();
    config.hardware_reservations = vec![ReservationSeed {
        plan: "c3.small.x86".into(),
        facility: "sv15".into(),
        count: 2,
        id: None,
    }];
    // 3 simulated hours: 10.8 real seconds, long enough to observe, short enough to wait out.
    config.timings = Timings {
        reservation_cooldown: Duration::from_secs(3 * 3600),
        ..Timings::default()
    };
    let cloud = Cloud::start(config).await;
    let list = cloud
        .get(&format!(
            "/projects/{}/hardware-reservations",
            cloud.sim.project_id()
        ))
        .await
        .expect(200, "HardwareReservationList");
    let reservations = list["hardware_reservations"].as_array().unwrap();
    assert_eq!(reservations.len(), 2);
    assert!(reservations.iter().all(|r| r["provisionable"] == true));
    let first_id = reservations[0]["id"].as_str().unwrap().to_owned();

    let explicit = cloud
        .create_ok("c-0", json!({"hardware_reservation_id": first_id}))
        .await;
    // A reference by default, as the API gives it.
    assert_eq!(
        explicit["hardware_reservation"],
        json!({"href": format!("/metal/v1/hardware-reservations/{first_id}")})
    );
    let next = cloud
        .create_ok("c-1", json!({"hardware_reservation_id": "next-available"}))
        .await;
    let next = cloud
        .get(&format!(
            "/devices/{}?include=hardware_reservation",
            next["id"].as_str().unwrap()
        ))
        .await
        .expect(200, "Device");
    let used = next["hardware_reservation"]["id"].as_str().unwrap();
    assert_ne!(used, first_id.as_str(), "next-available took the free one");
    assert_eq!(next["hardware_reservation"]["provisionable"], false);
    assert_eq!(next["facility"]["code"], "sv15");

    let body = json!({"hostname": "c-2", "plan": "c3.small.x86", "operating_system": "flatcar_stable", "metro": "sv", "hardware_reservation_id": "next-available"});
    cloud
        .create(body)
        .await
        .expect_error(422, "no available hardware reservations");
    let taken = json!({"hostname": "c-2", "plan": "c3.small.x86", "operating_system": "flatcar_stable", "metro": "sv", "hardware_reservation_id": first_id});
    cloud
        .create(taken.clone())
        .await
        .expect_error(422, "not provisionable");
    let reservation = cloud
        .get(&format!("/hardware-reservations/{first_id}"))
        .await
        .expect(200, "HardwareReservation");
    assert_eq!(reservation["provisionable"], false);
    assert_eq!(reservation["device"]["id"], explicit["id"]);

    let id = explicit["id"].as_str().unwrap();
    assert_eq!(
        cloud
            .call(Method::DELETE, &format!("/devices/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Not right away: the machine is still being cleaned.
    cloud
        .create(taken.clone())
        .await
        .expect_error(422, "not provisionable");
    let start = Instant::now();
    loop {
        let r = cloud
            .get(&format!("/hardware-reservations/{first_id}"))
            .await
            .expect(200, "HardwareReservation");
        if r["provisionable"] == true {
            assert!(r.get("device").is_none(), "the old device is gone");
            break;
        }
        assert!(
            start.elapsed() < DEADLINE * 2,
            "reservation never provisionable again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cloud.create(taken).await.expect(201, "Device");
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

#[tokio::test]
async fn updates_catalog_and_project() {
    let cloud = Cloud::start(fast()).await;
    let device = cloud.create_ok("rename-me", json!({})).await;
    let update =
        json!({"hostname": "renamed", "tags": ["a", "b"], "userdata": "new", "locked": true});
    assert_valid(&component("DeviceUpdateInput"), &update, "update request");
    let path = format!("/devices/{}", device["id"].as_str().unwrap());
    let updated = cloud
        .call(Method::PUT, &path, Some(&update))
        .await
        .expect(200, "Device");
    assert_eq!(updated["hostname"], "renamed");
    assert_eq!(updated["tags"], json!(["a", "b"]));
    assert_eq!(updated["userdata"], "new");
    cloud
        .call(Method::DELETE, &path, None)
        .await
        .expect_error(422, "locked");

    let project = cloud
        .get(&format!("/projects/{}", cloud.sim.project_id()))
        .await
        .expect(200, "Project");
    assert_eq!(project["devices"].as_array().unwrap().len(), 1);
    let plans = cloud.get("/plans").await.expect(200, "PlanList");
    let arm = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["slug"].as_str().unwrap().contains(".arm"))
        .count();
    assert!(arm >= 1);
    cloud
        .get(&format!("/projects/{}/plans", cloud.sim.project_id()))
        .await
        .expect(200, "PlanList");
    cloud.get("/facilities").await.expect(200, "FacilityList");
    cloud
        .get("/locations/metros")
        .await
        .expect(200, "MetroList");
    let os = cloud
        .get("/operating-systems")
        .await
        .expect(200, "OperatingSystemList");
    assert!(
        os["operating_systems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["slug"] == "flatcar_stable")
    );

    let arm_device = cloud
        .create_ok("arm-0", json!({"plan": "c3.large.arm64"}))
        .await;
    let record = cloud
        .sim
        .state()
        .devices
        .into_iter()
        .find(|d| d.id == arm_device["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(record.arch, sim::Arch::Arm64);
    cloud.sim.shutdown().await.unwrap();
}

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
