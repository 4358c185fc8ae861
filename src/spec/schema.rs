//! The JSON Schema of a spec, for editors (`# yaml-language-server: $schema=...`).
//! Its key lists are tested against the ones the loader accepts, so the two cannot drift.

use serde_json::{Value, json};

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
            "uv_version": {"type": "string", "default": crate::spec::convert::DEFAULT_UV_VERSION},
            "venv": {"type": "string", "default": "/opt/venv", "description": "Where the virtual environment lives."}
        }
    })
}

fn system() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "description": "apt packages.",
        "properties": {
            "build": strings("Build tools and headers: builder stage only, never in the image."),
            "runtime": strings("Libraries the image needs at run time.")
        }
    })
}

fn pip() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "index_url": {"type": "string", "format": "uri", "description": "No credentials here: use build_secrets.netrc."},
            "extra_index_urls": {"type": "array", "items": {"type": "string", "format": "uri"}},
            "timeout": {"type": "integer", "minimum": 1, "default": 60},
            "retries": {"type": "integer", "minimum": 0, "default": 5},
            "constraints": {"type": ["string", "null"], "description": "A constraints file in the build context."},
            "check": {"type": "boolean", "default": true, "description": "Run `pip check` after each install."}
        }
    })
}

pub fn schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://kiln.dev/schema/v1.json",
        "title": "kiln spec (version 1)",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "name", "python"],
        "properties": {
            "version": {"const": 1},
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
                    {"type": "object", "additionalProperties": false, "properties": {"files": strings("Requirement files."), "packages": strings("Requirement lines.")}}
                ]}
            },
            "pip": pip(),
            "app": {
                "type": "object", "additionalProperties": false, "required": ["src"],
                "properties": {
                    "src": strings("Paths in the context, copied to workdir/<path>, last and owned by the user."),
                    "exclude": strings("Globs left out (on top of .dockerignore)."),
                    "workdir": {"type": "string", "default": "/app"}
                }
            },
            "user": {"oneOf": [
                {"const": "root"},
                {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string"}, "uid": {"type": "integer", "minimum": 1}, "gid": {"type": "integer", "minimum": 0}}}
            ], "description": "The runtime user; default app, uid and gid 10001."},
            "env": string_map("Environment of the image."),
            "entrypoint": command("Entrypoint: a list (exec form) or a string (run by /bin/sh -c)."),
            "cmd": command("Command: a list (exec form) or a string (run by /bin/sh -c)."),
            "healthcheck": {
                "type": "object", "additionalProperties": false, "required": ["cmd"],
                "properties": {
                    "cmd": command("The probe."),
                    "interval": {"type": "string", "default": "30s"},
                    "timeout": {"type": "string", "default": "30s"},
                    "retries": {"type": "integer", "minimum": 1, "default": 3},
                    "start_period": {"type": "string", "default": "0s"}
                }
            },
            "ports": {"type": "array", "items": {"type": ["integer", "string"]}},
            "labels": string_map("Image labels (org.opencontainers.image.* title, description and base.name are set for you)."),
            "stop_signal": {"type": "string"},
            "verify": strings("Shell commands run against each finished image; a failure fails the build."),
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
                        "requirements": strings("Group names, in install order."),
                        "system": system(),
                        "pip": pip(),
                        "env": string_map("Added to the top-level env."),
                        "labels": string_map("Added to the top-level labels.")
                    }
                }
            },
            "default_variant": {"type": "string"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::convert::*;

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
}
