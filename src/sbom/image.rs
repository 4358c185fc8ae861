//! What the SBOM reads from the built image's own files, as parsers of their text: the
//! dpkg database, the venv's installed distributions, its `pyvenv.cfg`, `os-release`.
//! Nothing here guesses: a file that is absent or a line that does not say is left out.
//!
//! Facts used: dpkg's status file (deb822 paragraphs; `Status: want flag state`, a package
//! is on disk when its state is `installed`; `Source: name (version)` when the source
//! version differs), the binary distribution format's `.dist-info` directory
//! (`{name}-{version}.dist-info`, name and version escaped with `_`) and core metadata
//! (`Name:`, `Version:` headers), `pyvenv.cfg` (`version` from `venv`, `version_info`
//! from uv), os-release(5) (`ID`, `VERSION_ID`, `VERSION_CODENAME`).

/// A Debian package dpkg lists as installed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deb {
    pub name: String,
    pub version: String,
    /// `amd64`, `all`, ...
    pub arch: String,
    /// The source package, when dpkg names one (`openssl` for `libssl3`), and its version
    /// when it differs from the binary's.
    pub source: Option<(String, Option<String>)>,
}

/// The image's operating system, from `os-release`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `debian`, `ubuntu`.
    pub id: String,
    /// `12`; empty when not given (Debian testing).
    pub version_id: String,
    /// `bookworm`; empty when not given.
    pub codename: String,
}

impl OsRelease {
    /// The release for a deb purl's `distro`: the codename, else the version.
    pub fn codename_or_version(&self) -> String {
        if self.codename.is_empty() {
            self.version_id.clone()
        } else {
            self.codename.clone()
        }
    }
}

/// Every package the dpkg status file `text` says is installed, in its order. A paragraph
/// without a name, a version or an architecture is left out (dpkg writes all three).
pub fn dpkg_status(text: &str) -> Vec<Deb> {
    let mut out = vec![];
    for paragraph in text.split("\n\n") {
        let field = |key: &str| -> Option<&str> {
            paragraph.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (!line.starts_with([' ', '\t']) && k.eq_ignore_ascii_case(key)).then(|| v.trim())
            })
        };
        let installed = field("Status")
            .and_then(|s| s.split_whitespace().nth(2))
            .is_some_and(|state| state == "installed");
        let (Some(name), Some(version), Some(arch)) =
            (field("Package"), field("Version"), field("Architecture"))
        else {
            continue;
        };
        if !installed || name.is_empty() || version.is_empty() {
            continue;
        }
        let source = field("Source")
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    Some(v.trim_end_matches(')').trim().to_string()).filter(|v| !v.is_empty()),
                ),
                None => (s.to_string(), None),
            });
        out.push(Deb {
            name: name.to_string(),
            version: version.to_string(),
            arch: arch.to_string(),
            source,
        });
    }
    out
}

/// `(name, version)` from a `.dist-info` directory's name (`six-1.17.0.dist-info`);
/// `None` for any other name. The name is as the installer wrote it (escaped: `_` for
/// runs of other characters); compare it PEP 503-normalised.
pub fn dist_info(dir: &str) -> Option<(String, String)> {
    let stem = dir.strip_suffix(".dist-info")?;
    // The name holds no `-` (escaped to `_`): the version starts after the first one.
    let (name, version) = stem.split_once('-')?;
    (!name.is_empty() && !version.is_empty() && !version.contains('/'))
        .then(|| (name.to_string(), version.replace('_', "-")))
}

/// The `Name` and `Version` of a core metadata file (`METADATA`), from its headers (the
/// part before the first blank line).
pub fn metadata_name_version(text: &str) -> Option<(String, String)> {
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "Name" if name.is_none() => name = Some(v.trim().to_string()),
                "Version" if version.is_none() => version = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    Some((name?, version?)).filter(|(n, v)| !n.is_empty() && !v.is_empty())
}

/// The interpreter's full version a venv was made with (`3.12.7`), from its `pyvenv.cfg`.
pub fn pyvenv_version(text: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            // uv's key; the stdlib's `venv` writes `version` (3.11 and later).
            "version_info" => return Some(v.to_string()).filter(|v| !v.is_empty()),
            "version" if !v.is_empty() => found = Some(v.to_string()),
            _ => {}
        }
    }
    found
}

