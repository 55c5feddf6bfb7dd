//! Verifying a match before acting on it. A record offered as "the same
//! person" — by a lookup, by a create refused as a duplicate, by the search
//! a retried create makes first — is taken only when it holds the match key
//! value we looked for and no stronger key says it is somebody else. This
//! is what stands between a shared phone number and one customer's name
//! written over another's (issue 13).
//!
//! The rule, in the order of the keys' strength (an email says who a
//! person is; a phone may be a family's or a switchboard's):
//! the strongest key that both records hold decides. Equal values: the
//! same person. Different values: somebody else, whatever weaker key they
//! share. No key held by both: unrelated (an app that ignored the lookup's
//! filter and answered with everyone). Values are compared as the keys are
//! spelled, not as stored: emails without case or surrounding blanks,
//! phones by their digits.
//!
//! Whether the verified record is already linked to another record is the
//! caller's check: it knows the mirror and its own batch.

use serde_json::Value;

use super::PairRuntime;
use crate::connector::{ConnectorError, Record};
use crate::domain::{EntityKind, MatchKey, Side};
use crate::mapping::{Canonical, PairMap};

/// The identity keys, strongest first.
pub(super) const STRENGTH: [MatchKey; 2] = [MatchKey::Email, MatchKey::Phone];

/// What a record offered as a match is to the record we look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The strongest key both hold is equal: the same person.
    Same(MatchKey),
    /// The strongest key both hold differs: another person who shares a
    /// weaker key (a phone) with ours.
    SomeoneElse(MatchKey),
    /// No key held by both.
    Unrelated,
}

/// The verdict on `theirs` as the record `ours` describes (both canonical,
/// under `map`'s contact fields).
pub fn verdict(map: &PairMap, ours: &Canonical, theirs: &Canonical) -> Verdict {
    for key in STRENGTH {
        let (Some(a), Some(b)) = (key_text(map, ours, key), key_text(map, theirs, key)) else {
            continue;
        };
        return if a == b {
            Verdict::Same(key)
        } else {
            Verdict::SomeoneElse(key)
        };
    }
    Verdict::Unrelated
}

/// `record`'s value of `key` as compared (see the module docs), if it has
/// a non-empty one and the pair maps the key.
pub fn key_text(map: &PairMap, record: &Canonical, key: MatchKey) -> Option<String> {
    let field = map.match_field(EntityKind::Contact, key)?;
    let text = record.get(&field.name).and_then(Value::as_str)?;
    let compared = match key {
        MatchKey::Email => text.trim().to_lowercase(),
        MatchKey::Phone => text.chars().filter(char::is_ascii_digit).collect(),
    };
    (!compared.is_empty()).then_some(compared)
}

/// A record of one side verified to be the person a record of the other
/// side describes.
#[derive(Debug, Clone)]
pub struct Verified {
    pub record: Record,
    /// The key that identified it.
    pub key: MatchKey,
}

/// What a search by match keys found.
#[derive(Debug, Clone)]
pub enum Search {
    Found(Verified),
    /// No verified match. `someone_else` is the first record that held one
    /// of our keys but is another person, for the reason an operator reads.
    Nothing {
        someone_else: Option<(MatchKey, Record)>,
    },
}

/// Searches side `side` of `pair` for the contact `ours` (canonical)
/// describes, by each match key the side can search by and the pair maps,
/// strongest first, and returns the first candidate that verifies. A key
/// whose lookup the side refuses for this value (a record error) is
/// skipped; any other failure is returned: nobody may act as if nothing
/// were there when the side could not be asked.
pub async fn search(
    pair: &PairRuntime,
    side: Side,
    ours: &Canonical,
) -> Result<Search, ConnectorError> {
    let connector = pair.connector(side);
    let map = &pair.settings.map;
    let mut someone_else = None;
    for key in STRENGTH {
        if !connector.capabilities().match_keys.contains(&key) {
            continue;
        }
        let Some(field) = map.match_field(EntityKind::Contact, key) else {
            continue;
        };
        let Some(value) = ours.get(&field.name).and_then(Value::as_str) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let candidates = match connector.find_contacts(key, value).await {
            Ok(candidates) => candidates,
            Err(error) if error.is_record_error() => {
                tracing::warn!(pair = %pair.name(), side = %connector.side(), key = %key, error = %error, "match lookup refused; trying the next key");
                continue;
            }
            Err(error) => return Err(error),
        };
        for record in candidates {
            let canonical = keys_of(pair, side, &record);
            match verdict(map, ours, &canonical) {
                Verdict::Same(key) => return Ok(Search::Found(Verified { record, key })),
                Verdict::SomeoneElse(stronger) => {
                    tracing::debug!(pair = %pair.name(), side = %connector.side(), candidate = %record.id, by = %key, differs = %stronger, "a record sharing a key is another person");
                    someone_else.get_or_insert((key, record));
                }
                Verdict::Unrelated => {
                    tracing::warn!(pair = %pair.name(), side = %connector.side(), candidate = %record.id, by = %key, "the lookup answered with a record that does not hold the key; ignored");
                }
            }
        }
    }
    Ok(Search::Nothing { someone_else })
}

