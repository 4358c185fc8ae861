//! What a failed build from source was missing, and what to add to the spec for it.
//!
//! A step that may compile a sdist (an in-step install, a fetched lock's wheel build, the
//! project's wheel) runs its command through `wrap`: the output still streams to the build
//! log, and on failure the log is searched for the known messages below. The first hint
//! that matches is printed (`kiln: ...`) and the step exits with that hint's own status
//! (`FIRST_STATUS + index`), which every BuildKit reports in its error (`exit code: N`,
//! BuildKit 0.8 too); the frontend maps it back with `for_status` (only for a step whose
//! script holds `MARKER`) and ends the build's error with the hint.
//!
//! The messages are the tools' own: psycopg2's and mysqlclient's `setup.py`, GCC's and
//! Clang's missing-header errors (`fatal error: X: No such file or directory`, `'X' file
//! not found`), setuptools' `command 'gcc' failed: No such file or directory`, the shell's
//! `X: not found`, meson's `Did not find pkg-config`, setuptools-rust's `can't find Rust
//! compiler`, maturin's `Cargo metadata failed`, Pillow's `The headers or library files
//! could not be found for jpeg`. The Debian packages are `sysdeps`' libraries (the one
//! table of them, which `kiln init` reads too).

use super::shell::quote;
use crate::sysdeps::{self, Library};

/// One missing thing: the messages that show it, the library (Debian packages) that
/// provides it.
#[derive(Debug, PartialEq, Eq)]
pub struct Hint {
    /// Fixed strings, any of which in the failed command's output means this hint.
    pub needles: &'static [&'static str],
    /// What is missing, for the message (`psycopg2 needs pg_config (...)`).
    pub why: &'static str,
    /// Its Debian packages for `system.build` and `system.runtime`.
    pub library: &'static Library,
}

impl Hint {
    /// `psycopg2 needs pg_config (the PostgreSQL client library): add libpq-dev to
    /// system.build and libpq5 to system.runtime`; several packages joined by `, `.
    pub fn message(&self) -> String {
        let mut m = format!(
            "{}: add {} to system.build",
            self.why,
            self.library.build.join(", ")
        );
        if !self.library.runtime.is_empty() {
            m.push_str(&format!(
                " and {} to system.runtime",
                self.library.runtime.join(", ")
            ));
        }
        m
    }
}

