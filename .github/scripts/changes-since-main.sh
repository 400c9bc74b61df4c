#!/bin/sh
# What changed since the last successful run of the kernels workflow on main, as Markdown
# appended to a job summary: `cargo xtask report --baseline` of this job's runs against the
# same artifacts of that run. The kernels workflow calls it before its full report, so the
# changes lead the summary.
#
# Usage: changes-since-main.sh ARTIFACT_PATTERN NEW_RUNS_DIR SUMMARY_FILE
#   ARTIFACT_PATTERN  which artifacts of that run hold its runs (`runs-6.12`, `runs-*`)
#   NEW_RUNS_DIR      this job's runs (a folder holding results.json files, at any depth)
#
# Needs GH_TOKEN (with `actions: read`) and GITHUB_REPOSITORY, as a workflow step has them.
# No baseline (the first run, an expired artifact, a kernel new since then) is one line in
# the summary, not a failure; neither is a regression, which the suite's own step reports.
set -u

pattern=$1
new=$2
summary=$3
workflow=kernels.yml
baseline=baseline

say() {
    printf '%s\n\n' "$1" >>"$summary"
}

# `gh api` rather than `gh run list --status`: the distribution's gh may predate that flag.
run_id=$(gh api "repos/$GITHUB_REPOSITORY/actions/workflows/$workflow/runs?branch=main&status=success&per_page=1" \
    --jq '.workflow_runs[0].id // empty') || run_id=
if [ -z "$run_id" ]; then
    say "**Changes since main:** no baseline: no successful \`$workflow\` run on main was found (the first run, or the query failed; see the step's log)."
    exit 0
fi

rm -rf "$baseline"
if ! gh run download "$run_id" --repo "$GITHUB_REPOSITORY" --pattern "$pattern" --dir "$baseline"; then
    say "**Changes since main:** no baseline: run $run_id on main has no artifact \`$pattern\` left (expired, or this kernel is new since then)."
    exit 0
fi

say "**Changes since main** (against run $run_id, the last successful one on main):"
rc=0
cargo xtask report --baseline "$baseline" -- "$new" --markdown "$summary" || rc=$?
case $rc in
    # 101: a trial fails that did not before; the diff above says which, the suite step fails.
    0 | 101) ;;
    *) say "**Changes since main:** \`cargo xtask report --baseline\` failed (exit $rc); see the step's log." ;;
esac
exit 0
