//! What kiln itself fixes about a variant's Python packages before anything is built: the
//! file the engine fetches for each package of a lock it reads (the same choice the plan
//! makes, `plan/fetched.rs`), the hashes a requirement line pins, the installer wheel kiln
//! pins. Each fact names the file it comes from; the SBOM pairs them with what the venv
//! holds.

use std::str::FromStr;

use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};

use crate::context::ContextInfo;
use crate::context::interpreter::Interpreter;
use crate::context::pylock::{self, Chosen};
use crate::plan::install::{self, tools};
use crate::spec::{GroupSource, Installer, Spec, Variant};

/// How the file of a package was checked before it was installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// The engine fetched the file the lock names and checked its sha256 (an HTTP source
    /// with a checksum): the one file installed.
    Fetched,
    /// The lock's sdist, fetched and checked the same way, then built into the wheel
    /// installed.
    FetchedSdist,
    /// The installer checked the file it downloaded against the line's `--hash` values
    /// (`--require-hashes`): one of them.
    Hashed,
    /// The requirement names a URL and no hash: installed from that URL, unchecked.
    Url,
    /// kiln's own pinned installer wheel (pip, for `installer: pip`), fetched by sha256.
    Installer,
}

/// One package as kiln's inputs pin it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pinned {
    /// The name as the lock or line writes it.
    pub name: String,
    /// `None`: a URL requirement without `==`.
    pub version: Option<String>,
    /// Lowercase hex sha256 values: exactly one for a fetched file, every `--hash` of a
    /// line (the installer accepted one of them).
    pub sha256: Vec<String>,
    /// Where the file comes from (credentials are refused in these URLs at load; still
    /// redacted where written out).
    pub url: Option<String>,
    /// The file's name, for a fetched one.
    pub filename: Option<String>,
    /// The context file that pins it (the lock, the requirement file), or what else does.
    pub source: String,
    pub group: String,
    pub check: Check,
}

/// Every package `v`'s groups pin, group by group in install order, then kiln's installer.
/// `interpreter`: the base's, as the frontend read it before planning; a fetched lock's
/// choice depends on it, so without it (offline) those packages are not listed here.
pub fn pinned(
    spec: &Spec,
    v: &Variant,
    ctx: &ContextInfo,
    interpreter: Option<&Interpreter>,
) -> Vec<Pinned> {
    let mut out = vec![];
    for g in &v.groups {
        let Some(group) = spec.group(&g.v) else {
            continue;
        };
        let name = &g.v;
        if let (Some(lock), Some(target), GroupSource::Lock(l)) = (
            install::fetchable(&group.source, v, ctx),
            interpreter,
            &group.source,
        ) {
            // The plan's own choice; where it fails, the plan installs in the step too
            // and these packages are the venv's alone.
            let Ok(packages) = lock.select(target) else {
                continue;
            };
            let Ok(chosen) = pylock::choose(&packages, target) else {
                continue;
            };
            for (p, c) in chosen {
                let (file, check) = match c {
                    Chosen::Wheel(f) => (f, Check::Fetched),
                    Chosen::Sdist(f) => (f, Check::FetchedSdist),
                };
                out.push(Pinned {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    sha256: vec![file.sha256],
                    url: Some(file.url),
                    filename: Some(file.filename),
                    source: l.path.v.clone(),
                    group: name.clone(),
                    check,
                });
            }
            continue;
        }
        if let GroupSource::Requirements {
            files, packages, ..
        } = &group.source
        {
            for f in files {
                for line in ctx
                    .requirements
                    .get(&f.v)
                    .map_or(&[][..], |r| &r.requirements)
                {
                    out.extend(from_line(line, &f.v, name));
                }
            }
            let inline = format!("group `{name}`'s packages in {}", spec_file(spec));
            for p in packages {
                out.extend(from_line(&p.v, &inline, name));
            }
        }
    }
    if v.python.installer == Installer::Pip {
        let w = tools::pip_wheel();
        out.push(Pinned {
            name: "pip".into(),
            version: Some(tools::PIP_VERSION.into()),
            sha256: vec![w.sha256],
            url: Some(w.url),
            filename: Some(w.filename),
            source: "kiln's pinned installer".into(),
            group: String::new(),
            check: Check::Installer,
        });
    }
    out
}

