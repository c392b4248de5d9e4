import FaultABI

/// A device socket's error packet `{u32 cookie; i32 errno}` (8 bytes,
/// little-endian): the socket's stand-in for the kernel's EINVAL when a
/// page response names a cookie the device does not know (PROTOCOL.md,
/// device sources).
///
/// It travels on the fault socket the other way from page requests, whose
/// packets are whole multiples of 40 bytes, so a reader tells the two apart
/// by length alone.
public struct DeviceRefusal: Sendable, Hashable {
    /// Bytes per packet.
    public static let size = 8
    /// The cookie of the refused response, as the service wrote it.
    public var cookie: UInt32
    /// Why it was refused: a positive errno (EINVAL today).
    public var error: Int32

    /// A refusal of the response for `cookie` with `error`.
    public init(cookie: UInt32, error: Int32) {
        self.cookie = cookie
        self.error = error
    }

    /// Decodes the packet at `bytes` (at least `size` bytes).
    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= Self.size, "a device refusal is \(Self.size) bytes")
        cookie = LittleEndian.uint32(bytes, at: 0)
        error = Int32(bitPattern: LittleEndian.uint32(bytes, at: 4))
    }

    /// The 8 bytes, little-endian.
    public var bytes: [UInt8] { LittleEndian.bytes(cookie) + LittleEndian.bytes(UInt32(bitPattern: error)) }
}
