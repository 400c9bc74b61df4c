//! Mutants of the kinds kernel regressions take, which universalmutator's token rules do
//! not make: a condition that gained or lost a flag test, a mask dropped, a counter no
//! longer moved, a list operation or a reference get/put removed, a copy one byte short or
//! long, a release (free, unpin, put) never made, an error swallowed. Each is one changed
//! line, like the tool's, so the same workbench builds, prunes and runs them
//! (`cargo xtask mutate --operators kernel`).

use std::sync::OnceLock;

use regex::Regex;

use super::generate::functions_by_line;
use super::MutantSpec;

/// One kind of kernel regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelOp {
    /// A flag test in a condition that always holds (the test was lost).
    FlagTestLost,
    /// A flag test in a condition that never holds (a contradicting test was gained).
    FlagTestNever,
    /// `x & MASK` outside a condition becomes `x`.
    MaskDropped,
    /// `n++;`, `n += 1;`, `atomic_inc(..);`: the count no longer moves.
    CounterSkipped,
    /// A list operation or a reference get/put statement removed.
    RefOpDropped,
    /// A free, unpin or put that gives something back, removed: a leak that grows per call.
    ReleaseDropped,
    /// A copy's size one short.
    CopyShort,
    /// A copy's size one long.
    CopyLong,
    /// `return -EXXX;` becomes `return 0;`.
    ErrorSwallowed,
}

impl KernelOp {
    pub const ALL: [KernelOp; 9] = [
        KernelOp::FlagTestLost,
        KernelOp::FlagTestNever,
        KernelOp::MaskDropped,
        KernelOp::CounterSkipped,
        KernelOp::RefOpDropped,
        KernelOp::ReleaseDropped,
        KernelOp::CopyShort,
        KernelOp::CopyLong,
        KernelOp::ErrorSwallowed,
    ];

    /// The name in a mutant's id.
    pub fn name(self) -> &'static str {
        match self {
            KernelOp::FlagTestLost => "flag-test-lost",
            KernelOp::FlagTestNever => "flag-test-never",
            KernelOp::MaskDropped => "mask-dropped",
            KernelOp::CounterSkipped => "counter-skipped",
            KernelOp::RefOpDropped => "ref-op-dropped",
            KernelOp::ReleaseDropped => "release-dropped",
            KernelOp::CopyShort => "copy-short",
            KernelOp::CopyLong => "copy-long",
            KernelOp::ErrorSwallowed => "error-swallowed",
        }
    }

    /// Every mutation of `line` this operator makes (each a whole new line).
    pub fn apply(self, line: &str) -> Vec<String> {
        let trimmed = line.trim_start();
        // Comments (a block comment's `* ` lines, not `*ptr += 1;`).
        let comment = ["//", "/*", "* ", "*/"]
            .iter()
            .any(|c| trimmed.starts_with(c))
            || trimmed.trim_end() == "*";
        if comment {
            return vec![];
        }
        let define = trimmed.starts_with('#');
        if define && self != KernelOp::MaskDropped {
            return vec![];
        }
        let indent = &line[..line.len() - trimmed.len()];
        let statement = |re: &Regex| -> Vec<String> {
            if re.is_match(trimmed) {
                vec![format!("{indent}(void)0; /* {} */", trimmed.trim_end())]
            } else {
                vec![]
            }
        };
        match self {
            KernelOp::FlagTestLost | KernelOp::FlagTestNever if is_condition(trimmed) => {
                let to = if self == KernelOp::FlagTestLost {
                    "1"
                } else {
                    "0"
                };
                replace_each(line, flag_test(), |_| to.to_owned())
            }
            KernelOp::MaskDropped if define || !is_condition(trimmed) => {
                // test_bit() has no mask to drop: it is left as it is (and so filtered out).
                replace_each(line, flag_test(), |c| {
                    c.name("value").map_or(&c[0], |v| v.as_str()).to_owned()
                })
            }
            KernelOp::CounterSkipped => statement(re(
                r"^([\w>.\-\[\]*]+(\+\+|--|\s*[+-]=\s*1)|(atomic|atomic64|refcount|percpu_counter)_(inc|dec|add|sub)\w*\(.*\));\s*$",
            )),
            KernelOp::RefOpDropped => statement(re(
                r"^(list_(add|del|move)\w*|hlist_(add|del)\w*|hash_(add|del)\w*|kref_(get|put)\w*|refcount_(inc|dec)\w*|user_event_(get|put)|user_event_mm_(get|put)|user_event_group_put|mmgrab|mmget\w*|get_task_struct)\(.*\);\s*$",
            )),
            KernelOp::ReleaseDropped => statement(re(
                r"^(kfree|kvfree|kmem_cache_free|vfree|free_page|__free_page|put_page|unpin_user_pages?\w*|mmdrop|mmput\w*|put_task_struct|fput|user_event_mm_destroy|user_event_enabler_destroy|destroy_user_event)\(.*\);\s*$",
            )),
            KernelOp::CopyShort | KernelOp::CopyLong if is_copy(trimmed) => {
                let by = if self == KernelOp::CopyShort {
                    "- 1"
                } else {
                    "+ 1"
                };
                replace_each(line, re(r"sizeof\((\*?[\w>.\-\[\]]+)\)"), |c| {
                    format!("({} {by})", &c[0])
                })
            }
            KernelOp::ErrorSwallowed => {
                replace_each(line, re(r"return -E[A-Z]+;"), |_| "return 0;".to_owned())
            }
            _ => vec![],
        }
    }
}

