/// Little-endian byte encoding, as every faultring and IOMMU wire format
/// uses. One definition for the codecs, the guest encoders and the control
/// payloads.
public enum LittleEndian {
    /// The 4 bytes of `value`, least significant first.
    @inlinable public static func bytes(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    /// The 8 bytes of `value`, least significant first.
    @inlinable public static func bytes(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    /// The `UInt32` at `offset` of `bytes` (unaligned). The caller checks the length.
    @inlinable public static func uint32<C: Collection<UInt8>>(_ bytes: C, at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for (i, byte) in bytes.dropFirst(offset).prefix(4).enumerated() { value |= UInt32(byte) << (8 * i) }
        return value
    }
    /// The `UInt64` at `offset` of `bytes` (unaligned). The caller checks the length.
    @inlinable public static func uint64<C: Collection<UInt8>>(_ bytes: C, at offset: Int) -> UInt64 {
        UInt64(uint32(bytes, at: offset)) | UInt64(uint32(bytes, at: offset + 4)) << 32
    }
}
