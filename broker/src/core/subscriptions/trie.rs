//! The topic trie: one node per filter level, in a slab (`Vec<Node>`, nodes named by `u32`
//! index), with one edge table for the whole trie instead of a map of children in every node.
//!
//! Laid out for memory, because most brokers hold one or a few subscriptions per idle client
//! (`devices/<id>/cmd`), so nearly every subscription has a leaf node of its own:
//! - a node is 72 bytes in the slab, with its level inline (up to 22 bytes) and its first
//!   subscriber inline ([`Subscribers::One`]): a leaf with one subscriber allocates nothing;
//! - the literal children of every node are found through one `HashTable<u32>` keyed by
//!   (parent, level) (4 bytes a slot), where a `HashMap` per node cost an allocation per node
//!   with children and a boxed key per child;
//! - `+` and `#` children are fields of their parent, so matching a topic looks them up without
//!   hashing (they were two hash lookups per level), and a node with no literal child (`bench`
//!   of `bench/#`) costs no lookup at all.
//!
//! Freed nodes go on a free list and are reused; the slab does not shrink.

use std::hash::{BuildHasher, Hasher};
use std::str::Split;

use crate::core::ids::SessionId;

use super::Sub;
use super::shared::SharedGroup;

/// A node's index in the slab.
pub(super) type NodeId = u32;

/// The root, at index 0. Being nobody's child, its id also means "no child" in `plus`/`hash`.
const ROOT: NodeId = 0;
const NO_CHILD: NodeId = 0;

/// Levels up to this long are kept inside the node.
const INLINE_LABEL: usize = 22;

/// A node's level, inline when short (most are: `devices`, `cmd`, a numeric id, a UUID is
/// 36 bytes and goes to the heap).
#[derive(Debug)]
enum Label {
    Inline { len: u8, bytes: [u8; INLINE_LABEL] },
    Heap(Box<[u8]>),
}

impl Label {
    fn new(level: &str) -> Label {
        let b = level.as_bytes();
        let mut bytes = [0u8; INLINE_LABEL];
        match (u8::try_from(b.len()), bytes.get_mut(..b.len())) {
            (Ok(len), Some(dst)) => {
                dst.copy_from_slice(b);
                Label::Inline { len, bytes }
            }
            _ => Label::Heap(b.into()),
        }
    }

    /// Whether this is `level` (lengths first: most candidates differ there, and equal
    /// lengths compare inline).
    fn is(&self, level: &[u8]) -> bool {
        match self {
            Label::Inline { len, bytes } => {
                usize::from(*len) == level.len()
                    && bytes
                        .iter()
                        .zip(level)
                        .fold(true, |same, (a, b)| same & (a == b))
            }
            Label::Heap(b) => **b == *level,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Label::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Label::Heap(b) => b,
        }
    }
}

/// The subscriptions whose filter ends at a node (one per session). The first is inline: a
/// `Vec` would allocate room for four on the first push (80 bytes for one 16-byte [`Sub`]).
#[derive(Debug, Default)]
pub(super) enum Subscribers {
    #[default]
    Empty,
    One(Sub),
    Many(Vec<Sub>),
}

