//! The runtime-library stages as LLB: the check that the image has every library the
//! venv's ELF files load, and `system.runtime: auto`'s search of the builder.
//!
//! How the check answers "inside the final image": its scan runs with the image's runtime
//! branch as root filesystem (the base and the runtime apt step: the only layers of the
//! image that hold system libraries, and its loader, `ld.so.cache` and search path) and
//! the venv, with the project copied in, mounted read-only at the venv's own path, as the
//! image has it (so `$ORIGIN` and absolute run paths resolve as they will). The user, the
//! files and the app are left out: they hold no libraries, and an edit to the app then
//! never reruns the check. The image itself cannot be the root: it waits for the check.
//! `ldd` (the image's own, glibc's or musl's) resolves each file's libraries, so what it
//! calls missing is what the loader will miss; a small reader of the dynamic section
//! (`runtime_libs.py`, run by the image's `python3`) keeps a file's own `DT_NEEDED`
//! entries apart from what its libraries need. A missing library is named with the
//! package of the builder (the build apt step's filesystem, mounted read-only: its dpkg
//! lists, what `dpkg -S` reads) that ships a file of that name for the same machine,
//! and reported at the group whose venv first has the file (each earlier group's venv
//! mounted too) or at `app.project`.
//!
//! The scan always succeeds when it could look, and writes its report; a second short
//! container (the verdict, on the same root) fails when the report names a miss, and the
//! image copies the verdict's empty output, so it is not exported after a miss. The
//! frontend then reads the report (cached: the scan succeeded) for its error. Both run
//! with no network, no secret and no cache mount, on the target platform like every step.
//!
//! `auto` runs the same scan in the builder (the venv mounted the same way): each library
//! resolved outside the venv is named by the package whose dpkg list holds its path (the
//! path the loader opens, else its target), and the list is written for the runtime apt
//! step, which installs those its base lacks.

use super::{LoweredStage, StepEnv, sh};
use crate::llb::{self, Exec, Meta, Mount, State};
use crate::plan::shell::quote;
use crate::plan::{Plan, Role, RuntimeCheckStep, Stage, StageKind};

/// The scan, run by the image's (or the builder's) `python3`.
pub(super) const SCRIPT: &str = include_str!("runtime_libs.py");
/// Where the scan writes its report.
const REPORT: &str = "/kiln/report";
/// The report's lines, one per miss: `<place>\t<file>\t<soname>\t<package>`, `<place>`
/// indexing `Target::runtime_check_locs`, `<package>` empty when no package was found.
pub const MISSES: &str = "misses";
/// Where the builder is mounted for the check.
const BUILDER: &str = "/kiln/builder";
/// Where each earlier group's venv is mounted for the check (`/kiln/groups/<index>`).
const GROUPS: &str = "/kiln/groups";
/// Where the verdict reads each scan's report (`/kiln/reports/<index>`).
const REPORTS: &str = "/kiln/reports";
/// Where the verdict writes nothing: its (empty) result, which the image copies.
const VERDICT_OUT: &str = "/kiln/checked";
/// Where `auto` writes the packages it found (`PACKAGES`, one a line).
const AUTO_OUT: &str = "/kiln/auto";
pub(super) const PACKAGES: &str = "packages";
/// A fixed string in the verdict's command line: the frontend reads the report only for
/// a failure of that step.
pub const VERDICT_MARKER: &str = "kiln-runtime-libs-verdict";

