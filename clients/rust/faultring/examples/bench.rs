//! Consumes and answers everything for `--seconds`, then prints one JSON line:
//! `{"records":N,"groups":N,"seconds":S}` (groups = page-request groups answered).
//!
//! ```text
//! cargo run --release --example bench -- --socket-path P --devices 1 2 3 4 --seconds 5 [--abi 2]
//! ```
//!
//! ABI 1 queues serve one device each, so with `--abi 1` the bench opens one
//! connection per device and serves them round-robin from one thread.

use std::time::{Duration, Instant};

use faultring::{Abi, Client, Code, Queue, Response, WaitOutcome};

fn usage() -> ! {
    eprintln!("usage: bench --socket-path P --devices ID... --seconds S [--abi 1|2]");
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut path, mut devices, mut seconds, mut abi) = (None, Vec::new(), 5.0f64, Abi::V2);
    let mut it = std::env::args().skip(1).peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket-path" => path = it.next(),
            "--devices" => {
                while let Some(d) = it.peek().and_then(|v| v.parse::<u32>().ok()) {
                    devices.push(d);
                    it.next();
                }
            }
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--abi" => {
                abi = match it.next().as_deref() {
                    Some("1") => Abi::V1,
                    Some("2") => Abi::V2,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    let path = path.unwrap_or_else(|| usage());
    if devices.is_empty() {
        usage();
    }
    // One (client, queue) per ABI 1 device, or one for all ABI 2 devices.
    let sets: Vec<Vec<u32>> = match abi {
        Abi::V1 => devices.iter().map(|d| vec![*d]).collect(),
        Abi::V2 => vec![devices.clone()],
    };
    let mut conns: Vec<(Client, Queue)> = Vec::new();
    for set in &sets {
        let mut c = Client::connect(&path)?;
        let q = c.attach(abi, set)?;
        conns.push((c, q));
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (mut records, mut groups) = (0u64, 0u64);
    let single = conns.len() == 1;
    'outer: while Instant::now() < end {
        let mut idle = true;
        for (_, q) in conns.iter_mut() {
            if single {
                match q.wait(end.saturating_duration_since(Instant::now()))? {
                    WaitOutcome::Ready => {}
                    WaitOutcome::TimedOut => break 'outer,
                    WaitOutcome::Closed | WaitOutcome::ServiceGone => break 'outer,
                }
            }
            let batch = q.batch()?;
            if batch.is_empty() {
                continue;
            }
            idle = false;
            records += batch.len() as u64;
            for r in batch.iter() {
                if let Some(g) = r.group_end()? {
                    batch.push_response_wait(&Response::for_group(&g, Code::Success), Duration::from_secs(1))?;
                    groups += 1;
                }
            }
            batch.commit()?;
        }
        if idle && !single {
            // Several queues: a short sleep on the first one's doorbell.
            if let Some((_, q)) = conns.first_mut() {
                q.wait(Duration::from_micros(200))?;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{{\"records\":{records},\"groups\":{groups},\"seconds\":{secs:.3}}}");
    for (mut c, q) in conns {
        drop(q);
        let _ = c.bye();
    }
    Ok(())
}
