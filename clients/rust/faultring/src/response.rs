//! Page responses, built so that they cannot be malformed.
//!
//! A [`Response`] is made only from a [`GroupEnd`] (taken from the group's
//! LAST_PAGE record, or validated by [`GroupEnd::v1`]/[`GroupEnd::v2`]) and a
//! [`Code`]. It encodes to the full 64-byte slot image: the ABI's struct, then
//! zeros up to 64 bytes, with `argsz` = the struct's size. So every rule of
//! ABI.md section 9 holds by construction: `argsz` in range, no trailing
//! non-zero bytes, the right `version`, only known `flags`, no `pasid`/`grpid`
//! without its VALID flag, a known `code`, PASID ≤ 20 bits and PRGI ≤ 9 bits.

use crate::abi;
use crate::record::{GroupEnd, GroupKey};
use crate::Abi;

/// A page response code (`enum iommu_page_response_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// 0: the pages are mapped; the device retries the access.
    Success,
    /// 1: do not retry.
    Invalid,
    /// 2: disables PRI for the whole PCIe function and its VFs. The service
    /// turns it into INVALID by default (and counts it).
    Failure,
}

impl Code {
    /// The wire value.
    pub fn raw(self) -> u32 {
        match self {
            Code::Success => abi::RESP_SUCCESS,
            Code::Invalid => abi::RESP_INVALID,
            Code::Failure => abi::RESP_FAILURE,
        }
    }
}

/// A well-formed response to one page-request group.
///
/// ```
/// # use faultring::{GroupEnd, Response, Code};
/// let r = Response::for_group(&GroupEnd::v2(0xC0FFEE, 1), Code::Success);
/// assert_eq!(r.slot_words()[0], 32); // argsz
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    group: GroupEnd,
    code: Code,
    check_pasid: bool,
    check_grpid: bool,
}

impl Response {
    /// The response to `group` with `code`.
    ///
    /// * ABI 1 (`struct iommu_page_response`): `argsz = 24`, `version = 1`,
    ///   `flags = PASID_VALID` and `pasid` = the request's PASID iff the
    ///   request had `NEEDS_PASID` (otherwise `flags = 0`, `pasid = 0`),
    ///   `grpid` = the request's PRGI, `code`.
    /// * ABI 2 (`struct faultring_v2_response`): `argsz = 32`, `version = 2`,
    ///   `cookie` = the group's cookie, `code`, `flags = 0`, `pasid = grpid = 0`.
    ///   The cookie alone names the group, `NEEDS_PASID` groups included.
    pub fn for_group(group: &GroupEnd, code: Code) -> Response {
        Response { group: *group, code, check_pasid: false, check_grpid: false }
    }

    /// The response with `code` to the group that `record` closes, or
    /// `Ok(None)` if `record` closes no group (not a LAST_PAGE page request).
    ///
    /// # Errors
    /// [`crate::Error::MalformedRecord`], as for [`crate::Record::group_end`].
    pub fn for_record(record: &crate::Record<'_>, code: Code) -> crate::Result<Option<Response>> {
        Ok(record.group_end()?.map(|g| Response::for_group(&g, code)))
    }

    /// ABI 2: also ask the service to check the PASID (`PASID_VALID` with the
    /// group's PASID). No effect for ABI 1, or if the group's record had no
    /// valid PASID.
    pub fn with_pasid_check(mut self) -> Response {
        self.check_pasid = matches!(self.group.key(), GroupKey::V2 { pasid: Some(_), .. });
        self
    }

    /// ABI 2: also ask the service to check the PRG index (`GRPID_VALID` with
    /// the group's PRGI). No effect for ABI 1.
    pub fn with_grpid_check(mut self) -> Response {
        self.check_grpid = matches!(self.group.key(), GroupKey::V2 { grpid: Some(_), .. });
        self
    }

    /// The ABI this response is for (it can only be written to a queue of that ABI).
    pub fn abi(&self) -> Abi {
        self.group.abi()
    }

