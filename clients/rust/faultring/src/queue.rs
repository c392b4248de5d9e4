//! The shared-memory queue: validation, negotiation, zero-copy batches,
//! responses and the doorbell sleep/wake protocol (Docs/ABI.md).
//!
//! # Memory orderings
//!
//! Each shared access below has a comment naming who writes the word and why
//! it has the ordering it has. Loads from the producer region are relaxed
//! atomic loads, because that region is mapped read-only (see the `sys`
//! module): an *acquire* load is written as a relaxed load followed by
//! `fence(Acquire)`, and the *seq_cst re-check* of the sleep protocol as
//! `fence(SeqCst)` followed by a relaxed load.

use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::abi::{self, consumer_off as C, producer_off as P};
use crate::error::{Error, Result};
use crate::record::{Record, Slot};
use crate::response::Response;
use crate::sequence::{SequenceEvent, SequenceStats, SequenceTracker};
use crate::sys::{self, RoRegion, RwRegion};
use crate::Abi;

/// The four descriptors of a queue, in the order of ABI.md section 1 (and of
/// the ATTACH reply): producer region, consumer region, consumer doorbell,
/// producer doorbell. Owned: dropping the struct closes them.
#[derive(Debug)]
pub struct QueueFiles {
    /// Producer region: a memfd opened read-only, sealed
    /// `SHRINK | GROW | SEAL | FUTURE_WRITE`.
    pub producer: OwnedFd,
    /// Consumer region: a memfd opened read-write, sealed `SHRINK | GROW | SEAL`.
    pub consumer: OwnedFd,
    /// Your end of the consumer doorbell (`AF_UNIX` `SOCK_DGRAM`, non-blocking).
    pub consumer_doorbell: OwnedFd,
    /// Your end of the producer doorbell (`AF_UNIX` `SOCK_DGRAM`, non-blocking).
    pub producer_doorbell: OwnedFd,
}

impl QueueFiles {
    /// The four descriptors from a vector that must hold exactly four (in
    /// order). On error every descriptor in `fds` is closed.
    ///
    /// # Errors
    /// [`Error::Protocol`] (field `"descriptor count"`) for any other count.
    pub fn from_vec(fds: Vec<OwnedFd>) -> Result<QueueFiles> {
        let n = fds.len();
        let Ok([producer, consumer, consumer_doorbell, producer_doorbell]) = <[OwnedFd; 4]>::try_from(fds) else {
            return Err(Error::protocol("descriptor count", format!("{n} descriptors, a queue is exactly 4")));
        };
        Ok(QueueFiles { producer, consumer, consumer_doorbell, producer_doorbell })
    }
}

/// Tunables of a queue.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// How long [`Queue::from_files`] waits for the producer to put the ABI in
    /// force (default 5 s).
    pub negotiation_timeout: Duration,
    /// How long [`Queue::wait`] spins on `fault_prod` before it sleeps on the
    /// doorbell (default 5 µs; zero sleeps at once).
    pub spin: Duration,
}

impl Default for QueueOptions {
    fn default() -> Self {
        // A short spin (about what the Swift and C consumers' 2000 loads take):
        // enough to catch the next batch of a busy producer, little CPU when idle.
        QueueOptions { negotiation_timeout: Duration::from_secs(5), spin: Duration::from_micros(5) }
    }
}

/// What [`Queue::wait`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Records are waiting: take a [`Queue::batch`].
    Ready,
    /// Nothing arrived before the timeout.
    TimedOut,
    /// The producer closed the queue (`state == 3`) and every record has been
    /// consumed: nothing will follow. (Service stopped cleanly, BYE, or the
    /// connection ended.)
    Closed,
    /// The control connection hung up while the queue was still open: the
    /// service died without closing the queue (e.g. SIGKILL). Nothing will follow.
    ServiceGone,
}

/// Per-batch accounting of an ABI 2 batch (all zero for ABI 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Data records in the batch.
    pub data_records: u32,
    /// LOST records in the batch.
    pub lost_records: u32,
    /// Sum of their `lost_records`: records the producer dropped.
    pub reported_lost: u64,
    /// Sequence gaps no LOST record explains.
    pub gaps: u32,
    /// Sequence numbers those gaps skipped.
    pub missing: u64,
    /// Sequence anomalies of other kinds (backwards, inconsistent LOST record).
    pub anomalies: u32,
    /// The first anomaly of the batch, if any.
    pub first_event: Option<SequenceEvent>,
}

#[derive(Clone, Copy, Debug)]
struct Geometry {
    entry_count: u32,
    response_count: u32,
    ring_offset: usize,
    response_ring_offset: usize,
    max_abi: u32,
}

