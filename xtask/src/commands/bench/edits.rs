//! Rows 4 and 8: one line of the user_events source edited, then rebuilt, booted and run —
//! in the harness's own build tree (4) and in a developer's git tree (8).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use crate::args::KernelArgs;
use crate::sys::proc::{self};
use crate::sys::progress::Step;

use super::cold::find_build;
use super::suite::warm_suite;
use super::table::Row;
use super::Group;
use super::{say, Setup};

// Row 4: a one-line edit of kernel/trace/trace_events_user.c, rebuilt and rerun.

/// The file row 4 edits.
const EDITED: &str = "kernel/trace/trace_events_user.c";

pub(super) fn edit_rerun(s: &Setup, runs: usize, floor: Option<f64>) -> anyhow::Result<Vec<Row>> {
    let samples = measure_edits(s, runs)?;
    Ok(edit_rows(samples, floor))
}

/// Row 4's samples, one per run, and how many runs reported failing scenarios.
#[derive(Default)]
struct EditSamples {
    total: Vec<f64>,
    make: Vec<f64>,
    vm: Vec<f64>,
    other: Vec<f64>,
    guest: Vec<f64>,
    copy: Vec<f64>,
    seed: Vec<f64>,
    kself: Vec<f64>,
    failed: usize,
}

/// `runs` times: a patch that adds one line to [`EDITED`], the suite on it, the entry dropped.
fn measure_edits(s: &Setup, runs: usize) -> anyhow::Result<EditSamples> {
    const FILE: &str = EDITED;
    // The default kernel's build tree is a patched (here: unpatched) copy of the pristine source.
    // <entry>/src/out/arch/x86/boot/bzImage: the source is the build folder's parent.
    let src = s
        .kernel
        .bzimage
        .ancestors()
        .nth(5)
        .context("bzImage path has no build tree")?
        .to_owned();
    let original = std::fs::read_to_string(src.join(FILE))
        .with_context(|| format!("read {}", src.join(FILE).display()))?;
    let first: Vec<&str> = original.lines().take(3).collect();
    if first.len() < 3 {
        bail!("{FILE} is shorter than 3 lines");
    }
    let mut m = EditSamples::default();
    for i in 0..runs {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!("bench-edit-{nanos}.patch");
        let patch = s.dir.join(&name);
        std::fs::write(
            &patch,
            format!(
                "--- a/{FILE}\n+++ b/{FILE}\n@@ -1,3 +1,4 @@\n {}\n+/* ue-bench edit {nanos} */\n {}\n {}\n",
                first[0], first[1], first[2]
            ),
        )?;
        let args = KernelArgs {
            patches: vec![patch],
            ..s.kernel_args.clone()
        };
        let sample = warm_suite(s, &args)?;
        let entry = find_build(&s.cache, &name).with_context(|| {
            format!("no complete cache entry for {name} after the patched build")
        })?;
        if !sample.ok {
            m.failed += 1;
        }
        let made = sample.make.unwrap_or(entry.1);
        say(&format!(
            "4 edit + rebuild + suite run {}/{runs}: {:.1} s (make {made:.1} s, VM {:.1} s)",
            i + 1,
            sample.total,
            sample.vm
        ));
        m.total.push(sample.total);
        m.make.push(made);
        m.vm.push(sample.vm);
        m.other.push(sample.total - made - sample.vm);
        let p = &sample.progress;
        m.guest.extend(p.span(Step::Copy).map(|(start, _)| start));
        m.copy.extend(p.span(Step::Copy).map(|(a, b)| b - a));
        m.seed.extend(p.span(Step::Seed).map(|(a, b)| b - a));
        m.kself.extend(p.span(Step::Kselftest).map(|(a, b)| b - a));
        // Each edit is its own cache entry (a copy of the build folder); drop it.
        let _ = std::fs::remove_dir_all(&entry.0);
        let _ = std::fs::remove_file(entry.0.with_extension("lock"));
    }
    Ok(m)
}

