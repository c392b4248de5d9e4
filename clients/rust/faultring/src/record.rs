//! Zero-copy typed views of fault records in the ring.
//!
//! A view borrows a [`crate::Batch`]; it cannot outlive the batch, so it can
//! never be read after `fault_cons` moved past its slot. Each accessor is one
//! relaxed atomic load of that field from the shared mapping (see the `sys`
//! module for why). The producer does not write a slot between `fault_cons`
//! and the `fault_prod` you acquired, so the fields are stable; a *misbehaving*
//! producer that rewrites a slot anyway can give you fields from two versions
//! of the record, never undefined behaviour. Copy a record with
//! [`Record::to_owned`] to keep it after the batch is released.

use crate::abi::{self, FaultringV1Fault, FaultringV2Fault, FaultringV2Lost};
use crate::error::{Error, Result};
use crate::sys::RoRegion;
use crate::Abi;

/// One 64-byte slot of the fault ring, bounds-checked at construction.
#[derive(Clone, Copy)]
pub(crate) struct Slot<'b> {
    region: &'b RoRegion,
    base: usize,
}

impl<'b> Slot<'b> {
    /// The slot at byte `base` of `region`, if all 64 bytes are inside it and
    /// `base` is 8-aligned.
    pub(crate) fn new(region: &'b RoRegion, base: usize) -> Option<Slot<'b>> {
        let end = base.checked_add(abi::ENTRY_SIZE as usize)?;
        (end <= region.len() && base % 8 == 0).then_some(Slot { region, base })
    }

    /// The `u32` at byte `field` (< 64) of the slot. Cannot fail for the
    /// constant, aligned field offsets this crate uses; returns 0 otherwise.
    #[inline]
    pub(crate) fn u32(&self, field: usize) -> u32 {
        self.region.load_u32(self.base + field).unwrap_or(0)
    }

    /// The `u64` at byte `field` (< 64) of the slot.
    #[inline]
    pub(crate) fn u64(&self, field: usize) -> u64 {
        self.region.load_u64(self.base + field).unwrap_or(0)
    }

    fn words(&self) -> [u32; 16] {
        let mut w = [0u32; 16];
        for (i, x) in w.iter_mut().enumerate() {
            *x = self.u32(i * 4);
        }
        w
    }
}

/// A record of the ring, typed by the queue's ABI and the record's `type`.
#[derive(Clone, Copy)]
pub enum Record<'b> {
    /// ABI 1: the kernel's `struct iommu_fault`.
    V1(V1Record<'b>),
    /// ABI 2: a data record (`DMA_UNRECOV`, `PAGE_REQ`, or a type this crate
    /// does not know, which [`V2Record::record_type`] shows).
    V2(V2Record<'b>),
    /// ABI 2: a LOST record (`type == 3`).
    Lost(LostRecord<'b>),
}

impl<'b> Record<'b> {
    pub(crate) fn new(abi: Abi, slot: Slot<'b>) -> Record<'b> {
        match abi {
            Abi::V1 => Record::V1(V1Record { slot }),
            Abi::V2 => {
                if slot.u32(0) == abi::FAULT_LOST {
                    Record::Lost(LostRecord { slot })
                } else {
                    Record::V2(V2Record { slot })
                }
            }
        }
    }

    /// The record's `type` field.
    pub fn record_type(&self) -> u32 {
        match self {
            Record::V1(r) => r.record_type(),
            Record::V2(r) => r.record_type(),
            Record::Lost(_) => abi::FAULT_LOST,
        }
    }

    /// True for a page request that closes its group (LAST_PAGE): the record
    /// to answer.
    pub fn is_group_end(&self) -> bool {
        match self {
            Record::V1(r) => r.page_request().is_some_and(|p| p.flags() & abi::V1_PRQ_LAST_PAGE != 0),
            Record::V2(r) => r.is_page_request() && r.flags() & abi::V2_LAST_PAGE != 0,
            Record::Lost(_) => false,
        }
    }

    /// What a response to this record's group needs, if the record closes a
    /// page-request group (`Ok(None)` for any other record).
    ///
    /// # Errors
    /// [`Error::MalformedRecord`] if the record closes a group but a field the
    /// response must echo is out of its range (ABI 1: `grpid` above 9 bits, or
    /// a `NEEDS_PASID` group's `pasid` above 20 bits), so that no well-formed
    /// response exists. Such a group is answered INVALID by the service at its
    /// timeout.
    pub fn group_end(&self) -> Result<Option<GroupEnd>> {
        match self {
            Record::V1(r) => {
                let Some(p) = r.page_request() else { return Ok(None) };
                let flags = p.flags();
                if flags & abi::V1_PRQ_LAST_PAGE == 0 {
                    return Ok(None);
                }
                let grpid = p.grpid();
                if grpid > abi::PRGI_MAX {
                    return Err(Error::MalformedRecord { field: "prm.grpid", value: grpid.into() });
                }
                let pasid = if flags & abi::V1_PRQ_NEEDS_PASID != 0 {
                    let pasid = p.pasid();
                    if pasid > abi::PASID_MAX {
                        return Err(Error::MalformedRecord { field: "prm.pasid", value: pasid.into() });
                    }
                    Some(pasid)
                } else {
                    None
                };
                Ok(Some(GroupEnd { key: GroupKey::V1 { pasid, grpid } }))
            }
            Record::V2(r) => {
                if !(r.is_page_request() && r.flags() & abi::V2_LAST_PAGE != 0) {
                    return Ok(None);
                }
                // The cookie alone names the group; PASID and PRGI are only
                // optional extra checks, kept when they are in range.
                let pasid = (r.flags() & abi::V2_PASID_VALID != 0 && r.pasid() <= abi::PASID_MAX).then(|| r.pasid());
                let grpid = (r.grpid() <= abi::PRGI_MAX).then(|| r.grpid());
                Ok(Some(GroupEnd { key: GroupKey::V2 { cookie: r.cookie(), device_id: r.device_id(), pasid, grpid } }))
            }
            Record::Lost(_) => Ok(None),
        }
    }

    /// A copy of the record, to keep after the batch is released.
    pub fn to_owned(&self) -> OwnedRecord {
        match self {
            Record::V1(r) => OwnedRecord::V1(r.to_owned()),
            Record::V2(r) => OwnedRecord::V2(r.to_owned()),
            Record::Lost(r) => OwnedRecord::Lost(r.to_owned()),
        }
    }
}

impl core::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.to_owned().fmt(f)
    }
}

/// A record copied out of the ring.
#[derive(Clone, Copy, Debug)]
pub enum OwnedRecord {
    /// ABI 1 record.
    V1(FaultringV1Fault),
    /// ABI 2 data record.
    V2(FaultringV2Fault),
    /// ABI 2 LOST record.
    Lost(FaultringV2Lost),
}

/// What a response to one page-request group needs, taken from its LAST_PAGE
/// record by [`Record::group_end`]. It is a copy: you may answer after the
/// batch is released.
///
/// Its fields are private and every constructor validates them, so a
/// [`crate::Response`] built from it is always well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupEnd {
    key: GroupKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupKey {
    /// ABI 1: matched by (PASID, PRGI) within the queue's device. `pasid` is
    /// `Some` iff the request had NEEDS_PASID.
    V1 { pasid: Option<u32>, grpid: u32 },
    /// ABI 2: the cookie alone names the group; `pasid`/`grpid` are the
    /// group's own values when in range, for the optional extra checks.
    V2 { cookie: u64, device_id: u32, pasid: Option<u32>, grpid: Option<u32> },
}

impl GroupEnd {
    /// An ABI 1 group key: `pasid` is the PASID to echo (`Some` iff the
    /// request had `NEEDS_PASID`), `grpid` the PRG index.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `pasid` exceeds 20 bits or `grpid` 9 bits.
    pub fn v1(pasid: Option<u32>, grpid: u32) -> Result<GroupEnd> {
        if grpid > abi::PRGI_MAX {
            return Err(Error::invalid("grpid", format!("{grpid} exceeds 9 bits")));
        }
        if let Some(p) = pasid {
            if p > abi::PASID_MAX {
                return Err(Error::invalid("pasid", format!("{p} exceeds 20 bits")));
            }
        }
        Ok(GroupEnd { key: GroupKey::V1 { pasid, grpid } })
    }

    /// An ABI 2 group key from a cookie you kept (no optional checks).
    pub fn v2(cookie: u64, device_id: u32) -> GroupEnd {
        GroupEnd { key: GroupKey::V2 { cookie, device_id, pasid: None, grpid: None } }
    }

    pub(crate) fn key(&self) -> GroupKey {
        self.key
    }

    /// The ABI of the queue the group came from.
    pub fn abi(&self) -> Abi {
        match self.key {
            GroupKey::V1 { .. } => Abi::V1,
            GroupKey::V2 { .. } => Abi::V2,
        }
    }

    /// ABI 2: the group's cookie.
    pub fn cookie(&self) -> Option<u64> {
        match self.key {
            GroupKey::V2 { cookie, .. } => Some(cookie),
            GroupKey::V1 { .. } => None,
        }
    }

    /// ABI 2: the device that raised the group.
    pub fn device_id(&self) -> Option<u32> {
        match self.key {
            GroupKey::V2 { device_id, .. } => Some(device_id),
            GroupKey::V1 { .. } => None,
        }
    }

    /// The PASID: ABI 1, the one the response echoes (NEEDS_PASID groups);
    /// ABI 2, the group's PASID if its record had PASID_VALID.
    pub fn pasid(&self) -> Option<u32> {
        match self.key {
            GroupKey::V1 { pasid, .. } | GroupKey::V2 { pasid, .. } => pasid,
        }
    }

    /// The PRG index (ABI 2: `None` if the record's was out of range).
    pub fn grpid(&self) -> Option<u32> {
        match self.key {
            GroupKey::V1 { grpid, .. } => Some(grpid),
            GroupKey::V2 { grpid, .. } => grpid,
        }
    }
}

/// ABI 1 record view (`struct faultring_v1_fault`).
#[derive(Clone, Copy)]
pub struct V1Record<'b> {
    slot: Slot<'b>,
}

impl<'b> V1Record<'b> {
    /// `type`: [`abi::FAULT_DMA_UNRECOV`] or [`abi::FAULT_PAGE_REQ`].
    pub fn record_type(&self) -> u32 {
        self.slot.u32(0)
    }

