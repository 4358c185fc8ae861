//! One build through the gateway, in phases: read the inputs, resolve the target, build
//! the image for each platform, verify it, shape the result BuildKit exports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::bridge::{Bridge, Failure, RefId, Refs, Returned};
use super::context::{Inputs, read_context, read_spec};
use super::opts::Options;
use super::{sbom, subrequests};
use crate::context::interpreter::Interpreter;
use crate::diag::{Diagnostic, MAX_SHOWN, Severity, SourceFile};
use crate::llb::{self, Meta, caps, pb, platform};
use crate::plan::lower::{ImageInfo, LowerOpts, PROBE_FILE, interpreter_probe};
use crate::plan::{CheckKind, Compiled, VerifyCheck, VerifyRun, compile, needs_interpreter};
use crate::reference;
use crate::spec::{S, Spec, Variant};
use bollard_buildkit_proto::moby::buildkit::v1::frontend as gw;

/// The whole frontend run after Ping: what to hand back through `Return`.
pub async fn run(bridge: &mut Bridge, opts: &Options) -> Result<Returned, Failure> {
    bridge.cache_imports = opts.cache_imports.clone();
    if let Some(id) = &opts.request_id {
        return subrequests::handle(bridge, opts, id).await;
    }
    sbom::check(bridge, opts)?;
    if let Some(sbom::Request::Generator(image)) = &opts.sbom {
        eprintln!(
            "kiln: attest:sbom names the generator {image}: kiln attaches no SBOM of its own, BuildKit runs that scanner on the image"
        );
    }
    // Each phase's time goes to the engine's log: what a no-op build spends where.
    let started = Instant::now();
    let loaded = read_spec(bridge, opts).await?;
    // The target's base needs only the spec: each platform's is resolved while the context
    // files are read (about 15 ms of a no-op build). A bad target is reported below.
    let platforms = platforms(bridge, opts);
    let target = loaded.spec.target(opts.target.as_deref()).cloned();
    let resolving: Vec<Resolving> = match &target {
        Ok(v) => platforms
            .iter()
            .map(|p| resolve_base(bridge, &v.python.base.v, p))
            .collect(),
        Err(_) => vec![],
    };
    let inputs = read_context(bridge, opts, loaded).await?;
    eprintln!(
        "kiln: spec and context files read in {} ms",
        started.elapsed().as_millis()
    );
    let spec = &inputs.loaded.spec;
    report_warnings(bridge, opts, &inputs).await;
    let variant = &target.map_err(|d| Failure::invalid(d.one_line(&spec.files)))?;
    let shared = Arc::new((opts.clone(), inputs.clone(), variant.clone()));
    // Pre-flight (the context paths looked up) runs beside each platform's base resolve,
    // interpreter read and definition, none of which reads the context; a platform's
    // first solve waits for it (`Gate`). On a no-op build that overlaps 20 to 90 ms.
    let (passed, gate) = tokio::sync::watch::channel(None);
    let preflight = {
        let (bridge, shared) = (bridge.clone(), shared.clone());
        tokio::spawn(async move {
            let (opts, inputs, variant) = &*shared;
            let started = Instant::now();
            let outcome = super::context::preflight(&bridge, opts, inputs, variant).await;
            eprintln!("kiln: pre-flight in {} ms", started.elapsed().as_millis());
            passed.send_replace(Some(outcome.is_ok()));
            outcome
        })
    };
    // Several platforms are built at once, as the Dockerfile frontend does; their steps
    // are then told apart by a `[os/arch]` prefix.
    let several = platforms.len() > 1;
    let mut running = tokio::task::JoinSet::new();
    // The target passed, so every platform's resolve was started above.
    for (i, (platform, resolving)) in platforms.into_iter().zip(resolving).enumerate() {
        let (bridge, shared, gate) = (bridge.clone(), shared.clone(), Gate(gate.clone()));
        running.spawn(async move {
            let (opts, inputs, variant) = &*shared;
            let spec = &inputs.loaded.spec;
            let prefix = several.then(|| platform::id(&platform));
            let base = (variant, resolving);
            let (mut image, checks) =
                build_image(&bridge, opts, inputs, base, platform, prefix.clone(), gate).await?;
            let verified = verify(
                &bridge,
                spec,
                variant,
                image.verify.as_ref(),
                opts.skip_verify,
            )
            .await;
            // A failed check comes first: it names the cause a failed verify shows.
            match checks.await {
                Ok(checked) => checked?,
                Err(e) => return Err(Failure::invalid(format!("check task: {e}"))),
            }
            verified?;
            if opts.sbom == Some(sbom::Request::Kiln) {
                let prefix = prefix.map(|p| format!("[{p}] "));
                let subject = sbom::Subject {
                    spec,
                    variant,
                    context: &inputs.context,
                    platform: &image.platform,
                    base: &image.base,
                    interpreter: image.interpreter.as_ref(),
                    step_prefix: prefix.as_deref(),
                };
                image.sbom = Some(sbom::attest(&bridge, &subject, &image.image).await?);
            }
            Ok::<_, Failure>((i, image))
        });
    }
    // Pre-flight's errors come first: they name the spec's lines, where a platform's
    // error would be a consequence (a platform stops at its gate when pre-flight failed).
    match preflight.await {
        Ok(Ok(())) => {}
        Ok(Err(f)) => return Err(f),
        Err(e) => return Err(Failure::invalid(format!("pre-flight task: {e}"))),
    }
    let mut done: Vec<(usize, Result<PlatformImage, Failure>)> = vec![];
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(Ok((i, image))) => done.push((i, Ok(image))),
            Ok(Err(f)) => done.push((usize::MAX, Err(f))),
            Err(e) => done.push((
                usize::MAX,
                Err(Failure::invalid(format!("platform task: {e}"))),
            )),
        }
    }
    done.sort_by_key(|(i, _)| *i);
    let mut images = vec![];
    for (_, outcome) in done {
        images.push(outcome?);
    }
    let mut returned = result(bridge, opts, images)?;
    // The exporter's clock (BuildKit 0.11+): history and, with `rewrite-timestamp`, layers.
    if let Some(epoch) = spec.source_date_epoch {
        returned
            .metadata
            .insert("source.date.epoch".into(), epoch.to_string().into_bytes());
    }
    Ok(returned)
}

