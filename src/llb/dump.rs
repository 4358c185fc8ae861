//! A lossless JSON view of a Definition (`kiln llb --format json`).
//!
//! Every field of every message in BuildKit's `pb` package is written out, default or
//! not, so any change to a definition shows in its JSON and not only in its digest.
//! Enums are written by their proto names (an unknown value as its number), file modes
//! as octal strings (`"0o644"`; a negative "unset" mode as its number), byte fields as
//! their length plus the text when it is UTF-8 or else hex. Each message is taken apart
//! with an exhaustive pattern: a field added to `pb` is a compile error here until it
//! is written out, and the unit test below fails if a field is dropped.
//!
//! Layout: `ops` in definition order, each with its `digest`, the op's own fields
//! (`inputs`, `platform`, `constraints`, `op`) and the `metadata` and source
//! `locations` stored under its digest; `source.infos` are the source files. Metadata or
//! locations under a digest that is not an op of the definition (none in what kiln
//! makes) appear under `metadata_without_op` / `source.locations_without_op`.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use serde_json::{Map, Value, json};

use super::pb;

pub fn to_json(def: &pb::Definition) -> Value {
    let pb::Definition {
        def: encoded,
        metadata,
        source,
    } = def;
    let mut digests = BTreeSet::new();
    let mut ops = vec![];
    for bytes in encoded {
        let digest = super::marshal::digest_of(bytes);
        let mut entry = match pb::Op::decode(bytes.as_slice()) {
            Ok(op) => op_json(&op),
            Err(e) => {
                let mut m = Map::new();
                m.insert("error".into(), json!(e.to_string()));
                m.insert("bytes".into(), json!(hex::encode(bytes)));
                m
            }
        };
        entry.insert(
            "metadata".into(),
            metadata.get(&digest).map_or(Value::Null, op_metadata),
        );
        entry.insert(
            "locations".into(),
            source
                .as_ref()
                .and_then(|s| s.locations.get(&digest))
                .map_or(Value::Null, locations),
        );
        entry.insert("digest".into(), json!(digest));
        digests.insert(digest);
        ops.push(Value::Object(entry));
    }
    let mut out = Map::new();
    out.insert("ops".into(), Value::Array(ops));
    let orphans: Map<String, Value> = metadata
        .iter()
        .filter(|(d, _)| !digests.contains(*d))
        .map(|(d, m)| (d.clone(), op_metadata(m)))
        .collect();
    if !orphans.is_empty() {
        out.insert("metadata_without_op".into(), Value::Object(orphans));
    }
    out.insert(
        "source".into(),
        source
            .as_ref()
            .map_or(Value::Null, |s| source_json(s, &digests)),
    );
    Value::Object(out)
}

fn op_json(op: &pb::Op) -> Map<String, Value> {
    let pb::Op {
        inputs,
        platform,
        constraints,
        op,
    } = op;
    let mut m = Map::new();
    m.insert(
        "inputs".into(),
        inputs
            .iter()
            .map(|pb::Input { digest, index }| json!({"digest": digest, "index": index}))
            .collect(),
    );
    m.insert(
        "platform".into(),
        platform.as_ref().map_or(Value::Null, platform_json),
    );
    m.insert(
        "constraints".into(),
        constraints.as_ref().map_or(
            Value::Null,
            |pb::WorkerConstraints { filter }| json!({"filter": filter}),
        ),
    );
    let body = match op {
        None => Value::Null,
        Some(pb::op::Op::Exec(e)) => json!({"exec": exec(e)}),
        Some(pb::op::Op::Source(s)) => {
            let pb::SourceOp { identifier, attrs } = s;
            json!({"source": {"identifier": identifier, "attrs": attrs}})
        }
        Some(pb::op::Op::File(pb::FileOp { actions })) => {
            json!({"file": {"actions": actions.iter().map(file_action).collect::<Vec<_>>()}})
        }
        Some(pb::op::Op::Build(b)) => json!({"build": build(b)}),
        Some(pb::op::Op::Merge(pb::MergeOp { inputs })) => {
            let inputs: Vec<Value> = inputs
                .iter()
                .map(|pb::MergeInput { input }| json!({"input": input}))
                .collect();
            json!({"merge": {"inputs": inputs}})
        }
        Some(pb::op::Op::Diff(pb::DiffOp { lower, upper })) => json!({"diff": {
            "lower": lower.as_ref().map(|pb::LowerDiffInput { input }| json!({"input": input})),
            "upper": upper.as_ref().map(|pb::UpperDiffInput { input }| json!({"input": input})),
        }}),
    };
    m.insert("op".into(), body);
    m
}

