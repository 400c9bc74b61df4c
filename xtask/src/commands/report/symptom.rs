//! A failure's symptom: the one line that two failures of the same cause share, so that one
//! kernel bug failing twenty trials reads as one line. This works on the message's words by
//! definition: results.json keeps a failure as its words alone (its cause reads back as
//! `Unrecorded`), and what a person recognises a bug by is the splat's or the check's line.

/// What the harness writes before a splat: `kernel console reported Warning:` and the
/// console's lines under it (harness::verdict).
const SPLAT_HEAD: &str = "kernel console reported ";

/// The symptom of a failure message: the splat's first line when the kernel console reported
/// trouble, else the first line that says something (a kselftest's `Starting N tests` and
/// `RUN` banners name no cause), normalised so that two runs of one bug read alike.
pub fn of(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let line = if first.starts_with(SPLAT_HEAD) {
        // The splat's own first line (`WARNING: CPU: 0 PID: 35 at ...`), or the header alone
        // when the console's lines were not kept.
        lines.next().unwrap_or(first)
    } else {
        std::iter::once(first)
            .chain(lines)
            .find(|l| !is_banner(l))
            .unwrap_or(first)
    };
    normalise(line)
}

/// kselftest harness banners that precede the assertion that failed.
fn is_banner(line: &str) -> bool {
    (line.starts_with("Starting ") && line.contains(" tests from ")) || line.starts_with("RUN ")
}

/// Strips what differs between two runs of the same failure: the console timestamp, paths'
/// folders (a build's cache key), addresses and other hex, and free-standing numbers (pids,
/// CPUs, milliseconds waited, line numbers); names with digits in them (`E2BIG`, `ue_x_1`)
/// stay.
pub fn normalise(line: &str) -> String {
    let line = strip_timestamp(line);
    let mut out = Vec::new();
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        // A path keeps its file name: `/root/.cache/.../abi_test.c:265:flags:...`.
        let word = match word.rfind('/') {
            Some(at) if word.starts_with('/') || word.starts_with("./") => &word[at + 1..],
            _ => word,
        };
        // A kselftest assertion names its file, line and test before what failed
        // (`abi_test.c:265:flags:Expected`): the file stays, the test's own name goes, so
        // that every test of a program failing the same call reads as one symptom.
        if let Some(c) = KSELFTEST_AT.captures(word) {
            out.push(format!("{}:", &c[1]));
            out.push(numbers_out(&c[2]));
            continue;
        }
        out.push(numbers_out(word));
    }
    out.join(" ")
}

static KSELFTEST_AT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^([\w.-]+\.c):\d+:\w+:(.+)$").expect("a valid regex")
});

/// `[    2.300108] BUG: ...` → `BUG: ...`.
fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let inside = rest[..end].trim();
            if !inside.is_empty() && inside.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return rest[end + 1..].trim_start();
            }
        }
    }
    t
}

/// Each run of digits (or hex: `0x...`, or eight hex digits and more) standing alone, not
/// part of a name (letters or `_` next to it), becomes `N`.
fn numbers_out(word: &str) -> String {
    let b: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_name = |c: char| c.is_ascii_alphabetic() || c == '_';
    while i < b.len() {
        let before_is_name = i > 0 && is_name(b[i - 1]);
        if before_is_name && b[i].is_ascii_alphanumeric() {
            // Inside a name (`u32`, `E2BIG`, `ue_x_12`): its digits are part of it.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                out.push(b[i]);
                i += 1;
            }
            continue;
        }
        if !before_is_name && b[i] == '0' && b.get(i + 1) == Some(&'x') {
            let mut j = i + 2;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
            if j > i + 2 {
                out.push('N');
                i = j;
                continue;
            }
        }
        if !before_is_name && b[i].is_ascii_hexdigit() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
            let run = &b[i..j];
            let after_is_name = j < b.len() && is_name(b[j]);
            let digits = run.iter().all(char::is_ascii_digit);
            let long_hex = run.len() >= 8 && run.iter().any(char::is_ascii_digit);
            if !after_is_name && (digits || long_hex) {
                out.push('N');
                i = j;
                continue;
            }
            // A word that starts with hex letters (`failed`, `abi`): copy it whole.
            while i < j {
                out.push(b[i]);
                i += 1;
            }
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_splat_is_its_first_line_without_what_varies() {
        let m = "kernel console reported Warning:\n    [    1.018028] WARNING: CPU: 0 PID: 35 at include/linux/uaccess.h:394 user_events_ioctl+0x98/0x344\n    [    1.018798] CPU: 0 UID: 0 PID: 35 Comm: ue-scenarios";
        assert_eq!(
            of(m),
            "WARNING: CPU: N PID: N at include/linux/uaccess.h:N user_events_ioctl+N/N"
        );
        let other_pid = m
            .replace("PID: 35 at", "PID: 41 at")
            .replace("1.018028", "3.2");
        assert_eq!(of(m), of(&other_pid));
        assert_eq!(
            of("kernel console reported Bug:\n    [    2.300108] BUG: kernel NULL pointer dereference, address: 0000000000000000"),
            "BUG: kernel NULL pointer dereference, address: N"
        );
    }

    #[test]
    fn a_check_is_its_first_line_that_says_something() {
        assert_eq!(
            of("Starting 6 tests from 1 test cases.\nRUN           user.bit_sizes ...\n/root/.cache/ue-harness/builds/ca76df30bbf1382f/src/tools/testing/selftests/user_events/abi_test.c:277:bit_sizes:Expected 0 (0) == reg_enable(&self->check, sizeof(int), 0) (-1)\nbit_sizes: Test terminated by assertion"),
            "abi_test.c: Expected N (N) == reg_enable(&self->check, sizeof(int), N) (-N)"
        );
        assert_eq!(
            of("DIAG_IOCSREG \"ue_basic__write_reaches_trace_1 u32 count;u64 big\": E2BIG(7)"),
            "DIAG_IOCSREG \"ue_basic__write_reaches_trace_1 u32 count;u64 big\": E2BIG(N)"
        );
        assert_eq!(
            of("event removed after the last reference went: not seen within 2004 ms"),
            of("event removed after the last reference went: not seen within 2000 ms"),
        );
        assert_eq!(of("u32 a"), "u32 a");
        assert_eq!(of("exited with status 1"), "exited with status N");
        assert_eq!(of("deadbeef failed"), "deadbeef failed");
    }
}