    /// The group it answers.
    pub fn group(&self) -> &GroupEnd {
        &self.group
    }

    /// Its code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The ABI 1 struct, if this is an ABI 1 response.
    pub fn as_v1(&self) -> Option<abi::FaultringV1Response> {
        match self.group.key() {
            GroupKey::V1 { pasid, grpid } => Some(abi::FaultringV1Response {
                argsz: core::mem::size_of::<abi::FaultringV1Response>() as u32,
                version: abi::RESP_VERSION_1,
                flags: if pasid.is_some() { abi::RESP_PASID_VALID } else { 0 },
                pasid: pasid.unwrap_or(0),
                grpid,
                code: self.code.raw(),
            }),
            GroupKey::V2 { .. } => None,
        }
    }

    /// The ABI 2 struct, if this is an ABI 2 response.
    pub fn as_v2(&self) -> Option<abi::FaultringV2Response> {
        match self.group.key() {
            GroupKey::V2 { cookie, pasid, grpid, .. } => {
                let pasid = if self.check_pasid { pasid } else { None };
                let grpid = if self.check_grpid { grpid } else { None };
                let mut flags = 0;
                if pasid.is_some() {
                    flags |= abi::RESP_PASID_VALID;
                }
                if grpid.is_some() {
                    flags |= abi::RESP_GRPID_VALID;
                }
                Some(abi::FaultringV2Response {
                    argsz: core::mem::size_of::<abi::FaultringV2Response>() as u32,
                    version: abi::RESP_VERSION_2,
                    flags,
                    code: self.code.raw(),
                    cookie,
                    pasid: pasid.unwrap_or(0),
                    grpid: grpid.unwrap_or(0),
                })
            }
            GroupKey::V1 { .. } => None,
        }
    }

