//! The reusable mutation tree: a copy of the unmutated build where one mutant at a time is
//! written, built and pruned (does not compile; object code identical), then restored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use harness::arch::Arch;

use crate::sys::progress::Progress;

use super::{MutantSpec, TARGETS};

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
    /// What the unmutated build was made for: a foreign one is cross-compiled the same way.
    arch: Arch,
    /// For each target file: its text, and the objects built from it with their unmutated bytes.
    baseline: BTreeMap<String, Baseline>,
    _lock: crate::cache::Lock,
}

/// A target file's unmutated text, and each object built from it with its bytes.
pub(super) type Baseline = (String, Vec<(String, Vec<u8>)>);

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
        arch: Arch,
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
            arch,
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
        let out = crate::kernel::build::make_cmd_for(&self.src, &self.out, self.arch)
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
        if let Err(e) = self.make(&[self.arch.image_target()]) {
            return Ok(Build::NotCompiled(format!("link: {e}")));
        }
        Ok(Build::Kernel(self.out.join(self.arch.image_path())))
    }

    /// Puts the unmutated file back (its objects are rebuilt by the next mutant's make).
    pub fn restore(&self, file: &str) -> anyhow::Result<()> {
        if let Some((text, _)) = self.baseline.get(file) {
            self.put(file, text)?;
        }
        Ok(())
    }
}

pub(super) fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let st = cmd.status().with_context(|| format!("run {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}