/// A mapped, negotiated faultring queue: the consumer side of the ABI.
///
/// Made by [`crate::Client::attach`] (descriptors from the service) or
/// [`Queue::from_files`] (descriptors you already hold, e.g. inherited at fds
/// 3..6). Single consumer: a queue is `Send` but not `Sync`; read it from one
/// thread at a time.
///
/// Dropping a queue commits pending responses (best effort), unmaps both
/// regions and closes the doorbells. The control connection stays open as
/// long as the [`crate::Client`] or any queue of it lives.
pub struct Queue {
    producer: RoRegion,
    consumer: RwRegion,
    consumer_doorbell: OwnedFd,
    producer_doorbell: OwnedFd,
    control: Option<Arc<OwnedFd>>,
    geo: Geometry,
    abi: Abi,
    opts: QueueOptions,
    /// Our copy of `fault_cons` (we are its only writer).
    cons: u32,
    /// Responses written but not yet published (next free slot index).
    resp_prod: Cell<u32>,
    /// The `resp_prod` last stored to shared memory.
    resp_published: Cell<u32>,
    seq: SequenceTracker,
}

impl core::fmt::Debug for Queue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Queue")
            .field("abi", &self.abi)
            .field("entry_count", &self.geo.entry_count)
            .field("response_count", &self.geo.response_count)
            .field("fault_cons", &self.cons)
            .field("resp_prod", &self.resp_prod.get())
            .finish_non_exhaustive()
    }
}

fn seal_names(s: i32) -> String {
    let mut v = Vec::new();
    for (bit, name) in [
        (libc::F_SEAL_SEAL, "SEAL"),
        (libc::F_SEAL_SHRINK, "SHRINK"),
        (libc::F_SEAL_GROW, "GROW"),
        (libc::F_SEAL_WRITE, "WRITE"),
        (libc::F_SEAL_FUTURE_WRITE, "FUTURE_WRITE"),
    ] {
        if s & bit != 0 {
            v.push(name);
        }
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join("|")
    }
}

fn accmode_name(m: i32) -> &'static str {
    match m {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_PATH/unknown",
    }
}

/// Checks a region descriptor; returns its size.
fn check_memfd(index: usize, fd: BorrowedFd<'_>, need: i32, forbid: i32, accmode: i32) -> Result<usize> {
    let info = sys::fd_info(fd).map_err(|e| Error::os("fstat/fcntl of a queue region", e))?;
    let desc = |field, detail: String| Error::Descriptor { index, field, detail };
    if info.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(desc("file type", format!("st_mode 0o{:o} is not a regular file (a memfd)", info.mode)));
    }
    let seals = info
        .seals
        .map_err(|errno| desc("seals", format!("F_GET_SEALS failed (errno {errno}): not a sealable memfd")))?;
    if seals & need != need {
        return Err(desc("seals", format!("{} (0x{seals:x}) lacks {}", seal_names(seals), seal_names(need & !seals))));
    }
    if seals & forbid != 0 {
        return Err(desc(
            "seals",
            format!("{} (0x{seals:x}) includes {}", seal_names(seals), seal_names(seals & forbid)),
        ));
    }
    let mode = info.status_flags & libc::O_ACCMODE;
    if mode != accmode {
        return Err(desc(
            "access mode",
            format!(
                "opened {} (F_GETFL 0o{:o}), must be {}",
                accmode_name(mode),
                info.status_flags,
                accmode_name(accmode)
            ),
        ));
    }
    if info.size <= 0 || info.size > u32::MAX as i64 * 2 {
        return Err(desc("size", format!("st_size {} is not a plausible region size", info.size)));
    }
    Ok(info.size as usize)
}

/// Checks a doorbell descriptor: an `AF_UNIX` `SOCK_DGRAM` socket, non-blocking.
fn check_doorbell(index: usize, fd: BorrowedFd<'_>) -> Result<()> {
    let info = sys::fd_info(fd).map_err(|e| Error::os("fstat/fcntl of a doorbell", e))?;
    let desc = |field, detail: String| Error::Descriptor { index, field, detail };
    if info.mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(desc("file type", format!("st_mode 0o{:o} is not a socket", info.mode)));
    }
    let (domain, ty) = sys::socket_kind(fd).map_err(|e| Error::os("getsockopt of a doorbell", e))?;
    if domain != libc::AF_UNIX {
        return Err(desc("socket domain", format!("SO_DOMAIN {domain}, must be AF_UNIX ({})", libc::AF_UNIX)));
    }
    if ty != libc::SOCK_DGRAM {
        return Err(desc("socket type", format!("SO_TYPE {ty}, must be SOCK_DGRAM ({})", libc::SOCK_DGRAM)));
    }
    if info.status_flags & libc::O_NONBLOCK == 0 {
        return Err(desc("O_NONBLOCK", format!("F_GETFL 0o{:o} lacks O_NONBLOCK", info.status_flags)));
    }
    Ok(())
}

fn is_pow2_in_range(n: u32) -> bool {
    n.is_power_of_two() && (abi::MIN_ENTRIES..=abi::MAX_ENTRIES).contains(&n)
}

