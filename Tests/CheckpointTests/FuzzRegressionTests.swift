import Checkpoint
import Foundation
import Testing
import TestSupport

/// Inputs the fuzzers found (Tests/Fuzz/regressions), each refused with a message now.
struct FuzzRegressionTests {
    /// A header length above Int.max trapped converting UInt64 to Int.
    @Test func headerLengthAboveIntMax() throws {
        let src = TestData.packageRoot.appendingPathComponent("Tests/Fuzz/regressions/safetensors/header-length-above-int-max")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-regression-\(UUID().uuidString).safetensors")
        try FileManager.default.copyItem(at: src, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        #expect(throws: CheckpointError.badHeader(copy.path, reason: "the header claims 18446462598732841056 bytes (allowed: 2 to \(100 << 20))")) {
            _ = try SafeTensorsFile(path: copy.path)
        }
    }
}