    /// `padding` (zero).
    pub fn padding(&self) -> u32 {
        self.slot.u32(4)
    }

    /// The `prm` member, if `type` is PAGE_REQ.
    pub fn page_request(&self) -> Option<V1PageRequest<'b>> {
        (self.record_type() == abi::FAULT_PAGE_REQ).then_some(V1PageRequest { slot: self.slot })
    }

    /// The `event` member, if `type` is DMA_UNRECOV.
    pub fn unrecoverable(&self) -> Option<V1Unrecoverable<'b>> {
        (self.record_type() == abi::FAULT_DMA_UNRECOV).then_some(V1Unrecoverable { slot: self.slot })
    }

    /// A copy of all 64 bytes.
    pub fn to_owned(&self) -> FaultringV1Fault {
        FaultringV1Fault::from_words(self.slot.words())
    }
}

const V1U: usize = abi::V1_FAULT_PRM_OFFSET;

/// ABI 1 page request view (the `prm` member of the union, at byte 8).
#[derive(Clone, Copy)]
pub struct V1PageRequest<'b> {
    slot: Slot<'b>,
}

impl V1PageRequest<'_> {
    /// `flags`: `V1_PRQ_*`.
    pub fn flags(&self) -> u32 {
        self.slot.u32(V1U)
    }
    /// `pasid`, valid with `V1_PRQ_PASID_VALID`.
    pub fn pasid(&self) -> u32 {
        self.slot.u32(V1U + 4)
    }
    /// `grpid`: the PRG index (9 bits).
    pub fn grpid(&self) -> u32 {
        self.slot.u32(V1U + 8)
    }
    /// `perm`: `PERM_*`.
    pub fn perm(&self) -> u32 {
        self.slot.u32(V1U + 12)
    }
    /// `addr`: the page address.
    pub fn addr(&self) -> u64 {
        self.slot.u64(V1U + 16)
    }
    /// `private_data`, present with `V1_PRQ_PRIV_DATA`.
    pub fn private_data(&self) -> [u64; 2] {
        [self.slot.u64(V1U + 24), self.slot.u64(V1U + 32)]
    }
}

