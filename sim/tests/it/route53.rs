//! Route53 contract tests: the same cases run against the simulator and against moto's server,
//! over the wire with a plain HTTP client, to show both speak the same XML with the same
//! semantics. Where moto is known to differ from AWS, the case says so and checks AWS's behavior
//! on the simulator only.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

const NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
/// Any SigV4 header is accepted; the credential scope tells moto which service is called.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/route53/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sim,
    Moto,
}

struct Client {
    base: String,
    http: reqwest::Client,
    backend: Backend,
}

struct Reply {
    status: StatusCode,
    body: String,
    backend: Backend,
}

impl Reply {
    /// Asserts the status, naming the backend and showing the body otherwise.
    fn assert_status(&self, status: StatusCode) -> &Reply {
        assert_eq!(self.status, status, "{:?}: {}", self.backend, self.body);
        self
    }

    fn tag(&self, name: &str) -> Option<String> {
        tags(&self.body, name).into_iter().next()
    }

    fn error_code(&self) -> Option<String> {
        self.tag("Code")
    }
}

/// The text of every `<name>` element (no nesting of the same name in Route53 documents).
fn tags(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + close.len()..];
    }
    out
}

impl Client {
    fn new(base: String, backend: Backend) -> Client {
        Client {
            base,
            http: reqwest::Client::new(),
            backend,
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", AUTH)
            .header("X-Amz-Date", "20240101T000000Z");
        if let Some(body) = body {
            request = request.header("Content-Type", "application/xml").body(body);
        }
        let response = request.send().await.expect("send");
        Reply {
            status: response.status(),
            body: response.text().await.unwrap_or_default(),
            backend: self.backend,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// One change of one record set: (action, name, type, values).
    async fn change_one(&self, zone: &str, change: (&str, &str, &str, &[&str])) -> Reply {
        self.change(zone, &[change]).await
    }

    async fn create_zone(&self, name: &str, reference: &str) -> Reply {
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><CreateHostedZoneRequest xmlns="{NS}"><Name>{name}</Name><CallerReference>{reference}</CallerReference><HostedZoneConfig><Comment>test</Comment></HostedZoneConfig></CreateHostedZoneRequest>"#
        );
        self.send(reqwest::Method::POST, "/2013-04-01/hostedzone", Some(body))
            .await
    }

    async fn change(&self, zone: &str, changes: &[(&str, &str, &str, &[&str])]) -> Reply {
        let changes: String = changes
            .iter()
            .map(|(action, name, rtype, values)| {
                let records: String = values
                    .iter()
                    .map(|v| format!("<ResourceRecord><Value>{v}</Value></ResourceRecord>"))
                    .collect();
                format!("<Change><Action>{action}</Action><ResourceRecordSet><Name>{name}</Name><Type>{rtype}</Type><TTL>300</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change>")
            })
            .collect();
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="{NS}"><ChangeBatch><Comment>loko</Comment><Changes>{changes}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#
        );
        self.send(
            reqwest::Method::POST,
            &format!("/2013-04-01/hostedzone/{zone}/rrset/"),
            Some(body),
        )
        .await
    }

    async fn list(&self, zone: &str, query: &str) -> Reply {
        self.get(&format!("/2013-04-01/hostedzone/{zone}/rrset?{query}"))
            .await
    }

    /// Every (name, type, values) of the zone, following `NextRecordName`/`NextRecordType`
    /// pages of `page_size`.
    async fn list_all(&self, zone: &str, page_size: usize) -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        let mut query = format!("maxitems={page_size}");
        loop {
            let reply = self.list(zone, &query).await;
            reply.assert_status(StatusCode::OK);
            for set in tags(&reply.body, "ResourceRecordSet") {
                let name = tags(&set, "Name").remove(0);
                let rtype = tags(&set, "Type").remove(0);
                out.push((name, rtype, tags(&set, "Value")));
            }
            if reply.tag("IsTruncated").as_deref() != Some("true") {
                return out;
            }
            let name = reply
                .tag("NextRecordName")
                .expect("NextRecordName when truncated");
            let rtype = reply
                .tag("NextRecordType")
                .expect("NextRecordType when truncated");
            query = format!("maxitems={page_size}&name={name}&type={rtype}");
        }
    }
}

