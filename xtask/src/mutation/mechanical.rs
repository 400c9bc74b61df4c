//! Mechanical mutants of the user_events source, made by an established tool
//! (universalmutator, from PyPI, installed into the cache), not by the people who wrote the
//! scenarios: generated once per source and tool version, selected (by function, a seeded
//! sample, a shard), pruned (does not compile; object code identical to the unmutated build),
//! and classified from a boot of the suite and, apart, the upstream selftests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::sys::host_tools;
use crate::sys::progress::Progress;

/// The files whose mutants are made, relative to the kernel tree.
pub const TARGETS: [&str; 2] = [
    "kernel/trace/trace_events_user.c",
    "include/linux/user_events.h",
];

/// universalmutator's version, pinned so a cached set of mutants stays the same set.
pub const TOOL_VERSION: &str = "1.14.1";

/// The functions that carry the ABI's hard questions: the enabler write and its fault
/// handling, the mm's duplication on fork and removal on exit/exec, and REG/UNREG. Their
/// score is reported apart from the whole file's.
pub const KEY_FUNCTIONS: &[&str] = &[
    "user_event_enabler_write",
    "user_event_enabler_fault_fixup",
    "user_event_enabler_queue_fault",
    "user_event_mm_fault_in",
    "user_event_enabler_update",
    "user_event_enabler_dup",
    "user_event_mm_dup",
    "user_event_mm_remove",
    "user_event_mm_destroy",
    "user_event_mm_release",
    "user_event_mm_get_all",
    "user_event_mm_attach",
    "user_event_mm_alloc",
    "user_event_mm_get",
    "user_event_mm_put",
    "user_event_enabler_create",
    "user_event_enabler_destroy",
    "user_event_enabler_exists",
    "user_event_mm_clear_bit",
    "user_events_fork",
    "user_events_exit",
    "user_events_execve",
    "user_events_ioctl_reg",
    "user_events_ioctl_unreg",
    "user_reg_get",
    "user_unreg_get",
    "current_user_event_enabler_exists",
    "user_event_last_ref",
];

/// One mutant: one line of one file changed by one of the tool's rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MutantSpec {
    /// `<file stem>.<the tool's number>`, stable for a source and tool version.
    pub id: String,
    /// Relative to the kernel tree.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// The function the line is in, or `(file scope)`.
    pub function: String,
    pub original: String,
    pub mutated: String,
}

impl MutantSpec {
    /// The mutated file's text.
    pub fn apply(&self, original_text: &str) -> anyhow::Result<String> {
        let mut lines: Vec<&str> = original_text.split('\n').collect();
        let Some(l) = lines.get_mut(self.line - 1) else {
            bail!(
                "{}: line {} is past the end of {}",
                self.id,
                self.line,
                self.file
            )
        };
        if *l != self.original {
            bail!(
                "{}: line {} of {} is not what the mutant was made from",
                self.id,
                self.line,
                self.file
            );
        }
        *l = &self.mutated;
        Ok(lines.join("\n"))
    }

    /// A unified diff of the one line, with `context` lines around it, for reports.
    pub fn diff(&self, original_text: &str, context: usize) -> String {
        let lines: Vec<&str> = original_text.split('\n').collect();
        let at = self.line - 1;
        let from = at.saturating_sub(context);
        let to = (at + context + 1).min(lines.len());
        let mut s = format!(
            "--- a/{0}\n+++ b/{0}\n@@ -{1},{2} +{1},{2} @@ {3}\n",
            self.file,
            from + 1,
            to - from,
            self.function
        );
        for (i, l) in lines[from..to].iter().enumerate() {
            if from + i == at {
                s.push_str(&format!("-{l}\n+{}\n", self.mutated));
            } else {
                s.push_str(&format!(" {l}\n"));
            }
        }
        s
    }
}

