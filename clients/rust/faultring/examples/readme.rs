//! The README's example, kept here so that it compiles with every `cargo test`.
//!
//! ```text
//! faultring serve --socket-path /tmp/faultring.sock &
//! cargo run --example readme -- /tmp/faultring.sock
//! ```
use std::time::{Duration, Instant};

use faultring::{Abi, Client, Code, Response, WaitOutcome};

fn main() -> Result<(), faultring::Error> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/tmp/faultring.sock".into());
    let mut client = Client::connect(&path)?; // HELLO
    let mut queue = client.attach(Abi::V2, &[1, 2, 3, 4])?; // 4 fds, validated, mapped, negotiated
    let (mut records, mut groups) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match queue.wait(Duration::from_millis(100))? {
            WaitOutcome::Ready => {}
            WaitOutcome::TimedOut => continue,
            WaitOutcome::Closed => break, // the service closed the queue (SIGTERM, BYE)
            WaitOutcome::ServiceGone => break, // the service died (SIGKILL)
        }
        let batch = queue.batch()?; // zero-copy views of fault_cons..fault_prod
        for record in batch.iter() {
            records += 1;
            if let Some(group) = record.group_end()? {
                // ABI 2: the cookie names the group; ABI 1: PASID + PRGI.
                batch.push_response_wait(&Response::for_group(&group, Code::Success), Duration::from_secs(1))?;
                groups += 1;
            }
        }
        batch.commit()?; // resp_prod (release), fence, ring the producer if it sleeps
    } // each batch drops here: fault_cons (release) hands the slots back
    let lost = queue.sequence_stats().reported_lost;
    println!("{records} records, {groups} groups answered, {lost} lost");
    drop(queue);
    client.bye()
}