fn platform_json(p: &pb::Platform) -> Value {
    let pb::Platform {
        architecture,
        os,
        variant,
        os_version,
        os_features,
    } = p;
    json!({
        "os": os, "architecture": architecture, "variant": variant,
        "os_version": os_version, "os_features": os_features,
    })
}

/// An enum by its proto name; a value the proto does not define, by its number.
fn named<E: TryFrom<i32>>(v: i32, name: fn(&E) -> &'static str) -> Value {
    E::try_from(v).map_or(json!(v), |e| json!(name(&e)))
}

/// A file mode in octal; negative values (BuildKit's "not set") as they are.
fn mode<T: Into<i64>>(m: T) -> Value {
    let m = m.into();
    if m < 0 {
        json!(m)
    } else {
        json!(format!("{m:#o}"))
    }
}

fn bytes(data: &[u8]) -> Value {
    match std::str::from_utf8(data) {
        Ok(text) => json!({"len": data.len(), "text": text}),
        Err(_) => json!({"len": data.len(), "hex": hex::encode(data)}),
    }
}

fn exec(e: &pb::ExecOp) -> Value {
    let pb::ExecOp {
        meta,
        mounts,
        network,
        security,
        secretenv,
        cdi_devices,
    } = e;
    json!({
        "meta": meta.as_ref().map(exec_meta),
        "mounts": mounts.iter().map(mount).collect::<Vec<_>>(),
        "network": named(*network, pb::NetMode::as_str_name),
        "security": named(*security, pb::SecurityMode::as_str_name),
        "secretenv": secretenv.iter().map(|pb::SecretEnv { id, name, optional }| {
            json!({"id": id, "name": name, "optional": optional})
        }).collect::<Vec<_>>(),
        "cdi_devices": cdi_devices.iter().map(|pb::CdiDevice { name, optional }| {
            json!({"name": name, "optional": optional})
        }).collect::<Vec<_>>(),
    })
}

fn exec_meta(m: &pb::Meta) -> Value {
    let pb::Meta {
        args,
        env,
        cwd,
        user,
        proxy_env,
        extra_hosts,
        hostname,
        ulimit,
        cgroup_parent,
        remove_mount_stubs_recursive,
        valid_exit_codes,
    } = m;
    let proxy_env = proxy_env.as_ref().map(
        |pb::ProxyEnv {
             http_proxy,
             https_proxy,
             ftp_proxy,
             no_proxy,
             all_proxy,
         }| {
            json!({
                "http_proxy": http_proxy, "https_proxy": https_proxy, "ftp_proxy": ftp_proxy,
                "no_proxy": no_proxy, "all_proxy": all_proxy,
            })
        },
    );
    json!({
        "args": args, "env": env, "cwd": cwd, "user": user, "proxy_env": proxy_env,
        "extra_hosts": extra_hosts.iter().map(|pb::HostIp { host, ip }| json!({"host": host, "ip": ip})).collect::<Vec<_>>(),
        "hostname": hostname,
        "ulimit": ulimit.iter().map(|pb::Ulimit { name, soft, hard }| {
            json!({"name": name, "soft": soft, "hard": hard})
        }).collect::<Vec<_>>(),
        "cgroup_parent": cgroup_parent,
        "remove_mount_stubs_recursive": remove_mount_stubs_recursive,
        "valid_exit_codes": valid_exit_codes,
    })
}

fn mount(m: &pb::Mount) -> Value {
    let pb::Mount {
        input,
        selector,
        dest,
        output,
        readonly,
        mount_type,
        tmpfs_opt,
        cache_opt,
        secret_opt,
        ssh_opt,
        result_id,
        content_cache,
    } = m;
    json!({
        "input": input, "selector": selector, "dest": dest, "output": output,
        "readonly": readonly,
        "type": named(*mount_type, pb::MountType::as_str_name),
        "tmpfs_opt": tmpfs_opt.as_ref().map(|pb::TmpfsOpt { size }| json!({"size": size})),
        "cache_opt": cache_opt.as_ref().map(|pb::CacheOpt { id, sharing }| {
            json!({"id": id, "sharing": named(*sharing, pb::CacheSharingOpt::as_str_name)})
        }),
        "secret_opt": secret_opt.as_ref().map(|pb::SecretOpt { id, uid, gid, mode: m, optional }| {
            json!({"id": id, "uid": uid, "gid": gid, "mode": mode(*m), "optional": optional})
        }),
        "ssh_opt": ssh_opt.as_ref().map(|pb::SshOpt { id, uid, gid, mode: m, optional }| {
            json!({"id": id, "uid": uid, "gid": gid, "mode": mode(*m), "optional": optional})
        }),
        "result_id": result_id,
        "content_cache": named(*content_cache, pb::MountContentCache::as_str_name),
    })
}

