//! From the command line's kernel choice to bootable kernels: a kernel of the list (download,
//! extract, patch, configure, build, all cached), a developer's tree, or a ready bzImage.
//! One label rule names the trials, one identity string says exactly what was built, and one
//! expectation says what the kernel must have.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use harness::arch::Arch;
use harness::model::{Expectation, Feature, KernelUnderTest};

use crate::args::KernelArgs;
use crate::kernel::build::{self, BuildRequest, Source};
use crate::kernel::list::{self, KernelList};
use crate::kernel::{apt, kconfig, kselftests, source};
use crate::sys::progress::Progress;

/// A kernel ready to boot, and what it took to get it.
pub struct Resolved {
    pub kernel: KernelUnderTest,
    /// Seconds make ran for it in this call; None when it came from the cache (or is an image).
    pub build_secs: Option<f64>,
    /// The record of the build this call ran (steps, ccache); None as for `build_secs`.
    pub built: Option<build::BuildRecord>,
}

/// The trial label of a kernel of the list: `6.12`, `6.12-debug`, `6.12+fixes`,
/// `6.12+patched`.
pub fn label(name: &str, debug: bool, fixes: bool, patched: bool) -> String {
    format!(
        "{name}{}{}{}",
        if debug { "-debug" } else { "" },
        if fixes { "+fixes" } else { "" },
        if patched { "+patched" } else { "" }
    )
}

/// The debug-info variant's label: `6.12-gdb`, `linux-gdb`.
fn gdb_label(label: String, gdb: bool) -> String {
    if gdb {
        format!("{label}-gdb")
    } else {
        label
    }
}

/// The label of a developer's tree: its folder's name.
fn tree_label(tree: &Path) -> anyhow::Result<String> {
    let canon = tree
        .canonicalize()
        .with_context(|| format!("--kernel-tree {}", tree.display()))?;
    Ok(canon
        .file_name()
        .map_or("tree".to_owned(), |n| n.to_string_lossy().into_owned()))
}

/// The labels the choice gives, without downloading or building anything (for `--list`).
pub fn labels(a: &KernelArgs, list: &KernelList) -> anyhow::Result<Vec<String>> {
    let arches = a.arches()?;
    if (a.kernel_image.is_some() || a.kernel_tree.is_some()) && arches != [Arch::X86_64] {
        bail!("--arch {} needs a kernel of the list (--kernel): a tree or a ready image is built or booted for x86_64 only", a.arch.join(","));
    }
    if a.kernel_image.is_some() {
        return Ok(vec!["image".into()]);
    }
    if let Some(t) = &a.kernel_tree {
        return Ok(vec![gdb_label(tree_label(t)?, a.gdb)]);
    }
    Ok(list
        .select_for(a.kernel.as_deref(), &arches)?
        .into_iter()
        .map(|(n, _, arch)| listed_label(&n, a, arch))
        .collect())
}

/// The architecture of each label [`labels`] gives, in the same order.
pub fn label_arches(a: &KernelArgs, list: &KernelList) -> anyhow::Result<Vec<Arch>> {
    if a.kernel_image.is_some() || a.kernel_tree.is_some() {
        return Ok(vec![Arch::X86_64]);
    }
    Ok(list
        .select_for(a.kernel.as_deref(), &a.arches()?)?
        .into_iter()
        .map(|(_, _, arch)| arch)
        .collect())
}

/// The label of list kernel `name` built for `arch` as the arguments ask: `6.12+fixes`,
/// `6.12-s390x`, `6.12+fixes-arm64`.
fn listed_label(name: &str, a: &KernelArgs, arch: Arch) -> String {
    arch.label(&gdb_label(
        label(name, a.debug, a.fixes, !a.patches.is_empty()),
        a.gdb,
    ))
}

/// Every kernel option checked as a run checks it, short of downloading or building: the
/// labels, a tree that is a kernel tree, an image that is a bzImage, patches that exist,
/// --kconfig lines, --features names and a --kselftest-from of the list. `--list` and every
/// command call this before they install, download or probe anything.
pub fn check(a: &KernelArgs, list: &KernelList) -> anyhow::Result<Vec<String>> {
    let labels = labels(a, list)?;
    if let Some(t) = &a.kernel_tree {
        source::check_kernel_tree(t).with_context(|| format!("--kernel-tree {}", t.display()))?;
    }
    if let Some(img) = &a.kernel_image {
        ready_image(img)?;
    }
    for p in &a.patches {
        if !p.is_file() {
            bail!("--patch {}: no such file", p.display());
        }
    }
    checked_kconfig(&a.kconfig)?;
    if let Some(f) = &a.features {
        list::parse_features(f)?;
    }
    if let Some(from) = &a.kselftest_from {
        list.select(Some(from))
            .with_context(|| format!("--kselftest-from {from}"))?;
    }
    Ok(labels)
}

