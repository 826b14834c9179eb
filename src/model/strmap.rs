//! A small string map for the observed state's tags, annotations and labels.
//!
//! Most resources carry two to five of them. A `BTreeMap` allocates a node
//! for eleven entries however few it holds (over 500 bytes per map): in the
//! snapshot of 10,000 bindings, the tag and annotation maps were a fifth of
//! the peak memory of a plan. This keeps the entries in one vector sorted by
//! key, and answers as a `BTreeMap` does (lookups, key order, equality,
//! JSON as an object).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StrMap(Vec<(String, String)>);

impl StrMap {
    pub fn new() -> Self {
        StrMap(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Set `key`, returning the value it had, as `BTreeMap::insert`.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a `BTreeMap`, for code that builds on one.
    pub fn to_btree(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl fmt::Debug for StrMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for StrMap {
    /// Sorted by key; of repeated keys the last wins, as in a `BTreeMap`.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut entries: Vec<(String, String)> = iter.into_iter().collect();
        // Stable: equal keys keep their order, and the last of them is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        StrMap(out)
    }
}

impl Extend<(String, String)> for StrMap {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl From<BTreeMap<String, String>> for StrMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        StrMap(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for StrMap {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl PartialEq<BTreeMap<String, String>> for StrMap {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.0.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<'a> IntoIterator for &'a StrMap {
    type Item = (&'a String, &'a String);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, String)>, fn(&'a (String, String)) -> (&'a String, &'a String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl IntoIterator for StrMap {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for StrMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for StrMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = StrMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrMap, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }
        d.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_as_a_btree_map_does() {
        let pairs = [("b", "2"), ("a", "1"), ("c", "3"), ("a", "last")];
        let owned = || pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let mine: StrMap = owned().collect();
        let theirs: BTreeMap<String, String> = owned().collect();
        assert_eq!(mine, theirs);
        assert_eq!(mine.iter().collect::<Vec<_>>(), theirs.iter().collect::<Vec<_>>());
        assert_eq!(mine.get("a").map(String::as_str), Some("last"));
        assert!(mine.contains_key("c") && !mine.contains_key("d"));
        assert_eq!(serde_json::to_string(&mine).unwrap(), serde_json::to_string(&theirs).unwrap());
        let read: StrMap = serde_json::from_str(r#"{"z": "1", "y": "2", "z": "3"}"#).unwrap();
        assert_eq!(
            read.iter().collect::<Vec<_>>(),
            [(&"y".to_owned(), &"2".to_owned()), (&"z".to_owned(), &"3".to_owned())]
        );
        let mut m = mine.clone();
        assert_eq!(m.insert("b".into(), "two".into()), Some("2".into()));
        assert_eq!(m.insert("0".into(), "zero".into()), None);
        assert_eq!(m.remove("c"), Some("3".into()));
        assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), ["0", "a", "b"]);
        assert!(serde_json::from_str::<StrMap>(r#"{"a": 1}"#).is_err());
        assert_eq!(StrMap::from(theirs.clone()), mine);
        assert_eq!(mine.to_btree(), theirs);
    }
}