/// The image of one platform, solved, with what verifying and exporting it needs.
struct PlatformImage {
    platform: pb::Platform,
    image: RefId,
    config: Value,
    verify: Option<VerifyRun>,
    /// The base as pinned, and its interpreter when it was read: what the SBOM says.
    base: String,
    interpreter: Option<Interpreter>,
    /// The SBOM's attestation, when one was asked for.
    sbom: Option<gw::Attestation>,
}

/// The spec's warnings (build args nothing uses among them), where the user sees them:
/// build warnings through `Warn` on engines with `gateway.warnings` (buildx lists them
/// with the spec line), else a vertex named `WARNING ...` in the progress output (an
/// empty directory on scratch, solved on its own: nothing in the image or its cache key).
/// Each also goes to stderr (the engine's log).
async fn report_warnings(bridge: &Bridge, opts: &Options, inputs: &Inputs) {
    let spec = &inputs.loaded.spec;
    let warnings: Vec<&Diagnostic> = inputs
        .loaded
        .warnings
        .iter()
        .chain(&inputs.context.warnings)
        .filter(|w| w.severity == Severity::Warning)
        .collect();
    if warnings.is_empty() {
        return;
    }
    let vertex = super::context::spec_vertex(bridge, opts);
    // Each warning is a message (a solve on old engines): a spec with thousands of them
    // shows the first ones and a count.
    let more = warnings.len().saturating_sub(MAX_SHOWN);
    let summary = (more > 0).then(|| {
        let w = warnings[MAX_SHOWN];
        Diagnostic::warning(
            w.code,
            w.loc,
            format!("... and {more} more warnings (only the first {MAX_SHOWN} are shown)"),
            "run `kiln check` on the spec after fixing these",
        )
    });
    for w in warnings.into_iter().take(MAX_SHOWN).chain(summary.as_ref()) {
        let line = w.one_line(&spec.files);
        eprintln!("kiln: {line}");
        if bridge.caps.warnings() {
            let short = format!("{}: {}", w.code, w.message);
            let sent = bridge
                .warn(
                    &vertex,
                    &short,
                    std::slice::from_ref(&w.help),
                    &spec.files,
                    w.loc,
                )
                .await;
            if let Err(e) = sent {
                eprintln!("kiln: the warning did not reach the client: {}", e.message);
            }
        } else {
            let named = Meta {
                name: Some(format!(
                    "WARNING {}: {} ({}; help: {})",
                    w.code,
                    w.message,
                    w.position(&spec.files),
                    w.help
                )),
                ..Default::default()
            };
            let st = llb::scratch()
                .file(named)
                // Its own op per warning: equal ops are one vertex, shown under one name.
                .mkdir(&warning_dir(&line), 0o755, false, None)
                .done();
            if let Err(e) = bridge.solve(llb::marshal(&st, &[]), true).await {
                eprintln!("kiln: the warning did not reach the client: {}", e.message);
            }
        }
    }
}

