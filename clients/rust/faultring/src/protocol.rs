//! Control-protocol wire layouts: a `#[repr(C)]` mirror of `faultring_protocol.h`,
//! plus the little-endian encoding of the header.
//!
//! The protocol runs over an `AF_UNIX` `SOCK_SEQPACKET` socket: one message is
//! one packet, at most [`MSG_MAX`] bytes, starting with a 16-byte
//! [`FaultringMsgHeader`]. Every request gets exactly one reply with the same
//! `id`. See `Docs/PROTOCOL.md`.

/// Protocol version sent in HELLO and required in the reply.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest message, header included.
pub const MSG_MAX: usize = 65536;
/// Most descriptors one message carries.
pub const MSG_FDS_MAX: usize = 4;
/// Size of [`FaultringMsgHeader`].
pub const HEADER_SIZE: usize = 16;
/// Most devices one ATTACH or DETACH names.
pub const MAX_DEVICES_PER_MESSAGE: usize = 64;

/// Command: HELLO (JSON both ways; must come first, once).
pub const CMD_HELLO: u16 = 1;
/// Command: ATTACH devices (first success returns the queue's 4 descriptors).
pub const CMD_ATTACH: u16 = 2;
/// Command: DETACH devices (0 = all).
pub const CMD_DETACH: u16 = 3;
/// Command: STATS (JSON, or Prometheus text with [`MSG_TEXT`]).
pub const CMD_STATS: u16 = 4;
/// Command: BYE (reply, then the service closes the connection).
pub const CMD_BYE: u16 = 5;
/// Command: ADD_SOURCE (not used by this crate).
pub const CMD_ADD_SOURCE: u16 = 6;
/// ADD_GUEST_MEMORY: `FaultringMsgGuestMemory` + one memfd (nested IOMMU, Docs/NESTED.md).
pub const CMD_ADD_GUEST_MEMORY: u16 = 7;
/// BIND: `FaultringMsgBind` + ids; all or nothing across the devices.
pub const CMD_BIND: u16 = 8;
/// UNBIND: `FaultringMsgUnbind` + ids; cannot fail once well formed.
pub const CMD_UNBIND: u16 = 9;
/// INVALIDATE: `FaultringMsgInvalidate`.
pub const CMD_INVALIDATE: u16 = 10;
/// BIND_MSI: `FaultringMsgBindMsi`.
pub const CMD_BIND_MSI: u16 = 11;
/// BIND format: a VT-d PASID-table entry for one PASID.
pub const BIND_VTD_PASID: u32 = 1;
/// BIND format: an SMMUv3 STE (the guest's CD table).
pub const BIND_SMMUV3_STE: u32 = 2;
/// INVALIDATE granularity: the whole IOTLB.
pub const INV_GLOBAL: u32 = 0;
/// INVALIDATE granularity: one PASID's IOTLB entries.
pub const INV_PASID: u32 = 1;
/// INVALIDATE granularity: an address range in one PASID.
pub const INV_RANGE: u32 = 2;
/// INVALIDATE granularity: one device's ATC.
pub const INV_DEVICE_TLB: u32 = 3;
/// INVALIDATE granularity: a device's cached PASID entries / CDs.
pub const INV_CONTEXT: u32 = 4;
/// INVALIDATE flag: only leaf entries changed.
pub const INV_FLAG_LEAF: u32 = 1 << 0;
/// INVALIDATE flag: `pasid` is set.
pub const INV_FLAG_PASID: u32 = 1 << 1;
/// INVALIDATE flag: `address` and `size` are set.
pub const INV_FLAG_RANGE: u32 = 1 << 2;
/// BIND_MSI flag: remove the binding at `iova`.
pub const MSI_FLAG_UNBIND: u32 = 1 << 0;

/// Header flag: this message is a reply.
pub const MSG_REPLY: u32 = 1 << 0;
/// Header flag: error reply; `error` holds an errno, the payload a UTF-8 reason.
pub const MSG_ERROR: u32 = 1 << 1;
/// Header flag: STATS in Prometheus text format.
pub const MSG_TEXT: u32 = 1 << 2;
/// Every header flag this protocol version defines.
pub const MSG_FLAGS_KNOWN: u32 = MSG_REPLY | MSG_ERROR | MSG_TEXT;

/// `struct faultring_msg_header`: starts every message (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgHeader {
    /// Chosen by the requester, echoed in the reply.
    pub id: u16,
    /// `CMD_*`.
    pub command: u16,
    /// Bytes of the whole message, header included; equals the packet length.
    pub size: u32,
    /// `MSG_*`.
    pub flags: u32,
    /// 0, or an errno in an error reply.
    pub error: u32,
}

