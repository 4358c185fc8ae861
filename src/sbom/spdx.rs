//! The SBOM as an SPDX 2.3 JSON document: `spdxVersion`, `dataLicense`, `SPDXID`, `name`,
//! `documentNamespace`, `creationInfo` (`created`, `creators`), `packages` (each with
//! `SPDXID`, `name`, `versionInfo`, `downloadLocation`, `filesAnalyzed`, `checksums`,
//! `externalRefs` with its purl, `sourceInfo`, `comment`, `primaryPackagePurpose`) and
//! `relationships` (the document `DESCRIBES` the image, which `CONTAINS` each package and
//! is a `DESCENDANT_OF` its base). Field names and values as the SPDX 2.3 specification's
//! JSON schema has them.
//!
//! The bytes depend only on the facts given: packages in a fixed order, no clock but
//! `Image::created`, and the namespace a digest of the rest, so the same image gives the
//! same document.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sha2::Digest;

use super::{Check, Dist, Found, Image, Pinned, pins_of, purl};
use crate::context::pylock::normalize;

/// `NOASSERTION`: SPDX's "the document makes no claim" for a required field.
const NOASSERTION: &str = "NOASSERTION";

/// The document's bytes (compact JSON, ending in a newline).
pub fn document(image: &Image, pinned: &[Pinned], found: &Found) -> Vec<u8> {
    let mut ids = Ids::default();
    let root = ids.take("SPDXRef-image");
    let base = ids.take("SPDXRef-base");
    let mut packages = vec![image_package(image, &root), base_package(image, &base)];
    if let Some(v) = &found.python {
        let id = ids.take("SPDXRef-python");
        packages.push(python_package(v, image.venv, &id));
    }
    let mut dists: Vec<&Dist> = found.dists.iter().collect();
    dists.sort_by_key(|d| (normalize(&d.name), d.version.clone()));
    dists.dedup_by_key(|d| (normalize(&d.name), d.version.clone()));
    for d in dists {
        let id = ids.take(&format!(
            "SPDXRef-pypi-{}-{}",
            normalize(&d.name),
            d.version
        ));
        packages.push(pypi_package(d, &pins_of(d, pinned), &id));
    }
    let mut debs: Vec<&super::Deb> = found.debs.iter().collect();
    debs.sort();
    debs.dedup();
    for d in debs {
        let id = ids.take(&format!("SPDXRef-deb-{}-{}", d.name, d.arch));
        packages.push(deb_package(d, found.os.as_ref(), &id));
    }
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", &root)];
    relationships.push(relationship(&root, "DESCENDANT_OF", &base));
    for p in &packages {
        let id = p["SPDXID"].as_str().unwrap_or_default();
        if id != root && id != base {
            relationships.push(relationship(&root, "CONTAINS", id));
        }
    }
    let name = format!("{}:{} {}", image.spec, image.variant, image.platform);
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "creationInfo": {
            "created": crate::plan::config::rfc3339(image.created),
            "creators": [format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
            "comment": format!(
                "Made by kiln from what it knows of variant `{}` of {}, not by a scanner: every Python distribution installed in the venv {} (its .dist-info directories), each with the file its lock or requirement line pins and how that file was checked; every package the image's dpkg database lists as installed; the venv's interpreter; the base image as the engine resolved it. Not listed: files no package manager recorded (code copied by steps or `files`, the app's own code, binaries the base built from source other than the venv's interpreter) and Python packages outside the venv.",
                image.variant, image.spec_file, image.venv
            ),
        },
        "packages": packages,
        "relationships": relationships,
    });
    // Unique per document (SPDX asks for that) and the same for the same facts.
    let digest = sha2::Sha256::digest(doc.to_string().as_bytes());
    let slug: String = format!("{}-{}-{}", image.spec, image.variant, image.platform)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    doc["documentNamespace"] = json!(format!(
        "https://spdx.org/spdxdocs/kiln-{slug}-{}",
        hex::encode(&digest[..16])
    ));
    let mut bytes = serde_json::to_vec(&doc).expect("a JSON value serialises");
    bytes.push(b'\n');
    bytes
}

/// SPDX element ids: `SPDXRef-` and letters, digits, `.` and `-` only; unique in the
/// document (a clash gets `-2`, `-3`...).
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn take(&mut self, want: &str) -> String {
        let tail = want.strip_prefix("SPDXRef-").unwrap_or(want);
        let clean: String = tail
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let base = format!("SPDXRef-{clean}");
        let mut id = base.clone();
        let mut n = 2;
        while self.0.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        self.0.insert(id.clone());
        id
    }
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

