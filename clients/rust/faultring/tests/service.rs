//! Integration tests against a real `faultring serve` (`$FAULTRING_BIN`).
//!
//! Each test starts its own service on a fresh socket, bounds every wait with
//! a deadline, and stops and reaps the service at the end, even on failure
//! (`Service`'s drop, and PR_SET_PDEATHSIG if the test process dies).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{watchdog, Service, TempDir};
use faultring::json::{self, Value};
use faultring::{Abi, Client, Code, Error, Queue, Record, Response, WaitOutcome};

/// What one consumer answered.
#[derive(Default, Debug)]
struct Answered {
    records: u64,
    groups_by_device: BTreeMap<u32, u64>,
}

impl Answered {
    fn total(&self) -> u64 {
        self.groups_by_device.values().sum()
    }
}

/// Consumes and answers SUCCESS until `enough` says stop (or `limit` passes,
/// which fails the test). `device_of_v1` is the device an ABI 1 queue serves.
fn consume_until(
    q: &mut Queue,
    a: &mut Answered,
    device_of_v1: u32,
    limit: Duration,
    enough: impl Fn(&Answered) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !enough(a) {
        assert!(Instant::now() < deadline, "not enough groups within {limit:?}: {a:?}");
        match q.wait(Duration::from_millis(200)).expect("wait") {
            WaitOutcome::Ready => {}
            WaitOutcome::TimedOut => continue,
            other => panic!("queue ended early: {other:?}"),
        }
        let batch = q.batch().expect("batch");
        for r in batch.iter() {
            a.records += 1;
            if let Some(g) = r.group_end().expect("well-formed record") {
                batch
                    .push_response_wait(&Response::for_group(&g, Code::Success), Duration::from_secs(5))
                    .expect("push response");
                let dev = g.device_id().unwrap_or(device_of_v1);
                *a.groups_by_device.entry(dev).or_default() += 1;
            }
        }
        batch.commit().expect("commit");
        assert_eq!(batch.summary().gaps, 0, "sequence gap: {:?}", batch.summary());
        assert_eq!(batch.summary().anomalies, 0, "sequence anomaly: {:?}", batch.summary());
    }
}

/// Waits until the producer has copied every response slot out.
fn wait_responses_consumed(q: &Queue) {
    q.commit().expect("commit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.responses_in_flight().expect("resp_cons") != 0 {
        assert!(Instant::now() < deadline, "the service did not consume our responses");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn device(stats: &Value, id: u32) -> &Value {
    stats
        .get("devices")
        .and_then(Value::as_array)
        .expect("STATS devices")
        .iter()
        .find(|d| d.get("id").and_then(Value::as_u64) == Some(id.into()))
        .unwrap_or_else(|| panic!("device {id} not in STATS"))
}

fn num(v: &Value, path: &[&str]) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("{path:?} missing in {v:?}"))
}

/// STATS until every device's `answersBySource.consumer` equals what we
/// answered (the service matches responses in its loop, a little after it
/// copies the slots out), then checks the books.
fn check_ledger(client: &mut Client, a: &Answered) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let text = client.stats().expect("STATS");
        let stats = json::parse(&text).expect("STATS is JSON");
        let mut all_equal = true;
        for (&id, &ours) in &a.groups_by_device {
            let d = device(&stats, id);
            let consumer = d.pointer(&["answersBySource", "consumer"]).and_then(Value::as_u64).unwrap_or(0);
            assert!(consumer <= ours, "device {id}: service counts {consumer} consumer answers, we sent {ours}");
            all_equal &= consumer == ours;
        }
        if all_equal {
            break stats;
        }
        assert!(Instant::now() < deadline, "consumer answers never caught up: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(num(&stats, &["statsVersion"]), 1);
    for (&id, &ours) in &a.groups_by_device {
        let d = device(&stats, id);
        assert_eq!(num(d, &["answeredTwiceOrUnknown"]), 0, "device {id}: {d:?}");
        assert_eq!(num(d, &["wrong"]), 0, "device {id}: {d:?}");
        assert_eq!(num(d, &["answersBySource", "consumer"]), ours, "device {id}: {d:?}");
        // The books: issued = answered + outstanding.
        assert_eq!(num(d, &["issued"]), num(d, &["answered"]) + num(d, &["outstanding"]), "device {id}: {d:?}");
    }
    // This client's queue counters as the service reports them: no slot
    // refused, nothing matched but completions.
    let me = stats
        .get("clients")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .find(|c| {
            let first = *a.groups_by_device.keys().next().expect("answered something");
            c.get("queue").is_some()
                && c.get("devices")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|x| x.as_u64() == Some(first.into())))
        })
        .expect("our client in STATS");
    for (reason, n) in me.pointer(&["queue", "responsesRejected"]).and_then(Value::as_object).unwrap() {
        assert_eq!(n.as_u64(), Some(0), "responsesRejected.{reason}");
    }
    for (outcome, n) in me.pointer(&["queue", "responsesMatched"]).and_then(Value::as_object).unwrap() {
        if outcome != "completed" {
            assert_eq!(n.as_u64(), Some(0), "responsesMatched.{outcome}");
        }
    }
    assert_eq!(num(me, &["queue", "responsesMatched", "completed"]), a.total());
}

