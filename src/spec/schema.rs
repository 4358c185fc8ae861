//! The JSON Schema of a spec, for editors (`# yaml-language-server: $schema=...`).
//! Defaults and ranges come from `format`, as the loader's do; the test below compares
//! every section's keys, and every default and range, with what the loader accepts.

use serde_json::{Value, json};

use super::format::*;

/// An integer property with the loader's range and default.
fn int(range: IntRange, description: &str) -> Value {
    json!({"type": "integer", "minimum": range.min, "maximum": range.max, "default": range.default, "description": description})
}

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

fn string_map(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}, "description": description})
}

fn command(description: &str) -> Value {
    json!({"oneOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1}, {"type": "string"}], "description": description})
}

fn python() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "description": "The Python base image and how packages are installed.",
        "properties": {
            "base": {"type": "string", "description": "Base image with Python, e.g. python:3.12-slim. ${ARG}s allowed."},
            "version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$", "description": "major.minor; checked against the base's interpreter during the build."},
            "installer": {"enum": ["pip", "uv"], "default": "pip", "description": "pip, or uv (installed in the builder and on PATH wherever it is used)."},
            "uv_version": {"type": "string", "default": DEFAULT_UV_VERSION},
            "venv": {"type": "string", "default": DEFAULT_VENV, "description": "Where the virtual environment lives."}
        }
    })
}

fn system() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "description": "apt packages.",
        "properties": {
            "build": strings("Build tools and headers: builder stage only, never in the image."),
            "runtime": {"oneOf": [
                {"const": RUNTIME_AUTO},
                {"type": "array", "items": {"type": "string"}}
            ], "description": "Libraries the image needs at run time: apt packages, or `auto` (alone or as an entry) for the packages the builder finds the venv's ELF files load."},
            "check": {"type": "boolean", "default": DEFAULT_RUNTIME_CHECK, "description": "Check that every ELF file in the venv finds each library it needs (DT_NEEDED) in the image; a miss fails the build with the package to add."},
            "repositories": {"type": "array", "description": "Extra apt sources for both apt steps, each trusted only through its key (signed-by).", "items": {
                "type": "object", "additionalProperties": false, "required": ["name", "url", "suite", "key"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
                    "url": {"type": "string", "format": "uri"},
                    "suite": {"type": "string", "description": "e.g. bookworm-pgdg; a flat repository's ends with /."},
                    "components": strings("e.g. [main]."),
                    "key": {"type": "string", "description": "The signing key in the build context (binary, or armored .asc)."}
                }
            }}
        }
    })
}

fn pip() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "index_url": {"type": "string", "format": "uri", "description": "No credentials here: use build_secrets.netrc."},
            "extra_index_urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
            "timeout": int(PIP_TIMEOUT, "Seconds per network operation."),
            "retries": int(PIP_RETRIES, "Retries per download."),
            "constraints": {"type": ["string", "null"], "description": "A constraints file in the build context."},
            "check": {"type": "boolean", "default": DEFAULT_PIP_CHECK, "description": "Run `pip check` after each install."},
            "require_hashes": {"type": "boolean", "default": DEFAULT_REQUIRE_HASHES, "description": "--require-hashes for requirement-file groups (pip and uv alike)."},
            "build_constraints": {"type": ["string", "null"], "description": "Constraints for sdist build environments (e.g. Cython<3): uv --build-constraint, pip PIP_CONSTRAINT."},
            "index_strategy": {"enum": INDEX_STRATEGIES, "description": "uv's --index-strategy (installer uv only)."},
            "no_build_isolation": strings("Packages built without build isolation; install their build dependencies in an earlier group.")
        }
    })
}

/// The schema as one JSON literal: long, but it reads as the schema it produces.
/// `verify`: commands, each a string or `{run, timeout}`.
fn verify() -> Value {
    json!({
        "type": "array",
        "description": "Shell commands run against each finished image, in one container; a failure fails the build. In a variant: run after the spec-wide ones.",
        "items": {"oneOf": [
            {"type": "string"},
            {"type": "object", "additionalProperties": false, "required": ["run"], "properties": {
                "run": {"type": "string"},
                "timeout": {"type": "string", "description": "A duration; default `verify_timeout`."}
            }}
        ]}
    })
}