    /// The whole 64-byte slot as 16 little-endian words: the struct, then zeros.
    pub fn slot_words(&self) -> [u32; 16] {
        let mut w = [0u32; 16];
        if let Some(r) = self.as_v1() {
            w[..6].copy_from_slice(&[r.argsz, r.version, r.flags, r.pasid, r.grpid, r.code]);
        } else if let Some(r) = self.as_v2() {
            w[..8].copy_from_slice(&[
                r.argsz,
                r.version,
                r.flags,
                r.code,
                r.cookie as u32,
                (r.cookie >> 32) as u32,
                r.pasid,
                r.grpid,
            ]);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::record::{Record, Slot};
    use crate::sys::test_region;

    fn v2_record(ty: u32, flags: u32, pasid: u32, grpid: u32, cookie: u64, device: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        let w = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        w(&mut b, 0, ty);
        w(&mut b, 4, 17);
        w(&mut b, 8, device);
        w(&mut b, 12, flags);
        w(&mut b, 16, pasid);
        w(&mut b, 20, grpid);
        w(&mut b, 24, abi::PERM_READ);
        b[48..56].copy_from_slice(&cookie.to_le_bytes());
        b
    }

    fn v1_record(ty: u32, flags: u32, pasid: u32, grpid: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        let w = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        w(&mut b, 0, ty);
        w(&mut b, 8, flags);
        w(&mut b, 12, pasid);
        w(&mut b, 16, grpid);
        w(&mut b, 20, abi::PERM_WRITE);
        b[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        b
    }

    fn group(abi: Abi, bytes: &[u8]) -> crate::Result<Option<GroupEnd>> {
        let r = test_region(bytes);
        let rec = Record::new(abi, Slot::new(&r, 0).unwrap());
        rec.group_end()
    }

    /// The producer's slot validation (ABI.md section 9), re-stated: a
    /// response this crate builds must pass every rule.
    fn producer_accepts(abi: Abi, w: &[u32; 16]) -> Result<(), &'static str> {
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        let argsz = w[0] as usize;
        let (min, version, known_flags) = match abi {
            Abi::V1 => (24, abi::RESP_VERSION_1, abi::RESP_PASID_VALID),
            Abi::V2 => (32, abi::RESP_VERSION_2, abi::RESP_PASID_VALID | abi::RESP_GRPID_VALID),
        };
        if argsz < min || argsz > 64 {
            return Err("bad_argsz");
        }
        if bytes[min..argsz].iter().any(|b| *b != 0) {
            return Err("trailing_nonzero");
        }
        if w[1] != version {
            return Err("bad_version");
        }
        if w[2] & !known_flags != 0 {
            return Err("unknown_flags");
        }
        let (pasid, grpid, code) = match abi {
            Abi::V1 => (w[3], None, w[5]),
            Abi::V2 => (w[6], Some(w[7]), w[3]),
        };
        if w[2] & abi::RESP_PASID_VALID == 0 && pasid != 0 {
            return Err("reserved_nonzero");
        }
        if let Some(g) = grpid {
            if w[2] & abi::RESP_GRPID_VALID == 0 && g != 0 {
                return Err("reserved_nonzero");
            }
            if g > abi::PRGI_MAX {
                return Err("out_of_range");
            }
        }
        if code > 2 {
            return Err("bad_code");
        }
        if pasid > abi::PASID_MAX || (abi == Abi::V1 && w[4] > abi::PRGI_MAX) {
            return Err("out_of_range");
        }
        // Everything past the struct is zero (the slot was zeroed first).
        if bytes[min..].iter().any(|b| *b != 0) {
            return Err("dirty slot");
        }
        Ok(())
    }

    #[test]
    fn v2_response_is_cookie_only_by_default() {
        let flags = abi::V2_LAST_PAGE | abi::V2_NEEDS_PASID | abi::V2_PASID_VALID;
        let g = group(Abi::V2, &v2_record(abi::FAULT_PAGE_REQ, flags, 0x123, 7, 0xDEAD_BEEF_0000_0001, 3))
            .unwrap()
            .unwrap();
        assert_eq!(
            (g.cookie(), g.device_id(), g.pasid(), g.grpid()),
            (Some(0xDEAD_BEEF_0000_0001), Some(3), Some(0x123), Some(7))
        );
        let r = Response::for_group(&g, Code::Success);
        let rg = test_region(&v2_record(abi::FAULT_PAGE_REQ, flags, 0x123, 7, 0xDEAD_BEEF_0000_0001, 3));
        let rec = Record::new(Abi::V2, Slot::new(&rg, 0).unwrap());
        assert_eq!(Response::for_record(&rec, Code::Success).unwrap(), Some(r));
        assert_eq!(r.slot_words(), [32, 2, 0, 0, 0x0000_0001, 0xDEAD_BEEF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        producer_accepts(Abi::V2, &r.slot_words()).unwrap();
        let checked = r.with_pasid_check().with_grpid_check();
        let v2 = checked.as_v2().unwrap();
        assert_eq!((v2.flags, v2.pasid, v2.grpid), (abi::RESP_PASID_VALID | abi::RESP_GRPID_VALID, 0x123, 7));
        producer_accepts(Abi::V2, &checked.slot_words()).unwrap();
        assert!(checked.as_v1().is_none());
    }

    #[test]
    fn v2_pasid_check_needs_a_valid_pasid() {
        // No PASID_VALID on the record: the check cannot be asked for.
        let g = group(Abi::V2, &v2_record(abi::FAULT_PAGE_REQ, abi::V2_LAST_PAGE, 0x55, 1, 9, 1)).unwrap().unwrap();
        let r = Response::for_group(&g, Code::Invalid).with_pasid_check();
        let v2 = r.as_v2().unwrap();
        assert_eq!((v2.flags, v2.pasid, v2.code), (0, 0, abi::RESP_INVALID));
        // A PRGI out of range on a hostile record: the check is dropped, the answer stays valid.
        let g = group(Abi::V2, &v2_record(abi::FAULT_PAGE_REQ, abi::V2_LAST_PAGE, 0, 0xFFFF, 9, 1)).unwrap().unwrap();
        let r = Response::for_group(&g, Code::Failure).with_grpid_check();
        assert_eq!(r.as_v2().unwrap().flags, 0);
        producer_accepts(Abi::V2, &r.slot_words()).unwrap();
    }

    #[test]
    fn only_last_page_requests_end_groups() {
        assert_eq!(group(Abi::V2, &v2_record(abi::FAULT_PAGE_REQ, 0, 0, 1, 5, 1)).unwrap(), None);
        assert_eq!(group(Abi::V2, &v2_record(abi::FAULT_DMA_UNRECOV, abi::V2_LAST_PAGE, 0, 0, 0, 1)).unwrap(), None);
        assert_eq!(group(Abi::V2, &v2_record(abi::FAULT_LOST, abi::V2_LAST_PAGE, 0, 0, 0, 1)).unwrap(), None);
        assert_eq!(group(Abi::V2, &v2_record(77, abi::V2_LAST_PAGE, 0, 0, 0, 1)).unwrap(), None);
        assert_eq!(group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, 0, 0, 1)).unwrap(), None);
        assert_eq!(group(Abi::V1, &v1_record(abi::FAULT_DMA_UNRECOV, abi::V1_PRQ_LAST_PAGE, 0, 0)).unwrap(), None);
    }

    #[test]
    fn v1_echoes_pasid_iff_needs_pasid() {
        let f = abi::V1_PRQ_LAST_PAGE | abi::V1_PRQ_NEEDS_PASID | abi::V1_PRQ_PASID_VALID;
        let g = group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, f, 5, 9)).unwrap().unwrap();
        let r = Response::for_group(&g, Code::Success);
        assert_eq!(r.abi(), Abi::V1);
        assert_eq!(r.slot_words()[..6], [24, 1, abi::RESP_PASID_VALID, 5, 9, 0]);
        producer_accepts(Abi::V1, &r.slot_words()).unwrap();
        // PASID_VALID without NEEDS_PASID: the answer carries no PASID.
        let f = abi::V1_PRQ_LAST_PAGE | abi::V1_PRQ_PASID_VALID;
        let g = group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, f, 5, 9)).unwrap().unwrap();
        let r = Response::for_group(&g, Code::Invalid);
        assert_eq!(r.slot_words()[..6], [24, 1, 0, 0, 9, 1]);
        producer_accepts(Abi::V1, &r.slot_words()).unwrap();
        // The v2 checks do nothing on v1.
        assert_eq!(r.with_pasid_check().with_grpid_check(), r);
        assert!(r.as_v2().is_none());
    }

    #[test]
    fn v1_out_of_range_fields_are_refused_not_masked() {
        let f = abi::V1_PRQ_LAST_PAGE;
        match group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, f, 0, 512)) {
            Err(Error::MalformedRecord { field: "prm.grpid", value: 512 }) => {}
            other => panic!("{other:?}"),
        }
        let f = abi::V1_PRQ_LAST_PAGE | abi::V1_PRQ_NEEDS_PASID;
        match group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, f, 1 << 20, 1)) {
            Err(e @ Error::MalformedRecord { field: "prm.pasid", .. }) => assert_eq!(e.errno(), libc::EPROTO),
            other => panic!("{other:?}"),
        }
        // A wide PASID that the answer does not echo is harmless.
        let f = abi::V1_PRQ_LAST_PAGE;
        assert!(group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, f, u32::MAX, 1)).unwrap().is_some());
    }

    #[test]
    fn hand_made_group_keys_are_validated() {
        assert!(GroupEnd::v1(Some(abi::PASID_MAX), abi::PRGI_MAX).is_ok());
        assert!(matches!(GroupEnd::v1(None, abi::PRGI_MAX + 1), Err(Error::InvalidArgument { .. })));
        assert!(matches!(GroupEnd::v1(Some(abi::PASID_MAX + 1), 0), Err(Error::InvalidArgument { .. })));
        let g = GroupEnd::v2(u64::MAX, 0);
        let r = Response::for_group(&g, Code::Success).with_pasid_check().with_grpid_check();
        assert_eq!(r.as_v2().unwrap().flags, 0);
        producer_accepts(Abi::V2, &r.slot_words()).unwrap();
    }

    #[test]
    fn every_built_response_passes_slot_validation() {
        // A sweep over flag combinations, edge values and codes.
        let codes = [Code::Success, Code::Invalid, Code::Failure];
        let values = [0u32, 1, 0x1FF, 0x200, 0xF_FFFF, 0x10_0000, u32::MAX];
        for flags in 0..32u32 {
            for &p in &values {
                for &g in &values {
                    for &code in &codes {
                        if let Ok(Some(ge)) =
                            group(Abi::V2, &v2_record(abi::FAULT_PAGE_REQ, flags, p, g, u64::from(p) << 7, 2))
                        {
                            for r in [
                                Response::for_group(&ge, code),
                                Response::for_group(&ge, code).with_pasid_check(),
                                Response::for_group(&ge, code).with_grpid_check().with_pasid_check(),
                            ] {
                                producer_accepts(Abi::V2, &r.slot_words()).unwrap();
                            }
                        }
                        if let Ok(Some(ge)) = group(Abi::V1, &v1_record(abi::FAULT_PAGE_REQ, flags & 0xF, p, g)) {
                            producer_accepts(Abi::V1, &Response::for_group(&ge, code).slot_words()).unwrap();
                        }
                    }
                }
            }
        }
        assert_eq!((Code::Success.raw(), Code::Invalid.raw(), Code::Failure.raw()), (0, 1, 2));
    }

    #[test]
    fn owned_copies_match_the_views() {
        let b = v2_record(abi::FAULT_PAGE_REQ, abi::V2_LAST_PAGE, 3, 4, 99, 2);
        let r = test_region(&b);
        let rec = Record::new(Abi::V2, Slot::new(&r, 0).unwrap());
        match rec.to_owned() {
            crate::OwnedRecord::V2(f) => {
                assert_eq!((f.type_, f.sequence, f.device_id, f.pasid, f.grpid, f.cookie), (2, 17, 2, 3, 4, 99));
            }
            other => panic!("{other:?}"),
        }
        let b = v1_record(abi::FAULT_PAGE_REQ, abi::V1_PRQ_LAST_PAGE, 3, 4);
        let r = test_region(&b);
        let rec = Record::new(Abi::V1, Slot::new(&r, 0).unwrap());
        match rec.to_owned() {
            crate::OwnedRecord::V1(f) => {
                let p = f.prm();
                assert_eq!((f.type_, p.flags, p.pasid, p.grpid, p.perm, p.addr), (2, 2, 3, 4, abi::PERM_WRITE, 0x1000));
            }
            other => panic!("{other:?}"),
        }
        let mut lost = vec![0u8; 64];
        lost[0..4].copy_from_slice(&abi::FAULT_LOST.to_le_bytes());
        lost[4..8].copy_from_slice(&12u32.to_le_bytes());
        lost[16..24].copy_from_slice(&5u64.to_le_bytes());
        lost[24..28].copy_from_slice(&7u32.to_le_bytes());
        lost[32..40].copy_from_slice(&5u64.to_le_bytes());
        let r = test_region(&lost);
        match Record::new(Abi::V2, Slot::new(&r, 0).unwrap()) {
            Record::Lost(l) => {
                assert_eq!((l.sequence(), l.lost_records(), l.first_lost_sequence(), l.total_lost()), (12, 5, 7, 5));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slots_outside_the_region_are_refused() {
        let r = test_region(&[0u8; 100]);
        assert!(Slot::new(&r, 0).is_some());
        assert!(Slot::new(&r, 40).is_none()); // 40 + 64 > 100
        assert!(Slot::new(&r, 4).is_none()); // misaligned
        assert!(Slot::new(&r, usize::MAX - 8).is_none()); // overflow
    }
}
