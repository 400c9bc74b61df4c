//! The bench's table: one [`Row`] per measurement (median, min, max of its samples), as
//! Markdown for people and as `bench.json` ([`BenchReport`]) for comparisons.

use serde::{Deserialize, Serialize};

use super::Group;

/// One row of the table; `bench.json` holds them as [`BenchReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The row number (what `--only` selects).
    pub(super) row: u32,
    /// `1a`, `2.vm`, ...
    pub(super) id: String,
    pub(super) what: String,
    /// Seconds, one per run (empty when the row is a note only).
    pub(super) samples: Vec<f64>,
    pub(super) median: Option<f64>,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) ratio: Option<String>,
    pub(super) note: String,
}

impl Row {
    pub(super) fn new(
        group: Group,
        id: &str,
        what: &str,
        samples: Vec<f64>,
        note: impl Into<String>,
    ) -> Row {
        let mut sorted = samples.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let median = (!sorted.is_empty()).then(|| {
            let n = sorted.len();
            if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            }
        });
        Row {
            row: group.number(),
            id: id.into(),
            what: what.into(),
            min: sorted.first().copied(),
            max: sorted.last().copied(),
            median,
            samples,
            ratio: None,
            note: note.into(),
        }
    }

    pub(super) fn text(group: Group, id: &str, what: &str, note: impl Into<String>) -> Row {
        Row::new(group, id, what, vec![], note)
    }

    pub(super) fn ratio_to(mut self, other: Option<f64>, name: &str) -> Row {
        if let (Some(a), Some(b)) = (self.median, other) {
            if b > 0.0 {
                self.ratio = Some(format!("{:.1}× {name}", a / b));
            }
        }
        self
    }
}

pub(super) fn secs(x: Option<f64>) -> String {
    x.map_or("–".into(), |s| {
        if s < 10.0 {
            format!("{s:.2}")
        } else {
            format!("{s:.1}")
        }
    })
}

pub(super) fn markdown(rows: &[Row], header: &str) -> String {
    let mut s = String::new();
    s.push_str(header);
    s.push_str("\n\n| # | what | median s | min s | max s | n | ratio | notes |\n|---|---|---:|---:|---:|---:|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.what,
            secs(r.median),
            secs(r.min),
            secs(r.max),
            if r.samples.is_empty() {
                "–".into()
            } else {
                r.samples.len().to_string()
            },
            r.ratio.as_deref().unwrap_or(""),
            r.note.replace('|', "\\|").replace('\n', " ")
        ));
    }
    s
}

/// `bench.json`: the rows and the conditions they were measured in.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub accel: harness::qemu::Accel,
    pub runs: usize,
    pub cpus: usize,
    pub load_before: String,
    pub load_after: String,
    pub rows: Vec<Row>,
    /// Row 12's runs one by one, with the trials that failed in each (absent: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_load: Option<super::loaded::UnderLoad>,
}
