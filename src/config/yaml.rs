//! A YAML document tree that remembers where every node came from, and a serde
//! `Deserializer` over it.
//!
//! serde_yaml is archived and reports at most one error with a position. Keeping
//! our own tree lets every error, from serde or from semantic validation, name
//! `FILE:LINE:COL: field.path`, and lets `${ENV}` interpolation touch only
//! scalar values (never keys or comments).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in the source file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path such as `probes[2].http.url`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(pub(crate) Vec<Seg>);

impl Path {
    pub(crate) fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub(crate) fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// A scalar and whether it was quoted (quoted scalars are always strings).
    Scalar(String, bool),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) pos: Pos,
}

impl Node {
    /// The position of the node at `path`, or of its deepest existing ancestor.
    pub(crate) fn pos_of(&self, path: &Path) -> Pos {
        let mut node = self;
        for seg in &path.0 {
            let next = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| matches!(&key.kind, Kind::Scalar(s, _) if s == k))
                    .map(|(_, v)| v),
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// Applies `f` to every scalar value (not keys), with its path.
    pub(crate) fn map_scalars<E>(
        &mut self,
        path: &Path,
        f: &mut dyn FnMut(&Path, &mut String) -> Result<(), E>,
        errors: &mut Vec<(Path, Pos, E)>,
    ) {
        match &mut self.kind {
            Kind::Scalar(s, _) => {
                if let Err(e) = f(path, s) {
                    errors.push((path.clone(), self.pos, e));
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    item.map_scalars(&path.index(i), f, errors);
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    let key = match &k.kind {
                        Kind::Scalar(s, _) => s.clone(),
                        _ => "?".to_string(),
                    };
                    v.map_scalars(&path.key(&key), f, errors);
                }
            }
        }
    }
}

/// A YAML syntax error, or a document too big to build.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    /// Where in the document, when it is known (else the root).
    pub(crate) path: Path,
    pub(crate) message: String,
}

/// The most nodes a document may expand to, counting every node an alias
/// copies. A real config has a few thousand; a "billion laughs" file of a
/// few hundred bytes, whose aliases nest nine deep, has 10^9.
const MAX_NODES: usize = 100_000;
/// The most scalar text a document may expand to, likewise.
const MAX_BYTES: usize = 16 << 20;

/// Parses a single YAML document. An empty document is an empty map.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        pos: (*e.marker()).into(),
        path: Path::default(),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: Kind::Map(Vec::new()),
        pos: Pos { line: 1, col: 1 },
    }))
}

