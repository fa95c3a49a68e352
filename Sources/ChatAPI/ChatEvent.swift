/// What a chat backend reports while it works on a turn.
public enum ChatEvent: Sendable, Equatable {
    case phase(ChatPhase)
    /// An image is decoded and encoded (`attachStreaming`).
    case attached(AttachedImage)
    /// Stable text of the answer, in order; the chunks add up to the answer.
    case text(String)
    case finished(TurnStats)
    /// The turn failed; the session stays usable and unchanged.
    case failed(String)
    /// A saved conversation is back in the session: its images as attached now, in order.
    case restored([AttachedImage])
}

public enum ChatPhase: Sendable, Equatable {
    /// The model's weights are still loading; the request runs once they are in.
    case loadingModel
    case decodingImage(name: String)
    case encodingImage(layer: Int, of: Int)
    case prefill(done: Int, of: Int)
    case generating
}
