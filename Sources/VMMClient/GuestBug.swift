import NestedIOMMU

/// A bug of the guest's IOMMU driver that the nested IOMMU's devices
/// expose (Docs/NESTED.md §4): the names every report uses, how each is
/// counted, and which one each `NestedGuest.Behaviour` must show.
///
/// One place for the names, so the in-process harness, its capture files
/// and a vSVA storm's verdict say the same thing.
public enum GuestBug: String, CaseIterable, Sendable, Codable {
    /// A DMA used a cached translation the guest had changed without
    /// invalidating, outside the grace window (`NestedCounters.staleTranslations`).
    case staleTranslation = "stale translation"
    /// The same for a cached context (PASID entry or CD).
    case staleContext = "stale context descriptor"
    /// A retry after SUCCESS did not translate (`DMADevice.Counters.successNotMapped`).
    case successNotMapped = "answered SUCCESS but not mapped"
    /// An answer that reached the service after the group's timeout.
    case lateAnswer = "answered after the timeout"
    /// A device's MSI write faulted: the guest bound no doorbell there
    /// (`DMADevice.Counters.msiFaults`).
    case msiNotBound = "MSI write with no doorbell bound"

    /// Counts by name as the reports print them: `name × count, …`, the
    /// guest bugs first in their declared order, any other name (an event
    /// reason, a refusal) after them alphabetically; zero counts left out.
    /// The one formatter of bug, event and refusal counts, so `faultring
    /// nested`, storm summaries, verdicts and report pages list them alike.
    public static func list(_ counts: [String: UInt64]) -> String {
        func rank(_ name: String) -> Int { GuestBug(rawValue: name).flatMap { allCases.firstIndex(of: $0) } ?? allCases.count }
        return counts.filter { $0.value > 0 }
            .sorted { (rank($0.key), $0.key) < (rank($1.key), $1.key) }
            .map { "\($0.key) × \($0.value)" }.joined(separator: ", ")
    }

    /// The bugs these counts show, by name (zero counts left out).
    public static func tally(iommu: NestedCounters, successNotMapped: UInt64, lateAnswers: UInt64,
                             msiFaults: UInt64) -> [String: UInt64] {
        let counts: [(GuestBug, UInt64)] = [(.staleTranslation, iommu.staleTranslations), (.staleContext, iommu.staleContexts),
                                            (.successNotMapped, successNotMapped), (.lateAnswer, lateAnswers),
                                            (.msiNotBound, msiFaults)]
        return Dictionary(uniqueKeysWithValues: counts.filter { $0.1 > 0 }.map { ($0.0.rawValue, $0.1) })
    }
}

extension NestedGuest.Behaviour {
    /// The bug a guest with this behaviour must be caught at, given enough
    /// traffic (nil: a correct guest, which must show none).
    public var expectedBug: GuestBug? {
        switch self {
        case .correct: nil
        case .forgetsInvalidate: .staleTranslation
        case .successWithoutMapping, .wrongPermissions: .successNotMapped
        case .slow: .lateAnswer
        case .forgetsMSI: .msiNotBound
        }
    }
}
