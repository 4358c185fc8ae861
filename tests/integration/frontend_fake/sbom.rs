//! Issue 23: the SBOM a client asks for (`attest:sbom`) comes back as the result's
//! attestation, in the shape BuildKit's exporter reads: per platform id, an in-toto
//! attestation of SPDX's predicate type whose ref holds kiln's document at its path. The
//! document is decoded into mirrors of SPDX 2.3's JSON fields.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

const SIX_SHA: &str = "6e2cbd1b7c4cdc8b2bd1a9a4e02dfe0e82e6c3c2a1a90a4b6d4a1c8d2f9e0b11";

/// A spec whose `core` group is a PEP 751 lock the engine fetches (six), on uv.
fn locked_spec() -> String {
    SPEC.replace("core: [req.txt]", "core: {lock: pylock.toml}")
        .replace("version: \"3.12\"", "version: \"3.12\"\n  installer: uv")
}

const LOCK: &str = "lock-version = \"1.0\"\n\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\nwheels = [{ url = \"https://files.pythonhosted.org/p/six-1.17.0-py2.py3-none-any.whl\", hashes = { sha256 = \"6e2cbd1b7c4cdc8b2bd1a9a4e02dfe0e82e6c3c2a1a90a4b6d4a1c8d2f9e0b11\" } }]\n";

const PROBE: &str = "{\"implementation_name\": \"cpython\", \"implementation_version\": \"3.12.8\", \"os_name\": \"posix\", \"platform_machine\": \"x86_64\", \"platform_python_implementation\": \"CPython\", \"platform_release\": \"6.1\", \"platform_system\": \"Linux\", \"platform_version\": \"#1\", \"python_full_version\": \"3.12.8\", \"python_version\": \"3.12\", \"sys_platform\": \"linux\", \"abiflags\": \"\", \"libc\": [\"glibc\", \"2.36\"]}";

/// dpkg status paragraphs for `n` packages (`pkg0`..), plus libssl3 from openssl.
fn dpkg_status(n: usize) -> String {
    let mut out = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 3.0.15-1~deb12u1\n\n".to_string();
    for i in 0..n {
        out.push_str(&format!("Package: pkg{i}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{i}\nDescription: package number {i}\n{}\n\n", " a description line that makes the file larger than one read\n".repeat(5).trim_end()));
    }
    out
}

/// The built image's files as the fake's ReadFile/ReadDir answer them (paths are not
/// scoped by ref in the fake).
fn image_files(f: &Fake, debs: usize) {
    let mut s = f.0.lock().unwrap();
    let site = "/opt/venv/lib/python3.12/site-packages";
    s.files.insert(
        "/opt/venv/pyvenv.cfg".into(),
        b"home = /usr/local/bin\nimplementation = CPython\nversion_info = 3.12.8\n".to_vec(),
    );
    s.files.insert(
        "/var/lib/dpkg/status".into(),
        dpkg_status(debs).into_bytes(),
    );
    s.files.insert(
        "/etc/os-release".into(),
        b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n".to_vec(),
    );
    s.files.insert(
        format!("{site}/extra_pkg-2.0.dist-info/METADATA"),
        b"Metadata-Version: 2.1\nName: Extra.Pkg\nVersion: 2.0\n\nbody\n".to_vec(),
    );
    s.dirs
        .insert("/opt/venv/lib".into(), vec!["python3.12".into()]);
    s.dirs.insert(
        site.into(),
        vec![
            "six-1.17.0.dist-info".into(),
            "extra_pkg-2.0.dist-info".into(),
        ],
    );
}

fn with_attestations() -> Vec<Cap> {
    let mut caps = MODERN_FRONTEND.to_vec();
    caps.push(caps::REFERENCE_ATTESTATIONS);
    caps
}

