//! Hostile server input: a fake service on a `socketpair(AF_UNIX,
//! SOCK_SEQPACKET)` answers HELLO properly, then answers ATTACH with
//! something wrong. Each case must return the right error, never panic, and
//! leave no descriptor open (`/proc/self/fd` is counted before and after).
//!
//! The cases run one at a time (a global lock) so that descriptor counts are
//! not disturbed by another test of this binary.

mod common;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use faultring::abi::{self, producer_off as P};
use faultring::json;
use faultring::protocol::{self as proto, FaultringMsgAttachReply, FaultringMsgHeader};
use faultring::{
    Abi, Client, ClientOptions, Code, Error, GroupEnd, Queue, QueueFiles, QueueOptions, Response, WaitOutcome,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn cvt(r: i32, what: &str) -> i32 {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

// SAFETY (all helpers below): plain system calls on descriptors this test
// owns, with buffers that outlive each call.

fn socketpair(ty: i32) -> (OwnedFd, OwnedFd) {
    let mut sv = [0; 2];
    // SAFETY: sv is a valid array of two ints.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) }, "socketpair");
    // SAFETY: socketpair returned two fresh descriptors.
    unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) }
}

fn memfd(name: &str, size: usize, bytes: &[u8]) -> OwnedFd {
    let n = CString::new(name).unwrap();
    // SAFETY: n is a valid C string.
    let fd =
        cvt(unsafe { libc::memfd_create(n.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) }, "memfd_create");
    // SAFETY: fd is fresh.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fd is ours.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size as i64) }, "ftruncate");
    // SAFETY: bytes is valid for reads.
    let w = unsafe { libc::pwrite(fd.as_raw_fd(), bytes.as_ptr() as *const _, bytes.len(), 0) };
    assert_eq!(w as usize, bytes.len());
    fd
}

fn add_seals(fd: &OwnedFd, seals: i32) {
    // SAFETY: fd is ours.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }, "F_ADD_SEALS");
}

fn reopen(fd: &OwnedFd, flags: i32) -> OwnedFd {
    let p = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    // SAFETY: p is a valid C string.
    let r = cvt(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) }, "reopen");
    // SAFETY: r is fresh.
    unsafe { OwnedFd::from_raw_fd(r) }
}

fn set_nonblock(fd: &OwnedFd, on: bool) {
    // SAFETY: fd is ours.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    let fl = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
    // SAFETY: fd is ours.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl) }, "F_SETFL");
}

fn send_with_fds(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) {
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
    let mut cbuf = vec![0u64; 64];
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        // SAFETY: pure computation.
        let space = unsafe { libc::CMSG_SPACE((fds.len() * 4) as u32) } as usize;
        assert!(space <= cbuf.len() * 8);
        msg.msg_control = cbuf.as_mut_ptr() as *mut _;
        msg.msg_controllen = space;
        // SAFETY: msg_control points at cbuf, large enough for one cmsg of fds.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
            let data = libc::CMSG_DATA(c) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(*fd);
            }
        }
    }
    // SAFETY: msg points at live buffers.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    assert!(r >= 0, "sendmsg: {}", std::io::Error::last_os_error());
}

/// Receives one request (blocking up to 10 s); `None` when the client closed.
fn recv_request(sock: &OwnedFd) -> Option<(FaultringMsgHeader, Vec<u8>)> {
    let mut pfd = [libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // SAFETY: pfd is valid.
    let n = unsafe { libc::poll(pfd.as_mut_ptr(), 1, 10_000) };
    if n <= 0 {
        return None;
    }
    let mut buf = vec![0u8; 70000];
    // SAFETY: buf is valid for writes.
    let r = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), 0) };
    if r <= 0 {
        return None;
    }
    buf.truncate(r as usize);
    let h = FaultringMsgHeader::decode(&buf)?;
    Some((h, buf[16..].to_vec()))
}

