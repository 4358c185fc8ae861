//! Platforms in BuildKit's terms (`linux/amd64`, `linux/arm64/v8`): parsing, formatting,
//! and the one this process runs on.

use bollard_buildkit_proto::pb;

/// A platform from its parts; `variant` may be empty.
pub fn platform(os: &str, arch: &str, variant: &str) -> pb::Platform {
    pb::Platform {
        os: os.into(),
        architecture: arch.into(),
        variant: variant.into(),
        ..Default::default()
    }
}

/// `os/arch[/variant]` (as `--platform` takes it) -> Platform. Errors: a message that shows
/// the expected form.
pub fn parse(s: &str) -> Result<pb::Platform, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Ok(platform(os, arch, "")),
        [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(platform(os, arch, variant)),
        _ => Err(format!(
            "invalid platform `{s}`: write os/arch[/variant], e.g. linux/amd64"
        )),
    }
}

/// The platform's id as BuildKit keys results by it (`linux/amd64`, `linux/arm/v7`).
pub fn id(p: &pb::Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}

/// The platform this process runs on, in Go's (and so BuildKit's) architecture names.
pub fn host() -> pb::Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    platform("linux", arch, if arch == "arm64" { "v8" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_id_round_trip() {
        for s in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"] {
            assert_eq!(id(&parse(s).unwrap()), s);
        }
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