impl Subscribers {
    pub(super) fn as_slice(&self) -> &[Sub] {
        match self {
            Subscribers::Empty => &[],
            Subscribers::One(s) => std::slice::from_ref(s),
            Subscribers::Many(v) => v,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Add `sub`, or replace the subscription of its session; whether there was one.
    pub(super) fn upsert(&mut self, sub: Sub) -> bool {
        match self {
            Subscribers::Empty => {
                *self = Subscribers::One(sub);
                false
            }
            Subscribers::One(s) if s.session == sub.session => {
                *s = sub;
                true
            }
            Subscribers::One(s) => {
                *self = Subscribers::Many(vec![*s, sub]);
                false
            }
            Subscribers::Many(v) => match v.iter_mut().find(|s| s.session == sub.session) {
                Some(s) => {
                    *s = sub;
                    true
                }
                None => {
                    v.push(sub);
                    false
                }
            },
        }
    }

    /// Replace the subscription of `sub`'s session, if it has one here; whether it had.
    pub(super) fn replace(&mut self, sub: Sub) -> bool {
        match self {
            Subscribers::Empty => false,
            Subscribers::One(s) => {
                s.session == sub.session && {
                    *s = sub;
                    true
                }
            }
            Subscribers::Many(v) => v
                .iter_mut()
                .find(|s| s.session == sub.session)
                .map(|s| *s = sub)
                .is_some(),
        }
    }

    /// Remove the subscription of `session`; whether there was one.
    pub(super) fn remove(&mut self, session: SessionId) -> bool {
        match self {
            Subscribers::Empty => false,
            Subscribers::One(s) => {
                let found = s.session == session;
                if found {
                    *self = Subscribers::Empty;
                }
                found
            }
            Subscribers::Many(v) => {
                let Some(i) = v.iter().position(|s| s.session == session) else {
                    return false;
                };
                // Order does not matter: matches are grouped by session afterwards.
                v.swap_remove(i);
                match v.as_slice() {
                    [] => *self = Subscribers::Empty,
                    [only] => *self = Subscribers::One(*only),
                    _ => {}
                }
                true
            }
        }
    }
}

/// One filter level.
#[derive(Debug)]
pub(super) struct Node {
    label: Label,
    parent: NodeId,
    /// The `+` child, or [`NO_CHILD`].
    plus: NodeId,
    /// The `#` child, or [`NO_CHILD`].
    hash: NodeId,
    /// How many children are in the edge table (the literal levels).
    literal_children: u32,
    /// Subscriptions to the filter ending here.
    pub(super) subscribers: Subscribers,
    /// Shared groups `$share/{group}/{filter}` whose `{filter}` ends here. Rare, so a thin
    /// box (8 bytes in every node, where a `Vec` would take 24).
    #[allow(clippy::box_collection)]
    pub(super) shared: Option<Box<Vec<SharedGroup>>>,
}

impl Node {
    fn new(parent: NodeId, level: &str) -> Node {
        Node {
            label: Label::new(level),
            parent,
            plus: NO_CHILD,
            hash: NO_CHILD,
            literal_children: 0,
            subscribers: Subscribers::Empty,
            shared: None,
        }
    }

    fn is_unused(&self) -> bool {
        self.subscribers.is_empty()
            && self.shared.is_none()
            && self.plus == NO_CHILD
            && self.hash == NO_CHILD
            && self.literal_children == 0
    }
}

/// The trie. See the module documentation.
#[derive(Debug)]
pub(super) struct Trie {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    /// The literal (non-wildcard) children of every node, found by (parent, level).
    edges: hashbrown::HashTable<NodeId>,
    hasher: EdgeHasher,
}

/// The hash of an edge: the level's keyed hash, in one hasher call (the pair, hashed field by
/// field, took three), with the parent's id mixed in by a multiply (ids are the broker's, not
/// chosen by a client).
fn edge_hash(hasher: &EdgeHasher, parent: NodeId, level: &[u8]) -> u64 {
    // One `write` (foldhash mixes the length in), not `Hash for [u8]`'s length prefix + bytes.
    let mut h = hasher.build_hasher();
    h.write(level);
    h.finish() ^ u64::from(parent).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Keyed with a random seed per broker (levels are chosen by clients), and held by the trie:
/// no lazily initialised global to check on every hash.
type EdgeHasher = foldhash::fast::RandomState;

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::new(ROOT, "")],
            free: Vec::new(),
            edges: hashbrown::HashTable::new(),
            hasher: EdgeHasher::default(),
        }
    }
}