/// ABI.md section 5 step 1. Every field checked here is written once by the
/// producer before it hands the descriptors over (the `SCM_RIGHTS` transfer
/// orders those writes before our loads), so relaxed loads see the final values.
fn check_header(p: &RoRegion, psize: usize, csize: usize, expected: Option<(u32, u32)>) -> Result<Geometry> {
    let hdr = |field, value: u64, expected: String| Error::Header { field, value, expected };
    if psize < P::SIZE {
        return Err(hdr("producer region size", psize as u64, format!(">= {} (the header)", P::SIZE)));
    }
    if csize < C::SIZE {
        return Err(hdr("consumer region size", csize as u64, format!(">= {} (the header)", C::SIZE)));
    }
    let magic = p.load_u64(P::MAGIC)?;
    if magic != abi::PRODUCER_MAGIC {
        return Err(hdr("magic", magic, format!("0x{:x} (\"FLTRING1\")", abi::PRODUCER_MAGIC)));
    }
    let u32f = |off| p.load_u32(off);
    let eq = |field, off, want: u32| -> Result<()> {
        let v = u32f(off)?;
        if v != want {
            return Err(hdr(field, v.into(), want.to_string()));
        }
        Ok(())
    };
    eq("layout_version", P::LAYOUT_VERSION, abi::LAYOUT_VERSION)?;
    eq("header_size", P::HEADER_SIZE, P::SIZE as u32)?;
    eq("entry_size", P::ENTRY_SIZE, abi::ENTRY_SIZE)?;
    eq("response_slot_size", P::RESPONSE_SLOT_SIZE, abi::RESPONSE_SLOT_SIZE)?;
    let range = format!("a power of two in {}..={}", abi::MIN_ENTRIES, abi::MAX_ENTRIES);
    let entry_count = u32f(P::ENTRY_COUNT)?;
    if !is_pow2_in_range(entry_count) {
        return Err(hdr("entry_count", entry_count.into(), range));
    }
    let response_count = u32f(P::RESPONSE_COUNT)?;
    if !is_pow2_in_range(response_count) {
        return Err(hdr("response_count", response_count.into(), range));
    }
    let max_abi = u32f(P::MAX_ABI)?;
    if !(abi::ABI_V1..=abi::ABI_MAX).contains(&max_abi) {
        return Err(hdr("max_abi", max_abi.into(), format!("1..={}", abi::ABI_MAX)));
    }
    let ring_offset = u32f(P::RING_OFFSET)?;
    if ring_offset % abi::REGION_ALIGN != 0 || (ring_offset as usize) < P::SIZE {
        return Err(hdr(
            "ring_offset",
            ring_offset.into(),
            format!("a multiple of {} past the header", abi::REGION_ALIGN),
        ));
    }
    let ring_end = u64::from(ring_offset) + u64::from(entry_count) * u64::from(abi::ENTRY_SIZE);
    if ring_end > psize as u64 {
        return Err(hdr(
            "ring_offset + entry_count * 64",
            ring_end,
            format!("<= the producer region's size {psize} (fstat)"),
        ));
    }
    let rro = u32f(P::RESPONSE_RING_OFFSET)?;
    if rro % abi::REGION_ALIGN != 0 || (rro as usize) < C::SIZE {
        return Err(hdr(
            "response_ring_offset",
            rro.into(),
            format!("a multiple of {} past the consumer header", abi::REGION_ALIGN),
        ));
    }
    let resp_end = u64::from(rro) + u64::from(response_count) * u64::from(abi::RESPONSE_SLOT_SIZE);
    if resp_end > csize as u64 {
        return Err(hdr(
            "response_ring_offset + response_count * 64",
            resp_end,
            format!("<= the consumer region's size {csize} (fstat)"),
        ));
    }
    let prs = p.load_u64(P::PRODUCER_REGION_SIZE)?;
    if prs != psize as u64 {
        return Err(hdr("producer_region_size", prs, format!("{psize} (fstat of the producer region)")));
    }
    let crs = p.load_u64(P::CONSUMER_REGION_SIZE)?;
    if crs != csize as u64 {
        return Err(hdr("consumer_region_size", crs, format!("{csize} (fstat of the consumer region)")));
    }
    if let Some((e, r)) = expected {
        if e != entry_count {
            return Err(hdr("entry_count", entry_count.into(), format!("{e} (the ATTACH reply)")));
        }
        if r != response_count {
            return Err(hdr("response_count", response_count.into(), format!("{r} (the ATTACH reply)")));
        }
    }
    let state = u32f(P::STATE)?;
    if !(abi::STATE_STARTING..=abi::STATE_CLOSED).contains(&state) {
        return Err(hdr("state", state.into(), "1 (starting), 2 (running) or 3 (closed)".into()));
    }
    Ok(Geometry {
        entry_count,
        response_count,
        ring_offset: ring_offset as usize,
        response_ring_offset: rro as usize,
        max_abi,
    })
}

fn ms_ceil(d: Duration) -> i32 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.min(i32::MAX as u128) as i32
}

