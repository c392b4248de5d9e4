/// A storm profile of either kind, as `StormProfileReader.readAny` finds it:
/// the key `vsva` at the top level makes a vSVA storm.
public enum StormPlan: Sendable, Hashable {
    /// An arrival storm: a schedule of page requests against consumers (`StormProfile`).
    case arrivals(StormProfile)
    /// A storm of vSVA sessions: DMA devices against guests that map (`VSVAStormProfile`).
    case vsva(VSVAStormProfile)

    /// The profile's name.
    public var name: String {
        switch self {
        case .arrivals(let p): p.name
        case .vsva(let p): p.name
        }
    }
}
