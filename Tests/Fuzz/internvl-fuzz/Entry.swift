import Foundation

/// libFuzzer entry: the harness comes from $INTERNVL_FUZZ_HARNESS (scripts/fuzz sets it).
let selected: Harness? = ProcessInfo.processInfo.environment["INTERNVL_FUZZ_HARNESS"].flatMap(Harness.init)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let h = selected else { fatalError("set INTERNVL_FUZZ_HARNESS to one of \(Harness.allCases.map(\.rawValue))") }
    _ = h.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

#if !FUZZING
/// Without libFuzzer: `internvl-fuzz HARNESS FILE...` runs each file once through the harness
/// (the regression tests and reproducing a crash use this).
@main enum Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let harness = Harness(rawValue: name) else {
            FileHandle.standardError.write(Data("usage: internvl-fuzz \(Harness.allCases.map(\.rawValue).joined(separator: "|")) FILE...\n".utf8))
            exit(2)
        }
        var accepted = 0
        for path in args.dropFirst() {
            guard let d = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("cannot read \(path)\n".utf8)); exit(2)
            }
            if harness.run([UInt8](d)) { accepted += 1 }
        }
        Scratch.remove()
        print("ran \(args.count - 1) input(s) through \(harness.rawValue), \(accepted) accepted")
    }
}
#endif
