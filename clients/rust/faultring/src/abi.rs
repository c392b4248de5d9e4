//! Shared-memory wire layouts: a `#[repr(C)]` mirror of `faultring_abi.h`.
//!
//! Every struct here has the size and field offsets of its C twin. They are
//! pinned twice: by the `const` assertions at the bottom of this file (a moved
//! byte fails the build), and by `tests/layout.rs`, which compiles a C program
//! against the real header with `gcc` and compares every field's `offsetof` and
//! `sizeof` with this file.
//!
//! The library never casts shared memory to these structs: shared memory is
//! only touched through single-word atomic loads and stores (see the crate's
//! `sys` module). These structs are what you get when you *copy* a record out
//! of the ring ([`crate::Record::to_owned`]) and the reference for the offsets
//! the views use.
//!
//! All integers are little-endian; the crate refuses to build on a big-endian
//! or 32-bit target.

/// First 8 bytes of a producer region, `"FLTRING1"` read as a little-endian `u64`.
pub const PRODUCER_MAGIC: u64 = 0x3147_4E49_5254_4C46;
/// Region layout version described by this module (`layout_version`).
pub const LAYOUT_VERSION: u32 = 1;

/// No ABI negotiated yet (`abi == 0`).
pub const ABI_NONE: u32 = 0;
/// Record ABI 1: the kernel's `struct iommu_fault` (one device per queue).
pub const ABI_V1: u32 = 1;
/// Record ABI 2: `struct faultring_v2_fault` (sequence numbers, cookies, device ids).
pub const ABI_V2: u32 = 2;
/// Highest ABI this crate understands.
pub const ABI_MAX: u32 = ABI_V2;

/// Cache-line size every shared index is padded to.
pub const CACHELINE: u32 = 64;
/// Size of every fault record (ABI 1 and 2).
pub const ENTRY_SIZE: u32 = 64;
/// Size of every response slot (ABI 1 and 2).
pub const RESPONSE_SLOT_SIZE: u32 = 64;
/// Ring offsets are multiples of this.
pub const REGION_ALIGN: u32 = 4096;
/// Smallest entry/response count.
pub const MIN_ENTRIES: u32 = 2;
/// Largest entry/response count.
pub const MAX_ENTRIES: u32 = 1 << 20;

/// `state`: geometry valid, waiting for negotiation.
pub const STATE_STARTING: u32 = 1;
/// `state`: ABI in force, records flow.
pub const STATE_RUNNING: u32 = 2;
/// `state`: producer closed the queue; no record follows.
pub const STATE_CLOSED: u32 = 3;

/// Feature bits known to this layout version (none).
pub const FEATURES_KNOWN: u64 = 0;

/// Record type: unrecoverable DMA fault (kernel `IOMMU_FAULT_DMA_UNRECOV`).
pub const FAULT_DMA_UNRECOV: u32 = 1;
/// Record type: page request (kernel `IOMMU_FAULT_PAGE_REQ`).
pub const FAULT_PAGE_REQ: u32 = 2;
/// Record type (ABI 2 only): LOST record, read as [`FaultringV2Lost`].
pub const FAULT_LOST: u32 = 3;

/// Permission: read.
pub const PERM_READ: u32 = 1 << 0;
/// Permission: write.
pub const PERM_WRITE: u32 = 1 << 1;
/// Permission: execute.
pub const PERM_EXEC: u32 = 1 << 2;
/// Permission: privileged.
pub const PERM_PRIV: u32 = 1 << 3;
/// All permission bits.
pub const PERM_MASK: u32 = 0xF;

/// ABI 1 unrecoverable-fault flag: `pasid` is valid.
pub const V1_UNRECOV_PASID_VALID: u32 = 1 << 0;
/// ABI 1 unrecoverable-fault flag: `addr` is valid.
pub const V1_UNRECOV_ADDR_VALID: u32 = 1 << 1;
/// ABI 1 unrecoverable-fault flag: `fetch_addr` is valid.
pub const V1_UNRECOV_FETCH_ADDR_VALID: u32 = 1 << 2;
/// ABI 1 page-request flag: `pasid` is valid.
pub const V1_PRQ_PASID_VALID: u32 = 1 << 0;
/// ABI 1 page-request flag: last page of the group (answer the group now).
pub const V1_PRQ_LAST_PAGE: u32 = 1 << 1;
/// ABI 1 page-request flag: `private_data` is present.
pub const V1_PRQ_PRIV_DATA: u32 = 1 << 2;
/// ABI 1 page-request flag: the response must carry the PASID.
pub const V1_PRQ_NEEDS_PASID: u32 = 1 << 3;