/// Which function each line is in. Kernel style: a definition starts at column 0 and its
/// body opens with `{` alone at column 0 and closes with `}` at column 0.
pub fn functions_by_line(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = vec!["(file scope)".to_owned(); lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "{" {
            // The definition is the nearest line above at column 0 that names a call.
            let name = (0..i)
                .rev()
                .take(8)
                .map(|k| lines[k])
                .find(|l| l.contains('(') && !l.starts_with([' ', '\t', '#', '/', '*']))
                .and_then(|l| l.split('(').next())
                .and_then(|head| {
                    head.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .rfind(|w| !w.is_empty())
                })
                .unwrap_or("(unnamed)")
                .to_owned();
            let end = (i + 1..lines.len())
                .find(|&k| lines[k].starts_with('}'))
                .unwrap_or(lines.len() - 1);
            for slot in out.iter_mut().take(end + 1).skip(i) {
                *slot = name.clone();
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The tool, installed into the cache (a Python virtual environment of its own); the only
/// thing installed outside the cache is a missing `python3`/`python3-venv`, with apt-get.
pub fn tool(cache: &Path, allow_install: bool, progress: &mut Progress) -> anyhow::Result<PathBuf> {
    let venv = cache
        .join("tools")
        .join(format!("universalmutator-{TOOL_VERSION}"));
    let mutate = venv.join("bin/mutate");
    // Written last: a venv without it is an interrupted install, made again.
    let installed = venv.join("INSTALLED");
    if installed.is_file() && mutate.is_file() {
        return Ok(mutate);
    }
    host_tools::ensure_tools(
        cache,
        &[&host_tools::PYTHON3],
        allow_install,
        host_tools::Need::Package,
    )?;
    progress.note(&format!(
        "installing universalmutator {TOOL_VERSION} from PyPI into {}",
        venv.display()
    ));
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(venv.parent().unwrap_or(cache))?;
    let make_venv = || {
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
    };
    let mut out = make_venv().context("run python3 -m venv")?;
    if !out.status.success() {
        host_tools::ensure_tools(
            cache,
            &[&host_tools::PYTHON3_VENV],
            allow_install,
            host_tools::Need::Package,
        )?;
        let _ = std::fs::remove_dir_all(&venv);
        out = make_venv().context("run python3 -m venv")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&venv);
            bail!(
                "python3 -m venv failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("universalmutator=={TOOL_VERSION}"),
        ])
        .output()
        .context("run pip")?;
    if !pip.status.success() || !mutate.is_file() {
        let _ = std::fs::remove_dir_all(&venv);
        bail!(
            "pip install universalmutator=={TOOL_VERSION} failed (is PyPI reachable?): {}",
            String::from_utf8_lossy(&pip.stderr).trim()
        );
    }
    std::fs::write(&installed, TOOL_VERSION)?;
    Ok(mutate)
}

/// Every mutant the tool makes of `file` (relative to `tree`), cached under `dir` by the
/// file's content and the tool's version.
pub fn generate(
    mutate: &Path,
    tree: &Path,
    file: &str,
    dir: &Path,
    progress: &mut Progress,
) -> anyhow::Result<Vec<MutantSpec>> {
    let text = std::fs::read_to_string(tree.join(file))
        .with_context(|| format!("read {}", tree.join(file).display()))?;
    let mut key = crate::cache::KeyBuilder::new("universalmutator");
    key.part("version", TOOL_VERSION.as_bytes())
        .part("file", file.as_bytes())
        .part("text", text.as_bytes());
    let list = dir.join(format!("{}.json", key.finish()));
    if let Some(specs) = std::fs::read(&list)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        return Ok(specs);
    }
    progress.note(&format!(
        "generating mutants of {file} with universalmutator {TOOL_VERSION}"
    ));
    let work = tempfile_dir(dir)?;
    let name = Path::new(file)
        .file_name()
        .context("a target file has no name")?;
    std::fs::write(work.join(name), &text)?;
    let out = Command::new(mutate)
        .current_dir(&work)
        .arg(name)
        .args(["c", "--noCheck", "--mutantDir", "m"])
        .output()
        .context("run universalmutator's mutate")?;
    if !out.status.success() {
        bail!(
            "mutate {file} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stem = Path::new(file)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let functions = functions_by_line(&text);
    let originals: Vec<&str> = text.split('\n').collect();
    let mut specs = Vec::new();
    for e in std::fs::read_dir(work.join("m"))?.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        // <stem>.mutant.<n>.<ext>
        let Some(n) = fname
            .split(".mutant.")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let mutated = std::fs::read_to_string(e.path())?;
        let lines: Vec<&str> = mutated.split('\n').collect();
        if lines.len() != originals.len() {
            continue; // a rule that adds or removes lines: not a one-line mutant
        }
        let changed: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i] != originals[i])
            .collect();
        let [i] = changed[..] else { continue };
        specs.push(MutantSpec {
            id: format!("{stem}.{n}"),
            file: file.to_owned(),
            line: i + 1,
            function: functions[i].clone(),
            original: originals[i].to_owned(),
            mutated: lines[i].to_owned(),
        });
    }
    specs.sort_by_key(|s| s.id.rsplit('.').next().and_then(|n| n.parse::<u32>().ok()));
    let _ = std::fs::remove_dir_all(&work);
    crate::cache::write_atomic(&list, &serde_json::to_vec(&specs)?)?;
    Ok(specs)
}

fn tempfile_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    let d = parent.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    Ok(d)
}

