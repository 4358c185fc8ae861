//! The markdown the harness prints and writes to `bench/results/latest.md`.
//!
//! The table's header, cell formats and the `Machine: ` and `FAILED:` lines are what
//! `tests/e2e/bench_smoke.sh` and docs/benchmarks.md expect: change them together.

use crate::stats::{self, MinMedian};

/// How a row's samples are shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// Samples in ms, shown as seconds with one decimal.
    Secs,
    /// Samples in ms, shown as whole ms.
    Ms,
    /// Samples in ms, shown with two decimals (sub-millisecond timings).
    MsFine,
    /// Samples in MB; one sample per side, shown alone (no min / median).
    Mb,
    /// Samples in MB, shown with two decimals (min / median).
    MbFine,
    /// Samples in percent, shown with two decimals (min / median).
    Pct,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Secs => format!("{:.1} s", v / 1000.0),
            Unit::Ms => format!("{v:.0} ms"),
            Unit::MsFine => format!("{v:.2} ms"),
            Unit::Mb => format!("{v:.0} MB"),
            Unit::MbFine => format!("{v:.2} MB"),
            Unit::Pct => format!("{v:.2} %"),
        }
    }
}

/// One row of the main table: kiln on the left, then each peer (or a reference) with
/// kiln's ratio to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario column.
    pub name: String,
    /// How the samples are shown.
    pub unit: Unit,
    /// kiln's min and median, `None` without samples.
    pub kiln: Option<MinMedian>,
    /// Each right-hand side's min and median, in the order of [`Report::peers`]; `None`
    /// without samples.
    pub peers: Vec<Option<MinMedian>>,
}

impl Row {
    /// A row from raw samples, against one peer.
    pub fn new(name: impl Into<String>, unit: Unit, kiln: &[f64], peer: &[f64]) -> Row {
        Row::against(name, unit, kiln, &[peer])
    }

    /// A row from raw samples, against each of `peers`.
    pub fn against(name: impl Into<String>, unit: Unit, kiln: &[f64], peers: &[&[f64]]) -> Row {
        Row {
            name: name.into(),
            unit,
            kiln: stats::min_median(kiln),
            peers: peers.iter().map(|p| stats::min_median(p)).collect(),
        }
    }

    fn cell(&self, side: Option<MinMedian>) -> String {
        match side {
            None => "-".to_string(),
            Some(m) if self.unit == Unit::Mb => self.unit.show(m.median),
            Some(m) => format!("{} / {}", self.unit.show(m.min), self.unit.show(m.median)),
        }
    }

    /// The markdown line: `| name | kiln | peer | ratio |`, a peer and ratio pair per peer.
    pub fn render(&self) -> String {
        self.render_for(self.peers.len().max(1))
    }

    /// The markdown line in a table of `peers` peers: the ones this row lacks are `- | -`.
    pub fn render_for(&self, peers: usize) -> String {
        let mut out = format!("| {} | {} |", self.name, self.cell(self.kiln));
        for i in 0..peers {
            let peer = self.peers.get(i).copied().flatten();
            let ratio = stats::ratio(self.kiln.map(|m| m.median), peer.map(|m| m.median))
                .map_or("-".to_string(), |r| format!("{r:.2}"));
            out.push_str(&format!(" {} | {} |", self.cell(peer), ratio));
        }
        out
    }
}

/// Everything the run found, rendered once at the end.
#[derive(Debug, Default)]
pub struct Report {
    /// The peers' names in the header, in the rows' order; empty: one, `peer`.
    pub peers: Vec<String>,
    /// The main table's rows, in scenario order.
    pub rows: Vec<Row>,
    /// A second table (what is inside the images), already rendered; may be empty.
    pub inside: Vec<String>,
    /// Bullet lines under the tables.
    pub notes: Vec<String>,
    /// Builds that failed; their samples are left out.
    pub failed: Vec<String>,
    /// Closing lines (mode, commit, `Machine: ...`).
    pub footer: Vec<String>,
}

/// The main table's header line with one peer, `peer`.
pub const HEADER: &str =
    "| scenario | kiln min / median | peer min / median | kiln/peer (medians) |";

/// The header line for `peers` (by name), and its separator line.
pub fn header(peers: &[String]) -> (String, String) {
    let mut head = "| scenario | kiln min / median |".to_string();
    for p in peers {
        head.push_str(&format!(" {p} min / median | kiln/{p} (medians) |"));
    }
    (head, format!("|---|---|{}", "---|---|".repeat(peers.len())))
}

impl Report {
    /// The whole markdown text, newline-terminated.
    pub fn render(&self) -> String {
        let (head, rule) = if self.peers.is_empty() {
            (HEADER.to_string(), "|---|---|---|---|".to_string())
        } else {
            header(&self.peers)
        };
        let mut out = vec![head, rule];
        let width = self.peers.len().max(1);
        out.extend(self.rows.iter().map(|r| r.render_for(width)));
        if !self.inside.is_empty() {
            out.push(String::new());
            out.extend(self.inside.iter().cloned());
        }
        out.push(String::new());
        out.extend(self.notes.iter().map(|n| format!("- {n}")));
        if !self.failed.is_empty() {
            out.push(format!(
                "- FAILED: {} (their samples are left out)",
                self.failed.join(" ")
            ));
        }
        out.push(String::new());
        out.extend(self.footer.iter().cloned());
        out.join("\n") + "\n"
    }
}