const V1E: usize = abi::V1_FAULT_EVENT_OFFSET;

/// ABI 1 unrecoverable fault view (the `event` member of the union, at byte 8).
#[derive(Clone, Copy)]
pub struct V1Unrecoverable<'b> {
    slot: Slot<'b>,
}

impl V1Unrecoverable<'_> {
    /// `reason`: `REASON_*` (kernel `enum iommu_fault_reason`).
    pub fn reason(&self) -> u32 {
        self.slot.u32(V1E)
    }
    /// `flags`: `V1_UNRECOV_*`.
    pub fn flags(&self) -> u32 {
        self.slot.u32(V1E + 4)
    }
    /// `pasid`, valid with `V1_UNRECOV_PASID_VALID`.
    pub fn pasid(&self) -> u32 {
        self.slot.u32(V1E + 8)
    }
    /// `perm`: `PERM_*`.
    pub fn perm(&self) -> u32 {
        self.slot.u32(V1E + 12)
    }
    /// `addr`, valid with `V1_UNRECOV_ADDR_VALID`.
    pub fn addr(&self) -> u64 {
        self.slot.u64(V1E + 16)
    }
    /// `fetch_addr`, valid with `V1_UNRECOV_FETCH_ADDR_VALID`.
    pub fn fetch_addr(&self) -> u64 {
        self.slot.u64(V1E + 24)
    }
}

/// ABI 2 data record view (`struct faultring_v2_fault`).
#[derive(Clone, Copy)]
pub struct V2Record<'b> {
    slot: Slot<'b>,
}

