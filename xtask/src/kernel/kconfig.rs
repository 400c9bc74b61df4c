//! Kconfig fragments: parse them strictly, merge them on top of `tinyconfig`, and after
//! `olddefconfig` check that every option asked for really is set as asked. An option that
//! Kconfig silently dropped is the most common way a kernel test "passes" on the wrong kernel.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Without the `CONFIG_` prefix.
    pub option: String,
    /// `y`, `n`, a number or a quoted string, as written in `.config`.
    pub value: String,
    /// `file:line`, for messages.
    pub origin: String,
}

/// Parses one fragment. Comments and blank lines are allowed; anything else must be a
/// `.config` line, so a typo fails here instead of being ignored by Kconfig.
pub fn parse_fragment(text: &str, name: &str) -> anyhow::Result<Vec<Setting>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let origin = format!("{name}:{}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(opt) = rest.strip_suffix(" is not set") {
                check_name(opt, &origin)?;
                out.push(Setting {
                    option: opt.to_owned(),
                    value: "n".into(),
                    origin,
                });
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((lhs, value)) = line.split_once('=') else {
            bail!("{origin}: {line:?} is not a Kconfig setting (want CONFIG_NAME=value)");
        };
        let Some(opt) = lhs.strip_prefix("CONFIG_") else {
            bail!("{origin}: {lhs:?} does not start with CONFIG_");
        };
        check_name(opt, &origin)?;
        let ok_value = matches!(value, "y" | "n")
            || value.parse::<i64>().is_ok()
            || (value.starts_with("0x") && i64::from_str_radix(&value[2..], 16).is_ok())
            || (value.len() >= 2 && value.starts_with('"') && value.ends_with('"'));
        if value == "m" {
            bail!("{origin}: CONFIG_{opt}=m: the test VM loads no modules; use =y");
        }
        if !ok_value {
            bail!(
                "{origin}: CONFIG_{opt}={value}: the value must be y, n, a number or a \"string\""
            );
        }
        out.push(Setting {
            option: opt.to_owned(),
            value: value.to_owned(),
            origin,
        });
    }
    Ok(out)
}

fn check_name(opt: &str, origin: &str) -> anyhow::Result<()> {
    if opt.is_empty()
        || !opt
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("{origin}: {opt:?} is not a valid option name (upper case letters, digits and _)");
    }
    Ok(())
}

/// Merges fragments in order; the same option with two different values is an error that
/// names both places.
pub fn merge(fragments: &[(String, String)]) -> anyhow::Result<Vec<Setting>> {
    let mut by_opt: BTreeMap<String, Setting> = BTreeMap::new();
    let mut order = Vec::new();
    for (name, text) in fragments {
        for s in parse_fragment(text, name)? {
            if let Some(prev) = by_opt.get(&s.option) {
                if prev.value != s.value {
                    bail!(
                        "CONFIG_{} is {} at {} but {} at {}: fragments disagree",
                        s.option,
                        prev.value,
                        prev.origin,
                        s.value,
                        s.origin
                    );
                }
                continue;
            }
            order.push(s.option.clone());
            by_opt.insert(s.option.clone(), s);
        }
    }
    Ok(order
        .into_iter()
        .map(|o| by_opt.remove(&o).unwrap())
        .collect())
}

pub fn read_fragments(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("read config fragment {}", p.display()))?;
            Ok((
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                text,
            ))
        })
        .collect()
}

/// Rewrites `.config` text with the settings applied (replacing any earlier line for them).
pub fn apply(dot_config: &str, settings: &[Setting]) -> String {
    let touched: std::collections::HashSet<&str> =
        settings.iter().map(|s| s.option.as_str()).collect();
    let mut out: String = dot_config
        .lines()
        .filter(|l| line_option(l).is_none_or(|o| !touched.contains(o)))
        .map(|l| format!("{l}\n"))
        .collect();
    for s in settings {
        if s.value == "n" {
            out.push_str(&format!("# CONFIG_{} is not set\n", s.option));
        } else {
            out.push_str(&format!("CONFIG_{}={}\n", s.option, s.value));
        }
    }
    out
}

fn line_option(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("# CONFIG_") {
        return rest.strip_suffix(" is not set");
    }
    line.strip_prefix("CONFIG_")
        .and_then(|r| r.split_once('='))
        .map(|(o, _)| o)
}

/// Option → value in a `.config` (unset options map to "n").
pub fn parse_dot_config(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l
            .strip_prefix("# CONFIG_")
            .and_then(|r| r.strip_suffix(" is not set"))
        {
            m.insert(rest.to_owned(), "n".to_owned());
        } else if let Some((o, v)) = l.strip_prefix("CONFIG_").and_then(|r| r.split_once('=')) {
            m.insert(o.to_owned(), v.to_owned());
        }
    }
    m
}

