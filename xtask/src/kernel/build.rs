//! Configure and build a kernel, cached by what went into it. A cache hit runs no `make` at
//! all; a patched kernel starts from a copy of the unpatched build directory, so only what the
//! patch touched is recompiled.

use crate::sys::proc::RunTracked as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::cache::{self, KeyBuilder};
use crate::kernel::kconfig::{self, TreeKconfig};
use crate::sys::progress::{Progress, Step};
use harness::arch::Arch;

/// Bump when the build recipe changes in a way the inputs below do not capture.
const RECIPE: &str = "kbuild-v1 tinyconfig bzImage";
const MARKER: &str = "COMPLETE.json";
const CONFIGURED: &str = ".ue-configured";

/// What fetches and extracts a package's pristine tree; called only when a build must run, so
/// a cached build needs neither the download nor the extracted source.
pub type FetchTree<'a> = &'a dyn Fn(&mut Progress) -> anyhow::Result<PathBuf>;

pub enum Source<'a> {
    /// A source package: its identity (name, version, SHA-256) keys the cache; the pristine
    /// tree is extracted once and never built in (each build gets a hard-linked copy).
    Pristine {
        identity: String,
        fetch: FetchTree<'a>,
    },
    /// A developer's tree, in any state: snapshotted into the cache (sources only, see
    /// [`crate::kernel::snapshot`]) and built out of tree there; the tree itself is only read.
    Tree { tree: PathBuf },
}

pub struct BuildRequest<'a> {
    pub label: String,
    pub source: Source<'a>,
    pub fragments: Vec<PathBuf>,
    /// All patches, in order: the kernel list's own first, then `extra_patches`' copies.
    pub patches: Vec<PathBuf>,
    /// How many of the last `patches` are on top of the kernel as listed (--patch, a
    /// mutant): such a build starts from a copy of the build without them.
    pub extra_patches: usize,
    /// Options of the shared fragments that this kernel does not have (renamed or removed
    /// upstream); dropped from what is asked, after checking that no Kconfig defines them.
    pub absent: Vec<String>,
    /// `--kconfig CONFIG_X=y` lines, applied after the fragments and checked like them.
    pub kconfig: Vec<String>,
    pub jobs: usize,
    /// Compile through ccache, its store in the cache (see [`crate::kernel::ccache`]). Not part of
    /// the cache key: the objects are the same either way.
    pub ccache: bool,
    /// What it is built for: a foreign architecture is cross-compiled (ARCH=, CROSS_COMPILE=)
    /// and keyed apart.
    pub arch: Arch,
    /// Options of the fragments left out for this architecture (kernels.toml `[arch.X]
    /// drop`): neither asked for nor checked.
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub key: String,
    pub identity: String,
    pub fragments: Vec<String>,
    pub patches: Vec<String>,
    pub compiler: String,
    pub build_secs: f64,
    pub steps: usize,
    /// What ccache did in this build (none: built without it, or recorded before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccache: Option<crate::kernel::ccache::Stats>,
}

pub struct Built {
    pub src: PathBuf,
    pub out: PathBuf,
    pub bzimage: PathBuf,
    pub config: PathBuf,
    pub record: BuildRecord,
    /// Whether this call ran make.
    pub ran_make: bool,
}

/// The first line of `--version` of the compiler that builds for `arch`.
pub fn compiler_version_for(arch: Arch) -> anyhow::Result<String> {
    let gcc = arch.gcc();
    let out = Command::new(&gcc)
        .arg("--version")
        .output_tracked()
        .with_context(|| format!("run {gcc} --version (install {})", gcc_package(arch)))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned())
}

pub fn key_for(
    identity: &str,
    fragments: &[PathBuf],
    patches: &[PathBuf],
    absent: &[String],
    compiler: &str,
) -> anyhow::Result<String> {
    key_with_kconfig(identity, fragments, patches, absent, &[], compiler)
}

