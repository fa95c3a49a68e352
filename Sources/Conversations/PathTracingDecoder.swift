import Foundation

/// `Value` decoded through `PathTracingDecoder`: `JSONDecoder().decode(PathTraced<T>.self, ...)`
/// fails where decoding `T` fails, with the field's coding path also for a number its field
/// cannot hold.
struct PathTraced<Value: Decodable>: Decodable {
    let value: Value
    init(from decoder: any Decoder) throws { value = try Value(from: PathTracingDecoder(inner: decoder)) }
}

/// A decoder that hands every call to `inner` and gives a coding path to the errors that come
/// without one. Foundation's JSONDecoder reports a number out of its field's range (1e30 or
/// 99999999999999999999 for an Int, -5 for a UInt64, 2.5 for an Int) as "not valid JSON" with
/// no path, from an internal error thrown where the number is read; here that read is wrapped,
/// and the internal error becomes a `DecodingError.dataCorrupted` at the field, its description
/// `outOfRange` followed by the number as written.
struct PathTracingDecoder: Decoder {
    let inner: any Decoder
    var codingPath: [any CodingKey] { inner.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { inner.userInfo }

    static let outOfRange = "number out of its field's range: "

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed(inner: try inner.container(keyedBy: type)))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { Unkeyed(inner: try inner.unkeyedContainer()) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(inner: try inner.singleValueContainer()) }