fn build(b: &pb::BuildOp) -> Value {
    let pb::BuildOp {
        builder,
        inputs,
        def,
        attrs,
    } = b;
    let inputs: BTreeMap<&String, Value> = inputs
        .iter()
        .map(|(k, pb::BuildInput { input })| (k, json!({"input": input})))
        .collect();
    json!({
        "builder": builder, "inputs": inputs,
        "def": def.as_ref().map(to_json), "attrs": attrs,
    })
}

/// One arm per file action kind, each writing every field, so the dump stays lossless:
/// long, and read one arm at a time.
fn file_action(a: &pb::FileAction) -> Value {
    use pb::file_action::Action;
    let pb::FileAction {
        input,
        secondary_input,
        output,
        action,
    } = a;
    let action = match action {
        None => Value::Null,
        Some(Action::Copy(c)) => {
            let pb::FileActionCopy {
                src,
                dest,
                owner,
                mode: m,
                follow_symlink,
                dir_copy_contents,
                attempt_unpack_docker_compatibility,
                create_dest_path,
                allow_wildcard,
                allow_empty_wildcard,
                timestamp,
                include_patterns,
                exclude_patterns,
                always_replace_existing_dest_paths,
                mode_str,
                required_paths,
            } = c;
            json!({"copy": {
                "src": src, "dest": dest, "owner": owner.as_ref().map(chown),
                "mode": mode(*m), "mode_str": mode_str,
                "follow_symlink": follow_symlink, "dir_copy_contents": dir_copy_contents,
                "attempt_unpack_docker_compatibility": attempt_unpack_docker_compatibility,
                "create_dest_path": create_dest_path, "allow_wildcard": allow_wildcard,
                "allow_empty_wildcard": allow_empty_wildcard, "timestamp": timestamp,
                "include_patterns": include_patterns, "exclude_patterns": exclude_patterns,
                "always_replace_existing_dest_paths": always_replace_existing_dest_paths,
                "required_paths": required_paths,
            }})
        }
        Some(Action::Mkfile(f)) => {
            let pb::FileActionMkFile {
                path,
                mode: m,
                data,
                owner,
                timestamp,
            } = f;
            json!({"mkfile": {
                "path": path, "mode": mode(*m), "data": bytes(data),
                "owner": owner.as_ref().map(chown), "timestamp": timestamp,
            }})
        }
        Some(Action::Mkdir(d)) => {
            let pb::FileActionMkDir {
                path,
                mode: m,
                make_parents,
                owner,
                timestamp,
            } = d;
            json!({"mkdir": {
                "path": path, "mode": mode(*m), "make_parents": make_parents,
                "owner": owner.as_ref().map(chown), "timestamp": timestamp,
            }})
        }
        Some(Action::Rm(r)) => {
            let pb::FileActionRm {
                path,
                allow_not_found,
                allow_wildcard,
            } = r;
            json!({"rm": {
                "path": path, "allow_not_found": allow_not_found, "allow_wildcard": allow_wildcard,
            }})
        }
        Some(Action::Symlink(s)) => {
            let pb::FileActionSymlink {
                oldpath,
                newpath,
                owner,
                timestamp,
            } = s;
            json!({"symlink": {
                "oldpath": oldpath, "newpath": newpath,
                "owner": owner.as_ref().map(chown), "timestamp": timestamp,
            }})
        }
    };
    json!({"input": input, "secondary_input": secondary_input, "output": output, "action": action})
}

fn chown(c: &pb::ChownOpt) -> Value {
    let pb::ChownOpt { user, group } = c;
    json!({"user": user.as_ref().map(user_opt), "group": group.as_ref().map(user_opt)})
}

