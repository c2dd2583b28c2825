//! What sushy-tools does not do, held against a scripted Redfish service that answers as
//! DSP0266 says a BMC may: a session service (`X-Auth-Token`, the session deleted at the end),
//! an ETag honoured with `If-Match`, `202 Accepted` with a task monitor, a busy BMC, and reset
//! types chosen from the system's allowable values.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use steps::packet::Timeouts;
use steps::redfish::{BmcCredentials, Polling, RedfishClient, RedfishErrorKind, Reset};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const SYSTEM: &str = "/redfish/v1/Systems/1";

/// A request as the service saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra headers, JSON body.
type Reply = (u16, Vec<(&'static str, String)>, Value);

/// The answers still to give to a `(method, path)`.
type Queue = ((String, String), VecDeque<Reply>);

/// Answers each `(method, path)` from its queue (the last answer repeats); records requests.
#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<Vec<Queue>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    fn on(&self, method: &str, path: &str, replies: Vec<Reply>) -> &Self {
        self.replies
            .lock()
            .unwrap()
            .push(((method.into(), path.into()), replies.into()));
        self
    }

    /// A service answering its root, which lists a session service when `with_sessions`.
    fn rooted(with_sessions: bool) -> Script {
        let script = Script::default();
        script.on(
            "GET",
            "/redfish/v1/",
            vec![(200, vec![], root(with_sessions))],
        );
        script
    }

    /// A service without sessions: its root, and the systems it lists to prove basic auth.
    fn basic() -> Script {
        let script = Script::rooted(false);
        script.on(
            "GET",
            "/redfish/v1/Systems",
            vec![(200, vec![], json!({"Members": []}))],
        );
        script
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn reply(&self, method: &str, path: &str) -> Reply {
        let mut replies = self.replies.lock().unwrap();
        let Some((_, queue)) = replies
            .iter_mut()
            .find(|((m, p), _)| m == method && p == path)
        else {
            return (
                404,
                vec![],
                json!({"error": {"message": format!("no {path}")}}),
            );
        };
        if queue.len() > 1 {
            queue.pop_front().unwrap()
        } else {
            queue.front().cloned().unwrap()
        }
    }

    /// Serves on a loopback port; returns the base URL.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = script.clone();
                tokio::spawn(async move { script.connection(stream).await });
            }
        });
        url
    }

    async fn connection(&self, stream: tokio::net::TcpStream) {
        let mut stream = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                stream.read_line(&mut h).await.unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await.unwrap();
            self.seen.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.clone(),
                headers,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            let (status, extra, body) = self.reply(&method, &path);
            let body = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let out = stream.get_mut();
            if out.write_all(head.as_bytes()).await.is_err()
                || out.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
        }
    }
}

