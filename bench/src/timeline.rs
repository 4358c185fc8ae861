//! A build's timeline from BuildKit's `--progress=rawjson` output (one `SolveStatus` as
//! JSON per line): each vertex that ran, with its start and end in seconds from the
//! build's first start. Cached and unfinished vertices are left out.

use std::collections::BTreeMap;

/// One vertex that ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    /// Seconds from the first vertex's start.
    pub start: f64,
    pub end: f64,
}

/// Seconds since 1970 of an RFC 3339 UTC time as BuildKit writes it
/// (`2026-12-06T21:00:00.123456789Z`); `None` for anything else.
fn epoch_secs(t: &str) -> Option<f64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut hms = time.splitn(3, ':');
    let (h, min) = (
        hms.next()?.parse::<f64>().ok()?,
        hms.next()?.parse::<f64>().ok()?,
    );
    let s = hms.next()?.parse::<f64>().ok()?;
    // Days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// The vertices of a rawjson log that ran, in order of start. A vertex is reported many
/// times as it progresses: its name, first start and last completion are kept.
pub fn parse(log: &str) -> Vec<Span> {
    // digest -> (name, started, completed, cached)
    let mut seen: BTreeMap<String, (String, Option<f64>, Option<f64>, bool)> = BTreeMap::new();
    for line in log.lines() {
        let Ok(status) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for v in status["vertexes"].as_array().into_iter().flatten() {
            let Some(digest) = v["digest"].as_str() else {
                continue;
            };
            let e = seen
                .entry(digest.to_string())
                .or_insert((String::new(), None, None, false));
            if let Some(n) = v["name"].as_str() {
                e.0 = n.to_string();
            }
            if let Some(t) = v["started"].as_str().and_then(epoch_secs) {
                e.1 = Some(e.1.map_or(t, |s: f64| s.min(t)));
            }
            if let Some(t) = v["completed"].as_str().and_then(epoch_secs) {
                e.2 = Some(e.2.map_or(t, |c: f64| c.max(t)));
            }
            e.3 |= v["cached"].as_bool().unwrap_or(false);
        }
    }
    let first = seen
        .values()
        .filter_map(|v| v.1)
        .fold(f64::INFINITY, f64::min);
    let mut spans: Vec<Span> = seen
        .into_values()
        .filter(|v| !v.3)
        .filter_map(|(name, start, end, _)| {
            Some(Span {
                name,
                start: start? - first,
                end: end? - first,
            })
        })
        .collect();
    spans.sort_by(|a, b| a.start.total_cmp(&b.start));
    spans
}

/// The `count` longest spans, in order of start, as `[start-end s] name` lines joined by
/// `; ` (names squeezed to 60 characters).
pub fn render(spans: &[Span], count: usize) -> String {
    let mut longest: Vec<&Span> = spans.iter().collect();
    longest.sort_by(|a, b| (b.end - b.start).total_cmp(&(a.end - a.start)));
    longest.truncate(count);
    longest.sort_by(|a, b| a.start.total_cmp(&b.start));
    longest
        .iter()
        .map(|s| {
            let name = s.name.split_whitespace().collect::<Vec<_>>().join(" ");
            let name: String = name.chars().take(60).collect();
            format!("[{:.1}-{:.1} s] {name}", s.start, s.end)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_seconds_since_1970() {
        assert_eq!(epoch_secs("1970-01-01T00:00:01.5Z"), Some(1.5));
        assert_eq!(
            epoch_secs("2026-12-06T21:00:00Z"),
            Some(1_796_590_800.0),
            "date -d 2026-12-06T21:00:00Z +%s"
        );
        assert_eq!(epoch_secs("2026-12-06 21:00:00"), None);
    }

    #[test]
    fn a_vertex_that_ran_is_one_span_from_its_first_start_to_its_last_end() {
        let log = [
            r#"{"vertexes":[{"digest":"sha256:a","name":"apt build","started":"2026-12-06T21:00:00.5Z"}]}"#,
            r#"{"vertexes":[{"digest":"sha256:b","name":"base","started":"2026-12-06T21:00:00Z","completed":"2026-12-06T21:00:00.2Z","cached":true}]}"#,
            r#"{"vertexes":[{"digest":"sha256:a","name":"apt build","started":"2026-12-06T21:00:00.5Z","completed":"2026-12-06T21:00:14Z"}]}"#,
            r#"{"vertexes":[{"digest":"sha256:c","name":"wheel  from sdist","started":"2026-12-06T21:00:14Z","completed":"2026-12-06T21:00:22.75Z"}],"logs":[]}"#,
            r#"{"vertexes":[{"digest":"sha256:d","name":"never ended","started":"2026-12-06T21:00:01Z"}]}"#,
            "not json",
        ]
        .join("\n");
        let spans = parse(&log);
        assert_eq!(
            spans,
            [
                Span {
                    name: "apt build".into(),
                    start: 0.5,
                    end: 14.0
                },
                Span {
                    name: "wheel  from sdist".into(),
                    start: 14.0,
                    end: 22.75
                },
            ]
        );
        assert_eq!(
            render(&spans, 1),
            "[0.5-14.0 s] apt build",
            "the longest only"
        );
        assert_eq!(
            render(&spans, 5),
            "[0.5-14.0 s] apt build; [14.0-22.8 s] wheel from sdist"
        );
    }
}