/// Where the list and the cache are, and where progress goes: what resolving needs of the
/// session, and no more.
pub struct Places<'a> {
    pub configs: &'a Path,
    pub cache: &'a Path,
    pub progress: &'a mut Progress,
}

/// Downloads and extracts the pristine source of list kernel `name`, building nothing: the
/// matrix runs this for the next kernel while the current one builds.
pub fn prefetch_source(s: Places, name: &str) -> anyhow::Result<source::SourceTimes> {
    let list = KernelList::load(s.configs)?;
    let spec = list
        .kernels
        .get(name)
        .with_context(|| format!("kernel {name:?} is not in the kernel list"))?;
    let aptc = apt::PrivateApt::new(s.cache);
    let started = std::time::Instant::now();
    aptc.update(&list.all_suites(), &list.all_packages(), s.progress)?;
    let index_secs = started.elapsed().as_secs_f64();
    // The version the build will use: a pinned kernel's pin, not the newest.
    let entry = aptc.entry(&spec.package, spec.version.as_deref())?;
    let (_, mut times) = source::fetch_pristine_timed(&aptc, s.cache, &entry, s.progress)?;
    // A fresh cache fetches the index first: part of getting the first download.
    times.download_secs += index_secs;
    Ok(times)
}

/// Every kernel the arguments name, built (or found in the cache), with the upstream selftests
/// of `--kselftest-from`'s tree when it is given.
pub fn resolve(s: Places, a: &KernelArgs) -> anyhow::Result<Vec<Resolved>> {
    let Some(from) = &a.kselftest_from else {
        return resolve_own(s, a);
    };
    let Places {
        configs,
        cache,
        progress,
    } = s;
    let mut out = resolve_own(
        Places {
            configs,
            cache,
            progress: &mut *progress,
        },
        a,
    )?;
    // The other kernel as listed: its tree's selftests, built beside its cached build.
    let donor_args = KernelArgs {
        kernel: Some(from.clone()),
        kernel_tree: None,
        kernel_image: None,
        patches: vec![],
        features: None,
        fixes: false,
        kselftest_from: None,
        debug: false,
        ..a.clone()
    };
    let list = KernelList::load(configs)?;
    list.select(Some(from))
        .with_context(|| format!("--kselftest-from {from}"))?;
    let donor = resolve_own(
        Places {
            configs,
            cache,
            progress: &mut *progress,
        },
        &donor_args,
    )?
    .remove(0)
    .kernel;
    for r in &mut out {
        r.kernel.kselftests = donor.kselftests.clone();
        r.kernel.provenance = format!(
            "{}; upstream selftests from {} ({})",
            r.kernel.provenance, donor.label, donor.provenance
        );
    }
    Ok(out)
}