/// A build tree for trying mutants one after another: a hard-linked copy of the unpatched
/// build's source and a real copy of its build folder (kbuild writes there). Each mutant's
/// file replaces the original by a rename (a new inode: the hard-linked source stays as it
/// was), its objects are rebuilt and compared with the unmutated ones, and only a mutant
/// whose code differs is linked into a bzImage.
pub struct Workbench {
    pub src: PathBuf,
    pub out: PathBuf,
    log: PathBuf,
    jobs: usize,
    /// For each target file: its text, and the objects built from it with their unmutated bytes.
    baseline: BTreeMap<String, Baseline>,
    _lock: crate::cache::Lock,
}

/// A target file's unmutated text, and each object built from it with its bytes.
type Baseline = (String, Vec<(String, Vec<u8>)>);

/// What building one mutant gave.
pub enum Build {
    /// A bzImage whose code differs from the unmutated kernel's.
    Kernel(PathBuf),
    Equivalent,
    NotCompiled(String),
}

impl Workbench {
    /// `base_src` is the unpatched build's tree (its `out/` is the build folder).
    pub fn new(
        base_src: &Path,
        dir: &Path,
        jobs: usize,
        progress: &mut Progress,
    ) -> anyhow::Result<Workbench> {
        std::fs::create_dir_all(dir)?;
        let lock = crate::cache::lock(&dir.with_extension("lock"))?;
        let src = dir.join("src");
        let ready = dir.join("READY");
        if !ready.is_file() {
            crate::cache::need_space(dir, 2 << 30, "a mutation build tree")?;
            progress.step(
                crate::sys::progress::Step::Copy,
                &format!("mutation tree from {}", base_src.display()),
            );
            let _ = std::fs::remove_dir_all(&src);
            let tmp = dir.join("src.tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            run(
                Command::new("cp").arg("-al").arg(base_src).arg(&tmp),
                "hard-linked copy of the source",
            )?;
            std::fs::remove_dir_all(tmp.join("out"))?;
            run(
                Command::new("cp")
                    .arg("-a")
                    .arg(base_src.join("out"))
                    .arg(tmp.join("out")),
                "copy of the build folder",
            )?;
            std::fs::rename(&tmp, &src)?;
            std::fs::write(&ready, base_src.to_string_lossy().as_bytes())?;
        }
        let mut wb = Workbench {
            out: src.join("out"),
            src,
            log: dir.join("make.log"),
            jobs,
            baseline: BTreeMap::new(),
            _lock: lock,
        };
        for file in TARGETS {
            let text = std::fs::read_to_string(base_src.join(file))
                .with_context(|| format!("read {file}"))?;
            wb.put(file, &text)?;
            let objects = wb.objects_for(file)?;
            wb.make(&objects.iter().map(String::as_str).collect::<Vec<_>>())
                .map_err(|e| {
                    anyhow::anyhow!("the unmutated {file} does not build in the mutation tree: {e}")
                })?;
            let bytes = objects
                .iter()
                .map(|o| Ok((o.clone(), std::fs::read(wb.out.join(o))?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            wb.baseline.insert(file.to_owned(), (text, bytes));
        }
        Ok(wb)
    }

    pub fn original(&self, file: &str) -> Option<&str> {
        self.baseline.get(file).map(|(t, _)| t.as_str())
    }

    /// The objects built from `file` in this configuration: its own `.o`, or for a header the
    /// `.o` of every C file that includes it (and that this kernel builds).
    fn objects_for(&self, file: &str) -> anyhow::Result<Vec<String>> {
        if let Some(stem) = file.strip_suffix(".c") {
            return Ok(vec![format!("{stem}.o")]);
        }
        let include = file.trim_start_matches("include/");
        let out = Command::new("grep")
            .current_dir(&self.src)
            .args([
                "-rlF",
                "--include=*.c",
                &format!("#include <{include}>"),
                "kernel",
                "fs",
                "mm",
                "init",
            ])
            .output()
            .context("run grep")?;
        let objs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|c| c.strip_suffix(".c").map(|s| format!("{s}.o")))
            .filter(|o| self.out.join(o).is_file())
            .collect();
        if objs.is_empty() {
            bail!("no object of this kernel is built from a file that includes {file}");
        }
        Ok(objs)
    }

    fn put(&self, file: &str, text: &str) -> anyhow::Result<()> {
        let path = self.src.join(file);
        let tmp = path.with_extension("ue-mutant");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn make(&self, targets: &[&str]) -> Result<(), String> {
        let out = crate::kernel::build::make_cmd(&self.src, &self.out)
            .arg(format!("-j{}", self.jobs))
            .args(targets)
            .output()
            .map_err(|e| format!("run make: {e}"))?;
        let _ = std::fs::write(
            &self.log,
            [&out.stdout[..], b"\n--- stderr ---\n", &out.stderr[..]].concat(),
        );
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.contains("error"))
            .or_else(|| err.lines().next())
            .unwrap_or("make failed");
        Err(first.trim().to_owned())
    }

    /// Builds `m`; the tree keeps the mutant until [`Workbench::restore`].
    pub fn build(&self, m: &MutantSpec) -> anyhow::Result<Build> {
        let (text, objects) = self
            .baseline
            .get(&m.file)
            .with_context(|| format!("{} is not a mutation target", m.file))?;
        self.put(&m.file, &m.apply(text)?)?;
        let names: Vec<&str> = objects.iter().map(|(o, _)| o.as_str()).collect();
        if let Err(e) = self.make(&names) {
            return Ok(Build::NotCompiled(e));
        }
        let same = objects
            .iter()
            .all(|(o, bytes)| std::fs::read(self.out.join(o)).is_ok_and(|b| &b == bytes));
        if same {
            return Ok(Build::Equivalent);
        }
        if let Err(e) = self.make(&["bzImage"]) {
            return Ok(Build::NotCompiled(format!("link: {e}")));
        }
        Ok(Build::Kernel(self.out.join("arch/x86/boot/bzImage")))
    }

    /// Puts the unmutated file back (its objects are rebuilt by the next mutant's make).
    pub fn restore(&self, file: &str) -> anyhow::Result<()> {
        if let Some((text, _)) = self.baseline.get(file) {
            self.put(file, text)?;
        }
        Ok(())
    }
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("run {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}

/// Which mutants to run: a function filter, then a seeded sample, then a shard of it.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub functions: Vec<String>,
    pub sample: Option<usize>,
    pub seed: u64,
    /// (index from 1, count)
    pub shard: Option<(usize, usize)>,
}

/// `I/N`, 1 ≤ I ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("--shard {s:?}: write I/N, e.g. 2/8"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: I is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("--shard {s:?}: N is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("--shard {s:?}: need 1 ≤ I ≤ N"));
    }
    Ok((i, n))
}

/// A small deterministic generator (splitmix64): the same seed gives the same sample on
/// every machine, which is what lets shards of one run agree.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn choose(all: &[MutantSpec], c: &Choice) -> anyhow::Result<Vec<MutantSpec>> {
    let mut v: Vec<MutantSpec> = all
        .iter()
        .filter(|m| c.functions.is_empty() || c.functions.contains(&m.function))
        .cloned()
        .collect();
    if v.is_empty() {
        let mut known: Vec<&str> = all.iter().map(|m| m.function.as_str()).collect();
        known.sort();
        known.dedup();
        bail!(
            "no mutant in the function(s) {:?}; functions with mutants: {}",
            c.functions,
            known.join(", ")
        );
    }
    if let Some(n) = c.sample {
        // Fisher-Yates with the seeded generator, then the first n.
        let mut state = c.seed;
        for i in (1..v.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v.truncate(n);
    }
    if let Some((i, n)) = c.shard {
        v = v
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i - 1)
            .map(|(_, m)| m)
            .collect();
    }
    Ok(v)
}