/// `ID`, `VERSION_ID` and `VERSION_CODENAME` of an os-release file; `None` without an
/// `ID`.
pub fn os_release(text: &str) -> Option<OsRelease> {
    let mut out = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(['"', '\'']).to_string();
        match k.trim() {
            "ID" => out.id = v,
            "VERSION_ID" => out.version_id = v,
            "VERSION_CODENAME" => out.codename = v,
            _ => {}
        }
    }
    (!out.id.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nMulti-Arch: same\nSource: openssl\nVersion: 3.0.15-1~deb12u1\nDepends: libc6 (>= 2.34)\nDescription: Secure Sockets Layer toolkit\n shared libraries\n .\n Version: not this one\n\nPackage: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024b-0+deb12u1\n\nPackage: old-thing\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\nPackage: libgcc-s1\nStatus: install ok installed\nArchitecture: amd64\nSource: gcc-12 (12.2.0-14)\nVersion: 12.2.0-14\n\nPackage: half\nStatus: install reinstreq half-installed\nArchitecture: amd64\nVersion: 2\n";

    #[test]
    fn dpkg_lists_what_is_installed_with_its_source() {
        let debs = dpkg_status(STATUS);
        let names: Vec<&str> = debs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["libssl3", "tzdata", "libgcc-s1"]);
        assert_eq!(
            debs[0].version, "3.0.15-1~deb12u1",
            "not the description's line"
        );
        assert_eq!(debs[0].arch, "amd64");
        assert_eq!(debs[0].source, Some(("openssl".into(), None)));
        assert_eq!(debs[1].arch, "all");
        assert_eq!(debs[1].source, None);
        assert_eq!(
            debs[2].source,
            Some(("gcc-12".into(), Some("12.2.0-14".into())))
        );
        assert!(dpkg_status("").is_empty());
        assert!(dpkg_status("Package: x\nStatus: install ok installed\n").is_empty());
    }

    #[test]
    fn dist_info_names_split_at_the_first_dash() {
        assert_eq!(
            dist_info("typing_extensions-4.12.2.dist-info"),
            Some(("typing_extensions".into(), "4.12.2".into()))
        );
        assert_eq!(
            dist_info("PyYAML-6.0.1.dist-info"),
            Some(("PyYAML".into(), "6.0.1".into()))
        );
        assert_eq!(
            dist_info("torch-2.5.1_cpu.dist-info"),
            Some(("torch".into(), "2.5.1-cpu".into()))
        );
        assert_eq!(dist_info("six.py"), None);
        assert_eq!(dist_info("six-1.0.egg-info"), None);
        assert_eq!(dist_info("-1.0.dist-info"), None);
        assert_eq!(dist_info("six.dist-info"), None);
    }

    #[test]
    fn metadata_headers_give_name_and_version() {
        let text = "Metadata-Version: 2.1\nName: zope.interface\nVersion: 7.1.1\nSummary: x\n\nName: in the body\n";
        assert_eq!(
            metadata_name_version(text),
            Some(("zope.interface".into(), "7.1.1".into()))
        );
        assert_eq!(metadata_name_version("Name: x\n\nVersion: 1\n"), None);
    }

    #[test]
    fn pyvenv_cfg_of_uv_and_of_venv() {
        let uv = "home = /usr/local/bin\nimplementation = CPython\nuv = 0.9.7\nversion_info = 3.12.7\ninclude-system-site-packages = false\n";
        assert_eq!(pyvenv_version(uv).as_deref(), Some("3.12.7"));
        let venv = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\nexecutable = /usr/bin/python3.11\n";
        assert_eq!(pyvenv_version(venv).as_deref(), Some("3.11.2"));
        assert_eq!(pyvenv_version("home = /usr/bin\n"), None);
    }

    #[test]
    fn os_release_id_and_version() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        let os = os_release(text).unwrap();
        assert_eq!((os.id.as_str(), os.version_id.as_str()), ("debian", "12"));
        assert_eq!(os.codename_or_version(), "bookworm");
        let testing = os_release("ID=debian\n").unwrap();
        assert_eq!(testing.codename_or_version(), "");
        assert_eq!(os_release("NAME=x\n"), None);
    }
}