/// Row 4's rows: the whole loop, then where its time went.
fn edit_rows(m: EditSamples, floor: Option<f64>) -> Vec<Row> {
    const FILE: &str = EDITED;
    let failed = m.failed;
    let note = format!(
        "`cargo xtask test --patch FILE --no-install` in-process, FILE adds a unique comment line to {FILE}{}",
        if failed > 0 { format!("; {failed} run(s) reported failing scenarios") } else { String::new() }
    );
    vec![
        Row::new(
            Group::EditRerun,
            "4",
            "edit one line, rebuild + boot + suite",
            m.total,
            note,
        )
        .ratio_to(floor, "floor"),
        Row::new(
            Group::EditRerun,
            "4.make",
            "  make alone",
            m.make,
            "the build's own record (build_secs)",
        ),
        Row::new(
            Group::EditRerun,
            "4.vm",
            "  VM wall",
            m.vm,
            "results.json report.wall_ms",
        ),
        Row::new(
            Group::EditRerun,
            "4.other",
            "  the rest",
            m.other,
            "total − make − VM; split below from the pipeline's step log",
        ),
        Row::new(
            Group::EditRerun,
            "4.guest",
            "    host tools, cache lookups, SHA-256 re-check of the cached .deb",
            m.guest,
            "start → patch step",
        ),
        Row::new(
            Group::EditRerun,
            "4.copy",
            "    hard-linked copy of the source + patch",
            m.copy,
            "cp -al of the pristine tree, GNU patch",
        ),
        Row::new(
            Group::EditRerun,
            "4.seed",
            "    copy of the unpatched build folder",
            m.seed,
            "cp -a of builds/<key>/src/out",
        ),
        Row::new(
            Group::EditRerun,
            "4.kselftest",
            "    upstream user_events selftests rebuilt",
            m.kself,
            "rebuilt only when the selftests' sources or the uapi header change",
        ),
    ]
}

// Row 8: a developer's own tree (configured in place), one line of the user_events source
// edited there, then `test --kernel-tree`: snapshot sync, incremental make, boot, the suite.

pub(super) fn own_tree_edit(s: &Setup, runs: usize, tree: &Path) -> anyhow::Result<Vec<Row>> {
    const FILE: &str = "kernel/trace/trace_events_user.c";
    if !tree.join(".git").exists() {
        return Ok(vec![Row::text(
            Group::OwnTreeEdit,
            "8",
            "own tree: edit one line → results",
            format!("not run: no git kernel tree at {} (`--tree PATH`, or run `cargo xtask selftest -- devloop` once)", tree.display()),
        )]);
    }
    let path = tree.join(FILE);
    let original =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let args = KernelArgs {
        kernel_tree: Some(tree.to_owned()),
        ..s.kernel_args.clone()
    };
    // Once without an edit, so the rows measure an edit and not a first build.
    warm_suite(s, &args)?;
    let (mut total, mut make, mut vm, mut sync) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // A new file in place of the old, as editors and git write it.
        let tmp = path.with_extension("ue-bench");
        std::fs::write(&tmp, format!("/* ue-bench edit {nanos} */\n{original}"))
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
        let sample = warm_suite(s, &args);
        let restore = proc::git(tree, &["checkout", "-q", "--", FILE]);
        let sample = sample?;
        if restore.is_err() {
            bail!(
                "could not put {FILE} back in {} (git checkout)",
                tree.display()
            );
        }
        let made = sample.make.unwrap_or(0.0);
        say(&format!(
            "8 own tree edit → results run {}/{runs}: {:.1} s (make {made:.1} s, VM {:.1} s)",
            i + 1,
            sample.total,
            sample.vm
        ));
        total.push(sample.total);
        make.push(made);
        vm.push(sample.vm);
        sync.extend(sample.progress.span(Step::Snapshot).map(|(a, b)| b - a));
    }
    Ok(vec![
        Row::new(
            Group::OwnTreeEdit,
            "8",
            "own tree: edit one line → results",
            total,
            format!("`cargo xtask test --kernel-tree {}` in-process after a one-line edit of {FILE}; target ≤ 30 s", tree.display()),
        ),
        Row::new(Group::OwnTreeEdit, "8.sync", "  snapshot sync", sync, "the tree's sources compared by size and mtime, the changed file copied"),
        Row::new(Group::OwnTreeEdit, "8.make", "  incremental make", make, "one object, then the link"),
        Row::new(Group::OwnTreeEdit, "8.vm", "  VM wall", vm, "results.json report.wall_ms"),
    ])
}