/// The hints, most specific first: a library's own message before the headers and tools
/// any build may miss (psycopg2 says `pg_config` is missing before it ever compiles).
pub const HINTS: &[Hint] = &[
    Hint {
        needles: &[
            "pg_config executable not found",
            "fatal error: libpq-fe.h",
            "'libpq-fe.h' file not found",
        ],
        why: "psycopg2 needs pg_config (the PostgreSQL client library)",
        library: &sysdeps::LIBPQ,
    },
    Hint {
        needles: &[
            "mysql_config not found",
            "mysql_config: not found",
            "Can not find valid pkg-config name",
        ],
        why: "mysqlclient needs mysql_config or pkg-config (the MySQL client library)",
        library: &sysdeps::MYSQLCLIENT,
    },
    Hint {
        needles: &[
            "krb5-config: not found",
            "krb5-config: No such file or directory",
            "Could not find main GSSAPI shared library",
        ],
        why: "the package needs Kerberos (krb5-config)",
        library: &sysdeps::KRB5,
    },
    Hint {
        needles: &[
            "fatal error: libxml/xmlversion.h",
            "'libxml/xmlversion.h' file not found",
            "fatal error: libxslt/",
            "libxml2 and libxslt development packages",
        ],
        why: "lxml needs libxml2 and libxslt (libxml/xmlversion.h)",
        library: &sysdeps::LIBXML2,
    },
    Hint {
        needles: &[
            "fatal error: jpeglib.h",
            "'jpeglib.h' file not found",
            "could not be found for jpeg",
        ],
        why: "the package needs libjpeg (jpeglib.h)",
        library: &sysdeps::LIBJPEG,
    },
    Hint {
        needles: &[
            "fatal error: zlib.h",
            "'zlib.h' file not found",
            "could not be found for zlib",
        ],
        why: "the package needs the zlib headers (zlib.h)",
        library: &sysdeps::ZLIB,
    },
    Hint {
        needles: &["fatal error: openssl/", "'openssl/ssl.h' file not found"],
        why: "the package needs the OpenSSL headers (openssl/ssl.h)",
        library: &sysdeps::OPENSSL,
    },
    Hint {
        needles: &["fatal error: ffi.h", "'ffi.h' file not found"],
        why: "the package needs the libffi headers (ffi.h)",
        library: &sysdeps::LIBFFI,
    },
    Hint {
        needles: &["fatal error: Python.h", "'Python.h' file not found"],
        why: "a C extension needs the Python headers (Python.h; python:*-slim bases have them)",
        library: &sysdeps::PYTHON_HEADERS,
    },
    Hint {
        needles: &[
            "can't find Rust compiler",
            "Cargo metadata failed",
            "cargo: not found",
            "rustc: not found",
        ],
        why: "the package builds Rust code and finds no Rust toolchain (cargo)",
        library: &sysdeps::RUST,
    },
    Hint {
        needles: &[
            "pkg-config: not found",
            "pkg-config: No such file or directory",
            "Did not find pkg-config",
        ],
        why: "the build needs pkg-config",
        library: &sysdeps::PKG_CONFIG,
    },
    Hint {
        needles: &[
            "gcc: not found",
            "cc: not found",
            "g++: not found",
            "gcc' failed: No such file or directory",
            "command 'cc' failed: No such file or directory",
            "g++' failed: No such file or directory",
            "unable to execute 'gcc'",
            "Unknown compiler(s)",
            "No CMAKE_C_COMPILER could be found",
        ],
        why: "the build needs a C compiler (gcc)",
        library: &sysdeps::C_COMPILER,
    },
];

/// The exit status of `HINTS[0]`; hint `i` exits `FIRST_STATUS + i`. Below 126 (the
/// shell's own statuses) and above what pip (1, 2, 23) and uv (1, 2) exit with; a wrapped
/// command that exits in this range anyway is reported as 1, so a status here always
/// means its hint.
pub const FIRST_STATUS: i32 = 100;

/// A fixed string every wrapped script holds: the frontend reads a status as a hint only
/// in such a step.
pub const MARKER: &str = "kiln-build-hints";

/// The hint a wrapped step's exit status stands for.
pub fn for_status(status: i32) -> Option<&'static Hint> {
    let i = usize::try_from(status.checked_sub(FIRST_STATUS)?).ok()?;
    HINTS.get(i)
}

