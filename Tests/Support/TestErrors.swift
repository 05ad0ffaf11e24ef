/// A recognisable injected failure with an identity, so a test can tell which error came out.
package struct TestError: Error, Hashable, CustomStringConvertible {
  package var id: Int
  package init(id: Int) { self.id = id }
  package init(_ id: Int) { self.id = id }
  package var description: String { "TestError(\(id))" }
}

/// A recognisable injected failure that carries a name.
package struct NamedTestError: Error, Hashable, CustomStringConvertible {
  package var name: String
  package init(_ name: String) { self.name = name }
  package var description: String { "NamedTestError(\(name))" }
}