fn reply_bytes(req: &FaultringMsgHeader, flags: u32, error: u32, payload: &[u8]) -> Vec<u8> {
    let h = FaultringMsgHeader {
        id: req.id,
        command: req.command,
        size: (16 + payload.len()) as u32,
        flags: proto::MSG_REPLY | flags,
        error,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

const CAPS: &str = r#"{"abis":[1,2],"devices":[1],"entryCount":8,"eventLoop":"poll","features":[],"maxDevicesPerAttach":64,"maxMessageSize":65536,"pageRequestTimeoutMilliseconds":10000,"protocolVersion":1,"responseCount":4}"#;

/// A fake queue's geometry and header, editable per case.
#[derive(Clone)]
struct FakeHeader {
    magic: u64,
    entry_count: u32,
    response_count: u32,
    abi: u32,
    max_abi: u32,
    state: u32,
    fault_prod: u32,
    resp_cons: u32,
    producer_sleeping: u32,
    ring_offset: u32,
    producer_size: usize,
    consumer_size: usize,
}

impl Default for FakeHeader {
    fn default() -> Self {
        // A queue already negotiated for ABI 2 (no producer runs here).
        FakeHeader {
            magic: abi::PRODUCER_MAGIC,
            entry_count: 8,
            response_count: 4,
            abi: 2,
            max_abi: 2,
            state: abi::STATE_RUNNING,
            fault_prod: 0,
            resp_cons: 0,
            producer_sleeping: 0,
            ring_offset: 4096,
            producer_size: 4096 + 8 * 64,
            consumer_size: 4096 + 4 * 64,
        }
    }
}

impl FakeHeader {
    fn producer_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; P::SIZE];
        let put32 = |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        let put64 = |b: &mut Vec<u8>, off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put64(&mut b, P::MAGIC, self.magic);
        put32(&mut b, P::LAYOUT_VERSION, 1);
        put32(&mut b, P::HEADER_SIZE, P::SIZE as u32);
        put32(&mut b, P::MAX_ABI, self.max_abi);
        put32(&mut b, P::ABI, self.abi);
        put32(&mut b, P::ENTRY_SIZE, 64);
        put32(&mut b, P::ENTRY_COUNT, self.entry_count);
        put32(&mut b, P::RING_OFFSET, self.ring_offset);
        put32(&mut b, P::RESPONSE_SLOT_SIZE, 64);
        put32(&mut b, P::RESPONSE_COUNT, self.response_count);
        put32(&mut b, P::RESPONSE_RING_OFFSET, 4096);
        put32(&mut b, P::STATE, self.state);
        put32(&mut b, P::PRODUCER_PID, std::process::id());
        put64(&mut b, P::PRODUCER_REGION_SIZE, self.producer_size as u64);
        put64(&mut b, P::CONSUMER_REGION_SIZE, self.consumer_size as u64);
        put32(&mut b, P::FAULT_PROD, self.fault_prod);
        put32(&mut b, P::RESP_CONS, self.resp_cons);
        put32(&mut b, P::PRODUCER_SLEEPING, self.producer_sleeping);
        b
    }
}

/// What the fake service does wrong in its ATTACH reply.
#[derive(Clone)]
enum Case {
    Valid(FakeHeader),
    FdCount(usize),
    UnsealedProducer,
    UnsealedConsumer,
    ProducerReadWrite,
    DoorbellPipe,
    DoorbellStream,
    DoorbellBlocking,
    ShortPayload,
    SizeMismatch,
    WrongId,
    WrongCommand,
    UnknownFlag,
    ErrorReply,
    Silent,
    QueueCreatedZero,
    BadHelloJson,
    HelloVersion2,
    ErrorReplyWithFds,
}

struct FakeQueue {
    producer: OwnedFd,
    consumer: OwnedFd,
    db_consumer: OwnedFd,
    db_producer: OwnedFd,
    // The service's ends, kept open while the client checks the queue.
    _db_consumer_peer: OwnedFd,
    db_producer_peer: OwnedFd,
    // The service's view of the consumer region (to report what was written).
    consumer_peek: OwnedFd,
    response_count: u32,
}

