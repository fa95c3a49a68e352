import Foundation

/// libFuzzer entry: the harness comes from $INTERNVL_FUZZ_HARNESS (scripts/fuzz sets it).
let selected: Harness? = ProcessInfo.processInfo.environment["INTERNVL_FUZZ_HARNESS"].flatMap(Harness.init)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let h = selected else { return 0 }      // fuzzMain refuses to start without one
    blackHole(h.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []))
    return 0
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links an executable's `main` to `<module>_main`: here that hands over to libFuzzer.
@_cdecl("internvl_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    // Checked before libFuzzer runs anything: failing inside the first input (the empty one)
    // would be reported as a crash and leave crash-da39a3ee... in the working folder.
    guard selected != nil else {
        FileHandle.standardError.write(Data("internvl-fuzz: set INTERNVL_FUZZ_HARNESS to one of \(Harness.allCases.map(\.rawValue).joined(separator: "|"))\n".utf8))
        return 2
    }
    var argc = argc, argv = argv
    return runFuzzerDriver(&argc, &argv) { fuzzOne($0, $1) }
}
#else
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
