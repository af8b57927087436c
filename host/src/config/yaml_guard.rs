//! A first pass over the configuration's YAML events, before serde reads it, for what serde
//! cannot see or would take too long to find:
//!
//! - a key written twice in one mapping (two streams with the same name: the second silently
//!   replaced the first), named with both lines;
//! - alias expansion beyond [`MAX_NODES`] nodes (a "billion laughs" bomb of nested aliases,
//!   which would otherwise keep `check` busy for minutes), answered at once;
//! - nesting deeper than [`MAX_DEPTH`].
//!
//! The pass counts each alias as the size of what it refers to, without expanding it, so it
//! takes time in proportion to the text. A text it cannot scan is left to serde_yaml, whose
//! error names the line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// The most nodes the configuration may hold once aliases are expanded.
pub const MAX_NODES: u64 = 100_000;
/// The deepest nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 64;

enum Frame {
    Mapping {
        /// Key path of this mapping (`streams.app`).
        path: String,
        /// Scalar keys seen, with their line.
        keys: HashMap<String, usize>,
        /// The key whose value comes next (`None`: the next node is a key).
        pending: Option<String>,
        /// The anchor of this mapping and the node count when it started.
        anchor: (usize, u64),
    },
    Sequence {
        path: String,
        index: usize,
        anchor: (usize, u64),
    },
}

impl Frame {
    /// The key path of the node that starts now in this frame, and whether it is a key.
    fn child(&mut self) -> (String, bool) {
        match self {
            Frame::Mapping { path, pending, .. } => match pending.take() {
                Some(key) => (join(path, &key), false),
                None => (path.clone(), true),
            },
            Frame::Sequence { path, index, .. } => {
                let p = format!("{path}[{index}]");
                *index += 1;
                (p, false)
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks the YAML text; the error is `(key path, reason)`, as [`super::Config::parse`] gives.
pub fn check(text: &str) -> Result<(), (Option<String>, String)> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    // Nodes so far, aliases counted expanded; and the expanded size of each anchored node.
    let mut nodes: u64 = 0;
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    loop {
        let Ok((event, mark)) = parser.next_token() else {
            return Ok(()); // serde_yaml reports it, with its line
        };
        let line = mark.line();
        let start = nodes;
        match &event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(..)
            | Event::Alias(_)
            | Event::MappingStart(..)
            | Event::SequenceStart(..) => {
                let (path, is_key) = match stack.last_mut() {
                    Some(f) => f.child(),
                    None => (String::new(), false),
                };
                nodes += match &event {
                    Event::Alias(id) => sizes.get(id).copied().unwrap_or(1),
                    _ => 1,
                };
                if nodes > MAX_NODES {
                    return Err((
                        None,
                        format!(
                            "line {line}: the configuration expands to more than {MAX_NODES} \
                             values (aliases nested in aliases?); refused"
                        ),
                    ));
                }
                match event {
                    Event::Scalar(value, _, anchor, _) => {
                        if anchor > 0 {
                            sizes.insert(anchor, 1);
                        }
                        if is_key
                            && let Some(Frame::Mapping {
                                keys,
                                pending,
                                path: at,
                                ..
                            }) = stack.last_mut()
                        {
                            if value != "<<"
                                && let Some(first) = keys.insert(value.clone(), line)
                            {
                                return Err((
                                    Some(join(at, &value)),
                                    format!(
                                        "duplicate key `{value}` (lines {first} and {line}): the \
                                         second would silently replace the first"
                                    ),
                                ));
                            }
                            *pending = Some(value);
                        }
                    }
                    Event::Alias(_) => {
                        if is_key && let Some(Frame::Mapping { pending, .. }) = stack.last_mut() {
                            *pending = Some("<alias>".into());
                        }
                    }
                    Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                        if is_key && let Some(Frame::Mapping { pending, .. }) = stack.last_mut() {
                            *pending = Some("<complex key>".into());
                        }
                        if stack.len() >= MAX_DEPTH {
                            return Err((
                                Some(path),
                                format!(
                                    "line {line}: nested deeper than {MAX_DEPTH} levels; refused"
                                ),
                            ));
                        }
                        stack.push(if matches!(event, Event::MappingStart(..)) {
                            Frame::Mapping {
                                path,
                                keys: HashMap::new(),
                                pending: None,
                                anchor: (anchor, start),
                            }
                        } else {
                            Frame::Sequence {
                                path,
                                index: 0,
                                anchor: (anchor, start),
                            }
                        });
                    }
                    _ => unreachable!("matched above"),
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Mapping { anchor, .. } | Frame::Sequence { anchor, .. }) =
                    stack.pop()
                    && anchor.0 > 0
                {
                    sizes.insert(anchor.0, nodes - anchor.1);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_twice_is_named_with_both_lines() {
        let text = "streams:\n  app:\n    paths: [a]\n  app:\n    paths: [b]\nsinks: {}\n";
        let (key, reason) = check(text).unwrap_err();
        assert_eq!(key.as_deref(), Some("streams.app"));
        assert_eq!(
            reason,
            "duplicate key `app` (lines 2 and 4): the second would silently replace the first"
        );
        let nested = "a:\n  - { x: 1, y: 2, x: 3 }\n";
        assert_eq!(check(nested).unwrap_err().0.as_deref(), Some("a[0].x"));
        assert!(check("a: 1\nb: { a: 1 }\nc: [a, a]\n").is_ok());
    }

    #[test]
    fn an_alias_bomb_and_deep_nesting_are_refused_at_once() {
        let mut bomb =
            String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 20].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let (_, reason) = check(&bomb).unwrap_err();
        assert!(
            reason.contains("expands to more than 100000 values"),
            "{reason}"
        );
        let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        let (_, reason) = check(&deep).unwrap_err();
        assert!(reason.contains("nested deeper than 64 levels"), "{reason}");
        // A few aliases of a small anchor are fine.
        assert!(check("base: &b { x: 1 }\none: *b\ntwo: *b\n").is_ok());
    }
}
