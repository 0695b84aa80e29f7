//! A small element tree of an ISO 20022 file, each element with its line
//! and path, so a refusal can say where the file is wrong.
//!
//! Deserialising with serde straight into types would be shorter, but its
//! errors name neither the line nor the element at fault ("missing field
//! `Amt`"), and an operator facing a rejected bank file needs both. So
//! quick-xml's pull reader builds this tree (namespaces reduced to local
//! names: ISO 20022 files use one default namespace, checked on the root),
//! and the message modules map it to typed values with [`Refusal`]s that
//! carry the line and the path (`Stmt[1]/Ntry[2]/Amt`).

use quick_xml::Reader;
use quick_xml::events::Event;

/// Why a file is refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, {field}: {reason}")]
pub struct Refusal {
    /// 1-based line of the element at fault (0: the file as a whole).
    pub line: usize,
    /// Its path from the message root, e.g. `Stmt[1]/Ntry[2]/Amt`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Refusal {
    /// A refusal of `node` (or of its child `field`, when given).
    pub fn at(node: &Node, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            line: node.line,
            field: match field {
                Some(f) if node.path.is_empty() => f.to_owned(),
                Some(f) => format!("{}/{f}", node.path),
                None => node.path.clone(),
            },
            reason: reason.into(),
        }
    }
}

/// An element.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Line of its start tag.
    pub line: usize,
    /// Path below the message root (`Stmt[1]/Ntry[2]`).
    pub path: String,
    /// Attributes, by local name.
    pub attributes: Vec<(String, String)>,
    /// Its own text, trimmed.
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Node>,
}

/// Elements that repeat, shown with their position in paths.
const REPEATED: &[&str] = &[
    "Stmt",
    "Ntfctn",
    "Ntry",
    "TxDtls",
    "Bal",
    "Ustrd",
    "Strd",
    "OrgnlPmtInfAndSts",
    "TxInfAndSts",
    "StsRsnInf",
];

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The children named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The descendant at `path` (`Tp/CdOrPrtry/Cd`).
    pub fn at(&self, path: &str) -> Option<&Node> {
        path.split('/')
            .try_fold(self, |node, name| node.child(name))
    }

    /// The text at `path`, if present and not empty.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path)
            .map(|n| n.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The child `name`, or a refusal naming it.
    pub fn required(&self, name: &str) -> Result<&Node, Refusal> {
        self.at(name)
            .ok_or_else(|| Refusal::at(self, Some(name), "is missing"))
    }

    /// The text at `path`, or a refusal naming it.
    pub fn required_text(&self, path: &str) -> Result<&str, Refusal> {
        let node = self.required(path)?;
        if node.text.is_empty() {
            return Err(Refusal::at(node, None, "is empty"));
        }
        Ok(&node.text)
    }

    /// An attribute by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.rsplit_once(':') {
        Some((_, local)) => local.to_owned(),
        None => name.into_owned(),
    }
}