/// `{}` for a UserOpt with nothing set, `{"by_name": ..}` or `{"by_id": ..}` otherwise.
fn user_opt(u: &pb::UserOpt) -> Value {
    use pb::user_opt::User;
    let pb::UserOpt { user } = u;
    match user {
        None => json!({}),
        Some(User::ByName(pb::NamedUserOpt { name, input })) => {
            json!({"by_name": {"name": name, "input": input}})
        }
        Some(User::ById(id)) => json!({"by_id": id}),
    }
}

fn op_metadata(m: &pb::OpMetadata) -> Value {
    let pb::OpMetadata {
        ignore_cache,
        description,
        export_cache,
        caps,
        progress_group,
    } = m;
    json!({
        "ignore_cache": ignore_cache,
        "description": description,
        "export_cache": export_cache.as_ref().map(|pb::ExportCache { value }| json!({"value": value})),
        "caps": caps,
        "progress_group": progress_group.as_ref().map(|pb::ProgressGroup { id, name, weak }| {
            json!({"id": id, "name": name, "weak": weak})
        }),
    })
}

fn locations(l: &pb::Locations) -> Value {
    let pb::Locations { locations } = l;
    let position = |p: &pb::Position| {
        let pb::Position { line, character } = p;
        json!({"line": line, "character": character})
    };
    locations
        .iter()
        .map(
            |pb::Location {
                 source_index,
                 ranges,
             }| {
                let ranges: Vec<Value> = ranges
                    .iter()
                    .map(|pb::Range { start, end }| {
                        json!({"start": start.as_ref().map(position), "end": end.as_ref().map(position)})
                    })
                    .collect();
                json!({"source_index": source_index, "ranges": ranges})
            },
        )
        .collect()
}