/// A directory named after the warning's text, so each warning is an op of its own.
fn warning_dir(text: &str) -> String {
    let digest = crate::llb::digest_of(text.as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    format!("/kiln-warning-{}", &hex[..12])
}

/// The requested platforms, else the first worker's, else this host's.
fn platforms(bridge: &Bridge, opts: &Options) -> Vec<pb::Platform> {
    if opts.platforms.is_empty() {
        vec![Options::default_platform(&bridge.workers)]
    } else {
        opts.platforms.clone()
    }
}

/// A base's `ResolveImageConfig` under way: its digest and config, or the engine's error.
type Resolving = tokio::task::JoinHandle<Result<(String, Vec<u8>), Failure>>;

/// Start resolving `base` (as the spec writes it) for `platform`, as a task of its own.
fn resolve_base(bridge: &Bridge, base: &str, platform: &pb::Platform) -> Resolving {
    let (bridge, reference, platform) =
        (bridge.clone(), reference::normalize(base), platform.clone());
    tokio::spawn(async move {
        let started = Instant::now();
        let resolved = bridge.resolve_image(&reference, &platform).await;
        eprintln!(
            "kiln: base resolved in {} ms",
            started.elapsed().as_millis()
        );
        resolved
    })
}

/// Pin the base for `platform` (`resolving` was started by `resolve_base`), compile the
/// variant and solve its image; its checks are started beside it, and returned as a task.
async fn build_image(
    bridge: &Bridge,
    opts: &Options,
    inputs: &Inputs,
    (variant, resolving): (&Variant, Resolving),
    platform: pb::Platform,
    step_prefix: Option<String>,
    mut gate: Gate,
) -> Result<(PlatformImage, Checks), Failure> {
    let spec = &inputs.loaded.spec;
    let base = &variant.python.base.v;
    let reference = reference::normalize(base);
    let resolved = match resolving.await {
        Ok(resolved) => resolved,
        Err(e) => Err(Failure::invalid(format!("base resolve task: {e}"))),
    };
    let (digest, config) = resolved.map_err(|f| {
            let d = Diagnostic::error(
                variant.python.base.loc,
                format!("the `python.base` image `{base}` cannot be used: {}", f.message),
                "check the name, or build or pull it first; a local image must exist in the engine's image store",
            );
            Failure::from_diagnostics(&spec.files, &[d])
        })?;
    // The digest pins the base: the graph names exactly the image that was resolved.
    let pinned = if digest.is_empty() || reference.contains('@') {
        reference
    } else {
        format!("{reference}@{digest}")
    };
    let config: Value = serde_json::from_slice(&config).unwrap_or(Value::Null);
    // BuildKit answers with whatever it found: a single-platform base is returned as it is
    // for any platform asked (containerd matches the platform only inside an index), and
    // would silently become, say, an "arm64" image of amd64 binaries.
    if let Some(found) = base_platform_mismatch(&config, &platform) {
        let want = platform::id(&platform);
        let d = Diagnostic::error(
            variant.python.base.loc,
            format!(
                "the `python.base` image `{base}` has no {want} image: the engine resolved a {found} one"
            ),
            format!(
                "use a base published for {want}, e.g. a multi-platform image, or leave {want} out of --platform"
            ),
        );
        return Err(Failure::from_diagnostics(&spec.files, &[d]));
    }
    let mut lower_opts = LowerOpts {
        platform: platform.clone(),
        images: BTreeMap::new(),
        context: opts.context_local.clone(),
        session_id: opts.session_id.clone(),
        caps: bridge.caps.clone(),
        no_cache: opts.no_cache,
        own_vertices: own_vertices(opts),
        labels: opts.image_labels(),
        step_prefix,
    };
    let mut info = ImageInfo {
        reference: pinned,
        config,
        interpreter: None,
    };
    // A lock's files are chosen for the base's own interpreter, read from it: never for a
    // guess from python.version.
    if needs_interpreter(spec, variant, &inputs.context) {
        info.interpreter =
            Some(read_interpreter(bridge, &info, &lower_opts, variant, &spec.files).await?);
    }
    let (pinned, interpreter) = (info.reference.clone(), info.interpreter.clone());
    lower_opts.images.insert(base.clone(), info);
    let started = Instant::now();
    let Compiled {
        def,
        config,
        verify,
        gates,
        runtime_check,
    } = compile(spec, variant, &inputs.context, &lower_opts)
        .map_err(|d| Failure::from_diagnostics(&spec.files, &[d]))?;
    eprintln!(
        "kiln: definition for {} made in {} us",
        variant.name.v,
        started.elapsed().as_micros()
    );
    if !gate.passed().await {
        return Err(Failure::invalid("pre-flight failed".to_string()));
    }
    // Built now (evaluated), so a failing step is reported as that step, never as the
    // verify command that would otherwise have built the image first. The checks are
    // solved beside it (asked for after it), and the image does not wait for them.
    let started = Instant::now();
    let solving = {
        let (bridge, def) = (bridge.clone(), def.clone());
        tokio::spawn(async move { bridge.solve(def, true).await })
    };
    let checks = tokio::spawn(super::gates::run(
        bridge.clone(),
        gates,
        variant.name.v.clone(),
        spec.files.clone(),
    ));
    let solved = solving
        .await
        .unwrap_or_else(|e| Err(Failure::invalid(format!("image solve task: {e}"))));
    let image = match solved {
        Ok(image) => image,
        Err(f) => {
            checks.abort();
            let check = (runtime_check.as_ref(), variant);
            return Err(super::runtime_libs::explain(bridge, &def, check, &spec.files, f).await);
        }
    };
    eprintln!(
        "kiln: image {} solved in {} ms",
        variant.name.v,
        started.elapsed().as_millis()
    );
    let image = PlatformImage {
        platform,
        image,
        config,
        verify,
        base: pinned,
        interpreter,
        sbom: None,
    };
    Ok((image, checks))
}

/// The image's checks, running beside it and its verify (`gates::run`).
type Checks = tokio::task::JoinHandle<Result<(), Failure>>;

/// Pre-flight's outcome as each platform waits for it before its image's solve: `true`
/// once it passed, `false` when it failed or its task ended without saying.
struct Gate(tokio::sync::watch::Receiver<Option<bool>>);

impl Gate {
    async fn passed(&mut self) -> bool {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => *outcome == Some(true),
            Err(_) => false,
        }
    }
}

