//! A PEP 751 group whose files the engine fetches itself. Each chosen file is an HTTP
//! source checked by its sha256 (fetched in parallel from the start of the build, cached
//! and exported by digest); an sdist is built into a wheel in the builder, on its own;
//! the install runs with no network from those files. Where the engine has MergeOp and
//! DiffOp each large package is a layer of its own and small ones share one of a few
//! stable sets (`layers`; a layer is what one install changed in the empty venv), so a
//! new requirement changes one small layer; elsewhere the group installs in one step on
//! the previous group, as other sources do.

use super::*;
use crate::context::pylock::{self, Chosen, LockedPackage};

/// Where fetched (or built) files reach a group's install step.
const FILES_MOUNT: &str = "/kiln/files";
/// Where a package's file reaches its own install: a directory every Linux base has
/// (FHS), so the mount point adds nothing to the package's layer.
const PACKAGE_MOUNT: &str = "/mnt";
/// Where a sdist reaches its wheel build, and where the wheel is written.
const SDIST_MOUNT: &str = "/kiln/sdist";
const WHEEL_OUT: &str = "/kiln/wheel";

/// A wheel at least this large (the lock's `size`) is a layer of its own; smaller ones
/// share one of `SETS` layers. Bytes: one MiB.
const SMALL_BYTES: u64 = 1 << 20;
/// How many layers a group's small wheels are spread over, by a hash of the package's
/// name: a package's set never depends on the others, so a new small package changes one
/// set's layer, and a lock of hundreds of small packages is not hundreds of layers (each a
/// container, a diff and a layer the image's engine must stack: overlay2 stops at 128).
const SETS: u8 = 16;
/// Past this many large wheels in a group, they share the sets too (the layer bound wins
/// over one layer per package).
const MAX_OWN: usize = 64;

/// One package of the group as the install reads it: the state that holds its wheel (the
/// fetched file, or the wheel built from the sdist) and the name of the wheel in it.
pub(super) struct Wheel {
    /// PEP 503 name and the sha256 of the locked file: two groups that lock the same file
    /// share it; the same name with another file cannot be layered.
    pub key: (String, String),
    label: String,
    files: State,
    /// The wheel's name in `files` (a glob for one built from a sdist).
    file: String,
    /// The shared layer a small wheel goes into (`None`: a layer of its own).
    set: Option<u8>,
    /// The locked file's size (the sdist's for a built wheel); 0 when the lock has none.
    pub bytes: u64,
    /// Built from a sdist: its name in `files` is a glob, so it is always installed alone.
    built: bool,
}

/// Which set a small wheel of package `name` (PEP 503 normalized) goes into: stable across
/// locks, builds and kiln versions (sha256, not Rust's hasher).
fn set_of(name: &str) -> u8 {
    use sha2::Digest;
    sha2::Sha256::digest(name.as_bytes())[0] % SETS
}

/// `wheels` as the layers they are installed in, in lock order: a large wheel (or one
/// built from a sdist, or of unknown size) alone, small ones by set.
pub(super) fn layers(wheels: Vec<&Wheel>) -> Vec<Vec<&Wheel>> {
    let own = wheels.iter().filter(|w| w.set.is_none()).count();
    let set = |w: &Wheel| match w.set {
        None if own > MAX_OWN && !w.built => Some(set_of(&w.key.0)),
        s => s,
    };
    let mut units: Vec<(Option<u8>, Vec<&Wheel>)> = vec![];
    for w in wheels {
        match set(w).and_then(|s| units.iter_mut().find(|(u, _)| *u == Some(s))) {
            Some((_, unit)) => unit.push(w),
            None => units.push((set(w), vec![w])),
        }
    }
    units.into_iter().map(|(_, u)| u).collect()
}

