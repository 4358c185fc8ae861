//! Package URLs (purl) for the SBOM's packages, built as the purl specification says:
//! `pkg:type/namespace/name@version?qualifiers`, each component percent-encoded, the
//! qualifiers sorted by key and empty ones dropped; per type, `pypi` (PEP 503 name,
//! `file_name`), `deb` (lowercase vendor and name; `arch`, `distro`, `upstream`), `oci`
//! (the repository's last segment, the digest as version; `repository_url`, `tag`),
//! `generic`.

use packageurl::PackageUrl;

use crate::context::pylock::normalize;

/// A purl from its parts, encoded by the `packageurl` crate (the specification's
/// percent-encoding and sorted qualifiers); `qualifiers` with an empty value are left
/// out. Every part here comes from a lock, a dpkg database or an image reference, so a
/// part the crate refuses (an empty name) falls back to `pkg:generic/unknown`.
fn build(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, &str)],
) -> String {
    let made = (|| -> Result<String, packageurl::Error> {
        let mut purl = PackageUrl::new(kind, name)?;
        if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
            purl.with_namespace(ns)?;
        }
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            purl.with_version(v)?;
        }
        for (k, v) in qualifiers.iter().filter(|(_, v)| !v.is_empty()) {
            purl.add_qualifier(*k, *v)?;
        }
        Ok(purl.to_string())
    })();
    made.unwrap_or_else(|_| "pkg:generic/unknown".to_string())
}

/// `pkg:pypi/NAME@VERSION[?file_name=FILE]`, the name PEP 503-normalised.
pub fn pypi(name: &str, version: &str, file_name: Option<&str>) -> String {
    build(
        "pypi",
        None,
        &normalize(name),
        Some(version),
        &[("file_name", file_name.unwrap_or(""))],
    )
}

/// `pkg:deb/VENDOR/NAME@VERSION?arch=..&distro=..&upstream=..`: `vendor` is os-release's
/// `ID` (`debian`), `distro` its codename or version, `upstream` the source package
/// (`name` or `name@version` when its version differs).
pub fn deb(
    vendor: &str,
    name: &str,
    version: &str,
    arch: &str,
    distro: &str,
    upstream: Option<(&str, Option<&str>)>,
) -> String {
    let upstream = match upstream {
        Some((n, Some(v))) => format!("{n}@{v}"),
        Some((n, None)) => n.to_string(),
        None => String::new(),
    };
    build(
        "deb",
        Some(&vendor.to_ascii_lowercase()),
        &name.to_ascii_lowercase(),
        Some(version),
        &[("arch", arch), ("distro", distro), ("upstream", &upstream)],
    )
}

/// `pkg:oci/NAME@DIGEST?repository_url=REPO&tag=TAG` for an image reference in BuildKit's
/// normalised form (`docker.io/library/python:3.12-slim@sha256:...`).
pub fn oci(reference: &str) -> String {
    let (repo, tag, digest) = split_reference(reference);
    let name = repo.rsplit('/').next().unwrap_or(repo).to_ascii_lowercase();
    build(
        "oci",
        None,
        &name,
        digest,
        &[("repository_url", repo), ("tag", tag.unwrap_or(""))],
    )
}

/// `pkg:generic/NAME@VERSION`.
pub fn generic(name: &str, version: &str) -> String {
    build("generic", None, name, Some(version), &[])
}

/// An image reference's repository, tag and digest (`sha256:...`).
pub fn split_reference(reference: &str) -> (&str, Option<&str>, Option<&str>) {
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    match name_tag[slash..].rfind(':') {
        Some(i) => (
            &name_tag[..slash + i],
            Some(&name_tag[slash + i + 1..]),
            digest,
        ),
        None => (name_tag, None, digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pypi_names_are_normalised_and_versions_encoded() {
        assert_eq!(pypi("httpx", "0.28.1", None), "pkg:pypi/httpx@0.28.1");
        assert_eq!(
            pypi(
                "Typing_Extensions",
                "4.12.2",
                Some("typing_extensions-4.12.2-py3-none-any.whl")
            ),
            "pkg:pypi/typing-extensions@4.12.2?file_name=typing_extensions-4.12.2-py3-none-any.whl"
        );
        assert_eq!(
            pypi("zope.interface", "7.1", None),
            "pkg:pypi/zope-interface@7.1"
        );
        assert_eq!(
            pypi("torch", "2.5.1+cpu", None),
            "pkg:pypi/torch@2.5.1%2Bcpu"
        );
    }

    #[test]
    fn deb_purls_as_the_specification_writes_them() {
        assert_eq!(
            deb(
                "Debian",
                "libssl3",
                "3.0.15-1~deb12u1",
                "amd64",
                "bookworm",
                Some(("openssl", None))
            ),
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=bookworm&upstream=openssl"
        );
        // The specification's own example: an epoch's `:` stays, `+` is encoded.
        assert_eq!(
            deb("debian", "attr", "1:2.4.47-2+b1", "amd64", "", None),
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64"
        );
        assert_eq!(
            deb(
                "debian",
                "libgcc-s1",
                "12.2.0-14",
                "amd64",
                "12",
                Some(("gcc-12", Some("12.2.0-14+x")))
            ),
            "pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64&distro=12&upstream=gcc-12%4012.2.0-14%2Bx"
        );
    }

    #[test]
    fn oci_purls_name_the_repository_and_the_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            oci(&format!("docker.io/library/python:3.12-slim@{d}")),
            format!("pkg:oci/python@{d}?repository_url=docker.io/library/python&tag=3.12-slim")
        );
        assert_eq!(
            oci("localhost:5000/team/py:1"),
            "pkg:oci/py?repository_url=localhost:5000/team/py&tag=1"
        );
        assert_eq!(
            split_reference("localhost:5000/py"),
            ("localhost:5000/py", None, None)
        );
        assert_eq!(generic("python", "3.12.7"), "pkg:generic/python@3.12.7");
    }
}