/// A number for prose: no decimals when whole, else up to two; `-` when missing.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => {
            let s = format!("{v:.2}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_each_unit() {
        let r = Row::new(
            "cold build, minimal",
            Unit::Secs,
            &[34700.0, 32900.0],
            &[42400.0],
        );
        assert_eq!(
            r.render(),
            "| cold build, minimal | 32.9 s / 33.8 s | 42.4 s / 42.4 s | 0.80 |"
        );
        let r = Row::new(
            "no-op rebuild",
            Unit::Ms,
            &[176.0, 179.0, 190.0],
            &[84.0, 92.0, 99.0],
        );
        assert_eq!(
            r.render(),
            "| no-op rebuild | 176 ms / 179 ms | 84 ms / 92 ms | 1.95 |"
        );
        let r = Row::new("frontend", Unit::MsFine, &[29.0, 35.5], &[]);
        assert_eq!(r.render(), "| frontend | 29.00 ms / 32.25 ms | - | - |");
        let r = Row::new("image size, minimal", Unit::Mb, &[375.2], &[395.4]);
        assert_eq!(
            r.render(),
            "| image size, minimal | 375 MB | 395 MB | 0.95 |"
        );
        let r = Row::new("pushed", Unit::MbFine, &[0.5], &[100.0]);
        assert_eq!(
            r.render(),
            "| pushed | 0.50 MB / 0.50 MB | 100.00 MB / 100.00 MB | 0.01 |"
        );
        let r = Row::new("share", Unit::Pct, &[0.25], &[50.0]);
        assert_eq!(
            r.render(),
            "| share | 0.25 % / 0.25 % | 50.00 % / 50.00 % | 0.01 |"
        );
        let r = Row::new("all failed", Unit::Secs, &[], &[1.0]);
        assert_eq!(r.render(), "| all failed | - | 0.0 s / 0.0 s | - |");
    }

    #[test]
    fn layout() {
        let report = Report {
            peers: vec![],
            rows: vec![Row::new("a", Unit::Ms, &[1.0], &[2.0])],
            inside: vec!["| image | size |".into()],
            notes: vec!["one".into(), "two".into()],
            failed: vec!["cold-kiln-minimal-1".into()],
            footer: vec!["Machine: x".into()],
        };
        assert_eq!(
            report.render(),
            format!(
                "{HEADER}\n|---|---|---|---|\n| a | 1 ms / 1 ms | 2 ms / 2 ms | 0.50 |\n\n\
                 | image | size |\n\n- one\n- two\n\
                 - FAILED: cold-kiln-minimal-1 (their samples are left out)\n\nMachine: x\n"
            )
        );
    }

    #[test]
    fn two_peers_each_with_kilns_ratio() {
        let peers = ["uv-guide peer".to_string(), "pip peer".to_string()];
        assert_eq!(header(&[String::from("peer")]).0, HEADER);
        let (head, rule) = header(&peers);
        assert_eq!(
            head,
            "| scenario | kiln min / median | uv-guide peer min / median | kiln/uv-guide peer (medians) \
             | pip peer min / median | kiln/pip peer (medians) |"
        );
        assert_eq!(rule, "|---|---|---|---|---|---|");
        let report = Report {
            peers: peers.to_vec(),
            rows: vec![
                Row::against(
                    "cold build, minimal",
                    Unit::Secs,
                    &[30000.0],
                    &[&[40000.0], &[60000.0]],
                ),
                // A side whose builds all failed, and a row with one peer only.
                Row::against("no-op rebuild", Unit::Ms, &[300.0], &[&[], &[150.0]]),
                Row::new("kiln only", Unit::MsFine, &[1.5], &[]),
            ],
            ..Report::default()
        };
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "| cold build, minimal | 30.0 s / 30.0 s | 40.0 s / 40.0 s | 0.75 | 60.0 s / 60.0 s | 0.50 |"
        );
        assert_eq!(
            lines[3],
            "| no-op rebuild | 300 ms / 300 ms | - | - | 150 ms / 150 ms | 2.00 |"
        );
        assert_eq!(
            lines[4],
            "| kiln only | 1.50 ms / 1.50 ms | - | - | - | - |"
        );
        // Every line of the table has the header's number of cells.
        for l in &lines[..5] {
            assert_eq!(l.matches('|').count(), 7, "{l}");
        }
    }

    #[test]
    fn numbers_for_prose() {
        assert_eq!(num(Some(179.0)), "179");
        assert_eq!(num(Some(35.5)), "35.5");
        assert_eq!(num(Some(0.4833)), "0.48");
        assert_eq!(num(None), "-");
    }
}