fn check_counters(q: &Queue, a: &Answered) {
    let c = q.counters().expect("counters");
    for (name, v) in c.named() {
        let must_be_zero = name.starts_with("resp_")
            || (name.starts_with("match_") && name != "match_completed")
            || name.starts_with("bad_")
            || name == "renegotiations";
        if must_be_zero {
            assert_eq!(v, 0, "counter {name} = {v}");
        }
    }
    assert_eq!(c.consumer_mistakes(), 0);
    assert_eq!(c.match_completed, a.total(), "{c:?}");
    assert_eq!(c.responses_valid, a.total(), "{c:?}");
}

/// After BYE: drain to Closed and check the ABI 2 books of ABI.md section 7.
fn drain_to_closed_and_check_books(q: &mut Queue, abi: Abi) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "queue never reported Closed after BYE");
        match q.wait(Duration::from_millis(200)).expect("wait") {
            WaitOutcome::Ready => drop(q.batch().expect("batch")),
            WaitOutcome::TimedOut => {}
            WaitOutcome::Closed => break,
            WaitOutcome::ServiceGone => panic!("BYE must close the queue, not look like a dead service"),
        }
    }
    assert_eq!(q.state().unwrap(), faultring::abi::STATE_CLOSED);
    if abi == Abi::V2 {
        let c = q.counters().unwrap();
        let s = q.sequence_stats();
        assert_eq!(s.data_records + s.lost_records_seen, c.records_published, "{s:?} {c:?}");
        assert_eq!(s.reported_lost, c.records_lost, "{s:?} {c:?}");
        assert_eq!(u64::from(s.next_sequence), (c.records_published + c.records_lost) & 0xFFFF_FFFF, "{s:?} {c:?}");
        assert_eq!((s.gaps, s.backwards, s.lost_inconsistent), (0, 0, 0), "{s:?}");
    }
}

#[test]
fn abi2_four_devices_consume_answer_and_ledger_balances() {
    let _wd = watchdog("abi2 ledger", Duration::from_secs(90));
    let dir = TempDir::new("abi2");
    let svc = Service::start(&dir.socket());
    let mut client = svc.client();
    let caps = client.capabilities().clone();
    assert!(caps.abis.contains(&2), "{}", caps.raw);
    assert_eq!(caps.devices, vec![1, 2, 3, 4]);
    let mut q = client.attach(Abi::V2, &[1, 2, 3, 4]).expect("attach ABI 2");
    assert_eq!(q.abi(), Abi::V2);
    assert_eq!(q.state().unwrap(), faultring::abi::STATE_RUNNING);
    let mut a = Answered::default();
    consume_until(&mut q, &mut a, 0, Duration::from_secs(30), |a| {
        (1..=4).all(|d| a.groups_by_device.get(&d).copied().unwrap_or(0) >= 200)
    });
    // Stop answering; let the service read every slot, then check both books.
    wait_responses_consumed(&q);
    check_ledger(&mut client, &a);
    check_counters(&q, &a);
    let prom = client.stats_prometheus().expect("STATS TEXT");
    assert!(prom.contains("# TYPE faultring_"), "{}", &prom[..prom.len().min(300)]);
    client.bye().expect("BYE");
    drain_to_closed_and_check_books(&mut q, Abi::V2);
    assert!(matches!(client.stats(), Err(Error::NotConnected { .. })));
}