/// The packages of the group for this platform, each with its wheel; `Err` says why the
/// lock cannot be installed from fetched files here (the caller installs in-step).
pub(super) fn wheels(
    fetch: &Fetch,
    builder: &State,
    step: &InstallStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: &Meta,
) -> Result<Vec<Wheel>, String> {
    let chosen = pylock::choose(&fetch.packages, &fetch.python, &opts.platform.architecture)?;
    Ok(chosen
        .into_iter()
        .map(|(p, c)| wheel(p, c, builder, step, opts, env, meta))
        .collect())
}

fn wheel(
    p: &LockedPackage,
    chosen: Chosen,
    builder: &State,
    step: &InstallStep,
    opts: &LowerOpts,
    env: &StepEnv,
    meta: &Meta,
) -> Wheel {
    let label = match &p.version {
        Some(v) => format!("{} {v}", p.name),
        None => p.name.clone(),
    };
    // At the group's spec line: a failed fetch (a digest mismatch) is reported there.
    let named = |what: String| Meta {
        name: Some(prefixed(opts.step_prefix.as_deref(), &what)),
        loc: meta.loc,
        ..meta.clone()
    };
    let (file, built) = match &chosen {
        Chosen::Wheel(f) => (f, false),
        Chosen::Sdist(f) => (f, true),
    };
    // A fetch is a vertex of its own in a `--no-cache` build too, where the base is (see
    // `LowerOpts::own_vertices`).
    let own = opts
        .own_vertices
        .iter()
        .map(|id| ("kiln.build".to_string(), id.clone()))
        .collect();
    let fetched = llb::http(
        &file.url,
        (&file.sha256, &file.filename),
        own,
        named(format!("fetch {}", file.filename)),
    );
    let key = (pylock::normalize(&p.name), file.sha256.clone());
    if !built {
        let small = file.size.is_some_and(|n| n < SMALL_BYTES);
        return Wheel {
            set: small.then(|| set_of(&key.0)),
            bytes: file.size.unwrap_or(0),
            built: false,
            key,
            label,
            files: fetched,
            file: quote(&file.filename),
        };
    }
    Wheel {
        key,
        label: label.clone(),
        files: build_wheel(builder, &fetched, &file.filename, step, env, meta, &label),
        file: "*.whl".into(),
        set: None,
        bytes: file.size.unwrap_or(0),
        built: true,
    }
}

/// A sdist built into a wheel in the builder (its build packages are there), with the
/// index reachable for the build backend: cached by the sdist's digest and the builder,
/// so it compiles once per base, not once per requirement change.
fn build_wheel(
    builder: &State,
    sdist: &State,
    filename: &str,
    step: &InstallStep,
    env: &StepEnv,
    meta: &Meta,
    label: &str,
) -> State {
    let python = quote(&format!("{}/bin/python", step.toolchain.venv));
    let src = quote(&format!("{SDIST_MOUNT}/{filename}"));
    let index: String = index_args(&step.pip)
        .iter()
        .map(|a| format!(" {}", quote(a)))
        .collect();
    let (command, cache) = match step.toolchain.installer {
        Installer::Uv => (
            format!("uv build --wheel --python {python} --out-dir {WHEEL_OUT}{index} {src}"),
            uv_cache(&env.cache),
        ),
        Installer::Pip => (
            format!("{python} -m pip wheel --no-deps --wheel-dir {WHEEL_OUT}{index} {src}"),
            pip_cache(&env.cache),
        ),
    };
    let (mut mounts, secret_script) = secret_setup(&step.secrets);
    mounts.extend([
        Mount::Bind {
            dest: SDIST_MOUNT.into(),
            src: sdist.clone(),
        },
        Mount::Scratch {
            dest: WHEEL_OUT.into(),
        },
        cache,
    ]);
    let meta = Meta {
        name: Some(format!("wheel from sdist: {label} ({})", step.group)),
        ..meta.clone()
    };
    builder
        .run(sh(
            format!("set -eu\n{secret_script}{command}\n"),
            installer_env(&env.vars, &step.toolchain, Some(&step.pip)),
            mounts,
            meta,
        ))
        .scratch(WHEEL_OUT)
}

