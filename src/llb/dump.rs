//! A readable JSON view of a Definition (`kiln llb --format json`).

use prost::Message;
use serde_json::{Value, json};

use super::pb;

pub fn to_json(def: &pb::Definition) -> Value {
    let mut ops = vec![];
    for bytes in &def.def {
        let digest = super::marshal::digest_of(bytes);
        let op = match pb::Op::decode(bytes.as_slice()) {
            Ok(op) => op,
            Err(e) => {
                ops.push(json!({"digest": digest, "error": e.to_string()}));
                continue;
            }
        };
        let inputs: Vec<Value> = op
            .inputs
            .iter()
            .map(|i| json!(format!("{}[{}]", i.digest, i.index)))
            .collect();
        let body = match &op.op {
            None => json!({"terminal": true}),
            Some(pb::op::Op::Source(s)) => {
                json!({"source": {"identifier": s.identifier, "attrs": s.attrs}})
            }
            Some(pb::op::Op::Exec(e)) => {
                let meta = e.meta.clone().unwrap_or_default();
                let mounts: Vec<Value> = e
                    .mounts
                    .iter()
                    .map(|m| {
                        let kind = pb::MountType::try_from(m.mount_type).map(|t| t.as_str_name()).unwrap_or("?");
                        json!({
                            "dest": m.dest, "type": kind, "input": m.input, "output": m.output, "readonly": m.readonly,
                            "cache": m.cache_opt.as_ref().map(|c| json!({"id": c.id, "sharing": c.sharing})),
                            "secret": m.secret_opt.as_ref().map(|s| json!({"id": s.id, "optional": s.optional})),
                        })
                    })
                    .collect();
                json!({"exec": {"args": meta.args, "env": meta.env, "cwd": meta.cwd, "user": meta.user, "network": e.network, "mounts": mounts}})
            }
            Some(pb::op::Op::File(f)) => {
                let actions: Vec<Value> = f
                    .actions
                    .iter()
                    .map(|a| {
                        let what = match &a.action {
                            Some(pb::file_action::Action::Copy(c)) => json!({"copy": {"src": c.src, "dest": c.dest, "owner": c.owner.is_some()}}),
                            Some(pb::file_action::Action::Mkdir(m)) => json!({"mkdir": {"path": m.path, "mode": m.mode}}),
                            Some(pb::file_action::Action::Rm(r)) => json!({"rm": {"path": r.path}}),
                            Some(pb::file_action::Action::Mkfile(m)) => json!({"mkfile": {"path": m.path}}),
                            Some(pb::file_action::Action::Symlink(s)) => json!({"symlink": {"old": s.oldpath, "new": s.newpath}}),
                            None => Value::Null,
                        };
                        json!({"input": a.input, "secondary_input": a.secondary_input, "output": a.output, "action": what})
                    })
                    .collect();
                json!({"file": actions})
            }
            Some(pb::op::Op::Merge(m)) => {
                json!({"merge": m.inputs.iter().map(|i| i.input).collect::<Vec<_>>()})
            }
            Some(other) => json!({"other": format!("{other:?}")}),
        };
        let meta = def.metadata.get(&digest);
        ops.push(json!({
            "digest": digest,
            "inputs": inputs,
            "platform": op.platform.map(|p| format!("{}/{}", p.os, p.architecture)),
            "op": body,
            "name": meta.and_then(|m| m.description.get("llb.customname")),
            "caps": meta.map(|m| m.caps.keys().cloned().collect::<Vec<_>>()),
        }));
    }
    json!({"ops": ops})
}