/// The document each solve of an SBOM wrote: (its ref id, its path, its bytes).
fn documents(s: &State) -> Vec<(String, String, Vec<u8>)> {
    s.solves
        .iter()
        .enumerate()
        .flat_map(|(i, q)| {
            ops(q.definition.as_ref().unwrap())
                .into_iter()
                .filter_map(move |o| match o.op {
                    Some(pb::op::Op::File(f)) => Some((i, f)),
                    _ => None,
                })
        })
        .flat_map(|(i, f)| {
            f.actions.into_iter().filter_map(move |a| match a.action {
                Some(pb::file_action::Action::Mkfile(m)) if m.path.ends_with(".spdx.json") => {
                    Some((format!("ref-{}", i + 1), m.path, m.data))
                }
                _ => None,
            })
        })
        .collect()
}

// Mirrors of SPDX 2.3's JSON fields (its schema's names); an unknown field is an error, so
// every key kiln writes is one SPDX defines.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    spdx_version: String,
    data_license: String,
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    relationships: Vec<Relationship>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: Option<String>,
    download_location: String,
    files_analyzed: bool,
    #[serde(default)]
    checksums: Vec<Checksum>,
    #[serde(default)]
    external_refs: Vec<ExternalRef>,
    source_info: Option<String>,
    comment: Option<String>,
    primary_package_purpose: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Checksum {
    algorithm: String,
    checksum_value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExternalRef {
    reference_category: String,
    reference_type: String,
    reference_locator: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: String,
    related_spdx_element: String,
}

impl Document {
    fn package(&self, name: &str) -> &Package {
        self.packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no package {name}"))
    }
}

impl Package {
    fn purl(&self) -> &str {
        self.external_refs
            .iter()
            .find(|r| r.reference_type == "purl" && r.reference_category == "PACKAGE-MANAGER")
            .map(|r| r.reference_locator.as_str())
            .unwrap_or("")
    }
}

#[derive(Deserialize)]
struct GoPlatforms {
    #[serde(rename = "Platforms")]
    platforms: Vec<GoPlatform>,
}

#[derive(Deserialize)]
struct GoPlatform {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Platform")]
    platform: BTreeMap<String, serde_json::Value>,
}

/// The image's definition (the solve named after the image's steps), as sent.
fn image_definition(s: &State) -> Vec<u8> {
    let q = s
        .solves
        .iter()
        .find(|q| format!("{:?}", q.definition).contains("uv install: core"))
        .expect("the image's solve");
    prost::Message::encode_to_vec(q.definition.as_ref().unwrap())
}

#[tokio::test]
async fn an_sbom_is_the_results_spdx_attestation_for_its_platform() {
    let f = fake(MODERN_LLB, &with_attestations());
    {
        let mut s = f.0.lock().unwrap();
        s.files
            .insert("worker.yaml".into(), locked_spec().into_bytes());
        s.files
            .insert("pylock.toml".into(), LOCK.as_bytes().to_vec());
        s.files
            .insert("interpreter.json".into(), PROBE.as_bytes().to_vec());
    }
    image_files(&f, 3);
    let r = run(
        &f,
        opts(&[("target", "minimal"), ("attest:sbom", "type=sbom")]),
    )
    .await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let result = r.result.unwrap();
    // One attestation, for the platform `refs.platforms` lists the image under.
    assert_eq!(
        result.attestations.keys().collect::<Vec<_>>(),
        ["linux/amd64"]
    );
    let p: GoPlatforms = serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
    assert_eq!(p.platforms.len(), 1);
    assert_eq!(p.platforms[0].id, "linux/amd64");
    assert_eq!(p.platforms[0].platform["architecture"], "amd64");
    assert_eq!(p.platforms[0].platform["os"], "linux");
    assert!(result.metadata.contains_key("containerimage.config"));
    let a = &result.attestations["linux/amd64"].attestation;
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!(a.kind, gw::AttestationKind::InToto as i32);
    assert_eq!(a.in_toto_predicate_type, "https://spdx.dev/Document");
    assert!(
        a.in_toto_subjects.is_empty(),
        "the exporter names the image"
    );
    assert_eq!(
        a.metadata.get("reason").map(Vec::as_slice),
        Some(&b"sbom"[..])
    );

    let with_sbom = {
        let s = f.0.lock().unwrap();
        let docs = documents(&s);
        assert_eq!(docs.len(), 1);
        let (id, path, bytes) = &docs[0];
        assert_eq!(
            &a.r#ref.as_ref().unwrap().id,
            id,
            "the ref the document was solved to"
        );
        assert_eq!(&a.path, path);
        // The SBOM is made after the image, from it.
        assert_eq!(id, &format!("ref-{}", s.solves.len()));

        let doc: Document = serde_json::from_slice(bytes).expect("SPDX 2.3 JSON");
        assert_eq!(doc.spdx_version, "SPDX-2.3");
        assert_eq!(doc.data_license, "CC0-1.0");
        assert_eq!(doc.spdx_id, "SPDXRef-DOCUMENT");
        assert_eq!(doc.name, "w:minimal linux/amd64");
        assert!(doc.document_namespace.starts_with("https://"));
        assert_eq!(doc.creation_info.created, "1970-01-01T00:00:00Z");
        assert!(doc.creation_info.creators[0].starts_with("Tool: kiln-"));
        assert!(doc.creation_info.comment.contains("not by a scanner"));
        // six: the lock's file, its sha256 as the engine checked it, where it was pinned.
        let six = doc.package("six");
        assert_eq!(six.version_info.as_deref(), Some("1.17.0"));
        assert_eq!(six.checksums.len(), 1);
        assert_eq!(six.checksums[0].algorithm, "SHA256");
        assert_eq!(six.checksums[0].checksum_value, SIX_SHA);
        assert_eq!(
            six.purl(),
            "pkg:pypi/six@1.17.0?file_name=six-1.17.0-py2.py3-none-any.whl"
        );
        assert_eq!(
            six.download_location,
            "https://files.pythonhosted.org/p/six-1.17.0-py2.py3-none-any.whl"
        );
        assert!(
            six.source_info
                .as_deref()
                .unwrap()
                .starts_with("Pinned by pylock.toml (group core)")
        );
        assert!(!six.files_analyzed);
        // What no lock pins: named by its metadata, no checksum claimed.
        let extra = doc.package("Extra.Pkg");
        assert_eq!(extra.version_info.as_deref(), Some("2.0"));
        assert!(extra.checksums.is_empty());
        assert_eq!(extra.purl(), "pkg:pypi/extra-pkg@2.0");
        assert_eq!(extra.download_location, "NOASSERTION");
        // Debian packages from the image's dpkg database, the interpreter, the base.
        assert_eq!(
            doc.package("libssl3").purl(),
            "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=bookworm&upstream=openssl"
        );
        assert_eq!(doc.package("pkg2").version_info.as_deref(), Some("1.2"));
        assert_eq!(
            doc.package("python").version_info.as_deref(),
            Some("3.12.8")
        );
        let base = doc.package("docker.io/library/python");
        assert_eq!(
            base.checksums[0].checksum_value,
            DIGEST.trim_start_matches("sha256:")
        );
        assert_eq!(base.primary_package_purpose.as_deref(), Some("CONTAINER"));
        assert!(
            doc.relationships
                .iter()
                .any(|r| r.spdx_element_id == "SPDXRef-DOCUMENT"
                    && r.relationship_type == "DESCRIBES"
                    && r.related_spdx_element == "SPDXRef-image")
        );
        let contains = doc
            .relationships
            .iter()
            .filter(|r| r.relationship_type == "CONTAINS")
            .count();
        // python, six, Extra.Pkg, libssl3 and pkg0..pkg2.
        assert_eq!(contains, 7);
        assert!(
            doc.packages
                .iter()
                .all(|p| p.spdx_id.starts_with("SPDXRef-"))
        );
        assert!(
            doc.packages
                .iter()
                .all(|p| p.comment.as_deref() != Some(""))
        );
        image_definition(&s)
    };

    // The image's definition is the same without the option, and nothing is attached.
    let g = fake(MODERN_LLB, &with_attestations());
    {
        let mut s = g.0.lock().unwrap();
        s.files
            .insert("worker.yaml".into(), locked_spec().into_bytes());
        s.files
            .insert("pylock.toml".into(), LOCK.as_bytes().to_vec());
        s.files
            .insert("interpreter.json".into(), PROBE.as_bytes().to_vec());
    }
    let r = run(&g, opts(&[("target", "minimal")])).await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let result = r.result.unwrap();
    assert!(result.attestations.is_empty());
    assert!(!result.metadata.contains_key("refs.platforms"));
    let s = g.0.lock().unwrap();
    assert!(documents(&s).is_empty());
    assert_eq!(image_definition(&s), with_sbom);
}

/// Several platforms: one document per image, each keyed by its platform id; the dpkg
/// status file (over 1 MiB here) is read in parts; `build-arg:BUILDKIT_ATTEST_SBOM` asks
/// as `attest:sbom` does.
#[tokio::test]
async fn each_platform_gets_its_own_sbom() {
    let f = fake(MODERN_LLB, &with_attestations());
    image_files(&f, 3_000);
    assert!(f.0.lock().unwrap().files["/var/lib/dpkg/status"].len() > 1 << 20);
    let r = run(
        &f,
        opts(&[
            ("target", "minimal"),
            ("platform", "linux/amd64,linux/arm64"),
            ("build-arg:BUILDKIT_ATTEST_SBOM", ""),
        ]),
    )
    .await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    let result = r.result.unwrap();
    let keys: Vec<&String> = result.attestations.keys().collect();
    assert_eq!(keys.len(), 2);
    let p: GoPlatforms = serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
    let mut ids: Vec<&str> = p.platforms.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["linux/amd64", "linux/arm64"]);
    let s = f.0.lock().unwrap();
    let docs = documents(&s);
    assert_eq!(docs.len(), 2);
    for id in ids {
        let a = &result.attestations[id].attestation[0];
        let (_, _, bytes) = docs
            .iter()
            .find(|(r, _, _)| Some(r) == a.r#ref.as_ref().map(|r| &r.id))
            .expect("the attestation's ref is a document");
        let doc: Document = serde_json::from_slice(bytes).unwrap();
        assert_eq!(doc.name, format!("w:minimal {id}"));
        // Every dpkg paragraph, past the first MiB.
        assert!(doc.packages.iter().any(|p| p.name == "pkg2999"));
        // req.txt's `arq==0.26.3` has no hash: nothing this spec reads pins six's file.
        assert!(doc.package("six").checksums.is_empty());
    }
}

#[tokio::test]
async fn an_engine_that_cannot_attach_an_sbom_refuses_before_building() {
    let f = fake(MODERN_LLB, MODERN_FRONTEND);
    let r = run(&f, opts(&[("attest:sbom", "")])).await;
    let msg = error_message(&r);
    assert!(
        msg.contains("an SBOM was asked for (attest:sbom, --sbom), but this BuildKit cannot attach attestations")
            && msg.contains("`reference.attestations`")
            && msg.contains("BuildKit >= 0.11 (Docker >= 24.0)"),
        "{msg}"
    );
    assert!(f.0.lock().unwrap().solves.is_empty(), "nothing was built");
}

/// `generator=IMAGE` names a scanner: kiln attaches nothing, so BuildKit runs it.
#[tokio::test]
async fn a_named_generator_is_left_to_buildkit() {
    let f = fake(MODERN_LLB, &with_attestations());
    image_files(&f, 1);
    let r = run(
        &f,
        opts(&[("attest:sbom", "generator=docker/buildkit-syft-scanner")]),
    )
    .await;
    assert!(r.error.is_none(), "{}", error_message(&r));
    assert!(r.result.unwrap().attestations.is_empty());
    assert!(documents(&f.0.lock().unwrap()).is_empty());
}

/// A document too large for one definition is named, not sent for BuildKit to refuse.
#[tokio::test]
async fn an_sbom_too_large_for_a_definition_is_named() {
    let f = fake(MODERN_LLB, &with_attestations());
    image_files(&f, 12_000);
    let r = run(&f, opts(&[("attest:sbom", "")])).await;
    let msg = error_message(&r);
    assert!(
        msg.starts_with("the SBOM of minimal is ") && msg.contains("bytes, over the 3145728"),
        "{msg}"
    );
}
