//! The installers kiln puts in the builder, as locked files: for each version kiln pins
//! and each platform, the wheel PyPI serves (URL, sha256, size), so the engine fetches it
//! by digest like any locked package, from the first second of the build, and the Python
//! stage installs it with no network. Read from PyPI's simple index (JSON API,
//! `application/vnd.pypi.simple.v1+json`) for uv 0.9.7 and pip 25.1.1, 2026-12-06.

use crate::context::interpreter::Libc;
use crate::context::pylock::LockedFile;

/// The pip kiln puts in every venv it creates with `installer: pip`.
pub const PIP_VERSION: &str = "25.1.1";

/// (uv version, GOARCH, for musl, file name, sha256, size). uv's manylinux x86_64 binary
/// links glibc; its aarch64 wheel is tagged for both.
const UV: &[(&str, &str, bool, &str, &str, u64)] = &[
    (
        "0.9.7",
        "amd64",
        false,
        "c7/59/61d8e9f1734069049abe9e593961de602397c7194712346906c075fec65f/uv-0.9.7-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "8cf6bc2482d1293cc630f66b862b494c09acda9b7faff7307ef52667a2b3ad49",
        21_382_006,
    ),
    (
        "0.9.7",
        "amd64",
        true,
        "89/a9/2a8129c796831279cc0c53ffdd19dd6133d514805e52b1ef8a2aa0ff8912/uv-0.9.7-py3-none-musllinux_1_1_x86_64.whl",
        "777bb1de174319245a35e4f805d3b4484d006ebedae71d3546f95e7c28a5f436",
        21_604_958,
    ),
    (
        "0.9.7",
        "arm64",
        false,
        "13/4c/03fafb7d28289d54ac7a34507f1e97e527971f8b0ee2c5e957045966a1a6/uv-0.9.7-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "635e82c2d0d8b001618af82e4f2724350f15814f6462a71b3ebd44adec21f03c",
        20_170_427,
    ),
    (
        "0.9.7",
        "arm64",
        true,
        "13/4c/03fafb7d28289d54ac7a34507f1e97e527971f8b0ee2c5e957045966a1a6/uv-0.9.7-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "635e82c2d0d8b001618af82e4f2724350f15814f6462a71b3ebd44adec21f03c",
        20_170_427,
    ),
];

/// pip's wheel (pure Python, every platform).
const PIP: (&str, &str, u64) = (
    "29/a2/d40fb2460e883eca5199c62cfc2463fd261f760556ae6290f88488c362c0/pip-25.1.1-py3-none-any.whl",
    "2913a38a2abf4ea6b64ab507bd9e967f3b53dc1ede74b01b0931e1ce548751af",
    1_825_227,
);

const FILES: &str = "https://files.pythonhosted.org/packages/";

fn file(path: &str, sha256: &str, size: u64) -> LockedFile {
    LockedFile {
        filename: path.rsplit('/').next().unwrap_or(path).to_string(),
        url: format!("{FILES}{path}"),
        sha256: sha256.into(),
        size: Some(size),
    }
}

/// uv `version`'s wheel for `arch` (GOARCH) and `libc`, when kiln pins it; `None`: uv is
/// installed from the index in the Python stage, as before.
pub fn uv_wheel(version: &str, arch: &str, libc: Libc) -> Option<LockedFile> {
    let musl = matches!(libc, Libc::Musl(..));
    UV.iter()
        .find(|(v, a, m, ..)| *v == version && *a == arch && *m == musl)
        .map(|(_, _, _, path, sha, size)| file(path, sha, *size))
}

/// pip `PIP_VERSION`'s wheel.
pub fn pip_wheel() -> LockedFile {
    file(PIP.0, PIP.1, PIP.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_installers_have_a_wheel_per_platform() {
        let glibc = Libc::Glibc(2, 36);
        for arch in ["amd64", "arm64"] {
            for libc in [glibc, Libc::Musl(1, 2), Libc::Unknown] {
                let w = uv_wheel(crate::spec::format::DEFAULT_UV_VERSION, arch, libc).unwrap();
                let machine = if arch == "amd64" { "x86_64" } else { "aarch64" };
                assert!(w.filename.contains(machine), "{arch}: {}", w.filename);
                assert!(w.url.ends_with(&w.filename));
                assert_eq!(w.sha256.len(), 64);
            }
        }
        assert!(
            uv_wheel("0.9.7", "amd64", Libc::Musl(1, 2))
                .unwrap()
                .filename
                .contains("musllinux")
        );
        assert!(uv_wheel("0.1.0", "amd64", glibc).is_none());
        assert!(uv_wheel("0.9.7", "s390x", glibc).is_none());
        assert!(
            pip_wheel()
                .filename
                .starts_with(&format!("pip-{PIP_VERSION}-"))
        );
    }
}
