//! The Debian packages that Python packages built from source need: the one table of them.
//!
//! A `Library` is what one native dependency takes: Debian packages for `system.build`
//! (headers, tools) and for `system.runtime` (the shared library the built code loads).
//! `SDISTS` names, per Python package, the libraries its sdist builds against, and whether
//! PyPI has Linux wheels of it. Two readers: `plan::build_hints` names the library a
//! failed build's message shows is missing; `kiln init` gives each sdist a project
//! installs its libraries.
//!
//! Facts used: package names are Debian 12's and 13's (packages.debian.org); a runtime
//! package is named only where the shared library is not already in a Python base image
//! (python:*-slim has libssl, libffi and zlib, which its own Python links). Whether a
//! project publishes Linux wheels is from its PyPI files (manylinux, x86_64, CPython
//! 3.11): psycopg2, psycopg-c, mysqlclient, gssapi, pykerberos and uWSGI publish none.

/// One native dependency: what it is and the Debian packages that provide it.
#[derive(Debug, PartialEq, Eq)]
pub struct Library {
    /// For comments and messages: `the PostgreSQL client library (libpq)`.
    pub what: &'static str,
    /// Debian packages for `system.build` (headers, tools).
    pub build: &'static [&'static str],
    /// Debian packages for `system.runtime` (the shared library the built code loads).
    pub runtime: &'static [&'static str],
}

pub const C_COMPILER: Library = Library {
    what: "a C compiler (gcc)",
    build: &["build-essential"],
    runtime: &[],
};

pub const PKG_CONFIG: Library = Library {
    what: "pkg-config",
    build: &["pkg-config"],
    runtime: &[],
};

pub const RUST: Library = Library {
    what: "a Rust toolchain (cargo)",
    build: &["rustc", "cargo"],
    runtime: &[],
};

pub const PYTHON_HEADERS: Library = Library {
    what: "the Python headers (Python.h)",
    build: &["python3-dev"],
    runtime: &[],
};

pub const LIBPQ: Library = Library {
    what: "the PostgreSQL client library (libpq)",
    build: &["libpq-dev"],
    runtime: &["libpq5"],
};

pub const MYSQLCLIENT: Library = Library {
    what: "the MySQL client library (mysql_config, pkg-config)",
    build: &["default-libmysqlclient-dev", "pkg-config"],
    runtime: &["libmariadb3"],
};

pub const KRB5: Library = Library {
    what: "Kerberos (krb5-config, GSSAPI)",
    build: &["libkrb5-dev"],
    runtime: &["libgssapi-krb5-2"],
};

pub const LIBXML2: Library = Library {
    what: "libxml2 and libxslt",
    build: &["libxml2-dev", "libxslt1-dev"],
    runtime: &["libxml2", "libxslt1.1"],
};

pub const LIBJPEG: Library = Library {
    what: "libjpeg",
    build: &["libjpeg-dev"],
    runtime: &["libjpeg62-turbo"],
};

pub const ZLIB: Library = Library {
    what: "the zlib headers",
    build: &["zlib1g-dev"],
    runtime: &[],
};

pub const OPENSSL: Library = Library {
    what: "the OpenSSL headers",
    build: &["libssl-dev"],
    runtime: &[],
};

pub const LIBFFI: Library = Library {
    what: "the libffi headers",
    build: &["libffi-dev"],
    runtime: &[],
};

/// A Python package whose sdist compiles native code.
#[derive(Debug, PartialEq, Eq)]
pub struct Sdist {
    /// The PEP 503 normalised name (`psycopg2`, `psycopg-c`).
    pub name: &'static str,
    /// The module it installs, to import in `verify` (its compiled code loads its
    /// runtime libraries); `None` when it installs none to import.
    pub module: Option<&'static str>,
    /// PyPI has manylinux wheels of it: it is built from its sdist only where none fits
    /// (a new Python, musl, another architecture). Without them it always is.
    pub linux_wheels: bool,
    /// What building it takes, the compiler first.
    pub needs: &'static [&'static Library],
}

