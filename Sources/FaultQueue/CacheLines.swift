/// Private memory on cache lines of its own.
///
/// A producer's and a consumer's cursors are written on every record by two
/// different cores. Allocated side by side by malloc they could share a
/// line, and each side's writes would then steal the other's line on every
/// record (false sharing). 128 bytes, because Intel's adjacent-line
/// prefetcher fetches lines in pairs.
enum CacheLines {
    static let size = 128

    /// Memory for one `T`, initialised to `value`, on lines no other
    /// allocation shares. Free it with `free`.
    static func allocate<T>(_ value: T) -> UnsafeMutablePointer<T> {
        let bytes = (MemoryLayout<T>.stride + size - 1) / size * size
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: size)
        return raw.initializeMemory(as: T.self, repeating: value, count: 1)
    }

    /// Deinitialises and frees what `allocate` returned.
    static func free<T>(_ pointer: UnsafeMutablePointer<T>) {
        pointer.deinitialize(count: 1)
        UnsafeMutableRawPointer(pointer).deallocate()
    }
}