/// The cases; returns the fully paged listing for comparison across backends.
async fn run_cases(client: &Client) -> Vec<(String, String, Vec<String>)> {
    let b = client.backend;
    let created = client.create_zone("r53.example.com", "ref-1").await;
    created.assert_status(StatusCode::CREATED);
    assert!(created.body.contains(NS), "{b:?}: namespace");
    let zone_id = created.tag("Id").expect("zone id");
    assert!(zone_id.starts_with("/hostedzone/"), "{b:?}: {zone_id}");
    let zone = zone_id.trim_start_matches("/hostedzone/").to_owned();
    assert_eq!(created.tag("Name").as_deref(), Some("r53.example.com."));
    assert!(
        !tags(&created.body, "NameServer").is_empty(),
        "{b:?}: delegation set"
    );

    let got = client.get(&format!("/2013-04-01/hostedzone/{zone}")).await;
    got.assert_status(StatusCode::OK);
    assert_eq!(got.tag("Name").as_deref(), Some("r53.example.com."));
    let listed = client.get("/2013-04-01/hostedzone").await;
    assert!(
        listed.body.contains(&zone),
        "{b:?}: ListHostedZones shows the zone"
    );

    let missing = client.get("/2013-04-01/hostedzone/ZNOSUCHZONE000").await;
    missing.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(
        missing.error_code().as_deref(),
        Some("NoSuchHostedZone"),
        "{b:?}"
    );
    assert!(
        missing.body.contains("<ErrorResponse"),
        "{b:?}: {}",
        missing.body
    );

    let api = (
        "CREATE",
        "api.r53.example.com",
        "A",
        &["127.10.0.1", "127.10.0.3"][..],
    );
    let first = client.change_one(&zone, api).await;
    first.assert_status(StatusCode::OK);
    let change_id = first.tag("Id").expect("change id");
    assert!(change_id.starts_with("/change/"), "{b:?}: {change_id}");
    let status = first.tag("Status").unwrap();
    assert!(status == "PENDING" || status == "INSYNC", "{b:?}: {status}");

    // CREATE of an existing record set (the Terraform AWS provider 2.0 lesson).
    let again = client.change_one(&zone, api).await;
    again.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        again.error_code().as_deref(),
        Some("InvalidChangeBatch"),
        "{b:?}"
    );
    assert!(
        again.body.contains("already exists"),
        "{b:?}: {}",
        again.body
    );

    client
        .change_one(
            &zone,
            ("UPSERT", "api.r53.example.com", "A", &["127.10.0.5"]),
        )
        .await
        .assert_status(StatusCode::OK);

    for i in 0..5 {
        let name = format!("n{i}.r53.example.com");
        client
            .change_one(&zone, ("CREATE", &name, "A", &["127.10.1.1"]))
            .await
            .assert_status(StatusCode::OK);
    }
    client
        .change_one(
            &zone,
            ("CREATE", "n1.r53.example.com", "TXT", &["\"owner=loko\""]),
        )
        .await
        .assert_status(StatusCode::OK);

    // Deleting with other values or a missing set fails: 400 on both; AWS (and the simulator)
    // say InvalidChangeBatch, moto says InvalidInput.
    let wrong = client
        .change_one(
            &zone,
            ("DELETE", "api.r53.example.com", "A", &["127.10.0.9"]),
        )
        .await;
    wrong.assert_status(StatusCode::BAD_REQUEST);
    let absent = client
        .change_one(
            &zone,
            ("DELETE", "nope.r53.example.com", "A", &["127.10.0.9"]),
        )
        .await;
    absent.assert_status(StatusCode::BAD_REQUEST);
    if b == Backend::Sim {
        assert_eq!(wrong.error_code().as_deref(), Some("InvalidChangeBatch"));
        assert!(
            wrong.body.contains("do not match the current values"),
            "{}",
            wrong.body
        );
        assert_eq!(absent.error_code().as_deref(), Some("InvalidChangeBatch"));
        assert!(
            absent.body.contains("but it was not found"),
            "{}",
            absent.body
        );
        // moto accepts a CREATE with other values over an existing set; AWS does not.
        let other = client
            .change_one(
                &zone,
                ("CREATE", "api.r53.example.com", "A", &["127.10.0.7"]),
            )
            .await;
        assert_eq!(other.error_code().as_deref(), Some("InvalidChangeBatch"));
        let outside = client
            .change_one(&zone, ("CREATE", "api.other.org", "A", &["127.10.0.7"]))
            .await;
        assert_eq!(outside.error_code().as_deref(), Some("InvalidChangeBatch"));
        assert!(
            outside.body.contains("not permitted in zone"),
            "{}",
            outside.body
        );
    }

    client
        .change_one(
            &zone,
            ("DELETE", "n4.r53.example.com", "A", &["127.10.1.1"]),
        )
        .await
        .assert_status(StatusCode::OK);

    let page = client.list(&zone, "maxitems=2").await;
    assert_eq!(
        page.tag("IsTruncated").as_deref(),
        Some("true"),
        "{b:?}: {}",
        page.body
    );
    assert_eq!(page.tag("MaxItems").as_deref(), Some("2"), "{b:?}");
    client
        .list(&zone, "type=A")
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    let change_path = format!("/2013-04-01{change_id}");
    client.get(&change_path).await.assert_status(StatusCode::OK);
    let start = Instant::now();
    loop {
        let change = client.get(&change_path).await;
        if change.tag("Status").as_deref() == Some("INSYNC") {
            break;
        }
        assert_eq!(
            change.tag("Status").as_deref(),
            Some("PENDING"),
            "{b:?}: {}",
            change.body
        );
        assert!(start.elapsed() < DEADLINE, "{b:?}: change never INSYNC");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    client.list_all(&zone, 2).await
}

