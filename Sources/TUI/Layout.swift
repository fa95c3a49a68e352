/// Named rectangles for a terminal size; nil when the terminal is too small to be useful.
public struct Layout: Equatable, Sendable {
    public static let minWidth = 40, minHeight = 10

    public var conversation: Rect
    public var images: Rect          // a side panel when wide, else one line above the input
    public var input: Rect
    public var status: Rect

    /// `inputRows`: the rows the input's text wraps to; the input grows from two rows up to a
    /// third of the screen.
    public init?(width: Int, height: Int, inputRows: Int = 2) {
        guard width >= Self.minWidth, height >= Self.minHeight else { return nil }
        let rows = min(max(inputRows, 2), max(2, height / 3))
        status = Rect(x: 0, y: height - 1, width: width, height: 1)
        input = Rect(x: 0, y: height - 2 - rows, width: width, height: rows + 1)
        if width >= 100 {
            let panel = min(36, width / 3)
            images = Rect(x: width - panel, y: 0, width: panel, height: input.y)
            conversation = Rect(x: 0, y: 0, width: width - panel - 1, height: input.y)
        } else {
            images = Rect(x: 0, y: input.y - 1, width: width, height: 1)
            conversation = Rect(x: 0, y: 0, width: width, height: input.y - 1)
        }
    }

    /// The layout for `s`: its input's wrapped rows decide the input's height.
    public init?(_ s: AppState, width: Int, height: Int) {
        self.init(width: width, height: height, inputRows: Wrap.lines(s.input, width: max(width - 2, 1)).count)
    }
}
