//! The `pip:` settings as installer flags, each written once for every command that
//! takes it: the build's installs and wheel builds (pip, `uv pip install`, `uv build`) and
//! `kiln lock`'s `uv pip compile`. Option names are pip's and uv's own (`pip install
//! --help`, `uv pip install --help`).

use crate::plan::PipOptions;

/// `--index-url URL`, then `--extra-index-url URL` per extra index: pip, `uv pip` and
/// `uv build` spell them alike.
pub fn index(pip: &PipOptions) -> Vec<String> {
    let mut args = vec![];
    if let Some(u) = &pip.index_url {
        args.extend(["--index-url".into(), u.clone()]);
    }
    for u in &pip.extra_index_urls {
        args.extend(["--extra-index-url".into(), u.clone()]);
    }
    args
}

/// uv's options for where packages may come from and how sdists are built:
/// `--index-strategy S`, `--build-constraints FILE` (`file` maps the context path to
/// where the command reads it) and `--no-build-isolation-package NAME` per package.
pub fn uv_build_options(pip: &PipOptions, file: impl Fn(&str) -> String) -> Vec<String> {
    let mut args = vec![];
    if let Some(s) = &pip.index_strategy {
        args.extend(["--index-strategy".into(), s.clone()]);
    }
    if let Some(c) = &pip.build_constraints {
        args.extend(["--build-constraints".into(), file(c)]);
    }
    for p in &pip.no_build_isolation {
        args.extend(["--no-build-isolation-package".into(), p.clone()]);
    }
    args
}

/// pip's counterparts of `uv_build_options`: `--no-build-isolation` (pip has no
/// per-package form, so any listed package turns isolation off for all) and the build
/// constraints as `PIP_CONSTRAINT=FILE`, which pip hands on to the isolated build
/// environments. Returns (arguments, environment variables as name and value).
pub fn pip_build_options(
    pip: &PipOptions,
    file: impl Fn(&str) -> String,
) -> (Vec<String>, Vec<(&'static str, String)>) {
    let args = match pip.no_build_isolation.is_empty() {
        true => vec![],
        false => vec!["--no-build-isolation".to_string()],
    };
    let env = pip
        .build_constraints
        .iter()
        .map(|c| ("PIP_CONSTRAINT", file(c)))
        .collect();
    (args, env)
}