fn purl_ref(purl: String) -> Value {
    json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}])
}

fn sha256(hex: &str) -> Value {
    json!([{"algorithm": "SHA256", "checksumValue": hex}])
}

fn image_package(image: &Image, id: &str) -> Value {
    json!({
        "SPDXID": id,
        "name": format!("{}:{}", image.spec, image.variant),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "comment": format!("The image of variant `{}` of {} for {}, built by kiln.", image.variant, image.spec_file, image.platform),
    })
}

fn base_package(image: &Image, id: &str) -> Value {
    let (repo, tag, digest) = purl::split_reference(image.base);
    let mut p = json!({
        "SPDXID": id,
        "name": repo,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": purl_ref(purl::oci(image.base)),
        "comment": "The `python.base` image, as the engine resolved it for this platform.",
    });
    if let Some(v) = digest.or(tag) {
        p["versionInfo"] = json!(v);
    }
    if let Some(hex) = digest.and_then(|d| d.strip_prefix("sha256:")) {
        p["checksums"] = sha256(hex);
    }
    p
}

fn python_package(version: &str, venv: &str, id: &str) -> Value {
    json!({
        "SPDXID": id,
        "name": "python",
        "versionInfo": version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "APPLICATION",
        "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl::generic("python", version)},
            {"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": format!("cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*")},
        ],
        "comment": format!("The interpreter the venv {venv} runs, as its pyvenv.cfg records it."),
    })
}

/// One venv distribution and the pins that are it.
fn pypi_package(d: &Dist, pins: &[&Pinned], id: &str) -> Value {
    let name = pins.first().map_or(d.name.as_str(), |p| p.name.as_str());
    let shas: BTreeSet<&str> = pins
        .iter()
        .flat_map(|p| p.sha256.iter().map(String::as_str))
        .collect();
    let urls: BTreeSet<&str> = pins.iter().filter_map(|p| p.url.as_deref()).collect();
    let files: BTreeSet<&str> = pins.iter().filter_map(|p| p.filename.as_deref()).collect();
    let file = match files.len() {
        1 => files.first().copied(),
        _ => None,
    };
    let location = match urls.len() {
        1 => crate::url::redact(urls.first().expect("one")),
        _ => NOASSERTION.to_string(),
    };
    let mut p = json!({
        "SPDXID": id,
        "name": name,
        "versionInfo": d.version,
        "downloadLocation": location,
        "filesAnalyzed": false,
        "externalRefs": purl_ref(purl::pypi(name, &d.version, file)),
        "sourceInfo": source_info(pins),
    });
    match shas.len() {
        0 => {}
        1 => p["checksums"] = sha256(shas.first().expect("one")),
        _ => {
            p["comment"] = json!(format!(
                "The installer accepted a file with one of these sha256 values: {}.",
                shas.into_iter().collect::<Vec<_>>().join(", ")
            ))
        }
    }
    p
}

/// Where a Python package's file comes from and how it was checked, in words.
fn source_info(pins: &[&Pinned]) -> String {
    if pins.is_empty() {
        return "Installed in the build and pinned by no file kiln read (a requirement without a hash, a lock its tool installs in the step, the app's own project, or a step's install): its name and version are its installed metadata's.".into();
    }
    let each: Vec<String> = pins
        .iter()
        .map(|p| {
            let file = p.filename.as_deref().unwrap_or("its file");
            let by = format!("pinned by {} (group {})", p.source, p.group);
            match p.check {
                Check::Fetched => format!("{by}: the engine fetched {file} from the lock's URL and checked its sha256 before the install"),
                Check::FetchedSdist => format!("{by}: the engine fetched the sdist {file} and checked its sha256; the wheel installed was built from it in the build"),
                Check::Hashed => format!("{by}: the installer checked the file it downloaded against the line's sha256 (--require-hashes)"),
                Check::Url => format!("named by URL in {} (group {}), without a hash: installed from that URL unchecked", p.source, p.group),
                Check::Installer => format!("{}: the engine fetched {file} and checked its sha256", p.source),
            }
        })
        .collect();
    let mut text = each.join("; ");
    text.push('.');
    text[..1].make_ascii_uppercase();
    text
}