/// The base's interpreter on this build's platform: the probe solved and its answer read.
/// Errors: the base has no Python, or the probe's answer cannot be read; at `python.base`.
async fn read_interpreter(
    bridge: &Bridge,
    info: &ImageInfo,
    opts: &LowerOpts,
    variant: &Variant,
    files: &[SourceFile],
) -> Result<Interpreter, Failure> {
    let at = variant.python.base.loc;
    let fail = |why: String| {
        let d = Diagnostic::error(
            at,
            format!(
                "kiln could not read the Python of `python.base` `{}`: {why}",
                variant.python.base.v
            ),
            "use a Python base image (python3 on its PATH, such as python:3.12-slim)",
        );
        Failure::from_diagnostics(files, &[d])
    };
    let started = Instant::now();
    let def = llb::marshal(&interpreter_probe(info, opts), &[]);
    let r = bridge.solve(def, true).await.map_err(|f| fail(f.message))?;
    let mut b = bridge.clone();
    let json = b
        .read_file(&r, PROBE_FILE)
        .await
        .map_err(|s| fail(s.message().to_string()))?;
    let interpreter = Interpreter::parse(&json).map_err(fail)?;
    eprintln!(
        "kiln: base Python {} on {} ({:?}) read in {} ms",
        interpreter.python_full_version,
        interpreter.platform_machine,
        interpreter.libc,
        started.elapsed().as_millis()
    );
    Ok(interpreter)
}