/// ABI 2 record flag: `pasid` is valid.
pub const V2_PASID_VALID: u32 = 1 << 0;
/// ABI 2 record flag: last page of its group.
pub const V2_LAST_PAGE: u32 = 1 << 1;
/// ABI 2 record flag: the device wants its PASID back (the service echoes it).
pub const V2_NEEDS_PASID: u32 = 1 << 2;
/// ABI 2 record flag: `addr` is valid (DMA_UNRECOV).
pub const V2_ADDR_VALID: u32 = 1 << 3;
/// ABI 2 record flag: `fetch_addr` is valid (DMA_UNRECOV).
pub const V2_FETCH_ADDR_VALID: u32 = 1 << 4;
/// All known ABI 2 record flags.
pub const V2_FLAGS_KNOWN: u32 = 0x1F;

/// Response code: pages mapped, the device retries.
pub const RESP_SUCCESS: u32 = 0;
/// Response code: do not retry.
pub const RESP_INVALID: u32 = 1;
/// Response code: disables PRI for the whole function (the service converts it to INVALID by default).
pub const RESP_FAILURE: u32 = 2;

/// ABI 1 response `version` (kernel `IOMMU_PAGE_RESP_VERSION_1`).
pub const RESP_VERSION_1: u32 = 1;
/// ABI 2 response `version`.
pub const RESP_VERSION_2: u32 = 2;
/// Response flag: `pasid` is meaningful (ABI 1 and 2).
pub const RESP_PASID_VALID: u32 = 1 << 0;
/// Response flag (ABI 2 only): `grpid` is checked against the group.
pub const RESP_GRPID_VALID: u32 = 1 << 1;

/// Largest PASID (20 bits).
pub const PASID_MAX: u32 = 0xF_FFFF;
/// Largest page request group index (9 bits).
pub const PRGI_MAX: u32 = 0x1FF;

/// `struct faultring_counters`: statistics the producer keeps in its region.
///
/// Written only by the producer with relaxed stores; never used for
/// synchronisation. [`crate::Queue::counters`] reads them with relaxed loads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringCounters {
    /// Records written into the fault ring (LOST records included).
    pub records_published: u64,
    /// Records dropped because the ring was full.
    pub records_lost: u64,
    /// Page-request groups that did not fit whole (answered INVALID at once by the page-request layer).
    pub groups_overflowed: u64,
    /// Doorbell rings of a sleeping consumer.
    pub doorbells_rung: u64,
    /// Response slots that passed slot validation (`match_*` says what they then did).
    pub responses_valid: u64,
    /// Publish attempts before negotiation (not written).
    pub publish_refused: u64,
    /// `fault_cons` moved backwards or beyond `fault_prod` (ignored).
    pub bad_consumer_index: u64,
    /// `resp_prod` moved backwards or more than a ring ahead (ignored).
    pub bad_response_index: u64,
    /// A second, different `requested_abi` (ignored).
    pub renegotiations: u64,
    /// `requested_abi` outside `1..=max_abi` (ignored).
    pub bad_abi_requests: u64,
    /// `requested_features` with unknown bits.
    pub bad_feature_requests: u64,
    /// Response `argsz` below its version's size or above the slot size.
    pub resp_bad_argsz: u64,
    /// Non-zero bytes between the known size and `argsz`.
    pub resp_trailing_nonzero: u64,
    /// Response `version` not the one in force.
    pub resp_bad_version: u64,
    /// Response `flags` with unknown bits.
    pub resp_unknown_flags: u64,
    /// `pasid` or `grpid` non-zero without its VALID flag.
    pub resp_reserved_nonzero: u64,
    /// `code` not SUCCESS, INVALID or FAILURE.
    pub resp_bad_code: u64,
    /// `pasid` wider than 20 bits or `grpid` wider than 9.
    pub resp_out_of_range: u64,
    /// Valid responses that completed their group.
    pub match_completed: u64,
    /// Valid responses that named no group ever issued here.
    pub match_unknown: u64,
    /// Valid responses for a group a consumer had already answered.
    pub match_duplicate: u64,
    /// Valid responses for a group answered INVALID at its timeout.
    pub match_late: u64,
    /// Valid responses for a group answered otherwise (overflow, detach, removal) or too long ago to tell.
    pub match_stale: u64,
    /// Valid responses for a group of a device on another queue.
    pub match_foreign_device: u64,
    /// Valid responses whose flagged PASID or PRGI is not the group's (ABI 1: a `NEEDS_PASID` group's PASID omitted).
    pub match_mismatch: u64,
    /// Zero.
    pub reserved: [u64; 7],
}

