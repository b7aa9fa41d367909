import XCTest
import Foundation
@testable import ConsoleUI

/// The README's key tables are the dispatch table (SNAPSHOT_RECORD=1 rewrites them).
final class ReadmeKeysTests: XCTestCase {
    func testTheReadmeListsExactlyTheKeysTheConsoleHas() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let readme = try String(contentsOf: url, encoding: .utf8)
        let begin = "<!-- keys: generated from Bindings.all by `SNAPSHOT_RECORD=1 swift test --filter ReadmeKeys`; make test checks it -->\n"
        let end = "<!-- /keys -->"
        guard let a = readme.range(of: begin), let b = readme.range(of: end, range: a.upperBound..<readme.endIndex) else {
            return XCTFail("README.md lacks the key-table markers")
        }
        let expected = Bindings.markdown()
        let actual = String(readme[a.upperBound..<b.lowerBound])
        if actual != expected {
            if ProcessInfo.processInfo.environment["SNAPSHOT_RECORD"] == "1" {
                try (readme.replacingCharacters(in: a.upperBound..<b.lowerBound, with: expected)).write(to: url, atomically: true, encoding: .utf8)
                XCTFail("rewrote the README's key tables; review the diff")
            } else {
                XCTFail("the README's key tables differ from the console's; run SNAPSHOT_RECORD=1 swift test --filter ReadmeKeys\n\(expected)")
            }
        }
        // Every key the DESIGN contract names is in the table.
        for label in ["1", "2", "3", "4", "5", "Tab", "/", "Enter", "space", "s", "d", "D", "r", "?", "q", ":", "R", "F", "p"] {
            XCTAssertTrue(Bindings.all.contains { $0.label.split(separator: " ").contains(Substring(label)) }, label)
        }
    }
}