/// What makes this build's ops its own (`LowerOpts::own_vertices`): set for every
/// `--no-cache` build, on every engine. BuildKit's solver merges an op loaded without
/// `ignore_cache` into the same op loaded with it by another build (`solver/jobs.go`,
/// `loadUnlocked`). Before BuildKit 0.12 (Docker 20.10 to 24) a later build is then handed
/// a vertex it does not hold, and the scheduler panics when that build ends (`failed to
/// get edge`, dockerd with it; moby/buildkit#3953). On Docker 28.5 a cached build beside
/// a `--no-cache` one still failed: `failed to compute cache key: failed to get state for
/// index 0` on a step whose input had been merged (`tests/e2e/stress.sh`, 2026-12-06; the
/// error of moby/buildkit#3635). An op no other build has is never merged; the session is
/// unique per build, and a `--no-cache` build reuses nothing anyway.
fn own_vertices(opts: &Options) -> Option<String> {
    if !opts.no_cache {
        return None;
    }
    Some(opts.session_id.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        format!("{}-{}", std::process::id(), now.map_or(0, |d| d.as_nanos()))
    }))
}

/// The base config's platform (`os/architecture`) when it is not the one asked for; `None`
/// when it matches or the config does not say (an old image without those fields).
/// Variants (`arm/v7`, `arm64/v8`) are not compared: configs often leave them out.
pub fn base_platform_mismatch(config: &Value, want: &pb::Platform) -> Option<String> {
    let field = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
    let (os, arch) = (field("os"), field("architecture"));
    let differs = |have: &str, want: &str| !have.is_empty() && have != want;
    (differs(os, &want.os) || differs(arch, &want.architecture)).then(|| {
        let os = if os.is_empty() { want.os.as_str() } else { os };
        let arch = if arch.is_empty() {
            want.architecture.as_str()
        } else {
            arch
        };
        format!("{os}/{arch}")
    })
}

