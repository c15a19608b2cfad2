//! The tree of `marked-yaml` (on `yaml-rust2`) as a [`Doc`]: the fallback
//! whenever the fast reader gives up. It copies the tree node by node with
//! the positions the parser gives, so both readers' trees compare equal.

use marked_yaml::Node;

use super::{Builder, Doc, Kind};

/// The tree of `marked-yaml` as a [`Doc`].
pub(crate) fn from_marked(root: &Node) -> Doc {
    let mut b = Builder::default();
    let ok = marked(&mut b, root).is_some();
    if ok {
        b.doc
    } else {
        Doc::default()
    }
}

fn marker_pos(m: Option<&marked_yaml::Marker>) -> (u32, u32) {
    m.map_or((0, 0), |m| {
        (
            u32::try_from(m.line()).unwrap_or(u32::MAX),
            u32::try_from(m.column()).unwrap_or(u32::MAX),
        )
    })
}

fn marked(b: &mut Builder, node: &Node) -> Option<u32> {
    match node {
        Node::Scalar(s) => b.scalar(s.as_str(), marker_pos(s.span().start())),
        Node::Mapping(m) => {
            let (id, mark) = b.open(Kind::Mapping, marker_pos(m.span().start()))?;
            for (k, v) in m.iter() {
                let k = b.scalar(k.as_str(), marker_pos(k.span().start()))?;
                b.child(k);
                let v = marked(b, v)?;
                b.child(v);
            }
            b.close(id, mark)?;
            Some(id)
        }
        Node::Sequence(s) => {
            let (id, mark) = b.open(Kind::Sequence, marker_pos(s.span().start()))?;
            for item in s.iter() {
                let v = marked(b, item)?;
                b.child(v);
            }
            b.close(id, mark)?;
            Some(id)
        }
    }
}