/// What a subtree costs once built: its nodes and its scalar bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// A collection being built, with its anchor and the size of its subtree.
struct Frame {
    node: Node,
    anchor: usize,
    size: Size,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Keys waiting for their value, one slot per open map.
    pending_keys: Vec<Option<Node>>,
    anchors: HashMap<usize, (Node, Size)>,
    root: Option<Node>,
    error: Option<SyntaxError>,
    /// Everything built so far, aliases expanded: bounded by `MAX_NODES`
    /// and `MAX_BYTES`.
    built: Size,
    /// The budget ran out: every later event is ignored.
    exhausted: bool,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize, size: Size) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(Frame {
            node: parent,
            size: parent_size,
            ..
        }) = self.stack.last_mut()
        else {
            self.root = Some(node);
            return;
        };
        parent_size.add(size);
        match &mut parent.kind {
            Kind::Seq(items) => items.push(node),
            Kind::Map(entries) => {
                let slot = self.pending_keys.last_mut().expect("map has a key slot");
                match slot.take() {
                    None => {
                        // A block map's start event points past its first
                        // key; the key is where a reader looks.
                        if entries.is_empty()
                            && (node.pos.line, node.pos.col) < (parent.pos.line, parent.pos.col)
                        {
                            parent.pos = node.pos;
                        }
                        *slot = Some(node)
                    }
                    Some(key) => {
                        if let Kind::Scalar(k, _) = &key.kind {
                            let dup = entries
                                .iter()
                                .any(|(e, _)| matches!(&e.kind, Kind::Scalar(s, _) if s == k));
                            if dup && self.error.is_none() {
                                self.error = Some(SyntaxError {
                                    pos: key.pos,
                                    path: Path::default(),
                                    message: format!("duplicate key `{k}`"),
                                });
                            }
                        }
                        entries.push((key, node));
                    }
                }
            }
            Kind::Scalar(..) => unreachable!("scalars have no children"),
        }
    }

    /// Counts `size` against the budget before it is built; false (and an
    /// error at `pos`) once the document would grow past it.
    fn spend(&mut self, size: Size, pos: Pos) -> bool {
        let mut after = self.built;
        after.add(size);
        if after.nodes <= MAX_NODES && after.bytes <= MAX_BYTES {
            self.built = after;
            return true;
        }
        self.exhausted = true;
        self.error.get_or_insert(SyntaxError {
            pos,
            path: self.path(),
            message: format!(
                "the document expands to more than {MAX_NODES} nodes or {} MiB of text; \
                 are aliases (`*name`) nested to multiply it?",
                MAX_BYTES >> 20
            ),
        });
        false
    }

    /// The path of the value being built.
    fn path(&self) -> Path {
        let mut keys = self.pending_keys.iter();
        let mut path = Path::default();
        for frame in &self.stack {
            match &frame.node.kind {
                Kind::Map(_) => match keys.next() {
                    Some(Some(Node {
                        kind: Kind::Scalar(k, _),
                        ..
                    })) => path = path.key(k),
                    _ => break,
                },
                Kind::Seq(items) => path = path.index(items.len()),
                Kind::Scalar(..) => {}
            }
        }
        path
    }

    fn open(&mut self, kind: Kind, anchor: usize, pos: Pos) {
        let size = Size { nodes: 1, bytes: 0 };
        if self.spend(size, pos) {
            let node = Node { kind, pos };
            self.stack.push(Frame { node, anchor, size });
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.exhausted {
            return;
        }
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(value, style, anchor, _) => {
                let quoted = style != TScalarStyle::Plain;
                let size = Size {
                    nodes: 1,
                    bytes: value.len(),
                };
                if self.spend(size, pos) {
                    let kind = Kind::Scalar(value, quoted);
                    self.push_value(Node { kind, pos }, anchor, size);
                }
            }
            Event::SequenceStart(anchor, _) => self.open(Kind::Seq(Vec::new()), anchor, pos),
            Event::MappingStart(anchor, _) => {
                self.open(Kind::Map(Vec::new()), anchor, pos);
                self.pending_keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if matches!(ev, Event::MappingEnd) {
                    self.pending_keys.pop();
                }
                if let Some(f) = self.stack.pop() {
                    self.push_value(f.node, f.anchor, f.size);
                }
            }
            Event::Alias(id) => {
                // Counted before the copy is made: the copy is the cost.
                let size = self.anchors.get(&id).map(|(_, size)| *size);
                match size {
                    Some(size) if self.spend(size, pos) => {
                        let (mut node, _) = self.anchors[&id].clone();
                        node.pos = pos;
                        self.push_value(node, 0, size);
                    }
                    Some(_) => {}
                    None if self.error.is_none() => {
                        self.error = Some(SyntaxError {
                            pos,
                            path: self.path(),
                            message: "alias refers to an unknown anchor".into(),
                        })
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }
}

/// A deserialization error with the path and position where it happened.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) path: Path,
    pub(crate) pos: Option<Pos>,
    pub(crate) message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: Path::default(),
            pos: None,
            message: msg.to_string(),
        }
    }
}

impl DeError {
    fn at(mut self, pos: Pos) -> Self {
        self.pos.get_or_insert(pos);
        self
    }
    fn under(mut self, seg: Seg) -> Self {
        self.path.0.insert(0, seg);
        self
    }
}

/// Deserializes `T` from a node tree.
pub(crate) fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e| e.at(node.pos))
}

struct NodeDe<'a>(&'a Node);

impl<'a> NodeDe<'a> {
    fn scalar(&self) -> Option<(&'a str, bool)> {
        match &self.0.kind {
            Kind::Scalar(s, q) => Some((s.as_str(), *q)),
            _ => None,
        }
    }

    fn type_error(&self, expected: &str) -> DeError {
        let found = match &self.0.kind {
            Kind::Scalar(s, _) if s.is_empty() => "an empty value".to_string(),
            // Quoted whole or not at all: a cut value could carry the start
            // of a secret from the environment past the redactor.
            Kind::Scalar(s, _) if s.chars().count() > 40 => {
                format!("a value of {} characters", s.chars().count())
            }
            Kind::Scalar(s, _) => format!("`{s}`"),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a map".into(),
        };
        <DeError as de::Error>::custom(format!("expected {expected}, found {found}")).at(self.0.pos)
    }