/// Run every check of one image in one container, then read which failed. Errors: every
/// failed check, in spec order, each naming its line (and carrying it as an
/// `errdefs.Source`), or the reason the checks could not run at all.
async fn verify(
    bridge: &Bridge,
    spec: &Spec,
    variant: &Variant,
    run: Option<&VerifyRun>,
    skip: bool,
) -> Result<(), Failure> {
    let Some(run) = run else {
        return Ok(());
    };
    if skip {
        eprintln!(
            "kiln: verify skipped ({} checks): KILN_SKIP_VERIFY is set",
            run.checks.len()
        );
        return Ok(());
    }
    let files = &spec.files;
    let image = &variant.name.v;
    let could_not = |why: String| {
        let d = Diagnostic::error(
            run.checks[0].loc,
            format!("verify could not run on the {image} image: {why}"),
            "verify needs /bin/sh, sleep, kill and a writable /tmp in the image; `--build-arg KILN_SKIP_VERIFY=1` builds without it",
        );
        Failure::from_diagnostics(files, &[d])
    };
    let started = Instant::now();
    let mut b = bridge.clone();
    let result = b
        .solve(run.def.clone(), true)
        .await
        .map_err(|f| could_not(f.message))?;
    let text = b
        .read_file(&result, run.results)
        .await
        .map_err(|s| could_not(format!("no results ({})", s.message())))?;
    eprintln!(
        "kiln: verify of {image} ran in {} ms",
        started.elapsed().as_millis()
    );
    let timeouts: Vec<u32> = run.checks.iter().map(|c| c.v.timeout_s).collect();
    let outcomes = parse_results(&String::from_utf8_lossy(&text), &timeouts);
    let failed: Vec<(&S<VerifyCheck>, String)> = run
        .checks
        .iter()
        .zip(outcomes)
        .filter_map(|(c, o)| o.map(|o| (c, o)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let diagnostics: Vec<Diagnostic> = failed
        .iter()
        .map(|(c, why)| match c.v.kind {
            CheckKind::Command => Diagnostic::error(
                c.loc,
                format!(
                    "verify command `{}` failed on the {image} image: {why}",
                    c.v.command
                ),
                "fix the image or the command",
            ),
            CheckKind::Healthcheck => Diagnostic::error(
                c.loc,
                format!(
                    "the health check `{}` failed on the {image} image: {why}",
                    c.v.command
                ),
                "install what it calls, fix it, or set `healthcheck.verify: false`",
            ),
        })
        .collect();
    Err(Failure::from_diagnostics(files, &diagnostics))
}

/// What went wrong with each check (`None`: it passed), from the results file's
/// `<index> <status>` lines; a check with no line did not run.
fn parse_results(text: &str, timeouts: &[u32]) -> Vec<Option<String>> {
    let count = timeouts.len();
    let mut status: Vec<Option<&str>> = vec![None; count];
    for line in text.lines() {
        if let Some((i, s)) = line.trim().split_once(' ')
            && let Ok(i) = i.parse::<usize>()
            && (1..=count).contains(&i)
        {
            status[i - 1] = Some(s.trim());
        }
    }
    status
        .into_iter()
        .zip(timeouts)
        .map(|(s, t)| match s {
            Some("0") => None,
            Some("timeout") => Some(format!("it did not finish within {t} s and was killed (raise `timeout:` on the command, or `verify_timeout:`)")),
            Some("127") => Some("exit code 127 (command not found in the image)".into()),
            Some(code) => Some(format!("exit code {code}")),
            None => Some("it did not run (the checks before it ended the container)".into()),
        })
        .collect()
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
    // Attestations are keyed by the platform id `refs.platforms` gives each ref.
    let mut attestations = HashMap::new();
    let listed = |p: &pb::Platform| {
        let variant = (!p.variant.is_empty()).then_some(&p.variant);
        json!({"ID": platform::id(p), "Platform": {"architecture": p.architecture, "os": p.os, "variant": variant}})
    };
    if images.len() == 1 && opts.platforms.len() <= 1 {
        let one = images.pop().expect("one image");
        metadata.insert("containerimage.config".to_string(), json_bytes(&one.config));
        if let Some(a) = one.sbom {
            // Without it the exporter would key the image by a platform of its own making
            // (from the config), which the attestation's key need not match.
            metadata.insert(
                "refs.platforms".into(),
                json_bytes(&json!({"Platforms": [listed(&one.platform)]})),
            );
            let attestation = vec![a];
            attestations.insert(
                platform::id(&one.platform),
                gw::Attestations { attestation },
            );
        }
        return Ok(Returned {
            refs: Refs::Single(one.image),
            metadata,
            attestations,
        });
    }
    if !bridge.caps.return_map() {
        return Err(Failure::new(
            tonic::Code::FailedPrecondition,
            format!(
                "this BuildKit cannot return several platforms at once (no `{}` cap); build one --platform at a time",
                caps::RETURN_MAP.id
            ),
        ));
    }
    let mut refs = vec![];
    let mut platforms = vec![];
    for one in images {
        let id = platform::id(&one.platform);
        metadata.insert(
            format!("containerimage.config/{id}"),
            json_bytes(&one.config),
        );
        platforms.push(listed(&one.platform));
        if let Some(a) = one.sbom {
            let attestation = vec![a];
            attestations.insert(id.clone(), gw::Attestations { attestation });
        }
        refs.push((id, one.image));
    }
    metadata.insert(
        "refs.platforms".into(),
        json_bytes(&json!({"Platforms": platforms})),
    );
    Ok(Returned {
        refs: Refs::Map(refs),
        metadata,
        attestations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_of_another_platform_is_named() {
        let arm64 = platform::parse("linux/arm64").unwrap();
        let amd64 = json!({"architecture": "amd64", "os": "linux"});
        assert_eq!(
            base_platform_mismatch(&amd64, &arm64).as_deref(),
            Some("linux/amd64")
        );
        let v8 = platform::parse("linux/arm64/v8").unwrap();
        let arm = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        assert_eq!(base_platform_mismatch(&arm, &arm64), None);
        assert_eq!(
            base_platform_mismatch(&json!({"architecture": "arm64", "os": "linux"}), &v8),
            None
        );
        let windows = json!({"architecture": "arm64", "os": "windows"});
        assert_eq!(
            base_platform_mismatch(&windows, &arm64).as_deref(),
            Some("windows/arm64")
        );
        // A config that does not say is taken as it is.
        assert_eq!(base_platform_mismatch(&json!({}), &arm64), None);
        assert_eq!(base_platform_mismatch(&Value::Null, &arm64), None);
    }
}