impl FaultringCounters {
    /// Number of named (non-reserved) counters.
    pub const NAMED: usize = 25;
    /// The counters' C names, in layout order (index `i` sits at byte `8 * i`).
    pub const NAMES: [&'static str; Self::NAMED] = [
        "records_published",
        "records_lost",
        "groups_overflowed",
        "doorbells_rung",
        "responses_valid",
        "publish_refused",
        "bad_consumer_index",
        "bad_response_index",
        "renegotiations",
        "bad_abi_requests",
        "bad_feature_requests",
        "resp_bad_argsz",
        "resp_trailing_nonzero",
        "resp_bad_version",
        "resp_unknown_flags",
        "resp_reserved_nonzero",
        "resp_bad_code",
        "resp_out_of_range",
        "match_completed",
        "match_unknown",
        "match_duplicate",
        "match_late",
        "match_stale",
        "match_foreign_device",
        "match_mismatch",
    ];

    /// Builds the struct from the 32 words in layout order.
    pub fn from_words(w: [u64; 32]) -> Self {
        let mut reserved = [0u64; 7];
        reserved.copy_from_slice(&w[25..32]);
        FaultringCounters {
            records_published: w[0],
            records_lost: w[1],
            groups_overflowed: w[2],
            doorbells_rung: w[3],
            responses_valid: w[4],
            publish_refused: w[5],
            bad_consumer_index: w[6],
            bad_response_index: w[7],
            renegotiations: w[8],
            bad_abi_requests: w[9],
            bad_feature_requests: w[10],
            resp_bad_argsz: w[11],
            resp_trailing_nonzero: w[12],
            resp_bad_version: w[13],
            resp_unknown_flags: w[14],
            resp_reserved_nonzero: w[15],
            resp_bad_code: w[16],
            resp_out_of_range: w[17],
            match_completed: w[18],
            match_unknown: w[19],
            match_duplicate: w[20],
            match_late: w[21],
            match_stale: w[22],
            match_foreign_device: w[23],
            match_mismatch: w[24],
            reserved,
        }
    }

    /// `(name, value)` of every named counter, in layout order.
    pub fn named(&self) -> [(&'static str, u64); Self::NAMED] {
        let v = [
            self.records_published,
            self.records_lost,
            self.groups_overflowed,
            self.doorbells_rung,
            self.responses_valid,
            self.publish_refused,
            self.bad_consumer_index,
            self.bad_response_index,
            self.renegotiations,
            self.bad_abi_requests,
            self.bad_feature_requests,
            self.resp_bad_argsz,
            self.resp_trailing_nonzero,
            self.resp_bad_version,
            self.resp_unknown_flags,
            self.resp_reserved_nonzero,
            self.resp_bad_code,
            self.resp_out_of_range,
            self.match_completed,
            self.match_unknown,
            self.match_duplicate,
            self.match_late,
            self.match_stale,
            self.match_foreign_device,
            self.match_mismatch,
        ];
        let mut out = [("", 0u64); Self::NAMED];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (Self::NAMES[i], v[i]);
        }
        out
    }