fn re(pattern: &'static str) -> &'static Regex {
    // One compiled regex per pattern, kept for the process.
    static CACHE: OnceLock<std::sync::Mutex<Vec<(&'static str, &'static Regex)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, r)) = c.iter().find(|(p, _)| *p == pattern) {
        return r;
    }
    let r: &'static Regex = Box::leak(Box::new(Regex::new(pattern).expect("a valid pattern")));
    c.push((pattern, r));
    r
}

/// `x & FLAG`, `x & ~(MAX-1)`, `x & 0xff`, or `test_bit(..)`; `value` is the tested value.
fn flag_test() -> &'static Regex {
    re(
        r"(?P<value>[A-Za-z_][\w]*(?:->\w+|\.\w+|\([\w>.\-]*\))*)\s*&\s*(?:~?\([A-Z][A-Z0-9_]{2,}\s*-\s*1\)|~?[A-Z][A-Z0-9_]{2,}|0x[0-9a-fA-F]+)|test_bit\([^()]*(?:\([^()]*\))?[^()]*\)",
    )
}

fn is_condition(line: &str) -> bool {
    ["if (", "while (", "&&", "||", " ? ", "return "]
        .iter()
        .any(|k| line.contains(k))
}

fn is_copy(line: &str) -> bool {
    re(r"\b(copy_\w+|memcpy|memmove|memset|strscpy|strncpy\w*|get_user|put_user)\(").is_match(line)
}

/// `line` with each match of `re` (one at a time) replaced by `with(captures)`.
fn replace_each(line: &str, re: &Regex, with: impl Fn(&regex::Captures) -> String) -> Vec<String> {
    re.captures_iter(line)
        .map(|c| {
            let m = c.get(0).expect("a whole match");
            format!("{}{}{}", &line[..m.start()], with(&c), &line[m.end()..])
        })
        .filter(|m| m != line)
        .collect()
}

