import CFaultRingABI
import FaultControl
import IOMMUFormats
import NestedIOMMU
import SystemPackage

/// One client's VM as the nested IOMMU sees it: the guest RAM it shared
/// (stage 2) and, from its first BIND, the domain holding its bindings and
/// caches. It lives and dies with the session.
final class NestedVM {
    let memory = GuestMemory()
    var domain: NestedDomain?
}

extension FaultService {
    /// ADD_GUEST_MEMORY, BIND, UNBIND, INVALIDATE and BIND_MSI. Rights come
    /// from the devices the session holds: the domain knows exactly those,
    /// and a session holding none can bind or invalidate nothing.
    func processNested(_ command: ControlCommand, _ message: ControlMessage, session: Session) throws(ControlError)
        -> ControlMessage
    {
        let vm = session.nested ?? NestedVM()
        session.nested = vm
        switch command {
        case .addGuestMemory:
            let request = try GuestMemoryRequest(payload: message.payload)
            guard message.fds.count == 1 else {
                throw ControlError(.badFileDescriptor, "ADD_GUEST_MEMORY takes exactly one memfd; \(message.fds.count) received")
            }
            do { try vm.memory.add(fd: message.fds[0], gpa: request.gpa, size: request.size, offset: request.offset) } catch {
                let errno: Errno = switch error.code {
                case .notSealed: .badFileDescriptor
                case .overlap: .fileExists
                case .tooLarge: .noSpace
                case .system: error.errno ?? .ioError
                case .misaligned, .outOfRange, .beyondFile: .invalidArgument
                }
                throw ControlError(errno, "ADD_GUEST_MEMORY: \(error.detail)")
            }
            return .reply(to: message)
        case .bind, .unbind:
            let request = try BindRequest(payload: message.payload, bind: command == .bind)
            let style: NestedDomain.Style = request.format == .vtdPASID ? .vtd : .smmuv3
            if command == .unbind {
                // Cannot fail once well formed: nothing bound, nothing to do.
                if let domain = vm.domain, domain.style == style {
                    domain.unbind(devices: request.devices, pasid: style == .vtd ? request.pasid : nil)
                }
                return .reply(to: message)
            }
            guard !session.devices.isEmpty else {
                throw ControlError(.notPermitted, "BIND: this connection holds no device")
            }
            let created = vm.domain == nil
            let domain = try self.domain(of: vm, style: style, session: session)
            // A first BIND that fails leaves no domain behind: it fixes nothing, not even the VM's style.
            defer { if created && domain.counters.binds == 0 { vm.domain = nil } }
            do throws(NestedError) {
                switch request.format {
                case .vtdPASID:
                    let entry: VTdPASIDEntry
                    do { entry = try VTdPASIDEntry(words: request.data) } catch {
                        throw NestedError(.invalidArgument, "the PASID entry: \(error)")
                    }
                    try domain.bind(devices: request.devices, pasid: request.pasid, entry: entry)
                case .smmuv3STE:
                    let ste: SMMUv3NestedSTE
                    do { ste = try SMMUv3NestedSTE(words: Array(request.data[0...1])) } catch {
                        // The kernel answers an illegal vSTE with EIO.
                        throw NestedError(.ioError, "the STE: \(error)")
                    }
                    try domain.bind(devices: request.devices, table: ste)
                }
            } catch {
                throw ControlError(error.errno, "BIND: \(error.detail)")
            }
            return .reply(to: message)
        case .invalidate:
            let request = try InvalidateRequest(payload: message.payload)
            let domain = try boundDomain(of: vm, session: session, command: "INVALIDATE")
            do { try domain.invalidate(Self.invalidation(request)) } catch {
                throw ControlError(error.errno, "INVALIDATE: \(error.detail)")
            }
            return .reply(to: message)
        case .bindMSI:
            let request = try BindMSIRequest(payload: message.payload)
            if request.unbind {
                vm.domain?.unbindMSI(iova: request.iova)   // cannot fail: nothing bound is nothing to remove
                return .reply(to: message)
            }
            // A doorbell lives in the VM's IOMMU, which its first BIND creates (in that BIND's style).
            let domain = try boundDomain(of: vm, session: session, command: "BIND_MSI")
            do { try domain.bindMSI(iova: request.iova, gpa: request.gpa, size: request.size) } catch {
                throw ControlError(error.errno, "BIND_MSI: \(error.detail)")
            }
            return .reply(to: message)
        default:
            throw ControlError(.noFunction, "\(command) is not a nested-IOMMU command")
        }
    }

    /// The domain a command after BIND acts on: EPERM if the session holds
    /// no device, ENOENT if it has bound nothing yet.
    func boundDomain(of vm: NestedVM, session: Session, command: String) throws(ControlError) -> NestedDomain {
        guard let domain = vm.domain else {
            throw ControlError(session.devices.isEmpty ? .notPermitted : .noSuchFileOrDirectory,
                               "\(command): " + (session.devices.isEmpty ? "this connection holds no device" : "nothing is bound"))
        }
        return domain
    }

    /// The session's domain, created at its first BIND in that BIND's style,
    /// holding the session's devices.
    func domain(of vm: NestedVM, style: NestedDomain.Style, session: Session) throws(ControlError) -> NestedDomain {
        if let domain = vm.domain {
            guard domain.style == style else {
                throw ControlError(.invalidArgument, "BIND: this VM binds \(domain.style.rawValue) tables, not \(style.rawValue)")
            }
            return domain
        }
        let domain = NestedDomain(style: style, memory: vm.memory, pasidQuota: config.pasidQuota)
        domain.failBindAtDevice = config.failBindAtDevice
        domain.staleGraceNS = config.staleGraceNS
        for id in session.devices { domain.attach(device: id, ats: !config.devicesWithoutATS.contains(id)) }
        vm.domain = domain
        return domain
    }

    /// The protocol's invalidation as the domain's.
    static func invalidation(_ r: InvalidateRequest) -> Invalidation {
        let pasid = r.flags & FAULTRING_INV_FLAG_PASID != 0 ? r.pasid : nil
        let range = r.flags & FAULTRING_INV_FLAG_RANGE != 0 ? Invalidation.AddressRange(address: r.address, size: r.size) : nil
        switch r.granularity {
        case FAULTRING_INV_PASID: return .pasid(r.pasid)
        case FAULTRING_INV_RANGE:
            return .range(pasid: r.pasid, address: r.address, size: r.size, leafOnly: r.flags & FAULTRING_INV_FLAG_LEAF != 0)
        case FAULTRING_INV_DEVICE_TLB: return .deviceTLB(device: r.device, pasid: pasid, range: range)
        case FAULTRING_INV_CONTEXT: return .context(device: r.device, pasid: pasid)
        default: return .global
        }
    }

    /// The domain `device`'s DMA goes through now: that of the connection
    /// holding it, once that connection bound something; nil otherwise.
    /// (DMA devices in the service ask this at every step.)
    public func nestedDomain(holding device: UInt32) -> NestedDomain? {
        owner[device].flatMap { sessions[$0]?.nested?.domain }
    }

    /// A device leaves its session (DETACH or the connection ending): the
    /// nested IOMMU revokes what came from it.
    func revokeNested(_ device: UInt32, of session: Session) {
        session.nested?.domain?.detach(device: device)
    }
}