impl Queue {
    /// Validates, maps and negotiates a queue from descriptors you hold.
    ///
    /// `liveness` is a descriptor that reports `POLLHUP` when the producer is
    /// gone (the control socket); without one, [`Queue::wait`] cannot report
    /// [`WaitOutcome::ServiceGone`]. [`crate::Client::attach`] passes its
    /// control socket.
    ///
    /// Steps (ABI.md sections 1, 5 and 10): each descriptor's type, seals and
    /// access mode; `mmap` of the producer region `PROT_READ` and of the
    /// consumer region read-write, whole (their `fstat` sizes); the producer
    /// header; then negotiation of `abi` within `opts.negotiation_timeout`.
    ///
    /// # Errors
    /// [`Error::Descriptor`], [`Error::Header`], [`Error::Negotiation`],
    /// [`Error::Timeout`], [`Error::QueueClosed`], [`Error::Os`]. Every
    /// descriptor is closed and every mapping unmapped on error.
    pub fn from_files(files: QueueFiles, abi: Abi, liveness: Option<OwnedFd>, opts: QueueOptions) -> Result<Queue> {
        Self::build(files, abi, liveness.map(Arc::new), opts, None)
    }

    pub(crate) fn build(
        files: QueueFiles,
        abi: Abi,
        control: Option<Arc<OwnedFd>>,
        opts: QueueOptions,
        expected: Option<(u32, u32)>,
    ) -> Result<Queue> {
        let all = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        let psize = check_memfd(0, files.producer.as_fd(), all | libc::F_SEAL_FUTURE_WRITE, 0, libc::O_RDONLY)?;
        let csize =
            check_memfd(1, files.consumer.as_fd(), all, libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE, libc::O_RDWR)?;
        check_doorbell(2, files.consumer_doorbell.as_fd())?;
        check_doorbell(3, files.producer_doorbell.as_fd())?;
        let producer =
            RoRegion::map(files.producer.as_fd(), psize).map_err(|e| Error::os("mmap producer region PROT_READ", e))?;
        let consumer = RwRegion::map(files.consumer.as_fd(), csize)
            .map_err(|e| Error::os("mmap consumer region PROT_READ|PROT_WRITE", e))?;
        let geo = check_header(&producer, psize, csize, expected)?;
        // The mappings keep the memfds alive; their descriptors are no longer needed.
        let QueueFiles { producer: _, consumer: _, consumer_doorbell, producer_doorbell } = files;
        // Our own indices: we are their only writer; a fresh queue holds 0.
        let cons = consumer.load_u32(C::FAULT_CONS, Ordering::Relaxed)?;
        let resp = consumer.load_u32(C::RESP_PROD, Ordering::Relaxed)?;
        let mut q = Queue {
            producer,
            consumer,
            consumer_doorbell,
            producer_doorbell,
            control,
            geo,
            abi,
            opts,
            cons,
            resp_prod: Cell::new(resp),
            resp_published: Cell::new(resp),
            seq: SequenceTracker::new(),
        };
        q.negotiate()?;
        Ok(q)
    }

