//! The nested IOMMU's control calls (Docs/NESTED.md §3): a VMM whose guest
//! owns stage 1 shares its RAM, binds the guest's tables, forwards the
//! guest's invalidations and binds its MSI doorbells.
//!
//! Payloads are built here, `argsz` included, so a caller cannot send a
//! malformed one; what only the service can judge (seals, overlaps, the
//! guest's table, a device not held) comes back as [`Error::Service`] with
//! its errno and reason. Rights come from devices: every call but
//! [`Client::add_guest_memory`] needs the connection to hold a device.

use std::os::fd::BorrowedFd;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol as proto;

/// What a bind installs, and so what an unbind removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// VT-d: one PASID's first stage (1 ..= 2^20 − 1).
    VtdPasid(u32),
    /// SMMUv3: the guest's whole context-descriptor table.
    Smmuv3Table,
}

/// One of the guest's IOMMU cache invalidations, as the service takes it
/// (`struct faultring_msg_invalidate`; the table in Docs/NESTED.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// The whole IOTLB (VT-d domain-selective, SMMUv3 TLBI_NH_ALL).
    Global,
    /// One PASID's IOTLB entries (TLBI_NH_ASID, PASID-selective).
    Pasid(u32),
    /// `size` bytes (a power of two, 4 KiB ..= 2^57) at `address`, aligned
    /// to it, in `pasid`; `leaf`: only leaf entries changed.
    Range {
        /// The PASID.
        pasid: u32,
        /// The first address.
        address: u64,
        /// Bytes.
        size: u64,
        /// Only leaf entries changed (VT-d IH, SMMUv3 Leaf).
        leaf: bool,
    },
    /// One device's ATC, optionally for one PASID and one range.
    DeviceTlb {
        /// A device this connection holds.
        device: u32,
        /// Its PASID, or all.
        pasid: Option<u32>,
        /// `(address, size)`, or everything.
        range: Option<(u64, u64)>,
    },
    /// A device's cached PASID entries or CDs (CFGI_CD, CFGI_CD_ALL).
    Context {
        /// A device this connection holds.
        device: u32,
        /// Its PASID, or all.
        pasid: Option<u32>,
    },
}

impl Invalidation {
    /// The wire payload (40 bytes, little-endian).
    pub fn encode(&self) -> [u8; 40] {
        let (granularity, mut flags, device, pasid, address, size) = match *self {
            Invalidation::Global => (proto::INV_GLOBAL, 0, 0, None, 0, 0),
            Invalidation::Pasid(p) => (proto::INV_PASID, 0, 0, Some(p), 0, 0),
            Invalidation::Range { pasid, address, size, leaf } => (
                proto::INV_RANGE,
                proto::INV_FLAG_RANGE | if leaf { proto::INV_FLAG_LEAF } else { 0 },
                0,
                Some(pasid),
                address,
                size,
            ),
            Invalidation::DeviceTlb { device, pasid, range } => {
                let (a, s) = range.unwrap_or((0, 0));
                (proto::INV_DEVICE_TLB, if range.is_some() { proto::INV_FLAG_RANGE } else { 0 }, device, pasid, a, s)
            }
            Invalidation::Context { device, pasid } => (proto::INV_CONTEXT, 0, device, pasid, 0, 0),
        };
        if pasid.is_some() {
            flags |= proto::INV_FLAG_PASID;
        }
        let mut out = [0u8; 40];
        for (i, w) in [40u32, flags, granularity, device, pasid.unwrap_or(0), 0].iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out[24..32].copy_from_slice(&address.to_le_bytes());
        out[32..40].copy_from_slice(&size.to_le_bytes());
        out
    }
}

