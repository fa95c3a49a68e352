import Foundation
import OpenAIAPI
@testable import Server
import ServingAPI
import Testing

/// The Prometheus series `serve` exports, read from its registry as an exporter reads them, with
/// no `/metrics` request in between.
@Suite struct MetricsTests {
    /// A service that generates tokens when the test says so, and answers nothing.
    final class TokenSource: CompletionService, @unchecked Sendable {
        let modelName = "test-model"
        private let lock = NSLock()
        private var observers: [@Sendable (Int) -> Void] = []
        private var total = 0

        func complete(_ request: CompletionRequest) -> AsyncThrowingStream<CompletionEvent, any Error> {
            AsyncThrowingStream { $0.finish(throwing: CompletionError.engineFailure("no engine")) }
        }
        func status() async -> ServiceStatus { lock.withLock { ServiceStatus(queued: 0, active: 1, generatedTokens: total) } }
        func observeGeneratedTokens(_ observer: @escaping @Sendable (Int) -> Void) { lock.withLock { observers.append(observer) } }

        func generate(_ n: Int) {
            let all = lock.withLock { total += n; return observers }
            for observe in all { observe(n) }
        }
    }

    static func generatedTotal(_ server: OpenAIServer) -> String? {
        server.metrics.registry.emitToString().split(separator: "\n")
            .first { $0.hasPrefix("internvl_generated_tokens_total ") }.map { String($0.split(separator: " ")[1]) }
    }

    /// Tokens count as they are generated: two readings during one answer differ by what was
    /// generated between them.
    @Test func generatedTokensCountAsTheyAreMade() {
        let service = TokenSource()
        let server = OpenAIServer(service: service, options: ServerOptions())
        #expect(Self.generatedTotal(server) == "0")
        service.generate(1)
        service.generate(1)
        service.generate(1)
        #expect(Self.generatedTotal(server) == "3")
        service.generate(4)
        #expect(Self.generatedTotal(server) == "7")
    }
}