    /// ABI.md section 5 steps 2 and 3.
    fn negotiate(&mut self) -> Result<()> {
        let want = self.abi.raw();
        if want > self.geo.max_abi {
            return Err(Error::Negotiation {
                detail: format!("ABI {want} requested, the producer offers at most max_abi = {}", self.geo.max_abi),
            });
        }
        // `abi`: written by the producer (release, after features_in_force).
        // Acquire = relaxed load + acquire fence: features_in_force is then visible.
        let now = self.producer.load_u32(P::ABI)?;
        fence(Ordering::Acquire);
        if now == abi::ABI_NONE {
            // `requested_features`: ours; published by the seq_cst store below.
            self.consumer.store_u64(C::REQUESTED_FEATURES, abi::FEATURES_KNOWN, Ordering::Relaxed)?;
            // `requested_abi`: ours; seq_cst per ABI.md section 5 step 2 (it is
            // followed by a doorbell check, section 4 "To wake").
            self.consumer.store_u32(C::REQUESTED_ABI, want, Ordering::SeqCst)?;
            self.wake_producer()?;
            let deadline = Instant::now() + self.opts.negotiation_timeout;
            loop {
                let a = self.producer.load_u32(P::ABI)?;
                fence(Ordering::Acquire);
                if a != abi::ABI_NONE {
                    break;
                }
                if self.state_closed()? {
                    return Err(Error::QueueClosed);
                }
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        op: "the producer to put the requested ABI in force",
                        after: self.opts.negotiation_timeout,
                    });
                }
                // The re-check is of `state`, not `abi`: the producer stores `abi`
                // with release and then `state = RUNNING` with seq_cst before it
                // looks at `consumer_sleeping`; only that seq_cst store is in the
                // total order the no-lost-wake-up argument rests on, so the
                // sleeper must re-load that very word.
                if self.sleep_once(deadline, P::STATE, abi::STATE_STARTING)? && self.producer.load_u32(P::ABI)? == 0 {
                    return Err(Error::ServiceGone);
                }
            }
        }
        let got = self.producer.load_u32(P::ABI)?;
        fence(Ordering::Acquire);
        if got != want {
            return Err(Error::Negotiation {
                detail: format!("ABI {want} requested, the producer put ABI {got} in force"),
            });
        }
        // `features_in_force`: producer, before its release store of `abi`,
        // which we acquired above.
        let features = self.producer.load_u64(P::FEATURES_IN_FORCE)?;
        if features & !abi::FEATURES_KNOWN != 0 {
            return Err(Error::Negotiation {
                detail: format!("features_in_force 0x{features:x}, but none were requested"),
            });
        }
        Ok(())
    }

    fn state_closed(&self) -> Result<bool> {
        // `state`: producer; at close it stores 3 (release/seq_cst) after its
        // last `fault_prod` store. Acquire (relaxed load + acquire fence), so
        // that the `fault_prod` re-load that follows a "closed" is ordered
        // after this load and sees every record published before the close:
        // without it, a weakly ordered CPU could read a stale `fault_prod`
        // and report Closed with records still in the ring.
        let state = self.producer.load_u32(P::STATE)?;
        fence(Ordering::Acquire);
        Ok(state == abi::STATE_CLOSED)
    }

    /// ABI.md section 4, "To wake", after our index store: a seq_cst fence,
    /// then load `producer_sleeping`; if 1, ring the producer's doorbell.
    fn wake_producer(&self) -> Result<()> {
        fence(Ordering::SeqCst);
        // `producer_sleeping`: producer (seq_cst store of 1 before it blocks).
        // Our fence precedes this load, so it sees that 1 or our index store
        // is visible to the producer's re-check (section 4's argument).
        if self.producer.load_u32(P::PRODUCER_SLEEPING)? != 0 {
            self.ring_producer()?;
        }
        Ok(())
    }

    fn ring_producer(&self) -> Result<()> {
        match sys::ring_doorbell(self.producer_doorbell.as_fd()) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::EPIPE | libc::ECONNRESET)) => {
                Err(Error::ServiceGone)
            }
            Err(e) => Err(Error::os("write producer doorbell", e)),
        }
    }

    /// One pass of the sleep protocol (ABI.md section 4, "To sleep") on the
    /// producer word at `word` while it still holds `seen`. Returns true if
    /// the control connection hung up.
    fn sleep_once(&self, deadline: Instant, word: usize, seen: u32) -> Result<bool> {
        // Step 1. `consumer_sleeping`: ours; seq_cst so that it is ordered
        // before the re-check below in the single total order.
        self.consumer.store_u32(C::CONSUMER_SLEEPING, 1, Ordering::SeqCst)?;
        // Step 2. The seq_cst re-load of the producer's word, as fence + relaxed
        // load (read-only mapping). Either this load sees the producer's new
        // index, or the producer's flag load after its own fence sees our 1.
        fence(Ordering::SeqCst);
        let now = self.producer.load_u32(word)?;
        let closed = self.state_closed()?;
        let mut hup = false;
        if now == seen && !closed {
            // Step 3: poll the doorbell (and the control socket, events 0:
            // only POLLHUP/POLLERR), then drain until EAGAIN.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let ctl = self.control.as_ref().map_or(-1, |c| c.as_raw_fd());
            let mut fds = [
                libc::pollfd { fd: self.consumer_doorbell.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: ctl, events: 0, revents: 0 },
            ];
            sys::poll(&mut fds, ms_ceil(remaining)).map_err(|e| Error::os("poll consumer doorbell", e))?;
            sys::drain_doorbell(self.consumer_doorbell.as_fd(), 4096)
                .map_err(|e| Error::os("read consumer doorbell", e))?;
            hup = fds[1].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
        }
        // Step 4. Relaxed would do (a stale 1 only costs the producer a
        // spurious ring); release keeps it after the loads above.
        self.consumer.store_u32(C::CONSUMER_SLEEPING, 0, Ordering::Release)?;
        Ok(hup)
    }

    /// `fault_prod`, acquired.
    fn load_prod(&self) -> Result<u32> {
        // `fault_prod`: producer, release store after writing the records.
        // Acquire (relaxed load + acquire fence): the records up to it are
        // visible to the loads that follow.
        let prod = self.producer.load_u32(P::FAULT_PROD)?;
        fence(Ordering::Acquire);
        Ok(prod)
    }

    /// Records published and not yet consumed (`fault_prod - fault_cons`).
    ///
    /// # Errors
    /// [`Error::BrokenProducer`] if `fault_prod` is more than `entry_count`
    /// ahead of `fault_cons`.
    pub fn available(&self) -> Result<u32> {
        let prod = self.load_prod()?;
        let n = prod.wrapping_sub(self.cons);
        if n > self.geo.entry_count {
            return Err(Error::BrokenProducer {
                index: "fault_prod",
                value: prod,
                against: self.cons,
                count: self.geo.entry_count,
            });
        }
        Ok(n)
    }

    /// Takes every published record as a zero-copy [`Batch`].
    ///
    /// The batch may be empty. ABI 2 sequence numbers are checked here:
    /// LOST records and gaps are added to [`Queue::sequence_stats`] and to the
    /// batch's [`BatchSummary`]; the LOST records themselves stay in the batch.
    ///
    /// # Errors
    /// [`Error::BrokenProducer`] (see [`Queue::available`]).
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        self.batch_max(u32::MAX)
    }

    /// Like [`Queue::batch`], with at most `max` records.
    pub fn batch_max(&mut self, max: u32) -> Result<Batch<'_>> {
        let n = self.available()?.min(max);
        let start = self.cons;
        let end = start.wrapping_add(n);
        let mut summary = BatchSummary::default();
        if self.abi == Abi::V2 {
            let mut i = start;
            while i != end {
                // Read what the tracker needs first (the slot borrows the
                // region), then update the tracker.
                let seen = match Record::new(Abi::V2, slot_in(&self.producer, &self.geo, i)?) {
                    Record::Lost(l) => {
                        Seen::Lost(l.sequence(), l.lost_records(), l.first_lost_sequence(), l.total_lost())
                    }
                    Record::V2(r) => Seen::Data(r.sequence()),
                    Record::V1(_) => Seen::Data(0),
                };
                match seen {
                    Seen::Lost(seq, lost, first, total) => {
                        summary.lost_records += 1;
                        summary.reported_lost = summary.reported_lost.saturating_add(lost);
                        for ev in self.seq.observe_lost(seq, lost, first, total).into_iter().flatten() {
                            note(&mut summary, ev);
                        }
                    }
                    Seen::Data(seq) => {
                        summary.data_records += 1;
                        if let Some(ev) = self.seq.observe_data(seq) {
                            note(&mut summary, ev);
                        }
                    }
                }
                i = i.wrapping_add(1);
            }
        }
        Ok(Batch { queue: self, start, end, summary, released: false })
    }

    fn slot(&self, index: u32) -> Result<Slot<'_>> {
        slot_in(&self.producer, &self.geo, index)
    }

    /// Waits until records are available, the queue closes, the service goes
    /// away, or `timeout` passes.
    ///
    /// Spins on `fault_prod` for [`QueueOptions::spin`], then sleeps with the
    /// doorbell protocol of ABI.md section 4 (flag, seq_cst re-check, `poll`,
    /// drain, clear). Spurious wake-ups are absorbed: the index is always
    /// re-checked.
    ///
    /// Outcomes are checked in this order: records waiting → `Ready`; `state ==
    /// 3` → `Closed`; control socket hung up → `ServiceGone`; else `TimedOut`.
    ///
    /// # Errors
    /// [`Error::BrokenProducer`], [`Error::Os`] (poll/read of the doorbell).
    pub fn wait(&mut self, timeout: Duration) -> Result<WaitOutcome> {
        let start = Instant::now();
        let deadline = start + timeout;
        if self.available()? > 0 {
            return Ok(WaitOutcome::Ready);
        }
        let spin_until = start + self.opts.spin.min(timeout);
        let mut n = 0u32;
        loop {
            // `fault_prod` (relaxed poll; `available` re-loads it with acquire).
            if self.producer.load_u32(P::FAULT_PROD)? != self.cons {
                self.available()?;
                return Ok(WaitOutcome::Ready);
            }
            n = n.wrapping_add(1);
            if n % 64 == 0 && Instant::now() >= spin_until {
                break;
            }
            core::hint::spin_loop();
        }
        loop {
            if self.available()? > 0 {
                return Ok(WaitOutcome::Ready);
            }
            if self.state_closed()? {
                // Closed: the producer stored `state = 3` after its last
                // record. Re-check the index once more, with acquire.
                return Ok(if self.available()? > 0 { WaitOutcome::Ready } else { WaitOutcome::Closed });
            }
            if Instant::now() >= deadline {
                return Ok(WaitOutcome::TimedOut);
            }
            if self.sleep_once(deadline, P::FAULT_PROD, self.cons)? {
                if self.available()? > 0 {
                    return Ok(WaitOutcome::Ready);
                }
                if self.state_closed()? {
                    return Ok(WaitOutcome::Closed);
                }
                return Ok(WaitOutcome::ServiceGone);
            }
        }
    }

    /// True if the control connection hung up (`POLLHUP`/`POLLERR` on it);
    /// false if it is up or the queue has none.
    pub fn service_hung_up(&self) -> bool {
        let Some(c) = self.control.as_ref() else { return false };
        let mut fds = [libc::pollfd { fd: c.as_raw_fd(), events: 0, revents: 0 }];
        matches!(sys::poll(&mut fds, 0), Ok(n) if n > 0 && fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0)
    }

    /// Writes a response into the next free slot of the response ring,
    /// without publishing it; [`Queue::commit`] publishes every pending one
    /// with one index store and at most one doorbell ring.
    ///
    /// The whole 64-byte slot is written (the response, then zeros), so no
    /// byte of an earlier response survives in it.
    ///
    /// # Errors
    /// * [`Error::ResponseRingFull`]: every slot holds a response the producer
    ///   has not consumed (`resp_prod - resp_cons == response_count`). Nothing
    ///   was written; commit, then retry when `resp_cons` moves
    ///   ([`Queue::push_response_wait`] does that).
    /// * [`Error::InvalidArgument`]: the response is for the other ABI.
    /// * [`Error::BrokenProducer`]: `resp_cons` is ahead of our `resp_prod`.
    pub fn push_response(&self, response: &Response) -> Result<()> {
        if response.abi() != self.abi {
            return Err(Error::invalid(
                "response",
                format!("an ABI {} response on an ABI {} queue", response.abi().raw(), self.abi.raw()),
            ));
        }
        let local = self.resp_prod.get();
        // `resp_cons`: producer, release store after it copied the slots out.
        // Acquire (relaxed + fence): its reads of a slot happen before our
        // overwrite of it.
        let rcons = self.producer.load_u32(P::RESP_CONS)?;
        fence(Ordering::Acquire);
        let used = local.wrapping_sub(rcons);
        let count = self.geo.response_count;
        if used > count {
            return Err(Error::BrokenProducer { index: "resp_cons", value: rcons, against: local, count });
        }
        if used == count {
            return Err(Error::ResponseRingFull { count });
        }
        let base = self.geo.response_ring_offset + (local & (count - 1)) as usize * abi::RESPONSE_SLOT_SIZE as usize;
        // The slot: ours until we publish it. Relaxed word stores; the release
        // store of `resp_prod` in `commit` publishes them.
        for (i, w) in response.slot_words().iter().enumerate() {
            self.consumer.store_u32(base + i * 4, *w, Ordering::Relaxed)?;
        }
        self.resp_prod.set(local.wrapping_add(1));
        Ok(())
    }

    /// Publishes pending responses: `resp_prod` (release), a seq_cst fence,
    /// then the producer's doorbell if `producer_sleeping` is set (ABI.md
    /// sections 4 and 8). Does nothing if nothing is pending.
    ///
    /// # Errors
    /// [`Error::ServiceGone`] if the doorbell's peer is gone (the responses
    /// are published, but nobody will read them); [`Error::Os`].
    pub fn commit(&self) -> Result<()> {
        let local = self.resp_prod.get();
        if local == self.resp_published.get() {
            return Ok(());
        }
        // `resp_prod`: ours. Release: the slot stores above are visible
        // before the index that covers them.
        self.consumer.store_u32(C::RESP_PROD, local, Ordering::Release)?;
        self.resp_published.set(local);
        self.wake_producer()
    }

    /// [`Queue::push_response`] then [`Queue::commit`].
    pub fn respond(&self, response: &Response) -> Result<()> {
        self.push_response(response)?;
        self.commit()
    }

    /// [`Queue::push_response`], and if the ring is full: commit, then poll
    /// `resp_cons` with a bounded sleep (no doorbell announces freed response
    /// slots, ABI.md section 8) until a slot frees or `timeout` passes.
    ///
    /// # Errors
    /// [`Error::ResponseRingFull`] after `timeout`; [`Error::QueueClosed`] if
    /// the queue closes meanwhile; [`Error::ServiceGone`] if the control
    /// connection hangs up; the errors of `push_response`.
    pub fn push_response_wait(&self, response: &Response, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            match self.push_response(response) {
                Err(Error::ResponseRingFull { count }) => {
                    self.commit()?;
                    if self.state_closed()? {
                        return Err(Error::QueueClosed);
                    }
                    if self.service_hung_up() {
                        return Err(Error::ServiceGone);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::ResponseRingFull { count });
                    }
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    /// Responses pushed but not yet committed.
    pub fn pending_responses(&self) -> u32 {
        self.resp_prod.get().wrapping_sub(self.resp_published.get())
    }

    /// Response slots the producer has not consumed yet (committed or not):
    /// `resp_prod - resp_cons`.
    pub fn responses_in_flight(&self) -> Result<u32> {
        // `resp_cons`: producer (release). Only a count: relaxed suffices,
        // the acquire fence is for symmetry with push_response.
        let rcons = self.producer.load_u32(P::RESP_CONS)?;
        fence(Ordering::Acquire);
        Ok(self.resp_prod.get().wrapping_sub(rcons))
    }

    /// The record ABI in force.
    pub fn abi(&self) -> Abi {
        self.abi
    }

    /// Fault ring slots (`entry_count`).
    pub fn entry_count(&self) -> u32 {
        self.geo.entry_count
    }

    /// Response ring slots (`response_count`).
    pub fn response_count(&self) -> u32 {
        self.geo.response_count
    }

    /// `max_abi` offered by the producer.
    pub fn max_abi(&self) -> u32 {
        self.geo.max_abi
    }

    /// `state`: 1 starting, 2 running, 3 closed.
    pub fn state(&self) -> Result<u32> {
        Ok(self.producer.load_u32(P::STATE)?)
    }

    /// `producer_pid` (diagnostics).
    pub fn producer_pid(&self) -> Result<u32> {
        Ok(self.producer.load_u32(P::PRODUCER_PID)?)
    }

    /// Our `fault_cons` (records consumed and released).
    pub fn consumer_index(&self) -> u32 {
        self.cons
    }

    /// The producer's counters (`struct faultring_counters`), relaxed loads:
    /// they are statistics, and each may be a little stale relative to the others.
    pub fn counters(&self) -> Result<abi::FaultringCounters> {
        let mut w = [0u64; 32];
        for (i, x) in w.iter_mut().enumerate() {
            // Counters: producer, relaxed stores (ABI.md section 7).
            *x = self.producer.load_u64(P::COUNTERS + i * 8)?;
        }
        Ok(abi::FaultringCounters::from_words(w))
    }

    /// ABI 2 sequence/LOST totals since the queue was attached (all zero for ABI 1).
    pub fn sequence_stats(&self) -> SequenceStats {
        self.seq.stats()
    }
}

enum Seen {
    Data(u32),
    Lost(u32, u64, u32, u64),
}

/// The slot of ring index `index` (`index & (entry_count - 1)`).
fn slot_in<'a>(producer: &'a RoRegion, geo: &Geometry, index: u32) -> Result<Slot<'a>> {
    let slot = (index & (geo.entry_count - 1)) as usize;
    let base = geo.ring_offset + slot * abi::ENTRY_SIZE as usize;
    Slot::new(producer, base)
        .ok_or_else(|| Error::Internal { detail: format!("fault slot at {base} outside the producer region") })
}