impl FakeQueue {
    /// What the consumer wrote, as JSON: requested_abi, resp_prod, each
    /// response slot's 16 words, and how many times the producer doorbell rang.
    fn report(&self) -> String {
        report(&self.consumer_peek, &self.db_producer_peer, self.response_count)
    }
}

fn report(consumer_peek: &OwnedFd, db_producer_peer: &OwnedFd, response_count: u32) -> String {
    {
        let mut buf = vec![0u8; 4096 + response_count as usize * 64];
        // SAFETY: buf is valid for writes.
        let n = unsafe { libc::pread(consumer_peek.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), 0) };
        assert_eq!(n as usize, buf.len());
        let w = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
        let slots: Vec<String> = (0..response_count as usize)
            .map(|i| {
                let words: Vec<String> = (0..16).map(|k| w(4096 + i * 64 + k * 4).to_string()).collect();
                format!("[{}]", words.join(","))
            })
            .collect();
        let mut rings = 0;
        let mut b = [0u8; 8];
        // SAFETY: b is valid for writes.
        while unsafe { libc::recv(db_producer_peer.as_raw_fd(), b.as_mut_ptr() as *mut _, 8, libc::MSG_DONTWAIT) } > 0 {
            rings += 1;
        }
        format!(
            "{{\"requestedAbi\":{},\"respProd\":{},\"rings\":{rings},\"slots\":[{}]}}",
            w(0),
            w(128),
            slots.join(",")
        )
    }
}

fn fake_queue(h: &FakeHeader, case: &Case) -> FakeQueue {
    let p = memfd("fake-producer", h.producer_size, &h.producer_bytes());
    let c = memfd("fake-consumer", h.consumer_size, &[]);
    let all = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    if !matches!(case, Case::UnsealedProducer) {
        add_seals(&p, all | libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL);
    }
    if !matches!(case, Case::UnsealedConsumer) {
        add_seals(&c, all | libc::F_SEAL_SEAL);
    }
    let producer = if matches!(case, Case::ProducerReadWrite) { p } else { reopen(&p, libc::O_RDONLY) };
    let (db_consumer, peer1) = match case {
        Case::DoorbellPipe => {
            let mut fds = [0; 2];
            // SAFETY: fds is valid.
            cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, "pipe2");
            // SAFETY: fresh descriptors.
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
        }
        Case::DoorbellStream => {
            let (a, b) = socketpair(libc::SOCK_STREAM);
            set_nonblock(&a, true);
            (a, b)
        }
        _ => {
            let (a, b) = socketpair(libc::SOCK_DGRAM);
            set_nonblock(&a, !matches!(case, Case::DoorbellBlocking));
            (a, b)
        }
    };
    let (db_producer, peer2) = socketpair(libc::SOCK_DGRAM);
    set_nonblock(&db_producer, true);
    let consumer_peek = c.try_clone().expect("dup consumer memfd");
    FakeQueue {
        producer,
        consumer: c,
        db_consumer,
        db_producer,
        _db_consumer_peer: peer1,
        db_producer_peer: peer2,
        consumer_peek,
        response_count: h.response_count,
    }
}