/// Every kernel-operator mutant of `text` (the file `file`, relative to the tree).
pub fn mutants(file: &str, text: &str) -> Vec<MutantSpec> {
    let stem = std::path::Path::new(file)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let functions = functions_by_line(text);
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        for op in KernelOp::ALL {
            for (n, mutated) in op.apply(line).into_iter().enumerate() {
                out.push(MutantSpec {
                    id: format!("{stem}.k-{}.{}.{n}", op.name(), i + 1),
                    file: file.to_owned(),
                    line: i + 1,
                    function: functions[i].clone(),
                    original: line.to_owned(),
                    mutated,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(op: KernelOp, line: &str) -> Vec<String> {
        op.apply(line)
    }

    /// Lines of 6.12's trace_events_user.c, each with what an operator makes of it.
    #[test]
    fn each_operator_on_lines_of_the_real_source() {
        assert_eq!(
            one(
                KernelOp::FlagTestLost,
                "\tif (user->reg_flags & USER_EVENT_REG_PERSIST) {"
            ),
            ["\tif (1) {"]
        );
        assert_eq!(
            one(
                KernelOp::FlagTestNever,
                "\t\tif (test_bit(ENABLE_VAL_32_ON_64_BIT, flags))"
            ),
            ["\t\tif (0)"]
        );
        assert_eq!(
            one(
                KernelOp::FlagTestLost,
                "\tif (kreg->flags & ~(USER_EVENT_REG_MAX-1))"
            ),
            ["\tif (1)"]
        );
        assert_eq!(
            one(
                KernelOp::MaskDropped,
                "#define ENABLE_BIT(e) ((int)((e)->values & ENABLE_VAL_BIT_MASK))"
            ),
            ["#define ENABLE_BIT(e) ((int)((e)->values))"]
        );
        assert_eq!(
            one(
                KernelOp::MaskDropped,
                "\tenabler->values = orig->values & ENABLE_VAL_DUP_MASK;"
            ),
            ["\tenabler->values = orig->values;"]
        );
        assert!(one(KernelOp::MaskDropped, "\tif (status & EVENT_STATUS_FTRACE)").is_empty());
        assert!(one(
            KernelOp::MaskDropped,
            "\tx = test_bit(ENABLE_VAL_FAULTING_BIT, f);"
        )
        .is_empty());
        assert_eq!(
            one(KernelOp::CounterSkipped, "\t\tcurrent_user_events--;"),
            ["\t\t(void)0; /* current_user_events--; */"]
        );
        assert_eq!(
            one(KernelOp::CounterSkipped, "\t*attempt += 1;"),
            ["\t(void)0; /* *attempt += 1; */"]
        );
        assert_eq!(
            one(
                KernelOp::RefOpDropped,
                "\tlist_add_rcu(&enabler->mm_enablers_link, &mm->enablers);"
            ),
            ["\t(void)0; /* list_add_rcu(&enabler->mm_enablers_link, &mm->enablers); */"]
        );
        assert_eq!(
            one(KernelOp::RefOpDropped, "\t\tuser_event_put(user, false);").len(),
            1
        );
        assert_eq!(one(KernelOp::ReleaseDropped, "\tkfree(enabler);").len(), 1);
        assert_eq!(
            one(
                KernelOp::ReleaseDropped,
                "\tunpin_user_pages_dirty_lock(&page, 1, true);"
            )
            .len(),
            1
        );
        assert_eq!(
            one(
                KernelOp::CopyShort,
                "\tret = copy_struct_from_user(kreg, sizeof(*kreg), ureg, size);"
            ),
            ["\tret = copy_struct_from_user(kreg, (sizeof(*kreg) - 1), ureg, size);"]
        );
        assert_eq!(
            one(
                KernelOp::CopyLong,
                "\tmemset(&enabler, 0, sizeof(enabler));"
            ),
            ["\tmemset(&enabler, 0, (sizeof(enabler) + 1));"]
        );
        assert_eq!(
            one(KernelOp::ErrorSwallowed, "\t\treturn -EINVAL;"),
            ["\t\treturn 0;"]
        );
        // Comments and other preprocessor lines are left alone.
        assert!(one(KernelOp::ErrorSwallowed, " * return -EINVAL; when").is_empty());
        assert!(one(KernelOp::ErrorSwallowed, "#define X return -EINVAL;").is_empty());
    }

    #[test]
    fn mutants_are_one_changed_line_with_stable_ids() {
        let text = "static int f(void)\n{\n\tkfree(x);\n\treturn -ENOMEM;\n}\n";
        let m = mutants("kernel/trace/trace_events_user.c", text);
        let ids: Vec<&str> = m.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "trace_events_user.k-release-dropped.3.0",
                "trace_events_user.k-error-swallowed.4.0"
            ]
        );
        assert!(m.iter().all(|m| m.function == "f"));
        assert_eq!(
            m[1].apply(text).unwrap(),
            text.replace("return -ENOMEM;", "return 0;")
        );
    }
}