#[test]
fn abi1_one_device_consume_answer_and_ledger_balances() {
    let _wd = watchdog("abi1 ledger", Duration::from_secs(90));
    let dir = TempDir::new("abi1");
    let svc = Service::start(&dir.socket());
    // An ABI 1 queue serves exactly one device: refused client-side for two.
    let mut client = svc.client();
    assert!(matches!(client.attach(Abi::V1, &[1, 2]), Err(Error::InvalidArgument { .. })));
    let mut q = client.attach(Abi::V1, &[3]).expect("attach ABI 1");
    assert_eq!(q.abi(), Abi::V1);
    // A second, separate connection serves another device with ABI 2 meanwhile.
    let mut other = svc.client();
    let mut q2 = other.attach(Abi::V2, &[1]).expect("attach ABI 2 on another connection");
    // Device 3 is this connection's: another client gets EBUSY with a reason.
    let mut third = svc.client();
    match third.attach(Abi::V1, &[3]) {
        Err(Error::Service { errno, reason, .. }) => {
            assert_eq!(errno, libc::EBUSY);
            assert!(!reason.is_empty());
        }
        other => panic!("expected EBUSY, got {other:?}"),
    }
    // An unknown device: ENOENT, and the connection survives it.
    match third.attach(Abi::V2, &[99]) {
        Err(e @ Error::Service { .. }) => assert_eq!(e.errno(), libc::ENOENT, "{e}"),
        other => panic!("expected ENOENT, got {other:?}"),
    }
    third.stats().expect("connection survives an error reply");

    let mut a = Answered::default();
    let mut a2 = Answered::default();
    consume_until(&mut q, &mut a, 3, Duration::from_secs(30), |a| a.total() >= 300);
    consume_until(&mut q2, &mut a2, 0, Duration::from_secs(30), |a| a.total() >= 50);
    wait_responses_consumed(&q);
    wait_responses_consumed(&q2);
    check_ledger(&mut client, &a);
    check_counters(&q, &a);
    check_counters(&q2, &a2);
    // ABI 1 records carry no sequence numbers: nothing tracked.
    assert_eq!(q.sequence_stats(), Default::default());
    client.bye().expect("BYE");
    drain_to_closed_and_check_books(&mut q, Abi::V1);
}

#[test]
fn attach_more_and_detach() {
    let _wd = watchdog("attach_more", Duration::from_secs(60));
    let dir = TempDir::new("more");
    let svc = Service::start(&dir.socket());
    let mut client = svc.client();
    let mut q = client.attach(Abi::V2, &[1]).expect("attach");
    let info = client.attach_more(&[2, 3]).expect("attach_more");
    assert_eq!(info.attached, 3);
    assert_eq!(client.attached_devices(), &[1, 2, 3]);
    assert!(matches!(client.attach(Abi::V2, &[4]), Err(Error::InvalidArgument { .. })));
    assert!(matches!(client.attach_more(&[4, 4]), Err(Error::InvalidArgument { .. })));
    let mut a = Answered::default();
    consume_until(&mut q, &mut a, 0, Duration::from_secs(30), |a| {
        (1..=3).all(|d| a.groups_by_device.get(&d).copied().unwrap_or(0) >= 20)
    });
    client.detach(&[2]).expect("detach 2");
    assert_eq!(client.attached_devices(), &[1, 3]);
    client.detach(&[]).expect("detach all");
    assert!(client.attached_devices().is_empty());
    // DETACH of everything does not close the queue.
    assert_eq!(q.state().unwrap(), faultring::abi::STATE_RUNNING);
}

/// Consumes a little, then returns; used before stopping the service.
fn consume_some(q: &mut Queue, groups: u64) {
    let mut a = Answered::default();
    consume_until(q, &mut a, 1, Duration::from_secs(30), |a| a.total() >= groups);
}

/// Drains (answering, ignoring answer errors: the service may be gone) until
/// `wait` reports the end; returns that outcome.
fn drain_until_end(q: &mut Queue, limit: Duration) -> WaitOutcome {
    let deadline = Instant::now() + limit;
    loop {
        assert!(Instant::now() < deadline, "no end-of-queue outcome within {limit:?}");
        match q.wait(Duration::from_millis(500)).expect("wait") {
            WaitOutcome::Ready => {
                let batch = q.batch().expect("batch");
                for r in batch.iter() {
                    if let Ok(Some(g)) = r.group_end() {
                        let _ = batch.push_response(&Response::for_group(&g, Code::Success));
                    }
                    if let Record::Lost(l) = r {
                        assert!(l.lost_records() > 0);
                    }
                }
                let _ = batch.commit();
            }
            WaitOutcome::TimedOut => {}
            end => return end,
        }
    }
}