/// Serves one client on `sock` according to `case`, then returns (closing
/// everything it made) when the client hangs up.
fn fake_service(sock: OwnedFd, case: Case) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut keep: Vec<FakeQueue> = Vec::new();
        while let Some((h, _payload)) = recv_request(&sock) {
            match h.command {
                proto::CMD_HELLO => {
                    let caps = match &case {
                        Case::BadHelloJson => "{\"protocolVersion\":1,".to_string(),
                        Case::HelloVersion2 => CAPS.replace("\"protocolVersion\":1", "\"protocolVersion\":2"),
                        _ => CAPS.to_string(),
                    };
                    send_with_fds(&sock, &reply_bytes(&h, 0, 0, caps.as_bytes()), &[]);
                }
                proto::CMD_ATTACH => {
                    let hdr = match &case {
                        Case::Valid(fh) => fh.clone(),
                        _ => FakeHeader::default(),
                    };
                    let q = fake_queue(&hdr, &case);
                    let four = [
                        q.producer.as_raw_fd(),
                        q.consumer.as_raw_fd(),
                        q.db_consumer.as_raw_fd(),
                        q.db_producer.as_raw_fd(),
                    ];
                    let good = FaultringMsgAttachReply {
                        queue_created: 1,
                        entry_count: hdr.entry_count,
                        response_count: hdr.response_count,
                        attached: 1,
                    }
                    .encode();
                    match &case {
                        Case::FdCount(n) => {
                            let mut fds: Vec<RawFd> = four.iter().copied().cycle().take(*n).collect();
                            fds.truncate(*n);
                            send_with_fds(&sock, &reply_bytes(&h, 0, 0, &good), &fds);
                        }
                        Case::ShortPayload => send_with_fds(&sock, &reply_bytes(&h, 0, 0, &good[..8]), &four),
                        Case::SizeMismatch => {
                            let mut m = reply_bytes(&h, 0, 0, &good);
                            m[4..8].copy_from_slice(&40u32.to_le_bytes());
                            send_with_fds(&sock, &m, &four);
                        }
                        Case::WrongId => {
                            let mut m = reply_bytes(&h, 0, 0, &good);
                            m[0..2].copy_from_slice(&h.id.wrapping_add(7).to_le_bytes());
                            send_with_fds(&sock, &m, &four);
                        }
                        Case::WrongCommand => {
                            let mut m = reply_bytes(&h, 0, 0, &good);
                            m[2..4].copy_from_slice(&proto::CMD_DETACH.to_le_bytes());
                            send_with_fds(&sock, &m, &four);
                        }
                        Case::UnknownFlag => send_with_fds(&sock, &reply_bytes(&h, 1 << 9, 0, &good), &four),
                        Case::ErrorReply => send_with_fds(
                            &sock,
                            &reply_bytes(&h, proto::MSG_ERROR, libc::ENOENT as u32, b"device 1 does not exist"),
                            &[],
                        ),
                        Case::ErrorReplyWithFds => send_with_fds(
                            &sock,
                            &reply_bytes(&h, proto::MSG_ERROR, libc::EBUSY as u32, b"device 1 is busy"),
                            &four,
                        ),
                        Case::Silent => {}
                        Case::QueueCreatedZero => {
                            let mut r = good;
                            r[0] = 0;
                            send_with_fds(&sock, &reply_bytes(&h, 0, 0, &r), &four);
                        }
                        _ => send_with_fds(&sock, &reply_bytes(&h, 0, 0, &good), &four),
                    }
                    keep.push(q);
                }
                proto::CMD_STATS if !keep.is_empty() => {
                    let report = keep.last().unwrap().report();
                    send_with_fds(&sock, &reply_bytes(&h, 0, 0, report.as_bytes()), &[]);
                }
                _ => send_with_fds(&sock, &reply_bytes(&h, 0, 0, &[]), &[]),
            }
        }
    })
}

fn options() -> ClientOptions {
    ClientOptions {
        reply_timeout: Duration::from_millis(500),
        queue: QueueOptions { negotiation_timeout: Duration::from_millis(300), ..Default::default() },
        ..Default::default()
    }
}

/// Runs `case` against a fresh fake service; `check` sees the attach result
/// (and may use the queue). Asserts no descriptor leaked.
fn run(case: Case, check: impl FnOnce(&mut Client, faultring::Result<faultring::Queue>)) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _wd = common::watchdog("hostile case", Duration::from_secs(30));
    let before = common::open_fds();
    {
        let (mine, theirs) = socketpair(libc::SOCK_SEQPACKET);
        let server = fake_service(theirs, case);
        match Client::from_fd_with(mine, options()) {
            Ok(mut client) => {
                let r = client.attach(Abi::V2, &[1]);
                check(&mut client, r);
                drop(client);
            }
            // HELLO refused: the HELLO cases read the error back (run_hello).
            Err(e) => HELLO_ERR.with(|c| *c.borrow_mut() = Some(e)),
        }
        server.join().expect("fake service thread");
    }
    let after = common::open_fds();
    assert_eq!(before, after, "descriptor leak:\nbefore {before:#?}\nafter {after:#?}");
}

