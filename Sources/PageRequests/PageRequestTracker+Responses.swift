import FaultABI

extension PageRequestTracker {
    /// Matches a consumer's response, arriving on `channel` in `abi`, to a
    /// live group and completes it; or rejects it, counted by reason.
    ///
    /// ABI 2 matches by cookie; ABI 1 by (PASID, PRGI) among the channel's
    /// devices. Then the group must belong to this channel (else
    /// `foreignDevice`), and:
    /// - ABI 2: the cookie suffices, as in iommufd; a PASID or PRGI the
    ///   response flags valid must be the group's (else `mismatch`);
    /// - ABI 1, as the kernel's `iommu_page_response()`: a NEEDS_PASID group
    ///   must get its PASID back (else `mismatch`); for any other group a
    ///   PASID is ignored (accepted with the flag cleared).
    /// FAILURE becomes INVALID unless `policy.passFailure`.
    @discardableResult
    public mutating func respond(
        _ response: Result<PageResponse, ResponseRejection>, channel: ChannelID, abi: ABIVersion
    ) -> ResponseVerdict {
        makeTablesUnique()
        return respondPrepared(response, channel: channel, abi: abi)
    }

    /// `respond` for a caller that called `makeTablesUnique()` first in the
    /// same access to the tracker: a reader of a whole response ring makes
    /// the check once per ring, not once per response.
    package mutating func respondPrepared(
        _ response: Result<PageResponse, ResponseRejection>, channel: ChannelID, abi: ABIVersion
    ) -> ResponseVerdict {
        guard case .success(let response) = response else { return reject(.malformed) }
        let found = abi == .v2 ? lookup(cookie: response.cookie) : lookupV1(response, channel: channel)
        let cookie: UInt64
        switch found {
        case .failure(let reason): return reject(reason)
        case .success(let live): cookie = live
        }
        let group = group(of: cookie)  // read in place: a group is about 110 bytes
        guard group.pointee.channel == channel else { return reject(.foreignDevice) }
        if abi == .v1 {
            // The kernel's iommu_page_response(): a group that needs its PASID
            // back must get it; for any other group a PASID_VALID answer is
            // taken with the flag cleared (the device is told no PASID).
            if group.pointee.last.needsPASID && response.pasid != group.pointee.last.pasid { return reject(.mismatch) }
        } else {
            // The cookie alone names the group, as iommufd's does; a PASID or
            // PRGI flagged valid is an extra check, and must then be the group's.
            if let pasid = response.pasid, pasid != group.pointee.last.pasid { return reject(.mismatch) }
            if let prgi = response.prgi, prgi != group.pointee.last.prgi { return reject(.mismatch) }
        }
        var code = response.code
        if code == .failure {
            if policy.passFailure {
                counters.failurePassed &+= 1
            } else {
                counters.failureConverted &+= 1
                code = .invalid
            }
        }
        retire(cookie, code: code, source: .consumer)
        return .completed(cookie: cookie)
    }

    mutating func reject(_ reason: ResponseRejectionReason) -> ResponseVerdict {
        rejectTally[reason.ordinal] &+= 1
        return .rejected(reason)
    }

    /// Finds the live group of an ABI 2 cookie, or says why there is none.
    @inline(__always) func lookup(cookie: UInt64) -> Result<UInt64, ResponseRejectionReason> {
        let slotIndex = Int(GroupCookie(rawValue: cookie).slot)
        let generation = GroupCookie(rawValue: cookie).generation
        guard generation != 0, slotIndex < table.capacity else { return .failure(.unknown) }
        if isLive(cookie) { return .success(cookie) }
        let slot = table.slot(slotIndex).pointee
        if slot.retiredBy != .none && generation == Self.previous(slot.generation) {
            switch slot.retiredBy {
            case .consumer: return .failure(.duplicate)
            case .timeout: return .failure(.late)
            default: return .failure(.stale)
            }
        }
        // An earlier generation of this slot: issued, answered, forgotten.
        return generation < slot.generation ? .failure(.stale) : .failure(.unknown)
    }

    /// Finds the live group an ABI 1 response names: among the devices of
    /// `channel`, the oldest live group with its PRGI whose PASID matches
    /// the response's (if it carries one), else the oldest with that PRGI —
    /// whose PASID rules `respond` then checks (a wrong PASID is a mismatch,
    /// not an unknown group). ABI 1 cannot tell a reused PRGI's groups apart
    /// any better than the kernel could; ABI 2 cookies can.
    func lookupV1(_ response: PageResponse, channel: ChannelID) -> Result<UInt64, ResponseRejectionReason> {
        guard let prgi = response.prgi, prgi <= PRILimits.maxPRGI else { return .failure(.unknown) }
        var retired = RetireKind.none
        var oldest: UInt64?
        for d in devices.indices where devices[d].known && devices[d].channel == channel {
            for cookie in liveCookies(device: d, prgi: Int(prgi)) {
                let group = group(of: cookie).pointee
                if response.pasid != nil && group.pasid == response.pasid { return .success(cookie) }
                if oldest == nil { oldest = cookie }
            }
            let ended = indexStates[Self.reuseKey(d, Int(prgi))].lastRetired
            if ended != .none { retired = ended }
        }
        if let oldest { return .success(oldest) }
        switch retired {
        case .consumer: return .failure(.duplicate)
        case .timeout: return .failure(.late)
        case .other: return .failure(.stale)
        case .none: return .failure(.unknown)
        }
    }
}