#[test]
fn sigterm_closes_the_queue() {
    let _wd = watchdog("sigterm", Duration::from_secs(60));
    let dir = TempDir::new("term");
    let mut svc = Service::start(&dir.socket());
    let mut client = svc.client();
    let mut q = client.attach(Abi::V2, &[1, 2, 3, 4]).expect("attach");
    consume_some(&mut q, 100);
    let status = svc.terminate().expect("service exits on SIGTERM");
    assert!(status.success(), "faultring serve exited with {status:?}");
    assert_eq!(drain_until_end(&mut q, Duration::from_secs(20)), WaitOutcome::Closed);
    assert_eq!(q.state().unwrap(), faultring::abi::STATE_CLOSED);
    // Later waits keep saying Closed, and the control connection is gone.
    // (The hang-up can trail the exit by a little: an io_uring service's
    // pending requests hold the connection's file until the kernel tears the
    // ring down, after the process is gone.)
    assert_eq!(q.wait(Duration::from_millis(50)).unwrap(), WaitOutcome::Closed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !q.service_hung_up() {
        assert!(Instant::now() < deadline, "control socket never hung up");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(q.wait(Duration::from_millis(50)).unwrap(), WaitOutcome::Closed);
    match client.stats() {
        Err(e) => assert!(e.breaks_connection(), "{e}"),
        Ok(s) => panic!("STATS after the service stopped: {s}"),
    }
}

#[test]
fn sigkill_is_service_gone() {
    let _wd = watchdog("sigkill", Duration::from_secs(60));
    let dir = TempDir::new("kill");
    let mut svc = Service::start(&dir.socket());
    let mut client = svc.client();
    let mut q = client.attach(Abi::V2, &[1, 2, 3, 4]).expect("attach");
    consume_some(&mut q, 100);
    svc.kill();
    assert_eq!(drain_until_end(&mut q, Duration::from_secs(20)), WaitOutcome::ServiceGone);
    // The producer never closed the queue: it died.
    assert_ne!(q.state().unwrap(), faultring::abi::STATE_CLOSED);
    assert_eq!(q.wait(Duration::from_millis(50)).unwrap(), WaitOutcome::ServiceGone);
    // Answers now fail distinctly (the producer doorbell's peer is gone).
    let g = faultring::GroupEnd::v2(1, 1);
    match q.respond(&Response::for_group(&g, Code::Invalid)) {
        Err(Error::ServiceGone) | Ok(()) => {}
        Err(e) => panic!("unexpected error answering a dead service: {e}"),
    }
    assert!(matches!(client.stats(), Err(Error::ServiceGone) | Err(Error::NotConnected { .. })));
}

#[test]
fn reconnect_after_restart() {
    let _wd = watchdog("reconnect", Duration::from_secs(90));
    let dir = TempDir::new("reconnect");
    let socket = dir.socket();
    let mut svc = Service::start(&socket);
    let mut client = svc.client();
    let mut q = client.attach(Abi::V2, &[1, 2]).expect("attach");
    consume_some(&mut q, 50);
    svc.terminate().expect("service exits on SIGTERM");
    assert_eq!(drain_until_end(&mut q, Duration::from_secs(20)), WaitOutcome::Closed);
    drop(q);

    // Reconnect from another thread while the new service is not up yet, so
    // the helper has to retry until it is.
    let t = std::thread::spawn(move || {
        let q = client.reconnect(Duration::from_secs(30));
        (client, q)
    });
    std::thread::sleep(Duration::from_millis(300));
    let svc2 = Service::start(&socket);
    let (mut client, q) = t.join().expect("reconnect thread");
    let mut q = q.expect("reconnect re-attaches");
    assert_eq!(client.attached_devices(), &[1, 2]);
    let mut a = Answered::default();
    consume_until(&mut q, &mut a, 0, Duration::from_secs(30), |a| a.total() >= 50);
    wait_responses_consumed(&q);
    check_ledger(&mut client, &a);
    drop(svc2);
}

#[test]
fn connect_with_retry_gives_up_at_its_deadline() {
    let _wd = watchdog("retry deadline", Duration::from_secs(30));
    let dir = TempDir::new("nosvc");
    let t0 = Instant::now();
    let r = Client::connect_with_retry(dir.socket(), Default::default(), Duration::from_millis(300));
    match r {
        Err(e) => assert_eq!(e.errno(), libc::ENOENT, "{e}"),
        Ok(_) => panic!("connected to nothing"),
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn oversized_stats_never_hang_the_client() {
    // With 600 devices the STATS reply would exceed the 65536-byte message
    // limit. Whatever the service does about it (an EMSGSIZE error reply, or
    // no reply at all), the client must come back within its reply timeout.
    let _wd = watchdog("oversized stats", Duration::from_secs(60));
    let dir = TempDir::new("bigstats");
    let svc = Service::start_with(&dir.socket(), &["--devices", "600", "--rate", "1", "--log-level", "error"]);
    let opts = faultring::ClientOptions { reply_timeout: Duration::from_secs(2), ..Default::default() };
    let mut client = Client::connect_with_retry(&svc.socket, opts.clone(), Duration::from_secs(10)).unwrap();
    let t0 = Instant::now();
    match client.stats() {
        Ok(text) => assert!(text.len() <= 65536 - 16),
        Err(e) => assert!(matches!(e.errno(), libc::EMSGSIZE | libc::ETIMEDOUT), "{e}"),
    }
    let mut client = Client::connect_with_retry(&svc.socket, opts, Duration::from_secs(10)).unwrap();
    match client.stats_prometheus() {
        Ok(text) => assert!(text.len() <= 65536 - 16),
        Err(e) => assert!(matches!(e.errno(), libc::EMSGSIZE | libc::ETIMEDOUT), "{e}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(20));
}
