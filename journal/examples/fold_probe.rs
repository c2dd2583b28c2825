//! Opens the journal in the directory given as argument (profiling aid: run under callgrind).
fn main() {
    let dir = std::env::args().nth(1).expect("journal dir");
    let t0 = std::time::Instant::now();
    let journal = journal::Journal::open(std::path::Path::new(&dir)).expect("open");
    let events: u64 = journal.with_state(|s| s.runs.values().map(|r| r.events).sum());
    println!("{events} events in {:?}", t0.elapsed());
}