    /// Sum of every counter that says the *consumer* wrote something the
    /// producer refused (bad indices, bad negotiation, slot-validation
    /// failures) or a valid answer that matched nothing useful (`match_*`
    /// other than `match_completed` and `match_late`). A correct consumer
    /// keeps this at 0.
    ///
    /// `match_late` is excluded: a group that timed out before the consumer
    /// answered it is a latency problem, not a malformed answer.
    pub fn consumer_mistakes(&self) -> u64 {
        [
            self.bad_consumer_index,
            self.bad_response_index,
            self.renegotiations,
            self.bad_abi_requests,
            self.bad_feature_requests,
            self.resp_bad_argsz,
            self.resp_trailing_nonzero,
            self.resp_bad_version,
            self.resp_unknown_flags,
            self.resp_reserved_nonzero,
            self.resp_bad_code,
            self.resp_out_of_range,
            self.match_unknown,
            self.match_duplicate,
            self.match_stale,
            self.match_foreign_device,
            self.match_mismatch,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// `struct faultring_index_line`: one shared index alone on a cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultringIndexLine {
    /// The index or flag; the owning struct says who writes it and how.
    pub value: u32,
    /// Keeps the next index off this cache line.
    pub pad: [u8; 60],
}

/// `struct faultring_producer_header`: first page of the producer region.
///
/// Written only by the producer. The consumer maps it `PROT_READ`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FaultringProducerHeader {
    /// [`PRODUCER_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u32,
    /// `sizeof(struct faultring_producer_header)` (576).
    pub header_size: u32,
    /// Highest record ABI offered. The service offers exactly the ABI of the first ATTACH.
    pub max_abi: u32,
    /// ABI in force; 0 until negotiated. Producer: release store after `features_in_force`; consumer: acquire load.
    pub abi: u32,
    /// Bytes per fault record (64).
    pub entry_size: u32,
    /// Records in the fault ring (a power of two, 2 ..= 2^20).
    pub entry_count: u32,
    /// Byte offset of the fault ring in this region (a multiple of 4096).
    pub ring_offset: u32,
    /// Bytes per response slot (64).
    pub response_slot_size: u32,
    /// Slots in the response ring (a power of two, 2 ..= 2^20).
    pub response_count: u32,
    /// Byte offset of the response ring in the *consumer* region.
    pub response_ring_offset: u32,
    /// [`STATE_STARTING`], [`STATE_RUNNING`] or [`STATE_CLOSED`].
    pub state: u32,
    /// Pid of the producing process (diagnostics).
    pub producer_pid: u32,
    /// Feature bits the producer supports (none are defined).
    pub features_offered: u64,
    /// Feature bits granted at negotiation, written before `abi`.
    pub features_in_force: u64,
    /// Bytes of this region (what to map).
    pub producer_region_size: u64,
    /// Bytes of the consumer region.
    pub consumer_region_size: u64,
    /// Zero.
    pub reserved0: [u8; 40],
    /// Statistics (relaxed stores).
    pub counters: FaultringCounters,
    /// Fault-ring producer index: producer release store after writing records; consumer acquire load.
    pub fault_prod: FaultringIndexLine,
    /// Response-ring consumer index: producer release store after copying slots out; consumer acquire load before reusing a slot.
    pub resp_cons: FaultringIndexLine,
    /// 1 while the producer is about to block on its doorbell (seq_cst store by the producer).
    pub producer_sleeping: FaultringIndexLine,
}

/// `struct faultring_consumer_header`: first bytes of the consumer region.
///
/// Written only by the consumer; the producer treats every byte as hostile.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FaultringConsumerHeader {
    /// ABI the consumer wants (1 ..= `max_abi`), written once, seq_cst, then the wake check.
    pub requested_abi: u32,
    /// Zero.
    pub reserved0: u32,
    /// Feature bits wanted, written before `requested_abi` (0).
    pub requested_features: u64,
    /// Zero.
    pub reserved1: [u8; 48],
    /// Fault-ring consumer index: consumer release store after reading the records.
    pub fault_cons: FaultringIndexLine,
    /// Response-ring producer index: consumer release store after writing the slots, then the wake check.
    pub resp_prod: FaultringIndexLine,
    /// 1 while the consumer is about to block (seq_cst store by the consumer).
    pub consumer_sleeping: FaultringIndexLine,
}

/// `struct faultring_v1_unrecoverable`: kernel `struct iommu_fault_unrecoverable`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringV1Unrecoverable {
    /// `REASON_*` (kernel `enum iommu_fault_reason`).
    pub reason: u32,
    /// `V1_UNRECOV_*`.
    pub flags: u32,
    /// Valid with `V1_UNRECOV_PASID_VALID`.
    pub pasid: u32,
    /// `PERM_*`.
    pub perm: u32,
    /// Valid with `V1_UNRECOV_ADDR_VALID`.
    pub addr: u64,
    /// Valid with `V1_UNRECOV_FETCH_ADDR_VALID`.
    pub fetch_addr: u64,
}

/// `struct faultring_v1_page_request`: kernel `struct iommu_fault_page_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringV1PageRequest {
    /// `V1_PRQ_*`.
    pub flags: u32,
    /// Valid with `V1_PRQ_PASID_VALID`.
    pub pasid: u32,
    /// Page request group index (PRGI, 9 bits).
    pub grpid: u32,
    /// `PERM_*`.
    pub perm: u32,
    /// Page address.
    pub addr: u64,
    /// Device private data, valid with `V1_PRQ_PRIV_DATA` (the service echoes its own copy to the device).
    pub private_data: [u64; 2],
}

/// The anonymous union of `struct faultring_v1_fault` (56 bytes at offset 8).
///
/// Its members are crate-private so that every value of this type has all 56
/// bytes initialised (it is only built from bytes), which makes reading any
/// member sound. Use [`FaultringV1Fault::event`] and [`FaultringV1Fault::prm`]
/// to read it, and the `from_*` constructors to build it.
#[repr(C)]
#[derive(Clone, Copy)]
pub union FaultringV1FaultUnion {
    pub(crate) event: FaultringV1Unrecoverable,
    pub(crate) prm: FaultringV1PageRequest,
    pub(crate) padding2: [u8; 56],
}

impl FaultringV1FaultUnion {
    /// The union from its 56 raw bytes.
    pub fn from_bytes(padding2: [u8; 56]) -> Self {
        FaultringV1FaultUnion { padding2 }
    }

