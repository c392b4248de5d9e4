/// A cache of translations, keyed by (tag, PASID, page): the IOTLB of a
/// domain (tag = DID or ASID) or one device's ATC (tag = the device id).
///
/// Invalidation follows the hardware's scopes: everything, a tag, a tag's
/// PASID, or an address range within a PASID. A range drops every cached
/// page that overlaps it, whatever the page's size. Bounded: when full,
/// the oldest entry is dropped (a cache may forget; it may never remember
/// wrongly).
public struct TranslationCache: Sendable {
    /// A cache key.
    public struct Key: Hashable, Sendable {
        /// DID, ASID or device id.
        public var tag: UInt32
        /// The PASID (substream).
        public var pasid: UInt32
        /// The page's input address (aligned to its size).
        public var page: UInt64
    }

    private var entries: [Key: Translation] = [:]
    private var order: [Key] = []
    /// At most this many entries.
    public let capacity: Int

    /// An empty cache of `capacity` entries.
    public init(capacity: Int = 4096) { self.capacity = capacity }

    /// Entries held.
    public var count: Int { entries.count }

    /// Whether `key` is cached.
    public func contains(_ key: Key) -> Bool { entries[key] != nil }

    /// The cached translation of `iova`, trying each leaf size.
    public func lookup(tag: UInt32, pasid: UInt32, iova: UInt64) -> Translation? {
        for size: UInt64 in [4096, 2 << 20, 1 << 30] {
            if let t = entries[Key(tag: tag, pasid: pasid, page: iova & ~(size - 1))], t.size == size { return t }
        }
        return nil
    }

    /// Caches `translation` under `tag` and `pasid`.
    public mutating func insert(_ translation: Translation, tag: UInt32, pasid: UInt32) {
        let key = Key(tag: tag, pasid: pasid, page: translation.iova)
        if entries.updateValue(translation, forKey: key) == nil {
            order.append(key)
            if order.count > capacity { entries.removeValue(forKey: order.removeFirst()) }
        }
    }

    /// Drops what matches: `tag` nil is every tag, `pasid` nil every PASID,
    /// `range` nil every address. Returns how many entries went.
    @discardableResult
    public mutating func invalidate(tag: UInt32? = nil, pasid: UInt32? = nil, range: ClosedRange<UInt64>? = nil) -> Int {
        let before = entries.count
        entries = entries.filter { key, t in
            if let tag, key.tag != tag { return true }
            if let pasid, key.pasid != pasid { return true }
            if let range, !(t.iova <= range.upperBound && range.lowerBound <= t.iova + (t.size - 1)) { return true }
            return false
        }
        if entries.count != before { order.removeAll { entries[$0] == nil } }
        return before - entries.count
    }
}
