//! A reader for what a libtest program (`cargo test` executables, libtest-mimic) says about
//! one test: its `--format json` events (libtest's unstable format) or its plain text
//! (`test NAME ... ok`, with the failure's captured output in a `---- NAME stdout ----`
//! section). The runner runs each test in a process of its own, so one result is wanted.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibtestResult {
    Ok,
    /// The test's captured output: its panic message and whatever it printed.
    Failed(String),
    /// `#[ignore = "reason"]`'s reason, empty without one.
    Ignored(String),
}

/// What the output says of `test`, JSON events first, then the text format; None when it
/// does not mention the test's result at all.
pub fn result_of(output: &str, test: &str) -> Option<LibtestResult> {
    json_result(output, test).or_else(|| text_result(output, test))
}

fn json_result(output: &str, test: &str) -> Option<LibtestResult> {
    for line in output.lines().filter(|l| l.trim_start().starts_with('{')) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] != "test" || v["name"] != test {
            continue;
        }
        let text = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        match v["event"].as_str() {
            Some("ok") => return Some(LibtestResult::Ok),
            Some("ignored") => return Some(LibtestResult::Ignored(text("message"))),
            Some("failed") | Some("timeout") => {
                let mut s = text("stdout");
                let m = text("message");
                if !m.is_empty() {
                    s = format!("{m}\n{s}");
                }
                return Some(LibtestResult::Failed(s));
            }
            _ => {}
        }
    }
    None
}

fn text_result(output: &str, test: &str) -> Option<LibtestResult> {
    let prefix = format!("test {test} ... ");
    let status = output.lines().find_map(|l| l.strip_prefix(&prefix))?.trim();
    if status == "ok" {
        return Some(LibtestResult::Ok);
    }
    if let Some(rest) = status.strip_prefix("ignored") {
        return Some(LibtestResult::Ignored(
            rest.trim_start_matches(',').trim().to_owned(),
        ));
    }
    if !status.starts_with("FAILED") {
        return None;
    }
    // The failure section: libtest writes `---- NAME stdout ----`, libtest-mimic `---- NAME ----`.
    let heads = [
        format!("---- {test} stdout ----"),
        format!("---- {test} ----"),
    ];
    let mut lines = output.lines();
    let mut body = Vec::new();
    if lines.any(|l| heads.iter().any(|h| l.trim() == h)) {
        for l in lines {
            if l.starts_with("---- ") || l.trim() == "failures:" {
                break;
            }
            body.push(l);
        }
    }
    Some(LibtestResult::Failed(body.join("\n").trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_FAIL: &str = "\nrunning 1 test\ntest tests::fails ... FAILED\n\nfailures:\n\n\
        ---- tests::fails stdout ----\n\nthread 'tests::fails' (63) panicked at src/lib.rs:4:26:\n\
        assertion `left == right` failed: one is not two\n  left: 1\n right: 2\n\n\nfailures:\n    \
        tests::fails\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 3 filtered out\n";

    #[test]
    fn the_text_format_gives_result_and_message() {
        let Some(LibtestResult::Failed(m)) = result_of(TEXT_FAIL, "tests::fails") else {
            panic!()
        };
        assert!(
            m.starts_with("thread 'tests::fails'") && m.ends_with("right: 2"),
            "{m}"
        );
        assert_eq!(
            result_of("test a::b ... ok\n", "a::b"),
            Some(LibtestResult::Ok)
        );
        assert_eq!(
            result_of("test a::b ... ignored, needs a thing\n", "a::b"),
            Some(LibtestResult::Ignored("needs a thing".into()))
        );
        assert_eq!(
            result_of("test a::b ... ignored\n", "a::b"),
            Some(LibtestResult::Ignored(String::new()))
        );
        // Another test's line, or none, is not this test's result.
        assert_eq!(result_of("test a::bc ... ok\n", "a::b"), None);
        assert_eq!(result_of("\nrunning 0 tests\n", "a::b"), None);
    }

    #[test]
    fn the_json_format_gives_result_and_message() {
        let out = r#"{ "type": "suite", "event": "started", "test_count": 1 }
{ "type": "test", "event": "started", "name": "tests::fails" }
{ "type": "test", "name": "tests::fails", "event": "failed", "stdout": "\nthread 'tests::fails' panicked at src/lib.rs:4:26:\none is not two\n" }
{ "type": "suite", "event": "failed", "passed": 0, "failed": 1 }
"#;
        let Some(LibtestResult::Failed(m)) = result_of(out, "tests::fails") else {
            panic!()
        };
        assert!(m.contains("one is not two"), "{m}");
        let ign =
            r#"{ "type": "test", "name": "t", "event": "ignored", "message": "needs a thing" }"#;
        assert_eq!(
            result_of(ign, "t"),
            Some(LibtestResult::Ignored("needs a thing".into()))
        );
        let ok = r#"{ "type": "test", "name": "t", "event": "ok" }"#;
        assert_eq!(result_of(ok, "t"), Some(LibtestResult::Ok));
        assert_eq!(result_of(ok, "u"), None);
    }
}
