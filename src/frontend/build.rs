//! One build through the gateway: read the spec, resolve bases, solve, verify, return.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::bridge::{Bridge, Failure, RefId, Refs, Returned};
use super::opts::{Options, is_builtin_arg};
use super::subrequests;
use crate::diag::Report;
use crate::llb::{self, Local, Meta, pb};
use crate::plan::lower::{ImageInfo, LowerOpts, build, parse_dockerignore};
use crate::spec::{LoadOptions, Loaded, S, Sources, validate};

/// Read the spec and every file it extends from the spec local.
pub async fn read_spec(bridge: &mut Bridge, opts: &Options) -> Result<Loaded, Failure> {
    let mut sources = Sources::new();
    let mut name = opts.filename.clone();
    let mut first = true;
    loop {
        if name.starts_with("../") || name.starts_with('/') {
            return Err(Failure::invalid(
                sources
                    .missing("files outside the spec's directory are not sent to the build")
                    .to_string(),
            ));
        }
        let bytes = match read_local(bridge, opts, &opts.spec_local, &name).await {
            Ok(b) => b,
            Err(e) if first => {
                return Err(Failure::invalid(format!(
                    "cannot read the spec `{name}` from the build's `{}` directory: {e}; check `-f`/`--file` (docker build) or `--opt filename=` (buildctl)",
                    opts.spec_local
                )));
            }
            Err(e) => return Err(Failure::invalid(sources.missing(&e).to_string())),
        };
        first = false;
        match sources.add(&name, &bytes).map_err(report_failure)? {
            Some(next) => name = next,
            None => break,
        }
    }
    let loaded = sources
        .finish(&LoadOptions {
            build_args: opts.build_args.clone(),
        })
        .map_err(report_failure)?;
    Ok(loaded)
}

fn report_failure(r: Report) -> Failure {
    Failure::invalid(r.one_line())
}

/// One file of a local directory, sent by the client for this purpose only.
async fn read_local(
    bridge: &mut Bridge,
    opts: &Options,
    local: &str,
    path: &str,
) -> Result<Vec<u8>, String> {
    let st = llb::local(
        Local {
            name: local.into(),
            follow_paths: vec![path.into()],
            shared_key_hint: Some(format!("{local}-{path}")),
            session_id: opts.session_id.clone(),
            differ_none: bridge.has_llb("source.local.differ"),
            ..Default::default()
        },
        Meta {
            name: Some(format!("[internal] load {path}")),
            ..Default::default()
        },
    );
    let r = bridge
        .solve(llb::marshal(&st, &[]), false)
        .await
        .map_err(|f| f.message)?;
    bridge
        .read_file(&r, path)
        .await
        .map_err(|s| s.message().to_string())
}