    /// The union holding an unrecoverable fault (the unused bytes are zero).
    pub fn from_event(e: FaultringV1Unrecoverable) -> Self {
        let mut b = [0u8; 56];
        put32(&mut b, 0, e.reason);
        put32(&mut b, 4, e.flags);
        put32(&mut b, 8, e.pasid);
        put32(&mut b, 12, e.perm);
        put64(&mut b, 16, e.addr);
        put64(&mut b, 24, e.fetch_addr);
        Self::from_bytes(b)
    }

    /// The union holding a page request (the unused bytes are zero).
    pub fn from_prm(p: FaultringV1PageRequest) -> Self {
        let mut b = [0u8; 56];
        put32(&mut b, 0, p.flags);
        put32(&mut b, 4, p.pasid);
        put32(&mut b, 8, p.grpid);
        put32(&mut b, 12, p.perm);
        put64(&mut b, 16, p.addr);
        put64(&mut b, 24, p.private_data[0]);
        put64(&mut b, 32, p.private_data[1]);
        Self::from_bytes(b)
    }

    /// The 56 raw bytes.
    pub fn bytes(&self) -> [u8; 56] {
        crate::sys::v1_union_bytes(self)
    }
}

/// `offsetof(struct faultring_v1_fault, event)` (C's anonymous-union member).
pub const V1_FAULT_EVENT_OFFSET: usize =
    core::mem::offset_of!(FaultringV1Fault, u) + core::mem::offset_of!(FaultringV1FaultUnion, event);
/// `offsetof(struct faultring_v1_fault, prm)` (C's anonymous-union member).
pub const V1_FAULT_PRM_OFFSET: usize =
    core::mem::offset_of!(FaultringV1Fault, u) + core::mem::offset_of!(FaultringV1FaultUnion, prm);
/// `offsetof(struct faultring_v1_fault, padding2)` (C's anonymous-union member).
pub const V1_FAULT_PADDING2_OFFSET: usize =
    core::mem::offset_of!(FaultringV1Fault, u) + core::mem::offset_of!(FaultringV1FaultUnion, padding2);

/// `struct faultring_v1_fault`: ABI 1 record, the kernel's `struct iommu_fault`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FaultringV1Fault {
    /// `FAULT_DMA_UNRECOV` or `FAULT_PAGE_REQ` (C name `type`).
    pub type_: u32,
    /// Zero.
    pub padding: u32,
    /// `event` when `type_` is DMA_UNRECOV, `prm` when PAGE_REQ.
    pub u: FaultringV1FaultUnion,
}

impl FaultringV1Fault {
    /// The union read as an unrecoverable fault (meaningful when `type_ == FAULT_DMA_UNRECOV`).
    pub fn event(&self) -> FaultringV1Unrecoverable {
        let b = self.u.bytes();
        FaultringV1Unrecoverable {
            reason: le32(&b, 0),
            flags: le32(&b, 4),
            pasid: le32(&b, 8),
            perm: le32(&b, 12),
            addr: le64(&b, 16),
            fetch_addr: le64(&b, 24),
        }
    }

    /// The union read as a page request (meaningful when `type_ == FAULT_PAGE_REQ`).
    pub fn prm(&self) -> FaultringV1PageRequest {
        let b = self.u.bytes();
        FaultringV1PageRequest {
            flags: le32(&b, 0),
            pasid: le32(&b, 4),
            grpid: le32(&b, 8),
            perm: le32(&b, 12),
            addr: le64(&b, 16),
            private_data: [le64(&b, 24), le64(&b, 32)],
        }
    }

    /// Builds a record from its 16 little-endian words (as read from the ring).
    pub fn from_words(w: [u32; 16]) -> Self {
        let mut b = [0u8; 56];
        for (i, word) in w[2..].iter().enumerate() {
            put32(&mut b, i * 4, *word);
        }
        FaultringV1Fault { type_: w[0], padding: w[1], u: FaultringV1FaultUnion::from_bytes(b) }
    }
}

impl core::fmt::Debug for FaultringV1Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("FaultringV1Fault");
        d.field("type_", &self.type_).field("padding", &self.padding);
        match self.type_ {
            FAULT_DMA_UNRECOV => d.field("event", &self.event()),
            FAULT_PAGE_REQ => d.field("prm", &self.prm()),
            _ => d.field("raw", &self.u.bytes()),
        };
        d.finish()
    }
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// `struct faultring_v1_response`: kernel `struct iommu_page_response` (24
/// bytes at the start of a 64-byte slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringV1Response {
    /// 24 ..= 64; bytes `[24, argsz)` of the slot must be zero.
    pub argsz: u32,
    /// [`RESP_VERSION_1`].
    pub version: u32,
    /// [`RESP_PASID_VALID`] or 0.
    pub flags: u32,
    /// The request's PASID when `PASID_VALID`; else 0.
    pub pasid: u32,
    /// The request's PRGI (matched with `pasid` within the device).
    pub grpid: u32,
    /// `RESP_*`.
    pub code: u32,
}