thread_local! {
    static HELLO_ERR: std::cell::RefCell<Option<Error>> = const { std::cell::RefCell::new(None) };
}

fn expect_err(r: faultring::Result<faultring::Queue>) -> Error {
    match r {
        Ok(q) => panic!("hostile reply accepted: {q:?}"),
        Err(e) => {
            // Every error renders and names what was wrong.
            let s = e.to_string();
            assert!(!s.is_empty());
            e
        }
    }
}

fn expect_protocol(r: faultring::Result<faultring::Queue>, want_field: &str) -> Error {
    let e = expect_err(r);
    match &e {
        Error::Protocol { field, .. } => assert_eq!(*field, want_field, "{e}"),
        other => panic!("expected a protocol error on {want_field}, got {other}"),
    }
    assert_eq!(e.errno(), libc::EPROTO);
    e
}

fn expect_descriptor(r: faultring::Result<faultring::Queue>, want_index: usize, want_field: &str) {
    let e = expect_err(r);
    match &e {
        Error::Descriptor { index, field, .. } => {
            assert_eq!((*index, *field), (want_index, want_field), "{e}");
        }
        other => panic!("expected a descriptor error, got {other}"),
    }
    assert_eq!(e.errno(), libc::EBADF);
}

fn expect_header(r: faultring::Result<faultring::Queue>, want_field: &str) {
    let e = expect_err(r);
    match &e {
        Error::Header { field, .. } => assert_eq!(*field, want_field, "{e}"),
        other => panic!("expected a header error on {want_field}, got {other}"),
    }
    assert_eq!(e.errno(), libc::EPROTO);
}

#[test]
fn valid_fake_queue_is_accepted() {
    // The control case: the fake queue is right, so the others fail for their own reason.
    run(Case::Valid(FakeHeader::default()), |client, r| {
        let mut q = r.expect("a valid queue");
        assert_eq!((q.entry_count(), q.response_count(), q.abi()), (8, 4, Abi::V2));
        assert!(q.batch().unwrap().is_empty());
        assert_eq!(q.wait(Duration::from_millis(20)).unwrap(), WaitOutcome::TimedOut);
        // Negotiation wrote nothing (the ABI was already in force), and
        // nothing rang the sleeping-flag-less producer.
        let r = json::parse(&client.stats().unwrap()).unwrap();
        assert_eq!(r.get("rings").unwrap().as_u64(), Some(0));
    });
}

#[test]
fn three_descriptors_instead_of_four() {
    run(Case::FdCount(3), |_, r| {
        let e = expect_protocol(r, "descriptor count");
        assert!(e.to_string().contains('3'), "{e}");
    });
}

#[test]
fn five_descriptors_instead_of_four() {
    run(Case::FdCount(5), |_, r| drop(expect_protocol(r, "descriptor count")));
}

#[test]
fn too_many_descriptors_is_ctrunc() {
    // More than the client's receive room: the kernel truncates (MSG_CTRUNC).
    run(Case::FdCount(12), |_, r| drop(expect_protocol(r, "control data")));
}

#[test]
fn unsealed_producer_memfd() {
    run(Case::UnsealedProducer, |_, r| expect_descriptor(r, 0, "seals"));
}

#[test]
fn unsealed_consumer_memfd() {
    run(Case::UnsealedConsumer, |_, r| expect_descriptor(r, 1, "seals"));
}

#[test]
fn producer_region_opened_read_write() {
    run(Case::ProducerReadWrite, |_, r| expect_descriptor(r, 0, "access mode"));
}

#[test]
fn doorbell_that_is_a_pipe() {
    run(Case::DoorbellPipe, |_, r| expect_descriptor(r, 2, "file type"));
}