impl Client {
    /// Shares guest RAM: guest-physical `gpa .. gpa + size` is `memfd` from
    /// `offset` on (sent by `SCM_RIGHTS`; the caller keeps its descriptor).
    /// `memfd` must be a tmpfs memfd sealed `F_SEAL_SHRINK`; the service
    /// reads its own duplicate with `pread`, never through a mapping.
    ///
    /// # Errors
    /// [`Error::Service`] with `EBADF` (not a sealed memfd), `EINVAL`
    /// (alignment, size, beyond the file or 2^52), `EEXIST` (overlap),
    /// `ENOSPC` (more than 16 regions, or one above 1 TiB).
    pub fn add_guest_memory(&mut self, memfd: BorrowedFd<'_>, gpa: u64, size: u64, offset: u64) -> Result<()> {
        let mut p = Vec::with_capacity(32);
        p.extend_from_slice(&32u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        for w in [gpa, size, offset] {
            p.extend_from_slice(&w.to_le_bytes());
        }
        let reply = self.request_passing(proto::CMD_ADD_GUEST_MEMORY, 0, &p, Some(memfd))?;
        self.expect_empty("ADD_GUEST_MEMORY reply", &reply)
    }

    /// Binds PASID `pasid`'s first stage — `entry`, the guest's 512-bit
    /// scalable-mode PASID-table entry as it wrote it — on every device of
    /// `devices`, or on none of them (a failure part-way is rolled back).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (0 or more than 64 devices, a duplicate);
    /// [`Error::Service`] with `EINVAL` (PASID range, reserved bits, no
    /// first stage, FLPTR outside guest RAM), `EPERM` (a device not held),
    /// `EBUSY` (already bound), `ENOSPC` (the PASID quota).
    pub fn bind_vtd_pasid(&mut self, pasid: u32, entry: &[u64; 8], devices: &[u32]) -> Result<()> {
        self.device_set(proto::CMD_BIND, "BIND reply", proto::BIND_VTD_PASID, pasid, entry, devices)
    }

    /// Binds the guest's context-descriptor table — `ste`, words 0 and 1 of
    /// its stream table entry (Config, S1ContextPtr, S1CDMax, S1Fmt) — on
    /// every device of `devices`, or none.
    ///
    /// # Errors
    /// As [`Client::bind_vtd_pasid`]; `EIO` for an STE the kernel refuses
    /// too; `ENOSPC` if 2^S1CDMax is above the PASID quota.
    pub fn bind_smmuv3_ste(&mut self, ste: [u64; 2], devices: &[u32]) -> Result<()> {
        self.device_set(proto::CMD_BIND, "BIND reply", proto::BIND_SMMUV3_STE, 0, &[ste[0], ste[1], 0, 0, 0, 0, 0, 0], devices)
    }

    /// BIND (with its eight `data` words) or UNBIND (`data` empty) of
    /// `format` on `devices`: the two payloads share their head (argsz,
    /// flags, format, pasid, device_count, reserved); BIND's data words sit
    /// between it and the ids.
    fn device_set(
        &mut self,
        command: u16,
        reply: &'static str,
        format: u32,
        pasid: u32,
        data: &[u64],
        devices: &[u32],
    ) -> Result<()> {
        self.check_devices(devices, false)?;
        let argsz = 24 + 8 * data.len() as u32 + 4 * devices.len() as u32;
        let mut p = Vec::with_capacity(argsz as usize);
        for w in [argsz, 0, format, pasid, devices.len() as u32, 0] {
            p.extend_from_slice(&w.to_le_bytes());
        }
        for w in data {
            p.extend_from_slice(&w.to_le_bytes());
        }
        for d in devices {
            p.extend_from_slice(&d.to_le_bytes());
        }
        let answer = self.request(command, 0, &p)?;
        self.expect_empty(reply, &answer)
    }

    /// Undoes `binding` on `devices`. Once well formed it cannot fail:
    /// devices not held, or with nothing bound, are skipped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (0 or more than 64 devices, a duplicate);
    /// [`Error::Service`] with `EINVAL` only for a PASID out of range.
    pub fn unbind(&mut self, binding: Binding, devices: &[u32]) -> Result<()> {
        let (format, pasid) = match binding {
            Binding::VtdPasid(p) => (proto::BIND_VTD_PASID, p),
            Binding::Smmuv3Table => (proto::BIND_SMMUV3_STE, 0),
        };
        self.device_set(proto::CMD_UNBIND, "UNBIND reply", format, pasid, &[], devices)
    }

    /// Forwards one of the guest's invalidations.
    ///
    /// # Errors
    /// [`Error::Service`] with `EINVAL` (a size or alignment out of range,
    /// a device without an ATC), `EPERM` (a device not held), `ENOENT` (a
    /// PASID not bound).
    pub fn invalidate(&mut self, invalidation: Invalidation) -> Result<()> {
        let reply = self.request(proto::CMD_INVALIDATE, 0, &invalidation.encode())?;
        self.expect_empty("INVALIDATE reply", &reply)
    }

    /// Binds the guest's MSI doorbell: input address `iova` is the page at
    /// guest-physical `gpa` (`size` a power of two, 4 KiB ..= 1 MiB, both
    /// aligned to it); DMA writes there bypass stage 1. The doorbell lives in
    /// the VM's IOMMU, which its first bind creates: bind the tables first.
    /// Detaching every device drops the doorbells with the VM's other state.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a size out of range (checked here);
    /// [`Error::Service`] with `EINVAL` (alignment, wrap), `EBUSY` (overlap),
    /// `ENOSPC` (16 bound), `EPERM` (no device held), `ENOENT` (nothing bound yet).
    pub fn bind_msi(&mut self, iova: u64, gpa: u64, size: u64) -> Result<()> {
        self.msi(0, iova, gpa, size)
    }

    /// Removes the doorbell binding at `iova`; cannot fail once well formed
    /// (nothing bound there, or nothing bound at all, is nothing to remove).
    pub fn unbind_msi(&mut self, iova: u64) -> Result<()> {
        self.msi(proto::MSI_FLAG_UNBIND, iova, 0, 0)
    }

    fn msi(&mut self, flags: u32, iova: u64, gpa: u64, size: u64) -> Result<()> {
        if flags == 0 && !(size.is_power_of_two() && (4096..=1 << 20).contains(&size)) {
            return Err(Error::invalid("size", format!("{size} is not a power of two from 4 KiB to 1 MiB")));
        }
        let mut p = Vec::with_capacity(32);
        p.extend_from_slice(&32u32.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for w in [iova, gpa, size] {
            p.extend_from_slice(&w.to_le_bytes());
        }
        let reply = self.request(proto::CMD_BIND_MSI, 0, &p)?;
        self.expect_empty("BIND_MSI reply", &reply)
    }
}