impl FaultringMsgHeader {
    /// Little-endian encoding of the header.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    /// Decodes the first 16 bytes of `b`; `None` if `b` is shorter.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER_SIZE {
            return None;
        }
        Some(FaultringMsgHeader {
            id: u16::from_le_bytes([b[0], b[1]]),
            command: u16::from_le_bytes([b[2], b[3]]),
            size: read_u32(b, 4)?,
            flags: read_u32(b, 8)?,
            error: read_u32(b, 12)?,
        })
    }
}

/// `struct faultring_msg_attach`: ATTACH payload head, followed by `device_count` `u32` ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgAttach {
    /// Record ABI (1 or 2).
    pub abi: u32,
    /// 1 ..= 64.
    pub device_count: u32,
    /// Flexible array member (`uint32_t device_ids[]`).
    pub device_ids: [u32; 0],
}

/// `struct faultring_msg_attach_reply`: ATTACH reply payload (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgAttachReply {
    /// 1 if this reply carries the queue's four descriptors.
    pub queue_created: u32,
    /// Fault ring entries.
    pub entry_count: u32,
    /// Response ring slots.
    pub response_count: u32,
    /// Devices now attached to this connection.
    pub attached: u32,
}

impl FaultringMsgAttachReply {
    /// Decodes an exactly 16-byte payload; `None` for any other length.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != core::mem::size_of::<Self>() {
            return None;
        }
        Some(FaultringMsgAttachReply {
            queue_created: read_u32(b, 0)?,
            entry_count: read_u32(b, 4)?,
            response_count: read_u32(b, 8)?,
            attached: read_u32(b, 12)?,
        })
    }

    /// Little-endian encoding (used by test servers).
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.queue_created.to_le_bytes());
        b[4..8].copy_from_slice(&self.entry_count.to_le_bytes());
        b[8..12].copy_from_slice(&self.response_count.to_le_bytes());
        b[12..16].copy_from_slice(&self.attached.to_le_bytes());
        b
    }
}

/// `struct faultring_msg_detach`: DETACH payload head, followed by the ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgDetach {
    /// 0 = all of this connection's devices.
    pub device_count: u32,
    /// Flexible array member.
    pub device_ids: [u32; 0],
}

/// `struct faultring_msg_add_source`: ADD_SOURCE payload head (not sent by this crate).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgAddSource {
    /// `FAULTRING_SOURCE_*`.
    pub kind: u32,
    /// 1 ..= 64.
    pub device_count: u32,
    /// Flexible array member.
    pub device_ids: [u32; 0],
}

/// `struct faultring_msg_add_source_reply`: ADD_SOURCE reply payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgAddSourceReply {
    /// The service's id for the source.
    pub source_id: u32,
    /// Devices it now serves.
    pub devices: u32,
}

/// `struct faultring_msg_guest_memory`: ADD_GUEST_MEMORY payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgGuestMemory {
    /// 32.
    pub argsz: u32,
    /// 0.
    pub flags: u32,
    /// Guest-physical address of the region.
    pub gpa: u64,
    /// Its size.
    pub size: u64,
    /// Its offset in the memfd.
    pub offset: u64,
}

/// `struct faultring_msg_bind`: BIND payload head, followed by the ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgBind {
    /// 88 + 4 * device_count.
    pub argsz: u32,
    /// 0.
    pub flags: u32,
    /// `BIND_*`.
    pub format: u32,
    /// VT-d: the PASID; SMMUv3: 0.
    pub pasid: u32,
    /// 1 ..= 64.
    pub device_count: u32,
    /// 0.
    pub reserved: u32,
    /// The PASID entry's 8 words, or the STE's 2 and 6 zeros.
    pub data: [u64; 8],
    /// Flexible array member.
    pub device_ids: [u32; 0],
}

/// `struct faultring_msg_unbind`: UNBIND payload head, followed by the ids.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgUnbind {
    /// 24 + 4 * device_count.
    pub argsz: u32,
    /// 0.
    pub flags: u32,
    /// `BIND_*`.
    pub format: u32,
    /// VT-d: the PASID; SMMUv3: 0.
    pub pasid: u32,
    /// 1 ..= 64.
    pub device_count: u32,
    /// 0.
    pub reserved: u32,
    /// Flexible array member.
    pub device_ids: [u32; 0],
}

