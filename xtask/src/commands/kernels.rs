//! `cargo xtask kernels`: the kernel list, for people and for CI's job matrix (`--json`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::session::Session;

#[derive(Args)]
pub struct KernelsArgs {
    /// Print the names as a JSON array (the CI workflow's matrix reads this).
    #[arg(long)]
    pub json: bool,
    /// Print the cache key this kernel builds under, resolved against the package index now
    /// (package version, compiler, fragments, patches): CI's cache key.
    #[arg(long, value_name = "KERNEL")]
    pub cache_key: Option<String>,
    /// Move every pinned kernel's `version` in kernels.toml to the newest in the archive.
    #[arg(long)]
    pub update: bool,
    /// Cache directory (default $UE_CACHE_DIR or ~/.cache/ue-harness).
    #[arg(long)]
    pub cache_dir: Option<std::path::PathBuf>,
    /// With --json: the kernels built for these architectures (a comma list), as
    /// `{"kernel": NAME, "arch": ARCH}` objects (the workflow's foreign-architecture jobs).
    /// With --cache-key: the key of the build for this one architecture.
    #[arg(long = "arch", value_name = "ARCH", value_delimiter = ',')]
    pub arch: Vec<String>,
}

pub fn run(a: KernelsArgs) -> anyhow::Result<ExitCode> {
    let mut s = Session::new(a.cache_dir.as_deref(), false);
    let arches = harness::arch::parse_list(&a.arch).map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    if let Some(name) = &a.cache_key {
        let [arch] = arches[..] else {
            anyhow::bail!("--cache-key takes one --arch");
        };
        println!("{}", s.kernel_cache_key(name, arch)?);
        return Ok(ExitCode::SUCCESS);
    }
    let list = s.kernel_list()?;
    if a.json && !a.arch.is_empty() {
        let pairs: Vec<serde_json::Value> = list
            .select_for(Some("all"), &arches)?
            .into_iter()
            .map(|(kernel, _, arch)| serde_json::json!({"kernel": kernel, "arch": arch}))
            .collect();
        println!("{}", serde_json::to_string(&pairs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&list.kernels.keys().collect::<Vec<_>>())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The newest versions: refreshed when the index is a day old; offline, the cached
    // index (with a warning); with no index at all, unknown.
    let apt = crate::kernel::apt::PrivateApt::new(&s.cache);
    let index = apt.update(&list.all_suites(), &list.all_packages(), &mut s.progress);
    if let Err(e) = &index {
        eprintln!("warning: no package index, newest versions unknown: {e:#}");
    }
    let cached = crate::cache::inventory::entries(&s.cache, false);
    if a.update {
        let path = s.configs.join("kernels.toml");
        let mut text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let mut moved = 0;
        for (name, k) in list.kernels.iter().filter(|(_, k)| k.version.is_some()) {
            let newest = apt.newest(&k.package)?.version;
            if k.version.as_deref() != Some(newest.as_str()) {
                text = crate::kernel::list::with_pin(&text, name, &newest)?;
                eprintln!(
                    "{name}: pin moved from {} to {newest}",
                    k.version.as_deref().unwrap_or("-")
                );
                moved += 1;
            }
        }
        crate::cache::write_atomic(&path, text.as_bytes())?;
        eprintln!("{moved} pin(s) moved in {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows: Vec<Vec<String>> = vec![[
        "kernel", "package", "pinned", "cached", "newest", "features",
    ]
    .map(String::from)
    .to_vec()];
    for (name, k) in &list.kernels {
        let default = if *name == list.default {
            " (default)"
        } else {
            ""
        };
        let mut versions: Vec<&str> = cached
            .iter()
            .filter_map(|e| e.package_version.as_ref())
            .filter(|(p, _)| *p == k.package)
            .map(|(_, v)| v.as_str())
            .collect();
        versions.sort();
        versions.dedup();
        let newest = apt.newest(&k.package).map_or("?".to_owned(), |e| e.version);
        rows.push(vec![
            format!("{name}{default}"),
            format!("{} ({})", k.package, k.suites.join(", ")),
            k.version.as_deref().unwrap_or("-").to_owned(),
            if versions.is_empty() {
                "-".to_owned()
            } else {
                versions.join(" ")
            },
            newest,
            k.features.join(", "),
        ]);
    }
    print!("{}", aligned(&rows));
    Ok(ExitCode::SUCCESS)
}

/// Rows as columns padded to their widest cell (two spaces between), the last one unpadded.
fn aligned(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["kernel".to_owned(), "pinned".into(), "features".into()],
            vec!["6.12 (default)".to_owned(), "-".into(), "madvise".into()],
        ];
        let text = aligned(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].find("pinned"), lines[1].find('-'), "{text}");
        assert_eq!(
            lines[0].find("features"),
            lines[1].find("madvise"),
            "{text}"
        );
    }
}