fn root(with_sessions: bool) -> Value {
    let mut root = json!({
        "@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.17.0",
        "Systems": {"@odata.id": "/redfish/v1/Systems"}
    });
    if with_sessions {
        root["Links"] = json!({"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}});
    }
    root
}

fn system(power: &str, allowed: &[&str], etag: Option<&str>) -> Value {
    let mut s = json!({
        "@odata.id": SYSTEM, "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "Id": "1", "Name": "rack-a1", "PowerState": power,
        "Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"},
        "Actions": {"#ComputerSystem.Reset": {
            "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": allowed
        }}
    });
    if let Some(etag) = etag {
        s["@odata.etag"] = etag.into();
    }
    s
}

fn polling() -> Polling {
    Polling {
        every: Duration::from_millis(20),
        within: Duration::from_secs(5),
    }
}

async fn connect(url: &str) -> Result<RedfishClient, steps::redfish::RedfishError> {
    RedfishClient::connect(
        url,
        &BmcCredentials::new("admin", "scripted-pass-93b1", &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .await
}

#[tokio::test]
async fn a_session_is_opened_used_and_deleted() {
    let script = Script::rooted(true);
    script
        .on("POST", "/redfish/v1/SessionService/Sessions", vec![(
            201,
            vec![("X-Auth-Token", "tok-5e551on".into()), ("Location", "/redfish/v1/SessionService/Sessions/7".into())],
            json!({"@odata.id": "/redfish/v1/SessionService/Sessions/7", "@odata.type": "#Session.v1_5_0.Session", "Id": "7", "Name": "Session"}),
        )])
        .on("GET", SYSTEM, vec![(200, vec![], system("On", &["On"], None))])
        .on("DELETE", "/redfish/v1/SessionService/Sessions/7", vec![(204, vec![], Value::Null)]);
    let url = script.serve().await;
    let client = connect(&url).await.unwrap();
    assert!(client.has_session());
    client.system(SYSTEM).await.unwrap();
    client.close().await.unwrap();
    let seen = script.seen();
    let login = &seen[1];
    assert_eq!(
        login.body,
        json!({"UserName": "admin", "Password": "scripted-pass-93b1"})
    );
    assert_eq!(
        login.header("authorization"),
        None,
        "a session is opened without basic auth"
    );
    let read = &seen[2];
    assert_eq!(read.header("x-auth-token"), Some("tok-5e551on"));
    assert_eq!(read.header("authorization"), None);
    assert_eq!(
        (seen[3].method.as_str(), seen[3].path.as_str()),
        ("DELETE", "/redfish/v1/SessionService/Sessions/7")
    );
    assert_eq!(seen[3].header("x-auth-token"), Some("tok-5e551on"));
}

#[tokio::test]
async fn a_refused_session_is_named_and_permanent() {
    let script = Script::rooted(true);
    script.on(
        "POST",
        "/redfish/v1/SessionService/Sessions",
        vec![(
            401,
            vec![],
            json!({"error": {"message": "Invalid credentials"}}),
        )],
    );
    let url = script.serve().await;
    let err = connect(&url).await.err().expect("refused");
    assert_eq!(*err.kind, RedfishErrorKind::Unauthorized);
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.contains("Invalid credentials"),
        "{text}"
    );
    assert!(!text.contains("scripted-pass-93b1"), "{text}");
}

#[tokio::test]
async fn the_boot_override_honours_the_etag() {
    let script = Script::basic();
    script
        .on(
            "GET",
            SYSTEM,
            vec![(
                200,
                vec![("ETag", "W/\"abc\"".into())],
                system("Off", &["On"], Some("W/\"old\"")),
            )],
        )
        .on("PATCH", SYSTEM, vec![(204, vec![], Value::Null)]);
    let url = script.serve().await;
    let client = connect(&url).await.unwrap();
    assert!(!client.has_session());
    let read = client.system(SYSTEM).await.unwrap();
    assert_eq!(
        read.odata_etag.as_deref(),
        Some("W/\"abc\""),
        "the header wins"
    );
    client.boot_pxe_once(&read, &polling()).await.unwrap();
    let patch = script
        .seen()
        .into_iter()
        .find(|s| s.method == "PATCH")
        .unwrap();
    assert_eq!(patch.header("if-match"), Some("W/\"abc\""));
    assert_eq!(
        patch.body,
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})
    );
    assert!(
        patch
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))
    );
}