impl Trie {
    pub(super) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    pub(super) fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id as usize)
    }

    /// Nodes in use, the root included (for tests: pruning gives nodes back).
    #[cfg(test)]
    pub(super) fn nodes_in_use(&self) -> usize {
        self.nodes.len().saturating_sub(self.free.len())
    }

    /// The child of `parent` for one level of a filter or topic.
    fn child(&self, parent: NodeId, level: &str) -> Option<NodeId> {
        let id = match level {
            "+" => self.node(parent)?.plus,
            "#" => self.node(parent)?.hash,
            _ => return self.literal_child(parent, level).map(|(id, _)| id),
        };
        (id != NO_CHILD).then_some(id)
    }

    /// The child of `parent` for a level that is not a wildcard (every level of a topic), and
    /// the node.
    fn literal_child(&self, parent: NodeId, level: &str) -> Option<(NodeId, &Node)> {
        let level = level.as_bytes();
        let mut found = None;
        self.edges
            .find(edge_hash(&self.hasher, parent, level), |&c| {
                let node = self
                    .node(c)
                    .filter(|n| n.parent == parent && n.label.is(level));
                found = node.map(|n| (c, n));
                found.is_some()
            });
        found
    }

    /// The node of a filter, if it is in the trie.
    pub(super) fn find(&self, filter: &str) -> Option<NodeId> {
        filter
            .split('/')
            .try_fold(ROOT, |node, level| self.child(node, level))
    }

    /// The node of a filter, created with its missing ancestors. `None` only if the slab is
    /// full (2^32 nodes).
    pub(super) fn find_or_insert(&mut self, filter: &str) -> Option<NodeId> {
        let mut node = ROOT;
        for level in filter.split('/') {
            node = match self.child(node, level) {
                Some(child) => child,
                None => self.insert_child(node, level)?,
            };
        }
        Some(node)
    }

    fn insert_child(&mut self, parent: NodeId, level: &str) -> Option<NodeId> {
        let fresh = Node::new(parent, level);
        let id = match self.free.pop() {
            Some(id) => {
                *self.node_mut(id)? = fresh;
                id
            }
            None => {
                let id = NodeId::try_from(self.nodes.len()).ok()?;
                self.nodes.push(fresh);
                id
            }
        };
        let Trie {
            nodes,
            edges,
            hasher,
            ..
        } = self;
        let p = nodes.get_mut(parent as usize)?;
        match level {
            "+" => p.plus = id,
            "#" => p.hash = id,
            _ => {
                p.literal_children = p.literal_children.saturating_add(1);
                edges.insert_unique(edge_hash(hasher, parent, level.as_bytes()), id, |&c| {
                    nodes
                        .get(c as usize)
                        .map_or(0, |n| edge_hash(hasher, n.parent, n.label.as_bytes()))
                });
            }
        }
        Some(id)
    }

    /// Free `id` and then its ancestors, as long as they hold nothing (no subscription, shared
    /// group or child).
    pub(super) fn prune(&mut self, mut id: NodeId) {
        while id != ROOT {
            let Some(node) = self.node(id).filter(|n| n.is_unused()) else {
                return;
            };
            let parent = node.parent;
            let hash = edge_hash(&self.hasher, parent, node.label.as_bytes());
            let Some(p) = self.node_mut(parent) else {
                return;
            };
            if p.plus == id {
                p.plus = NO_CHILD;
            } else if p.hash == id {
                p.hash = NO_CHILD;
            } else {
                p.literal_children = p.literal_children.saturating_sub(1);
                if let Ok(edge) = self.edges.find_entry(hash, |&c| c == id) {
                    edge.remove();
                }
            }
            // Drop the label's heap part, if any, now.
            if let Some(n) = self.node_mut(id) {
                *n = Node::new(ROOT, "");
            }
            self.free.push(id);
            id = parent;
        }
    }

    /// Append to `out` every subscription of a filter under `node` that matches the rest of a
    /// topic (`levels`), and to `groups` the nodes holding shared groups that match.
    /// `wildcards`: whether `+` and `#` children may match this level (not at the root of a
    /// topic starting with `$`).
    pub(super) fn walk(
        &self,
        id: NodeId,
        node: &Node,
        mut levels: Split<'_, char>,
        wildcards: bool,
        out: &mut Vec<Sub>,
        groups: &mut Vec<NodeId>,
    ) {
        if wildcards && node.hash != NO_CHILD {
            // §4.7.1.2 (3.1.1 and 5.0): `a/#` matches `a` and everything below it.
            if let Some(hash) = self.node(node.hash) {
                collect(node.hash, hash, out, groups);
            }
        }
        let Some(level) = levels.next() else {
            collect(id, node, out, groups);
            return;
        };
        // (A node with only wildcard children, as `bench` of `bench/#`, costs no hashing.)
        if node.literal_children > 0
            && let Some((child_id, child)) = self.literal_child(id, level)
        {
            self.walk(child_id, child, levels.clone(), true, out, groups);
        }
        if wildcards && let Some(plus) = self.node(node.plus).filter(|_| node.plus != NO_CHILD) {
            self.walk(node.plus, plus, levels, true, out, groups);
        }
    }

    /// Append to `out` every subscription matching `topic` (a valid topic name), and to
    /// `groups` the nodes holding shared groups that match.
    pub(super) fn matches(&self, topic: &str, out: &mut Vec<Sub>, groups: &mut Vec<NodeId>) {
        // [MQTT-4.7.2-1] (3.1.1 and 5.0): a filter starting with a wildcard does not match a
        // topic starting with `$`.
        let wildcards = !topic.starts_with('$');
        if let Some(root) = self.node(ROOT) {
            self.walk(ROOT, root, topic.split('/'), wildcards, out, groups);
        }
    }
}

fn collect(id: NodeId, node: &Node, out: &mut Vec<Sub>, groups: &mut Vec<NodeId>) {
    out.extend_from_slice(node.subscribers.as_slice());
    if node.shared.is_some() {
        groups.push(id);
    }
}
