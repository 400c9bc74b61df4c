//! Generating mutants: universalmutator installed into the cache (a pinned version), run once
//! per source file and tool version, its mutants kept as specs with the function each is in.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::sys::host_tools;
use crate::sys::progress::Progress;

use super::{MutantSpec, TOOL_VERSION};

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
/// Whether universalmutator is already installed in the cache (then neither python3 nor
/// python3-venv is needed).
pub fn tool_installed(cache: &Path) -> bool {
    let venv = cache
        .join("tools")
        .join(format!("universalmutator-{TOOL_VERSION}"));
    venv.join("INSTALLED").is_file() && venv.join("bin/mutate").is_file()
}

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
    // Two runs that start on an empty cache (a validation run and a `--list` beside it)
    // would each remove and remake the other's venv: the second waits, then finds it made.
    let _lock = crate::cache::lock(
        &cache
            .join("tools")
            .join(format!("universalmutator-{TOOL_VERSION}.lock")),
    )?;
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

pub(super) fn tempfile_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    let d = parent.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    Ok(d)
}