/// `command` (a shell command, several lines at most) run so that its output (stdout and
/// stderr as one stream) still reaches the build log, and its failure ends with the first
/// matching hint: printed as `kiln: ...` and exited with its status. Otherwise the status
/// is the command's own. POSIX sh only (dash): the command runs in its own `sh -eu`
/// (so `set -e` holds inside it), its status goes through a file (no `pipefail`), and the
/// log lives in `/tmp` for the step only.
pub fn wrap(command: &str) -> String {
    let log = "\"$kiln_log\"";
    let mut s = format!(
        "kiln_log=/tmp/{MARKER}.$$\n\
         {{ sh -eu -c {} 2>&1 && echo 0 >{log}.status || echo $? >{log}.status; }} | tee {log}\n\
         kiln_status=$(cat {log}.status)\n\
         if [ \"$kiln_status\" != 0 ]; then\n",
        quote(command)
    );
    for (i, h) in HINTS.iter().enumerate() {
        let needles: String = h
            .needles
            .iter()
            .map(|n| format!(" -e {}", quote(n)))
            .collect();
        let kw = if i == 0 { "if" } else { "elif" };
        s.push_str(&format!(
            "  {kw} grep -qF{needles} {log}; then echo {} >&2; kiln_status={}\n",
            quote(&format!("kiln: {}", h.message())),
            FIRST_STATUS + i as i32
        ));
    }
    let reserved: Vec<String> = (0..HINTS.len())
        .map(|i| (FIRST_STATUS + i as i32).to_string())
        .collect();
    s.push_str(&format!(
        "  else case $kiln_status in {}) kiln_status=1;; esac\n  fi\n  rm -f {log} {log}.status\n  exit \"$kiln_status\"\nfi\nrm -f {log} {log}.status\n",
        reserved.join("|")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `script` through a real `/bin/sh` (dash on Debian), as a step runs it: its exit
    /// status and its output.
    fn run(script: &str) -> (i32, String, String) {
        let out = Command::new("/bin/sh")
            .args(["-c", &format!("set -eu\n{script}")])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn a_missing_pg_config_fails_with_its_hint_and_the_output_still_streams() {
        let script = wrap(
            "echo 'Building psycopg2 from its sdist'\necho 'Error: pg_config executable not found.' >&2\nexit 1",
        );
        let (status, out, err) = run(&script);
        let hint = for_status(status).expect("a hint's status");
        assert_eq!(
            hint.message(),
            "psycopg2 needs pg_config (the PostgreSQL client library): add libpq-dev to system.build and libpq5 to system.runtime"
        );
        // Both streams of the command reach the log, in order, before the hint.
        assert_eq!(
            out,
            "Building psycopg2 from its sdist\nError: pg_config executable not found.\n"
        );
        assert_eq!(err, format!("kiln: {}\n", hint.message()));
        assert!(script.contains(MARKER));
    }

    #[test]
    fn other_outcomes_keep_the_commands_own_status() {
        // Success: status 0, output through, nothing added, the log removed.
        let (status, out, err) = run(&format!("{}echo after", wrap("echo built")));
        assert_eq!(
            (status, out.as_str(), err.as_str()),
            (0, "built\nafter\n", "")
        );
        // A failure no hint knows keeps its status.
        let (status, out, err) = run(&wrap("echo 'no matching distribution'; exit 3"));
        assert_eq!(
            (status, out.as_str(), err.as_str()),
            (3, "no matching distribution\n", "")
        );
        // A status in the hints' range without its message is not read as a hint.
        let (status, _, _) = run(&wrap(&format!("exit {FIRST_STATUS}")));
        assert_eq!(status, 1);
        // `set -e` holds inside the command: its second line never runs.
        let (status, out, _) = run(&wrap("false\necho not reached"));
        assert_eq!((status, out.as_str()), (1, ""));
        // Quotes, `$` and backslashes in the command reach it as written.
        let (status, out, _) = run(&wrap(r#"printf '%s\n' "it's \$HOME" '$x'"#));
        assert_eq!((status, out.as_str()), (0, "it's $HOME\n$x\n"));
    }

    #[test]
    fn each_hint_is_found_by_each_of_its_needles_and_the_more_specific_wins() {
        for (i, h) in HINTS.iter().enumerate() {
            for n in h.needles {
                let (status, _, err) = run(&wrap(&format!(
                    "echo {}; exit 1",
                    quote(&format!("x {n} y"))
                )));
                // An earlier (more specific) hint may own a needle that contains this one.
                let found = for_status(status).unwrap_or_else(|| panic!("{n}: {status}"));
                let at = HINTS.iter().position(|x| x == found).unwrap();
                assert!(at <= i, "{n}: hint {at} over {i}");
                assert!(err.contains(&found.message()), "{err}");
            }
        }
        // psycopg2 without gcc or pg_config says pg_config first: its hint, not gcc's.
        let (status, _, _) = run(&wrap(
            "echo 'Error: pg_config executable not found.'; echo 'gcc: not found'; exit 1",
        ));
        assert_eq!(for_status(status), Some(&HINTS[0]));
        assert_eq!(for_status(FIRST_STATUS - 1), None);
        assert_eq!(for_status(FIRST_STATUS + HINTS.len() as i32), None);
        assert!(FIRST_STATUS + (HINTS.len() as i32) < 126);
    }
}