fn resolve_own(s: Places, a: &KernelArgs) -> anyhow::Result<Vec<Resolved>> {
    let overridden = a.features.as_ref().map(|f| -> anyhow::Result<Expectation> {
        Ok(Expectation {
            features: list::parse_features(f)?,
            source: "--features".into(),
            known_bugs: vec![],
        })
    });
    let overridden = overridden.transpose()?;
    if let Some(img) = &a.kernel_image {
        if !a.patches.is_empty() {
            bail!("--patch needs a kernel to build; it cannot change a ready --kernel-image");
        }
        let mut r = ready_image(img)?;
        if let Some(e) = overridden {
            r.kernel.expected = e;
        }
        return Ok(vec![r]);
    }
    let patches: Vec<PathBuf> = a
        .patches
        .iter()
        .map(|p| {
            p.canonicalize()
                .with_context(|| format!("--patch {}: no such file", p.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let own = OwnBuild {
        patches,
        kconfig_lines: checked_kconfig(&a.kconfig)?,
        list: KernelList::load(s.configs)?,
        configs: s.configs,
        jobs: a
            .build_jobs
            .filter(|j| *j > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        overridden,
        debug: a.debug,
        gdb: a.gdb,
    };
    match &a.kernel_tree {
        Some(tree) => Ok(vec![resolve_tree(s, a, tree, own)?]),
        None => resolve_listed(s, a, &own),
    }
}

/// What every kernel this harness builds takes from the command line.
struct OwnBuild<'a> {
    /// `--patch` files, canonical.
    patches: Vec<PathBuf>,
    /// `--kconfig` lines, checked.
    kconfig_lines: Vec<String>,
    list: KernelList,
    configs: &'a Path,
    jobs: usize,
    /// `--features`: what the kernel must have, instead of the list's word.
    overridden: Option<Expectation>,
    debug: bool,
    gdb: bool,
}

impl OwnBuild<'_> {
    /// The fragments, with debug.config and gdb.config when asked for.
    fn with_debug(&self, mut f: Vec<PathBuf>) -> Vec<PathBuf> {
        if self.debug {
            f.push(self.configs.join("debug.config"));
        }
        if self.gdb {
            f.push(self.configs.join("gdb.config"));
        }
        f
    }
}

/// A developer's tree (`--kernel-tree`), snapshotted and built with the default kernel's
/// fragments.
fn resolve_tree(s: Places, a: &KernelArgs, tree: &Path, own: OwnBuild) -> anyhow::Result<Resolved> {
    source::check_kernel_tree(tree)?;
    let label = gdb_label(tree_label(tree)?, a.gdb);
    let default = &own.list.kernels[&own.list.default];
    let req = BuildRequest {
        label: label.clone(),
        source: Source::Tree {
            tree: tree.to_owned(),
        },
        fragments: own.with_debug(default.fragment_paths(own.configs)),
        extra_patches: own.patches.len(),
        patches: own.patches,
        absent: vec![],
        kconfig: own.kconfig_lines,
        jobs: own.jobs,
        ccache: a.ccache,
        arch: Arch::X86_64,
        drop: vec![],
    };
    let built = build::build(s.cache, &req, s.progress)?;
    let kselftests = kselftests::build(&built.src, &built.out, s.progress)?;
    let expected = own
        .overridden
        .unwrap_or_else(|| tree_expectation(tree, Some(&built.config)));
    let kernel = KernelUnderTest {
        label,
        bzimage: built.bzimage,
        config: Some(built.config),
        provenance: format!(
            "tree {} (built from its snapshot {}){}",
            tree.display(),
            built.src.display(),
            if built.record.patches.is_empty() {
                String::new()
            } else {
                format!(" + {}", built.record.patches.join(", "))
            }
        ),
        identity: with_patches(format!("tree:{}", tree.display()), &built.record.patches),
        kselftests,
        expected,
        arch: Arch::X86_64,
    };
    let build_secs = built.ran_make.then_some(built.record.build_secs);
    Ok(Resolved {
        kernel,
        build_secs,
        built: built.ran_make.then_some(built.record),
    })
}

/// The list's kernels `--kernel` selects, each downloaded, patched and built (all cached).
fn resolve_listed(s: Places, a: &KernelArgs, own: &OwnBuild) -> anyhow::Result<Vec<Resolved>> {
    let selected = own.list.select_for(a.kernel.as_deref(), &a.arches()?)?;
    // One index over every suite the list names, so switching kernels never refreshes it.
    let aptc = apt::PrivateApt::new(s.cache);
    aptc.update(&own.list.all_suites(), &own.list.all_packages(), s.progress)?;
    let mut out = Vec::new();
    for (name, spec, arch) in selected {
        let entry = aptc.entry(&spec.package, spec.version.as_deref())?;
        if spec.version.is_none() {
            note_new_upload(s.cache, &name, &entry, s.progress);
        }
        let cache = s.cache;
        let fetch = |p: &mut Progress| source::fetch_pristine(&aptc, cache, &entry, p);
        let mut all_patches = spec.patch_paths(own.configs);
        // The fixes go on top of the kernel as listed, under a --patch or a mutant: a build
        // with them starts from the cached build without them.
        let fixes = if a.fixes {
            spec.fix_paths(own.configs)
        } else {
            vec![]
        };
        let extra_patches = fixes.len() + own.patches.len();
        all_patches.extend(fixes.iter().cloned());
        all_patches.extend(own.patches.iter().cloned());
        let label = listed_label(&name, a, arch);
        let (arch_fragments, drop) = own.list.arch_build(arch, own.configs);
        let mut fragments = own.with_debug(spec.fragment_paths(own.configs));
        fragments.extend(arch_fragments);
        let identity = format!(
            "deb:{}={} sha256:{}",
            entry.package, entry.version, entry.sha256
        );
        let req = BuildRequest {
            label: label.clone(),
            source: Source::Pristine {
                identity: identity.clone(),
                fetch: &fetch,
            },
            fragments,
            patches: all_patches,
            extra_patches,
            absent: spec.absent.clone(),
            kconfig: own.kconfig_lines.clone(),
            jobs: own.jobs,
            ccache: a.ccache,
            arch,
            drop,
        };
        let built = build::build(s.cache, &req, s.progress)?;
        if !built.ran_make {
            s.progress.note(&format!(
                "{label}: cached build {} (nothing changed, no make)",
                built.record.key
            ));
        }
        let patch_note = if built.record.patches.is_empty() {
            String::new()
        } else {
            format!(" + {}", built.record.patches.join(", "))
        };
        // The upstream selftests are built with the host's compiler, for x86-64 alone.
        let kselftests = if arch.is_native() {
            kselftests::build(&built.src, &built.out, s.progress)?
        } else {
            vec![]
        };
        let kernel = KernelUnderTest {
            arch,
            label,
            bzimage: built.bzimage,
            config: Some(built.config),
            provenance: format!("{} {}{patch_note}", entry.package, entry.version),
            identity: with_patches(identity, &built.record.patches),
            kselftests,
            expected: {
                let mut e = own
                    .overridden
                    .clone()
                    .unwrap_or_else(|| spec.expectation(&name));
                if a.fixes {
                    // Each known bug's fix is applied: its scenario must pass now.
                    e.known_bugs.clear();
                    e.source = format!("{} with --fixes", e.source);
                }
                e
            },
        };
        out.push(Resolved {
            kernel,
            build_secs: built.ran_make.then_some(built.record.build_secs),
            built: built.ran_make.then_some(built.record),
        });
    }
    Ok(out)
}

/// `--kconfig` values, each one `.config` line (`CONFIG_X=y`, `CONFIG_X=n`, a number or a
/// string), refused here with the value named when it is not.
fn checked_kconfig(values: &[String]) -> anyhow::Result<Vec<String>> {
    for v in values {
        kconfig::parse_fragment(v, "--kconfig").with_context(|| {
            format!(
                "--kconfig {v:?}: write one option as in .config, e.g. --kconfig CONFIG_KPROBES=y"
            )
        })?;
        if !v.trim_start().starts_with("CONFIG_") {
            bail!(
                "--kconfig {v:?}: write one option as in .config, e.g. --kconfig CONFIG_KPROBES=y"
            );
        }
    }
    Ok(values.iter().map(|v| v.trim().to_owned()).collect())
}

/// A new upload to the archive means a new download and a cold build: said once, with how
/// to keep the version this cache has.
fn note_new_upload(cache: &Path, name: &str, entry: &apt::IndexEntry, progress: &mut Progress) {
    let mut cached: Vec<String> = crate::cache::inventory::entries(cache, false)
        .into_iter()
        .filter_map(|e| e.package_version)
        .filter(|(p, _)| *p == entry.package)
        .map(|(_, v)| v)
        .collect();
    cached.sort();
    cached.dedup();
    if cached.is_empty() || cached.contains(&entry.version) {
        return;
    }
    progress.note(&format!(
        "{name}: the archive now has {} {} (this cache has {}): downloading and building it; \
         to stay on a cached one, pin it in kernel-configs/kernels.toml (version = \"{}\")",
        entry.package,
        entry.version,
        cached.join(", "),
        cached[cached.len() - 1]
    ));
}

fn with_patches(base: String, patches: &[String]) -> String {
    patches.iter().fold(base, |acc, p| format!("{acc} +{p}"))
}

/// The cache key a kernel of the list builds under, resolved now: the package version the
/// index names, the compiler, the fragments, patches and absent options. CI keys its cache on
/// it, so a new package version or compiler is a new entry, not a stale hit.
pub fn list_kernel_key(s: Places, name: &str, arch: Arch) -> anyhow::Result<String> {
    let list = KernelList::load(s.configs)?;
    let (name, spec, arch) = list.select_for(Some(name), &[arch])?.remove(0);
    let aptc = apt::PrivateApt::new(s.cache);
    aptc.update(&list.all_suites(), &list.all_packages(), s.progress)?;
    let entry = aptc.entry(&spec.package, spec.version.as_deref())?;
    let identity = format!(
        "deb:{}={} sha256:{}",
        entry.package, entry.version, entry.sha256
    );
    let (arch_fragments, drop) = list.arch_build(arch, s.configs);
    let mut fragments = spec.fragment_paths(s.configs);
    fragments.extend(arch_fragments);
    let key = build::key_for_arch(
        &identity,
        &fragments,
        &spec.patch_paths(s.configs),
        &spec.absent,
        &build::compiler_version_for(arch)?,
        arch,
        &drop,
    )?;
    Ok(format!(
        "{}-{}-{key}",
        arch.label(&name),
        entry.version.replace(['~', ':', '+'], "_")
    ))
}

/// The pristine source tree of a kernel of the list, downloaded and extracted if needed.
pub fn pristine_tree(s: Places, name: &str) -> anyhow::Result<PathBuf> {
    let list = KernelList::load(s.configs)?;
    let (_, spec) = list.select(Some(name))?.remove(0);
    let aptc = apt::PrivateApt::new(s.cache);
    aptc.update(&list.all_suites(), &list.all_packages(), s.progress)?;
    let entry = aptc.newest(&spec.package)?;
    source::fetch_pristine(&aptc, s.cache, &entry, s.progress)
}

/// What a tree's kernel must have, from its uapi header (which ioctls and flags it defines)
/// and its `.config` (madvise, failslab).
pub fn tree_expectation(tree: &Path, config: Option<&Path>) -> Expectation {
    let header = [
        "include/uapi/linux/user_events.h",
        "include/linux/user_events.h",
    ]
    .iter()
    .find_map(|h| std::fs::read_to_string(tree.join(h)).ok())
    .unwrap_or_default();
    let dot_config = config
        .and_then(|c| std::fs::read_to_string(c).ok())
        .unwrap_or_default();
    let mut e = header_expectation(&header, &dot_config);
    e.source = format!("the uapi header and .config of {}", tree.display());
    e
}

fn header_expectation(header: &str, dot_config: &str) -> Expectation {
    let mut features = std::collections::BTreeSet::new();
    if header.contains("DIAG_IOCSUNREG") {
        features.insert(Feature::RemoteWrite);
    } else if header.contains("DIAG_IOCSREG") {
        features.insert(Feature::StatusPage);
    }
    if header.contains("USER_EVENT_REG_PERSIST") {
        features.insert(Feature::RegPersist);
    }
    if header.contains("USER_EVENT_REG_MULTI_FORMAT") {
        features.insert(Feature::RegMultiFormat);
    }
    if config_has(dot_config, "ADVISE_SYSCALLS") {
        features.insert(Feature::Madvise);
    }
    if has_failslab(dot_config) {
        features.insert(Feature::Failslab);
    }
    if config_has(dot_config, "SECRETMEM") {
        features.insert(Feature::Secretmem);
    }
    if config_has(dot_config, "USERFAULTFD") {
        features.insert(Feature::Userfaultfd);
    }
    Expectation {
        features,
        source: String::new(),
        known_bugs: vec![],
    }
}

/// Whether a `.config` lets the failslab scenarios run: fail-nth and the failslab knobs in
/// debugfs (fault-injection.config).
fn has_failslab(dot_config: &str) -> bool {
    config_has(dot_config, "FAILSLAB") && config_has(dot_config, "FAULT_INJECTION_DEBUG_FS")
}

/// Whether a `.config`'s text sets `CONFIG_<option>=y`.
fn config_has(dot_config: &str, option: &str) -> bool {
    kconfig::parse_dot_config(dot_config)
        .get(option)
        .map(String::as_str)
        == Some("y")
}

/// What a ready image must have, from the version in its boot header (`6.12.117 (...)`).
fn version_expectation(version: (u32, u32), dot_config: &str) -> Expectation {
    let at_least = |maj, min| version >= (maj, min);
    let mut features = std::collections::BTreeSet::new();
    features.insert(if at_least(6, 4) {
        Feature::RemoteWrite
    } else {
        Feature::StatusPage
    });
    if at_least(6, 7) {
        features.insert(Feature::RegPersist);
    }
    if at_least(6, 9) {
        features.insert(Feature::RegMultiFormat);
    }
    // Without a .config beside the image, the list's base.config (which sets it) is assumed.
    if dot_config.is_empty() || config_has(dot_config, "ADVISE_SYSCALLS") {
        features.insert(Feature::Madvise);
    }
    // Not so fault injection: a kernel built for use leaves it out, so without a .config
    // saying otherwise an image is not expected to have it.
    if has_failslab(dot_config) {
        features.insert(Feature::Failslab);
    }
    // Without a .config, not assumed: the option is the kernel's own default only with
    // ARCH_HAS_SET_DIRECT_MAP, and tinyconfig leaves it out (base.config sets it).
    if config_has(dot_config, "SECRETMEM") {
        features.insert(Feature::Secretmem);
    }
    // Likewise: tinyconfig leaves it out and base.config sets it.
    if config_has(dot_config, "USERFAULTFD") {
        features.insert(Feature::Userfaultfd);
    }
    Expectation {
        features,
        source: format!("the image's version {}.{}", version.0, version.1),
        known_bugs: vec![],
    }
}

/// The kernel version string of an x86 bzImage: the setup header's `kernel_version` field
/// (offset 0x20e) points, less 0x200, at a NUL-terminated string.
pub fn bzimage_version(bytes: &[u8]) -> Option<(u32, u32)> {
    let ptr = u16::from_le_bytes(bytes.get(0x20e..0x210)?.try_into().ok()?) as usize + 0x200;
    let s = bytes.get(ptr..)?;
    let s = &s[..s.iter().position(|b| *b == 0).unwrap_or(s.len()).min(64)];
    let text = std::str::from_utf8(s).ok()?;
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A ready bzImage: check it is one, and where its .config sits beside it (a build tree's
/// arch/x86/boot/bzImage), that it has user_events.
pub fn ready_image(img: &Path) -> anyhow::Result<Resolved> {
    let bytes =
        std::fs::read(img).with_context(|| format!("read --kernel-image {}", img.display()))?;
    if bytes.len() < 0x210 || &bytes[0x202..0x206] != b"HdrS" {
        bail!(
            "{} is not an x86 bzImage (no HdrS boot header at 0x202)",
            img.display()
        );
    }
    let config = img
        .ancestors()
        .nth(4)
        .map(|d| d.join(".config"))
        .filter(|c| c.is_file());
    let dot_config = config
        .as_ref()
        .and_then(|c| std::fs::read_to_string(c).ok())
        .unwrap_or_default();
    if let Some(c) = &config {
        if !config_has(&dot_config, "USER_EVENTS") {
            bail!(
                "{} was built without CONFIG_USER_EVENTS (see {}): rebuild with it, or let `cargo xtask test` build a kernel",
                img.display(),
                c.display()
            );
        }
    }
    let expected = match bzimage_version(&bytes) {
        Some(v) => version_expectation(v, &dot_config),
        None => bail!(
            "{}: no kernel version in its boot header, so what it must have is unknown: state it with --features",
            img.display()
        ),
    };
    let kernel = KernelUnderTest {
        label: "image".into(),
        bzimage: img.to_owned(),
        config,
        provenance: format!("image {}", img.display()),
        identity: format!("image:{}", img.display()),
        kselftests: vec![],
        expected,
        arch: Arch::X86_64,
    };
    Ok(Resolved {
        kernel,
        build_secs: None,
        built: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bzimage_with_version(v: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let at = 0x800usize;
        image[0x20e..0x210].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
        image[at..at + v.len()].copy_from_slice(v.as_bytes());
        image
    }

    #[test]
    fn a_file_that_is_not_a_bzimage_is_refused_before_booting() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("vmlinux");
        std::fs::write(&img, vec![0u8; 4096]).unwrap();
        let e = format!("{:#}", ready_image(&img).err().unwrap());
        assert!(e.contains("is not an x86 bzImage"), "{e}");
    }

    #[test]
    fn a_bzimage_whose_config_lacks_user_events_is_refused() {
        // The layout of a build tree: <out>/arch/x86/boot/bzImage beside <out>/.config.
        let d = tempfile::tempdir().unwrap();
        let boot = d.path().join("arch/x86/boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(
            boot.join("bzImage"),
            bzimage_with_version("6.12.117 (root@host) #1"),
        )
        .unwrap();
        std::fs::write(
            d.path().join(".config"),
            "CONFIG_FTRACE=y\n# CONFIG_USER_EVENTS is not set\n",
        )
        .unwrap();
        let e = format!("{:#}", ready_image(&boot.join("bzImage")).err().unwrap());
        assert!(e.contains("without CONFIG_USER_EVENTS"), "{e}");
        std::fs::write(d.path().join(".config"), "CONFIG_USER_EVENTS=y\n").unwrap();
        let r = ready_image(&boot.join("bzImage")).unwrap();
        assert!(
            r.kernel.expected.has(Feature::RemoteWrite)
                && r.kernel.expected.has(Feature::RegMultiFormat)
        );
        assert!(
            !r.kernel.expected.has(Feature::Madvise),
            "the .config has no ADVISE_SYSCALLS"
        );
    }

    #[test]
    fn an_image_expects_what_its_version_has() {
        assert_eq!(
            bzimage_version(&bzimage_with_version("6.1.192 (x)")),
            Some((6, 1))
        );
        let old = version_expectation((6, 1), "");
        assert!(
            old.has(Feature::StatusPage)
                && !old.has(Feature::RemoteWrite)
                && !old.has(Feature::RegPersist)
        );
        let mid = version_expectation((6, 8), "");
        assert!(
            mid.has(Feature::RemoteWrite)
                && mid.has(Feature::RegPersist)
                && !mid.has(Feature::RegMultiFormat)
        );
        assert_eq!(bzimage_version(&[0u8; 0x100]), None);
        // A user's image is expected to lack fault injection unless its .config says so.
        assert!(!mid.has(Feature::Failslab));
        let debug = "CONFIG_FAILSLAB=y\nCONFIG_FAULT_INJECTION_DEBUG_FS=y\n";
        assert!(version_expectation((6, 8), debug).has(Feature::Failslab));
    }

    #[test]
    fn a_tree_expects_what_its_uapi_header_defines() {
        let h612 = "#define DIAG_IOCSREG _IOWR(...)\n#define DIAG_IOCSUNREG _IOW(...)\nUSER_EVENT_REG_PERSIST = 1U << 0,\nUSER_EVENT_REG_MULTI_FORMAT = 1U << 1,";
        let e = header_expectation(
            h612,
            "CONFIG_ADVISE_SYSCALLS=y\nCONFIG_FAILSLAB=y\nCONFIG_FAULT_INJECTION_DEBUG_FS=y\nCONFIG_SECRETMEM=y\nCONFIG_USERFAULTFD=y\n",
        );
        assert_eq!(
            e.features,
            Feature::ALL
                .into_iter()
                .filter(|f| *f != Feature::StatusPage)
                .collect()
        );
        // failslab without its debugfs knobs cannot fail a GFP_KERNEL allocation.
        let e = header_expectation(h612, "CONFIG_FAILSLAB=y\n");
        assert!(!e.has(Feature::Failslab));
        // memfd_secret and userfaultfd only where the tree's .config builds them.
        assert!(!e.has(Feature::Secretmem) && !e.has(Feature::Userfaultfd));
        let e = header_expectation("#define DIAG_IOCSREG _IOWR(...)", "");
        assert_eq!(e.features, [Feature::StatusPage].into_iter().collect());
    }

    #[test]
    fn kconfig_values_are_dot_config_lines_or_refused() {
        assert_eq!(
            checked_kconfig(&["CONFIG_KPROBES=y".into(), " CONFIG_LOG_BUF_SHIFT=17".into()])
                .unwrap(),
            vec!["CONFIG_KPROBES=y", "CONFIG_LOG_BUF_SHIFT=17"]
        );
        for bad in ["KPROBES=y", "CONFIG_KPROBES", "CONFIG_X=y CONFIG_Y=y", ""] {
            let e = format!("{:#}", checked_kconfig(&[bad.into()]).unwrap_err());
            assert!(e.contains("e.g. --kconfig CONFIG_KPROBES=y"), "{bad}: {e}");
        }
    }

    #[test]
    fn labels_follow_one_rule() {
        assert_eq!(label("6.12", false, false, false), "6.12");
        assert_eq!(label("6.12", true, false, true), "6.12-debug+patched");
        assert_eq!(label("6.12", false, true, true), "6.12+fixes+patched");
    }
}
