//! Params -> the exact bytes each scheme signs. One function per scheme; the schemes and the CLI
//! (`explain`) feed them into a hasher or a buffer, so there is one implementation of each rule.

use crate::body::Params;
use crate::config::EmptyValues;

/// The legacy (`x-lf-md5`) signed text WITHOUT the secret:
/// `key1=value1&key2=value2&...&keyN=valueN&` (sorted by key, values as plain text), written
/// piece by piece into `out` (no intermediate string). The scheme then appends the secret, so the
/// whole signed text is `key1=value1&...&keyN=valueN&SECRET`.
pub fn md5_prefix(params: &Params<'_>, empty: EmptyValues, mut out: impl FnMut(&[u8])) {
    for (k, v) in params.signed(empty) {
        out(k.as_bytes());
        out(b"=");
        out(v.as_bytes());
        out(b"&");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::MediaType;
    use crate::config::Md5Options;

    fn prefix(media: MediaType, body: &str, empty: EmptyValues) -> String {
        let o = Md5Options {
            empty_values: empty,
            ..Md5Options::default()
        };
        let p = Params::parse(media, body.as_bytes(), &o).unwrap();
        let mut s = Vec::new();
        md5_prefix(&p, empty, |b| s.extend_from_slice(b));
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn provider_sample_layout() {
        // The provider's sample inputs, as the reference prints the dataToSign (minus the secret).
        let body = r#"{"sim_id":"89000000000001","imsi":"8900000000000010","partner_code":"P002671",
                       "text_message":"device status: 1234","received_at":"2022-01-19T201101"}"#;
        assert_eq!(
            prefix(MediaType::Json, body, EmptyValues::Keep),
            "imsi=8900000000000010&partner_code=P002671&received_at=2022-01-19T201101&\
             sim_id=89000000000001&text_message=device status: 1234&"
        );
    }

    #[test]
    fn form_and_json_give_the_same_text() {
        let j = prefix(
            MediaType::Json,
            r#"{"b":"x y","a":"1&2"}"#,
            EmptyValues::Keep,
        );
        let f = prefix(MediaType::Form, "b=x+y&a=1%262", EmptyValues::Keep);
        assert_eq!(j, "a=1&2&b=x y&");
        assert_eq!(j, f);
    }

    #[test]
    fn empty_values() {
        assert_eq!(
            prefix(MediaType::Json, r#"{"a":"","b":"1"}"#, EmptyValues::Keep),
            "a=&b=1&"
        );
        assert_eq!(
            prefix(MediaType::Json, r#"{"a":"","b":"1"}"#, EmptyValues::Skip),
            "b=1&"
        );
    }
}