/// The installer's command for wheels given by path: exactly those, no resolution, no
/// index, no cache (nothing but the venv changes).
fn offline_install(installer: Installer, venv: &str, wheels: &[String]) -> String {
    let python = quote(&format!("{venv}/bin/python"));
    let wheels = wheels.join(" ");
    match installer {
        Installer::Uv => format!(
            "uv pip install --python {python} --offline --no-index --no-deps --no-cache {wheels}"
        ),
        Installer::Pip => {
            format!("{python} -m pip install --no-index --no-deps --no-cache-dir {wheels}")
        }
    }
}

fn offline_exec(
    script: String,
    step: &InstallStep,
    env: &StepEnv,
    mounts: Vec<Mount>,
    meta: Meta,
) -> Exec {
    let mut vars = installer_env(&env.vars, &step.toolchain, None);
    // The interpreter's own imports must not leave bytecode outside the venv: a layer is
    // exactly what the install wrote.
    vars.push("PYTHONDONTWRITEBYTECODE=1".into());
    vars.sort();
    Exec {
        network_none: true,
        ..sh(script, vars, mounts, meta)
    }
}

/// The whole group in one step on `parent` (engines without MergeOp/DiffOp): each file
/// mounted read-only in its own directory.
pub(super) fn install_group(
    parent: &State,
    wheels: &[Wheel],
    step: &InstallStep,
    env: &StepEnv,
    meta: Meta,
) -> State {
    let venv = &step.toolchain.venv;
    let mut mounts = vec![];
    let mut paths = vec![];
    for (i, w) in wheels.iter().enumerate() {
        let dir = format!("{FILES_MOUNT}/{i}");
        mounts.push(Mount::Bind {
            dest: dir.clone(),
            src: w.files.clone(),
        });
        paths.push(format!("{dir}/{}", w.file));
    }
    let mut script = format!(
        "set -eu\n{}\n",
        offline_install(step.toolchain.installer, venv, &paths)
    );
    if step.pip.check {
        script.push_str(&format!(
            "{}\n",
            check_command(step.toolchain.installer, venv)
        ));
    }
    script.push_str(&drop_uv_lock(step.toolchain.installer, venv));
    parent
        .run(offline_exec(script, step, env, mounts, meta))
        .root()
}

/// One layer's packages (`layers`) installed alone into the empty venv `empty`: the layer
/// is only what the install wrote.
pub(super) fn package_layer(
    empty: &State,
    unit: &[&Wheel],
    step: &InstallStep,
    env: &StepEnv,
    meta: &Meta,
) -> State {
    let venv = &step.toolchain.venv;
    let paths: Vec<String> = unit
        .iter()
        .map(|w| format!("{PACKAGE_MOUNT}/{}", w.file))
        .collect();
    let script = format!(
        "set -eu\n{}\n{}",
        offline_install(step.toolchain.installer, venv, &paths),
        drop_uv_lock(step.toolchain.installer, venv)
    );
    let labels: Vec<&str> = unit.iter().map(|w| w.label.as_str()).collect();
    let label = match labels.len() {
        0..=4 => labels.join(", "),
        n => format!("{} and {} more", labels[..3].join(", "), n - 3),
    };
    let named = Meta {
        name: Some(format!(
            "{} install: {}: {label}",
            installer_name(step),
            step.group,
        )),
        ..meta.clone()
    };
    // The set's files side by side in one state (each source holds just its file).
    let files = match unit {
        [w] => w.files.clone(),
        _ => llb::merge(
            &unit.iter().map(|w| w.files.clone()).collect::<Vec<_>>(),
            Meta {
                name: Some(format!("files: {label}")),
                ..meta.clone()
            },
        ),
    };
    let mounts = vec![Mount::Bind {
        dest: PACKAGE_MOUNT.into(),
        src: files,
    }];
    let installed = empty
        .run(offline_exec(script, step, env, mounts, named.clone()))
        .root();
    llb::diff(
        empty,
        &installed,
        Meta {
            name: Some(format!("layer: {label}")),
            ..named
        },
    )
}

