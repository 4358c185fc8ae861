//! The SBOM kiln attaches to an image when the client asks for one (`attest:sbom`, buildx
//! `--sbom=true`): an SPDX 2.3 document made from what kiln knows, not from a scanner.
//! Every Python distribution in the venv (read from the image: its `.dist-info`
//! directories), each with the file kiln's inputs pin for it (`known`: the lock, the
//! requirement line's hashes, the sha256 checked), every Debian package the image's dpkg
//! database lists (`image`), the venv's interpreter and the base image as resolved.
//!
//! `known` and `image` gather the facts, `spdx` writes the document, `purl` names each
//! package; the frontend (`frontend/sbom.rs`) reads the image and attaches the result.

pub mod image;
pub mod known;
pub mod purl;
pub mod spdx;

use std::str::FromStr;

pub use image::{Deb, OsRelease};
pub use known::{Check, Pinned, pinned};

/// The in-toto predicate type of an SPDX document, which BuildKit's exporter and buildx's
/// `imagetools inspect` look for (in-toto's `PredicateSPDX`).
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";

/// What the document says about the image itself.
#[derive(Clone, Debug)]
pub struct Image<'a> {
    /// The spec's `name`.
    pub spec: &'a str,
    /// The spec file, as the build names it (`kiln.yaml`).
    pub spec_file: &'a str,
    pub variant: &'a str,
    /// `linux/amd64`.
    pub platform: &'a str,
    /// The base as the engine resolved it, in BuildKit's normalised form, with its digest
    /// when the engine gave one (`docker.io/library/python:3.12-slim@sha256:...`).
    pub base: &'a str,
    /// The venv's path in the image.
    pub venv: &'a str,
    /// `creationInfo.created`, seconds since 1970: `SOURCE_DATE_EPOCH` when the build has
    /// one, else 0 (kiln writes no clock of its own into a build's outputs).
    pub created: u64,
}

/// What was read from the built image's files.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// The venv's interpreter (`3.12.7`, from its `pyvenv.cfg`).
    pub python: Option<String>,
    /// Each distribution installed in the venv.
    pub dists: Vec<Dist>,
    /// The dpkg database's installed packages.
    pub debs: Vec<Deb>,
    /// `/etc/os-release`: the vendor and release of those packages.
    pub os: Option<OsRelease>,
}

/// One distribution installed in the venv.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dist {
    /// As its metadata (or its `.dist-info` directory) writes it.
    pub name: String,
    pub version: String,
}

/// The pins that are this installed distribution: the same PEP 503 name, and the same PEP
/// 440 version (a URL requirement without a version: the name alone).
pub fn pins_of<'p>(dist: &Dist, pinned: &'p [Pinned]) -> Vec<&'p Pinned> {
    let name = crate::context::pylock::normalize(&dist.name);
    pinned
        .iter()
        .filter(|p| crate::context::pylock::normalize(&p.name) == name)
        .filter(|p| match &p.version {
            None => true,
            Some(v) => same_version(v, &dist.version),
        })
        .collect()
}

/// Equal as PEP 440 versions (`1.0` and `1.0.0`, `2.5.1+CPU` and `2.5.1+cpu`), or as text
/// when either is not one.
fn same_version(a: &str, b: &str) -> bool {
    match (
        pep440_rs::Version::from_str(a),
        pep440_rs::Version::from_str(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: Option<&str>) -> Pinned {
        Pinned {
            name: name.into(),
            version: version.map(String::from),
            sha256: vec!["a".repeat(64)],
            url: None,
            filename: None,
            source: "pylock.toml".into(),
            group: "core".into(),
            check: Check::Fetched,
        }
    }

    #[test]
    fn an_installed_dist_is_matched_by_normalised_name_and_version() {
        let pins = [
            pin("typing-extensions", Some("4.12.2")),
            pin("six", Some("1.16.0")),
            pin("pkg", None),
        ];
        let dist = |n: &str, v: &str| Dist {
            name: n.into(),
            version: v.into(),
        };
        assert_eq!(
            pins_of(&dist("typing_extensions", "4.12.2"), &pins).len(),
            1
        );
        assert!(pins_of(&dist("six", "1.17.0"), &pins).is_empty());
        assert_eq!(pins_of(&dist("Six", "1.16"), &pins).len(), 1);
        assert_eq!(pins_of(&dist("PKG", "3"), &pins).len(), 1);
        assert!(pins_of(&dist("other", "1"), &pins).is_empty());
    }
}