/// `struct faultring_msg_invalidate`: INVALIDATE payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgInvalidate {
    /// 40.
    pub argsz: u32,
    /// `INV_FLAG_*`.
    pub flags: u32,
    /// `INV_*`.
    pub granularity: u32,
    /// DEVICE_TLB and CONTEXT: the device; else 0.
    pub device: u32,
    /// With `INV_FLAG_PASID`.
    pub pasid: u32,
    /// 0.
    pub reserved: u32,
    /// With `INV_FLAG_RANGE`.
    pub address: u64,
    /// With `INV_FLAG_RANGE`.
    pub size: u64,
}

/// `struct faultring_msg_bind_msi`: BIND_MSI payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultringMsgBindMsi {
    /// 32.
    pub argsz: u32,
    /// `MSI_FLAG_*`.
    pub flags: u32,
    /// The doorbell's input address.
    pub iova: u64,
    /// Its guest-physical address.
    pub gpa: u64,
    /// A power of two, 4 KiB ..= 1 MiB.
    pub size: u64,
}

/// Name of a command, for error messages.
pub fn command_name(command: u16) -> &'static str {
    match command {
        CMD_HELLO => "HELLO",
        CMD_ATTACH => "ATTACH",
        CMD_DETACH => "DETACH",
        CMD_STATS => "STATS",
        CMD_BYE => "BYE",
        CMD_ADD_SOURCE => "ADD_SOURCE",
        CMD_ADD_GUEST_MEMORY => "ADD_GUEST_MEMORY",
        CMD_BIND => "BIND",
        CMD_UNBIND => "UNBIND",
        CMD_INVALIDATE => "INVALIDATE",
        CMD_BIND_MSI => "BIND_MSI",
        0 => "(none)",
        _ => "(unknown)",
    }
}

fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

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

pin_size!(FaultringMsgHeader, 16);
pin!(FaultringMsgHeader, id, 0);
pin!(FaultringMsgHeader, command, 2);
pin!(FaultringMsgHeader, size, 4);
pin!(FaultringMsgHeader, flags, 8);
pin!(FaultringMsgHeader, error, 12);
pin_size!(FaultringMsgAttach, 8);
pin!(FaultringMsgAttach, abi, 0);
pin!(FaultringMsgAttach, device_count, 4);
pin!(FaultringMsgAttach, device_ids, 8);
pin_size!(FaultringMsgAttachReply, 16);
pin!(FaultringMsgAttachReply, queue_created, 0);
pin!(FaultringMsgAttachReply, entry_count, 4);
pin!(FaultringMsgAttachReply, response_count, 8);
pin!(FaultringMsgAttachReply, attached, 12);
pin_size!(FaultringMsgDetach, 4);
pin!(FaultringMsgDetach, device_count, 0);
pin!(FaultringMsgDetach, device_ids, 4);
pin_size!(FaultringMsgAddSource, 8);
pin!(FaultringMsgAddSource, kind, 0);
pin!(FaultringMsgAddSource, device_count, 4);
pin!(FaultringMsgAddSource, device_ids, 8);
pin_size!(FaultringMsgAddSourceReply, 8);
pin!(FaultringMsgAddSourceReply, source_id, 0);
pin!(FaultringMsgAddSourceReply, devices, 4);
pin_size!(FaultringMsgGuestMemory, 32);
pin!(FaultringMsgGuestMemory, offset, 24);
pin_size!(FaultringMsgBind, 88);
pin!(FaultringMsgBind, data, 24);
pin!(FaultringMsgBind, device_ids, 88);
pin_size!(FaultringMsgUnbind, 24);
pin!(FaultringMsgUnbind, device_ids, 24);
pin_size!(FaultringMsgInvalidate, 40);
pin!(FaultringMsgInvalidate, address, 24);
pin_size!(FaultringMsgBindMsi, 32);
pin!(FaultringMsgBindMsi, size, 24);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = FaultringMsgHeader { id: 0x1234, command: CMD_STATS, size: 99, flags: MSG_TEXT, error: 71 };
        let b = h.encode();
        assert_eq!(FaultringMsgHeader::decode(&b), Some(h));
        assert_eq!(FaultringMsgHeader::decode(&b[..15]), None);
    }

    #[test]
    fn attach_reply_needs_exact_length() {
        let r = FaultringMsgAttachReply { queue_created: 1, entry_count: 8, response_count: 4, attached: 2 };
        let b = r.encode();
        assert_eq!(FaultringMsgAttachReply::decode(&b), Some(r));
        assert_eq!(FaultringMsgAttachReply::decode(&b[..12]), None);
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(FaultringMsgAttachReply::decode(&long), None);
    }
}
