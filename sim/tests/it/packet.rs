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
use sim::{RateLimit, ReservationSeed, SimConfig, SimHandle, Timings};

use crate::openapi::{assert_rejects, assert_valid, component, device_create_body};

/// Generous: a busy 2-core machine may run several test binaries at once.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) struct Cloud {
    pub(crate) sim: SimHandle,
    pub(crate) http: reqwest::Client,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
    pub(crate) context: String,
}

impl Reply {
    /// Asserts the status and that the body matches the named component schema.
    pub(crate) fn expect(&self, status: u16, schema: &str) -> Value {
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
    pub(crate) fn expect_error(&self, status: u16, needle: &str) -> Value {
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

    pub(crate) fn header(&self, name: &str) -> Option<u64> {
        self.headers.get(name)?.to_str().ok()?.parse().ok()
    }
}

impl Cloud {
    pub(crate) async fn start(config: SimConfig) -> Cloud {
        let sim = sim::start(config).await.expect("start the simulator");
        Cloud {
            sim,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_as(Some(self.sim.token()), method, path, body)
            .await
    }

    pub(crate) async fn call_as(
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

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub(crate) fn devices_path(&self) -> String {
        format!("/projects/{}/devices", self.sim.project_id())
    }

    /// Creates a device with a body validated against the API's request schema.
    pub(crate) async fn create(&self, body: Value) -> Reply {
        assert_valid(&device_create_body(), &body, "create request");
        self.call(Method::POST, &self.devices_path(), Some(&body))
            .await
    }

    pub(crate) async fn create_ok(&self, hostname: &str, extra: Value) -> Value {
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
    pub(crate) async fn poll_device(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&Reply) -> bool,
    ) -> Reply {
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

    pub(crate) async fn wait_state(&self, id: &str, state: &str) -> Value {
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
pub(crate) async fn rate_limited(requests: u32) -> (Cloud, String) {
    let mut config = fast();
    config.rate_limit = RateLimit {
        requests,
        window: Duration::from_secs(600).div_f64(config.time_scale),
    };
    let cloud = Cloud::start(config).await;
    let path = format!("/projects/{}", cloud.sim.project_id());
    (cloud, path)
}

pub(crate) fn fast() -> SimConfig {
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
