//! The final image's OCI config: the base image's config with the spec's settings on top.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::lower::DEFAULT_PATH;
use crate::llb::pb;
use crate::spec::{Spec, Variant};

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

/// Set `key=value` in a `K=V` list, keeping the position of an existing entry.
fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let line = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
    {
        Some(e) => *e = line,
        None => env.push(line),
    }
}

pub fn image_config(
    spec: &Spec,
    v: &Variant,
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

    let mut env = base_env(base);
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let venv_bin = format!("{}/bin", v.python.venv);
    // The venv first on PATH: `python`, `pip` and the app's console scripts are the venv's.
    let path = if path.split(':').next() == Some(venv_bin.as_str()) {
        path
    } else {
        format!("{venv_bin}:{path}")
    };
    set_env(&mut env, "PATH", &path);
    set_env(&mut env, "VIRTUAL_ENV", &v.python.venv);
    for (k, val) in &v.env {
        set_env(&mut env, k, val);
    }
    cfg.insert("Env".into(), json!(env));

    let user = &spec.user;
    cfg.insert(
        "User".into(),
        json!(if user.is_root() {
            "0:0".to_string()
        } else {
            format!("{}:{}", user.uid, user.gid)
        }),
    );
    if let Some(app) = &spec.app {
        cfg.insert("WorkingDir".into(), json!(app.workdir));
    }
    // As in a Dockerfile: a new ENTRYPOINT drops the base's CMD.
    if let Some(e) = &spec.entrypoint {
        cfg.insert("Entrypoint".into(), json!(e.v));
        cfg.remove("Cmd");
    }
    if let Some(c) = &spec.cmd {
        cfg.insert("Cmd".into(), json!(c.v));
        if spec.entrypoint.is_none() {
            cfg.remove("Entrypoint");
        }
    }
    if let Some(h) = &spec.healthcheck {
        cfg.insert(
            "Healthcheck".into(),
            json!({"Test": h.test, "Interval": h.interval_ns, "Timeout": h.timeout_ns, "StartPeriod": h.start_period_ns, "Retries": h.retries}),
        );
    }
    if !spec.ports.is_empty() {
        let mut ports = match cfg.get("ExposedPorts") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for p in &spec.ports {
            ports.insert(p.v.clone(), json!({}));
        }
        cfg.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if let Some(s) = &spec.stop_signal {
        cfg.insert("StopSignal".into(), json!(s.v));
    }
    let mut labels = match cfg.get("Labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    labels.insert("org.opencontainers.image.title".into(), json!(spec.name.v));
    if let Some(d) = &spec.description {
        labels.insert("org.opencontainers.image.description".into(), json!(d));
    }
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        json!(v.python.base.v),
    );
    labels.insert("dev.kiln.variant".into(), json!(v.name.v));
    for (k, val) in v.labels.iter().chain(extra_labels) {
        labels.insert(k.clone(), json!(val));
    }
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
    out.remove("created");
    Value::Object(out)
}