#[test]
fn doorbell_that_is_a_stream_socket() {
    run(Case::DoorbellStream, |_, r| expect_descriptor(r, 2, "socket type"));
}

#[test]
fn doorbell_that_blocks() {
    run(Case::DoorbellBlocking, |_, r| expect_descriptor(r, 2, "O_NONBLOCK"));
}

#[test]
fn truncated_attach_reply() {
    // Payload shorter than struct faultring_msg_attach_reply (8 of 16 bytes), with 4 fds.
    run(Case::ShortPayload, |client, r| {
        expect_protocol(r, "ATTACH reply payload length");
        assert!(matches!(client.stats(), Err(Error::NotConnected { .. })));
    });
}

#[test]
fn header_size_disagrees_with_packet() {
    run(Case::SizeMismatch, |_, r| drop(expect_protocol(r, "header size")));
}

#[test]
fn reply_with_wrong_id() {
    run(Case::WrongId, |_, r| drop(expect_protocol(r, "reply id")));
}

#[test]
fn reply_with_wrong_command() {
    run(Case::WrongCommand, |_, r| drop(expect_protocol(r, "reply command")));
}

#[test]
fn reply_with_unknown_flag() {
    run(Case::UnknownFlag, |_, r| drop(expect_protocol(r, "header flags")));
}

#[test]
fn queue_created_zero_on_first_attach() {
    run(Case::QueueCreatedZero, |_, r| drop(expect_protocol(r, "ATTACH reply queue_created")));
}

#[test]
fn error_reply_carries_errno_and_reason() {
    run(Case::ErrorReply, |client, r| {
        let e = expect_err(r);
        match &e {
            Error::Service { command, errno, reason } => {
                assert_eq!((*command, *errno), (proto::CMD_ATTACH, libc::ENOENT));
                assert_eq!(reason, "device 1 does not exist");
            }
            other => panic!("expected a service error, got {other}"),
        }
        assert_eq!(e.errno(), libc::ENOENT);
        assert!(e.to_string().contains("device 1 does not exist"), "{e}");
        // An error reply leaves the connection usable.
        assert!(!matches!(client.stats(), Err(Error::NotConnected { .. })));
    });
}

#[test]
fn error_reply_with_descriptors() {
    run(Case::ErrorReplyWithFds, |_, r| drop(expect_protocol(r, "descriptor count")));
}

#[test]
fn silent_server_times_out() {
    run(Case::Silent, |client, r| {
        let e = expect_err(r);
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert_eq!(e.errno(), libc::ETIMEDOUT);
        // A late reply would be out of step: the connection is now unusable.
        assert!(matches!(client.stats(), Err(Error::NotConnected { .. })));
    });
}

#[test]
fn bad_magic() {
    let h = FakeHeader { magic: 0x4141_4141, ..Default::default() };
    run(Case::Valid(h), |_, r| expect_header(r, "magic"));
}

#[test]
fn ring_bigger_than_the_region() {
    // 64 entries claimed in a region sized for 8, with the reply agreeing.
    let h = FakeHeader { entry_count: 64, ..Default::default() };
    run(Case::Valid(h), |_, r| expect_header(r, "ring_offset + entry_count * 64"));
}

#[test]
fn ring_offset_inside_the_header() {
    let h = FakeHeader { ring_offset: 0, ..Default::default() };
    run(Case::Valid(h), |_, r| expect_header(r, "ring_offset"));
}

#[test]
fn entry_count_not_a_power_of_two() {
    let h = FakeHeader { entry_count: 6, ..Default::default() };
    run(Case::Valid(h), |_, r| expect_header(r, "entry_count"));
}

#[test]
fn negotiation_times_out_without_a_producer() {
    let h = FakeHeader { abi: 0, state: abi::STATE_STARTING, ..Default::default() };
    run(Case::Valid(h), |_, r| {
        let e = expect_err(r);
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
    });
}