/// The Python packages kiln knows the native build of, by name.
pub const SDISTS: &[Sdist] = &[
    Sdist {
        name: "psycopg2",
        module: Some("psycopg2"),
        linux_wheels: false,
        needs: &[&C_COMPILER, &LIBPQ],
    },
    Sdist {
        name: "psycopg-c",
        module: Some("psycopg_c"),
        linux_wheels: false,
        needs: &[&C_COMPILER, &LIBPQ],
    },
    Sdist {
        name: "mysqlclient",
        module: Some("MySQLdb"),
        linux_wheels: false,
        needs: &[&C_COMPILER, &MYSQLCLIENT],
    },
    Sdist {
        name: "gssapi",
        module: Some("gssapi"),
        linux_wheels: false,
        needs: &[&C_COMPILER, &KRB5],
    },
    Sdist {
        name: "pykerberos",
        module: Some("kerberos"),
        linux_wheels: false,
        needs: &[&C_COMPILER, &KRB5],
    },
    Sdist {
        name: "uwsgi",
        module: None,
        linux_wheels: false,
        needs: &[&C_COMPILER],
    },
    Sdist {
        name: "lxml",
        module: Some("lxml.etree"),
        linux_wheels: true,
        needs: &[&C_COMPILER, &LIBXML2],
    },
    Sdist {
        name: "pillow",
        module: Some("PIL.Image"),
        linux_wheels: true,
        needs: &[&C_COMPILER, &LIBJPEG, &ZLIB],
    },
    Sdist {
        name: "cffi",
        module: Some("cffi"),
        linux_wheels: true,
        needs: &[&C_COMPILER, &LIBFFI],
    },
    Sdist {
        name: "cryptography",
        module: Some("cryptography.hazmat.bindings._rust"),
        linux_wheels: true,
        needs: &[&C_COMPILER, &RUST, &PKG_CONFIG, &OPENSSL],
    },
    Sdist {
        name: "psutil",
        module: Some("psutil"),
        linux_wheels: true,
        needs: &[&C_COMPILER],
    },
];

/// The entry for a package (any spelling of its name: PEP 503 normalised here).
pub fn sdist(name: &str) -> Option<&'static Sdist> {
    let name = crate::context::pylock::normalize(name);
    SDISTS.iter().find(|s| s.name == name)
}

impl Sdist {
    /// Its Debian packages for `system.build`, in the order `needs` lists them, each once.
    pub fn build(&self) -> Vec<&'static str> {
        packages(self.needs.iter().flat_map(|l| l.build))
    }

    /// Its Debian packages for `system.runtime`, each once.
    pub fn runtime(&self) -> Vec<&'static str> {
        packages(self.needs.iter().flat_map(|l| l.runtime))
    }
}

fn packages<'a>(list: impl Iterator<Item = &'a &'static str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = vec![];
    for p in list {
        if !out.contains(p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_unique_and_packages_are_debian_names() {
        let mut seen = std::collections::BTreeSet::new();
        for s in SDISTS {
            assert_eq!(crate::context::pylock::normalize(s.name), s.name);
            assert!(seen.insert(s.name), "{} twice", s.name);
            assert!(s.needs.first() == Some(&&C_COMPILER), "{}", s.name);
            for p in s.build().into_iter().chain(s.runtime()) {
                assert!(crate::spec::validate::is_apt_package(p), "{p}");
            }
        }
    }

    #[test]
    fn lookup_by_any_spelling() {
        let p = sdist("Psycopg2").unwrap();
        assert_eq!(p.build(), ["build-essential", "libpq-dev"]);
        assert_eq!(p.runtime(), ["libpq5"]);
        assert_eq!(sdist("psycopg_c").unwrap().name, "psycopg-c");
        assert_eq!(sdist("MySQLclient").unwrap().module, Some("MySQLdb"));
        assert!(sdist("six").is_none());
        let c = sdist("cryptography").unwrap();
        assert_eq!(
            c.build(),
            [
                "build-essential",
                "rustc",
                "cargo",
                "pkg-config",
                "libssl-dev"
            ]
        );
    }
}