/// The process keys, spec-wide and per variant (a variant's replace or add to them).
fn process() -> serde_json::Map<String, Value> {
    let value = json!({
        "user": {"oneOf": [
            {"const": "root"},
            {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string", "default": DEFAULT_USER}, "uid": int(USER_ID, "0 only with the name root."), "gid": int(USER_ID, "Default: the uid.")}}
        ], "description": format!("The runtime user; default {DEFAULT_USER}, uid and gid {DEFAULT_UID}.")},
        "entrypoint": command("Entrypoint: a list (exec form) or a string (run by /bin/sh -c)."),
        "cmd": command("Command: a list (exec form) or a string (run by /bin/sh -c)."),
        "healthcheck": {
            "type": "object", "additionalProperties": false, "required": ["cmd"],
            "properties": {
                "cmd": command("The probe."),
                "interval": {"type": "string", "default": HEALTHCHECK_INTERVAL},
                "timeout": {"type": "string", "default": HEALTHCHECK_TIMEOUT},
                "retries": int(HEALTHCHECK_RETRIES, "Failures in a row before unhealthy."),
                "start_period": {"type": "string", "default": HEALTHCHECK_START_PERIOD},
                "verify": {"type": "boolean", "default": DEFAULT_HEALTHCHECK_VERIFY, "description": "Run the probe once against the built image during verify; a failure fails the build."}
            }
        },
        "ports": {"type": "array", "items": {"type": ["integer", "string"]}},
        "stop_signal": {"type": "string"},
        "init": {"type": "boolean", "default": DEFAULT_INIT, "description": "Run the command under tini (installed from the base's apt): signals reach the app and zombies are reaped."},
        "writable": strings("Directories the runtime user owns (made in the image)."),
        "volumes": strings("Directories the runtime user owns, declared as VOLUMEs (a named volume mounted there starts owned by the user)."),
        "files": {"type": "array", "items": {
            "type": "object", "additionalProperties": false, "required": ["src", "dest"],
            "properties": {
                "src": {"type": "string", "description": "A file in the build context."},
                "dest": {"type": "string", "description": "Its absolute path in the image."},
                "mode": {"type": ["string", "integer"], "default": format!("{DEFAULT_FILE_MODE:04o}"), "description": "Octal, e.g. \"0640\"."},
                "owner": {"enum": OWNERS, "default": "root"}
            }
        }}
    });
    match value {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The JSON Schema (draft-07) of a spec. One JSON literal: long, but it reads as the
/// schema it produces.
pub fn schema() -> Value {
    let mut schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://kiln.dev/schema/v1.json",
        "title": "kiln spec (version 1)",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "name", "python"],
        "properties": {
            "version": {"const": SPEC_VERSION},
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
            "description": {"type": "string"},
            "extends": {"type": "string", "description": "A spec with shared defaults; this file wins key by key."},
            "args": string_map("Build arguments with defaults, used as ${NAME}; --build-arg overrides."),
            "python": python(),
            "system": system(),
            "requirements": {
                "type": "object",
                "description": "Named requirement groups, installed in the order a variant lists them.",
                "additionalProperties": {"oneOf": [
                    {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "Requirement files in the build context."},
                    {"type": "object", "additionalProperties": false, "properties": {
                        "files": strings("Requirement files in the context; their -r/-c includes are followed."),
                        "packages": strings("Requirement lines."),
                        "require_hashes": {"type": "boolean", "description": "--require-hashes for this group (pip and uv alike); default: pip.require_hashes."},
                        "lock": {"type": "string", "description": format!("A lock file in the context: {}; its directory holds the project.", super::LockKind::listed())},
                        "extras": strings("Optional-dependency extras to install from the lock (uv, Poetry)."),
                        "groups": strings("Dependency groups: uv adds them to the project's dependencies; Poetry installs exactly these (default main).")
                    }}
                ]}
            },
            "pip": pip(),
            "app": {
                "type": "object", "additionalProperties": false, "anyOf": [{"required": ["src"]}, {"required": ["project"]}],
                "properties": {
                    "src": strings("Paths in the context, copied to workdir/<path>, last (owned by `owner`)."),
                    "project": {"type": "string", "description": "A Python project directory in the context (`.` for the context itself): built as a wheel in the builder and installed into the venv after the dependencies."},
                    "exclude": strings("Globs left out (on top of .dockerignore)."),
                    "workdir": {"type": "string", "default": DEFAULT_WORKDIR},
                    "owner": {"enum": OWNERS, "default": "root", "description": "Who owns the code: root (the app cannot rewrite it) or user."}
                }
            },
            "env": string_map("Environment of the image."),
            "labels": string_map("Image labels (org.opencontainers.image.* title, description and base.name are set for you)."),
            "steps": {"type": "array", "maxItems": MAX_STEPS, "description": "The spec's own commands: in the builder (after the installs; only `outputs` reach the image) or in the image (as root, at the end).", "items": {
                "type": "object", "additionalProperties": false, "required": ["name", "run"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
                    "in": {"enum": STEP_PLACES, "default": "builder"},
                    "run": {"type": "string", "description": "Shell commands (/bin/sh -c, set -eu), run as root."},
                    "inputs": strings("Context paths mounted read-only at /kiln/inputs (the working directory); only they invalidate the step."),
                    "outputs": {"type": "array", "description": "Builder steps: copied from the step into the image.", "items": {
                        "type": "object", "additionalProperties": false, "required": ["from", "to"],
                        "properties": {"from": {"type": "string"}, "to": {"type": "string"}}
                    }},
                    "cache": strings("Cache mounts (absolute directories) kept between builds."),
                    "secrets": strings("--secret ids, mounted at /run/secrets/<id>."),
                    "network": {"type": "boolean", "default": DEFAULT_STEP_NETWORK}
                }
            }},
            "verify": verify(),
            "verify_timeout": {"type": "string", "default": DEFAULT_VERIFY_TIMEOUT, "description": "How long each verify command may run (a duration), unless it sets its own `timeout`."},
            "build_secrets": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "ca_bundle": {"type": "string", "description": "Id of a --secret holding a PEM CA bundle for pip/uv."},
                    "netrc": {"type": "string", "description": "Id of a --secret holding a .netrc for private indexes."}
                }
            },
            "variants": {
                "type": "object",
                "description": "Named images from this spec; --target picks one.",
                "additionalProperties": {
                    "type": ["object", "null"], "additionalProperties": false,
                    "properties": {
                        "description": {"type": "string"},
                        "base": {"type": "string"},
                        "python": python(),
                        "requirements": {"type": "array", "maxItems": MAX_GROUPS, "description": "Group names, in install order.", "items": {"type": "string"}},
                        "system": system(),
                        "pip": pip(),
                        "env": string_map("Added to the top-level env."),
                        "labels": string_map("Added to the top-level labels."),
                        "verify": verify()
                    }
                }
            },
            "default_variant": {"type": "string"}
        }
    });
    for (key, value) in process() {
        schema["properties"][key.as_str()] = value.clone();
        schema["properties"]["variants"]["additionalProperties"]["properties"][key.as_str()] =
            value;
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    }

    fn sorted(list: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn schema_keys_match_the_loader() {
        let s = schema();
        let p = &s["properties"];
        assert_eq!(keys(&s), sorted(TOP_KEYS));
        assert_eq!(keys(&p["python"]), sorted(PYTHON_KEYS));
        assert_eq!(keys(&p["system"]), sorted(SYSTEM_KEYS));
        assert_eq!(keys(&p["steps"]["items"]), sorted(STEP_KEYS));
        assert_eq!(
            keys(&p["steps"]["items"]["properties"]["outputs"]["items"]),
            sorted(OUTPUT_KEYS)
        );
        assert_eq!(
            keys(&p["system"]["properties"]["repositories"]["items"]),
            sorted(REPOSITORY_KEYS)
        );
        assert_eq!(keys(&p["pip"]), sorted(PIP_KEYS));
        assert_eq!(keys(&p["app"]), sorted(APP_KEYS));
        assert_eq!(keys(&p["healthcheck"]), sorted(HEALTHCHECK_KEYS));
        assert_eq!(keys(&p["build_secrets"]), sorted(SECRETS_KEYS));
        assert_eq!(keys(&p["user"]["oneOf"][1]), sorted(USER_KEYS));
        assert_eq!(
            keys(&p["variants"]["additionalProperties"]),
            sorted(VARIANT_KEYS)
        );
        assert_eq!(
            keys(&p["requirements"]["additionalProperties"]["oneOf"][1]),
            sorted(GROUP_KEYS)
        );
    }

    /// Every default and range the schema states is the one `kiln check` applies: each
    /// spec below sets nothing, or a bound, and the loaded values are compared.
    #[test]
    fn schema_defaults_and_ranges_match_the_loader() {
        use crate::spec::{LoadOptions, load_str};
        let s = schema();
        let p = &s["properties"];
        let load = |extra: &str| {
            let yaml = format!("version: 1\nname: w\npython: {{base: python:3}}\n{extra}");
            load_str("t.yaml", &yaml, &LoadOptions::default())
        };
        let spec = load("app: {src: [app]}\nhealthcheck: {cmd: [x]}\n")
            .unwrap()
            .spec;
        let v = &spec.variants[0];
        let py = &p["python"]["properties"];
        assert_eq!(py["installer"]["default"], "pip");
        assert_eq!(v.python.installer, crate::spec::Installer::Pip);
        assert_eq!(py["uv_version"]["default"], v.python.uv_version.as_str());
        assert_eq!(py["venv"]["default"], v.python.venv.as_str());
        let pip = &p["pip"]["properties"];
        assert_eq!(pip["timeout"]["default"], v.pip.timeout);
        assert_eq!(pip["retries"]["default"], v.pip.retries);
        assert_eq!(pip["check"]["default"], v.pip.check);
        assert_eq!(pip["require_hashes"]["default"], v.pip.require_hashes);
        assert_eq!(
            p["system"]["properties"]["check"]["default"],
            v.runtime_check
        );
        assert_eq!(
            p["app"]["properties"]["workdir"]["default"],
            spec.app.unwrap().workdir.as_str()
        );
        let user = &p["user"]["oneOf"][1]["properties"];
        assert_eq!(user["name"]["default"], spec.process.user.name.as_str());
        assert_eq!(user["uid"]["default"], spec.process.user.uid);
        let hc = &p["healthcheck"]["properties"];
        let h = spec.process.healthcheck.unwrap();
        let ns = |v: &Value| crate::spec::validate::duration_ns(v.as_str().unwrap()).unwrap();
        assert_eq!(ns(&hc["interval"]["default"]), h.interval_ns);
        assert_eq!(ns(&hc["timeout"]["default"]), h.timeout_ns);
        assert_eq!(ns(&hc["start_period"]["default"]), h.start_period_ns);
        assert_eq!(hc["retries"]["default"], h.retries);
        assert_eq!(hc["verify"]["default"], h.verify);
        let with_verify = load("verify: [x]\n").unwrap().spec;
        assert_eq!(
            ns(&p["verify_timeout"]["default"]) / 1_000_000_000,
            u64::from(with_verify.verify[0].v.timeout_s)
        );

        // Each range: its bounds load, one past them does not.
        let ranges = [
            (&pip["timeout"], "pip: {timeout: N}"),
            (&pip["retries"], "pip: {retries: N}"),
            (&user["uid"], "user: {name: root, uid: N}"),
            (&user["gid"], "user: {name: u, uid: 10001, gid: N}"),
            (&hc["retries"], "healthcheck: {cmd: [x], retries: N}"),
        ];
        for (prop, template) in ranges {
            let (min, max) = (
                prop["minimum"].as_i64().unwrap(),
                prop["maximum"].as_i64().unwrap(),
            );
            let at = |n: i64| load(&format!("{}\n", template.replace('N', &n.to_string())));
            // uid 0 is root: its minimum is checked with the name root, its maximum with another name.
            let at_max = |n: i64| {
                load(&format!(
                    "{}\n",
                    template
                        .replace("name: root", "name: u")
                        .replace('N', &n.to_string())
                ))
            };
            assert!(at(min).is_ok(), "{template} at its minimum {min}");
            assert!(at_max(max).is_ok(), "{template} at its maximum {max}");
            assert!(at(min - 1).is_err(), "{template} below {min}");
            assert!(at_max(max + 1).is_err(), "{template} above {max}");
        }
    }
}