#[test]
fn producer_puts_another_abi_in_force() {
    let h = FakeHeader { abi: 1, ..Default::default() };
    run(Case::Valid(h), |_, r| {
        let e = expect_err(r);
        assert!(matches!(e, Error::Negotiation { .. }), "{e}");
    });
}

#[test]
fn producer_index_more_than_a_ring_ahead() {
    let h = FakeHeader { fault_prod: 9, ..Default::default() };
    run(Case::Valid(h), |_, r| {
        let mut q = r.expect("the header itself is valid");
        for e in [q.batch().map(|_| ()).unwrap_err(), q.wait(Duration::from_millis(10)).map(|_| ()).unwrap_err()] {
            match e {
                Error::BrokenProducer { index, value, against, count } => {
                    assert_eq!((index, value, against, count), ("fault_prod", 9, 0, 8));
                }
                other => panic!("expected BrokenProducer, got {other}"),
            }
        }
    });
}

#[test]
fn closed_queue_is_refused_at_negotiation() {
    let h = FakeHeader { abi: 0, state: abi::STATE_CLOSED, ..Default::default() };
    run(Case::Valid(h), |_, r| {
        let e = expect_err(r);
        assert!(matches!(e, Error::QueueClosed), "{e}");
    });
}

fn run_hello(case: Case) -> Error {
    run(case, |_, _| panic!("HELLO should have been refused"));
    HELLO_ERR.with(|c| c.borrow_mut().take()).expect("HELLO error")
}

#[test]
fn hello_reply_not_json() {
    let e = run_hello(Case::BadHelloJson);
    assert!(matches!(e, Error::Protocol { field: "HELLO reply", .. }), "{e}");
}

#[test]
fn hello_reply_other_protocol_version() {
    let e = run_hello(Case::HelloVersion2);
    assert!(matches!(e, Error::Protocol { field: "HELLO reply protocolVersion", .. }), "{e}");
}

#[test]
fn from_fd_refuses_a_stream_socket() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, _b) = socketpair(libc::SOCK_STREAM);
    let e = Client::from_fd(a).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let _ = _b.as_fd();
}

fn slot_cookie(report: &json::Value, i: usize) -> u64 {
    let w = report.get("slots").unwrap().as_array().unwrap()[i].as_array().unwrap();
    let lo = w[4].as_u64().unwrap();
    let hi = w[5].as_u64().unwrap();
    lo | hi << 32
}

#[test]
fn full_response_ring_is_refused_and_never_overwritten() {
    // 4 response slots, the producer never consumes (resp_cons stays 0) and
    // says it sleeps, so a commit must ring its doorbell.
    let h = FakeHeader { producer_sleeping: 1, ..Default::default() };
    run(Case::Valid(h), |client, r| {
        let q = r.expect("queue");
        for i in 0..4u64 {
            q.push_response(&Response::for_group(&GroupEnd::v2(100 + i, 1), Code::Success)).unwrap();
        }
        assert_eq!(q.pending_responses(), 4);
        let intruder = Response::for_group(&GroupEnd::v2(999, 1), Code::Invalid);
        let e = q.push_response(&intruder).unwrap_err();
        assert!(matches!(e, Error::ResponseRingFull { count: 4 }), "{e}");
        assert_eq!(e.errno(), libc::EAGAIN);
        // Nothing published yet: resp_prod is still 0.
        let before = json::parse(&client.stats().unwrap()).unwrap();
        assert_eq!(before.get("respProd").unwrap().as_u64(), Some(0));
        q.commit().unwrap();
        assert_eq!(q.pending_responses(), 0);
        // The bounded wait gives up with the same distinct error.
        let e = q.push_response_wait(&intruder, Duration::from_millis(30)).unwrap_err();
        assert!(matches!(e, Error::ResponseRingFull { .. }), "{e}");
        let rep = json::parse(&client.stats().unwrap()).unwrap();
        assert_eq!(rep.get("respProd").unwrap().as_u64(), Some(4));
        assert!(rep.get("rings").unwrap().as_u64().unwrap() >= 1, "producer_sleeping = 1 but no ring");
        for i in 0..4 {
            assert_eq!(slot_cookie(&rep, i), 100 + i as u64, "slot {i} was overwritten");
            let w = rep.get("slots").unwrap().as_array().unwrap()[i].as_array().unwrap();
            assert_eq!(w[0].as_u64(), Some(32)); // argsz
            assert_eq!(w[1].as_u64(), Some(2)); // version
            assert!(w[8..].iter().all(|x| x.as_u64() == Some(0)), "slot {i} has trailing bytes");
        }
        // An ABI 1 response cannot be written to an ABI 2 queue.
        let v1 = Response::for_group(&GroupEnd::v1(None, 1).unwrap(), Code::Success);
        assert!(matches!(q.push_response(&v1), Err(Error::InvalidArgument { .. })));
    });
}