fn installer_name(step: &InstallStep) -> &'static str {
    match step.toolchain.installer {
        Installer::Uv => "uv",
        Installer::Pip => "pip",
    }
}

/// `pip check` of the venv with every layer so far, run for its verdict only: the
/// returned (empty) state, copied into the image's venv, makes the image depend on it.
pub(super) fn check(on: &State, step: &InstallStep, env: &StepEnv, meta: &Meta) -> State {
    let venv = &step.toolchain.venv;
    let script = format!(
        "set -eu\n{}\n{}",
        check_command(step.toolchain.installer, venv),
        drop_uv_lock(step.toolchain.installer, venv)
    );
    let named = Meta {
        name: Some(format!("check: {}", step.group)),
        ..meta.clone()
    };
    let mounts = vec![Mount::Scratch {
        dest: CHECK_OUT.into(),
    }];
    on.run(offline_exec(script, step, env, mounts, named))
        .scratch(CHECK_OUT)
}

const CHECK_OUT: &str = "/kiln/checked";

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, size: u64) -> Wheel {
        Wheel {
            key: (name.into(), format!("sha-{name}")),
            label: name.into(),
            files: State::default(),
            file: format!("{name}.whl"),
            set: (size < SMALL_BYTES).then(|| set_of(name)),
            bytes: size,
            built: false,
        }
    }

    fn names(units: Vec<Vec<&Wheel>>) -> Vec<Vec<String>> {
        units
            .into_iter()
            .map(|u| u.iter().map(|w| w.label.clone()).collect())
            .collect()
    }

    /// Large wheels alone, small ones by set; a package's layer does not depend on which
    /// other packages the lock has; past `MAX_OWN` large wheels they share the sets too.
    #[test]
    fn layers_are_large_wheels_alone_and_small_ones_by_set() {
        let small: Vec<Wheel> = (0..200).map(|i| wheel(&format!("p{i}"), 10_000)).collect();
        let units = layers(small.iter().collect());
        assert_eq!(
            units.len(),
            SETS as usize,
            "200 small wheels fill every set"
        );
        assert!(units.iter().all(|u| u.len() > 1));
        // The same package is in the same set with or without the others.
        let fewer = layers(small[..100].iter().collect());
        let set_with = |units: &[Vec<&Wheel>], w: &Wheel| {
            units
                .iter()
                .find(|u| u.iter().any(|x| x.key == w.key))
                .map(|u| u.iter().map(|x| x.set).collect::<Vec<_>>())
        };
        for w in &small[..100] {
            let (all, some) = (set_with(&units, w), set_with(&fewer, w));
            assert_eq!(all.as_ref().map(|s| s[0]), some.as_ref().map(|s| s[0]));
            assert!(all.unwrap().iter().all(|s| *s == w.set));
        }
        let mixed = [
            wheel("torch", 800 << 20),
            wheel("six", 11_000),
            wheel("numpy", 16 << 20),
        ];
        assert_eq!(
            names(layers(mixed.iter().collect())),
            [vec!["torch"], vec!["six"], vec!["numpy"]]
        );
        let large: Vec<Wheel> = (0..=MAX_OWN)
            .map(|i| wheel(&format!("big{i}"), 2 << 20))
            .collect();
        assert_eq!(layers(large.iter().collect()).len(), SETS as usize);
        assert_eq!(layers(large[..MAX_OWN].iter().collect()).len(), MAX_OWN);
        // Wheels built from sdists are mounted by a glob: never two in one install.
        let mut built: Vec<Wheel> = (0..=MAX_OWN)
            .map(|i| wheel(&format!("sdist{i}"), 2 << 20))
            .collect();
        built.iter_mut().for_each(|w| w.built = true);
        assert_eq!(layers(built.iter().collect()).len(), MAX_OWN + 1);
    }
}
