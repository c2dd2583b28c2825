//! The Packet client against the simulator's Packet API.

use std::time::Duration;

use steps::packet::{PacketClient, Timeouts, Token};

/// A simulator run with a time scale counts `Retry-After` in its own seconds; the client told
/// that scale waits that many of them, not as many real seconds (at 0.01 a limit's window of a
/// simulated minute is 0.6 real seconds: a `Retry-After: 60` read as real seconds would stall a
/// run a hundred times too long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_counts_seconds_of_the_servers_clock() {
    const SCALE: f64 = 0.01;
    let mut config = sim::SimConfig::new(std::env::temp_dir());
    config.time_scale = SCALE;
    // One request per window of 1000 simulated seconds: 10 real seconds.
    config.rate_limit = sim::RateLimit {
        requests: 1,
        window: Duration::from_secs(1000),
    };
    let sim = sim::start(config).await.expect("start the simulator");
    assert_eq!(sim.time_scale(), SCALE);
    let client = PacketClient::new(
        &sim.packet_url(),
        &sim.project_id().to_string(),
        &Token::new(sim.token(), &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .unwrap()
    .server_time_scale(SCALE);
    client
        .check_project()
        .await
        .expect("the window's one request");
    let refused = client
        .check_project()
        .await
        .expect_err("a second request in the window");
    let wait = refused.retry_after().expect("a Retry-After");
    // Whole simulated seconds, rounded up: at most one of them (10 ms) past the window's end.
    assert!(
        wait > Duration::from_secs(9) && wait <= Duration::from_millis(10_010),
        "waits {wait:?}, not the rest of a 10 s window"
    );
    sim.shutdown().await.unwrap();
}