/// `struct faultring_v2_fault`: ABI 2 record (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringV2Fault {
    /// C name `type`.
    pub type_: u32,
    /// +1 for every record the producer meant to write (wraps at 2^32); a gap means loss.
    pub sequence: u32,
    /// Service-assigned device id (a queue may carry many).
    pub device_id: u32,
    /// `V2_*`.
    pub flags: u32,
    /// Valid with `V2_PASID_VALID`.
    pub pasid: u32,
    /// PAGE_REQ: PRGI; otherwise 0.
    pub grpid: u32,
    /// `PERM_*`.
    pub perm: u32,
    /// DMA_UNRECOV: `REASON_*`; otherwise 0.
    pub reason: u32,
    /// Page address (PAGE_REQ) or faulting address (DMA_UNRECOV with ADDR_VALID).
    pub addr: u64,
    /// DMA_UNRECOV with FETCH_ADDR_VALID; otherwise 0.
    pub fetch_addr: u64,
    /// PAGE_REQ: the group's cookie, the same in every record of the group; otherwise 0.
    pub cookie: u64,
    /// CLOCK_MONOTONIC time the source reported the fault.
    pub timestamp_ns: u64,
}

/// `struct faultring_v2_lost`: ABI 2 LOST record (`type == FAULT_LOST`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringV2Lost {
    /// C name `type`.
    pub type_: u32,
    /// Its own sequence number: `first_lost_sequence + lost_records` (mod 2^32).
    pub sequence: u32,
    /// Zero.
    pub reserved0: u32,
    /// Zero.
    pub flags: u32,
    /// Records dropped since the previous LOST record.
    pub lost_records: u64,
    /// Sequence number of the first dropped record.
    pub first_lost_sequence: u32,
    /// Zero.
    pub reserved1: u32,
    /// All records lost on this queue so far.
    pub total_lost: u64,
    /// Zero.
    pub reserved2: [u64; 2],
    /// CLOCK_MONOTONIC time the LOST record was written.
    pub timestamp_ns: u64,
}

/// `struct faultring_v2_response`: ABI 2 response (32 bytes at the start of a
/// 64-byte slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringV2Response {
    /// 32 ..= 64; bytes `[32, argsz)` of the slot must be zero.
    pub argsz: u32,
    /// [`RESP_VERSION_2`].
    pub version: u32,
    /// [`RESP_PASID_VALID`] | [`RESP_GRPID_VALID`] (optional extra checks).
    pub flags: u32,
    /// `RESP_*`.
    pub code: u32,
    /// The cookie of the group being answered: it alone names the group.
    pub cookie: u64,
    /// Checked against the group if `PASID_VALID`; else 0.
    pub pasid: u32,
    /// Checked against the group if `GRPID_VALID`; else 0.
    pub grpid: u32,
}

/// Byte offsets of the producer header fields the library accesses.
pub mod producer_off {
    use super::FaultringProducerHeader as H;
    use core::mem::offset_of;
    /// `magic`
    pub const MAGIC: usize = offset_of!(H, magic);
    /// `layout_version`
    pub const LAYOUT_VERSION: usize = offset_of!(H, layout_version);
    /// `header_size`
    pub const HEADER_SIZE: usize = offset_of!(H, header_size);
    /// `max_abi`
    pub const MAX_ABI: usize = offset_of!(H, max_abi);
    /// `abi`
    pub const ABI: usize = offset_of!(H, abi);
    /// `entry_size`
    pub const ENTRY_SIZE: usize = offset_of!(H, entry_size);
    /// `entry_count`
    pub const ENTRY_COUNT: usize = offset_of!(H, entry_count);
    /// `ring_offset`
    pub const RING_OFFSET: usize = offset_of!(H, ring_offset);
    /// `response_slot_size`
    pub const RESPONSE_SLOT_SIZE: usize = offset_of!(H, response_slot_size);
    /// `response_count`
    pub const RESPONSE_COUNT: usize = offset_of!(H, response_count);
    /// `response_ring_offset`
    pub const RESPONSE_RING_OFFSET: usize = offset_of!(H, response_ring_offset);
    /// `state`
    pub const STATE: usize = offset_of!(H, state);
    /// `producer_pid`
    pub const PRODUCER_PID: usize = offset_of!(H, producer_pid);
    /// `features_offered`
    pub const FEATURES_OFFERED: usize = offset_of!(H, features_offered);
    /// `features_in_force`
    pub const FEATURES_IN_FORCE: usize = offset_of!(H, features_in_force);
    /// `producer_region_size`
    pub const PRODUCER_REGION_SIZE: usize = offset_of!(H, producer_region_size);
    /// `consumer_region_size`
    pub const CONSUMER_REGION_SIZE: usize = offset_of!(H, consumer_region_size);
    /// `counters`
    pub const COUNTERS: usize = offset_of!(H, counters);
    /// `fault_prod.value`
    pub const FAULT_PROD: usize = offset_of!(H, fault_prod);
    /// `resp_cons.value`
    pub const RESP_CONS: usize = offset_of!(H, resp_cons);
    /// `producer_sleeping.value`
    pub const PRODUCER_SLEEPING: usize = offset_of!(H, producer_sleeping);
    /// `sizeof(struct faultring_producer_header)`
    pub const SIZE: usize = core::mem::size_of::<H>();
}

