//! The interpreter a base image runs, for one platform: what a lock's PEP 508 markers and
//! its wheels' tags are decided against. The frontend reads it from the base (`PROBE`, run
//! in a container of the pinned base before lowering); `kiln llb`, with no engine, can
//! only assume it from `python.version` and the platform, and says which markers that
//! leaves open (`Interpreter::assumed`, `guessed`).
//!
//! Facts used: PEP 508's marker variables and where Python gives each (`os.name`,
//! `sys.platform`, `platform.*`, `sys.implementation`), PEP 425 (`abiflags`), and the libc
//! a manylinux (PEP 600) or musllinux (PEP 656) wheel needs.

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::Deserialize;

/// The C library of the base, which decides its platform tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Libc {
    /// glibc `major.minor`: manylinux wheels up to it install.
    Glibc(u32, u32),
    /// musl `major.minor`: musllinux wheels up to it install.
    Musl(u32, u32),
    /// Not read (an assumed interpreter): glibc of some version, the lowest manylinux tag
    /// preferred.
    Unknown,
}

/// PEP 508's marker environment of an interpreter, its ABI flags and its libc.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct Interpreter {
    pub implementation_name: String,
    pub implementation_version: String,
    pub os_name: String,
    pub platform_machine: String,
    pub platform_python_implementation: String,
    pub platform_release: String,
    pub platform_system: String,
    pub platform_version: String,
    pub python_full_version: String,
    pub python_version: String,
    pub sys_platform: String,
    /// `sys.abiflags` (`""`, or `"t"` for a free-threaded build).
    #[serde(default)]
    pub abiflags: String,
    #[serde(skip, default = "unknown")]
    pub libc: Libc,
    /// Read from the base (`true`), or assumed from `python.version` (`false`).
    #[serde(skip)]
    pub read: bool,
}

fn unknown() -> Libc {
    Libc::Unknown
}

/// Marker variables an assumed interpreter does not know: their assumed values are
/// guesses.
pub const GUESSED: &[&str] = &[
    "python_full_version",
    "implementation_version",
    "platform_release",
    "platform_version",
];

/// The Python program the frontend runs in the base (as `python3`, else `python`) to read
/// its interpreter: one JSON object on stdout, the fields of `Interpreter` and `libc` as
/// `[name, version]` (`glibc` from `CS_GNU_LIBC_VERSION`, `musl` from its loader).
pub const PROBE: &str = r#"import glob, json, os, platform, subprocess, sys
def libc():
    try:
        v = os.confstr("CS_GNU_LIBC_VERSION")
        if v and v.startswith("glibc "):
            return ["glibc", v.split()[1]]
    except (AttributeError, ValueError, OSError):
        pass
    for loader in glob.glob("/lib/ld-musl-*.so.1"):
        try:
            out = subprocess.run([loader], stderr=subprocess.PIPE, stdout=subprocess.PIPE).stderr.decode()
        except OSError:
            continue
        for line in out.splitlines():
            if line.startswith("Version "):
                return ["musl", line.split()[1]]
        return ["musl", ""]
    name, version = platform.libc_ver()
    return [name or "", version or ""]
i = sys.implementation
v = "%d.%d.%d" % tuple(i.version[:3])
if i.version.releaselevel != "final":
    v += i.version.releaselevel[0] + str(i.version.serial)
print(json.dumps({
    "implementation_name": i.name,
    "implementation_version": v,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
    "abiflags": getattr(sys, "abiflags", ""),
    "libc": libc(),
}))
"#;

#[derive(Deserialize)]
struct Probed {
    #[serde(flatten)]
    interpreter: Interpreter,
    libc: (String, String),
}

impl Interpreter {
    /// What `PROBE` printed. Errors: not its JSON (the message says what is missing).
    pub fn parse(json: &[u8]) -> Result<Interpreter, String> {
        let probed: Probed = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let version = |v: &str| -> Option<(u32, u32)> {
            let mut it = v.split('.');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        };
        let libc = match (probed.libc.0.as_str(), version(&probed.libc.1)) {
            ("glibc", Some((a, b))) => Libc::Glibc(a, b),
            ("musl", Some((a, b))) => Libc::Musl(a, b),
            // musl of no stated version: its oldest tag.
            ("musl", None) => Libc::Musl(1, 1),
            _ => Libc::Unknown,
        };
        Ok(Interpreter {
            libc,
            read: true,
            ..probed.interpreter
        })
    }

