/// Validates a whole fixture before anything runs: replay reads each file
/// once to the end (streaming, nothing kept) and only then starts, so a
/// malformed event at the end of a large capture never half-runs it.
public enum FixtureValidation {
    /// Reads `path` to the end. Returns the fixture and its event count.
    /// - Throws: the first `FixtureError` in the file.
    public static func validate(path: String) throws(FixtureError) -> (Fixture, Int) {
        var count = 0
        let fixture = try FixtureReader(path: path).read { _, _ in count += 1 }
        if let expected = fixture.expected {
            for group in expected.groups where group.event >= count {
                throw FixtureError(file: path, field: "expected.groups", "event \(group.event) does not exist (\(count) events)")
            }
        }
        return (fixture, count)
    }
}