/// [`key_for`] with `--kconfig` lines (none leaves the key as it was).
pub fn key_with_kconfig(
    identity: &str,
    fragments: &[PathBuf],
    patches: &[PathBuf],
    absent: &[String],
    kconfig: &[String],
    compiler: &str,
) -> anyhow::Result<String> {
    let mut k = KeyBuilder::new(RECIPE);
    for line in kconfig {
        k.part("kconfig", line.as_bytes());
    }
    for a in absent {
        k.part("absent", a.as_bytes());
    }
    k.part("source", identity.as_bytes())
        .part("compiler", compiler.as_bytes());
    for f in fragments {
        let text = std::fs::read(f).with_context(|| format!("read fragment {}", f.display()))?;
        k.part("fragment", &text);
    }
    for p in patches {
        let text = std::fs::read(p).with_context(|| format!("read patch {}", p.display()))?;
        k.part("patch", &text);
    }
    Ok(k.finish())
}

/// The Debian package of the compiler that builds for `arch`.
pub fn gcc_package(arch: Arch) -> String {
    match arch.cross_triple() {
        None => "gcc".into(),
        Some(t) => format!("gcc-{t}"),
    }
}

/// A foreign architecture's part of the key: its name and what it drops (its fragment is
/// among the fragments). Nothing for x86-64, whose keys stay as they were.
fn arch_key(k: &mut KeyBuilder, arch: Arch, drop: &[String]) {
    if arch.is_native() {
        return;
    }
    k.part("arch", arch.name().as_bytes());
    for d in drop {
        k.part("drop", d.as_bytes());
    }
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

pub fn build(
    cache_root: &Path,
    req: &BuildRequest,
    progress: &mut Progress,
) -> anyhow::Result<Built> {
    let compiler = compiler_version_for(req.arch)?;
    let builds = cache_root.join("builds");
    let e = Entry::of(&builds, req, &compiler)?;
    let is_tree = matches!(req.source, Source::Tree { .. });
    if !is_tree {
        if let Some(record) = read_record(&e.marker).filter(|_| e.bzimage.exists()) {
            crate::cache::inventory::mark_used(&e.entry);
            return Ok(e.cached(record));
        }
    }
    let _lock = cache::lock(&e.entry.with_extension("lock"))?;
    if let Source::Pristine { fetch, .. } = &req.source {
        if let Some(record) = read_record(&e.marker).filter(|_| e.bzimage.exists()) {
            crate::cache::inventory::mark_used(&e.entry);
            return Ok(e.cached(record));
        }
        cache::need_space(&builds, 1 << 30, "building the kernel")?;
        let tree = fetch(progress)?;
        crate::kernel::source::patched_copy(&tree, &e.src, &req.patches, progress)?;
        if req.extra_patches > 0 && !e.out.exists() {
            seed_from_base(
                cache_root,
                *fetch,
                e.identity.as_str(),
                req,
                &e.out,
                progress,
            )?;
        }
    }
    if let Source::Tree { tree } = &req.source {
        // Named on every run: the tree's own .config is what a developer would assume.
        progress.note(&format!(
            "{}: {} (the tree's own .config is not used)",
            req.label,
            base_config(&req.fragments, &req.kconfig)
        ));
        if (req.extra_patches > 0 || !req.kconfig.is_empty()) && !e.src.exists() {
            seed_tree_from_base(&builds, &e.identity, req, &compiler, &e.entry, progress)?;
        }
        let changed = snapshot_tree(tree, &e.src, &e.entry, &req.patches, progress)?;
        if !changed && e.bzimage.exists() && e.out.join(CONFIGURED).exists() {
            if let Some(record) = read_record(&e.marker) {
                progress.note(&format!(
                    "{}: the snapshot of {} is unchanged since build {} (no make)",
                    req.label,
                    tree.display(),
                    record.key
                ));
                return Ok(e.cached(record));
            }
        }
    }
    configure_and_make(cache_root, req, e, compiler, is_tree, progress)
}

/// [`key_for`] of a build for `arch` that drops `drop` (its fragment among `fragments`):
/// what `cargo xtask kernels --cache-key K --arch A` prints.
pub fn key_for_arch(
    identity: &str,
    fragments: &[PathBuf],
    patches: &[PathBuf],
    absent: &[String],
    compiler: &str,
    arch: Arch,
    drop: &[String],
) -> anyhow::Result<String> {
    let base = key_for(identity, fragments, patches, absent, compiler)?;
    if arch.is_native() {
        return Ok(base);
    }
    let mut k = KeyBuilder::new(RECIPE);
    k.part("base", base.as_bytes());
    arch_key(&mut k, arch, drop);
    Ok(k.finish())
}

/// The key of a build of `req` with `patches`: [`key_with_kconfig`], and a foreign
/// architecture's own part.
fn key_for_request(
    identity: &str,
    req: &BuildRequest,
    patches: &[PathBuf],
    compiler: &str,
) -> anyhow::Result<String> {
    let base = key_with_kconfig(
        identity,
        &req.fragments,
        patches,
        &req.absent,
        &req.kconfig,
        compiler,
    )?;
    if req.arch.is_native() {
        return Ok(base);
    }
    let mut k = KeyBuilder::new(RECIPE);
    k.part("base", base.as_bytes());
    arch_key(&mut k, req.arch, &req.drop);
    Ok(k.finish())
}

/// A build's cache entry and the paths in it.
struct Entry {
    /// What was built: the package's identity, or `tree:PATH`.
    identity: String,
    /// The entry's folder name.
    key: String,
    src: PathBuf,
    out: PathBuf,
    entry: PathBuf,
    bzimage: PathBuf,
    config: PathBuf,
    /// Written last: without it the entry is not a build.
    marker: PathBuf,
}

impl Entry {
    fn of(builds: &Path, req: &BuildRequest, compiler: &str) -> anyhow::Result<Entry> {
        let (identity, src, out, entry) = match &req.source {
            Source::Pristine { identity, .. } => {
                let key = key_for_request(identity, req, &req.patches, compiler)?;
                let entry = builds.join(&key);
                (
                    identity.clone(),
                    entry.join("src"),
                    entry.join("src/out"),
                    entry,
                )
            }
            Source::Tree { tree } => {
                let identity = format!("tree:{}", tree.canonicalize()?.display());
                let key = key_for_request(&identity, req, &req.patches, compiler)?;
                let entry = builds.join(format!("tree-{key}"));
                // The build directory is a child of the snapshot: kbuild then records relative
                // paths, as for the packaged kernels.
                (
                    identity,
                    entry.join("src"),
                    entry.join("src/.ue-out"),
                    entry,
                )
            }
        };
        let key = entry.file_name().unwrap().to_string_lossy().into_owned();
        Ok(Entry {
            identity,
            key,
            bzimage: out.join(req.arch.image_path()),
            config: out.join(".config"),
            marker: entry.join(MARKER),
            src,
            out,
            entry,
        })
    }

    /// A build entry already complete: nothing runs.
    fn cached(&self, record: BuildRecord) -> Built {
        Built {
            src: self.src.clone(),
            out: self.out.clone(),
            bzimage: self.bzimage.clone(),
            config: self.config.clone(),
            record,
            ran_make: false,
        }
    }
}

/// Configures (unless already) and runs make in `e`, then records the build, last.
fn configure_and_make(
    cache_root: &Path,
    req: &BuildRequest,
    e: Entry,
    compiler: String,
    is_tree: bool,
    progress: &mut Progress,
) -> anyhow::Result<Built> {
    let builds = cache_root.join("builds");
    let Entry {
        identity,
        key,
        src,
        out,
        entry,
        bzimage,
        config,
        marker,
    } = e;
    std::fs::create_dir_all(&out)?;
    if !out.join(CONFIGURED).exists() || !config.exists() {
        configure(&src, &out, req, progress)?;
    }
    let start = Instant::now();
    // A percentage only means something for a full build; an incremental one shows a count.
    let expected = (req.extra_patches == 0 && !is_tree)
        .then(|| read_record(&builds.join(last_steps(req.arch))).map(|r| r.steps))
        .flatten();
    let ccache_before = req
        .ccache
        .then(|| crate::kernel::ccache::counters(cache_root));
    let steps = make(
        &src,
        &out,
        req,
        cache_root,
        &entry.join("build.log"),
        expected,
        progress,
    )?;
    let ccache = ccache_before.map(|b| crate::kernel::ccache::since(cache_root, b));
    if let Some(c) = ccache {
        progress.note(&format!("{}: {c}", req.label));
    }
    let record = BuildRecord {
        key,
        identity,
        fragments: names(&req.fragments),
        patches: names(&req.patches),
        compiler,
        build_secs: start.elapsed().as_secs_f64(),
        steps,
        ccache,
    };
    let json = serde_json::to_vec_pretty(&record)?;
    if !bzimage.exists() {
        bail!("make finished but {} is missing", bzimage.display());
    }
    cache::write_atomic(&marker, &json)?;
    crate::cache::inventory::mark_used(&entry);
    if steps > 500 {
        // A full build: remember its size so the next one can show a percentage.
        let _ = cache::write_atomic(&builds.join(last_steps(req.arch)), &json);
    }
    Ok(Built {
        src,
        out,
        bzimage,
        config,
        record,
        ran_make: true,
    })
}

/// Where the size of the last full build for `arch` is kept (each architecture's own: an
/// s390x build has other steps than an x86-64 one).
fn last_steps(arch: Arch) -> String {
    if arch.is_native() {
        "last-steps.json".into()
    } else {
        format!("last-steps-{arch}.json")
    }
}

fn read_record(path: &Path) -> Option<BuildRecord> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Starts a patched build from a copy of the build without the extra patches (same fragments
/// and compiler), building that first if needed. Relative paths inside it keep it valid.
fn seed_from_base(
    cache_root: &Path,
    fetch: FetchTree<'_>,
    identity: &str,
    req: &BuildRequest,
    out: &Path,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let base_req = BuildRequest {
        label: req.label.clone(),
        source: Source::Pristine {
            identity: identity.to_owned(),
            fetch,
        },
        fragments: req.fragments.clone(),
        patches: req.patches[..req.patches.len() - req.extra_patches].to_vec(),
        extra_patches: 0,
        absent: req.absent.clone(),
        kconfig: req.kconfig.clone(),
        jobs: req.jobs,
        ccache: req.ccache,
        arch: req.arch,
        drop: req.drop.clone(),
    };
    let base = build(cache_root, &base_req, progress)?;
    let base_out = base.out;
    progress.step(
        Step::Seed,
        &format!("starting from the unpatched build {}", base.record.key),
    );
    let tmp = out.with_file_name(format!(".out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let st = Command::new("cp")
        .arg("-a")
        .arg(&base_out)
        .arg(&tmp)
        .status_tracked()?;
    if !st.success() || crate::sys::proc::interrupted() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("copying {} failed", base_out.display());
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// A patched build of a tree, or one with `--kconfig` options, starts from the plain build
/// of the same tree when there is one: its snapshot hard-linked (files there are only ever
/// replaced, never written), its build directory copied. The patches then recompile only
/// what they touch; new options only what depends on them (kbuild tracks each option).
fn seed_tree_from_base(
    builds: &Path,
    identity: &str,
    req: &BuildRequest,
    compiler: &str,
    entry: &Path,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let plain = BuildRequest {
        label: String::new(),
        source: Source::Tree {
            tree: PathBuf::new(),
        },
        fragments: req.fragments.clone(),
        patches: vec![],
        extra_patches: 0,
        absent: req.absent.clone(),
        kconfig: vec![],
        jobs: req.jobs,
        ccache: false,
        arch: req.arch,
        drop: req.drop.clone(),
    };
    let base_key = key_for_request(
        identity,
        &plain,
        &req.patches[..req.patches.len() - req.extra_patches],
        compiler,
    )?;
    let base = builds.join(format!("tree-{base_key}"));
    if !base.join(MARKER).exists() {
        return Ok(());
    }
    let _base_lock = cache::lock(&base.with_extension("lock"))?;
    progress.step(
        Step::Seed,
        &format!(
            "starting from the unpatched build of the tree, {}",
            base.display()
        ),
    );
    let tmp = entry.join(format!(".src-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(entry)?;
    let ok = Command::new("cp")
        .arg("-al")
        .arg(base.join("src"))
        .arg(&tmp)
        .status()?
        .success()
        && std::fs::remove_dir_all(tmp.join(".ue-out")).is_ok()
        && Command::new("cp")
            .arg("-a")
            .arg(base.join("src/.ue-out"))
            .arg(tmp.join(".ue-out"))
            .status()?
            .success();
    if !ok {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("copying the build {} failed", base.display());
    }
    if !req.kconfig.is_empty() {
        // The copied .config lacks the new options: configure again.
        let _ = std::fs::remove_file(tmp.join(".ue-out").join(CONFIGURED));
    }
    std::fs::rename(&tmp, entry.join("src"))?;
    Ok(())
}

/// Brings the tree's snapshot up to date and applies the patches to it; says whether
/// anything in it changed since the last build.
fn snapshot_tree(
    tree: &Path,
    src: &Path,
    entry: &Path,
    patches: &[PathBuf],
    progress: &mut Progress,
) -> anyhow::Result<bool> {
    progress.step(
        Step::Snapshot,
        &format!(
            "snapshot of {} (sources only; the tree is never written)",
            tree.display()
        ),
    );
    let started = Instant::now();
    let stats = crate::kernel::snapshot::sync(tree, src)?;
    progress.note(&format!(
        "snapshot: {} copied, {} removed, {} unchanged in {:.1} s",
        stats.copied,
        stats.removed,
        stats.unchanged,
        started.elapsed().as_secs_f64()
    ));
    let applied = entry.join("PATCHED");
    if patches.is_empty() || (!stats.changed() && applied.exists()) {
        return Ok(stats.changed());
    }
    // The patched files are copied afresh from the tree and patched again, in order.
    let _ = std::fs::remove_file(&applied);
    let mut touched = Vec::new();
    for p in patches {
        touched.extend(crate::kernel::snapshot::patched_files(p)?);
    }
    crate::kernel::snapshot::forget(src, &touched)?;
    crate::kernel::snapshot::sync(tree, src)?;
    for p in patches {
        if let Err(e) = crate::kernel::source::apply_patch(src, tree, p) {
            // The next run starts from the tree's files again.
            crate::kernel::snapshot::forget(src, &touched)?;
            return Err(e);
        }
    }
    crate::kernel::snapshot::forget(src, &[])?;
    std::fs::write(&applied, "")?;
    Ok(true)
}

/// What a build's `.config` is made of, for people.
fn base_config(fragments: &[PathBuf], kconfig_lines: &[String]) -> String {
    let extra = if kconfig_lines.is_empty() {
        String::new()
    } else {
        format!(" + --kconfig {}", kconfig_lines.join(" "))
    };
    format!(
        "base config: tinyconfig + {}{extra}",
        names(fragments).join(" + ")
    )
}

fn configure(
    src: &Path,
    out: &Path,
    req: &BuildRequest,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let (fragments, kconfig_lines, absent) = (&req.fragments, &req.kconfig, &req.absent);
    let arch = req.arch;
    let what = base_config(fragments, kconfig_lines);
    progress.step(
        Step::Configure,
        &if arch.is_native() {
            what
        } else {
            format!(
                "{what}, for {arch} (ARCH={} CROSS_COMPILE={}; dropped: {})",
                arch.kernel_arch(),
                arch.cross_compile(),
                req.drop.join(" ")
            )
        },
    );
    let _ = std::fs::remove_file(out.join(CONFIGURED));
    let mut texts = kconfig::read_fragments(fragments)?;
    if !kconfig_lines.is_empty() {
        texts.push(("--kconfig".to_owned(), kconfig_lines.join("\n") + "\n"));
    }
    let settings: Vec<kconfig::Setting> = kconfig::without_absent(
        kconfig::merge(&texts)?,
        absent,
        &TreeKconfig(src.to_owned()),
    )?
    .into_iter()
    .filter(|s| !req.drop.contains(&s.option))
    .collect();
    run_quiet(src, out, arch, &["tinyconfig"])?;
    let dot = out.join(".config");
    let text = std::fs::read_to_string(&dot)?;
    std::fs::write(&dot, kconfig::apply(&text, &settings))?;
    run_quiet(src, out, arch, &["olddefconfig"])?;
    kconfig::validate(
        &std::fs::read_to_string(&dot)?,
        &settings,
        &TreeKconfig(src.to_owned()),
    )?;
    std::fs::write(out.join(CONFIGURED), "")?;
    Ok(())
}

pub fn make_cmd(src: &Path, out: &Path) -> Command {
    make_cmd_for(src, out, Arch::X86_64)
}

/// [`make_cmd`] for `arch`: a foreign one gets ARCH= and CROSS_COMPILE= (Debian's cross gcc).
pub fn make_cmd_for(src: &Path, out: &Path, arch: Arch) -> Command {
    let mut c = Command::new("make");
    if !arch.is_native() {
        c.arg(format!("ARCH={}", arch.kernel_arch()))
            .arg(format!("CROSS_COMPILE={}", arch.cross_compile()));
    }
    c.arg("-C").arg(src);
    // A build directory inside the tree is named relatively, so kbuild records relative paths.
    if out.parent() == Some(src) {
        c.arg(format!("O={}", out.file_name().unwrap().to_string_lossy()));
    } else {
        c.arg(format!("O={}", out.display()));
    }
    c
}

fn run_quiet(src: &Path, out: &Path, arch: Arch, targets: &[&str]) -> anyhow::Result<()> {
    let o = make_cmd_for(src, out, arch)
        .args(targets)
        .output_tracked()
        .context("run make (install make, gcc, flex, bison)")?;
    crate::sys::proc::check()?;
    if !o.status.success() {
        bail!(
            "make {} failed in {}:\n{}{}",
            targets.join(" "),
            out.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

fn make(
    src: &Path,
    out: &Path,
    req: &BuildRequest,
    cache_root: &Path,
    log: &Path,
    expected: Option<usize>,
    progress: &mut Progress,
) -> anyhow::Result<usize> {
    progress.step(
        Step::Build,
        &format!(
            "{} (log: {}){}",
            req.label,
            log.display(),
            if req.ccache { ", through ccache" } else { "" }
        ),
    );
    let mut logf = std::fs::File::create(log)?;
    let mut cmd = make_cmd_for(src, out, req.arch);
    if req.ccache {
        crate::kernel::ccache::wrap(&mut cmd, cache_root)?;
    }
    let (mut child, _tracked) = crate::sys::proc::spawn(
        cmd.arg(format!("-j{}", req.jobs))
            .arg(req.arch.image_target())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .context("run make")?;
    // stderr goes to the same log, through a thread so neither pipe can fill and block make.
    let stderr = child.stderr.take().unwrap();
    let log2 = log.to_owned();
    let errs = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.push(l);
        }
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(log2)
            .and_then(|mut f| {
                f.write_all(b"\n--- stderr ---\n")?;
                f.write_all(lines.join("\n").as_bytes())
            });
        lines
    });
    let mut steps = 0;
    for l in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let _ = writeln!(logf, "{l}");
        if is_kbuild_step(&l) {
            steps += 1;
            progress.building(&req.label, steps, expected);
        }
    }
    let status = child.wait()?;
    progress.end_long_step();
    crate::sys::proc::check()?;
    let errs = errs.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = errs
            .iter()
            .rev()
            .take(25)
            .rev()
            .map(String::as_str)
            .collect();
        bail!(
            "the kernel build failed ({status}); last lines:\n{}\nfull log: {}",
            tail.join("\n"),
            log.display()
        );
    }
    Ok(steps)
}

/// `  CC      kernel/fork.o` and the like.
fn is_kbuild_step(l: &str) -> bool {
    let t = l.trim_start();
    l.starts_with("  ")
        && t.split_whitespace().next().is_some_and(|w| {
            w.len() <= 8
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        && t.split_whitespace().nth(1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_a_killed_build_left_is_never_taken_for_a_build() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join(MARKER);
        assert!(read_record(&marker).is_none(), "no marker: not complete");
        std::fs::write(&marker, b"{\"key\": \"ab\", \"identity\": ").unwrap();
        assert!(
            read_record(&marker).is_none(),
            "a torn marker: not complete"
        );
        let whole = BuildRecord {
            key: "ab".into(),
            identity: "deb:x=1".into(),
            fragments: vec![],
            patches: vec![],
            compiler: "gcc".into(),
            build_secs: 1.0,
            steps: 1,
            ccache: None,
        };
        crate::cache::write_atomic(&marker, &serde_json::to_vec(&whole).unwrap()).unwrap();
        assert_eq!(read_record(&marker).unwrap().key, "ab");
    }

    #[test]
    fn kbuild_steps_are_counted_and_other_lines_are_not() {
        assert!(is_kbuild_step("  CC      kernel/fork.o"));
        assert!(is_kbuild_step("  AR      lib/built-in.a"));
        assert!(!is_kbuild_step("make[1]: Entering directory '/x'"));
        assert!(!is_kbuild_step("kernel/fork.c:12: warning: unused"));
        assert!(!is_kbuild_step("  GEN"));
    }
}