fn deb_package(d: &super::Deb, os: Option<&super::OsRelease>, id: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": d.name,
        "versionInfo": d.version,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
    });
    // The purl needs the vendor: without os-release the document does not guess one.
    if let Some(os) = os {
        let source = d.source.as_ref().map(|(n, v)| (n.as_str(), v.as_deref()));
        p["externalRefs"] = purl_ref(purl::deb(
            &os.id,
            &d.name,
            &d.version,
            &d.arch,
            &os.codename_or_version(),
            source,
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::{Deb, OsRelease};

    const SHA: &str = "3b8d5b44b0a7d1f10ae61ac56c2f3a1d8f1c5e6b7a8d9e0f1a2b3c4d5e6f7a8b";

    fn image() -> Image<'static> {
        Image {
            spec: "svc",
            spec_file: "kiln.yaml",
            variant: "default",
            platform: "linux/amd64",
            base: "docker.io/library/python:3.12-slim@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            venv: "/opt/venv",
            created: 0,
        }
    }

    fn fetched(name: &str, version: &str, sha: &str) -> Pinned {
        Pinned {
            name: name.into(),
            version: Some(version.into()),
            sha256: vec![sha.into()],
            url: Some(format!(
                "https://files.example/{name}-{version}-py3-none-any.whl"
            )),
            filename: Some(format!("{name}-{version}-py3-none-any.whl")),
            source: "pylock.toml".into(),
            group: "core".into(),
            check: Check::Fetched,
        }
    }

    fn found() -> Found {
        Found {
            python: Some("3.12.7".into()),
            dists: vec![
                Dist {
                    name: "httpx".into(),
                    version: "0.28.1".into(),
                },
                Dist {
                    name: "Unpinned_Pkg".into(),
                    version: "2.0".into(),
                },
            ],
            debs: vec![Deb {
                name: "libssl3".into(),
                version: "3.0.15-1~deb12u1".into(),
                arch: "amd64".into(),
                source: Some(("openssl".into(), None)),
            }],
            os: Some(OsRelease {
                id: "debian".into(),
                version_id: "12".into(),
                codename: "bookworm".into(),
            }),
        }
    }

    fn doc(pins: &[Pinned], found: &Found) -> Value {
        serde_json::from_slice(&document(&image(), pins, found)).unwrap()
    }

    fn package<'v>(doc: &'v Value, name: &str) -> &'v Value {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no package {name} in {doc}"))
    }

    #[test]
    fn the_document_has_the_spdx_fields() {
        let d = doc(&[fetched("httpx", "0.28.1", SHA)], &found());
        assert_eq!(d["spdxVersion"], "SPDX-2.3");
        assert_eq!(d["dataLicense"], "CC0-1.0");
        assert_eq!(d["SPDXID"], "SPDXRef-DOCUMENT");
        assert_eq!(d["name"], "svc:default linux/amd64");
        assert_eq!(d["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        assert!(
            d["creationInfo"]["creators"][0]
                .as_str()
                .unwrap()
                .starts_with("Tool: kiln-")
        );
        let ns = d["documentNamespace"].as_str().unwrap();
        assert!(
            ns.starts_with("https://spdx.org/spdxdocs/kiln-svc-default-linux-amd64-"),
            "{ns}"
        );
        assert!(!ns.contains('#'));
        // Every package: an id, a name, a download location, files not analysed.
        let ids: Vec<&str> = d["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert!(
                    p["name"].is_string() && p["downloadLocation"].is_string(),
                    "{p}"
                );
                assert_eq!(p["filesAnalyzed"], false);
                p["SPDXID"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            ids.len(),
            "ids are unique"
        );
        assert!(ids.iter().all(|i| {
            i.starts_with("SPDXRef-")
                && i[8..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }));
        // The document describes the image, which contains every other package but its
        // base, from which it descends.
        let rels = d["relationships"].as_array().unwrap();
        assert_eq!(
            rels[0],
            relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image")
        );
        assert!(rels.contains(&relationship(
            "SPDXRef-image",
            "DESCENDANT_OF",
            "SPDXRef-base"
        )));
        let contained = rels
            .iter()
            .filter(|r| r["relationshipType"] == "CONTAINS")
            .count();
        assert_eq!(contained, ids.len() - 2);
    }

    #[test]
    fn a_fetched_package_has_its_sha256_purl_and_lock() {
        let d = doc(&[fetched("httpx", "0.28.1", SHA)], &found());
        let p = package(&d, "httpx");
        assert_eq!(p["versionInfo"], "0.28.1");
        assert_eq!(
            p["checksums"],
            json!([{"algorithm": "SHA256", "checksumValue": SHA}])
        );
        assert_eq!(
            p["externalRefs"][0]["referenceLocator"],
            "pkg:pypi/httpx@0.28.1?file_name=httpx-0.28.1-py3-none-any.whl"
        );
        assert_eq!(p["externalRefs"][0]["referenceType"], "purl");
        assert_eq!(p["externalRefs"][0]["referenceCategory"], "PACKAGE-MANAGER");
        assert_eq!(
            p["downloadLocation"],
            "https://files.example/httpx-0.28.1-py3-none-any.whl"
        );
        let info = p["sourceInfo"].as_str().unwrap();
        assert!(info.starts_with("Pinned by pylock.toml (group core): the engine fetched httpx-0.28.1-py3-none-any.whl"), "{info}");
    }

    #[test]
    fn an_unpinned_package_says_so_and_claims_no_checksum() {
        let d = doc(&[], &found());
        let p = package(&d, "Unpinned_Pkg");
        assert_eq!(p["versionInfo"], "2.0");
        assert_eq!(p["downloadLocation"], NOASSERTION);
        assert!(p.get("checksums").is_none());
        assert_eq!(
            p["externalRefs"][0]["referenceLocator"],
            "pkg:pypi/unpinned-pkg@2.0"
        );
        assert!(
            p["sourceInfo"]
                .as_str()
                .unwrap()
                .contains("pinned by no file kiln read")
        );
    }

    #[test]
    fn a_line_with_several_hashes_lists_them_without_claiming_one() {
        let mut pin = fetched("httpx", "0.28.1", SHA);
        pin.check = Check::Hashed;
        pin.url = None;
        pin.filename = None;
        pin.sha256.push("b".repeat(64));
        pin.source = "requirements.txt".into();
        let d = doc(&[pin], &found());
        let p = package(&d, "httpx");
        assert!(p.get("checksums").is_none());
        let comment = p["comment"].as_str().unwrap();
        assert!(
            comment.contains(SHA) && comment.contains(&"b".repeat(64)),
            "{comment}"
        );
        assert!(
            p["sourceInfo"]
                .as_str()
                .unwrap()
                .contains("--require-hashes")
        );
        assert_eq!(
            p["externalRefs"][0]["referenceLocator"],
            "pkg:pypi/httpx@0.28.1"
        );
    }

    #[test]
    fn debs_interpreter_and_base_are_listed() {
        let d = doc(&[], &found());
        let ssl = package(&d, "libssl3");
        assert_eq!(ssl["versionInfo"], "3.0.15-1~deb12u1");
        assert_eq!(
            ssl["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=bookworm&upstream=openssl"
        );
        let py = package(&d, "python");
        assert_eq!(py["versionInfo"], "3.12.7");
        assert_eq!(
            py["externalRefs"][0]["referenceLocator"],
            "pkg:generic/python@3.12.7"
        );
        let base = package(&d, "docker.io/library/python");
        assert_eq!(base["versionInfo"], format!("sha256:{}", "1".repeat(64)));
        assert_eq!(base["checksums"][0]["checksumValue"], "1".repeat(64));
        assert!(
            base["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap()
                .starts_with("pkg:oci/python@sha256:")
        );
        // Without os-release the deb's vendor is unknown: no purl rather than a guess.
        let mut f = found();
        f.os = None;
        let d = doc(&[], &f);
        assert!(package(&d, "libssl3").get("externalRefs").is_none());
    }

    #[test]
    fn the_same_facts_give_the_same_bytes_and_others_another_namespace() {
        let pins = [fetched("httpx", "0.28.1", SHA)];
        let mut f = found();
        let one = document(&image(), &pins, &f);
        // Order of what was read does not matter.
        f.dists.reverse();
        assert_eq!(document(&image(), &pins, &f), one);
        f.dists.pop();
        let other: Value = serde_json::from_slice(&document(&image(), &pins, &f)).unwrap();
        let first: Value = serde_json::from_slice(&one).unwrap();
        assert_ne!(other["documentNamespace"], first["documentNamespace"]);
        let later = Image {
            created: 1_700_000_000,
            ..image()
        };
        let d: Value = serde_json::from_slice(&document(&later, &pins, &found())).unwrap();
        assert_eq!(d["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn credentials_in_a_url_never_reach_the_document() {
        let mut pin = fetched("httpx", "0.28.1", SHA);
        pin.url = Some("https://user:s3cret@mirror.example/httpx.whl".into());
        let text = String::from_utf8(document(&image(), &[pin], &found())).unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("user:"),
            "{text}"
        );
    }
}
