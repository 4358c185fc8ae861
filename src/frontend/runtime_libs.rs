//! A failed runtime-library check as the build's error: the image's solve failed at the
//! check's verdict, so its scan (which succeeded, and is cached) is solved again and its
//! report read, and each missing library becomes an error at the line of the group that
//! installed the file that needs it (or `app.project`'s), with the package to add.

use super::blame::{blame_step, exec_args, failed_op};
use super::bridge::{Bridge, Failure};
use crate::diag::{Diagnostic, Loc, SourceFile};
use crate::llb::pb;
use crate::plan::RuntimeCheckRun;
use crate::plan::lower::VERDICT_MARKER;
use crate::spec::Variant;

/// The error for the failed solve of `def`: the check's misses when its verdict is what
/// failed and the report can be read, else the failed step (`blame_step`).
pub async fn explain(
    bridge: &Bridge,
    def: &pb::Definition,
    (run, variant): (Option<&RuntimeCheckRun>, &Variant),
    files: &[SourceFile],
    f: Failure,
) -> Failure {
    let verdict = failed_op(def, &f)
        .and_then(|digest| exec_args(def, &digest))
        .is_some_and(|args| args.contains(VERDICT_MARKER));
    let Some(run) = run.filter(|_| verdict) else {
        return blame_step(def, files, f);
    };
    let mut b = bridge.clone();
    let mut report = String::new();
    for def in &run.defs {
        if let Ok(r) = b.solve(def.clone(), true).await
            && let Ok(text) = b.read_file(&r, run.misses).await
        {
            report.push_str(&String::from_utf8_lossy(&text));
        }
    }
    let diagnostics = diagnostics(&report, &run.locs, &variant.name.v);
    if diagnostics.is_empty() {
        return blame_step(def, files, f);
    }
    Failure::from_diagnostics(files, &diagnostics)
}

/// At most this many files are named for one missing library.
const FILES_NAMED: usize = 3;

/// One error per missing library and place, from the report's lines
/// (`<place>\t<file>\t<soname>\t<package>`, `<place>` indexing `locs`), in the report's
/// order; lines that do not parse are skipped.
pub fn diagnostics(report: &str, locs: &[Loc], image: &str) -> Vec<Diagnostic> {
    // (place, soname, package) -> files, in first-seen order.
    type Miss<'r> = (usize, &'r str, &'r str);
    let mut misses: Vec<(Miss, Vec<&str>)> = vec![];
    for line in report.lines() {
        let mut fields = line.split('\t');
        let (Some(place), Some(file), Some(soname), Some(package), None) = (
            fields.next().and_then(|p| p.parse::<usize>().ok()),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let key = (place, soname, package);
        match misses.iter_mut().find(|(k, _)| *k == key) {
            Some((_, files)) => files.push(file),
            None => misses.push((key, vec![file])),
        }
    }
    misses
        .into_iter()
        .map(|((place, soname, package), files)| {
            let loc = locs
                .get(place)
                .or(locs.first())
                .copied()
                .unwrap_or_default();
            let mut named: Vec<String> = files
                .iter()
                .take(FILES_NAMED)
                .map(|f| format!("`{f}`"))
                .collect();
            let verb = if files.len() == 1 { "needs" } else { "need" };
            if files.len() > FILES_NAMED {
                named.push(format!("{} more files", files.len() - FILES_NAMED));
            }
            let who = match named.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
                _ => named.join(""),
            };
            if package.is_empty() {
                Diagnostic::error(
                    loc,
                    format!(
                        "{who} {verb} `{soname}`, which the {image} image lacks and no Debian package of the builder has"
                    ),
                    "add the package that provides it to `system.runtime` (or build the file against a library the image has); `system.check: false` turns this check off",
                )
            } else {
                Diagnostic::error(
                    loc,
                    format!(
                        "{who} {verb} `{soname}`, which the {image} image lacks: add `{package}` to `system.runtime`"
                    ),
                    "or set `system.runtime: auto`, and the builder names the packages the venv needs",
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_library_is_one_error_at_its_place_with_its_package() {
        let locs = [
            Loc {
                file: 0,
                line: 19,
                col: 3,
            },
            Loc {
                file: 0,
                line: 20,
                col: 3,
            },
        ];
        let report = "0\tpsycopg2/_psycopg.so\tlibpq.so.5\tlibpq5\n\
                      1\ta.so\tlibfoo.so.1\t\n\
                      1\tb.so\tlibfoo.so.1\t\n\
                      0\tPIL/_imaging.so\tlibjpeg.so.62\tlibjpeg62-turbo\n\
                      not a line\n\
                      9\tc.so\tlibbar.so.2\tlibbar2\n";
        let d = diagnostics(report, &locs, "minimal");
        let said: Vec<(u32, &str, &str)> = d
            .iter()
            .map(|d| (d.loc.line, d.message.as_str(), d.help.as_str()))
            .collect();
        assert_eq!(said.len(), 4, "{said:#?}");
        assert_eq!(
            said[0].1,
            "`psycopg2/_psycopg.so` needs `libpq.so.5`, which the minimal image lacks: add `libpq5` to `system.runtime`"
        );
        assert_eq!(said[0].0, 19);
        assert!(said[0].2.contains("system.runtime: auto"));
        assert_eq!(said[1].0, 20);
        assert_eq!(
            said[1].1,
            "`a.so` and `b.so` need `libfoo.so.1`, which the minimal image lacks and no Debian package of the builder has"
        );
        assert_eq!(said[2].0, 19);
        // A place the report should not name falls back to the first.
        assert_eq!(said[3].0, 19);
        let many: String = (0..5)
            .map(|i| format!("0\tf{i}.so\tlibx.so.1\tlibx1\n"))
            .collect();
        let d = diagnostics(&many, &locs, "m");
        assert_eq!(d.len(), 1);
        assert!(
            d[0].message
                .starts_with("`f0.so`, `f1.so`, `f2.so` and 2 more files need `libx.so.1`"),
            "{}",
            d[0].message
        );
        assert!(diagnostics("", &locs, "m").is_empty());
    }
}