/// A simulator on a fast clock, and a client of its Route53.
async fn start_sim() -> (sim::SimHandle, Client) {
    let mut config = sim::SimConfig::new(std::env::temp_dir());
    config.time_scale = 0.001;
    let handle = sim::start(config).await.unwrap();
    let client = Client::new(handle.route53_url(), Backend::Sim);
    (handle, client)
}

#[tokio::test]
async fn simulator_route53_semantics() {
    let (handle, client) = start_sim().await;
    let listing = run_cases(&client).await;
    assert_eq!(listing, expected_listing(&listing));

    // A change starts PENDING and becomes INSYNC on the scaled clock.
    let zone = handle.hosted_zone_id().to_owned();
    let r = client
        .change_one(&zone, ("UPSERT", "x.example.com", "A", &["127.10.0.1"]))
        .await;
    assert_eq!(r.tag("Status").as_deref(), Some("PENDING"));

    // Throttling is a 400 with the code SDKs retry on.
    handle
        .set_faults(sim::FaultPlan::seeded(1).operation(
            "route53.ChangeResourceRecordSets",
            sim::OperationFaults::default().rate_limited_burst(1, 2),
        ))
        .unwrap();
    let upsert = ("UPSERT", "x.example.com", "A", &["127.10.0.3"][..]);
    let throttled = client.change_one(&zone, upsert).await;
    throttled.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(throttled.error_code().as_deref(), Some("Throttling"));
    client
        .change_one(&zone, upsert)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(handle.state().rate_limited_responses, 1);

    // Unsigned requests are refused.
    let unsigned = reqwest::get(format!("{}/2013-04-01/hostedzone", handle.route53_url()))
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    let state = handle.state();
    assert!(state.requests["route53.ChangeResourceRecordSets"] >= 10);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_simulator_configured_without_a_zone_starts_with_none() {
    // The demo of a rack whose spec names its API address has no zone to seed.
    let mut config = sim::SimConfig::new(std::env::temp_dir());
    config.hosted_zone = String::new();
    let handle = sim::start(config).await.unwrap();
    assert_eq!(handle.hosted_zone_id(), "");
    assert!(handle.state().hosted_zones.is_empty());
    handle.shutdown().await.unwrap();
}

/// What the zone holds after the cases, in AWS's order (labels compared from the right).
fn expected_listing(
    actual: &[(String, String, Vec<String>)],
) -> Vec<(String, String, Vec<String>)> {
    let apex = actual
        .iter()
        .filter(|(n, _, _)| n == "r53.example.com.")
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        apex.iter().map(|(_, t, _)| t.as_str()).collect::<Vec<_>>(),
        ["NS", "SOA"]
    );
    let mut expected = apex;
    let a = |n: &str, t: &str, v: &str| (n.to_owned(), t.to_owned(), vec![v.to_owned()]);
    expected.push(a("api.r53.example.com.", "A", "127.10.0.5"));
    expected.push(a("n0.r53.example.com.", "A", "127.10.1.1"));
    expected.push(a("n1.r53.example.com.", "A", "127.10.1.1"));
    expected.push(a("n1.r53.example.com.", "TXT", "\"owner=loko\""));
    expected.push(a("n2.r53.example.com.", "A", "127.10.1.1"));
    expected.push(a("n3.r53.example.com.", "A", "127.10.1.1"));
    expected
}

struct Moto {
    child: Child,
    base: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_moto() -> Option<Moto> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = match Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            println!("skipping the moto comparison: cannot run moto_server ({e})");
            return None;
        }
    };
    let moto = Moto {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    loop {
        if reqwest::get(format!("{}/moto-api/", moto.base))
            .await
            .is_ok()
        {
            return Some(moto);
        }
        assert!(
            start.elapsed() < DEADLINE,
            "moto_server did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn moto_agrees_with_the_simulator() {
    let Some(moto) = start_moto().await else {
        return;
    };
    let moto_client = Client::new(moto.base.clone(), Backend::Moto);
    let moto_listing = run_cases(&moto_client).await;

    let (handle, sim_client) = start_sim().await;
    let sim_listing = run_cases(&sim_client).await;
    // Name servers and the SOA differ by design; names, types, order and our values must not.
    let comparable = |listing: &[(String, String, Vec<String>)]| {
        listing
            .iter()
            .map(|(n, t, v)| {
                (
                    n.clone(),
                    t.clone(),
                    if t == "NS" || t == "SOA" {
                        Vec::new()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(comparable(&sim_listing), comparable(&moto_listing));
    handle.shutdown().await.unwrap();
}