/// The venv `stage` reads (the last install's filesystem, or the empty venv with its
/// layers merged) and each earlier group's, to tell which group brought a file (a
/// layered venv's: the empty venv with the layers of the groups so far, the merge a
/// group's own check makes).
pub(super) fn venvs(
    plan: &Plan,
    stage: &Stage,
    done: &[LoweredStage],
    step: &RuntimeCheckStep,
    meta: &Meta,
) -> (State, Vec<State>) {
    if let Some(venv) = stage.input(Role::Venv) {
        let groups = stage.inputs_of(Role::Group);
        return (
            done[venv].state.clone(),
            groups.map(|g| done[g].state.clone()).collect(),
        );
    }
    let empty = stage
        .input(Role::EmptyVenv)
        .expect("a layered venv has its empty venv");
    let layers: Vec<(&str, &State)> = stage
        .inputs_of(Role::Layer)
        .map(|id| {
            let StageKind::Layer(l) = &plan.stage(id).kind else {
                unreachable!("layer inputs are layer stages")
            };
            let layer = done[id]
                .layer
                .as_ref()
                .expect("a layer input makes a layer");
            (l.group.as_str(), layer)
        })
        .collect();
    let upto = |last: usize| {
        let groups = &step.groups[..=last];
        let mut all = vec![done[empty].state.clone()];
        all.extend(
            layers
                .iter()
                .filter(|(g, _)| groups.iter().any(|x| x == g))
                .map(|(_, l)| (*l).clone()),
        );
        let name = Some(format!("venv to check: {}", step.groups[last]));
        llb::merge(
            &all,
            Meta {
                name,
                ..meta.clone()
            },
        )
    };
    let last = step.groups.len().saturating_sub(1);
    (upto(last), (0..last).map(upto).collect())
}

/// Where the project's prefix is mounted for its own scan.
const PREFIX: &str = "/kiln/project-prefix";

/// What one scan reads: the venv mounted at its path, and (the project's scan) the
/// prefix whose files alone it reads there.
struct Part {
    venv: State,
    prefix: Option<State>,
}

/// The scans of a venv (`venv`, the last install's filesystem, when a group installed
/// anything) and of the project (`project`, its prefix) in it: one each, so an edit to
/// the project reruns only its own small scan, never the venv's. The project's files are
/// read in the venv with the project copied in (the op a builder step's venv is), where
/// their run paths resolve as in the image.
fn parts(
    (venv, project): (&State, Option<&State>),
    step: &RuntimeCheckStep,
    meta: &Meta,
) -> Vec<Part> {
    let path = step.venv.as_str();
    let mut parts = vec![];
    if !step.groups.is_empty() {
        parts.push(Part {
            venv: venv.clone(),
            prefix: None,
        });
    }
    if let Some(prefix) = project {
        let meta = Meta {
            name: Some(format!("project into {path}")),
            ..meta.clone()
        };
        parts.push(Part {
            venv: super::project::into_venv(venv, prefix, &[], path, meta),
            prefix: Some(prefix.clone()),
        });
    }
    parts
}

/// The mounts of a part's scan (the venv read-only at its own path, the prefix) and its
/// arguments (`--only` for the project's).
fn part_mounts(part: &Part, path: &str) -> (Vec<Mount>, Vec<String>) {
    let mut mounts = vec![Mount::BindDir {
        dest: path.into(),
        src: part.venv.clone(),
        dir: path.into(),
    }];
    let mut args = vec![];
    if let Some(prefix) = &part.prefix {
        mounts.push(Mount::Bind {
            dest: PREFIX.into(),
            src: prefix.clone(),
        });
        args.extend(["--only".to_string(), PREFIX.to_string()]);
    }
    (mounts, args)
}

/// `meta` named for one part's scan: `scan: runtime libraries: core, ml` (the venv's) or
/// `scan: runtime libraries: project .` in place of the stage's `check: ...` or
/// `runtime packages (auto): ...` label, the rest of the name (its prefix and spec line)
/// kept.
fn scan_meta(meta: &Meta, step: &RuntimeCheckStep, part: &Part) -> Meta {
    let sources = crate::plan::runtime_libs::sources(step);
    let what = match (&part.prefix, &step.project) {
        (Some(_), Some(dir)) => format!("project {}", crate::plan::shown(dir)),
        _ => step.groups.join(", "),
    };
    let name = meta.name.as_ref().map(|n| {
        n.replacen(
            &format!("check: runtime libraries: {sources}"),
            &format!("scan: runtime libraries: {what}"),
            1,
        )
        .replacen(
            &format!("runtime packages (auto): {sources}"),
            &format!("runtime packages (auto): {what}"),
            1,
        )
    });
    Meta {
        name,
        ..meta.clone()
    }
}

/// The scan's command line: `python3` (isolated) running `SCRIPT` with `args`.
fn scan_script(args: &[String]) -> String {
    let args: String = args.iter().map(|a| format!(" {}", quote(a))).collect();
    format!(
        "set -eu\n\
         command -v python3 >/dev/null || {{ echo 'kiln: the runtime-library check runs python3, which this filesystem lacks: set system.check: false' >&2; exit 3; }}\n\
         exec python3 -I -c {}{args}\n",
        quote(SCRIPT)
    )
}