/// Parses `text` into its root element and the root's default namespace.
pub fn parse(text: &str) -> Result<(Node, String), Refusal> {
    let mut reader = Reader::from_str(text);
    // Not trimmed per event: quick-xml splits text around entity
    // references, and "2 &amp; 3" must keep its spaces. Each element's text
    // is trimmed once, at its end tag.
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut namespace = String::new();
    let malformed = |offset: u64, e: &dyn std::fmt::Display| Refusal {
        line: line_of(text, usize::try_from(offset).unwrap_or(usize::MAX)),
        field: String::from("(XML)"),
        reason: format!("the file is not well-formed XML: {e}"),
    };
    loop {
        let before = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| malformed(reader.error_position(), &e))?;
        // After a start tag the reader stands just past its `>`: the line
        // of the tag's end, which is the tag's line for any one-line tag.
        let after = reader.buffer_position();
        let line = || line_of(text, usize::try_from(after).unwrap_or(usize::MAX));
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let name = local(start.name().as_ref());
                let mut attributes = Vec::new();
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| malformed(before, &e))?;
                    let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
                    // Bank files are XML 1.0 (their declaration says so, or
                    // none does and 1.0 is assumed).
                    let value = attribute
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| malformed(before, &e))?
                        .into_owned();
                    if stack.is_empty() && key == "xmlns" {
                        namespace = value.clone();
                    }
                    attributes.push((local(key.as_bytes()), value));
                }
                let path = match stack.last() {
                    // The root (`Document`) and the message element below
                    // it are left out of paths: every field is under them.
                    None => String::new(),
                    Some(parent) if stack.len() == 1 => {
                        let _ = parent;
                        String::new()
                    }
                    Some(parent) => {
                        let step = if REPEATED.contains(&name.as_str()) {
                            let n = parent.children.iter().filter(|c| c.name == name).count() + 1;
                            format!("{name}[{n}]")
                        } else {
                            name.clone()
                        };
                        if parent.path.is_empty() {
                            step
                        } else {
                            format!("{}/{step}", parent.path)
                        }
                    }
                };
                let node = Node {
                    name,
                    line: line(),
                    path,
                    attributes,
                    text: String::new(),
                    children: Vec::new(),
                };
                if matches!(event, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let Some(mut node) = stack.pop() else {
                    return Err(malformed(before, &"an end tag without its start"));
                };
                // Text arrives in pieces (around entity references); the
                // layout whitespace of the file is not part of a value.
                node.text = node.text.trim().to_owned();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let value = t.decode().map_err(|e| malformed(before, &e))?;
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&value);
                }
            }
            // `&amp;`, `&#233;`: the reader hands references over apart
            // from the text around them; XML's five entities and character
            // references are all a bank file may use (no DTD is read).
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.decode().map_err(|e| malformed(before, &e))?;
                        match &*name {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => {
                                return Err(malformed(
                                    before,
                                    &format!("the unknown entity &{other};"),
                                ));
                            }
                        }
                    }
                    Err(e) => return Err(malformed(before, &e)),
                };
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&resolved);
                }
            }
            Event::CData(c) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&String::from_utf8_lossy(c.as_ref()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed(
            u64::try_from(text.len()).unwrap_or(u64::MAX),
            &"the file ends inside an element",
        ));
    }
    let root = root.ok_or_else(|| Refusal {
        line: 1,
        field: "(XML)".into(),
        reason: "the file has no root element".into(),
    })?;
    Ok((root, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_keep_their_lines_and_paths() {
        let xml = "<Document xmlns=\"urn:x\">\n<Msg>\n<Stmt>\n<Ntry><Amt Ccy=\"EUR\">1.00</Amt></Ntry>\n<Ntry>\n<Amt Ccy=\"EUR\">2 &amp; 3</Amt>\n</Ntry>\n</Stmt>\n</Msg>\n</Document>";
        let (root, ns) = parse(xml).unwrap();
        assert_eq!(ns, "urn:x");
        let stmt = root.at("Msg/Stmt").unwrap();
        let second = stmt.all("Ntry").nth(1).unwrap();
        let amt = second.child("Amt").unwrap();
        assert_eq!(amt.line, 6);
        assert_eq!(amt.path, "Stmt[1]/Ntry[2]/Amt");
        assert_eq!(amt.text, "2 & 3");
        assert_eq!(amt.attribute("Ccy"), Some("EUR"));
        let refusal = second.required("Sts").unwrap_err();
        assert_eq!(refusal.field, "Stmt[1]/Ntry[2]/Sts");
        assert_eq!(refusal.line, 5);
    }

    #[test]
    fn broken_xml_is_refused_with_its_line() {
        let refusal = parse("<Document>\n<A>\n</B>\n</Document>").unwrap_err();
        assert_eq!(refusal.line, 3, "{refusal}");
    }
}