/// Byte offsets of the consumer header fields.
pub mod consumer_off {
    use super::FaultringConsumerHeader as H;
    use core::mem::offset_of;
    /// `requested_abi`
    pub const REQUESTED_ABI: usize = offset_of!(H, requested_abi);
    /// `requested_features`
    pub const REQUESTED_FEATURES: usize = offset_of!(H, requested_features);
    /// `fault_cons.value`
    pub const FAULT_CONS: usize = offset_of!(H, fault_cons);
    /// `resp_prod.value`
    pub const RESP_PROD: usize = offset_of!(H, resp_prod);
    /// `consumer_sleeping.value`
    pub const CONSUMER_SLEEPING: usize = offset_of!(H, consumer_sleeping);
    /// `sizeof(struct faultring_consumer_header)`
    pub const SIZE: usize = core::mem::size_of::<H>();
}

// ---------------------------------------------------------------------------
// Layout pins (the same numbers as the C header's FAULTRING_PIN lines, and more).
// ---------------------------------------------------------------------------
macro_rules! pin {
    ($t:ty, $f:ident, $off:expr) => {
        const _: () = assert!(core::mem::offset_of!($t, $f) == $off);
    };
}
macro_rules! pin_size {
    ($t:ty, $size:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
    };
}

pin_size!(FaultringCounters, 256);
pin!(FaultringCounters, records_published, 0);
pin!(FaultringCounters, records_lost, 8);
pin!(FaultringCounters, groups_overflowed, 16);
pin!(FaultringCounters, doorbells_rung, 24);
pin!(FaultringCounters, responses_valid, 32);
pin!(FaultringCounters, publish_refused, 40);
pin!(FaultringCounters, bad_consumer_index, 48);
pin!(FaultringCounters, bad_response_index, 56);
pin!(FaultringCounters, renegotiations, 64);
pin!(FaultringCounters, bad_abi_requests, 72);
pin!(FaultringCounters, bad_feature_requests, 80);
pin!(FaultringCounters, resp_bad_argsz, 88);
pin!(FaultringCounters, resp_trailing_nonzero, 96);
pin!(FaultringCounters, resp_bad_version, 104);
pin!(FaultringCounters, resp_unknown_flags, 112);
pin!(FaultringCounters, resp_reserved_nonzero, 120);
pin!(FaultringCounters, resp_bad_code, 128);
pin!(FaultringCounters, resp_out_of_range, 136);
pin!(FaultringCounters, match_completed, 144);
pin!(FaultringCounters, match_unknown, 152);
pin!(FaultringCounters, match_duplicate, 160);
pin!(FaultringCounters, match_late, 168);
pin!(FaultringCounters, match_stale, 176);
pin!(FaultringCounters, match_foreign_device, 184);
pin!(FaultringCounters, match_mismatch, 192);
pin!(FaultringCounters, reserved, 200);

pin_size!(FaultringIndexLine, 64);
pin!(FaultringIndexLine, value, 0);
pin!(FaultringIndexLine, pad, 4);

pin_size!(FaultringProducerHeader, 576);
pin!(FaultringProducerHeader, magic, 0);
pin!(FaultringProducerHeader, layout_version, 8);
pin!(FaultringProducerHeader, header_size, 12);
pin!(FaultringProducerHeader, max_abi, 16);
pin!(FaultringProducerHeader, abi, 20);
pin!(FaultringProducerHeader, entry_size, 24);
pin!(FaultringProducerHeader, entry_count, 28);
pin!(FaultringProducerHeader, ring_offset, 32);
pin!(FaultringProducerHeader, response_slot_size, 36);
pin!(FaultringProducerHeader, response_count, 40);
pin!(FaultringProducerHeader, response_ring_offset, 44);
pin!(FaultringProducerHeader, state, 48);
pin!(FaultringProducerHeader, producer_pid, 52);
pin!(FaultringProducerHeader, features_offered, 56);
pin!(FaultringProducerHeader, features_in_force, 64);
pin!(FaultringProducerHeader, producer_region_size, 72);
pin!(FaultringProducerHeader, consumer_region_size, 80);
pin!(FaultringProducerHeader, reserved0, 88);
pin!(FaultringProducerHeader, counters, 128);
pin!(FaultringProducerHeader, fault_prod, 384);
pin!(FaultringProducerHeader, resp_cons, 448);
pin!(FaultringProducerHeader, producer_sleeping, 512);