fn source_json(s: &pb::Source, digests: &BTreeSet<String>) -> Value {
    let pb::Source {
        locations: by_digest,
        infos,
    } = s;
    let infos: Vec<Value> = infos
        .iter()
        .map(
            |pb::SourceInfo {
                 filename,
                 data,
                 definition,
                 language,
             }| {
                json!({
                    "filename": filename, "language": language, "data": bytes(data),
                    "definition": definition.as_ref().map(to_json),
                })
            },
        )
        .collect();
    let mut out = Map::new();
    out.insert("infos".into(), Value::Array(infos));
    let orphans: Map<String, Value> = by_digest
        .iter()
        .filter(|(d, _)| !digests.contains(*d))
        .map(|(d, l)| (d.clone(), locations(l)))
        .collect();
    if !orphans.is_empty() {
        out.insert("locations_without_op".into(), Value::Object(orphans));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    //! A definition with every field of every message set to a value that is not its
    //! default, each one distinct: the dump must show every one of them. The messages
    //! are written without `..Default::default()`, so a field added to `pb` fails to
    //! compile here until it is given a value (and a place in the dump).

    use std::collections::BTreeMap;

    use prost::Message;
    use serde_json::Value;

    use super::{pb, to_json};

    /// Hands out distinct non-default values and remembers what the dump must show.
    #[derive(Default)]
    struct Want {
        strings: Vec<String>,
        numbers: Vec<i64>,
        trues: usize,
    }

    impl Want {
        fn s(&mut self, what: &str) -> String {
            let s = format!("<{what}#{}>", self.strings.len());
            self.strings.push(s.clone());
            s
        }
        fn n<T: TryFrom<i64>>(&mut self) -> T {
            let v = 1000 + (self.numbers.len() as i64) * 7;
            self.numbers.push(v);
            T::try_from(v).ok().expect("small")
        }
        /// A mode, shown in octal.
        fn mode<T: TryFrom<i64>>(&mut self) -> T {
            let v = 0o600 + self.strings.len() as i64;
            self.strings.push(format!("{v:#o}"));
            T::try_from(v).ok().expect("small")
        }
        fn t(&mut self) -> bool {
            self.trues += 1;
            true
        }
        /// An enum value (not the default) and the name the dump must show.
        fn e(&mut self, value: i32, name: &str) -> i32 {
            self.strings.push(name.into());
            value
        }
        fn owner(&mut self) -> Option<pb::ChownOpt> {
            Some(pb::ChownOpt {
                user: Some(pb::UserOpt {
                    user: Some(pb::user_opt::User::ByName(pb::NamedUserOpt {
                        name: self.s("owner-name"),
                        input: self.n(),
                    })),
                }),
                group: Some(pb::UserOpt {
                    user: Some(pb::user_opt::User::ById(self.n())),
                }),
            })
        }
        fn platform(&mut self) -> pb::Platform {
            pb::Platform {
                architecture: self.s("arch"),
                os: self.s("os"),
                variant: self.s("variant"),
                os_version: self.s("os-version"),
                os_features: vec![self.s("os-feature")],
            }
        }
        fn input(&mut self) -> pb::Input {
            pb::Input {
                digest: self.s("input-digest"),
                index: self.n(),
            }
        }
        fn op(&mut self, op: pb::op::Op) -> Vec<u8> {
            pb::Op {
                inputs: vec![self.input()],
                platform: Some(self.platform()),
                constraints: Some(pb::WorkerConstraints {
                    filter: vec![self.s("constraint")],
                }),
                op: Some(op),
            }
            .encode_to_vec()
        }
        fn metadata(&mut self) -> pb::OpMetadata {
            pb::OpMetadata {
                ignore_cache: self.t(),
                description: BTreeMap::from([(self.s("desc-key"), self.s("desc-value"))]),
                export_cache: Some(pb::ExportCache { value: self.t() }),
                caps: BTreeMap::from([(self.s("cap"), self.t())]),
                progress_group: Some(pb::ProgressGroup {
                    id: self.s("pg-id"),
                    name: self.s("pg-name"),
                    weak: self.t(),
                }),
            }
        }
        fn locations(&mut self) -> pb::Locations {
            pb::Locations {
                locations: vec![pb::Location {
                    source_index: self.n(),
                    ranges: vec![pb::Range {
                        start: Some(pb::Position {
                            line: self.n(),
                            character: self.n(),
                        }),
                        end: Some(pb::Position {
                            line: self.n(),
                            character: self.n(),
                        }),
                    }],
                }],
            }
        }
        /// A small definition nested in a BuildOp or a SourceInfo.
        fn nested(&mut self) -> pb::Definition {
            let identifier = self.s("nested-identifier");
            let op = self.op(pb::op::Op::Source(pb::SourceOp {
                identifier,
                attrs: BTreeMap::new(),
            }));
            pb::Definition {
                def: vec![op],
                metadata: BTreeMap::new(),
                source: None,
            }
        }
    }

    fn exec(w: &mut Want) -> pb::op::Op {
        pb::op::Op::Exec(pb::ExecOp {
            meta: Some(pb::Meta {
                args: vec![w.s("arg")],
                env: vec![w.s("env")],
                cwd: w.s("cwd"),
                user: w.s("user"),
                proxy_env: Some(pb::ProxyEnv {
                    http_proxy: w.s("http-proxy"),
                    https_proxy: w.s("https-proxy"),
                    ftp_proxy: w.s("ftp-proxy"),
                    no_proxy: w.s("no-proxy"),
                    all_proxy: w.s("all-proxy"),
                }),
                extra_hosts: vec![pb::HostIp {
                    host: w.s("host"),
                    ip: w.s("ip"),
                }],
                hostname: w.s("hostname"),
                ulimit: vec![pb::Ulimit {
                    name: w.s("ulimit"),
                    soft: w.n(),
                    hard: w.n(),
                }],
                cgroup_parent: w.s("cgroup-parent"),
                remove_mount_stubs_recursive: w.t(),
                valid_exit_codes: vec![w.n()],
            }),
            mounts: vec![pb::Mount {
                input: w.n(),
                selector: w.s("selector"),
                dest: w.s("dest"),
                output: w.n(),
                readonly: w.t(),
                mount_type: w.e(pb::MountType::Ssh as i32, "SSH"),
                tmpfs_opt: Some(pb::TmpfsOpt { size: w.n() }),
                cache_opt: Some(pb::CacheOpt {
                    id: w.s("cache-id"),
                    sharing: w.e(pb::CacheSharingOpt::Locked as i32, "LOCKED"),
                }),
                secret_opt: Some(pb::SecretOpt {
                    id: w.s("secret-id"),
                    uid: w.n(),
                    gid: w.n(),
                    mode: w.mode(),
                    optional: w.t(),
                }),
                ssh_opt: Some(pb::SshOpt {
                    id: w.s("ssh-id"),
                    uid: w.n(),
                    gid: w.n(),
                    mode: w.mode(),
                    optional: w.t(),
                }),
                result_id: w.s("result-id"),
                content_cache: w.e(pb::MountContentCache::Off as i32, "OFF"),
            }],
            network: w.e(pb::NetMode::None as i32, "NONE"),
            security: w.e(pb::SecurityMode::Insecure as i32, "INSECURE"),
            secretenv: vec![pb::SecretEnv {
                id: w.s("secretenv-id"),
                name: w.s("secretenv-name"),
                optional: w.t(),
            }],
            cdi_devices: vec![pb::CdiDevice {
                name: w.s("cdi"),
                optional: w.t(),
            }],
        })
    }

    fn file(w: &mut Want) -> pb::op::Op {
        use pb::file_action::Action;
        let action = |w: &mut Want, a: Action| pb::FileAction {
            input: w.n(),
            secondary_input: w.n(),
            output: w.n(),
            action: Some(a),
        };
        let copy = Action::Copy(pb::FileActionCopy {
            src: w.s("copy-src"),
            dest: w.s("copy-dest"),
            owner: w.owner(),
            mode: w.mode(),
            follow_symlink: w.t(),
            dir_copy_contents: w.t(),
            attempt_unpack_docker_compatibility: w.t(),
            create_dest_path: w.t(),
            allow_wildcard: w.t(),
            allow_empty_wildcard: w.t(),
            timestamp: w.n(),
            include_patterns: vec![w.s("include")],
            exclude_patterns: vec![w.s("exclude")],
            always_replace_existing_dest_paths: w.t(),
            mode_str: w.s("mode-str"),
            required_paths: vec![w.s("required")],
        });
        let mkfile = Action::Mkfile(pb::FileActionMkFile {
            path: w.s("mkfile-path"),
            mode: w.mode(),
            data: w.s("mkfile-data").into_bytes(),
            owner: w.owner(),
            timestamp: w.n(),
        });
        let mkdir = Action::Mkdir(pb::FileActionMkDir {
            path: w.s("mkdir-path"),
            mode: w.mode(),
            make_parents: w.t(),
            owner: w.owner(),
            timestamp: w.n(),
        });
        let rm = Action::Rm(pb::FileActionRm {
            path: w.s("rm-path"),
            allow_not_found: w.t(),
            allow_wildcard: w.t(),
        });
        let symlink = Action::Symlink(pb::FileActionSymlink {
            oldpath: w.s("oldpath"),
            newpath: w.s("newpath"),
            owner: w.owner(),
            timestamp: w.n(),
        });
        let actions = [copy, mkfile, mkdir, rm, symlink]
            .into_iter()
            .map(|a| action(w, a))
            .collect();
        pb::op::Op::File(pb::FileOp { actions })
    }

    fn everything(w: &mut Want) -> pb::Definition {
        let exec = exec(w);
        let file = file(w);
        let source = pb::op::Op::Source(pb::SourceOp {
            identifier: w.s("identifier"),
            attrs: BTreeMap::from([(w.s("attr-key"), w.s("attr-value"))]),
        });
        let build = pb::op::Op::Build(pb::BuildOp {
            builder: w.n(),
            inputs: BTreeMap::from([(w.s("build-input"), pb::BuildInput { input: w.n() })]),
            def: Some(w.nested()),
            attrs: BTreeMap::from([(w.s("build-attr-key"), w.s("build-attr-value"))]),
        });
        let merge = pb::op::Op::Merge(pb::MergeOp {
            inputs: vec![pb::MergeInput { input: w.n() }],
        });
        let diff = pb::op::Op::Diff(pb::DiffOp {
            lower: Some(pb::LowerDiffInput { input: w.n() }),
            upper: Some(pb::UpperDiffInput { input: w.n() }),
        });
        let ops: Vec<Vec<u8>> = [exec, file, source, build, merge, diff]
            .into_iter()
            .map(|op| w.op(op))
            .collect();
        let mut metadata = BTreeMap::new();
        let mut locations = BTreeMap::new();
        for bytes in &ops {
            let digest = super::super::marshal::digest_of(bytes);
            metadata.insert(digest.clone(), w.metadata());
            locations.insert(digest, w.locations());
        }
        // Entries under digests that name no op of the definition are shown too.
        metadata.insert(w.s("orphan-digest"), w.metadata());
        locations.insert(w.s("orphan-digest"), w.locations());
        let source = pb::Source {
            locations,
            infos: vec![pb::SourceInfo {
                filename: w.s("filename"),
                data: w.s("source-data").into_bytes(),
                definition: Some(w.nested()),
                language: w.s("language"),
            }],
        };
        pb::Definition {
            def: ops,
            metadata,
            source: Some(source),
        }
    }

    /// Every string (object keys too), number and `true` in a JSON value.
    fn leaves(v: &Value, strings: &mut Vec<String>, numbers: &mut Vec<i64>, trues: &mut usize) {
        match v {
            Value::String(s) => strings.push(s.clone()),
            Value::Number(n) => numbers.push(n.as_i64().expect("integers only")),
            Value::Bool(true) => *trues += 1,
            Value::Array(a) => a.iter().for_each(|v| leaves(v, strings, numbers, trues)),
            Value::Object(o) => {
                for (k, v) in o {
                    strings.push(k.clone());
                    leaves(v, strings, numbers, trues);
                }
            }
            Value::Bool(false) | Value::Null => {}
        }
    }

    #[test]
    fn every_field_of_every_message_is_shown() {
        let mut want = Want::default();
        let def = everything(&mut want);
        let json = to_json(&def);
        let (mut strings, mut numbers, mut trues) = (vec![], vec![], 0);
        leaves(&json, &mut strings, &mut numbers, &mut trues);
        let missing: Vec<&String> = want
            .strings
            .iter()
            .filter(|s| !strings.contains(s))
            .collect();
        assert!(missing.is_empty(), "not in the dump: {missing:?}\n{json:#}");
        let missing: Vec<&i64> = want
            .numbers
            .iter()
            .filter(|n| !numbers.contains(n))
            .collect();
        assert!(missing.is_empty(), "not in the dump: {missing:?}\n{json:#}");
        // Each sentinel number is shown exactly once: no field is shown in another's place.
        for n in &want.numbers {
            assert_eq!(numbers.iter().filter(|m| *m == n).count(), 1, "{n}");
        }
        assert_eq!(trues, want.trues, "a `true` field is missing\n{json:#}");
        assert_eq!(json["ops"].as_array().unwrap().len(), def.def.len());
    }

    #[test]
    fn defaults_unknown_enums_binary_data_and_bad_bytes_are_kept() {
        let file = pb::Op {
            inputs: vec![],
            platform: None,
            constraints: None,
            op: Some(pb::op::Op::File(pb::FileOp {
                actions: vec![pb::FileAction {
                    input: -1,
                    secondary_input: -1,
                    output: 0,
                    action: Some(pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                        path: "/f".into(),
                        mode: -1,
                        data: vec![0xff, 0x00],
                        owner: Some(pb::ChownOpt {
                            user: Some(pb::UserOpt { user: None }),
                            group: None,
                        }),
                        timestamp: 0,
                    })),
                }],
            })),
        };
        let exec = pb::Op {
            inputs: vec![],
            platform: None,
            constraints: None,
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                meta: None,
                mounts: vec![],
                network: 42,
                security: 0,
                secretenv: vec![],
                cdi_devices: vec![],
            })),
        };
        let def = pb::Definition {
            def: vec![
                file.encode_to_vec(),
                exec.encode_to_vec(),
                vec![0xff, 0xff],
                pb::Op::default().encode_to_vec(),
            ],
            metadata: BTreeMap::new(),
            source: None,
        };
        let json = to_json(&def);
        let ops = json["ops"].as_array().unwrap();
        let mkfile = &ops[0]["op"]["file"]["actions"][0]["action"]["mkfile"];
        assert_eq!(mkfile["mode"], -1);
        assert_eq!(mkfile["data"], serde_json::json!({"len": 2, "hex": "ff00"}));
        assert_eq!(mkfile["owner"]["user"], serde_json::json!({}));
        assert_eq!(mkfile["owner"]["group"], Value::Null);
        assert_eq!(ops[1]["op"]["exec"]["network"], 42);
        assert_eq!(ops[1]["op"]["exec"]["security"], "SANDBOX");
        assert_eq!(ops[1]["op"]["exec"]["meta"], Value::Null);
        assert_eq!(ops[2]["bytes"], "ffff");
        assert!(ops[2]["error"].is_string());
        assert_eq!(ops[3]["op"], Value::Null, "the terminal op");
        assert_eq!(ops[3]["metadata"], Value::Null);
        assert_eq!(json["source"], Value::Null);
    }
}
