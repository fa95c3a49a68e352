import Foundation

/// A flag another thread can raise while the session computes (the actor is busy then, so
/// cancelling must not wait in its queue).
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    public init() {}
    public func raise() { lock.lock(); raised = true; lock.unlock() }
    public func reset() { lock.lock(); raised = false; lock.unlock() }
    public var isRaised: Bool { lock.lock(); defer { lock.unlock() }; return raised }
}