/// A mutant judged by a person: equivalent (no behaviour a user could see changes), with the
/// reason. Kept in `kernel-configs/mutate/judged.toml` so the next run skips it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Judged {
    pub file: String,
    pub line: usize,
    pub original: String,
    pub mutated: String,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JudgedList {
    #[serde(default, rename = "equivalent")]
    pub equivalent: Vec<Judged>,
}

impl JudgedList {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(t) => toml::from_str(&t).with_context(|| format!("parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JudgedList::default()),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    /// Entries that match no mutant of this source: written for another version of it.
    pub fn stale<'a>(&'a self, all: &[MutantSpec]) -> Vec<&'a Judged> {
        self.equivalent
            .iter()
            .filter(|j| !all.iter().any(|m| j.matches(m)))
            .collect()
    }

    pub fn find(&self, m: &MutantSpec) -> Option<&Judged> {
        self.equivalent.iter().find(|j| j.matches(m))
    }
}

impl Judged {
    fn matches(&self, m: &MutantSpec) -> bool {
        self.file == m.file
            && self.line == m.line
            && self.original.trim() == m.original.trim()
            && self.mutated.trim() == m.mutated.trim()
    }
}

/// What became of one mutant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A scenario failed (the first one, by name).
    Killed { by: String },
    /// Every scenario passed.
    Survived,
    /// A limit ran out (a hang is a detection, counted apart).
    TimedOut { what: String },
    /// Object code identical to the unmutated build's (trivial compiler equivalence).
    Equivalent,
    /// Judged equivalent by a person (kernel-configs/mutate/judged.toml).
    JudgedEquivalent { reason: String },
    /// The compiler or the linker refused it.
    NotCompiled { error: String },
}