    /// CPython `python` (`major.minor`) on glibc Linux on `arch` (GOARCH), assumed: the
    /// patch release is not known, so `.0` stands for the series. `None`: not a
    /// `major.minor`, or an architecture kiln knows no wheels for.
    pub fn assumed(python: &str, arch: &str) -> Option<Interpreter> {
        let (major, minor) = python.split_once('.')?;
        let (_, _): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
        let full = format!("{python}.0");
        Some(Interpreter {
            implementation_name: "cpython".into(),
            implementation_version: full.clone(),
            os_name: "posix".into(),
            platform_machine: machine(arch)?.into(),
            platform_python_implementation: "CPython".into(),
            platform_release: String::new(),
            platform_system: "Linux".into(),
            platform_version: String::new(),
            python_full_version: full,
            python_version: python.into(),
            sys_platform: "linux".into(),
            abiflags: String::new(),
            libc: Libc::Unknown,
            read: false,
        })
    }

    /// `(major, minor)` of `python_version`.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let (a, b) = self.python_version.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// For markers. Errors: a version pep508_rs cannot read.
    pub fn marker_environment(&self) -> Result<MarkerEnvironment, String> {
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &self.implementation_name,
            implementation_version: &self.implementation_version,
            os_name: &self.os_name,
            platform_machine: &self.platform_machine,
            platform_python_implementation: &self.platform_python_implementation,
            platform_release: &self.platform_release,
            platform_system: &self.platform_system,
            platform_version: &self.platform_version,
            python_full_version: &self.python_full_version,
            python_version: &self.python_version,
            sys_platform: &self.sys_platform,
        })
        .map_err(|e| e.to_string())
    }

    /// The marker variables of `GUESSED` that `marker` reads, when this interpreter was
    /// assumed: what the choice of a package's files took on trust.
    pub fn guessed(&self, marker: &str) -> Vec<&'static str> {
        if self.read {
            return vec![];
        }
        GUESSED
            .iter()
            .copied()
            .filter(|v| marker.contains(v))
            .collect()
    }

    /// This interpreter's value of a marker variable of `GUESSED`.
    pub fn value_of(&self, var: &str) -> &str {
        match var {
            "python_full_version" => &self.python_full_version,
            "implementation_version" => &self.implementation_version,
            "platform_release" => &self.platform_release,
            "platform_version" => &self.platform_version,
            _ => "",
        }
    }
}

/// `platform.machine()` on Linux for a GOARCH.
pub fn machine(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "armv7l",
        "386" => "i686",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe, run by the Python here: its output reads back as the interpreter running it.
    #[test]
    fn the_probe_reads_this_machines_python() {
        let Ok(out) = std::process::Command::new("python3")
            .args(["-c", PROBE])
            .output()
        else {
            eprintln!("skipped: no python3 here");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let i = Interpreter::parse(&out.stdout).unwrap();
        assert!(i.read);
        assert_eq!(i.sys_platform, "linux");
        assert_eq!(i.os_name, "posix");
        assert!(
            i.python_full_version.starts_with(&i.python_version),
            "{i:?}"
        );
        assert!(matches!(i.libc, Libc::Glibc(2, _)), "{:?}", i.libc);
        i.marker_environment().unwrap();
    }

    #[test]
    fn an_assumed_interpreter_knows_what_it_guessed() {
        let i = Interpreter::assumed("3.11", "arm64").unwrap();
        assert_eq!(i.platform_machine, "aarch64");
        assert_eq!(i.python_full_version, "3.11.0");
        assert_eq!(
            i.guessed("python_full_version < '3.11.3' and platform_machine == 'x86_64'"),
            ["python_full_version"]
        );
        assert!(Interpreter::assumed("3", "amd64").is_none());
        assert!(Interpreter::assumed("3.11", "mips").is_none());
        let read = Interpreter {
            read: true,
            ..i.clone()
        };
        assert!(read.guessed("python_full_version < '3.11.3'").is_empty());
    }
}
