//! The keys the running kernel holds, from `/proc/keys` (no `keyctl` needed): an
//! asymmetric key's description is `<subject CN>: <key id>: X509.<algo> <short id> []`,
//! the key id being the certificate's subjectKeyIdentifier in hex, so a certificate is
//! found by its key id. (`/proc/keys` does not say which keyring holds a key.)

/// One key the kernel holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub kind: String,
    pub description: String,
}

/// Every key in a `/proc/keys` text (serial, flags, usage, expiry, perm, uid, gid, type,
/// description: the first eight separated by blanks).
pub fn parse(text: &str) -> Vec<Key> {
    text.lines()
        .filter_map(|line| {
            let mut rest = line.trim_start();
            let mut fields = Vec::new();
            for _ in 0..8 {
                let end = rest.find(char::is_whitespace)?;
                fields.push(&rest[..end]);
                rest = rest[end..].trim_start();
            }
            Some(Key {
                kind: fields[7].to_string(),
                description: rest.to_string(),
            })
        })
        .collect()
}

/// The asymmetric key whose key id is `key_id` (hex, any case), if the kernel holds it.
pub fn holding<'a>(keys: &'a [Key], key_id: &str) -> Option<&'a Key> {
    let want = key_id.to_ascii_lowercase();
    keys.iter().find(|k| {
        // /proc/keys truncates the type to nine characters ("asymmetri").
        k.kind.starts_with("asymmetri")
            && k.description
                .split(": ")
                .any(|part| part.trim().eq_ignore_ascii_case(&want))
    })
}