/// What the upstream selftests made of the same mutant, counted apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Upstream {
    Killed { by: String },
    Survived,
    NotRun,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantResult {
    pub mutant: MutantSpec,
    pub outcome: Outcome,
    pub upstream: Upstream,
    /// Wall seconds spent on it (build and boot).
    pub secs: f64,
    /// The change with two lines of context, for the report.
    pub diff: String,
}

/// `mutate.json`: one run, or several shards merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub source: String,
    pub tool: String,
    pub seed: u64,
    pub sample: Option<usize>,
    pub shards: Vec<String>,
    pub functions: Vec<String>,
    pub wall_secs: f64,
    /// Scenarios that failed on the unmutated kernel: left out, since they decide nothing.
    pub unreliable: Vec<String>,
    /// Upstream tests that fail on the unmutated kernel: their failures do not count.
    pub upstream_failing_unmutated: Vec<String>,
    pub results: Vec<MutantResult>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Tally {
    pub killed: usize,
    pub survived: usize,
    pub timed_out: usize,
    pub equivalent: usize,
    pub not_compiled: usize,
    pub upstream_killed: usize,
    pub upstream_survived: usize,
}

impl Tally {
    fn add(&mut self, r: &MutantResult) {
        match &r.outcome {
            Outcome::Killed { .. } => self.killed += 1,
            Outcome::Survived => self.survived += 1,
            Outcome::TimedOut { .. } => self.timed_out += 1,
            Outcome::Equivalent | Outcome::JudgedEquivalent { .. } => self.equivalent += 1,
            Outcome::NotCompiled { .. } => self.not_compiled += 1,
        }
        match r.upstream {
            Upstream::Killed { .. } => self.upstream_killed += 1,
            Upstream::Survived => self.upstream_survived += 1,
            Upstream::NotRun => {}
        }
    }

    /// Detected (killed or hung) of the mutants that ran and are not equivalent.
    pub fn score(&self) -> Option<f64> {
        let n = self.killed + self.survived + self.timed_out;
        (n > 0).then(|| (self.killed + self.timed_out) as f64 / n as f64)
    }

    pub fn upstream_score(&self) -> Option<f64> {
        let n = self.upstream_killed + self.upstream_survived;
        (n > 0).then(|| self.upstream_killed as f64 / n as f64)
    }
}