#[test]
fn awake_producer_is_not_rung() {
    let h = FakeHeader { producer_sleeping: 0, ..Default::default() };
    run(Case::Valid(h), |client, r| {
        let q = r.expect("queue");
        q.respond(&Response::for_group(&GroupEnd::v2(7, 1), Code::Success)).unwrap();
        let rep = json::parse(&client.stats().unwrap()).unwrap();
        assert_eq!(rep.get("respProd").unwrap().as_u64(), Some(1));
        assert_eq!(rep.get("rings").unwrap().as_u64(), Some(0));
    });
}

#[test]
fn response_consumer_index_ahead_is_a_broken_producer() {
    let h = FakeHeader { resp_cons: 10, ..Default::default() };
    run(Case::Valid(h), |_, r| {
        let q = r.expect("queue");
        match q.push_response(&Response::for_group(&GroupEnd::v2(7, 1), Code::Success)) {
            Err(Error::BrokenProducer { index: "resp_cons", value: 10, against: 0, count: 4 }) => {}
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn negotiation_writes_the_request_and_rings_a_sleeping_producer() {
    // Queue::from_files on a fake queue whose producer never answers: the
    // client must write requested_abi = 2, ring (producer_sleeping = 1), and
    // give up at its negotiation timeout, closing every descriptor.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = common::open_fds();
    {
        let h = FakeHeader { abi: 0, state: abi::STATE_STARTING, producer_sleeping: 1, ..Default::default() };
        let fq = fake_queue(&h, &Case::Valid(h.clone()));
        let files = QueueFiles {
            producer: fq.producer,
            consumer: fq.consumer,
            consumer_doorbell: fq.db_consumer,
            producer_doorbell: fq.db_producer,
        };
        let opts = QueueOptions { negotiation_timeout: Duration::from_millis(200), ..Default::default() };
        let e = Queue::from_files(files, Abi::V2, None, opts).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        let rep = json::parse(&report(&fq.consumer_peek, &fq.db_producer_peer, 4)).unwrap();
        assert_eq!(rep.get("requestedAbi").unwrap().as_u64(), Some(2));
        assert!(rep.get("rings").unwrap().as_u64().unwrap() >= 1);
    }
    assert_eq!(before, common::open_fds());
}

#[test]
fn inherited_descriptors_work_without_a_control_socket() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = FakeHeader::default();
    let fq = fake_queue(&h, &Case::Valid(h.clone()));
    let fds = vec![fq.producer, fq.consumer, fq.db_consumer, fq.db_producer];
    let files = QueueFiles::from_vec(fds).unwrap();
    let mut q = Queue::from_files(files, Abi::V2, None, QueueOptions::default()).unwrap();
    assert_eq!(q.wait(Duration::from_millis(10)).unwrap(), WaitOutcome::TimedOut);
    assert!(!q.service_hung_up());
    // A wrong count is refused (and the descriptors closed).
    let (a, b) = socketpair(libc::SOCK_DGRAM);
    assert!(matches!(QueueFiles::from_vec(vec![a, b]), Err(Error::Protocol { field: "descriptor count", .. })));
}