/// The whole frontend run after Ping: returns what to hand back.
pub async fn run(bridge: &mut Bridge, opts: &Options) -> Result<Returned, Failure> {
    bridge.cache_imports = opts.cache_imports.clone();
    if let Some(id) = &opts.request_id {
        return subrequests::handle(bridge, opts, id).await;
    }
    let loaded = read_spec(bridge, opts).await?;
    let spec = &loaded.spec;
    for w in &loaded.warnings {
        eprintln!("kiln: {}", w.one_line(&spec.files));
    }
    let declared: Vec<&str> = spec.args.iter().map(|a| a.name.as_str()).collect();
    for name in opts
        .build_args
        .keys()
        .filter(|n| !declared.contains(&n.as_str()) && !is_builtin_arg(n))
    {
        eprintln!(
            "kiln: warning: build arg `{name}` is not declared under `args:` in {} and was not used",
            spec.files[0].name
        );
    }
    if let Some(t) = &opts.target {
        if spec.variant(t).is_none() {
            let names: Vec<&str> = spec.variants.iter().map(|v| v.name.v.as_str()).collect();
            return Err(Failure::invalid(format!(
                "{}: unknown target `{t}`: the targets are the spec's variants: {}",
                spec.files[0].name,
                names.join(", ")
            )));
        }
    }
    let dockerignore = match &spec.app {
        Some(_) => read_local(bridge, opts, &opts.context_local, ".dockerignore")
            .await
            .map(|b| parse_dockerignore(&String::from_utf8_lossy(&b)))
            .unwrap_or_default(),
        None => vec![],
    };
    let platforms = if opts.platforms.is_empty() {
        vec![Options::default_platform(&bridge.workers)]
    } else {
        opts.platforms.clone()
    };
    let variant = opts
        .target
        .clone()
        .unwrap_or_else(|| spec.default_variant.clone());
    // The target was checked above, so the variant exists: one base to resolve.
    let base = spec
        .variant(&variant)
        .map(|v| v.python.base.v.clone())
        .unwrap_or_default();

    let mut results: Vec<(String, RefId, Value)> = vec![];
    for platform in &platforms {
        let reference = validate::normalize_image(&base);
        let (digest, config) = bridge.resolve_image(&reference, platform).await?;
        // The digest pins the base: the graph names exactly the image that was resolved.
        let pinned = if digest.is_empty() || reference.contains('@') {
            reference
        } else {
            format!("{reference}@{digest}")
        };
        let config: Value = serde_json::from_slice(&config).unwrap_or(Value::Null);
        let images = BTreeMap::from([(
            base.clone(),
            ImageInfo {
                reference: pinned,
                config,
            },
        )]);
        let lower_opts = LowerOpts {
            platform: platform.clone(),
            images,
            context: opts.context_local.clone(),
            session_id: opts.session_id.clone(),
            dockerignore: dockerignore.clone(),
            merge: bridge.has_llb("mergeop"),
            no_cache: opts.no_cache,
            labels: opts.labels.clone(),
        };
        let lowering = std::time::Instant::now();
        let built = build(spec, Some(&variant), &lower_opts)
            .map_err(|d| Failure::invalid(d.one_line(&spec.files)))?;
        eprintln!(
            "kiln: definition for {variant} made in {} us",
            lowering.elapsed().as_micros()
        );
        let image = bridge.solve(built.def, false).await?;
        if opts.skip_verify && !built.verify.is_empty() {
            eprintln!(
                "kiln: verify skipped ({} commands): KILN_SKIP_VERIFY is set",
                built.verify.len()
            );
        }
        let verify = if opts.skip_verify {
            vec![]
        } else {
            built.verify
        };
        // All verify commands at once (each is its own container on the image); every
        // failure is reported, in spec order, each naming its line.
        let mut running = tokio::task::JoinSet::new();
        for (i, (_, def)) in verify.iter().enumerate() {
            let (b, def) = (bridge.clone(), def.clone());
            running.spawn(async move { (i, b.solve(def, true).await) });
        }
        let mut failures: Vec<Option<Failure>> = vec![None; verify.len()];
        while let Some(done) = running.join_next().await {
            let (i, outcome) = done.map_err(|e| Failure::invalid(format!("verify task: {e}")))?;
            failures[i] = outcome.err();
        }
        let failed: Vec<(&S<String>, Failure)> = verify
            .iter()
            .zip(failures)
            .filter_map(|((command, _), f)| f.map(|f| (command, f)))
            .collect();
        if let Some((_, first)) = failed.first() {
            let code = first.code;
            let message = failed
                .iter()
                .map(|(command, f)| {
                    format!(
                        "{}: verify command `{}` failed on the {variant} image: {}; fix the image or the command",
                        command.loc.position(&spec.files),
                        command.v,
                        f.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            return Err(Failure { code, message });
        }
        results.push((platform_id(platform), image, built.config));
    }

    let mut metadata = HashMap::new();
    if results.len() == 1 && opts.platforms.len() <= 1 {
        let (_, image, config) = results.pop().expect("one result");
        metadata.insert(
            "containerimage.config".to_string(),
            serde_json::to_vec(&config).expect("json"),
        );
        return Ok(Returned {
            refs: Refs::Single(image),
            metadata,
        });
    }
    if !bridge.has("returnmap") {
        return Err(Failure { code: tonic::Code::FailedPrecondition, message: "this BuildKit cannot return several platforms at once (no `returnmap` cap); build one --platform at a time".into() });
    }
    let mut refs = vec![];
    let mut listed = vec![];
    for (id, image, config) in results {
        metadata.insert(
            format!("containerimage.config/{id}"),
            serde_json::to_vec(&config).expect("json"),
        );
        let p = platforms
            .iter()
            .find(|p| platform_id(p) == id)
            .expect("platform of a result");
        listed.push(json!({"ID": id, "Platform": {"architecture": p.architecture, "os": p.os, "variant": if p.variant.is_empty() { None } else { Some(&p.variant) }}}));
        refs.push((id, image));
    }
    metadata.insert(
        "refs.platforms".into(),
        serde_json::to_vec(&json!({"Platforms": listed})).expect("json"),
    );
    Ok(Returned {
        refs: Refs::Map(refs),
        metadata,
    })
}

pub fn platform_id(p: &pb::Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}