impl Report {
    pub fn tally<'a>(results: impl Iterator<Item = &'a MutantResult>) -> Tally {
        let mut t = Tally::default();
        for r in results {
            t.add(r);
        }
        t
    }

    /// Shards of one run (same source, tool, seed and sample) as one report.
    pub fn merge(parts: Vec<Report>) -> anyhow::Result<Report> {
        let mut it = parts.into_iter();
        let Some(mut first) = it.next() else {
            bail!("no report to merge")
        };
        for p in it {
            if (p.source.as_str(), p.tool.as_str(), p.seed, p.sample)
                != (
                    first.source.as_str(),
                    first.tool.as_str(),
                    first.seed,
                    first.sample,
                )
            {
                bail!(
                    "reports of different runs: {} seed {} sample {:?} vs {} seed {} sample {:?}",
                    first.source,
                    first.seed,
                    first.sample,
                    p.source,
                    p.seed,
                    p.sample
                );
            }
            first.shards.extend(p.shards);
            first.unreliable.extend(p.unreliable);
            first.unreliable.sort();
            first.unreliable.dedup();
            first.wall_secs = first.wall_secs.max(p.wall_secs);
            first.results.extend(p.results);
        }
        first.results.sort_by(|a, b| a.mutant.id.cmp(&b.mutant.id));
        first.results.dedup_by(|a, b| a.mutant.id == b.mutant.id);
        Ok(first)
    }

    pub fn markdown(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("–".to_owned(), |v| format!("{:.1}%", v * 100.0));
        let all = Report::tally(self.results.iter());
        let key = Report::tally(
            self.results
                .iter()
                .filter(|r| KEY_FUNCTIONS.contains(&r.mutant.function.as_str())),
        );
        let mut s = format!(
            "## cargo xtask mutate\n\n{} mutants of {} ({}; seed {}, sample {}, shards {}), {:.0} s wall.\n\n",
            self.results.len(),
            self.source,
            self.tool,
            self.seed,
            self.sample.map_or("all".to_owned(), |n| n.to_string()),
            if self.shards.is_empty() { "-".to_owned() } else { self.shards.join(", ") },
            self.wall_secs
        );
        s.push_str("| where | killed | timed out | survived | equivalent | not compiled | this suite | upstream selftests |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        let row = |name: &str, t: &Tally| {
            format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                t.killed,
                t.timed_out,
                t.survived,
                t.equivalent,
                t.not_compiled,
                pct(t.score()),
                pct(t.upstream_score())
            )
        };
        s.push_str(&row("**whole file(s)**", &all));
        s.push_str(&row(
            "**key functions** (enabler write, faults, mm dup/remove, REG/UNREG)",
            &key,
        ));
        let mut by_fn: BTreeMap<&str, Vec<&MutantResult>> = BTreeMap::new();
        for r in &self.results {
            by_fn.entry(r.mutant.function.as_str()).or_default().push(r);
        }
        for (f, rs) in &by_fn {
            s.push_str(&row(&format!("`{f}`"), &Report::tally(rs.iter().copied())));
        }
        s.push_str("\nScores: detected (killed or timed out) of the mutants that ran and are not equivalent; the upstream selftests on the same mutants (their tests that fail on the unmutated kernel too do not count).\n");
        if !self.unreliable.is_empty() {
            s.push_str(&format!(
                "\nLeft out, failing on the unmutated kernel: {}.\n",
                self.unreliable.join(", ")
            ));
        }
        let survivors: Vec<&MutantResult> = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Survived)
            .collect();
        if !survivors.is_empty() {
            s.push_str(&format!("\n### Survivors ({})\n", survivors.len()));
            for r in survivors {
                s.push_str(&format!(
                    "\n`{}` in `{}` (upstream: {}):\n\n```diff\n{}```\n",
                    r.mutant.id,
                    r.mutant.function,
                    match &r.upstream {
                        Upstream::Killed { by } => format!("killed by {by}"),
                        Upstream::Survived => "survived".into(),
                        Upstream::NotRun => "not run".into(),
                    },
                    r.diff
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "static int x;\n\nstatic void user_event_mm_dup(struct task_struct *t,\n\t\t\t      struct user_event_mm *old_mm)\n{\n\tint a = 1;\n\tif (a)\n\t\treturn;\n}\n\nint y;\n";

    fn spec(line: usize, mutated: &str) -> MutantSpec {
        let original = SRC.split('\n').nth(line - 1).unwrap().to_owned();
        MutantSpec {
            id: format!("t.{line}"),
            file: "k.c".into(),
            line,
            function: functions_by_line(SRC)[line - 1].clone(),
            original,
            mutated: mutated.into(),
        }
    }

    #[test]
    fn lines_belong_to_the_function_whose_body_holds_them() {
        let f = functions_by_line(SRC);
        assert_eq!(f[0], "(file scope)");
        assert_eq!(f[5], "user_event_mm_dup");
        assert_eq!(f[8], "user_event_mm_dup");
        assert_eq!(f[10], "(file scope)");
    }

    #[test]
    fn a_mutant_applies_to_its_line_only_and_refuses_another_source() {
        let m = spec(7, "\tif (!a)");
        let out = m.apply(SRC).unwrap();
        assert!(out.contains("\tif (!a)\n\t\treturn;"));
        assert_eq!(out.len(), SRC.len() + 1);
        assert!(m.apply(&SRC.replace("if (a)", "if (b)")).is_err());
        let d = m.diff(SRC, 1);
        assert!(
            d.contains("-\tif (a)\n+\tif (!a)\n")
                && d.contains("@@ -6,3 +6,3 @@ user_event_mm_dup"),
            "{d}"
        );
    }

    #[test]
    fn samples_and_shards_are_deterministic_and_partition() {
        let all: Vec<MutantSpec> = (0..100)
            .map(|i| MutantSpec {
                id: format!("t.{i}"),
                file: "k.c".into(),
                line: 1,
                function: if i % 2 == 0 { "a".into() } else { "b".into() },
                original: String::new(),
                mutated: String::new(),
            })
            .collect();
        let c = Choice {
            sample: Some(30),
            seed: 7,
            ..Choice::default()
        };
        let one = choose(&all, &c).unwrap();
        assert_eq!(one, choose(&all, &c).unwrap());
        assert_eq!(one.len(), 30);
        assert_ne!(
            one,
            choose(
                &all,
                &Choice {
                    seed: 8,
                    ..c.clone()
                }
            )
            .unwrap()
        );
        let mut shards: Vec<MutantSpec> = (1..=4)
            .flat_map(|i| {
                choose(
                    &all,
                    &Choice {
                        shard: Some((i, 4)),
                        ..c.clone()
                    },
                )
                .unwrap()
            })
            .collect();
        shards.sort_by(|a, b| a.id.cmp(&b.id));
        let mut sorted = one.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(shards, sorted, "the shards of a sample are the sample");
        let only_a = choose(
            &all,
            &Choice {
                functions: vec!["a".into()],
                ..Choice::default()
            },
        )
        .unwrap();
        assert!(only_a.len() == 50 && only_a.iter().all(|m| m.function == "a"));
        assert!(choose(
            &all,
            &Choice {
                functions: vec!["zzz".into()],
                ..Choice::default()
            }
        )
        .unwrap_err()
        .to_string()
        .contains("functions with mutants: a, b"));
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
        assert!(
            parse_shard("0/8").is_err() && parse_shard("9/8").is_err() && parse_shard("x").is_err()
        );
    }

    #[test]
    fn the_shipped_judged_list_parses_and_gives_reasons() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs/mutate/judged.toml");
        let list = JudgedList::load(&path).unwrap();
        assert!(!list.equivalent.is_empty());
        for j in &list.equivalent {
            assert!(j.reason.len() > 20 && j.original != j.mutated, "{j:?}");
        }
    }

    #[test]
    fn scores_leave_out_equivalent_and_uncompiled_mutants() {
        let r = |outcome, upstream| MutantResult {
            mutant: spec(7, "x"),
            outcome,
            upstream,
            secs: 1.0,
            diff: String::new(),
        };
        let results = [
            r(Outcome::Killed { by: "a::b".into() }, Upstream::Survived),
            r(
                Outcome::Survived,
                Upstream::Killed {
                    by: "kselftest::abi_test".into(),
                },
            ),
            r(Outcome::TimedOut { what: "x".into() }, Upstream::Survived),
            r(Outcome::Equivalent, Upstream::NotRun),
            r(Outcome::NotCompiled { error: "e".into() }, Upstream::NotRun),
        ];
        let t = Report::tally(results.iter());
        assert_eq!(t.score(), Some(2.0 / 3.0));
        assert_eq!(t.upstream_score(), Some(1.0 / 3.0));
        assert_eq!((t.equivalent, t.not_compiled), (1, 1));
    }
}