/// A step of these stages: offline, no secret, no cache.
fn offline(script: String, env: &StepEnv, mounts: Vec<Mount>, meta: Meta) -> Exec {
    Exec {
        network_none: true,
        ..sh(script, env.to_vec(), mounts, meta)
    }
}

/// The check on `runtime` (the image's runtime branch) of `venv` (the last install's
/// filesystem) and `project` (its prefix), looking up what is missing in `builder`;
/// `groups` are the filesystems of every group but the last. Returns the verdict (empty;
/// the image copies it) and each scan's report (`MISSES`).
pub(super) fn check(
    runtime: &State,
    venv: (&State, Option<&State>),
    builder: &State,
    groups: &[State],
    step: &RuntimeCheckStep,
    env: &StepEnv,
    meta: Meta,
) -> (State, Vec<State>) {
    let path = step.venv.as_str();
    let mut reports = vec![];
    for part in parts(venv, step, &meta) {
        let (mut mounts, only) = part_mounts(&part, path);
        // The venv's files: the first group whose venv has one, else the last group; the
        // project's: its own place, after the groups'.
        let (told, fallback) = match part.prefix {
            None => (groups, step.groups.len().saturating_sub(1)),
            Some(_) => (&[][..], step.groups.len()),
        };
        let mut args: Vec<String> = [
            "check",
            "--venv",
            path,
            "--out",
            REPORT,
            "--builder",
            BUILDER,
            "--groups-dir",
            GROUPS,
            "--groups",
            &told.len().to_string(),
            "--fallback",
            &fallback.to_string(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(only);
        mounts.extend([
            Mount::Bind {
                dest: BUILDER.into(),
                src: builder.clone(),
            },
            Mount::Scratch {
                dest: REPORT.into(),
            },
        ]);
        mounts.extend(told.iter().enumerate().map(|(i, g)| Mount::BindDir {
            dest: format!("{GROUPS}/{i}"),
            src: g.clone(),
            dir: path.into(),
        }));
        let named = scan_meta(&meta, step, &part);
        let report = runtime
            .run(offline(scan_script(&args), env, mounts, named))
            .scratch(REPORT);
        reports.push(report);
    }
    // Each report read-only (BuildKit keys the verdict by their contents: an unchanged
    // report finds it cached).
    let mut mounts: Vec<Mount> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| Mount::Bind {
            dest: format!("{REPORTS}/{i}"),
            src: r.clone(),
        })
        .collect();
    mounts.push(Mount::Scratch {
        dest: VERDICT_OUT.into(),
    });
    let verdict = format!(
        "set -eu\n# {VERDICT_MARKER}\nfailed=0\n\
         for r in {}; do\n\
         \x20 if [ -s \"$r/{MISSES}\" ]; then cat \"$r/message\" >&2; failed=1; fi\n\
         done\n\
         exit $failed\n",
        (0..reports.len())
            .map(|i| format!("{REPORTS}/{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let verdict = runtime
        .run(offline(verdict, env, mounts, meta))
        .scratch(VERDICT_OUT);
    (verdict, reports)
}

/// `system.runtime: auto` on `builder`: the packages of the builder that `venv` (the last
/// install's filesystem) and `project` (its prefix) load, one list per scan (`PACKAGES`
/// in each).
pub(super) fn packages(
    builder: &State,
    venv: (&State, Option<&State>),
    step: &RuntimeCheckStep,
    env: &StepEnv,
    meta: Meta,
) -> Vec<State> {
    let path = step.venv.as_str();
    parts(venv, step, &meta)
        .iter()
        .map(|part| {
            let (mut mounts, only) = part_mounts(part, path);
            let mut args: Vec<String> = ["auto", "--venv", path, "--out", AUTO_OUT]
                .map(String::from)
                .to_vec();
            args.extend(only);
            mounts.push(Mount::Scratch {
                dest: AUTO_OUT.into(),
            });
            let named = scan_meta(&meta, step, part);
            builder
                .run(offline(scan_script(&args), env, mounts, named))
                .scratch(AUTO_OUT)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A copy of this machine's `/bin/sh` (an ELF that needs `libc.so.6`, on any glibc
    /// system) at `to`, its `libc.so.6` entry renamed `libq.so.6` when `missing`: a file
    /// that needs a library no loader finds.
    fn elf(to: &Path, missing: bool) {
        elf_needing(to, missing.then_some(b"libq"));
    }

    /// The same, its `libc.so.6` entry renamed `<name>.so.6` when `name` is given.
    fn elf_needing(to: &Path, name: Option<&[u8; 4]>) {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let mut bytes = std::fs::read(std::fs::canonicalize("/bin/sh").unwrap()).unwrap();
        if let Some(name) = name {
            let at = bytes
                .windows(10)
                .position(|w| w == b"libc.so.6\0")
                .expect("/bin/sh needs libc.so.6");
            bytes[at..at + 4].copy_from_slice(name);
        }
        std::fs::write(to, bytes).unwrap();
    }

    /// The scan through this machine's `python3` and `ldd`.
    fn scan(args: &[&str]) -> (bool, String) {
        let out = Command::new("python3")
            .args(["-I", "-c", SCRIPT])
            .args(args)
            .output()
            .expect("python3");
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), said)
    }

    fn fresh(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("kiln-runtime-libs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// The check: an ELF file (found by its bytes, whatever its name) whose library the
    /// loader misses is reported with the builder's package of that name for the same
    /// machine (not a shorter path that is no library), at the group whose venv has it
    /// first (else the fallback); found libraries, other files and links are not.
    #[test]
    fn a_missing_library_is_reported_with_the_builders_package_at_its_group() {
        let root = fresh("check");
        let venv = root.join("venv");
        let site = venv.join("lib/python3.12/site-packages");
        elf(&site.join("pkg/_ext.so"), true);
        elf(&site.join("pkg/data.bin"), true); // no .so name: found by its magic
        elf(&site.join("fine/_ok.so"), false);
        std::fs::write(site.join("pkg/__init__.py"), "").unwrap();
        std::os::unix::fs::symlink("_ext.so", site.join("pkg/_link.so")).unwrap();
        // A library the venv ships (a wheel's `.libs`), needed by name by another one:
        // found through what loads them, never a system package's matter.
        elf_needing(&site.join("pkg.libs/libv-1a2b.so.1"), Some(b"libw"));
        elf(&site.join("pkg.libs/libw.so.6"), false);
        // Group 0's venv has `fine` and `data.bin`; `_ext.so` is the fallback's.
        let g0 = root.join("groups/0");
        elf(&g0.join("lib/python3.12/site-packages/fine/_ok.so"), false);
        elf(&g0.join("lib/python3.12/site-packages/pkg/data.bin"), true);
        // The builder: libq6 ships the library (a link to the ELF file); a package with a
        // shorter path of that name that is no library is passed over.
        let builder = root.join("builder");
        let lib = builder.join("usr/lib/kiln-test");
        elf(&lib.join("libq.so.6.0"), false);
        std::os::unix::fs::symlink("libq.so.6.0", lib.join("libq.so.6")).unwrap();
        std::fs::write(builder.join("libq.so.6"), "not ELF").unwrap();
        let info = builder.join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("decoy.list"), "/.\n/libq.so.6\n").unwrap();
        std::fs::write(
            info.join("libq6:amd64.list"),
            "/.\n/usr/lib/kiln-test/libq.so.6.0\n/usr/lib/kiln-test/libq.so.6\n",
        )
        .unwrap();
        let out = root.join("out");
        let (ok, said) = scan(&[
            "check",
            "--venv",
            s(&venv),
            "--out",
            s(&out),
            "--builder",
            s(&builder),
            "--groups-dir",
            s(&root.join("groups")),
            "--groups",
            "1",
            "--fallback",
            "1",
        ]);
        assert!(ok, "{said}");
        let misses = std::fs::read_to_string(out.join(MISSES)).unwrap();
        assert_eq!(
            misses,
            "0\tpkg/data.bin\tlibq.so.6\tlibq6\n1\tpkg/_ext.so\tlibq.so.6\tlibq6\n"
        );
        let message = std::fs::read_to_string(out.join("message")).unwrap();
        assert!(
            message.contains(
                "kiln: pkg/_ext.so needs libq.so.6, which the image lacks: add libq6 to system.runtime\n"
            ),
            "{message}"
        );
        assert_eq!(said, message);
        // Nothing missing: an empty report, and the log says so.
        std::fs::remove_file(site.join("pkg/_ext.so")).unwrap();
        std::fs::remove_file(site.join("pkg/data.bin")).unwrap();
        let (ok, said) = scan(&[
            "check",
            "--venv",
            s(&venv),
            "--out",
            s(&out),
            "--builder",
            s(&builder),
        ]);
        assert!(ok && said.contains("every library"), "{said}");
        assert_eq!(std::fs::read_to_string(out.join(MISSES)).unwrap(), "");
        // A builder without the library: the miss, with no package.
        elf(&site.join("pkg/_ext.so"), true);
        let (ok, _) = scan(&[
            "check",
            "--venv",
            s(&venv),
            "--out",
            s(&out),
            "--builder",
            s(&root.join("none")),
        ]);
        assert!(ok);
        assert_eq!(
            std::fs::read_to_string(out.join(MISSES)).unwrap(),
            "0\tpkg/_ext.so\tlibq.so.6\t\n"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// `auto`: each library resolved outside the venv is named by the package whose list
    /// holds its path (as dpkg lists it, with or without `/usr`); one nobody has is left
    /// out and said so.
    #[test]
    fn auto_names_the_package_of_each_library_the_loader_opens() {
        let root = fresh("auto");
        let venv = root.join("venv");
        let site = venv.join("lib/python3.12/site-packages");
        elf(&site.join("pkg/_ext.so"), false);
        elf(&site.join("pkg/_gone.so"), true);
        // Where this machine's loader finds libc.so.6 for /bin/sh, as a dpkg list has it.
        let ldd = Command::new("ldd").arg("/bin/sh").output().unwrap();
        let text = String::from_utf8_lossy(&ldd.stdout).to_string();
        let libc = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("libc.so.6 => "))
            .and_then(|l| l.split(' ').next())
            .expect("ldd finds libc.so.6")
            .to_string();
        let listed = libc.strip_prefix("/usr").unwrap_or(&libc).to_string();
        let info = root.join("dpkg/var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("libc6:amd64.list"), format!("/.\n{listed}\n")).unwrap();
        let out = root.join("out");
        let (ok, said) = scan(&[
            "auto",
            "--venv",
            s(&venv),
            "--out",
            s(&out),
            "--root",
            s(&root.join("dpkg")),
        ]);
        assert!(ok, "{said}");
        assert_eq!(
            std::fs::read_to_string(out.join(PACKAGES)).unwrap(),
            "libc6\n"
        );
        assert!(
            said.contains("kiln: system.runtime auto: libc6 (libc.so.6, for pkg/_ext.so)"),
            "{said}"
        );
        assert!(
            said.contains("pkg/_gone.so needs libq.so.6, which the builder lacks too"),
            "{said}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// The reader of the dynamic section, and the driver libraries and those the venv
    /// ships left out, called directly.
    #[test]
    fn the_reader_gives_a_files_own_needed_entries_and_driver_libraries_are_left_out() {
        let root = fresh("reader");
        let script = root.join("scan.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let file = root.join("x.so");
        elf(&file, true);
        let code = format!(
            "import runpy\n\
             m = runpy.run_path({script:?}, run_name='kiln_test')\n\
             ident, needed = m['elf_info']({file:?})\n\
             print('libq.so.6' in needed, 'libc.so.6' in needed, ident is not None)\n\
             print(m['elf_info']({script:?}))\n\
             print(m['needs'](None, {{'libcuda.so.1': None, 'libnvidia-ml.so.1': None, 'libq.so.6': None, 'libz-1a2b.so.1': None}}, {{'libz-1a2b.so.1'}}))\n",
            script = s(&script),
            file = s(&file),
        );
        let out = Command::new("python3")
            .args(["-I", "-c", &code])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        // The renamed entry is read from the file's own dynamic section.
        assert_eq!(lines[0], "True False True", "{lines:?}");
        assert_eq!(lines[1], "(None, None)");
        assert_eq!(lines[2], "[('libq.so.6', None)]");
        let _ = std::fs::remove_dir_all(&root);
    }
}
