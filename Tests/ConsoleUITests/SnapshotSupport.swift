import XCTest
import Foundation
@testable import ConsoleUI

/// Compares a rendered grid with a reviewed text snapshot in Tests/ConsoleUITests/Snapshots.
/// Run with SNAPSHOT_RECORD=1 to (re)write snapshots, then review the diff before committing.
func assertSnapshot(_ grid: CellGrid, named name: String, file: StaticString = #filePath, line: UInt = #line) {
    let dir = URL(fileURLWithPath: "\(file)").deletingLastPathComponent().appendingPathComponent("Snapshots")
    let url = dir.appendingPathComponent(name + ".txt")
    // A frame shows where the grid ends (trailing spaces are trimmed).
    let border = "+" + String(repeating: "-", count: grid.width) + "+"
    let text = ([border] + grid.lines().map { "|" + $0 } + [border]).joined(separator: "\n") + "\n"
    if ProcessInfo.processInfo.environment["SNAPSHOT_RECORD"] == "1" {
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
            // A recording run never passes: review the snapshot, then run again without SNAPSHOT_RECORD.
            XCTFail("recorded snapshot \(name).txt; review it and run again without SNAPSHOT_RECORD", file: file, line: line)
        } catch {
            XCTFail("cannot write snapshot \(name).txt: \(error)", file: file, line: line)
        }
        return
    }
    guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
        XCTFail("missing snapshot \(name).txt (run with SNAPSHOT_RECORD=1 and review it)\n\(text)", file: file, line: line)
        return
    }
    if expected != text {
        XCTFail("snapshot \(name) differs:\n--- expected\n\(expected)\n--- actual\n\(text)", file: file, line: line)
    }
}