fn note(s: &mut BatchSummary, ev: SequenceEvent) {
    match ev {
        SequenceEvent::Gap { missing, .. } => {
            s.gaps += 1;
            s.missing = s.missing.saturating_add(missing.into());
        }
        SequenceEvent::Backwards { .. } | SequenceEvent::LostInconsistent { .. } => s.anomalies += 1,
    }
    if s.first_event.is_none() {
        s.first_event = Some(ev);
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Best effort: publish responses the caller pushed but did not commit.
        let _ = self.commit();
    }
}

/// A zero-copy batch of records: the ring slots from `fault_cons` to the
/// `fault_prod` acquired when the batch was taken.
///
/// Records are views into the shared mapping ([`Record`]); they borrow the
/// batch, so none can be used after the batch is released. Releasing (by
/// [`Batch::release`] or by dropping the batch) stores `fault_cons` with
/// release ordering, which hands the slots back to the producer.
///
/// While a batch is alive you can still answer groups
/// ([`Batch::push_response`], [`Batch::commit`]).
pub struct Batch<'q> {
    queue: &'q mut Queue,
    start: u32,
    end: u32,
    summary: BatchSummary,
    released: bool,
}

impl<'q> Batch<'q> {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.end.wrapping_sub(self.start) as usize
    }

    /// True if the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The `i`-th record (0-based), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Record<'_>> {
        if i >= self.len() {
            return None;
        }
        let slot = self.queue.slot(self.start.wrapping_add(i as u32)).ok()?;
        Some(Record::new(self.queue.abi, slot))
    }

    /// The records, in ring order.
    pub fn iter(&self) -> impl Iterator<Item = Record<'_>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// Sequence accounting of this batch (ABI 2).
    pub fn summary(&self) -> &BatchSummary {
        &self.summary
    }

    /// Ring index of the first record (`fault_cons` when the batch was taken).
    pub fn start_index(&self) -> u32 {
        self.start
    }

    /// [`Queue::push_response`] on the batch's queue.
    pub fn push_response(&self, response: &Response) -> Result<()> {
        self.queue.push_response(response)
    }

    /// [`Queue::push_response_wait`] on the batch's queue.
    pub fn push_response_wait(&self, response: &Response, timeout: Duration) -> Result<()> {
        self.queue.push_response_wait(response, timeout)
    }

    /// [`Queue::commit`] on the batch's queue.
    pub fn commit(&self) -> Result<()> {
        self.queue.commit()
    }

    /// Hands the slots back to the producer (stores `fault_cons`, release).
    pub fn release(mut self) {
        self.do_release();
    }

    fn do_release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if self.start == self.end {
            return;
        }
        // `fault_cons`: ours. Release: every read of these slots (all through
        // views borrowing this batch, so finished) happens before the
        // producer, which acquires fault_cons, overwrites them.
        if self.queue.consumer.store_u32(C::FAULT_CONS, self.end, Ordering::Release).is_ok() {
            self.queue.cons = self.end;
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.do_release();
    }
}

impl core::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Batch")
            .field("start", &self.start)
            .field("len", &self.len())
            .field("summary", &self.summary)
            .finish()
    }
}