    fn parse_num<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        match self.scalar() {
            Some((s, false)) => s
                .replace('_', "")
                .parse()
                .map_err(|_| self.type_error(what)),
            _ => Err(self.type_error(what)),
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

macro_rules! de_num {
    ($($method:ident => $ty:ty, $visit:ident, $what:expr;)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            v.$visit(self.parse_num::<$ty>($what)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Seq(_) => self.deserialize_seq(v),
            Kind::Map(_) => self.deserialize_map(v),
            Kind::Scalar(s, true) => v.visit_str(s),
            Kind::Scalar(s, false) => {
                if is_null(s) {
                    v.visit_unit()
                } else if let Ok(b) = s.parse::<bool>() {
                    v.visit_bool(b)
                } else if let Ok(i) = s.parse::<i64>() {
                    v.visit_i64(i)
                } else if let Ok(f) = s.parse::<f64>() {
                    v.visit_f64(f)
                } else {
                    v.visit_str(s)
                }
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(("true", false)) => v.visit_bool(true),
            Some(("false", false)) => v.visit_bool(false),
            _ => Err(self.type_error("`true` or `false`")),
        }
    }

    de_num! {
        deserialize_i8 => i8, visit_i8, "an integer";
        deserialize_i16 => i16, visit_i16, "an integer";
        deserialize_i32 => i32, visit_i32, "an integer";
        deserialize_i64 => i64, visit_i64, "an integer";
        deserialize_u8 => u8, visit_u8, "a non-negative integer";
        deserialize_u16 => u16, visit_u16, "a non-negative integer";
        deserialize_u32 => u32, visit_u32, "a non-negative integer";
        deserialize_u64 => u64, visit_u64, "a non-negative integer";
        deserialize_f32 => f32, visit_f32, "a number";
        deserialize_f64 => f64, visit_f64, "a number";
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((s, _)) => v.visit_str(s),
            None => Err(self.type_error("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((s, false)) if is_null(s) => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((s, false)) if is_null(s) => v.visit_unit(),
            _ => Err(self.type_error("nothing")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Seq(items) => v.visit_seq(Seq {
                items: items.iter(),
                index: 0,
            }),
            _ => Err(self.type_error("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            Kind::Map(entries) => v.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
            // `key:` with nothing after it is an empty map, as in most YAML tools.
            Kind::Scalar(s, false) if is_null(s) => v.visit_map(Map {
                entries: [].iter(),
                value: None,
            }),
            _ => Err(self.type_error("a map")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some((s, _)) => v.visit_enum(s.into_deserializer()),
            None => Err(self.type_error("one of the listed names")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let i = self.index;
        self.index += 1;
        seed.deserialize(NodeDe(node))
            .map(Some)
            .map_err(|e| e.at(node.pos).under(Seg::Index(i)))
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, &'a Node)>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize(NodeDe(key)).map(Some).map_err(|e| {
            let name = match &key.kind {
                Kind::Scalar(s, _) => s.clone(),
                _ => "?".into(),
            };
            e.at(key.pos).under(Seg::Key(name))
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, node) = self.value.take().expect("value follows key");
        let name = match &key.kind {
            Kind::Scalar(s, _) => s.clone(),
            _ => "?".into(),
        };
        seed.deserialize(NodeDe(node))
            .map_err(|e| e.at(node.pos).under(Seg::Key(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        port: u16,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[test]
    fn positions_are_one_based() {
        let node = parse("a: 1\nb:\n  c: x\n").unwrap();
        let p = node.pos_of(&Path::default().key("b").key("c"));
        assert_eq!(p, Pos { line: 3, col: 6 });
    }

    #[test]
    fn unknown_field_has_path_and_position() {
        let node = parse("name: x\nitems:\n  - port: 80\n  - port: 81\n    prot: 1\n").unwrap();
        let err = from_node::<Doc>(&node).unwrap_err();
        assert_eq!(err.path.to_string(), "items[1].prot");
        assert_eq!(err.pos, Some(Pos { line: 5, col: 5 }));
        assert!(
            err.message.contains("unknown field `prot`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_errors_name_what_was_found() {
        let node = parse("name: x\nitems:\n  - port: eighty\n").unwrap();
        let err = from_node::<Doc>(&node).unwrap_err();
        assert_eq!(err.path.to_string(), "items[0].port");
        assert!(err.message.contains("found `eighty`"), "{}", err.message);
    }

    #[test]
    fn plain_numbers_deserialize_as_strings_where_strings_are_wanted() {
        let node = parse("name: 200\nitems: [{port: 1, tags: [1, true, 'x']}]").unwrap();
        let doc: Doc = from_node(&node).unwrap();
        assert_eq!(doc.name, "200");
        assert_eq!(doc.items[0].tags, vec!["1", "true", "x"]);
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
        assert!(err.message.contains("duplicate key"));
    }

    #[test]
    fn aliases_resolve() {
        let node = parse("base: &b {port: 1}\nname: x\nitems: [*b, *b]\n").unwrap();
        let Kind::Map(entries) = &node.kind else {
            panic!()
        };
        let Kind::Seq(items) = &entries[2].1.kind else {
            panic!()
        };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn alias_bombs_are_rejected_while_parsing() {
        // "Billion laughs": 9^9 scalars from under 400 bytes.
        let mut bomb = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = parse(&bomb).unwrap_err();
        assert!(err.message.contains("alias"), "{}", err.message);
        // At the alias that would cross the limit: f's first `*e`.
        assert_eq!((err.pos.line, err.path.to_string()), (6, "f[0]".into()));
        // Few nodes, but each a long string: bounded by bytes.
        let mut wide = format!("a: &a '{}'\n", "x".repeat(4096));
        for (prev, name) in "abcd".chars().zip("bcde".chars()) {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            wide.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = parse(&wide).unwrap_err();
        assert!(err.message.contains("MiB"), "{}", err.message);
        // Aliases within the budget still resolve.
        let node = parse("a: &a [1, 2]\nb: [*a, *a, *a]\n").unwrap();
        assert_eq!(node.pos_of(&Path::default().key("b").index(2)).line, 2);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
    }
}