    /// `read()`, its failure other than a `DecodingError` rethrown as one at `path`.
    static func number<T>(at path: [any CodingKey], _ read: () throws -> T) throws -> T {
        do { return try read() } catch let e as DecodingError { throw e } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: outOfRange + literal(in: error), underlyingError: error))
        }
    }

    /// The number the internal error quotes (`parsed: "1e30"`), or "" when it quotes none.
    static func literal(in error: any Error) -> String {
        let text = String(describing: error)
        guard let start = text.range(of: "parsed: \"") else { return "" }
        return String(text[start.upperBound...].prefix { "+-.0123456789eE".contains($0) }.prefix(40))
    }

    /// Types JSONDecoder reads by its own strategies (dates, data, URLs, decimals): handed over as
    /// they are, so that the strategies apply.
    static func readsItself<T>(_ type: T.Type) -> Bool {
        type == Date.self || type == Data.self || type == URL.self || type == Decimal.self
    }

    struct Index: CodingKey {
        var intValue: Int?
        var stringValue: String { "\(intValue ?? 0)" }
        init(_ i: Int) { intValue = i }
        init?(intValue: Int) { self.intValue = intValue }
        init?(stringValue: String) { return nil }
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let inner: KeyedDecodingContainer<Key>
        var codingPath: [any CodingKey] { inner.codingPath }
        var allKeys: [Key] { inner.allKeys }
        func contains(_ key: Key) -> Bool { inner.contains(key) }
        func decodeNil(forKey key: Key) throws -> Bool { try inner.decodeNil(forKey: key) }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try inner.decode(type, forKey: key) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try inner.decode(type, forKey: key) }
        func n<T>(_ key: Key, _ read: () throws -> T) throws -> T { try PathTracingDecoder.number(at: codingPath + [key], read) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try n(key) { try inner.decode(type, forKey: key) } }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            if PathTracingDecoder.readsItself(type) { return try inner.decode(type, forKey: key) }
            return try inner.decode(PathTraced<T>.self, forKey: key).value
        }
        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            KeyedDecodingContainer(Keyed<NestedKey>(inner: try inner.nestedContainer(keyedBy: type, forKey: key)))
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            Unkeyed(inner: try inner.nestedUnkeyedContainer(forKey: key))
        }
        func superDecoder() throws -> any Decoder { PathTracingDecoder(inner: try inner.superDecoder()) }
        func superDecoder(forKey key: Key) throws -> any Decoder { PathTracingDecoder(inner: try inner.superDecoder(forKey: key)) }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        var inner: any UnkeyedDecodingContainer
        var codingPath: [any CodingKey] { inner.codingPath }
        var count: Int? { inner.count }
        var isAtEnd: Bool { inner.isAtEnd }
        var currentIndex: Int { inner.currentIndex }
        mutating func decodeNil() throws -> Bool { try inner.decodeNil() }
        mutating func decode(_ type: Bool.Type) throws -> Bool { try inner.decode(type) }
        mutating func decode(_ type: String.Type) throws -> String { try inner.decode(type) }
        mutating func n<T>(_ read: (inout any UnkeyedDecodingContainer) throws -> T) throws -> T {
            let path = codingPath + [Index(currentIndex)]
            return try PathTracingDecoder.number(at: path) { try read(&inner) }
        }
        mutating func decode(_ type: Double.Type) throws -> Double { try n { try $0.decode(type) } }
        mutating func decode(_ type: Float.Type) throws -> Float { try n { try $0.decode(type) } }
        mutating func decode(_ type: Int.Type) throws -> Int { try n { try $0.decode(type) } }
        mutating func decode(_ type: Int8.Type) throws -> Int8 { try n { try $0.decode(type) } }
        mutating func decode(_ type: Int16.Type) throws -> Int16 { try n { try $0.decode(type) } }
        mutating func decode(_ type: Int32.Type) throws -> Int32 { try n { try $0.decode(type) } }
        mutating func decode(_ type: Int64.Type) throws -> Int64 { try n { try $0.decode(type) } }
        mutating func decode(_ type: UInt.Type) throws -> UInt { try n { try $0.decode(type) } }
        mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try n { try $0.decode(type) } }
        mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try n { try $0.decode(type) } }
        mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try n { try $0.decode(type) } }
        mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try n { try $0.decode(type) } }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            if PathTracingDecoder.readsItself(type) { return try inner.decode(type) }
            return try inner.decode(PathTraced<T>.self).value
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            KeyedDecodingContainer(Keyed<NestedKey>(inner: try inner.nestedContainer(keyedBy: type)))
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { Unkeyed(inner: try inner.nestedUnkeyedContainer()) }
        mutating func superDecoder() throws -> any Decoder { PathTracingDecoder(inner: try inner.superDecoder()) }
    }

    struct Single: SingleValueDecodingContainer {
        let inner: any SingleValueDecodingContainer
        var codingPath: [any CodingKey] { inner.codingPath }
        func decodeNil() -> Bool { inner.decodeNil() }
        func decode(_ type: Bool.Type) throws -> Bool { try inner.decode(type) }
        func decode(_ type: String.Type) throws -> String { try inner.decode(type) }
        func n<T>(_ read: () throws -> T) throws -> T { try PathTracingDecoder.number(at: codingPath, read) }
        func decode(_ type: Double.Type) throws -> Double { try n { try inner.decode(type) } }
        func decode(_ type: Float.Type) throws -> Float { try n { try inner.decode(type) } }
        func decode(_ type: Int.Type) throws -> Int { try n { try inner.decode(type) } }
        func decode(_ type: Int8.Type) throws -> Int8 { try n { try inner.decode(type) } }
        func decode(_ type: Int16.Type) throws -> Int16 { try n { try inner.decode(type) } }
        func decode(_ type: Int32.Type) throws -> Int32 { try n { try inner.decode(type) } }
        func decode(_ type: Int64.Type) throws -> Int64 { try n { try inner.decode(type) } }
        func decode(_ type: UInt.Type) throws -> UInt { try n { try inner.decode(type) } }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try n { try inner.decode(type) } }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try n { try inner.decode(type) } }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try n { try inner.decode(type) } }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try n { try inner.decode(type) } }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            if PathTracingDecoder.readsItself(type) { return try inner.decode(type) }
            return try inner.decode(PathTraced<T>.self).value
        }
    }
}
