//! A KTAP/TAP reader for the upstream selftests' output (`kselftest_harness.h`): the plan,
//! each top-level result with its SKIP/XFAIL directive, and what is missing when the output
//! stops early (a crash mid-run, a missing plan).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KtapResult {
    Ok,
    NotOk(NotOk),
    Skip(String),
}

/// A `not ok` result: what the program said about it, and the known kernel bug it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotOk {
    /// The diagnostic lines before it and its own directive (`not ok 3 - x # reason`).
    pub diag: String,
    /// `# symptom NAME: ...`: the program recognised the symptom of known kernel bug NAME
    /// (named as in kernels.toml), so the host may report the failure as that bug.
    pub symptom: Option<String>,
}

/// `symptom NAME: text` (or `symptom NAME`) → NAME.
fn symptom_in(directive: &str) -> Option<String> {
    let rest = directive.strip_prefix("symptom ")?;
    let name = rest.split([':', ' ']).next()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ktap {
    /// `1..N`, when the output had one.
    pub plan: Option<usize>,
    /// (test description, result), in order.
    pub results: Vec<(String, KtapResult)>,
    /// `Bail out!` reason.
    pub bailed: Option<String>,
    /// `# Totals: pass:…` line, kept for the report.
    pub totals: Option<String>,
}

impl Ktap {
    /// What is wrong with the stream itself (not with the tests): no plan, fewer results than
    /// planned, a bail-out.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match self.plan {
            None => p.push("no TAP plan (1..N) in the output".to_owned()),
            Some(n) if n != self.results.len() => p.push(format!(
                "the plan says {n} tests, the output has {} results",
                self.results.len()
            )),
            _ => {}
        }
        if let Some(b) = &self.bailed {
            p.push(format!("Bail out! {b}"));
        }
        p
    }
}

/// Parses top-level results; indented (nested) lines are diagnostics of the enclosing test.
pub fn parse(text: &str) -> Ktap {
    let mut k = Ktap::default();
    let mut last_diag: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.starts_with(' ') || line.starts_with('\t') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("1..") {
            if let Ok(n) = rest.split_whitespace().next().unwrap_or("").parse() {
                k.plan = Some(n);
            }
        } else if let Some(rest) = line.strip_prefix("Bail out!") {
            k.bailed = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("# Totals:") {
            k.totals = Some(rest.trim().to_owned());
        } else if let Some(d) = line.strip_prefix('#') {
            last_diag.push(d.trim().to_owned());
            if last_diag.len() > 12 {
                last_diag.remove(0);
            }
        } else if let Some((ok, rest)) = line
            .strip_prefix("not ok ")
            .map(|r| (false, r))
            .or_else(|| line.strip_prefix("ok ").map(|r| (true, r)))
        {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit()).trim();
            let (desc, directive) = match rest.split_once(" # ") {
                Some((d, dir)) => (d.trim(), Some(dir.trim())),
                None => (rest.trim_end_matches(" #").trim(), None),
            };
            let desc = desc.trim_start_matches("- ").to_owned();
            let result = match directive {
                Some(dir) if dir.to_ascii_uppercase().starts_with("SKIP") => {
                    KtapResult::Skip(dir[4..].trim().to_owned())
                }
                Some(dir) if dir.to_ascii_uppercase().starts_with("XFAIL") => KtapResult::Ok,
                _ if ok => KtapResult::Ok,
                _ => {
                    let mut diag = std::mem::take(&mut last_diag);
                    diag.extend(directive.map(str::to_owned));
                    KtapResult::NotOk(NotOk {
                        diag: diag.join("\n"),
                        symptom: directive.and_then(symptom_in),
                    })
                }
            };
            last_diag.clear();
            k.results.push((desc, result));
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `not ok` line's own reason is part of its diagnostic, and a reason that starts with
    /// `symptom NAME` names a known kernel bug.
    #[test]
    fn a_not_ok_reason_is_kept_and_may_name_a_symptom() {
        let k = parse(
            "TAP version 13\n1..3\n# before\nnot ok 1 - reg # symptom no-compat-ioctl: errno 25\n\
             not ok 2 - other # plain reason\nok 3 - x # SKIP nothing\n",
        );
        assert_eq!(
            k.results[0].1,
            KtapResult::NotOk(NotOk {
                diag: "before\nsymptom no-compat-ioctl: errno 25".into(),
                symptom: Some("no-compat-ioctl".into()),
            })
        );
        assert_eq!(
            k.results[1].1,
            KtapResult::NotOk(NotOk {
                diag: "plain reason".into(),
                symptom: None,
            })
        );
        assert_eq!(k.results[1].0, "other");
        assert_eq!(symptom_in("symptom"), None);
        assert_eq!(symptom_in("symptom x"), Some("x".into()));
    }

    #[test]
    fn kselftest_harness_output_parses() {
        let out = "TAP version 13\n1..3\n# Starting 3 tests from 1 test cases.\n#  RUN           user.enablement ...\n\
                   #            OK  user.enablement\nok 1 user.enablement\n#  RUN           user.flags ...\n\
                   # abi_test.c:120:flags:Expected 0 (0) == ioctl(...) (-1)\n#          FAIL  user.flags\nnot ok 2 user.flags\n\
                   ok 3 user.perf # SKIP perf not supported\n# FAILED: 1 / 3 tests passed.\n# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0\n";
        let k = parse(out);
        assert_eq!(k.plan, Some(3));
        assert_eq!(k.results[0], ("user.enablement".into(), KtapResult::Ok));
        match &k.results[1].1 {
            KtapResult::NotOk(n) => {
                assert!(n.diag.contains("abi_test.c:120"), "{n:?}");
                assert_eq!(n.symptom, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            k.results[2],
            (
                "user.perf".into(),
                KtapResult::Skip("perf not supported".into())
            )
        );
        assert!(k.problems().is_empty());
        assert_eq!(
            k.totals.as_deref(),
            Some("pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0")
        );
    }

    #[test]
    fn interrupted_output_and_a_missing_plan_are_problems() {
        let k = parse("TAP version 13\n1..4\nok 1 a\nok 2 b\n#  RUN  c ...\n");
        assert_eq!(
            k.problems(),
            ["the plan says 4 tests, the output has 2 results"]
        );
        let k = parse("ok 1 a\n");
        assert_eq!(k.problems(), ["no TAP plan (1..N) in the output"]);
        let k = parse("1..1\nBail out! no tracefs\n");
        assert!(k.problems().iter().any(|p| p.contains("no tracefs")));
    }
}
