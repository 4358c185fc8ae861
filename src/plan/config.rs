//! The final image's OCI config: the base image's config with the spec's settings on top.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::FinalStep;
use crate::llb::pb;
use crate::spec::format::TINI;

/// The PATH a step gets when its base image sets none (the one Docker uses).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The base image's environment as `K=V` lines (a default PATH when it has none).
pub fn base_env(config: &Value) -> Vec<String> {
    let mut env = config_env(config);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    env
}

/// An image config's `Env` as `K=V` lines.
pub fn config_env(config: &Value) -> Vec<String> {
    config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A `K=V` list and where each key is in it (its first entry), so that setting a key is
/// a lookup, not a scan: an image with 88 000 env keys took 60 s when it was a scan.
struct Env {
    lines: Vec<String>,
    at: HashMap<String, usize>,
}

impl Env {
    fn new(lines: Vec<String>) -> Env {
        let mut at = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some((k, _)) = line.split_once('=') {
                at.entry(k.to_string()).or_insert(i);
            }
        }
        Env { lines, at }
    }

    /// Set `key=value`, keeping the position of an existing entry.
    fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key}={value}");
        match self.at.get(key) {
            Some(&i) => self.lines[i] = line,
            None => {
                self.at.insert(key.to_string(), self.lines.len());
                self.lines.push(line);
            }
        }
    }
}

/// The OCI image config of `image`: `base`'s config (JSON, `Null` when unknown) with the
/// spec's settings on top, for `platform`; `extra_labels` are the build's `--label`s.
pub fn image_config(
    image: &FinalStep,
    base: &Value,
    platform: &pb::Platform,
    extra_labels: &BTreeMap<String, String>,
) -> Value {
    let mut out = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut cfg = match &base["config"] {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };

    let env = image_env(image, base);
    cfg.insert("Env".into(), json!(env));
    process(&mut cfg, image);
    let labels = labels(&cfg, image, extra_labels);
    cfg.insert("Labels".into(), Value::Object(labels));

    out.insert("config".into(), Value::Object(cfg));
    out.insert("os".into(), json!(platform.os));
    out.insert("architecture".into(), json!(platform.architecture));
    if !platform.variant.is_empty() {
        out.insert("variant".into(), json!(platform.variant));
    } else {
        out.remove("variant");
    }
    out.entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    // The base's creation time says nothing about this image; the exporter fills history.
    match &image.config.created {
        Some(t) => out.insert("created".into(), json!(t)),
        None => out.remove("created"),
    };
    Value::Object(out)
}

/// The base's environment with the venv first on `PATH`, `VIRTUAL_ENV` and the spec's env.
fn image_env(image: &FinalStep, base: &Value) -> Vec<String> {
    let mut env = Env::new(base_env(base));
    let path = env
        .lines
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let venv_bin = format!("{}/bin", image.venv);
    // The venv first on PATH: `python`, `pip` and the app's console scripts are the venv's.
    let path = if path.split(':').next() == Some(venv_bin.as_str()) {
        path
    } else {
        format!("{venv_bin}:{path}")
    };
    env.set("PATH", &path);
    env.set("VIRTUAL_ENV", &image.venv);
    for (k, val) in &image.config.env {
        env.set(k, val);
    }
    env.lines
}

/// How the image runs: user, workdir, entrypoint/cmd, health check, ports, stop signal.
fn process(cfg: &mut Map<String, Value>, image: &FinalStep) {
    let settings = &image.config;
    let user = &image.user;
    cfg.insert(
        "User".into(),
        json!(if user.is_root() {
            "0:0".to_string()
        } else {
            format!("{}:{}", user.uid, user.gid)
        }),
    );
    if let Some(workdir) = &settings.workdir {
        cfg.insert("WorkingDir".into(), json!(workdir));
    }
    // As in a Dockerfile: a new ENTRYPOINT drops the base's CMD.
    if let Some(e) = &settings.entrypoint {
        cfg.insert("Entrypoint".into(), json!(e));
        cfg.remove("Cmd");
    }
    if let Some(c) = &settings.cmd {
        cfg.insert("Cmd".into(), json!(c));
        if settings.entrypoint.is_none() {
            cfg.remove("Entrypoint");
        }
    }
    if settings.init {
        with_init(cfg);
    }
    if !settings.volumes.is_empty() {
        let mut volumes = match cfg.get("Volumes") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for v in &settings.volumes {
            volumes.insert(v.clone(), json!({}));
        }
        cfg.insert("Volumes".into(), Value::Object(volumes));
    }
    if let Some(h) = &settings.healthcheck {
        cfg.insert(
            "Healthcheck".into(),
            json!({"Test": h.test, "Interval": h.interval_ns, "Timeout": h.timeout_ns, "StartPeriod": h.start_period_ns, "Retries": h.retries}),
        );
    }
    if !settings.ports.is_empty() {
        let mut ports = match cfg.get("ExposedPorts") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for p in &settings.ports {
            ports.insert(p.clone(), json!({}));
        }
        cfg.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if let Some(s) = &settings.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
}

/// tini in front of the entrypoint (or of the command, when there is none): it forwards
/// signals to the process and reaps zombies, which a process run as PID 1 does not.
fn with_init(cfg: &mut Map<String, Value>) {
    let mut entrypoint: Vec<Value> = vec![json!(TINI), json!("--")];
    if let Some(Value::Array(e)) = cfg.get("Entrypoint") {
        if e.first().and_then(Value::as_str) == Some(TINI) {
            return;
        }
        entrypoint.extend(e.iter().cloned());
    }
    cfg.insert("Entrypoint".into(), Value::Array(entrypoint));
}

/// The base's labels, kiln's (title, description, base name, variant), the spec's, then
/// the build's `--label`s, each later one winning.
fn labels(
    cfg: &Map<String, Value>,
    image: &FinalStep,
    extra_labels: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let settings = &image.config;
    let mut labels = match cfg.get("Labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    labels.insert(
        "org.opencontainers.image.title".into(),
        json!(settings.title),
    );
    if let Some(d) = &settings.description {
        labels.insert("org.opencontainers.image.description".into(), json!(d));
    }
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        json!(settings.base),
    );
    labels.insert("dev.kiln.variant".into(), json!(image.variant));
    if let Some(t) = &settings.created {
        labels.insert("org.opencontainers.image.created".into(), json!(t));
    }
    for (k, val) in settings.labels.iter().chain(extra_labels) {
        labels.insert(k.clone(), json!(val));
    }
    labels
}

/// Seconds since 1970 as RFC 3339 in UTC (`2023-11-14T22:13:20Z`).
pub fn rfc3339(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