/// What a kernel tree's Kconfig files say about an option: whether it exists, and its
/// `depends on` lines (for the message when Kconfig drops it).
pub trait KconfigLookup {
    fn lookup(&self, option: &str) -> Option<Vec<String>>;
}

/// Scans a source tree's Kconfig files (a few thousand small files; done only on failure).
pub struct TreeKconfig(pub PathBuf);

impl KconfigLookup for TreeKconfig {
    fn lookup(&self, option: &str) -> Option<Vec<String>> {
        let mut found = None;
        let mut stack = vec![self.0.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name();
                let name = name.to_string_lossy();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if !name.starts_with('.') && name != "out" && name != "Documentation" {
                        stack.push(p);
                    }
                } else if name.starts_with("Kconfig") {
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        if let Some(deps) = deps_in(&text, option) {
                            found.get_or_insert_with(Vec::new).extend(deps);
                        }
                    }
                }
            }
        }
        found
    }
}

/// If `text` defines `option`, its `depends on` lines.
pub fn deps_in(text: &str, option: &str) -> Option<Vec<String>> {
    let mut lines = text.lines().peekable();
    let mut found = None;
    while let Some(l) = lines.next() {
        let t = l.trim();
        if t == format!("config {option}") || t == format!("menuconfig {option}") {
            let deps = found.get_or_insert_with(Vec::new);
            while let Some(n) = lines.peek() {
                let nt = n.trim();
                if nt.starts_with("config ")
                    || nt.starts_with("menuconfig ")
                    || nt.starts_with("endmenu")
                    || nt.starts_with("if ")
                {
                    break;
                }
                lines.next();
                if let Some(d) = nt.strip_prefix("depends on ") {
                    // A dependency may continue over lines ending in a backslash.
                    let mut dep = d.trim_end_matches('\\').trim().to_owned();
                    let mut cont = nt.ends_with('\\');
                    while cont {
                        let Some(more) = lines.next() else { break };
                        let m = more.trim();
                        cont = m.ends_with('\\');
                        dep.push(' ');
                        dep.push_str(m.trim_end_matches('\\').trim());
                    }
                    deps.push(dep);
                }
            }
        }
    }
    found
}

/// Drops the options a kernel is listed without (`absent` in kernels.toml), refusing any that
/// the tree does define: a stale entry there must not silently weaken the check.
pub fn without_absent(
    settings: Vec<Setting>,
    absent: &[String],
    tree: &dyn KconfigLookup,
) -> anyhow::Result<Vec<Setting>> {
    for a in absent {
        if tree.lookup(a).is_some() {
            bail!("kernels.toml lists CONFIG_{a} as absent from this kernel, but its Kconfig defines it: remove it from `absent`");
        }
    }
    Ok(settings
        .into_iter()
        .filter(|s| !absent.contains(&s.option))
        .collect())
}

