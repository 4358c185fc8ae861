//! One build through the gateway, in phases: read the inputs, resolve the target, build
//! the image for each platform, verify it, shape the result BuildKit exports.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::bridge::{Bridge, Failure, RefId, Refs, Returned};
use super::context::{Inputs, read_inputs};
use super::opts::{Options, is_builtin_arg};
use super::subrequests;
use crate::llb::{pb, platform};
use crate::plan::lower::{ImageInfo, LowerOpts};
use crate::plan::{Compiled, compile};
use crate::reference;
use crate::spec::{S, Spec, Variant};

/// The whole frontend run after Ping: what to hand back through `Return`.
pub async fn run(bridge: &mut Bridge, opts: &Options) -> Result<Returned, Failure> {
    bridge.cache_imports = opts.cache_imports.clone();
    if let Some(id) = &opts.request_id {
        return subrequests::handle(bridge, opts, id).await;
    }
    let inputs = read_inputs(bridge, opts).await?;
    let spec = &inputs.loaded.spec;
    report_warnings(&inputs, opts);
    let variant = spec
        .target(opts.target.as_deref())
        .map_err(|d| Failure::invalid(d.one_line(&spec.files)))?;
    let mut images = vec![];
    for platform in platforms(bridge, opts) {
        let image = build_image(bridge, opts, &inputs, variant, platform).await?;
        verify(bridge, spec, variant, &image.verify, opts.skip_verify).await?;
        images.push(image);
    }
    result(bridge, opts, images)
}

/// The image of one platform, solved, with what verifying and exporting it needs.
struct PlatformImage {
    platform: pb::Platform,
    image: RefId,
    config: Value,
    verify: Vec<(S<String>, pb::Definition)>,
}

/// Warnings from the spec and build args nothing uses, where the user can see them.
fn report_warnings(inputs: &Inputs, opts: &Options) {
    let spec = &inputs.loaded.spec;
    for w in &inputs.loaded.warnings {
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
}

/// The requested platforms, else the first worker's, else this host's.
fn platforms(bridge: &Bridge, opts: &Options) -> Vec<pb::Platform> {
    if opts.platforms.is_empty() {
        vec![Options::default_platform(&bridge.workers)]
    } else {
        opts.platforms.clone()
    }
}

/// Resolve and pin the base for `platform`, compile the variant and solve its image.
async fn build_image(
    bridge: &mut Bridge,
    opts: &Options,
    inputs: &Inputs,
    variant: &Variant,
    platform: pb::Platform,
) -> Result<PlatformImage, Failure> {
    let spec = &inputs.loaded.spec;
    let base = &variant.python.base.v;
    let reference = reference::normalize(base);
    let (digest, config) = bridge.resolve_image(&reference, &platform).await?;
    // The digest pins the base: the graph names exactly the image that was resolved.
    let pinned = if digest.is_empty() || reference.contains('@') {
        reference
    } else {
        format!("{reference}@{digest}")
    };
    let config: Value = serde_json::from_slice(&config).unwrap_or(Value::Null);
    let lower_opts = LowerOpts {
        platform: platform.clone(),
        images: BTreeMap::from([(
            base.clone(),
            ImageInfo {
                reference: pinned,
                config,
            },
        )]),
        context: opts.context_local.clone(),
        session_id: opts.session_id.clone(),
        merge: bridge.has_llb("mergeop"),
        no_cache: opts.no_cache,
        labels: opts.labels.clone(),
    };
    let started = std::time::Instant::now();
    let Compiled {
        def,
        config,
        verify,
    } = compile(spec, variant, &inputs.context, &lower_opts);
    eprintln!(
        "kiln: definition for {} made in {} us",
        variant.name.v,
        started.elapsed().as_micros()
    );
    let image = bridge.solve(def, false).await?;
    Ok(PlatformImage {
        platform,
        image,
        config,
        verify,
    })
}

/// Run every verify command at once (each is its own container on the image). Errors:
/// every failure, in spec order, each naming its line.
async fn verify(
    bridge: &Bridge,
    spec: &Spec,
    variant: &Variant,
    commands: &[(S<String>, pb::Definition)],
    skip: bool,
) -> Result<(), Failure> {
    if skip {
        if !commands.is_empty() {
            eprintln!(
                "kiln: verify skipped ({} commands): KILN_SKIP_VERIFY is set",
                commands.len()
            );
        }
        return Ok(());
    }
    let mut running = tokio::task::JoinSet::new();
    for (i, (_, def)) in commands.iter().enumerate() {
        let (b, def) = (bridge.clone(), def.clone());
        running.spawn(async move { (i, b.solve(def, true).await) });
    }
    let mut failures: Vec<Option<Failure>> = vec![None; commands.len()];
    while let Some(done) = running.join_next().await {
        let (i, outcome) = done.map_err(|e| Failure::invalid(format!("verify task: {e}")))?;
        failures[i] = outcome.err();
    }
    let failed: Vec<(&S<String>, Failure)> = commands
        .iter()
        .zip(failures)
        .filter_map(|((command, _), f)| f.map(|f| (command, f)))
        .collect();
    let Some((_, first)) = failed.first() else {
        return Ok(());
    };
    let code = first.code;
    let message = failed
        .iter()
        .map(|(command, f)| {
            format!(
                "{}: verify command `{}` failed on the {} image: {}; fix the image or the command",
                command.loc.position(&spec.files),
                command.v,
                variant.name.v,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Err(Failure { code, message })
}

/// One image: a single ref and `containerimage.config`. Several platforms: a ref map keyed
/// by platform id, a config per platform and `refs.platforms` (needs `returnmap`).
fn result(
    bridge: &Bridge,
    opts: &Options,
    mut images: Vec<PlatformImage>,
) -> Result<Returned, Failure> {
    let json_bytes = |v: &Value| serde_json::to_vec(v).expect("json");
    let mut metadata = HashMap::new();
    if images.len() == 1 && opts.platforms.len() <= 1 {
        let one = images.pop().expect("one image");
        metadata.insert("containerimage.config".to_string(), json_bytes(&one.config));
        return Ok(Returned {
            refs: Refs::Single(one.image),
            metadata,
        });
    }
    if !bridge.has("returnmap") {
        return Err(Failure {
            code: tonic::Code::FailedPrecondition,
            message: "this BuildKit cannot return several platforms at once (no `returnmap` cap); build one --platform at a time".into(),
        });
    }
    let mut refs = vec![];
    let mut listed = vec![];
    for one in images {
        let id = platform::id(&one.platform);
        metadata.insert(
            format!("containerimage.config/{id}"),
            json_bytes(&one.config),
        );
        let p = &one.platform;
        let variant = (!p.variant.is_empty()).then_some(&p.variant);
        listed.push(json!({"ID": id, "Platform": {"architecture": p.architecture, "os": p.os, "variant": variant}}));
        refs.push((id, one.image));
    }
    metadata.insert(
        "refs.platforms".into(),
        json_bytes(&json!({"Platforms": listed})),
    );
    Ok(Returned {
        refs: Refs::Map(refs),
        metadata,
    })
}
