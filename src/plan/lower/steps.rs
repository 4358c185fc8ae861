//! The spec's own steps (on the builder or the image) and the verify run.

use serde_json::Value;

use super::{LowerOpts, StepEnv, context_source, sh};
use crate::llb::{Exec, Meta, Mount, Sharing, State};
use crate::plan::config::config_env;
use crate::plan::shell::quote;
use crate::plan::{StepStage, VerifyCheck, VerifyStep};

/// A step's environment and working directory: on an image, the image's (and
/// `SOURCE_DATE_EPOCH`); on the builder, the base's with the venv first on `PATH`.
pub(super) fn step_env(
    image: Option<&Value>,
    env: &StepEnv,
    step: &StepStage,
    epoch: Option<u64>,
) -> (Vec<String>, String) {
    match image {
        Some(config) => {
            let cwd = config["config"]["WorkingDir"].as_str().unwrap_or("/");
            let mut vars = config_env(config);
            vars.extend(epoch.map(|e| format!("SOURCE_DATE_EPOCH={e}")));
            (vars, cwd.to_string())
        }
        None => (venv_env(env, &step.venv), "/".to_string()),
    }
}

/// A builder step's environment: the base's, with the venv first on `PATH`.
pub(super) fn venv_env(env: &StepEnv, venv: &str) -> Vec<String> {
    let mut vars = env.to_vec();
    for v in vars.iter_mut() {
        if let Some(path) = v.strip_prefix("PATH=") {
            *v = format!("PATH={venv}/bin:{path}");
        }
    }
    vars.push(format!("VIRTUAL_ENV={venv}"));
    vars
}

/// Where a step's `inputs` are mounted (read-only): its working directory.
pub(super) const STEP_INPUTS: &str = "/kiln/inputs";

/// One of the spec's steps: its script as root, with only its inputs from the context,
/// its caches and secrets as mounts, and no network unless it asks for it.
pub(super) fn custom_step(
    on: &State,
    stage: &StepStage,
    (env, cwd): (Vec<String>, String),
    opts: &LowerOpts,
    meta: Meta,
) -> State {
    let step = &stage.step;
    let mut mounts = vec![];
    let mut cwd = cwd;
    if !step.inputs.is_empty() {
        let src = context_source(
            opts,
            (step.inputs.clone(), stage.dockerignore.clone()),
            "",
            &format!("step {} inputs", step.name),
        );
        mounts.push(Mount::Bind {
            dest: STEP_INPUTS.into(),
            src,
        });
        cwd = STEP_INPUTS.into();
    }
    for dir in &step.cache {
        mounts.push(Mount::Cache {
            dest: dir.clone(),
            id: step_cache_id(&stage.spec, &step.name, dir),
            sharing: Sharing::Shared,
        });
    }
    for id in &step.secrets {
        mounts.push(Mount::Secret {
            dest: format!("/run/secrets/{id}"),
            id: id.clone(),
            optional: false,
            mode: 0o400,
            uid: 0,
            gid: 0,
        });
    }
    let exec = Exec {
        network_none: !step.network,
        cwd,
        ..sh(format!("set -eu\n{}", step.run), env, mounts, meta)
    };
    on.run(exec).root()
}

/// The cache id of a step's cache directory: one per spec (by name), step and directory,
/// and no two of those share one (`a` + `/b/c` and `a-b` + `/c` once both gave
/// `kiln-step-a-b-c`): the names, readable, then a hash of the three.
fn step_cache_id(spec: &str, step: &str, dir: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("{spec}\0{step}\0{dir}"));
    format!("kiln-step-{spec}-{step}-{}", hex::encode(&hash[..8]))
}

/// Where the verify exec writes its results, in its own result (read with `ReadFile`).
pub const VERIFY_RESULTS: &str = "/tmp/kiln-verify/results";

