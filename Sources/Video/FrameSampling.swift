/// Which frames of a video the model sees: the model card's `get_index`, one frame at the middle
/// of each of `segments` equal segments between the first and the last frame.
public enum FrameSampling {
    /// `get_index(bound, fps, max_frame, first_idx=0, num_segments)` of the model card, with
    /// `maxFrame` = frame count - 1. `bound` (seconds) limits the span; nil is the whole video.
    ///
    /// start = max(firstIndex, round(start * fps)), end = min(round(end * fps), maxFrame),
    /// segment = (end - start) / segments, index k = int(start + segment / 2 + round(segment * k))
    /// with Python's rounding (half to even) and truncation toward zero. An unknown rate (`fps` 0,
    /// where decord's reader gives NaN and get_index fails) spans all frames, as any known rate
    /// does without a bound; a bound needs a rate and is then ignored.
    public static func indices(maxFrame: Int, fps: Double, segments: Int, bound: (start: Double, end: Double)? = nil,
                               firstIndex: Int = 0) -> [Int] {
        precondition(segments > 0, "at least one segment")
        let known = fps > 0 && fps.isFinite
        let (start, end) = bound ?? (-100_000, 100_000)
        let startIndex = known ? max(Double(firstIndex), (start * fps).rounded(.toNearestOrEven)) : Double(firstIndex)
        let endIndex = known ? min((end * fps).rounded(.toNearestOrEven), Double(maxFrame)) : Double(maxFrame)
        let segment = (endIndex - startIndex) / Double(segments)
        return (0..<segments).map { k in
            Int((startIndex + segment / 2 + (segment * Double(k)).rounded(.toNearestOrEven)).rounded(.towardZero))
        }
    }
}

/// How the model card puts a video's frames in a question: `Frame1: <image>\nFrame2: <image>\n...`.
public enum FramePrompt {
    public static func prefix(frames: Int) -> String {
        (0..<frames).map { "Frame\($0 + 1): <image>\n" }.joined()
    }
}