impl V2Record<'_> {
    /// `type`: [`abi::FAULT_DMA_UNRECOV`], [`abi::FAULT_PAGE_REQ`] (or unknown).
    pub fn record_type(&self) -> u32 {
        self.slot.u32(0)
    }
    /// `sequence`: +1 per record the producer meant to write (wraps).
    pub fn sequence(&self) -> u32 {
        self.slot.u32(4)
    }
    /// `device_id`: the service-assigned device.
    pub fn device_id(&self) -> u32 {
        self.slot.u32(8)
    }
    /// `flags`: `V2_*`.
    pub fn flags(&self) -> u32 {
        self.slot.u32(12)
    }
    /// `pasid`, valid with `V2_PASID_VALID`.
    pub fn pasid(&self) -> u32 {
        self.slot.u32(16)
    }
    /// `grpid`: PAGE_REQ PRG index; otherwise 0.
    pub fn grpid(&self) -> u32 {
        self.slot.u32(20)
    }
    /// `perm`: `PERM_*`.
    pub fn perm(&self) -> u32 {
        self.slot.u32(24)
    }
    /// `reason`: DMA_UNRECOV reason; otherwise 0.
    pub fn reason(&self) -> u32 {
        self.slot.u32(28)
    }
    /// `addr`: page address (PAGE_REQ) or faulting address (DMA_UNRECOV with ADDR_VALID).
    pub fn addr(&self) -> u64 {
        self.slot.u64(32)
    }
    /// `fetch_addr`: DMA_UNRECOV with FETCH_ADDR_VALID; otherwise 0.
    pub fn fetch_addr(&self) -> u64 {
        self.slot.u64(40)
    }
    /// `cookie`: PAGE_REQ group cookie (same in every record of the group).
    pub fn cookie(&self) -> u64 {
        self.slot.u64(48)
    }
    /// `timestamp_ns`: CLOCK_MONOTONIC time the source reported the fault.
    pub fn timestamp_ns(&self) -> u64 {
        self.slot.u64(56)
    }
    /// True if `type` is PAGE_REQ.
    pub fn is_page_request(&self) -> bool {
        self.record_type() == abi::FAULT_PAGE_REQ
    }
    /// True if `type` is DMA_UNRECOV.
    pub fn is_unrecoverable(&self) -> bool {
        self.record_type() == abi::FAULT_DMA_UNRECOV
    }
    /// A copy of the record.
    pub fn to_owned(&self) -> FaultringV2Fault {
        FaultringV2Fault {
            type_: self.record_type(),
            sequence: self.sequence(),
            device_id: self.device_id(),
            flags: self.flags(),
            pasid: self.pasid(),
            grpid: self.grpid(),
            perm: self.perm(),
            reason: self.reason(),
            addr: self.addr(),
            fetch_addr: self.fetch_addr(),
            cookie: self.cookie(),
            timestamp_ns: self.timestamp_ns(),
        }
    }
}

/// ABI 2 LOST record view (`struct faultring_v2_lost`).
#[derive(Clone, Copy)]
pub struct LostRecord<'b> {
    slot: Slot<'b>,
}

impl LostRecord<'_> {
    /// `sequence`: its own number, `first_lost_sequence + lost_records` (mod 2^32).
    pub fn sequence(&self) -> u32 {
        self.slot.u32(4)
    }
    /// `flags` (zero).
    pub fn flags(&self) -> u32 {
        self.slot.u32(12)
    }
    /// `lost_records`: records dropped since the previous LOST record.
    pub fn lost_records(&self) -> u64 {
        self.slot.u64(16)
    }
    /// `first_lost_sequence`: sequence number of the first dropped record.
    pub fn first_lost_sequence(&self) -> u32 {
        self.slot.u32(24)
    }
    /// `total_lost`: every record lost on this queue so far.
    pub fn total_lost(&self) -> u64 {
        self.slot.u64(32)
    }
    /// `timestamp_ns`: CLOCK_MONOTONIC time the LOST record was written.
    pub fn timestamp_ns(&self) -> u64 {
        self.slot.u64(56)
    }
    /// A copy of the record.
    pub fn to_owned(&self) -> FaultringV2Lost {
        FaultringV2Lost {
            type_: self.slot.u32(0),
            sequence: self.sequence(),
            reserved0: self.slot.u32(8),
            flags: self.flags(),
            lost_records: self.lost_records(),
            first_lost_sequence: self.first_lost_sequence(),
            reserved1: self.slot.u32(28),
            total_lost: self.total_lost(),
            reserved2: [self.slot.u64(40), self.slot.u64(48)],
            timestamp_ns: self.timestamp_ns(),
        }
    }
}