fn spec_file(spec: &Spec) -> &str {
    spec.files.first().map_or("the spec", |f| f.name.as_str())
}

/// A requirement line as kiln wrote it for the installer (`name==1.0 --hash=sha256:...`):
/// what it pins, when it pins a file (`==` with hashes, or a URL). `None`: the installer
/// chose the file in the build (a range, or `==` without a hash).
fn from_line(line: &str, source: &str, group: &str) -> Option<Pinned> {
    let mut parts = line.split(" --hash=");
    let requirement = Requirement::<VerbatimUrl>::from_str(parts.next()?.trim()).ok()?;
    let sha256: Vec<String> = parts
        .filter_map(|h| h.trim().strip_prefix("sha256:"))
        .map(str::to_string)
        .collect();
    let (version, url) = match &requirement.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(specs)) => {
            let exact = match specs.iter().collect::<Vec<_>>().as_slice() {
                [one] if one.operator() == &pep440_rs::Operator::Equal => {
                    Some(one.version().to_string())
                }
                _ => None,
            };
            (exact, None)
        }
        Some(VersionOrUrl::Url(u)) => (None, Some(u.raw().to_string())),
        None => (None, None),
    };
    let check = match (&version, &url, sha256.is_empty()) {
        (Some(_), _, false) => Check::Hashed,
        (_, Some(_), false) => Check::Hashed,
        (_, Some(_), true) => Check::Url,
        _ => return None,
    };
    Some(Pinned {
        name: requirement.name.to_string(),
        version,
        sha256,
        url,
        filename: None,
        source: source.to_string(),
        group: group.to_string(),
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Gather;
    use crate::plan::{Plan, PlanOpts, StageKind};
    use crate::spec::{LoadOptions, load_str};

    /// The context `spec` reads, from `files` (path, text).
    fn gather(spec: &Spec, files: &dyn Fn(&str) -> Option<Vec<u8>>) -> ContextInfo {
        let mut g = Gather::new(spec);
        loop {
            let wanted = g.wanted();
            if wanted.is_empty() {
                break;
            }
            for w in wanted {
                g.give(&w, files(&w).as_deref());
            }
        }
        g.finish().expect("the context is fine")
    }

    /// The example PEP 751 service: each package the plan fetches is pinned with the very
    /// file (URL, sha256) the plan fetches, from pylock.toml, group core.
    #[test]
    fn a_fetched_locks_pins_are_the_files_the_plan_fetches() {
        let root = env!("CARGO_MANIFEST_DIR");
        let text = std::fs::read_to_string(format!("{root}/specs/pylock-service.yaml")).unwrap();
        let spec = load_str("pylock-service.yaml", &text, &LoadOptions::default())
            .unwrap()
            .spec;
        let dir = format!("{root}/examples/pylock-service");
        let ctx = gather(&spec, &|p| std::fs::read(format!("{dir}/{p}")).ok());
        let v = spec.target(None).unwrap();
        let target = Interpreter::assumed("3.12", "amd64").unwrap();
        let pins = pinned(&spec, v, &ctx, Some(&target));
        let opts = PlanOpts {
            platform: crate::llb::platform("linux", "amd64", ""),
            layers: false,
            interpreters: [(v.python.base.v.clone(), target.clone())].into(),
        };
        let plan = Plan::new(&spec, &[v], &ctx, &opts);
        let mut fetched: Vec<(String, String)> = plan
            .stages
            .iter()
            .filter_map(|s| match &s.kind {
                StageKind::Fetch(f) => Some((f.file.url.clone(), f.file.sha256.clone())),
                _ => None,
            })
            // uv's own wheel is kiln's, not the lock's (not in the image either).
            .filter(|(url, _)| !url.contains("/uv-"))
            .collect();
        fetched.sort();
        let mut pinned_files: Vec<(String, String)> = pins
            .iter()
            .map(|p| (p.url.clone().unwrap(), p.sha256[0].clone()))
            .collect();
        pinned_files.sort();
        assert!(fetched.len() > 5, "{fetched:?}");
        assert_eq!(pinned_files, fetched);
        let lock: toml::Value =
            toml::from_str(&std::fs::read_to_string(format!("{dir}/pylock.toml")).unwrap())
                .unwrap();
        let httpx = lock["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("httpx"))
            .unwrap();
        let sha = httpx["wheels"][0]["hashes"]["sha256"].as_str().unwrap();
        let pin = pins.iter().find(|p| p.name == "httpx").unwrap();
        assert_eq!(pin.sha256, [sha]);
        assert_eq!(pin.check, Check::Fetched);
        assert_eq!(
            (pin.source.as_str(), pin.group.as_str()),
            ("pylock.toml", "core")
        );
        // Without the base's interpreter the choice is not made here: nothing is claimed.
        assert!(pinned(&spec, v, &ctx, None).is_empty());
    }

    /// A requirement file's hashed pins, its spec `packages`, and pip as kiln pins it.
    #[test]
    fn requirement_hashes_and_the_pip_wheel_are_pinned() {
        let sha = "c".repeat(64);
        let text = "version: 1\nname: w\npython: {base: python:3.12-slim, installer: pip}\nrequirements:\n  core:\n    files: [req.txt]\n    packages: [\"idna==3.10 --hash=sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\"]\n";
        let spec = load_str("w.yaml", text, &LoadOptions::default());
        let spec = match spec {
            Ok(l) => l.spec,
            Err(r) => panic!("{}", r.render()),
        };
        let req = format!("six==1.17.0 --hash=sha256:{sha}\narq>=0.26\n");
        let ctx = gather(&spec, &|p| {
            (p == "req.txt").then(|| req.clone().into_bytes())
        });
        let pins = pinned(&spec, spec.target(None).unwrap(), &ctx, None);
        let names: Vec<(&str, Check, &str)> = pins
            .iter()
            .map(|p| (p.name.as_str(), p.check, p.source.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("six", Check::Hashed, "req.txt"),
                ("idna", Check::Hashed, "group `core`'s packages in w.yaml"),
                ("pip", Check::Installer, "kiln's pinned installer"),
            ]
        );
        assert_eq!(pins[0].sha256, [sha]);
        assert_eq!(pins[2].version.as_deref(), Some(tools::PIP_VERSION));
    }

    #[test]
    fn a_hashed_pin_is_known_and_a_range_is_not() {
        let h1 = "a".repeat(64);
        let h2 = "b".repeat(64);
        let p = from_line(
            &format!("arq==0.26.3 --hash=sha256:{h1} --hash=sha256:{h2}"),
            "req.txt",
            "core",
        )
        .unwrap();
        assert_eq!(p.name, "arq");
        assert_eq!(p.version.as_deref(), Some("0.26.3"));
        assert_eq!(p.sha256, [h1.clone(), h2]);
        assert_eq!((p.check, p.source.as_str()), (Check::Hashed, "req.txt"));
        // A marker does not hide the pin.
        let p = from_line(
            &format!("six==1.17.0 ; python_version >= \"3.8\" --hash=sha256:{h1}"),
            "r",
            "g",
        )
        .unwrap();
        assert_eq!(p.version.as_deref(), Some("1.17.0"));
        assert_eq!(
            from_line("arq==0.26.3", "r", "g"),
            None,
            "no hash: not pinned"
        );
        assert_eq!(
            from_line(&format!("arq>=0.26 --hash=sha256:{h1}"), "r", "g"),
            None
        );
        let url = from_line(
            "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
            "r",
            "g",
        )
        .unwrap();
        assert_eq!(url.check, Check::Url);
        assert_eq!(url.version, None);
        assert_eq!(
            url.url.as_deref(),
            Some("https://example.com/pkg-1.0-py3-none-any.whl")
        );
    }
}