/// Checks the final `.config` against what the fragments asked for; one error lists every
/// option that is not as asked, each with the reason where it can be told.
pub fn validate(
    dot_config: &str,
    wanted: &[Setting],
    tree: &dyn KconfigLookup,
) -> anyhow::Result<()> {
    let have = parse_dot_config(dot_config);
    let mut problems = Vec::new();
    for s in wanted {
        let got = have.get(&s.option).map(String::as_str).unwrap_or("n");
        if got == s.value {
            continue;
        }
        let why = match tree.lookup(&s.option) {
            None => "no Kconfig file in this kernel defines it: check the spelling, or whether this kernel has the feature".to_owned(),
            Some(deps) if deps.is_empty() => "its dependencies or a `select` overrode it".to_owned(),
            Some(deps) => format!("it depends on: {}", deps.join(" && ")),
        };
        let got = if got == "n" {
            "not set".to_owned()
        } else {
            format!("={got}")
        };
        problems.push(format!(
            "  CONFIG_{}={} ({}) ended up {got}: {why}",
            s.option, s.value, s.origin
        ));
    }
    if !problems.is_empty() {
        bail!(
            "the kernel config is not what the fragments ask for:\n{}",
            problems.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct FakeTree;
    impl KconfigLookup for FakeTree {
        fn lookup(&self, option: &str) -> Option<Vec<String>> {
            match option {
                "USER_EVENTS" => Some(vec!["BROKEN || COMPILE_TEST".into()]),
                "FTRACE" => Some(vec![]),
                _ => None,
            }
        }
    }

    #[test]
    fn fragments_parse_strictly() {
        let s = parse_fragment(
            "# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=0x10\n",
            "f",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.option.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [("A", "y"), ("B", "n"), ("C", "\"x y\""), ("D", "0x10")]
        );
        assert_eq!(s[1].origin, "f:4");
        for (bad, what) in [
            ("CONFG_A=y", "does not start with CONFIG_"),
            ("CONFIG_A", "is not a Kconfig setting"),
            ("CONFIG_A=yes", "must be y, n"),
            ("CONFIG_A=m", "loads no modules"),
            ("CONFIG_a-b=y", "not a valid option name"),
        ] {
            let e = parse_fragment(bad, "x.config").unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("x.config:1"), "{bad}: {e}");
        }
    }

    #[test]
    fn merging_keeps_order_and_refuses_conflicts() {
        let m = merge(&[
            ("a".into(), "CONFIG_X=y\nCONFIG_Y=y\n".into()),
            ("b".into(), "CONFIG_Y=y\nCONFIG_Z=1\n".into()),
        ])
        .unwrap();
        assert_eq!(
            m.iter().map(|s| s.option.as_str()).collect::<Vec<_>>(),
            ["X", "Y", "Z"]
        );
        let e = merge(&[
            ("a".into(), "CONFIG_X=y\n".into()),
            ("b".into(), "# CONFIG_X is not set\n".into()),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CONFIG_X is y at a:1 but n at b:1: fragments disagree"
        );
    }

    #[test]
    fn apply_replaces_earlier_lines() {
        let settings = parse_fragment("CONFIG_A=y\n# CONFIG_B is not set\n", "f").unwrap();
        let out = apply("CONFIG_B=y\n# CONFIG_A is not set\nCONFIG_C=y\n", &settings);
        assert_eq!(out, "CONFIG_C=y\nCONFIG_A=y\n# CONFIG_B is not set\n");
    }

    #[test]
    fn validation_names_the_dropped_option_and_why() {
        let wanted = parse_fragment(
            "CONFIG_USER_EVENTS=y\nCONFIG_FTRACE=y\nCONFIG_USER_EVNTS=y\nCONFIG_OK=y\n",
            "ue.config",
        )
        .unwrap();
        let e = validate(
            "CONFIG_OK=y\n# CONFIG_USER_EVENTS is not set\n",
            &wanted,
            &FakeTree,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CONFIG_USER_EVENTS=y (ue.config:1) ended up not set: it depends on: BROKEN || COMPILE_TEST"), "{e}");
        assert!(
            e.contains("CONFIG_FTRACE=y (ue.config:2) ended up not set: its dependencies"),
            "{e}"
        );
        assert!(
            e.contains("CONFIG_USER_EVNTS=y (ue.config:3) ended up not set: no Kconfig file"),
            "{e}"
        );
        assert!(!e.contains("CONFIG_OK"), "{e}");
        validate(
            "CONFIG_USER_EVENTS=y\nCONFIG_FTRACE=y\nCONFIG_USER_EVNTS=y\nCONFIG_OK=y\n",
            &wanted,
            &FakeTree,
        )
        .unwrap();
    }

    #[test]
    fn absent_options_are_dropped_only_where_no_kconfig_defines_them() {
        let s = parse_fragment("CONFIG_PROC_SYSCTL=y\nCONFIG_OK=y\n", "b").unwrap();
        let kept = without_absent(s.clone(), &["PROC_SYSCTL".into()], &FakeTree).unwrap();
        assert_eq!(
            kept.iter().map(|s| s.option.as_str()).collect::<Vec<_>>(),
            ["OK"]
        );
        let e = without_absent(s, &["FTRACE".into()], &FakeTree)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CONFIG_FTRACE as absent") && e.contains("defines it"),
            "{e}"
        );
    }

    #[test]
    fn continued_dependencies_are_read_whole() {
        let text = "config KASAN\n\tbool \"KASAN\"\n\tdepends on (HAVE_ARCH_KASAN && CC_HAS_KASAN_GENERIC) || \\\n\t\t   (HAVE_ARCH_KASAN_SW_TAGS && CC_HAS_KASAN_SW_TAGS)\n\tdepends on SYSFS && !SLUB_TINY\n";
        assert_eq!(
            deps_in(text, "KASAN").unwrap(),
            ["(HAVE_ARCH_KASAN && CC_HAS_KASAN_GENERIC) || (HAVE_ARCH_KASAN_SW_TAGS && CC_HAS_KASAN_SW_TAGS)", "SYSFS && !SLUB_TINY"]
        );
    }

    #[test]
    fn kconfig_dependencies_are_read_from_the_definition() {
        let text = "config USER_EVENTS\n\tbool \"x\"\n\tdepends on BROKEN || COMPILE_TEST\n\tselect TRACING\n\nconfig OTHER\n\tdepends on NOPE\n";
        assert_eq!(
            deps_in(text, "USER_EVENTS").unwrap(),
            ["BROKEN || COMPILE_TEST"]
        );
        assert_eq!(deps_in(text, "MISSING"), None);
    }

    #[test]
    fn shipped_fragments_are_valid_and_consistent() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs");
        let mut all = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "config") {
                all.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
                parse_fragment(&all.last().unwrap().1, &p.display().to_string()).unwrap();
            }
        }
        assert!(all.len() >= 2, "base and user_events fragments are shipped");
    }
}
