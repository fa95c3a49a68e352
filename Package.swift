// swift-tools-version:6.0
// internvl-chat: chat with Mini-InternVL-Chat-2B-V1-5 on the CPU, from a terminal.
//
// Imports run one way: C system libraries -> Kernels -> Checkpoint -> Model ; Tokenizer ;
// -> Chat -> the executable. Front ends (TUI, Conversations) see only ChatAPI, never the
// inference stack (Tests/PackageTests checks it). See docs/architecture.md.
import PackageDescription

/// Swift's checks (bounds, overflow, preconditions) stay on in every target that reads files, JSON,
/// images, user text or the network. Only the numeric kernels, whose sizes are validated before
/// they are called, drop them in release builds.
let unchecked: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
/// Kernels, models, imaging and the tokenizer are compiled optimised in debug builds too: the
/// test suite runs real models and images, which take minutes unoptimised.
let optimisedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
let hot: [SwiftSetting] = unchecked + optimisedInDebug

let package = Package(
    name: "internvl-chat",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "internvl-chat", targets: ["internvl-chat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C system libraries (Debian -dev packages; see README).
        .systemLibrary(name: "CNcursesw", path: "Sources/CNcursesw",
                       pkgConfig: "ncursesw", providers: [.apt(["libncursesw5-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG",
                       pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CSixel", path: "Sources/CSixel",
                       pkgConfig: "libsixel", providers: [.apt(["libsixel-dev"])]),
        .systemLibrary(name: "CSpng", path: "Sources/CSpng",
                       pkgConfig: "spng", providers: [.apt(["libspng-dev"])]),
        .systemLibrary(name: "CWebP", path: "Sources/CWebP",
                       pkgConfig: "libwebp", providers: [.apt(["libwebp-dev"])]),
        .systemLibrary(name: "CFFmpeg", path: "Sources/CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavutil-dev"])]),

        // The decode step's hot loops in C: bf16 / int8 / 4-bit matrix-vector products (AVX2 chosen at
        // run time) and a pool of worker threads kept hot within a step.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Tensor kernels: bf16/f16 conversion, matrix-vector, GEMM through OpenBLAS, norms, RoPE.
        .target(name: "Kernels", dependencies: ["COpenBLAS", "CKernels"], swiftSettings: hot),
        // Reading a named file as a regular file, once, within a size limit.
        .target(name: "FileInput"),
        // Images: decoding as Pillow, Pillow's bicubic resize, InternVL's dynamic tiling.
        .target(name: "Imaging", dependencies: ["FileInput", "CTurboJPEG", "CSpng", "CWebP"], swiftSettings: optimisedInDebug),
        // Videos: the container's facts, the model card's frame sampling, chosen frames as RGB
        // (FFmpeg's libraries; Swift's checks stay on: it reads untrusted files).
        .target(name: "Video", dependencies: ["CFFmpeg", "FileInput", "Imaging"]),
        // The checkpoint a user downloads: config.json, safetensors (single or sharded).
        .target(name: "Checkpoint", dependencies: ["Kernels", "FileInput"]),
        // SentencePiece BPE + InternLM2's added tokens, decoding and streaming detokenizer.
        .target(name: "Tokenizer", dependencies: ["FileInput"], swiftSettings: optimisedInDebug),
        // The networks: InternLM2, InternViT and the MLP projector.
        .target(name: "Model", dependencies: ["Kernels", "Checkpoint"], swiftSettings: optimisedInDebug),
        // What front ends and back ends exchange: the ChatBackend protocol, its events, attached
        // images, sampling parameters, statistics, the session snapshot. No inference code.
        .target(name: "ChatAPI", dependencies: ["Imaging", .product(name: "Crypto", package: "swift-crypto")]),
        // The local ChatBackend: prompt template, sampling, generation loop.
        .target(name: "Chat", dependencies: ["ChatAPI", "Model", "Kernels", "Tokenizer", "Checkpoint", "Imaging", "FileInput",
                                            .product(name: "Crypto", package: "swift-crypto")], swiftSettings: optimisedInDebug),
        // What a server asks of an engine: completion requests, events, errors, the
        // CompletionService protocol. No inference code.
        .target(name: "ServingAPI", dependencies: ["ChatAPI"]),
        // The engine's CompletionService: continuous batching over one ChatEngine.
        .target(name: "Serving", dependencies: ["ServingAPI", "ChatAPI", "Chat", "Model", "Imaging", "Tokenizer"]),
        // The OpenAI API's request body as a CompletionRequest, its error shape, the server's
        // options and limits: everything a hostile client's bytes reach before the engine.
        .target(name: "OpenAIAPI", dependencies: ["ServingAPI", "ChatAPI", "FileInput", "Imaging"]),
        // The OpenAI-compatible HTTP server (`serve`): routes, response JSON, SSE, limits,
        // errors, metrics. Talks to a CompletionService only.
        .target(name: "Server", dependencies: ["OpenAIAPI", "ServingAPI", "ChatAPI", .product(name: "Hummingbird", package: "hummingbird"),
                                              .product(name: "HummingbirdCore", package: "hummingbird"),
                                              .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                                              .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                                              .product(name: "NIOHTTP1", package: "swift-nio"),
                                              .product(name: "Prometheus", package: "swift-prometheus"),
                                              .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                              .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                                              .product(name: "Logging", package: "swift-log")]),
        // The ChatBackend over an OpenAI-compatible server (our `serve`, vLLM, LMDeploy): the
        // conversation kept here and resent each turn, answers streamed as server-sent events.
        .target(name: "RemoteBackend", dependencies: ["ChatAPI", "Imaging",
                                                     .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                     .product(name: "NIOCore", package: "swift-nio"),
                                                     .product(name: "NIOHTTP1", package: "swift-nio")]),
        // Saved conversations: the versioned on-disk format, crash-safe saving, locking, export.
        .target(name: "Conversations", dependencies: ["ChatAPI", "Imaging", "FileInput"]),
        // The full-screen app's pure core: state, update, layout, rendering into a cell grid.
        // It talks to a ChatBackend only: no Model, no Kernels.
        .target(name: "TUI", dependencies: ["ChatAPI", "Conversations", "Imaging", "FileInput", "Video", "CNcursesw", "CSixel",
                                           .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "internvl-chat",
            dependencies: ["ChatAPI", "Chat", "Conversations", "Model", "Tokenizer", "Checkpoint", "Imaging", "TUI", "FileInput",
                           "ServingAPI", "Serving", "OpenAIAPI", "Server", "Video",
                           "RemoteBackend",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Fixture paths and helpers shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "Model", "TestSupport"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        .testTarget(name: "VideoTests", dependencies: ["Video", "CFFmpeg", "Imaging", "TestSupport"]),
        .testTarget(name: "ChatAPITests", dependencies: ["ChatAPI", "Imaging"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Checkpoint", "Kernels", "Tokenizer", "Imaging", "TestSupport"]),
        .testTarget(name: "ChatTests", dependencies: ["compute-probe", "ChatAPI", "Chat", "Model", "Kernels", "Tokenizer", "Checkpoint", "Imaging", "TestSupport"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "ServingAPI", "ChatAPI", "Chat", "Imaging", "TestSupport"]),
        // Saves a conversation over and over, for the SIGKILL and disk-full tests.
        .executableTarget(name: "conversation-writer", dependencies: ["Conversations", "ChatAPI", "Imaging"],
                          path: "Tests/Tools/conversation-writer"),
        // libFuzzer harnesses for every parser of untrusted bytes (scripts/fuzz); built plainly,
        // it replays input files through a harness.
        .executableTarget(name: "internvl-fuzz", dependencies: ["Checkpoint", "Conversations", "Imaging", "Tokenizer", "OpenAIAPI"],
                          path: "Tests/Fuzz/internvl-fuzz"),
        // Runs turns beside a UI-tick-like task, for the compute-off-the-pool test.
        .executableTarget(name: "compute-probe", dependencies: ["Chat", "ChatAPI"], path: "Tests/Tools/compute-probe"),
        .testTarget(name: "ConversationsTests",
                    dependencies: ["Conversations", "ChatAPI", "Chat", "Model", "Imaging", "TestSupport", "conversation-writer"]),
        .testTarget(name: "TUITests", dependencies: ["TUI", "ChatAPI", "Imaging", "FileInput", "TestSupport"], exclude: ["__Snapshots__"]),
        .testTarget(name: "RemoteBackendTests", dependencies: ["RemoteBackend", "ChatAPI", "Imaging", "TestSupport",
                                                          .product(name: "AsyncHTTPClient", package: "async-http-client")],
                    exclude: ["openai_test_server.py"]),
        .testTarget(name: "CLITests", dependencies: ["internvl-chat", "TestSupport"]),
        // The target graph itself (front ends free of the inference stack).
        .testTarget(name: "ServerTests", dependencies: ["Server", "OpenAIAPI", "ServingAPI"]),
        .testTarget(name: "PackageTests", dependencies: ["TestSupport"]),
    ]
)