/// `record` of `side` verified against `ours`, or `None` when it is not
/// the same person (or cannot be mapped).
pub fn verify(
    pair: &PairRuntime,
    side: Side,
    ours: &Canonical,
    record: Record,
) -> Option<Verified> {
    let canonical = keys_of(pair, side, &record);
    match verdict(&pair.settings.map, ours, &canonical) {
        Verdict::Same(key) => Some(Verified { record, key }),
        Verdict::SomeoneElse(_) | Verdict::Unrelated => None,
    }
}

/// The strongest match key `ours` shares with `record` of `side`, for a
/// reason an operator reads (email when they share none readable).
pub fn shared_key(pair: &PairRuntime, side: Side, ours: &Canonical, record: &Record) -> MatchKey {
    let map = &pair.settings.map;
    let theirs = keys_of(pair, side, record);
    STRENGTH
        .into_iter()
        .find(|key| {
            let text = key_text(map, ours, *key);
            text.is_some() && text == key_text(map, &theirs, *key)
        })
        .unwrap_or(MatchKey::Email)
}

/// What tells who `record` is: its match keys as the map reads them
/// (a key that cannot be read is absent; the rest of the record may be
/// unmappable and still be recognised, and refused at linking with its
/// own reason).
fn keys_of(pair: &PairRuntime, side: Side, record: &Record) -> Canonical {
    pair.settings.map.match_keys_of(side, &record.fields)
}

#[cfg(test)]
mod tests {
    use super::{verdict, Verdict};

    use crate::domain::{EntityKind, MatchKey};
    use crate::mapping::{Binding, Canonical, FieldMap, Flow, PairMap};

    fn map() -> PairMap {
        let key = |name: &str, key| FieldMap {
            entity: EntityKind::Contact,
            name: name.into(),
            flow: Flow::Both,
            ghl: Some(Binding::pointer(&format!("/{name}"))),
            app: Some(Binding::pointer(&format!("/{name}"))),
            normalize: Vec::new(),
            match_key: Some(key),
            policy: None,
        };
        PairMap {
            fields: vec![key("email", MatchKey::Email), key("phone", MatchKey::Phone)],
        }
    }

    fn person(email: Option<&str>, phone: Option<&str>) -> Canonical {
        let mut c = Canonical::new();
        if let Some(email) = email {
            c.insert("email".into(), email.into());
        }
        if let Some(phone) = phone {
            c.insert("phone".into(), phone.into());
        }
        c
    }

    #[test]
    fn a_shared_phone_with_another_email_is_someone_else() {
        let ours = person(Some("b@example.com"), Some("+15550001111"));
        let theirs = person(Some("a@example.com"), Some("+1 555 000 1111"));
        assert_eq!(
            verdict(&map(), &ours, &theirs),
            Verdict::SomeoneElse(MatchKey::Email)
        );
    }

    #[test]
    fn the_same_email_is_the_same_person_even_with_a_new_phone() {
        let ours = person(Some("A@Example.com "), Some("+15550001111"));
        let theirs = person(Some("a@example.com"), Some("+15550002222"));
        assert_eq!(
            verdict(&map(), &ours, &theirs),
            Verdict::Same(MatchKey::Email)
        );
    }

    #[test]
    fn a_phone_decides_only_when_no_email_is_held_by_both() {
        let ours = person(None, Some("+15550001111"));
        let theirs = person(Some("a@example.com"), Some("15550001111"));
        assert_eq!(
            verdict(&map(), &ours, &theirs),
            Verdict::Same(MatchKey::Phone)
        );
    }

    #[test]
    fn a_record_holding_none_of_our_keys_is_unrelated() {
        let ours = person(Some("b@example.com"), None);
        let theirs = person(None, Some("+15550001111"));
        assert_eq!(verdict(&map(), &ours, &theirs), Verdict::Unrelated);
        assert_eq!(
            verdict(&map(), &ours, &person(None, None)),
            Verdict::Unrelated
        );
    }
}
