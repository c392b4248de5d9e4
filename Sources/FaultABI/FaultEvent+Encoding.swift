import CFaultRingABI

extension FaultEvent {
    /// Writes this event as one 64-byte record of `abi` at `slot`.
    ///
    /// Every byte of the record is written (unused ones as zero), so no stale
    /// data from an earlier lap of the ring can leak to the consumer.
    /// - Parameters:
    ///   - slot: a ring slot of at least `ABILayout.entrySize` bytes, 8-aligned.
    ///   - abi: the ABI in force on the queue.
    ///   - sequence: the queue's sequence number for this record (ABI 2 only).
    @inlinable
    public func encode(into slot: UnsafeMutableRawPointer, abi: ABIVersion, sequence: UInt32) {
        // Compose the record in registers, then copy it whole: one or two
        // vector stores per slot instead of a dozen field stores, which
        // matters because the first store to each slot misses (the line was
        // last read by the consumer's core).
        if abi == .v1 {
            var record = v1Record
            withUnsafeBytes(of: &record) { slot.copyMemory(from: $0.baseAddress!, byteCount: 64) }
        } else {
            var record = v2Record(sequence: sequence)
            withUnsafeBytes(of: &record) { slot.copyMemory(from: $0.baseAddress!, byteCount: 64) }
        }
    }

    /// The ABI 1 (`struct iommu_fault`) form of this event.
    ///
    /// Always inlined: the producer's encode loop then builds the record in
    /// the ring slot itself, with no 64-byte temporary and copy per record.
    @inlinable
    @inline(__always)
    public var v1Record: faultring_v1_fault {
        switch self {
        case .pageRequest(let request): return request.v1Record
        case .unrecoverable(let fault): return fault.v1Record
        }
    }

    /// The ABI 2 form of this event with the given queue sequence number
    /// (always inlined, as `v1Record` is).
    @inlinable
    @inline(__always)
    public func v2Record(sequence: UInt32) -> faultring_v2_fault {
        switch self {
        case .pageRequest(let request): return request.v2Record(sequence: sequence)
        case .unrecoverable(let fault): return fault.v2Record(sequence: sequence)
        }
    }
}

/// A value the producer writes as one 64-byte ring record of either ABI:
/// a `FaultEvent`, or a `PageRequest` on its own (the page-request layer
/// publishes groups without wrapping each request in an event).
///
/// Both forms write every byte of the record (unused ones as zero), so no
/// stale data from an earlier lap of the ring can leak to the consumer.
public protocol RingRecord {
    /// The ABI 1 (`struct iommu_fault`) form.
    var v1Record: faultring_v1_fault { get }
    /// The ABI 2 form, with the queue's sequence number for this record.
    func v2Record(sequence: UInt32) -> faultring_v2_fault
}

extension FaultEvent: RingRecord {}

extension PageRequest: RingRecord {
    /// The ABI 1 form: a `struct iommu_fault` of type PAGE_REQ.
    @inlinable
    @inline(__always)
    public var v1Record: faultring_v1_fault {
        var record = faultring_v1_fault()
        record.type = FAULTRING_FAULT_PAGE_REQ
        var prm = faultring_v1_page_request()
        if let pasid {
            prm.flags |= FAULTRING_V1_PRQ_PASID_VALID
            prm.pasid = pasid
        }
        // Selects, not branches, as in `v2Record`.
        prm.flags |= (isLastPage ? FAULTRING_V1_PRQ_LAST_PAGE : 0) | (needsPASID ? FAULTRING_V1_PRQ_NEEDS_PASID : 0)
        if let data = privateData {
            prm.flags |= FAULTRING_V1_PRQ_PRIV_DATA
            prm.private_data = (data.low, data.high)
        }
        prm.grpid = prgi
        prm.perm = permissions.rawValue
        prm.addr = address
        record.prm = prm
        return record
    }

    /// The ABI 2 form, of type PAGE_REQ.
    @inlinable
    @inline(__always)
    public func v2Record(sequence: UInt32) -> faultring_v2_fault {
        var record = faultring_v2_fault(type: FAULTRING_FAULT_PAGE_REQ, sequence: sequence, deviceID: deviceID,
                                        pasid: pasid, permissions: permissions, timestampNS: timestampNS)
        // Selects, not branches: in a run of groups of mixed sizes whether a
        // record is a group's last follows no pattern a predictor can learn.
        record.flags |= (isLastPage ? FAULTRING_V2_LAST_PAGE : 0) | (needsPASID ? FAULTRING_V2_NEEDS_PASID : 0)
        record.grpid = prgi
        record.addr = address
        record.cookie = cookie
        return record
    }
}

extension UnrecoverableFault: RingRecord {
    /// The ABI 1 form: a `struct iommu_fault` of type DMA_UNRECOV.
    @inlinable
    @inline(__always)
    public var v1Record: faultring_v1_fault {
        var record = faultring_v1_fault()
        record.type = FAULTRING_FAULT_DMA_UNRECOV
        var event = faultring_v1_unrecoverable()
        event.reason = reason
        if let pasid {
            event.flags |= FAULTRING_V1_UNRECOV_PASID_VALID
            event.pasid = pasid
        }
        if let address {
            event.flags |= FAULTRING_V1_UNRECOV_ADDR_VALID
            event.addr = address
        }
        if let fetchAddress {
            event.flags |= FAULTRING_V1_UNRECOV_FETCH_ADDR_VALID
            event.fetch_addr = fetchAddress
        }
        event.perm = permissions.rawValue
        record.event = event
        return record
    }

    /// The ABI 2 form, of type DMA_UNRECOV.
    @inlinable
    @inline(__always)
    public func v2Record(sequence: UInt32) -> faultring_v2_fault {
        var record = faultring_v2_fault(type: FAULTRING_FAULT_DMA_UNRECOV, sequence: sequence, deviceID: deviceID,
                                        pasid: pasid, permissions: permissions, timestampNS: timestampNS)
        if let address {
            record.flags |= FAULTRING_V2_ADDR_VALID
            record.addr = address
        }
        if let fetchAddress {
            record.flags |= FAULTRING_V2_FETCH_ADDR_VALID
            record.fetch_addr = fetchAddress
        }
        record.reason = reason
        return record
    }
}

extension faultring_v2_fault {
    /// The fields every ABI 2 fault record sets the same way, the rest
    /// zero: the type, the queue's sequence number, the device, the PASID
    /// (flagged valid when present), the access and the time.
    @inlinable
    @inline(__always)
    init(type: UInt32, sequence: UInt32, deviceID: UInt32, pasid: UInt32?, permissions: Permissions,
         timestampNS: UInt64) {
        self.init()
        self.type = type
        self.sequence = sequence
        device_id = deviceID
        if let pasid {
            flags |= FAULTRING_V2_PASID_VALID
            self.pasid = pasid
        }
        perm = permissions.rawValue
        timestamp_ns = timestampNS
    }
}