pin_size!(FaultringConsumerHeader, 256);
pin!(FaultringConsumerHeader, requested_abi, 0);
pin!(FaultringConsumerHeader, reserved0, 4);
pin!(FaultringConsumerHeader, requested_features, 8);
pin!(FaultringConsumerHeader, reserved1, 16);
pin!(FaultringConsumerHeader, fault_cons, 64);
pin!(FaultringConsumerHeader, resp_prod, 128);
pin!(FaultringConsumerHeader, consumer_sleeping, 192);

pin_size!(FaultringV1Unrecoverable, 32);
pin!(FaultringV1Unrecoverable, reason, 0);
pin!(FaultringV1Unrecoverable, flags, 4);
pin!(FaultringV1Unrecoverable, pasid, 8);
pin!(FaultringV1Unrecoverable, perm, 12);
pin!(FaultringV1Unrecoverable, addr, 16);
pin!(FaultringV1Unrecoverable, fetch_addr, 24);

pin_size!(FaultringV1PageRequest, 40);
pin!(FaultringV1PageRequest, flags, 0);
pin!(FaultringV1PageRequest, pasid, 4);
pin!(FaultringV1PageRequest, grpid, 8);
pin!(FaultringV1PageRequest, perm, 12);
pin!(FaultringV1PageRequest, addr, 16);
pin!(FaultringV1PageRequest, private_data, 24);

pin_size!(FaultringV1FaultUnion, 56);
pin_size!(FaultringV1Fault, 64);
pin!(FaultringV1Fault, type_, 0);
pin!(FaultringV1Fault, padding, 4);
pin!(FaultringV1Fault, u, 8);

pin_size!(FaultringV1Response, 24);
pin!(FaultringV1Response, argsz, 0);
pin!(FaultringV1Response, version, 4);
pin!(FaultringV1Response, flags, 8);
pin!(FaultringV1Response, pasid, 12);
pin!(FaultringV1Response, grpid, 16);
pin!(FaultringV1Response, code, 20);

pin_size!(FaultringV2Fault, 64);
pin!(FaultringV2Fault, type_, 0);
pin!(FaultringV2Fault, sequence, 4);
pin!(FaultringV2Fault, device_id, 8);
pin!(FaultringV2Fault, flags, 12);
pin!(FaultringV2Fault, pasid, 16);
pin!(FaultringV2Fault, grpid, 20);
pin!(FaultringV2Fault, perm, 24);
pin!(FaultringV2Fault, reason, 28);
pin!(FaultringV2Fault, addr, 32);
pin!(FaultringV2Fault, fetch_addr, 40);
pin!(FaultringV2Fault, cookie, 48);
pin!(FaultringV2Fault, timestamp_ns, 56);

pin_size!(FaultringV2Lost, 64);
pin!(FaultringV2Lost, type_, 0);
pin!(FaultringV2Lost, sequence, 4);
pin!(FaultringV2Lost, reserved0, 8);
pin!(FaultringV2Lost, flags, 12);
pin!(FaultringV2Lost, lost_records, 16);
pin!(FaultringV2Lost, first_lost_sequence, 24);
pin!(FaultringV2Lost, reserved1, 28);
pin!(FaultringV2Lost, total_lost, 32);
pin!(FaultringV2Lost, reserved2, 40);
pin!(FaultringV2Lost, timestamp_ns, 56);

pin_size!(FaultringV2Response, 32);
pin!(FaultringV2Response, argsz, 0);
pin!(FaultringV2Response, version, 4);
pin!(FaultringV2Response, flags, 8);
pin!(FaultringV2Response, code, 12);
pin!(FaultringV2Response, cookie, 16);
pin!(FaultringV2Response, pasid, 24);
pin!(FaultringV2Response, grpid, 28);

// Alignment: the shared words are accessed as naturally aligned atomics.
const _: () = assert!(core::mem::align_of::<FaultringProducerHeader>() == 8);
const _: () = assert!(core::mem::align_of::<FaultringV2Fault>() == 8);