/// Every check on the image in one container, as the image's user, with its env and
/// workdir (`verify_script`). The exec succeeds when it could record the results; a check
/// that failed is read from them.
pub(super) fn verify(image: &State, step: &VerifyStep, config: &Value, meta: Meta) -> State {
    let c = &config["config"];
    let env = config_env(config);
    let dir = VERIFY_RESULTS
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or("/tmp");
    let exec = Exec {
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            verify_script(&step.checks, dir),
        ],
        env,
        cwd: c["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string(),
        user: c["User"].as_str().unwrap_or("").to_string(),
        meta,
        ..Default::default()
    };
    image.run(exec).root()
}

/// The script that runs `checks`, all at once in the one container (they are independent,
/// as separate containers made them before; one start instead of one per check). Each
/// runs as `/bin/sh -c` in the background (in its own session when the image has
/// `setsid`, so a timeout kills what it started too) with a watchdog that kills it after
/// its timeout (no `timeout` binary needed); its status goes to `<dir>/results` as
/// `<index> <exit status>` or `<index> timeout` (one short append per line, in the order
/// they finish), and to the log as a `kiln-verify:` line. Exits 97 when it cannot write
/// `dir`, else 0 once every check has ended.
pub fn verify_script(checks: &[VerifyCheck], dir: &str) -> String {
    let mut script = format!(
        "out={dir}\n\
         mkdir -p \"$out\" && : >\"$out/results\" || {{ echo \"kiln-verify: cannot write $out\" >&2; exit 97; }}\n\
         setsid=$(command -v setsid || true)\n\
         check() {{\n\
         \x20 rm -f \"$out/timeout.$1\"\n\
         \x20 if [ -n \"$setsid\" ]; then setsid /bin/sh -c \"$3\" </dev/null & else /bin/sh -c \"$3\" </dev/null & fi\n\
         \x20 pid=$!\n\
         \x20 ( sleep \"$2\"; : >\"$out/timeout.$1\"; kill -9 -\"$pid\" || kill -9 \"$pid\" ) >/dev/null 2>&1 &\n\
         \x20 dog=$!\n\
         \x20 wait \"$pid\"; rc=$?\n\
         \x20 kill -9 \"$dog\" 2>/dev/null\n\
         \x20 if [ -e \"$out/timeout.$1\" ]; then rc=timeout; fi\n\
         \x20 echo \"$1 $rc\" >>\"$out/results\"\n\
         \x20 echo \"kiln-verify: [$1] $rc: $3\"\n\
         }}\n",
        dir = quote(dir)
    );
    for (i, c) in checks.iter().enumerate() {
        script.push_str(&format!(
            "check {} {} {} &\n",
            i + 1,
            c.timeout_s.max(1),
            quote(&c.command)
        ));
    }
    script.push_str("wait\nexit 0\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CheckKind;

    /// The verify script through a real `sh`: every check runs, each status is recorded
    /// by index, a check past its timeout is killed and recorded as `timeout`.
    #[test]
    fn verify_script_records_each_status_and_kills_at_the_timeout() {
        let dir = std::env::temp_dir().join(format!("kiln-verify-test-{}", std::process::id()));
        let check = |command: &str, timeout_s| VerifyCheck {
            kind: CheckKind::Command,
            command: command.into(),
            timeout_s,
        };
        let checks = [
            check("true", 5),
            check("echo 'it''s'; exit 3", 5),
            check("sleep 30", 1),
            check("no-such-command-kiln", 5),
        ];
        let script = verify_script(&checks, dir.to_str().unwrap());
        let started = std::time::Instant::now();
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the sleep was killed"
        );
        let results = std::fs::read_to_string(dir.join("results")).unwrap();
        let mut lines: Vec<&str> = results.lines().collect();
        lines.sort();
        assert_eq!(lines, ["1 0", "2 3", "3 timeout", "4 127"]);
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(
            log.contains("kiln-verify: [2] 3: echo 'it''s'; exit 3"),
            "{log}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
