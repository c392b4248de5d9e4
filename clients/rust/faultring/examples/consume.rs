//! Connects to `faultring serve`, attaches devices, consumes every record and
//! answers every page-request group SUCCESS, until the queue closes, the
//! service goes away, or `--seconds` pass.
//!
//! ```text
//! cargo run --example consume -- --socket-path /tmp/faultring.sock --devices 1 2 3 4 [--abi 2] [--seconds 10]
//! ```

use std::time::{Duration, Instant};

use faultring::{Abi, Client, Code, Record, Response, WaitOutcome};

struct Args {
    socket_path: String,
    devices: Vec<u32>,
    abi: Abi,
    seconds: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut socket_path = None;
    let mut devices = Vec::new();
    let mut abi = Abi::V2;
    let mut seconds = None;
    let mut it = std::env::args().skip(1).peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket-path" => socket_path = it.next(),
            "--devices" => {
                while let Some(d) = it.peek().and_then(|v| v.parse::<u32>().ok()) {
                    devices.push(d);
                    it.next();
                }
            }
            "--abi" => {
                abi = match it.next().as_deref() {
                    Some("1") => Abi::V1,
                    Some("2") => Abi::V2,
                    other => return Err(format!("--abi {other:?}: must be 1 or 2")),
                }
            }
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let socket_path = socket_path.ok_or("--socket-path is required")?;
    if devices.is_empty() {
        devices.push(1);
    }
    Ok(Args { socket_path, devices, abi, seconds })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().inspect_err(|_| {
        eprintln!("usage: consume --socket-path P [--devices ID...] [--abi 1|2] [--seconds S]");
    })?;
    let mut client = Client::connect(&args.socket_path)?;
    println!("capabilities: {}", client.capabilities().raw);
    let mut queue = client.attach(args.abi, &args.devices)?;
    let end = args.seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let (mut records, mut groups, mut lost_records) = (0u64, 0u64, 0u64);
    let outcome = loop {
        let timeout = match end {
            Some(end) if Instant::now() >= end => break "time is up",
            Some(end) => end.saturating_duration_since(Instant::now()).min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        match queue.wait(timeout)? {
            WaitOutcome::Ready => {}
            WaitOutcome::TimedOut => continue,
            WaitOutcome::Closed => break "queue closed",
            WaitOutcome::ServiceGone => break "service gone",
        }
        let batch = queue.batch()?;
        for record in batch.iter() {
            records += 1;
            if let Record::Lost(l) = record {
                lost_records += l.lost_records();
                eprintln!("LOST: {} records from sequence {}", l.lost_records(), l.first_lost_sequence());
            }
            // A VMM would reinject the fault into the guest here.
            if let Some(group) = record.group_end()? {
                batch.push_response_wait(&Response::for_group(&group, Code::Success), Duration::from_secs(1))?;
                groups += 1;
            }
        }
        batch.commit()?;
        if batch.summary().gaps != 0 {
            eprintln!("sequence gap: {:?}", batch.summary());
        }
    }; // the batch drops at the end of each turn, releasing its slots
    let c = queue.counters()?;
    println!(
        "{{\"outcome\":\"{outcome}\",\"records\":{records},\"groups\":{groups},\"lost\":{lost_records},\"matchCompleted\":{},\"consumerMistakes\":{}}}",
        c.match_completed,
        c.consumer_mistakes()
    );
    if outcome == "time is up" {
        client.bye()?;
    }
    Ok(())
}
