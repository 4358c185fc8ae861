use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use bollard_buildkit_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

use super::caps::{self, Cap};
use super::ops::{Kind, Node, State};
use crate::diag::SourceFile;

/// Encode the graph that ends in `root` as a Definition: ops in dependency order, each
/// encoded once and named by the sha256 of those bytes, then the terminal op.
pub fn marshal(root: &State, files: &[SourceFile]) -> pb::Definition {
    let mut w = Writer::default();
    let terminal_inputs = match &root.out {
        Some(o) => vec![pb::Input {
            digest: w.visit(&o.node),
            index: o.index,
        }],
        None => vec![],
    };
    let terminal = pb::Op {
        inputs: terminal_inputs,
        ..Default::default()
    }
    .encode_to_vec();
    w.def.push(terminal);
    let source = if w.locations.is_empty() {
        None
    } else {
        Some(pb::Source {
            locations: w.locations,
            infos: files
                .iter()
                .map(|f| pb::SourceInfo {
                    filename: f.name.clone(),
                    data: f.text().as_bytes().to_vec(),
                    definition: None,
                    language: "YAML".into(),
                })
                .collect(),
        })
    };
    pb::Definition {
        def: w.def,
        metadata: w.metadata,
        source,
    }
}

/// The digest of the op a definition's result comes from (the terminal op's input).
pub fn head(def: &pb::Definition) -> Option<String> {
    let last = def.def.last()?;
    let terminal = <pb::Op as Message>::decode(last.as_slice()).ok()?;
    terminal.inputs.first().map(|i| i.digest.clone())
}

/// An op's name in the graph: sha256 of its exact encoding.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Default)]
struct Writer {
    def: Vec<Vec<u8>>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    locations: BTreeMap<String, pb::Locations>,
    done: HashMap<*const Node, String>,
    seen: BTreeSet<String>,
}

impl Writer {
    /// The digest of `root`, every op under it written first (inputs in order, each op
    /// once). A loop with its own stack, not recursion: a graph thousands of ops deep
    /// must not overflow the thread's stack.
    fn visit(&mut self, root: &Rc<Node>) -> String {
        if let Some(d) = self.done.get(&Rc::as_ptr(root)) {
            return d.clone();
        }
        // Each frame: a node, and the digests of the inputs written so far.
        let mut stack: Vec<(Rc<Node>, Vec<String>)> = vec![(root.clone(), vec![])];
        loop {
            let (node, digests) = stack.last_mut().expect("the root's frame is last out");
            if let Some(input) = node.inputs.get(digests.len()) {
                match self.done.get(&Rc::as_ptr(&input.node)) {
                    Some(d) => digests.push(d.clone()),
                    None => {
                        let next = input.node.clone();
                        stack.push((next, vec![]));
                    }
                }
                continue;
            }
            let (node, digests) = stack.pop().expect("a frame");
            let digest = self.write(&node, digests);
            match stack.last_mut() {
                Some((_, parent)) => parent.push(digest),
                None => return digest,
            }
        }
    }

