//! The pods cgroup as a left-child-right-sibling tree (an arena of nodes with first-child and
//! next-sibling indices), as in the original repair, with pre-order (parents first: creation)
//! and post-order (leaf-first: moving tasks out and removing) traversals.

use crate::model::path::parent;

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Path relative to `--root`.
    pub path: String,
    pub parent: Option<NodeId>,
    pub first_child: Option<NodeId>,
    pub next_sibling: Option<NodeId>,
    /// Depth below the tree's root (0 for the root).
    pub depth: usize,
}

/// A left-child-right-sibling tree. Node 0 is the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree with one node.
    pub fn new(root_path: &str) -> Tree {
        Tree {
            nodes: vec![Node {
                path: root_path.to_string(),
                parent: None,
                first_child: None,
                next_sibling: None,
                depth: 0,
            }],
        }
    }

    /// Add `path` as the last child of `parent_id`.
    pub fn add_child(&mut self, parent_id: NodeId, path: String) -> NodeId {
        let id = self.nodes.len();
        let depth = self.nodes[parent_id].depth + 1;
        self.nodes.push(Node {
            path,
            parent: Some(parent_id),
            first_child: None,
            next_sibling: None,
            depth,
        });
        match self.nodes[parent_id].first_child {
            None => self.nodes[parent_id].first_child = Some(id),
            Some(mut c) => {
                while let Some(n) = self.nodes[c].next_sibling {
                    c = n;
                }
                self.nodes[c].next_sibling = Some(id);
            }
        }
        id
    }

    /// Build from paths in pre-order (every parent listed before its children, the root first).
    /// Returns None when a path's parent is not in the list.
    pub fn from_preorder_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<Tree> {
        let mut it = paths.into_iter();
        let mut tree = Tree::new(it.next()?);
        let mut index = std::collections::HashMap::new();
        index.insert(tree.nodes[0].path.clone(), 0usize);
        // The last child added to each node, so appending is O(1).
        let mut last_child: Vec<Option<NodeId>> = vec![None];
        for p in it {
            let pid = *index.get(parent(p))?;
            let id = tree.nodes.len();
            let depth = tree.nodes[pid].depth + 1;
            tree.nodes.push(Node {
                path: p.to_string(),
                parent: Some(pid),
                first_child: None,
                next_sibling: None,
                depth,
            });
            last_child.push(None);
            match last_child[pid] {
                None => tree.nodes[pid].first_child = Some(id),
                Some(prev) => tree.nodes[prev].next_sibling = Some(id),
            }
            last_child[pid] = Some(id);
            index.insert(p.to_string(), id);
        }
        Some(tree)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The children of a node, in sibling order.
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let mut next = self.nodes[id].first_child;
        std::iter::from_fn(move || {
            let cur = next?;
            next = self.nodes[cur].next_sibling;
            Some(cur)
        })
    }

    /// Pre-order: each node before its children (the order to create cgroups in).
    pub fn preorder(&self) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(self.nodes.len());
        if self.nodes.is_empty() {
            return out;
        }
        // Walk the LCRS links with an explicit stack: child first, then sibling.
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            out.push(n);
            if let Some(s) = self.nodes[n].next_sibling {
                if n != 0 {
                    stack.push(s);
                }
            }
            if let Some(c) = self.nodes[n].first_child {
                stack.push(c);
            }
        }
        out
    }

    /// Post-order, leaf-first: every node after all its descendants (the order to empty and
    /// remove cgroups in: rmdir fails with EBUSY while children remain). This is the in-order
    /// traversal of the LCRS binary tree, as in the original repair.
    pub fn postorder(&self) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(self.nodes.len());
        if self.nodes.is_empty() {
            return out;
        }
        let mut stack: Vec<NodeId> = Vec::new();
        let mut cur = Some(0usize);
        while cur.is_some() || !stack.is_empty() {
            if let Some(n) = cur {
                stack.push(n);
                cur = self.nodes[n].first_child;
            } else {
                let n = stack.pop().expect("stack not empty");
                out.push(n);
                // The root's siblings (if any) are not part of this tree.
                cur = if n == 0 {
                    None
                } else {
                    self.nodes[n].next_sibling
                };
            }
        }
        out
    }

    /// Render as an indented tree with `label(node)` per line.
    pub fn render(&self, mut label: impl FnMut(NodeId) -> String) -> String {
        let mut out = String::new();
        for id in self.preorder() {
            let d = self.nodes[id].depth;
            if d == 0 {
                out.push_str(&label(id));
            } else {
                out.push_str(&"  ".repeat(d - 1));
                out.push_str("└─ ");
                out.push_str(&label(id));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Tree {
        Tree::from_preorder_paths([
            "k",
            "k/burstable",
            "k/burstable/pod1",
            "k/burstable/pod1/c1",
            "k/burstable/pod1/c2",
            "k/pod2",
            "k/pod2/c3",
        ])
        .unwrap()
    }

    #[test]
    fn preorder_and_postorder() {
        let t = sample();
        let pre: Vec<&str> = t
            .preorder()
            .iter()
            .map(|&i| t.nodes[i].path.as_str())
            .collect();
        assert_eq!(
            pre,
            [
                "k",
                "k/burstable",
                "k/burstable/pod1",
                "k/burstable/pod1/c1",
                "k/burstable/pod1/c2",
                "k/pod2",
                "k/pod2/c3"
            ]
        );
        let post: Vec<&str> = t
            .postorder()
            .iter()
            .map(|&i| t.nodes[i].path.as_str())
            .collect();
        assert_eq!(
            post,
            [
                "k/burstable/pod1/c1",
                "k/burstable/pod1/c2",
                "k/burstable/pod1",
                "k/burstable",
                "k/pod2/c3",
                "k/pod2",
                "k"
            ]
        );
    }

    #[test]
    fn lcrs_links() {
        let t = sample();
        assert_eq!(t.nodes[0].first_child, Some(1));
        assert_eq!(t.nodes[1].next_sibling, Some(5));
        assert_eq!(t.children(2).count(), 2);
        assert_eq!(t.nodes[3].depth, 3);
    }

    #[test]
    fn missing_parent_is_none() {
        assert!(Tree::from_preorder_paths(["k", "k/a/b"]).is_none());
    }

    #[test]
    fn add_child_matches_from_paths() {
        let mut t = Tree::new("k");
        let b = t.add_child(0, "k/burstable".into());
        let p = t.add_child(b, "k/burstable/pod1".into());
        t.add_child(p, "k/burstable/pod1/c1".into());
        t.add_child(p, "k/burstable/pod1/c2".into());
        let p2 = t.add_child(0, "k/pod2".into());
        t.add_child(p2, "k/pod2/c3".into());
        assert_eq!(t, sample());
    }

    /// Random trees as parent indices: node i (i >= 1) has a parent < i.
    fn arb_parents() -> impl Strategy<Value = Vec<usize>> {
        (1usize..60).prop_flat_map(|n| (1..n).map(|i| 0..i).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn traversals_visit_each_node_once_in_order(parents in arb_parents()) {
            let mut t = Tree::new("r");
            for (i, p) in parents.iter().enumerate() {
                t.add_child(*p, format!("{}/n{}", t.nodes[*p].path, i + 1));
            }
            let pre = t.preorder();
            let post = t.postorder();
            prop_assert_eq!(pre.len(), t.len());
            prop_assert_eq!(post.len(), t.len());
            let mut pos_pre = vec![0; t.len()];
            let mut pos_post = vec![0; t.len()];
            for (i, &n) in pre.iter().enumerate() { pos_pre[n] = i; }
            for (i, &n) in post.iter().enumerate() { pos_post[n] = i; }
            for n in 1..t.len() {
                let p = t.nodes[n].parent.unwrap();
                prop_assert!(pos_pre[p] < pos_pre[n]);
                prop_assert!(pos_post[p] > pos_post[n]);
            }
        }
    }
}
