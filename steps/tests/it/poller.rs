//! The shared device poller against the simulator's Packet API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use steps::packet::{DevicePoller, PacketClient, PollPace, Timeouts, Token};

/// Steps that begin together share the poll the first of them woke: a lookup that may read a
/// listing requested since its attempt began does not wait a whole interval for the next poll
/// (with `fresh_listing`'s "requested after this call", every step but the first did, which
/// put a hundred deletes two simulated seconds behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_that_began_together_share_one_poll() {
    let mut config = sim::SimConfig::new(std::env::temp_dir());
    config.rate_limit.requests = 1_000_000;
    let sim = sim::start(config).await.expect("start the simulator");
    let client = PacketClient::new(
        &sim.packet_url(),
        &sim.project_id().to_string(),
        &Token::new(sim.token(), &journal::Redactor::new()),
        &Timeouts::default(),
    )
    .unwrap();
    // A pace far longer than the test: a second poll would time the lookups out.
    let pace = PollPace {
        per_page: Duration::from_secs(600),
    };
    let poller = Arc::new(DevicePoller::spawn(
        Arc::new(client),
        "loko:cluster=supernova".into(),
        pace,
    ));
    let began = Instant::now();
    let first = poller.listing_since(began).await.unwrap().unwrap();
    assert_eq!(poller.polls(), 1);

    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let poller = Arc::clone(&poller);
        lookups.spawn(async move { poller.listing_since(began).await });
    }
    let all = tokio::time::timeout(Duration::from_secs(30), lookups.join_all())
        .await
        .expect("the lookups waited for another poll");
    for listing in all {
        assert_eq!(listing.unwrap().unwrap().generation, first.generation);
    }
    assert_eq!(poller.polls(), 1, "the lookups made the poller poll again");

    // A lookup that must see what happened after a poll waits for the next one.
    let after = Instant::now();
    let waiting = tokio::spawn({
        let poller = Arc::clone(&poller);
        async move { poller.listing_since(after).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "a listing older than `since` was taken"
    );
    waiting.abort();
    sim.shutdown().await.unwrap();
}