    /// Encode `node` whose inputs have `digests`, once per digest; its digest.
    fn write(&mut self, node: &Rc<Node>, digests: Vec<String>) -> String {
        let inputs: Vec<pb::Input> = node
            .inputs
            .iter()
            .zip(digests)
            .map(|(i, digest)| pb::Input {
                digest,
                index: i.index,
            })
            .collect();
        let op = match &node.kind {
            Kind::Source(s) => pb::op::Op::Source(s.clone()),
            Kind::Exec(e) => pb::op::Op::Exec((**e).clone()),
            Kind::File(f) => pb::op::Op::File(f.clone()),
            Kind::Merge(m) => pb::op::Op::Merge(m.clone()),
            Kind::Diff(d) => pb::op::Op::Diff(*d),
        };
        let bytes = pb::Op {
            inputs,
            platform: node.platform.clone(),
            constraints: None,
            op: Some(op),
        }
        .encode_to_vec();
        let digest = digest_of(&bytes);
        // The same op built twice (e.g. one base image named by two variants) is one vertex.
        if self.seen.insert(digest.clone()) {
            self.def.push(bytes);
            let mut meta = pb::OpMetadata {
                ignore_cache: node.meta.ignore_cache,
                ..Default::default()
            };
            let mut caps: BTreeSet<Cap> = node.caps.clone();
            if let Some(name) = &node.meta.name {
                meta.description
                    .insert("llb.customname".into(), name.clone());
                caps.insert(caps::META_DESCRIPTION);
            }
            if node.meta.ignore_cache {
                caps.insert(caps::META_IGNORE_CACHE);
            }
            meta.caps = caps.into_iter().map(|c| (c.id.to_string(), true)).collect();
            self.metadata.insert(digest.clone(), meta);
            if let Some(loc) = node.meta.loc {
                let pos = pb::Position {
                    line: loc.line as i32,
                    character: 0,
                };
                self.locations.insert(
                    digest.clone(),
                    pb::Locations {
                        locations: vec![pb::Location {
                            source_index: loc.file as i32,
                            ranges: vec![pb::Range {
                                start: Some(pos),
                                end: Some(pos),
                            }],
                        }],
                    },
                );
            }
        }
        self.done.insert(Rc::as_ptr(node), digest.clone());
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use prost::Message;

    fn decode(def: &pb::Definition) -> Vec<pb::Op> {
        def.def
            .iter()
            .map(|b| pb::Op::decode(b.as_slice()).unwrap())
            .collect()
    }

    #[test]
    fn digests_link_inputs_and_terminal() {
        let base = image("docker.io/library/debian:12", None, Meta::default());
        let run = base
            .run(Exec {
                args: vec!["true".into()],
                ..Default::default()
            })
            .root();
        let def = marshal(&run, &[]);
        let ops = decode(&def);
        assert_eq!(ops.len(), 3);
        let d0 = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&def.def[0])));
        let d1 = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&def.def[1])));
        assert_eq!(ops[1].inputs[0].digest, d0);
        assert_eq!(ops[2].inputs[0].digest, d1);
        assert!(ops[2].op.is_none());
        assert!(def.metadata[&d1].caps.contains_key(caps::EXEC_META_BASE.id));
    }

    #[test]
    fn identical_ops_are_one_vertex() {
        let a = image("docker.io/library/debian:12", None, Meta::default());
        let b = image("docker.io/library/debian:12", None, Meta::default());
        let m = scratch()
            .file(Meta::default())
            .copy(&a, "/etc", "/a", CopyOpts::default())
            .copy(&b, "/etc", "/b", CopyOpts::default())
            .done();
        let def = marshal(&m, &[]);
        assert_eq!(def.def.len(), 3, "image once, file op, terminal");
    }

    #[test]
    fn file_chain_indices() {
        let a = image("docker.io/library/debian:12", None, Meta::default());
        let b = image("docker.io/library/alpine:3", None, Meta::default());
        let s = a
            .file(Meta::default())
            .mkdir("/x", 0o755, true, None)
            .copy(&b, "/etc", "/x/etc", CopyOpts::default())
            .done();
        let ops = decode(&marshal(&s, &[]));
        let Some(pb::op::Op::File(f)) = &ops[2].op else {
            panic!("{:?}", ops[2])
        };
        assert_eq!((f.actions[0].input, f.actions[0].output), (0, -1));
        assert_eq!(
            (
                f.actions[1].input,
                f.actions[1].secondary_input,
                f.actions[1].output
            ),
            (2, 1, 0)
        );
    }

    /// A chain far deeper than any spec makes is marshalled and dropped on a test
    /// thread's 2 MiB stack: neither walks it by recursion.
    #[test]
    fn a_graph_100_000_ops_deep_needs_no_deep_stack() {
        let mut s = image("docker.io/library/debian:12", None, Meta::default());
        for i in 0..100_000 {
            s = s
                .file(Meta::default())
                .mkdir(&format!("/d{i}"), 0o755, false, None)
                .done();
        }
        let def = marshal(&s, &[]);
        assert_eq!(def.def.len(), 100_002, "every op once, and the terminal");
        drop(s);
    }

    use sha2::Digest;
}