#[tokio::test]
async fn a_changed_system_is_a_retryable_412() {
    let script = Script::basic();
    script
        .on(
            "GET",
            SYSTEM,
            vec![(200, vec![], system("Off", &["On"], Some("W/\"old\"")))],
        )
        .on(
            "PATCH",
            SYSTEM,
            vec![(412, vec![], json!({"error": {"message": "ETag mismatch"}}))],
        );
    let url = script.serve().await;
    let client = connect(&url).await.unwrap();
    let read = client.system(SYSTEM).await.unwrap();
    let err = client.boot_pxe_once(&read, &polling()).await.unwrap_err();
    assert_eq!(*err.kind, RedfishErrorKind::Changed);
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_202_is_followed_through_its_task_monitor() {
    let script = Script::basic();
    let task = |state: &str| json!({"@odata.id": "/redfish/v1/TaskService/Tasks/9", "@odata.type": "#Task.v1_7_0.Task", "Id": "9", "Name": "Reset", "TaskState": state});
    script
        .on(
            "GET",
            SYSTEM,
            vec![(200, vec![], system("Off", &["ForceOn", "ForceOff"], None))],
        )
        .on(
            "POST",
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            vec![(
                202,
                vec![("Location", "/redfish/v1/TaskService/TaskMonitors/9".into())],
                task("New"),
            )],
        )
        .on(
            "GET",
            "/redfish/v1/TaskService/TaskMonitors/9",
            vec![
                (202, vec![], task("Running")),
                (202, vec![], task("Running")),
                (200, vec![], task("Completed")),
            ],
        );
    let url = script.serve().await;
    let client = connect(&url).await.unwrap();
    let read = client.system(SYSTEM).await.unwrap();
    let sent = client.reset(&read, Reset::On, &polling()).await.unwrap();
    assert_eq!(sent, "ForceOn", "On is not allowed here; ForceOn is");
    let seen = script.seen();
    let post = seen.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(post.body, json!({"ResetType": "ForceOn"}));
    let monitor_reads = seen
        .iter()
        .filter(|s| s.path.ends_with("TaskMonitors/9"))
        .count();
    assert_eq!(monitor_reads, 3, "read until it stopped answering 202");
}

#[tokio::test]
async fn a_failed_task_and_a_reset_not_allowed_are_named() {
    let script = Script::rooted(false);
    script
        .on("GET", "/redfish/v1/Systems", vec![(200, vec![], json!({"Members": []}))])
        .on("GET", SYSTEM, vec![(200, vec![], system("On", &["ForceOff", "GracefulRestart"], None))])
        .on("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", vec![(202, vec![("Location", "/redfish/v1/TaskService/TaskMonitors/3".into())], Value::Null)])
        .on("GET", "/redfish/v1/TaskService/TaskMonitors/3", vec![(200, vec![], json!({
            "@odata.id": "/redfish/v1/TaskService/Tasks/3", "@odata.type": "#Task.v1_7_0.Task", "Id": "3", "Name": "Reset",
            "TaskState": "Exception", "Messages": []
        }))]);
    let url = script.serve().await;
    let client = connect(&url).await.unwrap();
    let read = client.system(SYSTEM).await.unwrap();
    let err = client
        .reset(&read, Reset::ForceRestart, &polling())
        .await
        .unwrap_err();
    assert!(
        matches!(&*err.kind, RedfishErrorKind::ResetNotAllowed { allowed, .. } if allowed == &["ForceOff", "GracefulRestart"]),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("ForceRestart, PowerCycle"),
        "{err}"
    );
    let err = client
        .reset(&read, Reset::ForceOff, &polling())
        .await
        .unwrap_err();
    assert_eq!(
        *err.kind,
        RedfishErrorKind::TaskFailed {
            state: "Exception".into()
        }
    );
    assert!(err.to_string().contains(&format!("{url}{SYSTEM}")), "{err}");
}

#[tokio::test]
async fn a_busy_or_failing_bmc_is_retryable_and_named() {
    let script = Script::basic();
    script.on(
        "GET",
        SYSTEM,
        vec![
            (
                503,
                vec![("Retry-After", "7".into())],
                json!({"error": {"message": "BMC busy"}}),
            ),
            (500, vec![], json!({"error": {"message": "internal"}})),
        ],
    );
    let url = script.serve().await;
    let client = connect(&url).await.unwrap();
    let busy = client.system(SYSTEM).await.unwrap_err();
    assert_eq!(busy.retry_after(), Some(Duration::from_secs(7)));
    assert!(busy.is_retryable());
    let failed = client.system(SYSTEM).await.unwrap_err();
    assert_eq!(*failed.kind, RedfishErrorKind::Server { status: 500 });
    assert!(failed.is_retryable());
    assert!(
        failed.to_string().contains(&format!("{url}{SYSTEM}")),
        "{failed}"
    );
}
